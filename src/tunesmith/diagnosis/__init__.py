"""tunesmith doctor: find what is wrong with a training setup, show the evidence, name the fix (T60-T67).

    import tunesmith as ts
    diag = ts.doctor(model, train=(x, y), val=(x_val, y_val), task="classification",
                     loss_fn=nn.CrossEntropyLoss(), optimizer="sgd", lr=0.1, batch_size=64)
    diag.failed                 # warn/fail findings, worst first
    diag.findings[0].evidence   # the numbers behind a verdict: value, threshold, curves
    diag.to_json("runs/x")      # findings.json

Forty-one checks in three groups (data, text included; model; short run; docs/doctor.md lists each with its
method and threshold) read a `Context` of private copies: the user's model and tensors are never
modified, and the global RNG state is restored afterwards. `doctor_recipe` builds the same setup
the way `tunesmith fit` would (load -> prepare -> resolve -> build) for the CLI.

The package is `tunesmith.diagnosis`, not `tunesmith.doctor`: importing a subpackage of that name
would rebind `tunesmith.doctor` to the module and shadow the function `ts.doctor` (as `compare`
lives in `tunesmith.comparison`).

Sources: Karpathy 2019 ("A Recipe for Training Neural Networks"); Ben Braiek & Khomh 2022
(TheDeepChecker); Zhang et al. 2021 (AUTOTRAINER); Schneider et al. 2021 (Cockpit); deepchecks.
"""

from __future__ import annotations

import json
import random
import time as clock
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tunesmith.diagnosis.base import Check, check_ids, create_check, register_check
from tunesmith.diagnosis.context import Context, Texts
from tunesmith.diagnosis.finding import SEVERITY, Finding
from tunesmith.diagnosis.inputs import build_context, optimizer_name, read_inputs
from tunesmith.diagnosis.runner import run_all
from tunesmith.recipe import Recipe
from tunesmith.run import write_json
from tunesmith.train.losses import LossFn

if TYPE_CHECKING:
    from tunesmith.runsetup import RunSetup

__all__ = [
    "SEVERITY",
    "Check",
    "Diagnosis",
    "Finding",
    "check_ids",
    "create_check",
    "doctor",
    "doctor_recipe",
    "register_check",
]


@dataclass
class Diagnosis:
    """The doctor's result: one finding per check, in check order."""

    findings: list[Finding]
    timings: dict[str, float] = field(default_factory=dict)  # seconds per check
    seconds: float = 0.0  # the whole diagnosis

    @property
    def failed(self) -> list[Finding]:
        """The warn and fail findings, worst first."""
        return sorted((f for f in self.findings if f.failed), key=lambda f: f.rank)

    def __getitem__(self, check: str) -> Finding:
        for finding in self.findings:
            if finding.check == check:
                return finding
        raise KeyError(f"No finding for check {check!r}; checks: {', '.join(f.check for f in self.findings)}.")

    def render(self) -> None:
        """Print the findings as a table (worst first), then the fix of every warn/fail (rich)."""
        from rich.console import Console
        from rich.table import Table

        colours = {"fail": "bold red", "warn": "yellow", "info": "cyan", "ok": "green", "skipped": "dim"}
        table = Table(show_lines=False, title="tunesmith doctor")
        for column in ("status", "check", "finding"):
            table.add_column(column, overflow="fold")
        for f in sorted(self.findings, key=lambda f: f.rank):
            table.add_row(f"[{colours[f.status]}]{f.status}[/]", f.check, f.summary)
        console = Console()
        console.print(table)
        for f in self.failed:
            tricks = f" ({', '.join(f.tricks)})" if f.tricks else ""
            console.print(f"[{colours[f.status]}]{f.check}[/]: {f.advice}{tricks}")
        counts = ", ".join(f"{sum(f.status == s for f in self.findings)} {s}" for s in SEVERITY)
        console.print(f"{len(self.findings)} checks: {counts} ({self.seconds:.1f} s)")

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.findings]

    def to_json(self, path: str | Path | None = None) -> str:
        """The findings list as JSON; written to `path` (a directory gets `findings.json`) when given."""
        if path is not None:
            target = Path(path)
            if target.is_dir() or not target.suffix:
                target.mkdir(parents=True, exist_ok=True)
                target = target / "findings.json"
            write_json(target, self.to_list())
        return json.dumps(self.to_list(), indent=2)


def doctor(
    model: nn.Module | None = None,
    *,
    train: Any,
    val: Any = None,
    task: str | None = None,
    loss_fn: nn.Module | LossFn | None = None,
    optimizer: str | type[torch.optim.Optimizer] | Callable[..., torch.optim.Optimizer] | None = None,
    lr: float | None = None,
    batch_size: int | None = None,
    time: tuple[Any, Any] | None = None,
    groups: tuple[Any, Any] | None = None,
    schedule: str | None = None,
    epochs: int | None = None,
    seed: int = 0,
    steps: int = 200,
    device: str = "auto",
    checks: Sequence[str] | None = None,
) -> Diagnosis:
    """Diagnose a training setup; unset arguments default to what `tunesmith fit` would choose.

    train, val: (x, y) arrays/tensors/DataFrames, a Dataset or a DataLoader (its batches are read
        exactly as training would read them).
    task: classification | regression | reconstruction (default: what the loss implies, e.g. MSELoss
        regresses, BCEWithLogitsLoss classifies; without a standard loss, integer targets classify).
    loss_fn: any standard torch loss with the targets its documentation describes, or a callable
        loss_fn(output, target); a loss the targets and outputs disagree with is a finding.
    optimizer: a name (sgd, adam, adamw, rmsprop, adagrad), a torch.optim class, or a factory
        called as factory(params, lr=lr).
    time, groups: one array per split, (t_train, t_val) and (g_train, g_val).
    schedule, epochs: the LR schedule and training length the setup will use (checked by simulation).
    steps: optimizer steps of the short training run. checks: ids to run (default: all).
    """
    started = clock.perf_counter()
    with _preserved_global_state():
        inputs = read_inputs(train, val, task=task, loss_fn=loss_fn, time=time, groups=groups)
        train_settings = {
            "train.optimizer": optimizer_name(optimizer),
            "train.lr": lr,
            "train.batch_size": batch_size,
            "train.schedule": schedule,
            "train.epochs": epochs,
        }
        recipe = inputs.recipe(train_settings, seed=seed, device=device)
        ctx = build_context(inputs, model, recipe, optimizer=optimizer, steps=steps)
        return _diagnose(ctx, checks, started)


def doctor_recipe(
    recipe: Recipe | str | Path | None = None,
    *,
    overrides: dict[str, Any] | None = None,
    steps: int = 200,
    checks: Sequence[str] | None = None,
) -> Diagnosis:
    """Diagnose the setup `tunesmith fit` would train: load -> prepare(fold 0) -> resolve -> build."""
    from tunesmith.recipe import make_recipe
    from tunesmith.runsetup import RunSetup

    started = clock.perf_counter()
    recipe = make_recipe(recipe, overrides=overrides)
    with _preserved_global_state():
        setup = RunSetup.build(recipe)
        prep = setup.prep
        fold, raw = setup.loaded.folds[0], setup.loaded.raw
        has_val = len(prep.x_val) > 0

        def per_split(values: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | None:
            return None if values is None or not has_val else (values[fold.train], values[fold.val])

        inputs = read_inputs(
            setup.train,
            setup.val if has_val else None,
            task=setup.facts.task,
            time=per_split(raw.time),
            groups=per_split(raw.groups),
        )
        notes = {
            "imputed": prep.preprocessor.state.get("filled", 0),
            "impute": recipe.data.impute,
            "duplicates_dropped": setup.loaded.notes.get("duplicates_dropped", 0),
        }
        names = _feature_names(prep.preprocessor.state)
        texts = _texts(setup)
        ctx = build_context(
            inputs, setup.new_model(), setup.recipe, steps=steps, feature_names=names, notes=notes, texts=texts
        )
        return _diagnose(ctx, checks, started)


def _diagnose(ctx: Context, checks: Sequence[str] | None, started: float) -> Diagnosis:
    if ctx.cfg.threads:  # train.threads, as `fit` honours it (restored afterwards)
        torch.set_num_threads(ctx.cfg.threads)
    try:
        findings, timings = run_all(ctx, checks)
    finally:
        ctx.restore_loader()  # the user's DataLoader RNGs end where they started
    return Diagnosis(findings, timings, clock.perf_counter() - started)


def _texts(setup: RunSetup) -> Texts:
    """The raw strings of fold 0 for the text checks: a text run's texts per split, a table's one-hot columns."""
    state, raw, fold = setup.prep.preprocessor.state, setup.loaded.raw, setup.loaded.folds[0]
    labels = None if raw.y is None or setup.facts.task != "classification" else raw.y[fold.train]
    classes = setup.prep.preprocessor.classes or []
    if not isinstance(raw.x, pd.DataFrame):  # images and sequences hold no strings
        return Texts(state, labels=labels, classes=classes)
    if state["kind"] == "text":
        column = raw.x.columns[0]
        splits = {"train": raw.x[column].iloc[fold.train].tolist(), "val": raw.x[column].iloc[fold.val].tolist()}
        if isinstance(setup.loaded.x_test, pd.DataFrame):
            splits["test"] = setup.loaded.x_test[column].tolist()
        return Texts(state, splits, labels, classes)
    categories = {c["name"]: raw.x[c["name"]].iloc[fold.train] for c in state["categorical"]}
    return Texts(state, labels=labels, classes=classes, categories=categories)


def _feature_names(state: dict[str, Any]) -> list[str] | None:
    """Column names of a preprocessed table: numeric columns, one column per category level, then the season's
    phase (data/season.py)."""
    if state.get("kind") != "tabular":
        return None
    names = list(state["numeric"]["names"])
    for cat in state["categorical"]:
        names += [f"{cat['name']}={level}" for level in cat["levels"]] + (
            [f"{cat['name']}=other"] if cat["other"] else []
        )
    if state.get("season"):
        names += [f"{state['season']['column']}_season_{part}" for part in ("sin", "cos")]
    return names


@contextmanager
def _preserved_global_state() -> Iterator[None]:
    """The doctor seeds and sets threads for its runs; the caller's RNGs and settings come back unchanged."""
    py, np_state = random.getstate(), np.random.get_state()
    deterministic, threads = torch.are_deterministic_algorithms_enabled(), torch.get_num_threads()
    with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(np_state)
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)
