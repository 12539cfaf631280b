"""Storage and workers against a real PostgreSQL (Debian's server in a throwaway cluster): two worker
processes on one study, a wrong password, a study-name clash (T52, design.md "Storage").

The cluster is started once per session when the server binaries exist (/usr/lib/postgresql/*/bin);
without them the PostgreSQL tests skip, except in CI (the CI variable set), where .ci/run installs them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import FAST_TUNE_CLI, run_cli
from tests.pg import PASSWORD, server_binaries, throwaway_postgres
from tunesmith.cli import app
from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.storage import open_storage


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres of a throwaway cluster (password auth)."""
    bindir = server_binaries()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have PostgreSQL's server binaries (.ci/run installs the postgresql package)")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    with throwaway_postgres(bindir) as url:
        yield url


def _trials(storage: str, study: str) -> list[optuna.trial.FrozenTrial]:
    store = open_storage(storage, run_dir=None, workers=1, cfg=TuneConfig.model_validate({}))
    return optuna.load_study(study_name=study, storage=store).get_trials()


def invoke(*args: str) -> Any:
    """The CLI in this process (no interpreter start-up): exit code and output."""
    return CliRunner().invoke(app, list(args))


@pytest.mark.slow
def test_two_workers_share_one_postgres_study(postgres: str, tmp_path: Path) -> None:
    """A `tunesmith worker` started first (it waits for the study) and `tunesmith tune`: two processes run one
    study of 6 trials between them, and tune refits the winner."""
    worker = subprocess.Popen(
        [sys.executable, "-m", "tunesmith", "worker", "--storage", postgres, "--study", "pair", "--wait", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    args = ["--data", "iris", "--strategy", "flat", "--trials", "6", "--storage", postgres, "--study", "pair"]
    tune = run_cli(
        "tune", *args, "--out", str(tmp_path / "run"), "--set", "tune.epochs=15", *FAST_TUNE_CLI, timeout=600
    )
    _, err = worker.communicate(timeout=300)
    assert tune.returncode == 0, tune.stderr
    assert worker.returncode == 0, err
    # a trial both workers created in a race past the budget is marked surplus and dropped before it trains
    trials = [t for t in _trials(postgres, "pair.flat") if not t.user_attrs.get("surplus")]
    assert len(trials) == 6 and all(t.state.is_finished() for t in trials)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    assert len(pd.read_csv(tmp_path / "run" / "trials.csv")) == 6  # --trials is exact
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_wrong_password_is_bad_input(postgres: str, tmp_path: Path) -> None:
    wrong = postgres.replace(PASSWORD, "nope")
    result = invoke("tune", "--data", "iris", "--storage", wrong, "--out", str(tmp_path / "run"), "--quiet")
    assert result.exit_code == 2
    assert "password authentication failed" in result.output and "Check the user name and password" in result.output
    assert "nope" not in result.output and "Traceback" not in result.output  # the password is not echoed
    assert not (tmp_path / "run").exists()


def test_study_name_clash_is_bad_input(postgres: str, tmp_path: Path) -> None:
    base = ["--data", "iris", "--strategy", "flat", "--trials", "1", "--storage", postgres, "--study", "clash"]
    first = invoke("tune", *base, "--out", str(tmp_path / "a"), "--set", "tune.epochs=2", *FAST_TUNE_CLI)
    assert first.exit_code == 0, first.output
    other = "tune.space={train.lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}}"
    second = invoke(
        "tune", *base, "--out", str(tmp_path / "b"), "--set", other, "--set", "tune.epochs=2", *FAST_TUNE_CLI
    )
    assert second.exit_code == 2
    assert "already exists with a different search space" in second.output and "train.lr" in second.output
