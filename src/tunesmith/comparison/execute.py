"""Running a comparison's fits: one `fit` run directory per variant x seed, in worker processes.

Every run goes through `tunesmith.fitting.fit`, so the trainer and run-directory contracts hold for
each of them (OUT/<variant>/seed-<s>/). Runs are independent, so they spread over worker processes
(spawned, never forked: a forked torch can deadlock on its thread pool) plus this process; each
lane trains with one intra-op thread, so N lanes use N cores instead of fighting over them.
`workers=1` trains in this process with torch's default threads. With `resume`, finished runs are
read back and unfinished ones continue from their checkpoint, after checking that they were
started with the same recipe.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from multiprocessing.synchronize import Event as Stop  # the comparison's stop flag, shared with workers
from pathlib import Path

import torch
import yaml

from tunesmith.comparison.result import SeedRun
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.fitting import fit
from tunesmith.recipe import Recipe, flatten
from tunesmith.repro import torch_threads
from tunesmith.run import RunDir
from tunesmith.train.callbacks import Callback
from tunesmith.train.trainer import Trainer

__all__ = ["Job", "Stopped", "available_cores", "run_job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    recipe: Recipe  # train.seed already set to `seed`
    out: Path
    resume: bool = False
    embeddings: Path | None = None  # a backbone probe's embedding cache, shared by every job of the comparison


def available_cores() -> int:
    """Cores this process may use (the affinity mask in a container, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_job(job: Job, stop: Stop | None = None) -> SeedRun:
    """Train one variant at one seed (or read it back when resuming) and return its metrics.

    stop: an event another lane sets when the comparison stops; the fit then ends at its next batch.
    """
    if stop is not None and stop.is_set():  # queued before the stop: leave nothing behind
        raise Stopped("the comparison was stopped")
    run = RunDir(job.out)
    if job.resume and run.recipe.is_file():
        _check_same_recipe(job, run)
        if run.complete:
            return SeedRun(job.variant, job.seed, job.out, run.load_metrics())
    try:
        result = fit(
            job.recipe,
            out=job.out,
            resume=job.resume and run.recipe.is_file(),
            callbacks=[_StopWhenSet(stop)] if stop is not None else None,
            progress=False,
            report=False,
            embeddings=job.embeddings,
        )
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"Variant {job.variant!r} at seed {job.seed} ({job.out}): {exc}") from None
    return SeedRun(job.variant, job.seed, job.out, result.metrics)


def run_jobs(jobs: Sequence[Job], *, workers: int, progress: bool = True) -> list[SeedRun]:
    """Run every job; records come back in the order of `jobs`, whatever order they finish in.

    With `workers` > 1 there are that many lanes, each one torch thread: this process (already warm,
    so it starts at once) and workers - 1 spawned processes, which start training once they have
    imported torch (several seconds). Each lane takes the next job when it is free. The first failed
    run stops the others at their next batch (they stay resumable) and is raised.
    """
    with _progress(len(jobs), enabled=progress) as advance:
        if workers <= 1:
            records = []
            for job in jobs:
                records.append(run_job(job))
                advance(records[-1])
            return records
        return _run_lanes(jobs, workers, advance)


def _run_lanes(jobs: Sequence[Job], workers: int, advance: Callable[[SeedRun], None]) -> list[SeedRun]:
    """The lane in this process runs on the main thread (torch's thread setting is per OS thread, and
    Ctrl-C lands there); the spawned lanes are fed from the pool's callbacks as each job finishes."""
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()  # shared with the workers
    queue = iter(enumerate(jobs))
    lock = threading.Condition()
    done: dict[int, SeedRun] = {}
    outstanding: set[Future[SeedRun]] = set()
    failures: list[BaseException] = []

    def take() -> tuple[int, Job] | None:
        with lock:
            return None if stop.is_set() else next(queue, None)

    def finish(index: int, record: SeedRun) -> None:
        with lock:
            done[index] = record
            advance(record)

    with ProcessPoolExecutor(workers - 1, mp_context=spawn, initializer=_start_worker, initargs=(stop,)) as pool:

        def start_next() -> None:
            item = take()
            if item is not None:
                future = pool.submit(_run_in_worker, item[1])
                with lock:
                    outstanding.add(future)
                future.add_done_callback(partial(collect, item[0]))

        def collect(index: int, future: Future[SeedRun]) -> None:
            try:
                if future.cancelled():
                    return
                if (error := future.exception()) is not None:
                    if not isinstance(error, Stopped):  # a stopped run is a consequence, not a cause
                        failures.append(error)
                    stop.set()
                    return
                finish(index, future.result())
                start_next()
            finally:
                with lock:
                    outstanding.discard(future)
                    lock.notify_all()

        try:
            for _ in range(workers - 1):
                start_next()
            with torch_threads(1):  # one core, like every spawned lane
                while (item := take()) is not None:
                    finish(item[0], run_job(item[1], stop))
            with lock:
                lock.wait_for(lambda: not outstanding)
        except BaseException as exc:  # Ctrl-C or a bad run here, or this lane stopped by a bad run in a worker
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            if isinstance(exc, Stopped) and failures:
                raise failures[0] from None
            raise
    if failures:
        raise failures[0]
    return [done[i] for i in range(len(jobs))]


class Stopped(Exception):
    """A run ended early because its comparison stopped (another run failed, or Ctrl-C)."""


class _StopWhenSet(Callback):
    def __init__(self, stop: Stop) -> None:
        self.stop = stop

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if self.stop.is_set():
            raise Stopped("the comparison was stopped")


_WORKER_STOP: Stop | None = None  # the comparison's stop event, in a worker process


def _start_worker(stop: Stop) -> None:
    global _WORKER_STOP
    _WORKER_STOP = stop
    torch.set_num_threads(1)  # one core per worker: N workers x N threads would oversubscribe the CPU


def _run_in_worker(job: Job) -> SeedRun:
    return run_job(job, _WORKER_STOP)


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[SeedRun], None]]:
    """A rich bar over runs on a terminal; a no-op otherwise (logs and CI stay clean)."""
    if not (enabled and sys.stderr.isatty()):
        yield lambda record: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("compare"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
        transient=True,
    ) as bar:
        task = bar.add_task("compare", total=total, last="")

        def advance(record: SeedRun) -> None:
            val = ", ".join(f"{k} {v:.4g}" for k, v in record.metrics["val"].items())
            bar.update(task, advance=1, last=f"{record.variant} seed {record.seed}: {val}")

        yield advance


def _check_same_recipe(job: Job, run: RunDir) -> None:
    """A resumed run must have been started with the recipe this comparison plans for it."""
    saved = flatten(yaml.safe_load(run.recipe.read_text()))
    for key, want in flatten(job.recipe.model_dump(mode="json")).items():
        if want not in ("auto", None) and saved.get(key) != want:  # "auto"/None were resolved from the data
            raise BadInput(
                f"{run.path} was started with {key}={saved.get(key)!r}, but this comparison asks for {want!r}: "
                "--resume continues the same comparison only. Use another --out, or the original options."
            )
