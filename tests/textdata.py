"""Text made in the tests: topical rows in three topics, and a tiny random BERT saved as a Hugging Face
directory with a WordPiece tokenizer trained here (the `bert` fixture of conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

TOPICS = {
    "sport": "ball goal team match score coach player league win season referee stadium",
    "food": "bread cheese recipe cook oven salt pepper dinner taste kitchen butter soup",
    "tech": "computer software code chip network server data cloud laptop program memory disk",
}
COMMON = "the a of and to in is it that was for on with as this at by from"
LAYERS, HIDDEN_DROPOUT, ATTENTION_DROPOUT = 2, 0.1, 0.2  # the tiny BERT's


def topical(n: int, seed: int = 0, *, topic_share: float = 0.3, words: tuple[int, int] = (4, 40)) -> pd.DataFrame:
    """n texts (column body, label) of words[0]..words[1] - 1 words in 3 topics: common words, and a
    `topic_share` of the row's topic words."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = list(TOPICS)[i % 3]
        text = [
            rng.choice(TOPICS[label].split()) if rng.random() < topic_share else rng.choice(COMMON.split())
            for _ in range(rng.integers(*words))
        ]
        rows.append({"body": " ".join(text), "label": label})
    return pd.DataFrame(rows)


def save_tiny_bert(folder: Path, texts: list[str], *, hidden: int = 32) -> Path:
    """A random 2-layer, `hidden`-wide BERT with a WordPiece tokenizer trained on `texts`, saved as a HF directory."""
    import tokenizers as tk
    import torch
    import transformers

    tokenizer = tk.Tokenizer(tk.models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = tk.normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = tk.pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] first: id 0
    tokenizer.train_from_iterator(texts, tk.trainers.WordPieceTrainer(vocab_size=200, special_tokens=special))
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = tk.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    config = transformers.BertConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=hidden,
        num_hidden_layers=LAYERS,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=24,  # shorter than the longest texts: truncation must be counted, not crash
        hidden_dropout_prob=HIDDEN_DROPOUT,
        attention_probs_dropout_prob=ATTENTION_DROPOUT,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save(str(folder / "tokenizer.json"))
    return folder
