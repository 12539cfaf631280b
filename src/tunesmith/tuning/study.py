"""`tunesmith tune`: the driver. Creates (or joins, or resumes) a study, prints the plan, runs the
workers, then refits the winner and evaluates it once on the test split (T52, T53).

    tune(data="digits", timeout=120, out="runs/digits-tune")          # the staged playbook
    tune("recipe.yaml", storage="postgresql://u:p@host/db", study="s1", workers=2)

Creating a study does, in order: load and split the data (the test rows are set aside, unread),
resolve the recipe, build and check the search space, run the overfit-one-batch check (T40,
training rows only), split space and budget into stages, and store all of it in the study
(worker.Meta) so that any worker can join. The LR range test and the batch-size finder run later,
at the lr stage's start, on the capacity winner (tunesmith.tuning.prechecks). A study that
already exists is joined: its recipe and space must match the given ones (a name clash is bad input), and its
budget holds (a second `tune` on a finished study runs no trial). `--resume` continues a run
directory after Ctrl-C or a crash; trials already finished are never repeated, and since each
trial's suggestion depends only on the study's history (samplers.StagedSampler) a graceful stop
and resume gives the same trials as an uninterrupted study.

--timeout bounds the whole tune, from the start to metrics.json (worker.TimeBudget): the search ends
when the refit, priced from the trials' measured seconds per epoch, still fits (SEARCH_SHARE of the
time until a trial has run), split across stages by `tune.shares`; without an exact --trials each
stage runs trials until its share is spent. At its stage's deadline a running trial ends after its
current epoch (once past the pruner's warm-up: its best epoch so far is its score) and the stage
closes, as soon as the study has one scored trial. The refit trains at most the epochs the time left
allows (FINISH of the time is kept for the test and the run directory).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.storages import BaseStorage
from torch import nn

from tunesmith.errors import BadInput, TunesmithError, must_be
from tunesmith.recipe import Recipe, load_recipe, make_recipe
from tunesmith.run import RunDir, default_run_dir, write_json
from tunesmith.runsetup import RunSetup, SetupCache
from tunesmith.train.metrics import pick_metric
from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.final import FRESH_SEEDS, choose_final
from tunesmith.tuning.objective import chance_loss
from tunesmith.tuning.outputs import Trials, collect, refit, write_outputs
from tunesmith.tuning.playbook import LONGER, Criteria, plan_stages
from tunesmith.tuning.prechecks import NOISE_SEEDS, linear_probe, measure_noise, overfit_one_batch
from tunesmith.tuning.samplers import create_pruner, create_sampler, rungs
from tunesmith.tuning.space import ambiguous_kind, check_space, default_space, finetune_space, space_to_json
from tunesmith.tuning.storage import JOURNAL, open_storage, redact
from tunesmith.tuning.worker import (
    META,
    SEARCH_SHARE,
    Meta,
    TimeBudget,
    epoch_seconds,
    graceful_stop,
    join,
    load_meta,
    run_worker,
)

__all__ = ["TuneResult", "create_study", "run_workers", "tune"]

log = logging.getLogger("tunesmith.tuning")

PER_SESSION = ("tune.trials", "tune.timeout", "name")  # may differ between the sessions of one study
STOPPED = 3  # exit code of a spawned worker stopped by Ctrl-C (its finished trials are kept)


@dataclass
class TuneResult:
    metrics: dict[str, Any]  # metrics.json: the final refit, with its test metrics ({} when stopped early)
    trials: pd.DataFrame  # trials.csv
    tuning: dict[str, Any]  # tuning.json
    best_recipe: Recipe | None
    run_dir: Path
    complete: bool  # False after a Ctrl-C: --resume continues
    model: nn.Module | None = None  # the final refit's model


def tune(
    recipe: Recipe | str | Path | None = None,
    *,
    out: str | Path | None = None,
    resume: bool = False,
    overrides: dict[str, Any] | None = None,
    storage: str | None = None,
    study: str | None = None,
    workers: int = 1,
    trials: int | None = None,
    timeout: float | None = None,
    strategy: str | None = None,
    progress: bool = True,
    model: nn.Module | None = None,
    **shortcuts: Any,
) -> TuneResult:
    """Tune a recipe (see tunesmith.recipe.SHORTCUTS for data=, epochs=, ...) and write a run directory.

    model: a user nn.Module to tune instead of a built-in family: its architecture (dropout layers
        included) is kept, every trial, precheck and refit fold trains a copy, and the trials run in
        this process (workers=1). A model named by import path (model.custom) can use workers.
    """
    started = time.time()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tunesmith logs the plan and one line per trial
    if trials is not None and trials < 1:
        raise BadInput(must_be("trials", "tune", "an int >= 1 (the study's total number of trials)", trials))
    if workers < 1:
        raise BadInput(must_be("workers", "tune", "an int >= 1 (local worker processes)", workers))
    if model is not None and workers > 1:
        raise BadInput(
            f"workers={workers} with a model object: worker processes cannot receive a live nn.Module, so its "
            "trials run in this process (workers=1). To tune with workers, name the model in the recipe "
            "instead (model.custom: package.module:factory)."
        )
    flags = {"tune.trials": trials, "tune.timeout": timeout, "tune.strategy": strategy}
    given = {**{k: v for k, v in flags.items() if v is not None}, **(overrides or {})}
    run = RunDir(Path(out) if out is not None else default_run_dir("tune"))
    if resume and out is None:
        raise BadInput("--resume needs --out DIR: the run directory of the tune to continue.")
    if resume and run.complete:
        log.info("%s is already complete; nothing to resume.", run.path)
        return _load_complete(run)
    if resume and storage is None and not (run.path / JOURNAL).is_file():
        raise BadInput(f"Nothing to resume in {run.path}: it holds no {JOURNAL}. Start the tune without --resume.")
    if not resume:
        run.check_new()
    fresh = recipe is not None or bool(given) or any(v is not None for v in shortcuts.values())
    candidate = make_recipe(recipe, overrides=given, **shortcuts) if fresh else None
    cfg = candidate.tune if candidate is not None else TuneConfig.model_validate({})
    name = study or run.path.name
    created = not run.path.exists()
    run.path.mkdir(parents=True, exist_ok=True)
    try:
        store = open_storage(storage, run_dir=run.path, workers=workers, cfg=cfg)
        setups = SetupCache(model, embeddings=run.embeddings)  # every trial, precheck and refit fold trains a copy of
        # `model`; a backbone's probe trials share one cache of its embeddings
        meta = _join_or_create(store, name, candidate, resume=resume, setups=setups)
    except BadInput:
        if created:
            shutil.rmtree(run.path, ignore_errors=True)
        raise
    timeout = timeout if timeout is not None else meta.recipe.tune.timeout
    session = candidate.tune if candidate is not None else meta.recipe.tune  # --trials and --timeout are per session
    folds = meta.recipe.tune.refit_folds
    budget = (
        None
        if timeout is None
        else TimeBudget(
            start=started,
            end=started + timeout,
            refit_folds=folds,
            refit_epochs=meta.recipe.tune.epochs,
            until_spent=session.trials is None,
            check_runs=FRESH_SEEDS * meta.judge.repeats if meta.recipe.tune.final == "best" else 0,
        )
    )
    where = redact(storage) if storage else str(run.path / JOURNAL)
    for line in plan_lines(meta, storage=where, study=name, workers=workers, budget=budget):
        log.info(line)
    with graceful_stop() as stop:
        url = storage or str(run.path / JOURNAL)
        done = run_workers(store, name, url=url, workers=workers, budget=budget, stop=stop, setups=setups)
    trials_ = collect(store, name, meta)
    if budget is not None and done:
        trials_.epoch_cap = _refit_epoch_cap(budget, trials_)
    network, best_row = trials_.network_recipe(), trials_.best()
    choosing = time.time()
    if done and network is not None and best_row is not None:
        trials_.final = choose_final(network, best_row[2], meta, setups)
    final_seconds = time.time() - choosing
    tuning = write_outputs(run.path, trials_)
    table = pd.read_csv(run.path / "trials.csv")
    if not done:
        return TuneResult({}, table, tuning, trials_.best_recipe(), run.path, complete=False)
    best = trials_.best_recipe()
    if best is None:
        raise BadInput(
            f"No trial of study {name!r} finished feasibly (all diverged, failed or were pruned): see "
            f"{run.path / 'trials.csv'}. Narrow the learning-rate range or check the data."
        )
    log.info("refit: the best recipe, %d-fold cross-validation on train+val, then the test split", folds)
    log.info("  %d epochs: %s", best.train.epochs, tuning["refit"]["reason"])
    refit_started = time.time()
    result = refit(best, run.path, folds=folds, progress=progress, setups=setups)
    spent = _time_spent(
        tuning, final=final_seconds, refit=time.time() - refit_started, total=time.time() - started, timeout=timeout
    )
    summary = {
        "study": name,
        "trials": len(trials_.rows),
        "best_trial": best_row[0] if best_row else None,
        "final": tuning["final"]["chosen"] if tuning.get("final") else "network",  # final.choose_final
        "seconds": spent,
    }
    metrics = {**result.metrics, "seconds": round(time.time() - started, 3), "tuning": summary}
    write_json(run.metrics, metrics)  # the tune run directory is complete
    from tunesmith.report import write_report  # lazy: matplotlib and jinja2 load only here

    write_report(run.path)  # tuning sections (tuning.json, trials.csv) and the refit's
    return TuneResult(metrics, table, tuning, best, run.path, complete=True, model=result.model)


def _refit_epoch_cap(budget: TimeBudget, trials: Trials) -> int | None:
    """The refit's epochs that fit in the time left, at the winner's measured seconds per epoch (the trials'
    median when the winner repeated an earlier point); never fewer than the epoch at which the winner peaked
    (a shorter refit would deliver a worse model than the search found: the timeout is overrun instead)."""
    best = trials.best()
    if best is None:
        return None
    cost = epoch_seconds([best[2]]) or epoch_seconds([t for _, _, t in trials.rows]) or 0.0
    allowed, peak = budget.epochs_left(cost), int(best[2].user_attrs.get("best_epoch", 1))
    if allowed < peak:
        log.warning(
            "the time left allows %d refit epochs; the refit trains %d, where the winner peaked, and may overrun "
            "--timeout",
            allowed,
            peak,
        )
    return max(allowed, peak)


def _time_spent(
    tuning: dict[str, Any], *, final: float, refit: float, total: float, timeout: float | None
) -> dict[str, Any]:
    """Where the time went, per stage, for metrics.json and the log (with the timeout it was planned for)."""
    stages = {s["name"]: s["seconds"] for s in tuning["stages"]}
    spent = {
        "timeout": timeout,
        "stages": stages,
        "final": round(final, 3),
        "refit": round(refit, 3),
        "total": round(total, 3),
    }
    parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in stages.items())
    of = f" of {timeout:.0f}" if timeout is not None else ""
    log.info("time spent: %s, final choice %.0f s, refit %.0f s; %.0f s%s in all", parts, final, refit, total, of)
    return spent


def _join_or_create(
    store: BaseStorage, name: str, candidate: Recipe | None, *, resume: bool, setups: SetupCache
) -> Meta:
    meta = load_meta(store, name)
    if meta is not None:
        if candidate is not None:
            _check_same(meta, candidate, name)
        given = _model_class(setups.user_model)
        if given != meta.user_model:
            made = f"a model object ({meta.user_model})" if meta.user_model else "the recipe's model"
            raise BadInput(
                f"The study {name!r} was created for {made}, and this call passes "
                f"{'a ' + given if given else 'no model object'}. Pass the same model= as when it was created."
            )
        return meta
    if resume:
        raise BadInput(f"There is no study {name!r} to resume in this storage. Pass the --study it was started with.")
    if candidate is None:
        raise BadInput("Nothing to tune: pass --data (or a recipe) to say which data to tune on.")
    return create_study(store, name, setups.get(candidate))


def _model_class(model: nn.Module | None) -> str | None:
    """What a study records of a user's live module: its class (a worker must hold the same one)."""
    return type(model).__qualname__ if model is not None else None


def create_study(store: BaseStorage, name: str, setup: RunSetup) -> Meta:
    """A new study `name` for `setup`'s recipe (and user model): its meta computed and stored for every worker."""
    meta = create_meta(setup)
    main = optuna.create_study(storage=store, study_name=name)  # holds no trials: the stages are NAME.STAGE
    main.set_user_attr(META, meta.to_json())
    return meta


def create_meta(setup: RunSetup) -> Meta:
    """Everything a worker needs, computed once: space, metric, prechecks and the stages (see module doc)."""
    recipe, prep, user = setup.given, setup.prep, setup.user_model is not None  # x_test is transformed, never read
    cfg = recipe.tune
    family = None if user else ambiguous_kind(recipe, prep.facts)  # T10 evidence; a user's module settles it
    space = cfg.space
    if space is None and recipe.model.backbone is not None:
        space = finetune_space(prep.facts)
    elif space is None:
        space = default_space(setup.recipe, prep.facts, ambiguous=family is not None, user_model=user)
    check_space(space)
    create_sampler(cfg.sampler, seed=0, space=space)  # an unknown sampler/pruner name fails before any work
    create_pruner(cfg.pruner, epochs=cfg.epochs)
    metric, maximize = pick_metric(cfg.metric, prep.facts.task)
    notes = {"family": family} if family is not None and "model.family" in space else {}
    stages = plan_stages(space, cfg, trials=cfg.planned_trials, evidence=notes)
    evidence: dict[str, Any] = {}
    if cfg.strategy == "staged":  # the LR range test and batch-size finder wait for the capacity winner
        log.info("precheck: overfit one batch (T40)")
        evidence["overfit_batch"] = overfit_one_batch(setup, below=cfg.fit_loss * chance_loss(prep))
    if recipe.model.backbone is not None:  # T62: the bar fine-tuning must clear, before any fine-tuning
        log.info("precheck: the linear probe (T62)")
        evidence["probe"] = linear_probe(setup, metric=metric, maximize=maximize)
        log.info("  %s", evidence["probe"]["why"])
    if cfg.folds == "auto":
        log.info(
            "precheck: is one validation split enough to rank trials? (the starting recipe, %d seeds)", NOISE_SEEDS
        )
        evidence["noise"] = measure_noise(setup, metric=metric, maximize=maximize, epochs=cfg.epochs)
        log.info("  %s", evidence["noise"]["why"])
    repeats = evidence["noise"]["repeats"] if cfg.folds == "auto" else cfg.folds
    judge = Criteria(
        maximize=maximize,
        fit_below=cfg.fit_loss * chance_loss(prep),
        epochs=cfg.epochs,
        val_rows=len(prep.x_val),
        metric=metric,
        repeats=repeats,
    )
    user_class = _model_class(setup.user_model)
    return Meta(recipe, space_to_json(space), stages, metric, judge, evidence, user_model=user_class)


def _check_same(meta: Meta, candidate: Recipe, name: str) -> None:
    """A study name clash: the study exists but was created for another space or recipe."""
    mine_space, theirs_space = (space_to_json(r.tune.space or {}) for r in (candidate, meta.recipe))
    if mine_space != theirs_space:
        keys = set(mine_space) | set(theirs_space)
        differ = sorted(k for k in keys if mine_space.get(k) != theirs_space.get(k)) or ["the default space"]
        raise BadInput(
            f"The study {name!r} already exists with a different search space (they differ on "
            f"{', '.join(differ)}). Pass another --study name to start a new study, or the recipe "
            "the study was created with to join it."
        )
    mine, theirs = _flat(candidate.model_dump(mode="json")), _flat(meta.recipe.model_dump(mode="json"))
    differ = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k) and k not in PER_SESSION)
    if differ:
        raise BadInput(
            f"The study {name!r} already exists for a different recipe (it differs on {', '.join(differ[:6])}). "
            "Pass another --study name to start a new study, or the same recipe and flags to join or resume it."
        )
    if candidate.tune.trials is not None and candidate.tune.trials != meta.recipe.tune.planned_trials:
        log.warning(
            "the study's stages are planned for %d trials (when it was created)", meta.recipe.tune.planned_trials
        )


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key != "space":
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def plan_lines(meta: Meta, *, storage: str, study: str, workers: int, budget: TimeBudget | None) -> list[str]:
    """The plan printed before any trial: stages, trials (or time), samplers, pruning rungs and epochs."""
    cfg = meta.recipe.tune
    direction = "maximize" if meta.maximize else "minimize"
    until_spent = budget is not None and budget.until_spent
    total = "trials as the time allows" if until_spent else f"{sum(s.trials for s in meta.stages)} trials"
    lines = [
        f"study {study!r} in {storage}, {workers} worker{'s' if workers > 1 else ''}",
        f"plan ({cfg.strategy}, T53): {total} of up to {cfg.epochs} epochs, each scored by its best "
        f"validation {meta.metric} epoch ({direction})",
    ]
    for k, s in enumerate(meta.stages, 1):
        how = f"{s.explore} quasi-random (qmc) then {cfg.sampler}" if s.explore else cfg.sampler
        note, notes = s.kind.describe(s)
        keys = ", ".join(_range(key, spec) for key, spec in s.space.items())
        count = f"{s.share:.0%} of the search time" if until_spent else f"{s.trials} trials"
        lines.append(f"  {k}. {s.name}: {count}, {how}{note}: {keys}")
        lines += [f"     {line}" for line in notes]
    step = len(meta.stages) + 1
    if cfg.final == "best":
        lines.append(
            f"  {step}. final choice (T44): the best network, retrained on {FRESH_SEEDS} fresh seeds, against the "
            "linear model solved exactly; within one standard error the linear model wins"
        )
        step += 1
    lines.append(
        f"  {step}. refit the chosen recipe: {cfg.refit_folds}-fold CV on train+val, their ensemble the final model "
        f"({LONGER}x the epochs if it was still improving at its last)"
    )
    lines.append(f"  {step + 1}. test: one evaluation of the final model on the held-out test split")
    lines.append(f"  pruning ({cfg.pruner}): {rungs(cfg.pruner, epochs=cfg.epochs)}")
    if meta.judge.repeats > 1:
        lines.append(
            f"  scoring: each trial by {meta.judge.repeats}-fold cross-validation over train+val (mean ± standard "
            "error; the first fold reports to the pruner), each stage's choice within one standard error"
        )
    if budget is not None:
        timeout = budget.end - budget.start
        lines.append(
            f"  time: {timeout:.0f} s to metrics.json; the search ends when the refit ({budget.refit_folds} folds x "
            f"{budget.refit_epochs} epochs{_checks(budget)}, priced from the trials' measured seconds per epoch) still "
            f"fits ({SEARCH_SHARE:.0%}, {timeout * SEARCH_SHARE:.0f} s, until a trial has run); the refit trains the "
            "epochs the time left allows"
        )
    return lines


def _checks(budget: TimeBudget) -> str:
    return f", and the final choice's {budget.check_runs} trainings" if budget.check_runs else ""


def _range(key: str, spec: Any) -> str:
    if spec.type == "categorical":
        return f"{key} in {spec.choices}"
    scale = " log" if spec.log else ""
    return f"{key} in [{spec.low:.3g}, {spec.high:.3g}]{scale}"


def run_workers(
    store: BaseStorage,
    name: str,
    *,
    url: str,
    workers: int,
    budget: TimeBudget | None,
    stop: threading.Event,
    setups: SetupCache | None = None,
) -> bool:
    """One worker in this process (on `store`, with `setups`, which hold the user's model), or `workers`
    spawned processes (on `url`), one thread each."""
    if workers == 1:
        return run_worker(store, name, budget=budget, stop=stop, setups=setups)
    level = log.getEffectiveLevel()
    context = multiprocessing.get_context("spawn")  # fork would copy torch's thread pools and locks
    procs = [context.Process(target=_child, args=(url, name, budget, workers, level)) for _ in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    codes = [p.exitcode for p in procs]
    if 2 in codes:
        raise BadInput("A worker process stopped on bad input; its message is above.")
    if any(c not in (0, STOPPED) for c in codes):
        raise TunesmithError(f"Worker processes failed (exit codes {codes}); their log is above.")
    return all(c == 0 for c in codes) and not stop.is_set()


def _child(url: str, name: str, budget: TimeBudget | None, workers: int, level: int) -> None:
    """A spawned local worker: one torch thread (N processes beat one process with N threads on small models)."""
    import torch

    torch.set_num_threads(1)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    try:
        code = 0 if join(url, name, budget=budget, workers=workers) else STOPPED
    except KeyboardInterrupt:  # a second Ctrl-C: the trial is failed and requeued on resume
        code = STOPPED
    except BadInput as exc:
        log.error("error: %s", exc)
        code = 2
    sys.exit(code)


def _load_complete(run: RunDir) -> TuneResult:
    tuning = json.loads((run.path / "tuning.json").read_text())
    best = run.path / "best_recipe.yaml"
    return TuneResult(
        run.load_metrics(),
        pd.read_csv(run.path / "trials.csv"),
        tuning,
        load_recipe(best) if best.is_file() else None,
        run.path,
        complete=True,
    )
