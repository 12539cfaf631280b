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

Time (`TimeBudget`, from --timeout): each stage gets its share of the search time and closes at its
deadline once it has a scored trial. The search ends early enough for the refit that follows: once
MEASURED trials have trained, the refit's cost is priced from their median seconds per epoch plus a
fold's fixed cost (until then the search has SEARCH_SHARE of the time). Without an exact --trials, a
stage runs trials until its
share is spent, so cheap trials mean many more of them; it ends early only when the sampler keeps
drawing points it has tried (the space is exhausted).
"""

from __future__ import annotations

import functools
import logging
import math
import signal
import statistics
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
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
from tunesmith.tuning.playbook import (
    WIDEN_AT,
    Criteria,
    Outcome,
    Stage,
    StageKind,
    at_edges,
    decide,
    incumbent,
    rank_key,
    widen,
    widened_space,
)
from tunesmith.tuning.prechecks import describe, lr_prechecks
from tunesmith.tuning.samplers import AmongPeers, StagedSampler, create_pruner, without_experimental_warnings

__all__ = [
    "META",
    "REFIT_SAFETY",
    "SEARCH_SHARE",
    "Meta",
    "TimeBudget",
    "epoch_seconds",
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
SEARCH_SHARE = 0.6  # of --timeout, for the search until a trial's cost is measured; the refit and test get the rest
REFIT_SAFETY = 1.2  # the refit's priced seconds are padded by this factor
FOLD_SECONDS = 1.0  # a refit fold's cost besides its epochs: data setup, baselines, evaluation, files (~0.6 s here)
FINISH = 0.02  # of --timeout (and at least a second): kept after the refit for the test and the run directory
EXHAUSTED = 5  # a time-bound stage ends after this many trials in a row that repeat a tried point
MEASURED = 3  # trials that must have trained before their cost prices the refit (a first trial pays warm-ups)
EDGE_TRIALS = 3  # feasible trials a stage needs before its best point's edges are judged
WIDENED = "widened"  # a stage study's user attribute: the ranges it widened at an edge ({} once checked, none)


@dataclass(frozen=True)
class TimeBudget:
    """--timeout as a plan: when the search must end so that the refit priced from the trials still fits.

    end: wall-clock time (time.time()) by which the search, the refit and the test are done.
    refit_folds, refit_epochs: the refit that follows the search (none for a `tunesmith worker`), priced once an
        epoch's cost is measured.
    check_runs: trainings of the best network before the refit (final.choose_final's fresh seeds), priced as folds.
    until_spent: stages run trials until their share of the time is spent (no exact --trials).
    """

    start: float
    end: float
    refit_folds: int = 0
    refit_epochs: int = 0
    until_spent: bool = False
    check_runs: int = 0

    def finish(self) -> float:
        """Seconds kept after the refit: the test evaluation and the run directory."""
        return max(1.0, FINISH * (self.end - self.start)) if self.refit_folds else 0.0

    def refit_seconds(self, epoch_seconds: float, epochs: int) -> float:
        """The refit's price: every fold's epochs at the measured cost, plus its fixed cost, padded (the final
        choice's trainings priced alike)."""
        return (self.refit_folds + self.check_runs) * (epochs * epoch_seconds + FOLD_SECONDS) * REFIT_SAFETY

    def epochs_left(self, epoch_seconds: float) -> int:
        """The refit's epochs that the time left allows (at least 1)."""
        left = self.end - time.time() - self.finish() - self.refit_seconds(0.0, 0)
        runs = self.refit_folds + self.check_runs
        return max(1, int(left / max(runs * epoch_seconds * REFIT_SAFETY, 1e-9)))

    def search_end(self, epoch_seconds: float | None) -> float:
        """The search's deadline: SEARCH_SHARE of the time until an epoch's cost is known, then all but the refit's
        priced seconds (never before the start: a refit costlier than the budget leaves one trial per stage).
        Without a refit to follow (a `tunesmith worker --timeout`), the search has all of it."""
        if not self.refit_folds:
            return self.end
        if epoch_seconds is None:
            return self.start + (self.end - self.start) * SEARCH_SHARE
        return max(self.start, self.end - self.finish() - self.refit_seconds(epoch_seconds, self.refit_epochs))


def epoch_seconds(trials: list[FrozenTrial], *, least: int = 1) -> float | None:
    """The median seconds per epoch of the trials that trained (repeats train nothing); None before `least` did."""
    costs = [
        t.user_attrs["seconds"] / (t.user_attrs["epochs"] * t.user_attrs.get("folds", 1))
        for t in trials
        if t.user_attrs.get("epochs") and t.user_attrs.get("seconds") and "repeat_of" not in t.user_attrs
    ]
    return float(statistics.median(costs)) if len(costs) >= max(1, least) else None


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
        pruner=AmongPeers(create_pruner(cfg.pruner, epochs=stage_epochs(stage, cfg))),  # a family vs its own kind
        load_if_exists=True,
    )


def stage_epochs(stage: Stage, cfg: TuneConfig) -> int:
    """The epochs of one trial of `stage` (its pruner's rungs follow them)."""
    return int(stage.fixed.get("train.epochs", cfg.epochs))


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
        record = study.user_attrs.get(WIDENED) or {}
        space = stage_space(stage, outcomes, evidence, record)
        number = (lambda t: t.number) if label is None else functools.partial(label, stage.name)
        outcome = decide(stage, space, study.get_trials(deepcopy=False), meta.judge, label=number)
        if record:  # the edge check, acted on: what was widened, and the winner found in the wider range
            outcome.evidence["widened"] = record
            ranges = "; ".join(
                f"{key} widened at its {r['edge']} edge to {_span(r['to'])}" for key, r in record.items()
            )
            outcome.decision += f"; {ranges} (after trial {number(_widened_after(study, record))})"
        outcomes.append(outcome)
    return outcomes


def stage_space(
    stage: Stage, done: list[Outcome], evidence: LrEvidence, widened: dict[str, Any] | None = None
) -> dict[str, ParamSpec]:
    """The space a stage's trials sample, given the earlier stages' outcomes and the prechecks' `evidence`
    (e.g. the regularization stage's sizes shrunk below the capacity winner, T44; the lr stage narrowed
    by its prechecks, T31, T33), and the ranges it widened at an edge (`widened`, the stage study's record)."""
    return widened_space(stage.kind.search_space(stage.space, done, evidence), widened or {})


def _span(spec: dict[str, Any]) -> str:
    if spec["type"] == "categorical":
        return str(spec["choices"])
    return f"[{spec['low']:.3g}, {spec['high']:.3g}]"


def _widened_after(study: optuna.Study, record: dict[str, Any]) -> FrozenTrial:
    """The last trial finished when the stage widened its ranges."""
    after = next(iter(record.values()))["after"]
    return next(t for t in study.get_trials(deepcopy=False) if t.number == after)


def prechecks_study(name: str) -> str:
    """The study holding the lr stage's prechecks, measured once for all workers (tunesmith.tuning.once)."""
    return f"{name}.lr.prechecks"


def run_worker(
    storage: BaseStorage,
    name: str,
    *,
    budget: TimeBudget | None = None,
    stop: threading.Event | None = None,
    setups: SetupCache | None = None,
) -> bool:
    """Run trials until every stage of study `name` is done (True) or a stop was asked for (False).

    budget: --timeout (stage deadlines, and whether stages run until their time is spent); None: trials only.
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
    until_spent = budget is not None and budget.until_spent
    for k, stage in enumerate(meta.stages):
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
            budget=None if until_spent else stage.trials,
            setups=setups,
            metric=meta.metric,
            maximize=meta.maximize,
            repeats=meta.judge.repeats,
        )
        keys = ", ".join(space)
        count = "trials until its share of the time is spent" if until_spent else f"{stage.trials} trials"
        log.info("stage %d/%d %s: %s over %s", k + 1, len(meta.stages), stage.name, count, keys)
        earlier = [t for s in meta.stages[:k] for t in stage_study(storage, name, s, meta).get_trials(deepcopy=False)]
        clock = StageClock.of(budget, meta.stages[k:], earlier)
        study = stage_study(storage, name, stage, meta)
        edges = _edge_check(study, objective, meta, clock, stage.kind) if meta.recipe.tune.sampler != "grid" else None
        baseline = {**current, **carried, **stage.kind.baseline(space, evidence)}
        start = incumbent(space, baseline) if stage.kind.from_incumbent else {}
        if start and not study.get_trials(deepcopy=False):  # the stage's first trial: its baseline, then its seeds
            for point in [start, *stage.kind.seeded(space, start)]:
                study.enqueue_trial(point, skip_if_exists=True)
        with without_experimental_warnings():
            retry = RetryHeartbeatStaleTrialCallback(max_retry=meta.recipe.tune.max_retry)
        scored = any(o.best is not None for o in done)  # an earlier stage has a result already
        if not _drive(study, objective, stop=stop, retry=retry, deadline=clock.deadline, scored=scored, edges=edges):
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


@dataclass
class StageClock:
    """A stage's time: its share of the search time left when it started, where the search ends before the
    refit priced from every trial's measured seconds per epoch (`TimeBudget.search_end`)."""

    budget: TimeBudget | None
    share: float  # of the search time left at the stage's start
    earlier: list[FrozenTrial]  # the earlier stages' trials (their cost prices the refit too)
    start: float = field(default_factory=time.time)

    @classmethod
    def of(cls, budget: TimeBudget | None, stages: list[Stage], earlier: list[FrozenTrial]) -> StageClock:
        """The clock of stages[0], the first of the stages still to run."""
        return cls(budget, stages[0].share / sum(s.share for s in stages), earlier)

    def deadline(self, own: list[FrozenTrial]) -> float | None:
        """The stage's deadline given its own trials so far (None without --timeout)."""
        if self.budget is None:
            return None
        end = self.budget.search_end(epoch_seconds([*self.earlier, *own], least=MEASURED))
        return self.start + max(0.0, end - self.start) * self.share


def _edge_check(
    study: optuna.Study, objective: Objective, meta: Meta, clock: StageClock, kind: StageKind
) -> Callable[[list[FrozenTrial]], None]:
    """Once the stage has used WIDEN_AT of its budget (trials, or without a count its time), a best point at the
    edge of a numeric range widens that range (playbook.widen), once: the record goes to the stage study so that
    every worker, and the stage's outcome, use the same space; the remaining trials sample it."""

    def check(trials: list[FrozenTrial]) -> None:
        if WIDENED in study.user_attrs:
            objective.space = widened_space(objective.space, study.user_attrs[WIDENED])
            return
        finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
        if objective.budget is not None:
            due = len(finished) >= math.ceil(WIDEN_AT * objective.budget) and len(finished) < objective.budget
        else:
            end = clock.deadline(trials)
            due = end is not None and time.time() >= clock.start + WIDEN_AT * (end - clock.start)
        feasible = [t for t in finished if t.state == TrialState.COMPLETE and "diverged" not in t.user_attrs]
        if not due or len(feasible) < EDGE_TRIALS:  # an edge is judged among several points, not one
            return
        best = min(feasible, key=lambda t: rank_key(t, maximize=meta.maximize))
        at_edge = [h for h in at_edges(objective.space, best) if (h["key"], h["edge"]) not in kind.kept_edges]
        hits = widen(objective.space, at_edge)
        record = {key: {**r, "after": finished[-1].number} for key, r in hits.items()}
        study.set_user_attr(WIDENED, record)
        for key, r in record.items():
            log.info(
                "  %s is at the %s edge: widened to %s for the stage's remaining trials", key, r["edge"], _span(r["to"])
            )
        objective.space = widened_space(objective.space, record)

    return check


def _drive(
    study: optuna.Study,
    objective: Objective,
    *,
    stop: threading.Event,
    retry: RetryHeartbeatStaleTrialCallback,
    deadline: Callable[[list[FrozenTrial]], float | None],
    scored: bool,
    edges: Callable[[list[FrozenTrial]], None] | None = None,
) -> bool:
    """Run this stage's trials until its budget is used (a count, or without one its time) and no trial is
    running; False on a stop.

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
        objective.deadline = deadline(trials)
        if not closed and objective.deadline is not None and time.time() > objective.deadline and scored:
            study.set_user_attr("closed", True)  # time's up for this stage
            closed = True
        if edges is not None and not closed:
            edges(trials)
        states = {t.state for t in trials}
        wanted = not _exhausted(trials) if objective.budget is None else budget_used(trials) < objective.budget
        if not closed and (wanted or TrialState.WAITING in states):
            _one_trial(study, objective)
            continue
        if TrialState.RUNNING not in states:
            return True
        time.sleep(POLL)  # another worker is finishing this stage's last trials
    return False


def _exhausted(trials: list[FrozenTrial]) -> bool:
    """The sampler keeps drawing points this stage has trained already: a time-bound stage has nothing left to try."""
    finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
    return len(finished) >= EXHAUSTED and all("repeat_of" in t.user_attrs for t in finished[-EXHAUSTED:])


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


def join(url: str, name: str, *, budget: TimeBudget | None = None, workers: int = 1, wait: float = 0.0) -> bool:
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
        return run_worker(store, name, budget=budget, stop=stop)


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
