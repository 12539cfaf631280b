"""Data: load a source, split it (test, then validation or K folds), preprocess per fold.

`load_data(cfg, seed=...)` reads and splits once; `LoadedData.prepare(fold)` fits the
preprocessor on that fold's training rows only and returns float32 arrays for the trainer.
The test rows are transformed with the training statistics and are never used before the final
evaluation (held-out data is sacred).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.preprocess import Preprocessor, plain_label
from tunesmith.data.season import fit_season
from tunesmith.data.series import find_series
from tunesmith.data.sources import BUILTIN_SETS, Features, RawData, load_source
from tunesmith.data.splits import Fold, choose_split, dev_folds, test_split
from tunesmith.errors import BadInput
from tunesmith.recipe import DataConfig, DataFacts, resolve_data

__all__ = ["BUILTIN_SETS", "LoadedData", "Prepared", "Preprocessor", "RawData", "load_data"]

log = logging.getLogger("tunesmith")

MAX_CLASSES = 50  # an integer target with more distinct values than this is treated as regression


@dataclass
class Prepared:
    """One fold's model-ready arrays and the preprocessing fitted on its training rows."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray | None
    y_test: np.ndarray | None
    preprocessor: Preprocessor
    facts: DataFacts


@dataclass
class LoadedData:
    raw: RawData  # the development rows (test rows removed), duplicates dropped
    task: str
    kind: str
    split: str
    folds: list[Fold]
    x_test: Features | None
    y_test: np.ndarray | None
    classes: list[Any] | None
    cfg: DataConfig
    notes: dict[str, Any] = field(default_factory=dict)  # counts worth reporting (rows, duplicates)
    backbone: str | None = None  # model.backbone: its tokenizer encodes the text (data/backbone.py)
    time_test: np.ndarray | None = None  # the test rows' times (a carved time split's: a table's season reads them)

    @cached_property
    def season(self) -> dict[str, Any] | None:
        """The time column's season every fold's table gets (data/season.py): found on the training rows of the
        fold with the most (the last of a time-ordered cross-validation, whose first trains on a fraction of the
        history: too few cycles to tell a season from noise) and kept for every fold, so that all folds (and
        the ensemble's members) read the same columns."""
        cfg = self.cfg
        if cfg.season == "none" or (cfg.season == "auto" and self.task != "regression"):
            return None
        if self.raw.time is None or self.kind != "tabular":
            if cfg.season == "auto":
                return None
            raise BadInput(
                f"data.season={cfg.season} reads the phase of a time column in a table; {cfg.source} is "
                f"{'a table without --time' if self.kind == 'tabular' else self.kind + ' data'}. Pass --time COL, "
                "or set data.season=auto."
            )
        rows = max((f.train for f in self.folds), key=len)
        y = None if self.raw.y is None or np.ndim(self.raw.y) != 1 else np.asarray(self.raw.y)[rows]
        found = fit_season(self.raw.time[rows], y, period=cfg.season)  # auto: a 1-D target only
        if found is None:
            return None
        season = {"column": cfg.time, **found}
        self.notes["season"] = season  # metrics.json "data"
        if cfg.season == "auto":
            log.warning(
                "The target repeats every %d steps of the time column %r: sin and cos of each row's phase join the "
                "features (the evidence: metrics.json, data.season). --set data.season=none leaves them out.",
                season["period"],
                cfg.time,
            )
        return season

    def prepare(self, fold: int = 0) -> Prepared:
        """Fit preprocessing on the fold's training rows and transform train, val and test."""
        f = self.folds[fold]
        x_tr = _take(self.raw.x, f.train)
        series = None
        if self.kind == "tabular" and isinstance(x_tr, pd.DataFrame) and not self.cfg.categorical:  # T10
            series = find_series(x_tr, named=not str(self.cfg.source).lower().endswith(".npz"))
        y_tr, y_va = _pick(self.raw.y, f.train), _pick(self.raw.y, f.val)
        pre = Preprocessor.fit(
            x_tr,
            y_tr,
            cfg=self.cfg,
            task=self.task,
            kind=self.kind,
            classes=self.classes,
            backbone=self.backbone,
            season=self.season,
        )
        xt_tr = pre.transform_x(x_tr, time=_pick(self.raw.time, f.train))
        del x_tr  # peak memory: the raw training copy goes before the validation copy is made
        xt_va = pre.transform_x(_take(self.raw.x, f.val), time=_pick(self.raw.time, f.val))
        xt_te = None if self.x_test is None else pre.transform_x(self.x_test, time=self.time_test)

        def target(x: np.ndarray | None, y: np.ndarray | None) -> np.ndarray | None:
            if x is None:
                return None
            return x if self.task == "reconstruction" else pre.transform_y(y)  # type: ignore[arg-type]

        facts = DataFacts(
            task=self.task,  # type: ignore[arg-type]
            kind=self.kind,  # type: ignore[arg-type]
            n_train=len(xt_tr),
            input_shape=tuple(xt_tr.shape[1:]),
            n_outputs=pre.n_outputs,
            split=self.split,
            numbers=tuple(self.cfg.numbers),
            dates=tuple(self.cfg.dates),
            series=series,
            season=None if pre.season is None else pre.season["period"],
            text=self.cfg.text,
            vocab_size=pre.vocab_size,
        )
        return Prepared(
            xt_tr,
            target(xt_tr, y_tr),  # type: ignore[arg-type]
            xt_va,
            target(xt_va, y_va),  # type: ignore[arg-type]
            xt_te,
            target(xt_te, self.y_test),
            pre,
            facts,
        )


def _pick(a: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """The rows of an optional per-row array (target, time, groups)."""
    return None if a is None else a[rows]


def _take(x: Features, rows: np.ndarray) -> Features:
    return x.iloc[rows].reset_index(drop=True) if isinstance(x, pd.DataFrame) else x[rows]


def load_data(cfg: DataConfig, *, seed: int, backbone: str | None = None) -> LoadedData:
    """Read `cfg.source`, infer the task, drop duplicates, carve the test split and make the folds.
    `backbone` (model.backbone): text is then encoded by its tokenizer when a fold is prepared."""
    raw = load_source(cfg)
    kind = cfg.kind if cfg.kind != "auto" else raw.kind
    task = _infer_task(cfg, raw)
    notes: dict[str, Any] = {"source": cfg.source, "rows": len(raw)}
    for note in raw.notes:  # what the source and the task inference decided, said once
        log.warning(note)
    if task == "classification":
        _integral_labels(raw)
    if cfg.drop_duplicates and isinstance(raw.x, pd.DataFrame):  # T03: exact copies would straddle splits
        keep = ~_duplicated(raw.x, raw.y)
        notes["duplicates_dropped"] = int((~keep).sum())
        if not keep.all():  # no copy of the whole table when nothing is dropped
            raw = _subset(raw, np.flatnonzero(keep))
    classes = None
    if task == "classification":
        classes = sorted({plain_label(v) for v in raw.y}, key=lambda v: (str(type(v)), v))  # type: ignore[union-attr]
        if len(classes) < 2:
            raise BadInput(
                f"The target of {cfg.source} has a single class ({classes[0]!r}): there is nothing to "
                "learn. Check the --target column, or set data.task=regression for a numeric target."
            )
    split = choose_split(cfg, task, has_time=raw.time is not None, has_groups=raw.groups is not None)
    if split == "group":
        _check_groups(raw.groups, cfg, carve_test=raw.x_test is None and cfg.test_size > 0)  # type: ignore[arg-type]
    x_test, y_test, time_test = raw.x_test, raw.y_test, None
    try:
        if x_test is None and cfg.test_size > 0:
            dev, test = test_split(
                split,
                len(raw),
                y=raw.y if task == "classification" else None,
                time=raw.time,
                groups=raw.groups,
                size=cfg.test_size,
                gap=cfg.gap,
                seed=seed,
            )
            x_test, y_test, time_test = _take(raw.x, test), _pick(raw.y, test), _pick(raw.time, test)
            raw = _subset(raw, dev)  # rebinding frees the full table: peak memory (tests/test_pipeline_memory.py)
        folds = dev_folds(
            split,
            np.arange(len(raw)),
            y=raw.y if split == "stratified" else None,
            time=raw.time,
            groups=raw.groups,
            cfg=cfg,
            seed=seed,
        )
        _check_folds(folds, cfg, len(raw))
    except BadInput as exc:
        dropped = notes.get("duplicates_dropped", 0)
        if not dropped:
            raise
        raise BadInput(
            f"{exc} ({dropped} of {notes['rows']} rows were dropped first as exact duplicates, T03; "
            "data.drop_duplicates=false keeps them.)"
        ) from None
    notes.update(dev_rows=len(raw), test_rows=0 if x_test is None else len(x_test), split=split)
    if raw.notes:
        notes["inferred"] = raw.notes
    resolved = resolve_data(cfg, task=task, kind=kind, split=split, **raw.inferred)
    return LoadedData(raw, task, kind, split, folds, x_test, y_test, classes, resolved, notes, backbone, time_test)


def _check_folds(folds: list[Fold], cfg: DataConfig, n_dev: int) -> None:
    for k, fold in enumerate(folds):
        if len(fold.train) < 2:  # one row cannot train (batch norm refuses it) nor say anything
            where = f"fold {k + 1}" if len(folds) > 1 else "the training split"
            raise BadInput(
                f"{where} of {cfg.source} holds {len(fold.train)} row(s) of {n_dev} development rows: too few "
                "to train. Use more data, or smaller data.val_size / data.test_size."
            )


def _check_groups(groups: np.ndarray, cfg: DataConfig, *, carve_test: bool) -> None:
    needed = max(cfg.cv, 2) + carve_test  # a group for every fold (train and validation) and the test split
    found = len(np.unique(groups))
    if found < needed:
        count = "one group" if found == 1 else f"{found} groups"
        raise BadInput(
            f"The group column {cfg.group!r} of {cfg.source} holds {count}; a group split needs at least "
            f"{needed} (no group may sit in two splits). Name a column with more groups, or drop --group."
        )


def _integral_labels(raw: RawData) -> None:
    """Float class labels that are whole numbers (0.0/1.0) become integers: labels print as 0 and 1."""
    for name in ("y", "y_test"):
        y = getattr(raw, name)
        if y is not None and np.issubdtype(np.asarray(y).dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            setattr(raw, name, np.asarray(y).astype(np.int64))


def _infer_task(cfg: DataConfig, raw: RawData) -> str:
    if cfg.task != "auto":
        if cfg.task == "regression" and raw.y is not None and not np.issubdtype(np.asarray(raw.y).dtype, np.number):
            raise BadInput(f"data.task is 'regression' but the target of {cfg.source} is not numeric.")
        return cfg.task
    if raw.y is None:
        return "reconstruction"
    y = np.asarray(raw.y)
    if y.ndim == 1 and np.issubdtype(y.dtype, np.floating) and set(np.unique(y)) == {0.0, 1.0}:
        message = (
            f"The target of {cfg.source} holds only 0/1 values: trained as two classes. "
            "Set data.task=regression to fit them as numbers."
        )
        raw.notes.append(message)
        return "classification"
    if y.ndim > 1 or np.issubdtype(y.dtype, np.floating):
        return "regression"
    if np.issubdtype(y.dtype, np.integer) and len(np.unique(y)) > MAX_CLASSES:
        return "regression"
    return "classification"


def _duplicated(x: pd.DataFrame, y: np.ndarray | None) -> np.ndarray:
    """Exact `DataFrame.duplicated()` of (x, y) rows without a copy of the table: rows whose 64-bit hash
    repeats are the only candidates, and only those are compared (a per-column factorization of the
    whole table would hold int64 codes: twice a float32 table)."""
    hashes = pd.util.hash_pandas_object(x, index=False).to_numpy()
    if y is not None:
        target = pd.util.hash_array(np.asarray(y).reshape(len(x), -1)[:, 0])
        hashes = hashes ^ (target * np.uint64(0x9E3779B97F4A7C15))  # uint64 arithmetic wraps
    rows = np.flatnonzero(pd.Series(hashes).duplicated(keep=False).to_numpy())
    out = np.zeros(len(x), dtype=bool)
    if len(rows):
        frame = x.iloc[rows]
        if y is not None:
            frame = frame.assign(__target__=np.asarray(y).reshape(len(x), -1)[rows, 0])
        out[rows] = frame.duplicated().to_numpy()
    return out


def _subset(raw: RawData, rows: np.ndarray) -> RawData:
    return RawData(
        raw.name,
        _take(raw.x, rows),
        _pick(raw.y, rows),
        raw.kind,
        time=_pick(raw.time, rows),
        groups=_pick(raw.groups, rows),
        x_test=raw.x_test,
        y_test=raw.y_test,
        inferred=raw.inferred,
        notes=raw.notes,
    )
