"""Where a study lives (design.md "Storage"): plain Optuna storages, opened with safe defaults.

- default: an Optuna journal file in the run directory (`study.journal`), nothing to start; its
  file lock makes it safe for `--workers N` processes on one machine (about 2 ms per trial of
  bookkeeping, benchmarks/storage.py).
- `sqlite:///file.db`: one process only. SQLite locks the whole file per write and stalls
  parallel writers, so it is refused with more than one worker.
- `postgresql://user:password@host/db`: many machines (`tunesmith worker`). Connections are
  pre-pinged (a dropped connection is replaced, not reported as a failed trial), each worker keeps
  a small pool, and the first connection is retried with exponential backoff, so a database that
  is still starting is waited for; a wrong password or a missing database fails at once.

Heartbeats are on for every storage: a running trial writes one every `heartbeat_interval`
seconds; a trial silent for `grace_period` (its worker was SIGKILLed, its machine lost) is failed
by the next worker that looks, and Optuna's retry callback queues a copy with the same
parameters. Optuna's RDBStorage has heartbeats built in; the journal gets them here, as a trial
system attribute, through Optuna's own `BaseHeartbeat` interface.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.storages.journal import JournalFileBackend
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import BadInput
from tunesmith.tuneconfig import TuneConfig
from tunesmith.tuning.samplers import without_experimental_warnings
from tunesmith.validate import output_file

__all__ = ["JOURNAL", "HeartbeatJournal", "open_storage", "redact"]

log = logging.getLogger("tunesmith.tuning")

JOURNAL = "study.journal"  # the default storage's file name inside the run directory
CONNECT_ATTEMPTS = 4  # first connection: tries, waiting 0.5, 1, 2 s between them
POOL = {"pool_size": 2, "max_overflow": 2, "pool_pre_ping": True, "pool_recycle": 300}  # per worker process
StaleCallback = Callable[[Study, FrozenTrial], None]


class HeartbeatJournal(JournalStorage, BaseHeartbeat):
    """Optuna's journal storage with heartbeats (a `heartbeat` system attribute per running trial)."""

    def __init__(self, path: Path, *, interval: int, grace: int, on_stale: StaleCallback) -> None:
        super().__init__(JournalFileBackend(str(path)))
        self._interval, self._grace, self._on_stale = interval, grace, on_stale

    def record_heartbeat(self, trial_id: int) -> None:
        # a finished trial: another worker judged it stale and failed it; its own worker finds out at tell
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, "heartbeat", time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        stale = []
        for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,)):
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            # a requeued copy inherits its original's old heartbeat: its own start time counts too
            if now - max(trial.system_attrs.get("heartbeat", 0.0), started) > self._grace:
                stale.append(trial._trial_id)
        return stale

    def get_heartbeat_interval(self) -> int | None:
        return self._interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self._on_stale


def open_storage(url: str | None, *, run_dir: Path | None, workers: int, cfg: TuneConfig) -> BaseStorage:
    """The study's storage: `url` (a .journal file, sqlite:///, postgresql://) or the run directory's journal."""
    with without_experimental_warnings():
        retry = RetryHeartbeatStaleTrialCallback(max_retry=cfg.max_retry)
    if url is None or url.endswith(".journal"):
        path = Path(run_dir or ".") / JOURNAL if url is None else output_file(Path(url), "--storage")
        path.parent.mkdir(parents=True, exist_ok=True)  # the run directory's journal: fit creates the run
        return HeartbeatJournal(path, interval=cfg.heartbeat_interval, grace=cfg.grace_period, on_stale=retry)
    scheme = urlsplit(url).scheme.split("+")[0]
    if scheme == "sqlite" and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        output_file(Path(url.removeprefix("sqlite:///")), "--storage")  # SQLite creates the file, not its folder
    if scheme == "sqlite" and workers > 1:
        raise BadInput(
            f"--storage {redact(url)} is SQLite, which is not safe for {workers} parallel workers (it locks "
            "the whole file per write). Use --workers 1, the default journal file (omit --storage), "
            "or a postgresql:// URL."
        )
    if scheme not in ("sqlite", "postgresql"):
        raise BadInput(
            f"--storage must be a .journal file, sqlite:///FILE or postgresql://USER:PASSWORD@HOST/DB. "
            f"Got {redact(url)!r} instead."
        )
    kwargs = {} if scheme == "sqlite" else {"engine_kwargs": {**POOL, "connect_args": {"connect_timeout": 5}}}
    engine_url = url  # name the driver: SQLAlchemy's default for postgresql:// differs between versions
    if url.startswith("postgresql://"):
        engine_url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    delay, attempt = 0.5, 1
    while True:
        try:
            with without_experimental_warnings():  # heartbeat_interval is marked experimental since Optuna 2.9
                return RDBStorage(
                    engine_url,
                    heartbeat_interval=cfg.heartbeat_interval,
                    grace_period=cfg.grace_period,
                    heartbeat_stale_trial_callback=retry,
                    **kwargs,  # type: ignore[arg-type]
                )
        except ImportError as exc:
            raise BadInput(
                f"--storage {redact(url)} needs a database driver that is not installed ({exc}). "
                "Install it with: pip install 'tunesmith[postgres]'."
            ) from None
        except Exception as exc:  # sqlalchemy wraps every driver error; read the driver's words
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
            if _permanent(reason) or attempt == CONNECT_ATTEMPTS:
                raise BadInput(_unreachable(url, reason, attempt)) from None
            log.warning("storage %s not reachable (%s); retrying in %.1f s", redact(url), reason, delay)
            time.sleep(delay)
            delay, attempt = delay * 2, attempt + 1


def _permanent(reason: str) -> bool:
    """Errors that waiting will not fix: credentials, a missing database or role."""
    words = ("password", "authentication", "does not exist", "permission denied", "role")
    return any(w in reason.lower() for w in words)


def _unreachable(url: str, reason: str, attempts: int) -> str:
    fix = (
        "Check the user name and password in the URL."
        if "password" in reason.lower() or "authentication" in reason.lower()
        else "Check the host, port and database name, and that the server is running and accepts connections."
    )
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return f"Cannot open the study storage {redact(url)}{tries}: {reason}. {fix}"


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages and files."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
