"""What the playbook's prechecks measure, as stored in the study and written to tuning.json.

The prechecks (tunesmith.tuning.prechecks) produce these; the stages (tunesmith.tuning.playbook)
read them. They are plain JSON objects in storage, typed here so that producer and readers agree.
"""

from __future__ import annotations

from typing import TypedDict

__all__ = ["BatchSizeEvidence", "LrEvidence", "LrFindEvidence", "NoiseEvidence", "OverfitEvidence", "ProbeEvidence"]


class OverfitEvidence(TypedDict, total=False):
    """T40, before the first trial: did the starting model memorize one batch?"""

    rows: int
    steps: int
    passed: bool
    loss_first: float
    loss_last: float
    below: float
    diverged: str  # only when the check diverged (then no losses)


class LrFindEvidence(TypedDict):
    """T31: the LR range test's suggestion and whether its rules agreed."""

    suggestion: float
    agree: bool
    warning: str | None
    suggestions: dict[str, float]


class BatchSizeEvidence(TypedDict):
    """T33: the largest batch size that still buys throughput, and why the finder stopped there."""

    batch_size: int
    reason: str


class LrEvidence(TypedDict, total=False):
    """The lr stage's prechecks, measured once on the capacity winner ({} when not measured)."""

    lr_find: LrFindEvidence
    batch_size: BatchSizeEvidence


class NoiseEvidence(TypedDict, total=False):
    """Before the first trial: is one validation score trustworthy, or does each trial need folds?"""

    val_rows: int
    seed_scores: list[float]  # the starting recipe's validation score under NOISE_SEEDS seeds
    spread: float  # their standard deviation
    lead: float  # the starting recipe's mean score against the constant predictor's (what the search refines)
    repeats: int  # folds each trial is scored on (1: one split)
    why: str


class ProbeEvidence(TypedDict):
    """T62, before the first trial with a backbone: the linear probe's validation score, the bar to beat."""

    value: float
    seconds: float
    why: str
