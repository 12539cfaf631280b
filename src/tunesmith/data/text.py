"""Text: which string column is free text, and the tokenizer fitted on the training rows only (T01-T05).

Detection (`looks_like_text`): a string column whose filled cells are mostly distinct (at least
TEXT_DISTINCT of them) and multi-word (a median of at least TEXT_WORDS words) is free text. One-hot
encoding it (T02) would pool nearly every row into "other"; an ID ("user_0042", a UUID) or a short
label ("New York") has too few words to be text and stays a category.

Tokenizer: a Hugging Face `tokenizers.Tokenizer` (BERT's normalizer with lowercasing, BERT's
pre-tokenizer: words and punctuation) with a word-level vocabulary: the training rows' words seen at
least `data.min_count` times, most frequent first, up to `data.vocab_size`; id 0 is [PAD], 1 is
[UNK]. Words, fastText's unit, are what topical data are told apart by. The vocabulary is counted
here rather than by a `tokenizers` trainer because those break count ties in hash order: two runs on
the same rows would number the words differently, and a run must reproduce (T50).

The fitted tokenizer is JSON (`Tokenizer.to_str()`), stored as tokenizer.json beside preprocess.json
(no pickle), so `predict` and the estimators encode new text exactly as training did. The encoder
needs only a `Tokenizer` and its pad id 0: with `model.backbone`, the backbone's own tokenizer.json
takes the trained one's place (`pretrained_text`; max_length never past the backbone's positions).
Token ids are int64 arrays (N, max_length), right-padded with 0; `max_length` defaults to the 95th
percentile of the training lengths (rounded up to a multiple of 8, at most MAX_AUTO_LENGTH), and the
share of training rows it truncates is recorded with a length histogram (preprocess.json, the report).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from tunesmith.errors import BadInput

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = [
    "PAD_ID",
    "fit_text",
    "looks_like_text",
    "pretrained_text",
    "text_lengths",
    "tokenize",
    "tokenizer_from",
]

TEXT_DISTINCT = 0.5  # at least this share of a column's filled cells are distinct ...
TEXT_WORDS = 3  # ... and the median cell has at least this many words: free text
PAD, UNK = "[PAD]", "[UNK]"
PAD_ID = 0  # dynamic padding and the models' masks rely on it (trainer.py, models/text.py)
LENGTH_QUANTILE = 0.95  # max_length "auto": most rows whole, the long tail truncated
MAX_AUTO_LENGTH = 512  # ... and never longer: an RNN's cost grows with the length, a bag's barely
HISTOGRAM_BINS = 30


def _tokenizers() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise BadInput("Text data need the optional package 'tokenizers': pip install 'tunesmith[text]'.") from None
    return tokenizers


def looks_like_text(values: pd.Series) -> bool:
    """Free text: mostly distinct, multi-word strings (the module docstring gives the rule)."""
    filled = values.dropna().astype(str)
    if len(filled) < 2:
        return False
    words = filled.map(lambda cell: len(cell.split()))
    return bool(filled.nunique() >= TEXT_DISTINCT * len(filled) and words.median() >= TEXT_WORDS)


def _empty_tokenizer() -> Tokenizer:
    tk = _tokenizers()
    tokenizer = tk.Tokenizer(tk.models.WordLevel({PAD: PAD_ID, UNK: 1}, unk_token=UNK))
    tokenizer.normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    return tokenizer


def fit_text(texts: Sequence[str], *, vocab_size: int, min_count: int, max_length: int | None) -> dict[str, Any]:
    """The text part of a preprocessor's state, learned from the training rows' `texts` only."""
    tk = _tokenizers()
    tokenizer = _empty_tokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(
            word for word, _ in tokenizer.pre_tokenizer.pre_tokenize_str(tokenizer.normalizer.normalize_str(text))
        )
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))[: vocab_size - 2]
    vocab = {PAD: PAD_ID, UNK: 1, **{w: i + 2 for i, w in enumerate(kept)}}
    tokenizer.model = tk.models.WordLevel(vocab, unk_token=UNK)
    return _describe(tokenizer, texts, max_length=max_length, limit=None)


def pretrained_text(
    texts: Sequence[str], *, tokenizer_file: Path, max_length: int | None, limit: int | None
) -> dict[str, Any]:
    """The text state of a pretrained backbone: its own tokenizer.json (nothing learned from the rows), and
    `max_length` from the training lengths as for a trained tokenizer, never past the backbone's `limit`
    (its position embeddings: a longer row would index past them)."""
    tokenizer = _tokenizers().Tokenizer.from_file(str(tokenizer_file))
    tokenizer.no_padding()  # the file may pad or cut to its own length: lengths are measured whole, and
    tokenizer.no_truncation()  # padding is the batches' job (dynamic padding)
    if tokenizer.token_to_id(PAD) not in (PAD_ID, None):
        raise BadInput(
            f"{tokenizer_file} gives {PAD} the id {tokenizer.token_to_id(PAD)}; tunesmith pads with {PAD_ID}. "
            "Choose a backbone whose pad id is 0 (BERT-style vocabularies)."
        )
    state = _describe(tokenizer, texts, max_length=max_length, limit=limit)
    # the stored tokenizer cuts at max_length itself, so a long row keeps its closing special token ([SEP])
    tokenizer.enable_truncation(state["max_length"])
    return {**state, "tokenizer": tokenizer.to_str()}


def _describe(
    tokenizer: Tokenizer, texts: Sequence[str], *, max_length: int | None, limit: int | None
) -> dict[str, Any]:
    """A tokenizer's state for these training `texts`: `max_length` (given, or the LENGTH_QUANTILE of their
    lengths rounded up to a multiple of 8, at most MAX_AUTO_LENGTH; never past `limit`), the share of
    training rows it cuts and their length histogram."""
    lengths = text_lengths(tokenizer, texts)
    if max_length is None:
        quantile = float(np.quantile(lengths, LENGTH_QUANTILE)) if len(lengths) else 1.0
        max_length = min(MAX_AUTO_LENGTH, 8 * max(1, math.ceil(quantile / 8)))
    max_length = min(max_length, limit or max_length)
    counts, edges = np.histogram(lengths, bins=HISTOGRAM_BINS)
    return {
        "tokenizer": tokenizer.to_str(),
        "vocab_size": tokenizer.get_vocab_size(),
        "max_length": int(max_length),
        "truncated": int(np.sum(lengths > max_length)),
        "truncated_share": float(np.mean(lengths > max_length)) if len(lengths) else 0.0,
        "lengths": {"counts": counts.tolist(), "edges": edges.tolist(), "median": float(np.median(lengths))},
    }


def tokenizer_from(state: dict[str, Any]) -> Tokenizer:
    """The fitted tokenizer of a preprocessor's state."""
    return _tokenizers().Tokenizer.from_str(state["tokenizer"])


def text_lengths(tokenizer: Tokenizer, texts: Sequence[str]) -> np.ndarray:
    """Tokens per text before truncation (N,)."""
    return np.array([len(e.ids) for e in tokenizer.encode_batch(list(texts))], dtype=np.int64)


def tokenize(tokenizer: Tokenizer, texts: Sequence[str], max_length: int) -> np.ndarray:
    """Token ids (N, max_length) int64, truncated to max_length and right-padded with PAD_ID."""
    out = np.full((len(texts), max_length), PAD_ID, dtype=np.int64)
    for row, encoding in enumerate(tokenizer.encode_batch(list(texts))):
        ids = encoding.ids[:max_length]
        out[row, : len(ids)] = ids
    return out
