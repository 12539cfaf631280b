"""Text models trained from scratch on token ids (B, T), int64, right-padded with 0 (data/text.py).

Every one starts from an `nn.Embedding` whose padding row is zero (T13: `init_weights` draws the other
rows from a truncated normal, std 0.02) and pools over the real tokens only: a pad token never counts
in a mean or wins a max, so a row reads the same whatever the length of its batch (dynamic padding).

- `Bag`: fastText (Joulin et al. 2017): word embeddings and hashed word-pair embeddings (`HashedBigrams`),
  pooled by their mean and their max side by side (SWEM-concat, Shen et al. 2018), then a linear head
  (depth 0) or MLP blocks. The strong, cheap start on topical data.
- `TextCNN`: T16 1-D convolutions over the embedded words, max over time (Kim 2014).
- `TextRNN`: T19 a (bidirectional) GRU/LSTM, mean and max over time, then T14's layer norm.
- `TextTransformer`: a small pre-norm transformer encoder with learned positions, mean over tokens.

Sources: catalog T13, T14, T16, T19; Joulin et al. 2017; Shen et al. 2018, "Baseline Needs More Love: On
Simple Word-Embedding-Based Models"; Kim 2014, "Convolutional Neural Networks for
Sentence Classification"; Vaswani et al. 2017.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from tunesmith.data.text import PAD_ID

__all__ = [
    "Bag",
    "HashedBigrams",
    "TextCNN",
    "TextRNN",
    "TextTransformer",
    "TokenLayerNorm",
    "masked_max",
    "masked_mean",
]

_PRIME = 1_000_003  # pair (a, b) -> (a * _PRIME + b) mod buckets: spreads neighbouring ids over the buckets


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean over time of (B, T, E) where mask (B, T) is True; an all-pad row gives zeros."""
    weights = mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
    return (x * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)  # (B, E)


def masked_max(x: Tensor, mask: Tensor) -> Tensor:
    """Max over time of (B, T, E) where mask (B, T) is True; an all-pad row gives zeros."""
    filled = x.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(dim=1)  # (B, E)
    return torch.where(mask.any(dim=1, keepdim=True), filled, torch.zeros_like(filled))


class HashedBigrams(nn.Module):
    """fastText's word pairs: ids (B, T) -> (B, 2T - 1), the words then each adjacent pair hashed into one of
    `buckets` ids after the vocabulary (a pair that touches padding is padding). Gives the bag some word order."""

    def __init__(self, vocab_size: int, buckets: int) -> None:
        super().__init__()
        self.vocab_size, self.buckets = vocab_size, buckets

    def forward(self, ids: Tensor) -> Tensor:
        first, second = ids[:, :-1], ids[:, 1:]  # (B, T - 1)
        pairs = (first * _PRIME + second) % self.buckets + self.vocab_size
        pairs = torch.where((first != PAD_ID) & (second != PAD_ID), pairs, PAD_ID)
        return torch.cat([ids, pairs], dim=1)  # (B, 2T - 1)


class Bag(nn.Module):
    """fastText: embed the words (and `ngrams`' extra ids); the mean and the max of the real ones side by side,
    `body` blocks, a Linear. The mean says what a text is mostly about, the max which rare, telling words it
    holds: on the man-page set (benchmarks/text.py) the pair beat the mean alone by 4-5 test points (2 seeds).

    ngrams: HashedBigrams, or nn.Identity for words only. body: MLP blocks on (B, 2 * embed_dim) (empty at
    depth 0: the linear head).
    """

    def __init__(
        self,
        *,
        ngrams: nn.Module,
        n_ids: int,
        embed_dim: int,
        body: nn.Module,
        features: int,
        n_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.ngrams = ngrams
        self.embed = nn.Embedding(n_ids, embed_dim, padding_idx=PAD_ID)
        self.body = body
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_outputs))

    def forward(self, ids: Tensor) -> Tensor:
        ids = self.ngrams(ids)  # (B, T')
        embedded, mask = self.embed(ids), ids != PAD_ID  # (B, T', E), (B, T')
        pooled = torch.cat([masked_mean(embedded, mask), masked_max(embedded, mask)], dim=-1)  # (B, 2E)
        return self.classifier(self.body(pooled))  # (B, n_outputs)


class TextCNN(nn.Module):
    """T16 over words: embed, `depth` conv -> norm -> act layers of `width` filters ("same" padding), the max
    over the real tokens of the last one, dropout, a Linear.

    conv_block: `(in_channels, out_channels) -> module` on (B, C, T), a partial of blocks.ConvNormAct.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int,
        width: int,
        depth: int,
        conv_block: Callable[[int, int], nn.Module],
        n_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.convs = nn.ModuleList(conv_block(embed_dim if i == 0 else width, width) for i in range(depth))
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, n_outputs))

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != PAD_ID
        keep = mask.unsqueeze(1).to(self.embed.weight.dtype)  # (B, 1, T)
        maps = self.embed(ids).transpose(1, 2)  # (B, E, T)
        for conv in self.convs:
            maps = conv(maps) * keep  # (B, C, T); pads back to zero: the next layer sees what "same" padding adds
        return self.classifier(masked_max(maps.transpose(1, 2), mask))  # (B, n_outputs)


class TokenLayerNorm(nn.LayerNorm):
    """T14 for conv maps over words (B, C, T): layer norm over the channels of each token, so a row's numbers
    do not depend on how many pads its batch adds (GroupNorm(1, C) would average over the pads too)."""

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)  # (B, C, T)


class TextRNN(nn.Module):
    """T19 over words: embed, a GRU/LSTM stack, mean and max of its outputs over the real tokens, T14's norm
    (layer norm by default for text), dropout, a Linear.

    Pads are not packed away (pack_padded_sequence needs the lengths on the host: a sync per batch); after
    dynamic padding they are few, zero vectors at the end of a row, and the pooling ignores their outputs.
    """

    def __init__(
        self,
        *,
        vocab_size: int,
        embed_dim: int,
        cell: type[nn.GRU] | type[nn.LSTM],
        width: int,
        depth: int,
        bidirectional: bool,
        norm_layer: Callable[[int], nn.Module],
        n_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        between = dropout if depth > 1 else 0.0  # torch applies it between stacked layers only
        self.rnn = cell(embed_dim, width, depth, batch_first=True, bidirectional=bidirectional, dropout=between)
        features = 2 * width * (2 if bidirectional else 1)
        self.norm = norm_layer(features)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_outputs))

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != PAD_ID
        seq, _ = self.rnn(self.embed(ids))  # (B, T, D * H)
        pooled = torch.cat([masked_mean(seq, mask), masked_max(seq, mask)], dim=-1)  # (B, 2 * D * H)
        return self.classifier(self.norm(pooled))  # (B, n_outputs)


class TextTransformer(nn.Module):
    """A small pre-norm transformer encoder (T14: layer norm) over word and learned position embeddings; the
    mean over the real tokens, dropout, a Linear. `max_length` positions: longer rows are truncated upstream."""

    def __init__(
        self,
        *,
        vocab_size: int,
        max_length: int,
        embed_dim: int,
        heads: int,
        width: int,
        depth: int,
        act: str,
        n_outputs: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD_ID)
        self.positions = nn.Embedding(max_length, embed_dim)
        layer = nn.TransformerEncoderLayer(
            embed_dim, heads, width, dropout, activation=act, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, norm=nn.LayerNorm(embed_dim), enable_nested_tensor=False)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(embed_dim, n_outputs))

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != PAD_ID  # (B, T)
        steps = torch.arange(ids.shape[1], device=ids.device)
        x = self.embed(ids) + self.positions(steps)  # (B, T, E)
        keep_first = torch.ones_like(mask[:, :1])  # an all-pad row (an empty text) attends to its first slot
        x = self.encoder(x, src_key_padding_mask=~torch.cat([keep_first, mask[:, 1:]], dim=1))
        return self.classifier(masked_mean(x, mask))  # (B, n_outputs)
