"""tunesmith.tuning.once: the lr stage's prechecks are measured by one worker for all of them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.once import done_once, run_once
from tunesmith.tuning.storage import open_storage

HEARTBEATS = TuneConfig(heartbeat_interval=1, grace_period=2)


def test_racing_workers_measure_once_and_share_the_result(tmp_path: Path) -> None:
    journal = str(tmp_path / "study.journal")
    calls: list[str] = []
    results: dict[str, dict[str, int]] = {}

    def worker(me: str) -> None:
        store = open_storage(journal, run_dir=None, workers=4, cfg=HEARTBEATS)  # one storage per worker

        def measure() -> dict[str, int]:
            calls.append(me)
            time.sleep(0.5)  # long enough for every other worker to arrive while this one measures
            return {"batch_size": 64}

        results[me] = run_once(store, "s.lr.prechecks", measure)

    threads = [threading.Thread(target=worker, args=(f"w{k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1  # one leader measured; the others waited and read its result
    assert results == {f"w{k}": {"batch_size": 64} for k in range(4)}
    store = open_storage(journal, run_dir=None, workers=1, cfg=HEARTBEATS)
    assert done_once(store, "s.lr.prechecks") == {"batch_size": 64}
    assert done_once(store, "s.other") is None  # never measured: nothing is computed to answer


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # the dead leader's claim is made by hand (ask)
def test_a_dead_leaders_claim_goes_stale_and_another_worker_measures(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path / "study.journal"), run_dir=None, workers=2, cfg=HEARTBEATS)
    claims = optuna.create_study(storage=store, study_name="s.lr.prechecks")
    dead = claims.ask()  # a leader that claimed, then was SIGKILLed: RUNNING, no heartbeat ever again
    started = time.time()
    assert run_once(store, "s.lr.prechecks", lambda: {"lr": 0.01}) == {"lr": 0.01}
    assert time.time() - started >= HEARTBEATS.grace_period - 0.5  # it waited for the claim to go stale
    states = {t.number: t.state for t in claims.get_trials(deepcopy=False)}
    assert states[dead.number] == TrialState.FAIL and TrialState.COMPLETE in states.values()
