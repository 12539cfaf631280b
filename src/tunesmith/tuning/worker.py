"""A worker: runs trials of a study until its budget is used, stage after stage (T52, T53).

`tunesmith tune` runs one in-process (or spawns `--workers N` processes, one torch thread each)
and `tunesmith worker` runs one on any machine that reaches the storage. Everything a worker
needs is in the study itself: the main study `NAME` holds the recipe, the stages and the
overfit check as a user attribute (`tunesmith`), each stage is a plain Optuna study `NAME.STAGE`,
and `NAME.lr.prechecks` holds the lr stage's prechecks, measured by the first worker to get there.
A worker is therefore stateless: it can join late, die, or be restarted at any time.

Rules that make N workers one search:
- the budget belongs to the stage study: a worker asks for a trial only while the stage has fewer
  original trials than its budget (a requeued copy replaces its original); a trial asked in a
  race beyond the budget is dropped before it trains (`Surplus`).
- a stage's winner is computed from its finished trials only, so every worker waits until the
  stage has no running trial before it starts the next stage; while it waits it fails stale trials
  (heartbeats) so a dead worker cannot block the study.
- trials that failed for infrastructure reasons (a crash, a second Ctrl-C) are requeued with the
  same parameters, up to `tune.max_retry` times; diverged trials are finished, never requeued.
- Ctrl-C (once) finishes the current trial, then stops; finished trials are kept.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import optuna
import yaml
from optuna.storages import BaseStorage, RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import BadInput
from tunesmith.recipe import Recipe, build_recipe, flatten
from tunesmith.runsetup import SetupCache
from tunesmith.tuneconfig import ParamSpec, TuneConfig
from tunesmith.tuning.evidence import LrEvidence
from tunesmith.tuning.objective import Objective, Surplus, budget_used
from tunesmith.tuning.once import done_once, run_once
from tunesmith.tuning.playbook import Criteria, Outcome, Stage, decide, incumbent
from tunesmith.tuning.prechecks import describe, lr_prechecks
from tunesmith.tuning.samplers import StagedSampler, create_pruner, without_experimental_warnings

__all__ = [
    "META",
    "Meta",
    "graceful_stop",
    "join",
    "load_meta",
    "prechecks_study",
    "run_worker",
    "stage_outcomes",
    "stage_study",
]

log = logging.getLogger("tunesmith.tuning")

META = "tunesmith"  # the main study's user attribute holding everything a worker needs
POLL = 1.0  # seconds between looks while other workers finish a stage


@dataclass
class Meta:
    recipe: Recipe  # the base recipe (data, model, train, tune), as the study was created with it
    space: dict[str, Any]  # the declared/default space, JSON (what a name clash is checked against)
    stages: list[Stage]
    metric: str
    judge: Criteria  # how stages pick winners (direction, T40's fit threshold, the standard error)
    prechecks: dict[str, Any]
    user_model: str | None = None  # the class of a live nn.Module the study tunes (only its process can run trials)

    @property
    def maximize(self) -> bool:
        return self.judge.maximize

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.to_yaml(),
            "space": self.space,
            "stages": [s.to_json() for s in self.stages],
            "metric": self.metric,
            "judge": asdict(self.judge),
            "prechecks": self.prechecks,
            "user_model": self.user_model,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Meta:
        return cls(
            recipe=build_recipe(yaml.safe_load(data["recipe"])),
            space=data["space"],
            stages=[Stage.from_json(s) for s in data["stages"]],
            metric=data["metric"],
            judge=Criteria(**data["judge"]),
            prechecks=data["prechecks"],
            user_model=data.get("user_model"),
        )


def load_meta(storage: BaseStorage, name: str) -> Meta | None:
    """The study's meta, or None when there is no study `name` in the storage."""
    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return None
    if META not in study.user_attrs:
        raise BadInput(
            f"The study {name!r} exists but was not created by tunesmith (it has no {META!r} attribute). "
            "Pass another --study name."
        )
    return Meta.from_json(study.user_attrs[META])


def stage_study(storage: BaseStorage, name: str, stage: Stage, meta: Meta) -> optuna.Study:
    cfg = meta.recipe.tune
    sampler = StagedSampler(
        exploit=cfg.sampler,
        seed=meta.recipe.train.seed * 1000 + zlib.crc32(stage.name.encode()) % 1000,  # stages draw differently
        space=stage.space,
        explore=stage.explore,
        grid_points=cfg.grid_points,
    )
    return optuna.create_study(
        storage=storage,
        study_name=f"{name}.{stage.name}",
        direction="maximize" if meta.maximize else "minimize",
        sampler=sampler,
        pruner=create_pruner(cfg.pruner, epochs=cfg.epochs),
        load_if_exists=True,
    )


def stage_outcomes(
    storage: BaseStorage,
    name: str,
    meta: Meta,
    *,
    upto: int | None = None,
    label: Callable[[str, FrozenTrial], int] | None = None,
) -> list[Outcome]:
    """Winners of the first `upto` stages (all by default), computed from their trials (deterministic).

    label: (stage, trial) -> the number the evidence shows (default: the stage study's own numbering).
    """
    outcomes: list[Outcome] = []
    evidence = cast(LrEvidence, done_once(storage, prechecks_study(name)) or {})  # the lr prechecks, once measured
    for stage in meta.stages[:upto]:
        study = stage_study(storage, name, stage, meta)
        space = stage_space(stage, outcomes, evidence)
        number = (lambda t: t.number) if label is None else functools.partial(label, stage.name)
        outcomes.append(decide(stage, space, study.get_trials(deepcopy=False), meta.judge, label=number))
    return outcomes


def stage_space(stage: Stage, done: list[Outcome], evidence: LrEvidence) -> dict[str, ParamSpec]:
    """The space a stage's trials sample, given the earlier stages' outcomes and the prechecks' `evidence`
    (e.g. the regularization stage's sizes shrunk below the capacity winner, T44; the lr stage narrowed
    by its prechecks, T31, T33)."""
    return stage.kind.search_space(stage.space, done, evidence)


def prechecks_study(name: str) -> str:
    """The study holding the lr stage's prechecks, measured once for all workers (tunesmith.tuning.once)."""
    return f"{name}.lr.prechecks"


def run_worker(
    storage: BaseStorage,
    name: str,
    *,
    deadline: float | None = None,
    stop: threading.Event | None = None,
    setups: SetupCache | None = None,
) -> bool:
    """Run trials until every stage of study `name` is done (True) or a stop was asked for (False).

    setups: the tuning process's cache, holding the live nn.Module of a study created with one (each
    trial trains a copy); a new cache by default.
    """
    meta = load_meta(storage, name)
    if meta is None:
        raise BadInput(f"There is no study {name!r} in this storage. Start one with `tunesmith tune --study {name}`.")
    setups = setups if setups is not None else SetupCache()
    if meta.user_model is not None and setups.user_model is None:
        raise BadInput(
            f"The study {name!r} tunes a Python model object ({meta.user_model}), which lives in the process that "
            "created the study: only that process can run its trials. To tune with several workers, name the "
            "model in the recipe instead (model.custom: package.module:factory)."
        )
    stop = stop or threading.Event()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # tunesmith logs one line per trial itself
    setup = setups.get(meta.recipe)  # read the data now: a missing file is bad input before any trial starts
    current = flatten(setup.recipe.model_dump(mode="json"))  # the recipe's values, resolved
    started, passed = time.time(), 0.0
    for k, stage in enumerate(meta.stages):
        passed += stage.share
        stage_deadline = None if deadline is None else started + (deadline - started) * passed
        done = stage_outcomes(storage, name, meta, upto=k)  # the earlier stages' winners, fixed from here on
        carried = {key: value for o in done for key, value in o.params.items()}
        evidence = _lr_prechecks(storage, name, meta, stage, carried, setups=setups)
        space = stage_space(stage, done, evidence)
        objective = Objective(
            base=meta.recipe,
            carried=carried,
            space=space,
            fixed=stage.fixed,
            stage=stage.name,
            budget=stage.trials,
            setups=setups,
            metric=meta.metric,
            maximize=meta.maximize,
            deadline=stage_deadline,
        )
        keys = ", ".join(space)
        log.info("stage %d/%d %s: %d trials over %s", k + 1, len(meta.stages), stage.name, stage.trials, keys)
        study = stage_study(storage, name, stage, meta)
        baseline = {**current, **carried, **stage.kind.baseline(space, evidence)}
        start = incumbent(space, baseline) if stage.kind.from_incumbent else {}
        if start and not study.get_trials(deepcopy=False):  # the stage's first trial: its baseline
            study.enqueue_trial(start, skip_if_exists=True)
        with without_experimental_warnings():
            retry = RetryHeartbeatStaleTrialCallback(max_retry=meta.recipe.tune.max_retry)
        scored = any(o.best is not None for o in done)  # an earlier stage has a result already
        if not _drive(study, objective, stop=stop, retry=retry, deadline=stage_deadline, scored=scored):
            return False
        log.info("  decision: %s", stage_outcomes(storage, name, meta, upto=k + 1)[-1].decision)
    return True


def _lr_prechecks(
    storage: BaseStorage,
    name: str,
    meta: Meta,
    stage: Stage,
    carried: dict[str, Any],
    *,
    setups: SetupCache,
) -> LrEvidence:
    """The lr stage's LR range test and batch-size finder on the capacity winner, measured by one worker
    for all ({} for other stages, or an lr stage that searches neither the LR nor the batch size)."""
    if not stage.kind.measures(stage.space):
        return {}
    recipe = meta.recipe.with_overrides({**carried, **stage.fixed})  # what the lr stage's trials train

    def measure() -> dict[str, Any]:
        log.info("  prechecks on the model this stage trains: LR range test (T31), batch-size finder (T33)")
        return dict(lr_prechecks(setups.get(recipe), space=stage.space))

    evidence = cast(LrEvidence, run_once(storage, prechecks_study(name), measure))  # JSON from the study
    for line in describe(evidence):
        log.info("  %s", line)
    return evidence


def _drive(
    study: optuna.Study,
    objective: Objective,
    *,
    stop: threading.Event,
    retry: RetryHeartbeatStaleTrialCallback,
    deadline: float | None,
    scored: bool,
) -> bool:
    """Run this stage's trials until its budget is used and no trial is running; False on a stop.

    At its deadline the stage closes, for every worker, once the study has any scored trial (so that a
    --timeout that the prechecks used up still leaves one result to refit).
    """
    while not stop.is_set():
        with without_experimental_warnings():
            optuna.storages.fail_stale_trials(study)  # heartbeats: a dead worker's trial is failed and requeued
        trials = study.get_trials(deepcopy=False)
        _requeue_interrupted(study, trials, retry)
        closed = bool(study.user_attrs.get("closed"))
        scored = scored or any(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
        if not closed and deadline is not None and time.time() > deadline and scored:
            study.set_user_attr("closed", True)  # time's up for this stage
            closed = True
        states = {t.state for t in trials}
        if not closed and (budget_used(trials) < objective.budget or TrialState.WAITING in states):
            _one_trial(study, objective)
            continue
        if TrialState.RUNNING not in states:
            return True
        time.sleep(POLL)  # another worker is finishing this stage's last trials
    return False


def _one_trial(study: optuna.Study, objective: Objective) -> None:
    try:
        study.optimize(objective, n_trials=1, gc_after_trial=False)
    except Surplus as exc:
        log.info("  %s; not run", exc)
        return
    except Exception:
        if objective.taken_away is None:
            raise
        # our trial was judged stale (no heartbeat for grace_period) and failed by another worker, which
        # requeued a copy: Optuna refuses our report/tell, our result is void, but this worker carries on
        log.warning("  trial %d was failed by a heartbeat check elsewhere; its copy runs again", objective.taken_away)
        return
    last = study.get_trials(deepcopy=False)[-1]
    log.info("  %s", _line(last))


def _requeue_interrupted(
    study: optuna.Study, trials: list[FrozenTrial], retry: RetryHeartbeatStaleTrialCallback
) -> None:
    """Requeue FAILed trials (crash, second Ctrl-C) that are neither diverged, surplus, nor requeued already."""
    requeued = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
    for t in trials:
        if t.state == TrialState.FAIL and t.number not in requeued and not _settled(t):
            retry(study, t)


def _settled(trial: FrozenTrial) -> bool:
    return "diverged" in trial.user_attrs or bool(trial.user_attrs.get("surplus"))


def _line(trial: FrozenTrial) -> str:
    params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    epochs, seconds = trial.user_attrs.get("epochs", 0), trial.user_attrs.get("seconds", 0.0)
    if "diverged" in trial.user_attrs:
        outcome = "diverged (infeasible)"
    elif trial.state == TrialState.PRUNED:
        outcome = f"pruned at epoch {epochs}"
    else:
        outcome = f"{trial.state.name.lower()} {trial.value:.4g}" if trial.value is not None else trial.state.name
    stage = trial.user_attrs.get("stage", "")
    cost = f"repeats trial {trial.user_attrs['repeat_of']}" if "repeat_of" in trial.user_attrs else f"{seconds:.1f} s"
    return f"{stage} trial {trial.number}: {params} -> {outcome} ({epochs} epochs, {cost})"


def join(url: str, name: str, *, deadline: float | None = None, workers: int = 1, wait: float = 0.0) -> bool:
    """Open the storage at `url` with the study's own heartbeat settings and work on study `name` until done.

    wait: seconds to wait for the study to appear (workers started before `tunesmith tune`, e.g. a job array).
    """
    from tunesmith.tuning.storage import open_storage

    _wait_for_journal(url, name, until=time.time() + wait)
    store = open_storage(url, run_dir=None, workers=workers, cfg=TuneConfig.model_validate({}))
    meta = _wait_for(store, name, until=time.time() + wait)
    if meta is not None and meta.recipe.tune != TuneConfig.model_validate({}):
        store = open_storage(url, run_dir=None, workers=workers, cfg=meta.recipe.tune)
    with graceful_stop() as stop:
        return run_worker(store, name, deadline=deadline, stop=stop)


def _wait_for_journal(url: str, name: str, *, until: float) -> None:
    """A journal file is created by `tune`: a worker never creates an empty one for a study that is not there."""
    if not url.endswith(".journal"):
        return
    path = Path(url)
    while not path.is_file() and time.time() < until:
        time.sleep(POLL)
    if not path.is_file():
        raise BadInput(
            f"--storage {path} does not exist, so study {name!r} is not there. Start the study with "
            f"`tunesmith tune --storage {path}`, or give the worker --wait SECONDS to wait for it."
        )


def _wait_for(store: BaseStorage, name: str, *, until: float) -> Meta | None:
    while True:
        try:
            meta = load_meta(store, name)
        except BadInput:  # created a moment ago: its meta is written right after the study itself
            if time.time() >= until:
                raise
            meta = None
        if meta is not None or time.time() >= until:
            return meta
        time.sleep(POLL)


@contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """First Ctrl-C: finish the current trial, then stop. Second: interrupt it (it is requeued on resume)."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        stop.set()
        log.warning("Ctrl-C: stopping after the current trial (press it again to abort that trial)")

    signal.signal(signal.SIGINT, handler)
    try:
        yield stop
    finally:
        signal.signal(signal.SIGINT, previous)
