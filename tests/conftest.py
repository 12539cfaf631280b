"""Shared fixtures: small data made in the test, and a CLI runner that reports exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def sales_csv(tmp_path: Path) -> Path:
    """A small time-stamped regression table with a categorical column and a few missing values."""
    rng = np.random.default_rng(0)
    n = 300
    price = rng.uniform(1, 10, n)
    region = rng.choice(["north", "south", "east"], n)
    effect = pd.Series(region).map({"north": 5.0, "south": -3.0, "east": 0.0}).to_numpy()
    revenue = 20 * price + effect + rng.normal(0, 1, n)
    price[rng.choice(n, 10, replace=False)] = np.nan
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="D").astype(str),
            "price": price,
            "region": region,
            "revenue": revenue,
        }
    )
    path = tmp_path / "sales.csv"
    frame.to_csv(path, index=False)
    return path


# `tunesmith tune` flags for the CLI-driven tune tests: a 2-fold refit, no early stopping, one split per trial
FAST_TUNE_CLI = [
    "--set",
    "tune.refit_folds=2",
    "--set",
    "train.early_stopping.patience=null",
    "--set",
    "tune.folds=1",
    "--quiet",
]


def run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `tunesmith ARGS` in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "tunesmith", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.fixture
def test_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Tags the test rows of every prepared fold: each model evaluation on them appends "test" to the list
    returned (a test appends its own events to it, to check their order)."""
    from tunesmith.data import LoadedData
    from tunesmith.train.trainer import Trainer

    events: list[str] = []

    class Held(np.ndarray):
        """The test rows, tagged."""

    prepare, outputs = LoadedData.prepare, Trainer.outputs

    def tagged(self: LoadedData, fold: int = 0) -> Any:
        prep = prepare(self, fold)
        prep.x_test = prep.x_test.view(Held)
        return prep

    def watched(self: Trainer, data: Any) -> Any:
        if isinstance(data, tuple) and isinstance(data[0], Held):
            events.append("test")
        return outputs(self, data)

    monkeypatch.setattr(LoadedData, "prepare", tagged)
    monkeypatch.setattr(Trainer, "outputs", watched)
    return events


def clean_and_poisoned(folder: Path, rows: int, test_rows: int) -> None:
    """folder/clean.npz and folder/poisoned.npz: the same development rows, and given test rows that the poisoned
    copy scales wildly and relabels (nothing but the final evaluation may move)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(rows, 5)), rng.integers(0, 2, rows)
    x[:, 0] += 2 * y
    x_test, y_test = rng.normal(size=(test_rows, 5)), rng.integers(0, 2, test_rows)
    np.savez(folder / "clean.npz", x=x, y=y, x_test=x_test, y_test=y_test)
    np.savez(folder / "poisoned.npz", x=x, y=y, x_test=x_test * 1e3 + 50, y_test=1 - y_test)


@pytest.fixture(scope="module")
def bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT directory (tests/textdata.py), its tokenizer trained on 150 topical rows."""
    pytest.importorskip("transformers")
    from tests.textdata import save_tiny_bert, topical

    texts = topical(150, seed=9, topic_share=0.35, words=(4, 30))["body"].tolist()
    return save_tiny_bert(tmp_path_factory.mktemp("bert"), texts)
