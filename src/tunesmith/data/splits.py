"""Splits designed for the data (T51): test hold-out, then a validation hold-out or K folds.

The splitter follows the declared columns: with a time column every split is time-ordered (the
future never trains a model that is judged on the past) with an optional gap; with a group
column no group lands in two splits; otherwise classification is stratified. A split that would
leak (a shuffled split of time-stamped rows, a row-wise split of grouped rows) is refused.
With `data.ensemble` on time-ordered data the K "folds" are K copies of all development rows
(`seed_members`: K seeds, no validation rows). All splitting is done by scikit-learn; this module
only chooses and checks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn import model_selection as ms

from tunesmith.errors import BadInput
from tunesmith.recipe import DataConfig

__all__ = ["Fold", "choose_split", "dev_folds", "seed_members", "test_split"]


@dataclass(frozen=True)
class Fold:
    train: np.ndarray  # row indices into the development (non-test) rows
    val: np.ndarray


def choose_split(cfg: DataConfig, task: str, *, has_time: bool, has_groups: bool) -> str:
    """The split strategy for these data; refuses strategies that would leak (T51)."""
    split = cfg.split
    if split == "auto":
        split = (
            "time" if has_time else "group" if has_groups else "stratified" if task == "classification" else "random"
        )
    if has_time and split != "time":
        raise BadInput(
            f"data.split={split!r} would shuffle time-stamped rows (data.time={cfg.time!r}): the model "
            "would train on the future and be judged on the past. Use data.split=time (the default "
            "when a time column is declared), or drop --time if the rows are not ordered."
        )
    if has_groups and split not in ("group", "time"):
        raise BadInput(
            f"data.split={split!r} would put rows of one group (data.group={cfg.group!r}) in two "
            "splits, so validation would see groups the model trained on. Use data.split=group "
            "(the default when a group column is declared)."
        )
    if split == "time" and not has_time:
        raise BadInput("data.split='time' needs a time column: pass --time COLUMN.")
    if split == "group" and not has_groups:
        raise BadInput("data.split='group' needs a group column: pass --group COLUMN.")
    return split


def test_split(
    split: str,
    n: int,
    *,
    y: np.ndarray | None,
    time: np.ndarray | None,
    groups: np.ndarray | None,
    size: float,
    gap: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(development rows, test rows): the most recent rows for time splits, else a seeded share."""
    return _holdout(split, np.arange(n), y=y, time=time, groups=groups, size=size, gap=gap, seed=seed)


def dev_folds(
    split: str,
    rows: np.ndarray,
    *,
    y: np.ndarray | None,
    time: np.ndarray | None,
    groups: np.ndarray | None,
    cfg: DataConfig,
    seed: int,
) -> list[Fold]:
    """One train/val fold (hold-out) or `cfg.cv` folds of the development rows, as positions into `rows`."""
    sub = {
        "y": None if y is None else y[rows],
        "time": None if time is None else time[rows],
        "groups": None if groups is None else groups[rows],
    }
    local = np.arange(len(rows))
    if seed_members(cfg, split):  # K seeds, each on every development row: no validation rows are left
        return [Fold(local, local[:0]) for _ in range(cfg.cv)]
    if cfg.cv < 2:
        train, val = _holdout(split, local, size=cfg.val_size, gap=cfg.gap, seed=seed, **sub)
        return [Fold(train, val)]
    if cfg.cv > len(rows):
        raise BadInput(f"data.cv={cfg.cv} asks for more folds than there are rows ({len(rows)}). Use fewer folds.")
    order = local if sub["time"] is None else np.argsort(sub["time"], kind="stable")
    splitter: ms.BaseCrossValidator
    if split == "time":
        splitter = ms.TimeSeriesSplit(n_splits=cfg.cv, gap=cfg.gap)
    elif split == "group":
        splitter = ms.GroupKFold(n_splits=cfg.cv)
    elif split == "stratified":
        splitter = ms.StratifiedKFold(n_splits=cfg.cv, shuffle=True, random_state=seed)
    else:
        splitter = ms.KFold(n_splits=cfg.cv, shuffle=True, random_state=seed)
    try:
        pieces = splitter.split(
            order,
            None if sub["y"] is None else sub["y"][order],
            None if sub["groups"] is None else sub["groups"][order],
        )
        return [Fold(order[tr], order[va]) for tr, va in pieces]
    except ValueError as exc:
        raise BadInput(f"Cannot make {cfg.cv} {split} folds of these data: {exc}") from None


def seed_members(cfg: DataConfig, split: str) -> bool:
    """An ensemble of time-ordered data trains K seeds on all development rows, not K expanding-window
    folds: the early windows hold a fraction of the history and are judged on the oldest rows, so their
    models cannot stand for the final one (TimeSeriesSplit's first of 5 folds trains on a sixth)."""
    return cfg.ensemble and split == "time"


def _holdout(
    split: str,
    rows: np.ndarray,
    *,
    y: np.ndarray | None,
    time: np.ndarray | None,
    groups: np.ndarray | None,
    size: float,
    gap: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    if size == 0:
        return rows, rows[:0]
    if len(rows) < 2:
        raise BadInput(
            f"Cannot hold out {size:.0%} of {len(rows)} row(s): a split needs at least 2 rows (one on each side). "
            "Use more data."
        )
    try:
        if split == "time":
            assert time is not None  # choose_split guarantees it
            order = rows[np.argsort(time, kind="stable")]
            n_out = max(1, round(len(order) * size))
            kept, out = order[: len(order) - n_out - gap], order[len(order) - n_out :]
        elif split == "group":
            inner = ms.GroupShuffleSplit(n_splits=1, test_size=size, random_state=seed)
            kept_pos, out_pos = next(inner.split(rows, groups=groups))
            kept, out = rows[kept_pos], rows[out_pos]
        else:
            kept, out = ms.train_test_split(
                rows, test_size=size, random_state=seed, stratify=y if split == "stratified" else None
            )
    except ValueError as exc:
        reason = str(exc)
        if split == "stratified" and y is not None:  # say it in the data's terms, not scikit-learn's
            labels, counts = np.unique(y, return_counts=True)
            rarest = labels[counts.argmin()]
            rarest = rarest.item() if isinstance(rarest, np.generic) else rarest  # np.int64(0) prints as 0
            reason = (
                f"each of the {len(labels)} classes needs a row on both sides, and the rarest "
                f"({rarest!r}) has {counts.min()} of {len(rows)} rows"
            )
        raise BadInput(
            f"Cannot hold out {size:.0%} of {len(rows)} rows with a {split} split: {reason}. "
            "Use more data, other split sizes (data.val_size, data.test_size), or data.split=random."
        ) from None
    if len(kept) == 0 or len(out) == 0:
        raise BadInput(
            f"Holding out {size:.0%} of {len(rows)} rows (gap {gap}) leaves an empty split. "
            "Use more data, a smaller data.gap or other split sizes."
        )
    return np.sort(kept), np.sort(out)
