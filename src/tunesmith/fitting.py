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
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tunesmith.baselines import compare_line, fit_baselines, mean_baselines
from tunesmith.data import LoadedData, Prepared, Preprocessor
from tunesmith.data.splits import seed_members
from tunesmith.ensemble import Outputs, average, averaged_score, member_prediction, out_of_fold_score, targets
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.models import build_model
from tunesmith.models.backbone import neck_weights, save_architecture
from tunesmith.recipe import Recipe, flatten, load_recipe, make_recipe
from tunesmith.repro import environment
from tunesmith.run import RunDir, default_run_dir, write_json
from tunesmith.runsetup import RunSetup
from tunesmith.train.callbacks import Callback, Checkpoint, HistoryCSV, Progress, atomic_save
from tunesmith.train.losses import class_report, score_outputs
from tunesmith.train.metrics import DEFAULT_FOR_TASK
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
    embeddings: str | Path | None = None,
    **shortcuts: Any,
) -> FitResult:
    """Train from a recipe and write a run directory; see SHORTCUTS for keyword arguments.

    model: a user nn.Module to train instead of a built-in family (copied, never modified).
    report: write report.html (callers that run many fits, like compare, write one report of their own).
    embeddings: the folder where a backbone's linear probe caches its embeddings (train/probe.py); default the
    run directory's embeddings/. Runs given one folder (compare's seeds, tune's trials and refit) share it.
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
    setup = RunSetup.build(
        recipe, user_model=model, embeddings=Path(embeddings) if embeddings is not None else run.embeddings
    )
    resolved, loaded = setup.recipe, setup.loaded
    device = resolve_device(resolved.train.device)
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    seeds = seed_members(resolved.data, loaded.split)
    try:
        run.recipe.write_text(resolved.to_yaml())
        write_json(run.env, environment(device, resolved.train.threads))
        if seeds:
            log.info(_seeds_note(setup))
        trained = [
            _fit_fold(_member(setup, k, seeds=seeds), run, callbacks=callbacks or [], progress=progress, resume=resume)
            for k in range(len(loaded.folds))
        ]
        baselines: dict[int, Any] = {}  # seed members share their rows: one baseline fit serves them all
        folds = [_final_look(member, run, baselines) for member in trained]  # after every member has trained
        ensemble = _ensemble(folds, run) if resolved.data.ensemble else None
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
    best = _representative(folds)
    chosen = folds[best]
    save_architecture(chosen["model"], run.backbone)  # a backbone's config: predict needs no copy of model.backbone
    if len(folds) > 1:  # the best-validation fold's model represents the run (an ensemble's predict reads all)
        shutil.copyfile(run.fold(best, len(folds)) / "model.pt", run.model)
        Preprocessor.load(run.fold(best, len(folds)) / "preprocess.json").save(run.preprocess)  # text: + tokenizer
    metrics = _aggregate(folds, resolved, loaded, seconds=time.perf_counter() - started, ensemble=ensemble)
    if ensemble is not None:
        metrics["members"] = {**metrics["members"], **_members_entry(folds, setup, seeds=seeds)}
    write_json(run.metrics, metrics)  # last: from here on the run directory is complete
    history = pd.concat([f["history"].assign(fold=k + 1) for k, f in enumerate(folds)], ignore_index=True)
    if len(folds) == 1:
        history = history.drop(columns="fold")
    if report:
        from tunesmith.report import write_report  # lazy: matplotlib and jinja2 load only here

        write_report(run.path)
    return FitResult(metrics, history, chosen["model"], resolved, run.path, chosen["prepared"])


def _member(setup: RunSetup, k: int, *, seeds: bool) -> RunSetup:
    """Member k of the run: fold k, or (time-ordered ensembles) seed + k on every development row
    with the recipe's epochs and no early stopping: no validation rows are left to stop on."""
    if not seeds:
        return setup.for_fold(k)
    seeded = setup.recipe.with_overrides({"train.seed": (setup.recipe.train.seed + k) % 2**32, **NO_EARLY_STOP})
    return replace(setup, recipe=seeded, fold=k)  # fold 0's arrays: all development rows, prepared once


NO_EARLY_STOP = {"train.early_stopping.patience": None, "train.early_stopping.restore_best": False}


def _seeds_note(setup: RunSetup) -> str:
    n, rows, epochs = len(setup.loaded.folds), len(setup.prep.x_train), setup.recipe.train.epochs
    return (
        f"Ensemble of time-ordered data: {n} seeds ({setup.recipe.train.seed}..{setup.recipe.train.seed + n - 1}), "
        f"each trained on all {rows} train+val rows for {epochs} epochs without early stopping (no validation "
        "rows are left); expanding-window folds would train the early members on a fraction of the history"
    )


def _fit_fold(
    setup: RunSetup, run: RunDir, *, callbacks: list[Callback], progress: bool, resume: bool
) -> dict[str, Any]:
    """Train one member (or reload it, when --resume finds it finished): no test row is read here."""
    k, prep, recipe = setup.fold, setup.prep, setup.recipe
    n_folds = len(setup.loaded.folds)
    fold_dir = run.fold(k, n_folds)
    fold_dir.mkdir(exist_ok=True)
    net = setup.new_model()  # seeded: every fold starts alike (seed members: each from its own seed)
    seeds = seed_members(recipe.data, setup.loaded.split)
    if resume and (fold_dir / "fold.json").is_file():  # a fold finished before the interruption
        net.load_state_dict(torch.load(fold_dir / "model.pt", map_location="cpu", weights_only=True))
        done = json.loads((fold_dir / "fold.json").read_text())
        kept = {key: done[key] for key in TRAINING_FACTS if key in done}  # _final_look scores it afresh
        return {"facts": kept, "model": net, "history": pd.read_csv(fold_dir / "history.csv"), "setup": setup}
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
        hooks.append(Progress(f"{'seed' if seeds else 'fold'} {k + 1}/{n_folds}" if n_folds > 1 else "fit"))
    trainer = setup.trainer(net, callbacks=hooks)
    state = _load_checkpoint(checkpoint) if resume and checkpoint.is_file() else None
    started = time.perf_counter()
    trainer.fit(setup.train, setup.val if len(prep.x_val) else None, resume=state)
    facts: dict[str, Any] = {
        "fold": k + 1,
        "epochs": len(trainer.history),
        "best_epoch": trainer.best_epoch,
        "seconds": time.perf_counter() - started,
    }
    if seeds:
        facts["seed"] = recipe.train.seed
    atomic_save(trainer.model.state_dict(), fold_dir / "model.pt")
    prep.preprocessor.save(fold_dir / "preprocess.json")
    layers = neck_weights(trainer.model)  # T21: what the backbone's neck learned, for the report
    if layers is not None:
        write_json(fold_dir / "layer_weights.json", layers)
    if n_folds > 1:
        write_json(fold_dir / "fold.json", facts)  # marks the member trained; _final_look adds its scores
    checkpoint.unlink(missing_ok=True)
    return {"facts": facts, "model": trainer.model, "history": trainer.history_frame(), "setup": setup}


TRAINING_FACTS = ("fold", "epochs", "best_epoch", "seconds", "seed")


def _final_look(member: dict[str, Any], run: RunDir, baselines: dict[int, Any]) -> dict[str, Any]:
    """One member's validation scores and its one look at the test split (one pass over the rows), once
    every member has trained; its outputs stay in memory for the ensemble."""
    setup: RunSetup = member["setup"]
    prep, task = setup.prep, setup.facts.task
    n_folds = len(setup.loaded.folds)
    fold_dir = run.fold(setup.fold, n_folds)
    trainer = setup.trainer(member["model"])
    result: dict[str, Any] = dict(member["facts"])
    outputs: dict[str, Outputs] = {}
    for split, data in (("val", setup.val), ("test", (prep.x_test, prep.y_test))):
        if data[0] is None or len(data[0]) == 0:  # no test split, or seed members (no validation rows)
            continue
        out, y = trainer.outputs(data)  # for "test": the one and only look at the test split
        result[split] = score_outputs(task, out, y, loss_fn=trainer.loss_fn, target_inverse=trainer.target_inverse)
        outputs[split] = Outputs(out.float().cpu().numpy(), y.cpu().numpy(), prep.preprocessor)
    test = outputs.get("test")
    if test is not None and task == "classification":
        labels = member_prediction(task, test.out, prep.preprocessor).argmax(axis=1)
        result["test_report"] = class_report(labels, test.y, prep.preprocessor.classes or [])
    elif test is not None and task == "regression":  # the report's residual plots, in target units (T05)
        _write_predictions(fold_dir / "test_predictions.csv", targets(task, test), _prediction(task, test))
    if id(prep) not in baselines:
        baselines[id(prep)] = fit_baselines(prep)  # the same rows, the same scoring (design.md: baselines, always)
    result["baselines"] = baselines[id(prep)]
    if n_folds > 1:
        write_json(fold_dir / "fold.json", result)
    return {**result, "model": member["model"], "history": member["history"], "prepared": prep, "outputs": outputs}


def _prediction(task: str, part: Outputs) -> np.ndarray:
    """A member's prediction on its test outputs (reconstruction: its error against its own inputs)."""
    return member_prediction(task, part.out, part.preprocessor, part.y)


def _ensemble(folds: list[dict[str, Any]], run: RunDir) -> dict[str, Any]:
    """The ensemble's own scores: the members' averaged test predictions, and (k-fold) the out-of-fold
    validation predictions; its per-class report and, for regression, test_predictions.csv."""
    task = folds[0]["prepared"].facts.task
    scores: dict[str, Any] = {}
    tests = [f["outputs"]["test"] for f in folds if "test" in f["outputs"]]
    if tests and len(tests) == len(folds):
        prediction = average([_prediction(task, p) for p in tests])
        scores["test"] = averaged_score(task, prediction, tests)
        if task == "classification":
            classes = folds[0]["prepared"].preprocessor.classes or []
            scores["test_report"] = class_report(prediction.argmax(axis=1), tests[0].y, classes)
        elif task == "regression":
            _write_predictions(run.path / "test_predictions.csv", targets(task, tests[0]), prediction)
    vals = [f["outputs"]["val"] for f in folds if "val" in f["outputs"]]
    if vals and len(vals) == len(folds):
        scores["val"] = out_of_fold_score(task, vals)
    return scores


def _members_entry(folds: list[dict[str, Any]], setup: RunSetup, *, seeds: bool) -> dict[str, Any]:
    """What metrics.json says about an ensemble's members beside their mean ± std."""
    task = setup.facts.task
    averages = {"classification": "class probabilities", "regression": "outputs in target units"}
    entry: dict[str, Any] = {
        "kind": "seeds" if seeds else "folds",
        "average": averages.get(task, "per-row reconstruction errors (scores: the members' mean)"),
    }
    if seeds:
        entry["seeds"] = [f["seed"] for f in folds]
        entry["note"] = _seeds_note(setup)
    else:
        entry["note"] = (
            f"The ensemble of the {len(folds)} fold models: its val scores are out-of-fold (each fold's member "
            "on its own validation rows), its test scores those of the averaged prediction"
        )
    return entry


def _representative(folds: list[dict[str, Any]]) -> int:
    """The member whose model.pt stands at the top level: the best validation loss (seed members: the first)."""
    if not all("val" in f for f in folds):
        return 0
    return min(range(len(folds)), key=lambda k: folds[k]["val"]["loss"])


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


def _aggregate(
    folds: list[dict[str, Any]],
    recipe: Recipe,
    loaded: LoadedData,
    *,
    seconds: float,
    ensemble: dict[str, Any] | None,
) -> dict[str, Any]:
    """metrics.json: the headline scores (the ensemble's, or the folds' mean ± std), baselines, folds."""
    best = folds[_representative(folds)]
    metrics: dict[str, Any] = {
        "task": loaded.task,
        "epochs": best["epochs"],
        "best_epoch": best["best_epoch"],
        "seconds": round(seconds, 3),
        "seed": recipe.train.seed,
        "data": loaded.notes,
    }
    spread: dict[str, Any] = {}  # the folds' (members') mean ± std
    for split in ("val", "test"):
        if all(split in f for f in folds):
            table = pd.DataFrame([f[split] for f in folds])
            spread[split] = table.mean().to_dict()
            if len(folds) > 1:
                spread[f"{split}_std"] = table.std(ddof=1).to_dict()
    if ensemble is None:
        metrics.update(spread)
    else:  # the ensemble's own scores lead; its members' mean ± std stand beside them
        metrics.update({k: v for k, v in ensemble.items() if k != "test_report"})
        metrics["members"] = {"count": len(folds), **spread}
    if all("baselines" in f for f in folds):  # (a fold finished by an older version may lack them)
        metrics["baselines"] = mean_baselines([f["baselines"] for f in folds])
    report = (ensemble or best).get("test_report")
    if report is not None:
        metrics["test_report"] = report
    if len(folds) > 1:
        metrics["folds"] = [
            {k: v for k, v in f.items() if k not in ("model", "history", "prepared", "test_report", "outputs")}
            for f in folds
        ]
    return metrics


def _load_complete(run: RunDir, recipe: Recipe, model: nn.Module | None) -> FitResult:
    metrics = run.load_metrics()
    net = copy.deepcopy(model) if model is not None else None
    if net is None:
        pre = Preprocessor.load(run.preprocess)
        net = build_model(
            recipe.model,
            kind=recipe.data.kind,
            input_shape=tuple(pre.state["shape"]),
            n_outputs=pre.n_outputs,
            vocab_size=pre.vocab_size,
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
    members = metrics.get("members")
    if members:  # the headline is the ensemble's: say so, with its members' mean ± std beside it
        name = DEFAULT_FOR_TASK.get(metrics.get("task", ""), "loss")
        split = "test" if "test" in members else "val"
        mean, std = members.get(split, {}).get(name), members.get(f"{split}_std", {}).get(name)
        beside = f" (members' {split} {name} {mean:.4f} ± {std:.4f})" if mean is not None and std is not None else ""
        parts.append(f"ensemble of {members['count']} {members.get('kind', 'members')}{beside}")
    if metrics.get("tuning", {}).get("final") == "linear":  # tune delivered the linear model (tuning/final.py)
        parts.append("the linear model solved exactly (it matched the best network on validation, T44)")
    versus = compare_line(metrics)
    return ", ".join(parts) + (f"; {versus}" if versus else "")
