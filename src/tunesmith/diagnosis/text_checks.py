"""Text checks: what the token ids hide (catalog T03, T51, T67; docs/text.md).

They read the raw strings behind a recipe's inputs (`Context.texts`, set by `doctor_recipe`; a user's
arrays of ids carry none, and the checks skip): the truncated share and the unknown-token rate of the
fitted tokenizer, texts copied or nearly copied across the splits, class names written in the text,
and a free-text column one-hot encoded as a category.

Near-duplicates are found as in web-scale deduplication (Broder 1997; Lee et al. 2022, "Deduplicating
Training Data Makes Language Models Better"): MinHash signatures of each text's word set, banded
locality-sensitive hashing for candidate pairs, then the exact Jaccard similarity of each candidate.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from tunesmith.data.text import looks_like_text, tokenizer_from
from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context, Texts
from tunesmith.diagnosis.finding import Finding

__all__ = ["LabelInText", "TextAsCategory", "TextDuplicates", "TextTruncation", "UnknownTokens", "near_duplicates"]

TRUNCATED = 0.1  # share of training rows cut at max_length (the default keeps 95% whole)
UNKNOWN = 0.1  # share of validation tokens that are [UNK]
NEAR = 0.9  # Jaccard similarity of two texts' word sets: a near-duplicate
CROSS_DUPLICATES = 0.01  # share of validation/test rows with a (near-)copy in training
LABEL_SHARE = 0.5  # a class name written in at least this share of its own rows ...
LABEL_ELSEWHERE = 0.05  # ... and in at most this share of the other classes' rows: the label is in the text
HASHES, BANDS = 32, 8  # MinHash signature length and LSH bands (4 rows each: pairs above ~0.6 Jaccard meet)
_WORDS = re.compile(r"\w+")


def _texts(ctx: Context) -> Texts:
    if ctx.texts is None:
        raise Skip("needs the raw text (run `tunesmith doctor --data FILE`); arrays of token ids carry none")
    return ctx.texts


def _text_run(ctx: Context) -> Texts:
    texts = _texts(ctx)
    if texts.state.get("kind") != "text":
        raise Skip("applies to text inputs (a table here)")
    return texts


@register_check
class TextTruncation(Check):
    """Training rows longer than max_length, cut by the tokenizer."""

    id = "text_truncation"
    group = "data"

    def run(self, ctx: Context) -> Finding:
        state = _text_run(ctx).state
        share, length = float(state["truncated_share"]), int(state["max_length"])
        evidence: dict[str, Any] = {
            "value": share,
            "threshold": TRUNCATED,
            "max_length": length,
            "median": state["lengths"]["median"],
        }
        if share > TRUNCATED:
            return self.found(
                "warn",
                f"{share:.1%} of the training texts are cut at max_length {length} ({measured(share, TRUNCATED)}): "
                "their ends never reach the model.",
                advice=f"Raise data.max_length (e.g. {2 * length}); dynamic padding keeps short rows cheap.",
                **evidence,
            )
        return self.ok(f"{share:.1%} of the training texts are longer than max_length {length}.", **evidence)


@register_check
class UnknownTokens(Check):
    """Validation tokens the training vocabulary lacks ([UNK])."""

    id = "unknown_tokens"
    group = "data"

    def run(self, ctx: Context) -> Finding:
        texts = _text_run(ctx)
        if not texts.splits.get("val"):
            raise Skip("needs validation rows")
        tokenizer = tokenizer_from(texts.state)
        unknown = tokenizer.token_to_id("[UNK]")
        ids = [i for encoding in tokenizer.encode_batch(texts.splits["val"]) for i in encoding.ids]
        share = float(np.mean(np.asarray(ids) == unknown)) if ids else 0.0
        vocab = int(texts.state["vocab_size"])
        evidence: dict[str, Any] = {"value": share, "threshold": UNKNOWN, "vocab_size": vocab, "tokens": len(ids)}
        if share > UNKNOWN:
            return self.found(
                "warn",
                f"{share:.1%} of the validation tokens are unknown to the training vocabulary "
                f"({measured(share, UNKNOWN)}; {vocab} entries): the model reads them all as one [UNK].",
                advice="Lower data.min_count (1 keeps every training word), raise data.vocab_size if the vocabulary "
                "hit it, or train on more text; rare words are what a pretrained backbone's subwords cover.",
                **evidence,
            )
        return self.ok(f"{share:.1%} of the validation tokens are unknown ([UNK]).", **evidence)


def _word_sets(texts: list[str]) -> list[frozenset[str]]:
    return [frozenset(_WORDS.findall(t.lower())) for t in texts]


def _signatures(sets: list[frozenset[str]], seed: int = 0) -> np.ndarray:
    """MinHash (N, HASHES): per hash function, the smallest hashed word of each set (a universal hash family)."""
    rng = np.random.default_rng(seed)
    prime = np.uint64((1 << 61) - 1)
    a, b = rng.integers(1, 1 << 61, HASHES, dtype=np.uint64), rng.integers(0, 1 << 61, HASHES, dtype=np.uint64)
    out = np.full((len(sets), HASHES), np.iinfo(np.uint64).max, dtype=np.uint64)
    for row, words in enumerate(sets):
        if words:
            h = np.array([hash(w) & ((1 << 61) - 1) for w in words], dtype=np.uint64)[:, None]  # (W, 1)
            out[row] = ((h * a + b) % prime).min(axis=0)  # uint64 products wrap: still a hash family
    return out


def near_duplicates(train: list[str], other: list[str]) -> np.ndarray:
    """For each text of `other`, whether a training text has Jaccard similarity >= NEAR with it (N_other,)."""
    sets_tr, sets_ot = _word_sets(train), _word_sets(other)
    sig_tr, sig_ot = _signatures(sets_tr), _signatures(sets_ot)
    rows = HASHES // BANDS
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for i, sig in enumerate(sig_tr):
        for band in range(BANDS):
            buckets.setdefault((band, sig[band * rows : (band + 1) * rows].tobytes()), []).append(i)
    found = np.zeros(len(other), dtype=bool)
    for j, sig in enumerate(sig_ot):
        candidates = {
            i for band in range(BANDS) for i in buckets.get((band, sig[band * rows : (band + 1) * rows].tobytes()), [])
        }
        mine = sets_ot[j]
        found[j] = any(len(mine & sets_tr[i]) >= NEAR * max(1, len(mine | sets_tr[i])) for i in candidates)
    return found


@register_check
class TextDuplicates(Check):
    """Validation and test texts that copy (or nearly copy) a training text: leakage across the splits."""

    id = "text_duplicates"
    group = "data"
    tricks = ("T03", "T51")

    def run(self, ctx: Context) -> Finding:
        texts = _text_run(ctx)
        held = {name: texts.splits[name] for name in ("val", "test") if texts.splits.get(name)}
        if not held:
            raise Skip("needs validation or test rows")
        copied = {name: near_duplicates(texts.splits["train"], rows) for name, rows in held.items()}
        counts = {name: int(found.sum()) for name, found in copied.items()}
        share = sum(counts.values()) / sum(len(rows) for rows in held.values())
        evidence: dict[str, Any] = {"value": share, "threshold": CROSS_DUPLICATES, "similarity": NEAR, **counts}
        if share > CROSS_DUPLICATES:
            where = ", ".join(f"{n} of the {name} rows" for name, n in counts.items())
            return self.found(
                "warn",
                f"{where} copy a training text (word-set Jaccard >= {NEAR}; {measured(share, CROSS_DUPLICATES)}): "
                "validation and test partly measure memorization.",
                advice="Remove near-duplicate texts before splitting (T03), or split by their source (a group "
                "split on the author, thread or document, T51).",
                **evidence,
            )
        return self.ok(f"No held-out text nearly copies a training text ({share:.1%} do).", **evidence)


@register_check
class LabelInText(Check):
    """A class name written in its own rows' text and rarely elsewhere: the answer is part of the input."""

    id = "label_in_text"
    group = "data"
    tricks = ("T67",)

    def run(self, ctx: Context) -> Finding:
        texts = _text_run(ctx)
        if not texts.classes or texts.labels is None:
            raise Skip("applies to classification")
        names = [str(c) for c in texts.classes if len(str(c)) >= 3 and not str(c).isdigit()]
        if not names:
            raise Skip("the class names are too short or numeric to search for")
        words = _word_sets(texts.splits["train"])
        labels = np.asarray([str(v) for v in texts.labels])
        shares: dict[str, tuple[float, float]] = {}
        for name in names:
            key = set(_WORDS.findall(name.lower()))
            has = np.array([key <= w for w in words])
            own = labels == name
            shares[name] = (
                float(has[own].mean()) if own.any() else 0.0,
                float(has[~own].mean()) if (~own).any() else 0.0,
            )
        leaks = {n: s for n, s in shares.items() if s[0] >= LABEL_SHARE and s[1] <= LABEL_ELSEWHERE}
        evidence: dict[str, Any] = {"shares": {n: {"own": s[0], "others": s[1]} for n, s in shares.items()}}
        if leaks:
            listed = ", ".join(f"{n!r} ({s[0]:.0%} of its rows, {s[1]:.0%} of the others)" for n, s in leaks.items())
            return self.found(
                "warn",
                f"The text names its class: {listed}. The model can read the label instead of learning the task.",
                advice="Strip labels, tags and headers the texts were made with (e.g. 'Category: sport'); keep them "
                "only if new texts will carry them too.",
                **evidence,
            )
        return self.ok("No class name marks its own rows' text.", **evidence)


@register_check
class TextAsCategory(Check):
    """A free-text column one-hot encoded as a category (T02 pools nearly every row into 'other')."""

    id = "text_as_category"
    group = "data"
    tricks = ("T02",)

    def run(self, ctx: Context) -> Finding:
        texts = _texts(ctx)
        if texts.state.get("kind") == "text":
            return self.ok("The text column is tokenized as text, not one-hot encoded.")
        found = [name for name, values in texts.categories.items() if looks_like_text(values)]
        if found:
            return self.found(
                "warn",
                f"The free-text column(s) {', '.join(map(repr, found))} are one-hot encoded as categories: nearly "
                "every text is its own level, so they end up in 'other' and carry nothing.",
                advice=f"Train on the text: drop data.kind=tabular (or pass --text {found[0]}); docs/text.md.",
                columns=found,
            )
        return self.ok("No one-hot encoded column holds free text.", columns=list(texts.categories))
