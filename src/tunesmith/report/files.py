"""What a report can show, read lazily from a run directory (the files of shared/design.md).

Every attribute is None (or empty) when its file is absent, so a section asks `run.tuning is not None`
and nothing else. A file that exists but cannot be parsed raises `BadInput` naming it; the report
then shows that one section's error and renders the others. Under --cv the per-fold files live in
fold-K/: curves use every fold, and files the report shows once (layers.csv, test_predictions.csv)
come from the best-validation fold, the one whose model represents the run.
"""

from __future__ import annotations

import json
import re
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from tunesmith.errors import BadInput

__all__ = ["RunFiles"]


class RunFiles:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # ---- JSON / YAML documents -----------------------------------------------------------------
    metrics = cached_property(lambda self: self._json("metrics.json"))
    env = cached_property(lambda self: self._json("env.json"))
    lr_find = cached_property(lambda self: self._json("lr_find.json"))
    tuning = cached_property(lambda self: self._json("tuning.json"))
    findings = cached_property(lambda self: self._json("findings.json"))
    compare = cached_property(lambda self: self._json("compare.json"))
    failed = cached_property(lambda self: self._json("failed.json"))
    preprocess = cached_property(lambda self: self._json("preprocess.json"))
    layer_weights = cached_property(lambda self: self._json("layer_weights.json"))  # a backbone's neck (T21)

    @cached_property
    def recipe(self) -> dict[str, Any] | None:
        path = self.path / "recipe.yaml"
        if not path.is_file():
            return None
        try:
            tree = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise BadInput(f"{path} is not valid YAML ({exc}); the report cannot show the recipe.") from None
        return tree if isinstance(tree, dict) else None

    # ---- tables ------------------------------------------------------------------------------
    @cached_property
    def histories(self) -> list[tuple[str, pd.DataFrame]]:
        """[("", history)] for a hold-out run, [("fold 1", ...), ...] under --cv; [] when there is none."""
        if (self.path / "history.csv").is_file():
            return [("", self._csv(self.path / "history.csv"))]
        return [(f"fold {k}", self._csv(d / "history.csv")) for k, d in self._folds() if (d / "history.csv").is_file()]

    layers = cached_property(lambda self: self._run_csv("layers.csv"))
    predictions = cached_property(lambda self: self._run_csv("test_predictions.csv"))
    trials = cached_property(lambda self: self._csv_or_none(self.path / "trials.csv"))

    @cached_property
    def predictions_test(self) -> dict[str, Any]:
        """metrics.json's test metrics of the model whose test_predictions.csv is shown (its fold's under --cv)."""
        metrics, found = self.metrics or {}, self._source("test_predictions.csv")
        if found is None or found[0] is None:
            return metrics.get("test", {})
        return next((f.get("test", {}) for f in metrics.get("folds", []) if f.get("fold") == found[0]), {})

    # ---- helpers -----------------------------------------------------------------------------
    def _json(self, name: str) -> Any:
        path = self.path / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path} is not valid JSON ({exc}); the report cannot show it.") from None

    def _csv(self, path: Path) -> pd.DataFrame:
        try:
            return pd.read_csv(path, dtype={"layer": str, "stage": str})  # names, even when they look numeric
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BadInput(f"{path} is not a readable CSV table ({exc}); the report cannot show it.") from None

    def _csv_or_none(self, path: Path) -> pd.DataFrame | None:
        return self._csv(path) if path.is_file() else None

    def _folds(self) -> list[tuple[int, Path]]:
        found = [(int(m.group(1)), d) for d in self.path.glob("fold-*") if (m := re.fullmatch(r"fold-(\d+)", d.name))]
        return sorted(found)

    def _source(self, name: str) -> tuple[int | None, Path] | None:
        """(fold, path) of the file `name`: the run's own (fold None), else the best-validation fold's; or None."""
        if (self.path / name).is_file():
            return None, self.path / name
        folds = dict(self._folds())
        folds_ = (self.metrics or {}).get("folds", [])  # seed members (time-ordered ensembles) have no val scores
        scores = {f["fold"]: f["val"]["loss"] for f in folds_ if f.get("fold") in folds and "val" in f}
        order = sorted(folds, key=lambda k: scores.get(k, float("inf")))
        return next(((k, folds[k] / name) for k in order if (folds[k] / name).is_file()), None)

    def _run_csv(self, name: str) -> pd.DataFrame | None:
        """The run's own file, else the best-validation fold's."""
        found = self._source(name)
        return None if found is None else self._csv(found[1])
