"""Work that one worker of a study does for all of them, its result shared through the storage.

The lr stage's prechecks (the LR range test and the batch-size finder, T31, T33) measure the
capacity winner, so they run when the capacity stage is decided, not when the study is created;
whichever worker gets there first measures, the others wait and read its result. A study
`NAME.WHAT` holds the claim: each worker that finds nothing measured and nobody measuring asks
for a trial in it, and the lowest-numbered running trial wins the race (the others withdraw).
The claim runs under `study.optimize`, so it carries the storage's heartbeats: a leader that dies
leaves a stale trial, which the next worker that looks fails, and then measures itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial, TrialState

from tunesmith.tuning.samplers import without_experimental_warnings

__all__ = ["done_once", "run_once"]

RESULT = "result"  # the claim trial's user attribute holding the JSON result
POLL = 1.0  # seconds between looks while another worker measures


def run_once(storage: BaseStorage, study_name: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`compute()`'s result, computed by exactly one live worker of the study (maybe this one)."""
    claims = optuna.create_study(storage=storage, study_name=study_name, load_if_exists=True)
    while True:
        with without_experimental_warnings():
            optuna.storages.fail_stale_trials(claims)  # a leader that died no longer holds the claim
        trials = claims.get_trials(deepcopy=False)
        result = _result(trials)
        if result is not None:
            return result
        if any(t.state == TrialState.RUNNING for t in trials):
            time.sleep(POLL)  # another worker is measuring
            continue
        claims.optimize(lambda trial: _lead(trial, compute), n_trials=1, gc_after_trial=False)


def done_once(storage: BaseStorage, study_name: str) -> dict[str, Any] | None:
    """The shared result if it has been computed, else None (never computes)."""
    try:
        claims = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return None
    return _result(claims.get_trials(deepcopy=False))


def _result(trials: list[FrozenTrial]) -> dict[str, Any] | None:
    """The result the completed claim stored, or None while there is none."""
    measured = next((t for t in trials if t.state == TrialState.COMPLETE), None)
    return None if measured is None else measured.user_attrs[RESULT]


def _lead(trial: optuna.Trial, compute: Callable[[], dict[str, Any]]) -> float:
    running = trial.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if any(t.number < trial.number for t in running):
        raise optuna.TrialPruned("another worker claimed it first")  # withdraw: run_once waits for the leader
    trial.set_user_attr(RESULT, compute())
    return 0.0
