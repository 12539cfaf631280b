"""Issue 16: property-based fuzzing of what users feed `tunesmith fit` (hypothesis), in-process.

Three generators: CSV tables (column types, NaN, inf, stray text, dates, delimiters, encodings,
duplicate and odd headers, tiny sizes), `.npz` arrays (shapes, dtypes, one-hot targets) and
recipes (types, unknown keys, extreme numbers). Every input must end in exit 0 with the right task
and output count, or in exit 2 with one `error:` paragraph; never a traceback, never a Python
warning on stderr. The quick run keeps CI fast; the slow one (CI too) runs FUZZ_LONG examples.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()
FAST = ["--epochs", "1", "--quiet", "--set", "train.monitor=false", "--set", "train.checkpoint=false"]
FUZZ_QUICK, FUZZ_LONG = 60, 500
TALLY: dict[str, int] = {"inputs": 0, "exit 2": 0}


@dataclass
class Input:
    """One generated input: files written into a folder, the command's arguments and what a success must say."""

    files: dict[str, bytes]
    argv: list[str]
    task: str | None  # the task a success must report (None: either is right)
    outputs: int | None = None  # classes (or targets) a success must have


# ---- CSV tables -----------------------------------------------------------------------------------
def column(draw: Any, kind: str, n: int) -> list[Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if kind == "float":
        values: list[Any] = rng.normal(size=n).round(3).tolist()
    elif kind == "int":
        values = rng.integers(-5, 5, n).tolist()
    elif kind == "category":
        values = rng.choice(["red", "green", "blue", "gris clair"], n).tolist()
    elif kind == "dates":
        values = pd.date_range("2020-01-01", periods=n, freq="D").strftime("%Y-%m-%d").tolist()
    elif kind == "constant":
        values = [7] * n
    elif kind == "empty":
        values = [None] * n
    else:  # "huge"
        values = (rng.normal(size=n) * 1e300).tolist()
    rate = draw(st.sampled_from([0.0, 0.0, 0.05, 0.3]))  # share of dirty cells: missing, infinite, stray text
    dirt = draw(st.sampled_from(["", "nan", "inf", "-inf", "abc", "1e400"]))
    for i in np.flatnonzero(rng.random(n) < rate):
        values[i] = dirt
    return values


@st.composite
def csv_inputs(draw: Any) -> Input:
    n = draw(st.sampled_from([0, 1, 2, 3, 12, 40, 40, 80]))
    kinds = draw(
        st.lists(
            st.sampled_from(["float", "float", "int", "category", "dates", "constant", "empty", "huge"]),
            min_size=1,
            max_size=4,
        )
    )
    names = draw(
        st.lists(
            st.sampled_from(["a", "b", "a", "", " c ", "Unnamed: 0", "ü", "x y"]),
            min_size=len(kinds),
            max_size=len(kinds),
        )
    )
    frame = pd.DataFrame({f"__{i}": column(draw, k, n) for i, k in enumerate(kinds)})
    target_kind = draw(st.sampled_from(["classes", "labels", "float", "binary_float", "one_class"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    target = {
        "classes": rng.integers(0, 3, n).tolist(),
        "labels": rng.choice(["yes", "no"], n).tolist(),
        "float": rng.normal(size=n).tolist(),
        "binary_float": rng.integers(0, 2, n).astype(float).tolist(),
        "one_class": [1] * n,
    }[target_kind]
    frame["target"] = target
    frame.columns = [*names, "target"]  # duplicate, empty and odd headers as users write them
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "latin-1"]))
    text = frame.to_csv(index=False, sep=sep)
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    task = {"float": "regression", "one_class": None}.get(target_kind, "classification")
    distinct = len(set(target))
    outputs = None if task != "classification" or distinct < 2 else (1 if distinct == 2 else distinct)
    return Input({"t.csv": raw}, ["fit", "--data", "{dir}/t.csv", "--target", "target"], task, outputs)


# ---- .npz arrays --------------------------------------------------------------------------------
@st.composite
def npz_inputs(draw: Any) -> Input:
    n = draw(st.sampled_from([0, 1, 4, 30]))
    shape = draw(st.sampled_from([(3,), (5, 2), (1, 6, 6), (2, 4, 4), (0,), ()]))
    dtype = draw(st.sampled_from(["float32", "float64", "int64", "bool", "uint8", "complex64", "U3"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.normal(size=(n, *shape)).astype(dtype) if dtype != "U3" else np.full((n, *shape), "ab")
    if dtype.startswith("float") and x.size and draw(st.booleans()):
        x.flat[0] = draw(st.sampled_from([np.nan, np.inf, 1e38]))
    y_kind = draw(st.sampled_from(["classes", "onehot", "float", "binary_float", "multi", "short", "2d_labels"]))
    labels = rng.integers(0, 3, n)
    y = {
        "classes": labels,
        "onehot": np.eye(3)[labels],
        "float": rng.normal(size=n),
        "binary_float": (labels % 2).astype(float),
        "multi": rng.normal(size=(n, 2)),
        "short": labels[: max(0, n - 1)],
        "2d_labels": labels[:, None],
    }[y_kind]
    path = Path(tempfile.mkdtemp()) / "d.npz"
    np.savez(path, x=x, y=y)
    raw = path.read_bytes()
    shutil.rmtree(path.parent)
    task = {"float": "regression", "multi": "regression", "short": None, "2d_labels": None}.get(
        y_kind, "classification"
    )
    distinct = len(set(labels.tolist())) if y_kind in ("classes", "onehot") else 2 if y_kind == "binary_float" else 0
    outputs = None if task != "classification" or distinct < 2 else (1 if distinct == 2 else distinct)
    return Input({"d.npz": raw}, ["fit", "--data", "{dir}/d.npz"], task, outputs)


# ---- recipes ------------------------------------------------------------------------------------
KEYS = [
    "train.epochs",
    "train.lr",
    "train.batch_size",
    "train.seed",
    "train.weight_decay",
    "train.optimizer",
    "train.clip_norm",
    "train.warmup_epochs",
    "data.val_size",
    "data.test_size",
    "data.cv",
    "data.max_categories",
    "model.width",
    "model.depth",
    "model.dropout",
    "model.family",
    "train.early_stopping.patience",
    "data.augment.strength",
    "train.epoch",
    "model.widht",
    "tune.trials",
]
PLAUSIBLE = {"lr": 3e-3, "optimizer": "adam", "family": "mlp", "val_size": 0.25, "dropout": 0.2, "strength": 0.3}
VALUES = st.one_of(
    st.integers(-3, 5),
    st.sampled_from([0, 1, 2**31, 10**30, -(10**30), 0.5, 1e-3, 1e308, float("inf"), float("-inf"), float("nan")]),
    st.booleans(),
    st.none(),
    st.sampled_from(["adam", "mlp", "auto", "", "1e-3", "three"]),
    st.lists(st.integers(0, 3), max_size=2),
)


@st.composite
def recipe_inputs(draw: Any) -> Input:
    tree: dict[str, Any] = {"data": {"source": "iris"}}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3, unique=True)):
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = draw(st.one_of(st.just(PLAUSIBLE.get(leaf, 1)), VALUES))  # half plausible, half hostile
    text = yaml.safe_dump(tree, allow_unicode=True)
    return Input({"r.yaml": text.encode()}, ["fit", "{dir}/r.yaml"], "classification", 3)


def check(case: Input) -> None:
    """Run one input; assert exit 0 with the right task and outputs, or exit 2 with one error paragraph."""
    folder = Path(tempfile.mkdtemp())
    try:
        for name, raw in case.files.items():
            (folder / name).write_bytes(raw)
        argv = [a.replace("{dir}", str(folder)) for a in case.argv] + ["--out", str(folder / "run"), *FAST]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning on stderr is a failure: numpy/pandas noise must not leak
            warnings.filterwarnings("ignore", category=DeprecationWarning, module="(?!tunesmith)")
            result = runner.invoke(app, argv)
        TALLY["inputs"] += 1
        assert result.exit_code in (0, 2), (argv, result.output, result.exception)
        assert "Traceback" not in result.output
        if result.exit_code == 2:
            TALLY["exit 2"] += 1
            errors = [line for line in result.output.splitlines() if line.startswith("error:")]
            assert len(errors) == 1, result.output
            assert not (folder / "run" / "metrics.json").exists()
            return
        metrics = json.loads((folder / "run" / "metrics.json").read_text())
        assert case.task is None or metrics["task"] == case.task, (case.task, metrics["task"], result.output)
        state = json.loads((folder / "run" / "preprocess.json").read_text())
        if case.outputs is not None:
            classes = state["target"]["classes"]
            assert (1 if len(classes) == 2 else len(classes)) <= case.outputs, (classes, case.outputs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


INPUTS = st.one_of(csv_inputs(), npz_inputs(), recipe_inputs())
COMMON = {
    "database": None,
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "derandomize": True,
}


@settings(max_examples=FUZZ_QUICK, **COMMON)
@given(INPUTS)
def test_fuzz_quick(case: Input) -> None:
    check(case)


@pytest.mark.slow
@settings(max_examples=FUZZ_LONG, **COMMON)
@given(INPUTS)
def test_fuzz_long(case: Input) -> None:
    check(case)


def teardown_module() -> None:
    if TALLY["inputs"]:
        share = TALLY["exit 2"] / TALLY["inputs"]
        print(f"\nfuzz: {TALLY['inputs']} inputs, {share:.0%} ended in exit 2, none in a traceback")
