"""`tunesmith tune` under faults: bad input exits 2 with one paragraph and leaves nothing behind; a worker
killed with SIGKILL mid-trial loses no finished trial and leaves none RUNNING after --resume (T52)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from tests.conftest import FAST_TUNE_CLI, run_cli
from tests.pg import free_port
from tunesmith.cli import app
from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.storage import JOURNAL, open_storage


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--trials", "0"], "'trials' parameter of tune must be an int >= 1"),
        (["--set", "tune.space={}"], "search space (tune.space) is empty"),
        (["--set", "tune.space={model.widht: {type: int, low: 8, high: 64}}"], "Did you mean 'model.width'?"),
        (["--workers", "2", "--storage", "sqlite:///x.db"], "not safe for 2 parallel workers"),
        (["--storage", f"postgresql://u:pw@127.0.0.1:{free_port()}/db"], "Cannot open the study storage"),
        (["--resume"], "Nothing to resume"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("tune", "--data", "iris", "--out", str(tmp_path / "run"), "--quiet", *args)
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_unreachable_storage_retries_then_names_the_fix(tmp_path: Path) -> None:
    url = f"postgresql://u:pw@127.0.0.1:{free_port()}/db"  # nothing listens there
    result = invoke("tune", "--data", "iris", "--storage", url, "--out", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 2
    assert "postgresql://u:***@127.0.0.1" in result.output and "after 4 attempts" in result.output
    assert "server is running" in result.output and ":pw@" not in result.output


def test_worker_without_a_study_exits_2(tmp_path: Path) -> None:
    result = invoke("worker", "--storage", str(tmp_path / "none.journal"), "--study", "s1", "--quiet")
    assert result.exit_code == 2 and "study 's1' is not there" in result.output
    assert not (tmp_path / "none.journal").exists()  # a worker never creates an empty journal


def _trials(journal: Path, study: str) -> list[optuna.trial.FrozenTrial]:
    if not journal.is_file():  # opening the storage would create the file (and the run directory)
        raise FileNotFoundError(journal)
    store = open_storage(str(journal), run_dir=None, workers=1, cfg=TuneConfig.model_validate({}))
    return optuna.load_study(study_name=study, storage=store).get_trials()


@pytest.mark.slow
def test_sigkill_mid_trial_then_resume_loses_nothing(tmp_path: Path) -> None:
    """SIGKILL leaves a RUNNING trial; --resume fails it (stale heartbeat), requeues a copy with the same
    parameters, keeps every finished trial, and completes the budget with no trial left RUNNING."""
    out = tmp_path / "run"
    args = ["tune", "--data", "iris", "--strategy", "flat", "--trials", "4", "--out", str(out)]
    sets = [
        "--set",
        "tune.epochs=20",
        "--set",
        "tune.heartbeat_interval=1",
        "--set",
        "tune.grace_period=2",
        *FAST_TUNE_CLI,
    ]
    proc = subprocess.Popen([sys.executable, "-m", "tunesmith", *args, *sets], stderr=subprocess.DEVNULL)
    journal, deadline = out / JOURNAL, time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
        try:
            before = _trials(journal, "run.flat")
        except (KeyError, FileNotFoundError):
            continue
        if sum(t.state.is_finished() for t in before) >= 2 and any(
            t.state == TrialState.RUNNING and t.intermediate_values for t in before
        ):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _trials(journal, "run.flat")
    finished = {t.number: t.value for t in before if t.state.is_finished()}
    stuck = [t.number for t in before if t.state == TrialState.RUNNING]
    assert len(finished) >= 2 and len(stuck) == 1
    resumed = run_cli("tune", "--out", str(out), "--resume", "--quiet", timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = _trials(journal, "run.flat")
    assert not [t for t in after if t.state == TrialState.RUNNING]
    assert {t.number: t.value for t in after if t.number in finished} == finished  # no finished trial lost
    killed = next(t for t in after if t.number == stuck[0])
    assert killed.state == TrialState.FAIL
    copy = next(t for t in after if t.system_attrs.get("failed_trial") == stuck[0])
    assert copy.state.is_finished() and copy.params == killed.params  # requeued with the same parameters
    assert sum("failed_trial" not in t.system_attrs for t in after) == 4  # the budget holds
    assert (out / "metrics.json").is_file()
