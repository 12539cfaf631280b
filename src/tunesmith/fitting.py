"""`tunesmith fit`: recipe -> data -> model -> Trainer -> run directory (shared/design.md pipeline).

`fit()` is the one entry point that the CLI, `tune`, `compare` and the scikit-learn estimators
build on. It validates everything it can before creating the run directory (so bad input leaves
nothing behind), writes the resolved recipe first and metrics.json last, and continues an
interrupted run with `resume=True` from the per-epoch checkpoint.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tunesmith.baselines import compare_line, fit_baselines, mean_baselines
from tunesmith.data import LoadedData, Prepared
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.models import build_model
from tunesmith.recipe import Recipe, flatten, load_recipe, make_recipe
from tunesmith.repro import environment
from tunesmith.run import RunDir, default_run_dir, write_json
from tunesmith.runsetup import RunSetup
from tunesmith.train.callbacks import Callback, Checkpoint, HistoryCSV, Progress, atomic_save
from tunesmith.train.losses import class_report, outputs_to_predictions
from tunesmith.train.monitor import LayerMonitor
from tunesmith.train.trainer import resolve_device

__all__ = ["FitResult", "fit"]

log = logging.getLogger("tunesmith")


@dataclass
class FitResult:
    metrics: dict[str, Any]  # the metrics.json dict
    history: pd.DataFrame  # history.csv (all folds, with a `fold` column under --cv)
    model: nn.Module  # the trained model (best-validation fold under --cv)
    recipe: Recipe  # the resolved recipe
    run_dir: Path
    prepared: Prepared | None = None  # the arrays the model was trained on (None when resumed complete)


def fit(
    recipe: Recipe | str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    model: nn.Module | None = None,
    callbacks: list[Callback] | None = None,
    progress: bool = True,
    report: bool = True,
    **shortcuts: Any,
) -> FitResult:
    """Train from a recipe and write a run directory; see SHORTCUTS for keyword arguments.

    model: a user nn.Module to train instead of a built-in family (copied, never modified).
    report: write report.html (callers that run many fits, like compare, write one report of their own).
    """
    run = RunDir(Path(out) if out is not None else default_run_dir("run"))
    if resume:
        run.check_resumable()
        started_with = load_recipe(run.recipe)  # the resolved recipe the run started with
        _check_unchanged(started_with, make_recipe(recipe, overrides=overrides, **shortcuts), run.path)
        recipe = started_with
        run.failed.unlink(missing_ok=True)
        if run.complete:
            log.info("%s is already complete; nothing to resume.", run.path)
            return _load_complete(run, recipe, model)
    else:
        recipe = make_recipe(recipe, overrides=overrides, **shortcuts)
        if out is None:
            run = RunDir(default_run_dir(_name(recipe)))
        run.check_new()
    started = time.perf_counter()
    setup = RunSetup.build(recipe, user_model=model)
    resolved, loaded = setup.recipe, setup.loaded
    device = resolve_device(resolved.train.device)
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    try:
        run.recipe.write_text(resolved.to_yaml())
        write_json(run.env, environment(device, resolved.train.threads))
        folds = [
            _fit_fold(setup.for_fold(k), run, callbacks=callbacks or [], progress=progress, resume=resume)
            for k in range(len(loaded.folds))
        ]
    except BadInput:
        if created:  # bad input found late (e.g. a recipe/model mismatch): leave nothing behind
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    except TrainingDiverged as exc:  # the epochs before it are the evidence: keep them, marked failed
        write_json(run.failed, {"reason": "diverged", "message": str(exc)})
        if report:
            from tunesmith.report import write_report

            write_report(run.path)
        raise
    best = min(range(len(folds)), key=lambda k: folds[k]["val"]["loss"])
    chosen = folds[best]
    if len(folds) > 1:  # the best-validation fold's model represents the run
        shutil.copyfile(run.fold(best, len(folds)) / "model.pt", run.model)
        shutil.copyfile(run.fold(best, len(folds)) / "preprocess.json", run.preprocess)
    metrics = _aggregate(folds, resolved, loaded, seconds=time.perf_counter() - started)
    write_json(run.metrics, metrics)  # last: from here on the run directory is complete
    history = pd.concat([f["history"].assign(fold=k + 1) for k, f in enumerate(folds)], ignore_index=True)
    if len(folds) == 1:
        history = history.drop(columns="fold")
    if report:
        from tunesmith.report import write_report  # lazy: matplotlib and jinja2 load only here

        write_report(run.path)
    return FitResult(metrics, history, chosen["model"], resolved, run.path, chosen["prepared"])


def _fit_fold(
    setup: RunSetup, run: RunDir, *, callbacks: list[Callback], progress: bool, resume: bool
) -> dict[str, Any]:
    k, prep, recipe = setup.fold, setup.prep, setup.recipe
    n_folds = len(setup.loaded.folds)
    fold_dir = run.fold(k, n_folds)
    fold_dir.mkdir(exist_ok=True)
    net = setup.new_model()  # seeded: every fold starts alike
    if resume and (fold_dir / "fold.json").is_file():  # a fold finished before the interruption
        net.load_state_dict(torch.load(fold_dir / "model.pt", map_location="cpu", weights_only=True))
        done = json.loads((fold_dir / "fold.json").read_text())
        return {**done, "model": net, "history": pd.read_csv(fold_dir / "history.csv"), "prepared": prep}
    checkpoint = fold_dir / "checkpoint.pt"
    hooks: list[Callback] = [
        HistoryCSV(fold_dir / "history.csv"),
        *callbacks,
    ]
    if recipe.train.monitor:  # T65, T66: before Checkpoint, so its rows are in the checkpoint
        hooks.append(LayerMonitor(fold_dir / "layers.csv"))
    if recipe.train.checkpoint:
        hooks.append(Checkpoint(checkpoint))
    if progress:
        hooks.append(Progress(f"fold {k + 1}/{n_folds}" if n_folds > 1 else "fit"))
    trainer = setup.trainer(net, callbacks=hooks)
    state = _load_checkpoint(checkpoint) if resume and checkpoint.is_file() else None
    started = time.perf_counter()
    trainer.fit(setup.train, setup.val, resume=state)
    result: dict[str, Any] = {
        "fold": k + 1,
        "val": trainer.evaluate(setup.val),
        "epochs": len(trainer.history),
        "best_epoch": trainer.best_epoch,
        "seconds": time.perf_counter() - started,
    }
    if prep.x_test is not None:  # the one and only look at the test split
        result["test"] = trainer.evaluate((prep.x_test, prep.y_test))
        if prep.facts.task == "classification":
            out, y = trainer.outputs((prep.x_test, prep.y_test))
            predictions, _ = outputs_to_predictions("classification", out.float().cpu().numpy())
            result["test_report"] = class_report(predictions, y.cpu().numpy(), prep.preprocessor.classes or [])
        elif prep.facts.task == "regression":  # the report's residual plots, in target units (T05)
            out, y = trainer.outputs((prep.x_test, prep.y_test))
            true, pred = (prep.preprocessor.inverse_y(t.float().cpu().numpy().reshape(len(t), -1)) for t in (y, out))
            _write_predictions(fold_dir / "test_predictions.csv", true, pred)
    result["baselines"] = fit_baselines(prep)  # the same rows, the same scoring (design.md: baselines, always)
    atomic_save(trainer.model.state_dict(), fold_dir / "model.pt")
    prep.preprocessor.save(fold_dir / "preprocess.json")
    if n_folds > 1:
        write_json(fold_dir / "fold.json", result)
    checkpoint.unlink(missing_ok=True)
    return {**result, "model": trainer.model, "history": trainer.history_frame(), "prepared": prep}


def _write_predictions(path: Path, true: np.ndarray, pred: np.ndarray) -> None:
    """test_predictions.csv: y_true, y_pred (y_true_0, y_pred_0, ... for several targets)."""
    names = [""] if true.shape[1] == 1 else [f"_{j}" for j in range(true.shape[1])]
    columns = {f"y_{kind}{n}": v[:, j] for j, n in enumerate(names) for kind, v in (("true", true), ("pred", pred))}
    pd.DataFrame(columns).to_csv(path, index=False)


def _load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/corrupt archives
        raise BadInput(
            f"The checkpoint {path} is corrupt and cannot be resumed ({type(exc).__name__}). Delete it "
            "to restart that run from its first epoch, or start a new run without --resume."
        ) from None


def _aggregate(folds: list[dict[str, Any]], recipe: Recipe, loaded: LoadedData, *, seconds: float) -> dict[str, Any]:
    best = min(folds, key=lambda f: f["val"]["loss"])
    metrics: dict[str, Any] = {
        "task": loaded.task,
        "epochs": best["epochs"],
        "best_epoch": best["best_epoch"],
        "seconds": round(seconds, 3),
        "seed": recipe.train.seed,
        "data": loaded.notes,
    }
    for split in ("val", "test"):
        if split in best:
            table = pd.DataFrame([f[split] for f in folds])
            metrics[split] = table.mean().to_dict()
            if len(folds) > 1:
                metrics[f"{split}_std"] = table.std(ddof=1).to_dict()
    if all("baselines" in f for f in folds):  # (a fold finished by an older version may lack them)
        metrics["baselines"] = mean_baselines([f["baselines"] for f in folds])
    if "test_report" in best:
        metrics["test_report"] = best["test_report"]
    if len(folds) > 1:
        metrics["folds"] = [
            {k: v for k, v in f.items() if k not in ("model", "history", "prepared", "test_report")} for f in folds
        ]
    return metrics


def _load_complete(run: RunDir, recipe: Recipe, model: nn.Module | None) -> FitResult:
    metrics = run.load_metrics()
    net = copy.deepcopy(model) if model is not None else None
    if net is None:
        from tunesmith.data import Preprocessor

        pre = Preprocessor.load(run.preprocess)
        net = build_model(
            recipe.model, kind=recipe.data.kind, input_shape=tuple(pre.state["shape"]), n_outputs=pre.n_outputs
        )
    net.load_state_dict(torch.load(run.model, map_location="cpu", weights_only=True))
    histories = sorted(run.path.glob("fold-*/history.csv")) or [run.path / "history.csv"]
    history = pd.concat([pd.read_csv(p) for p in histories], ignore_index=True)
    return FitResult(metrics, history, net, recipe, run.path)


def _check_unchanged(started_with: Recipe, asked: Recipe, path: Path) -> None:
    """--resume continues the run as it started: flags or a recipe that change a setting are refused."""
    old = flatten(started_with.model_dump(mode="json"))
    new = flatten(asked.model_dump(mode="json", exclude_unset=True))  # only what the flags or the recipe set
    changed = [k for k, v in new.items() if v != old.get(k) and v not in ("auto", None)]  # auto: what the data said
    if changed:
        listing = "; ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in changed)
        raise BadInput(
            f"--resume continues the run in {path} with the settings it started with, but these differ: "
            f"{listing}. Drop them to resume, or start a new run with another --out."
        )


def _name(recipe: Recipe) -> str:
    if recipe.name != "run" or not recipe.data.source:
        return recipe.name
    return Path(recipe.data.source).stem or "run"


def summary_line(metrics: dict[str, Any]) -> str:
    """One line of headline numbers for the terminal, ending with the network's gain over the linear baseline."""
    parts = []
    for split in ("val", "test"):
        for key, value in metrics.get(split, {}).items():
            std = metrics.get(f"{split}_std", {}).get(key)
            parts.append(
                f"{split} {key} {value:.4f}" + (f" ± {std:.4f}" if std is not None and np.isfinite(std) else "")
            )
    versus = compare_line(metrics)
    return ", ".join(parts) + (f"; {versus}" if versus else "")
