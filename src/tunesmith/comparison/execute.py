"""Running a comparison's fits: one `fit` run directory per variant x seed, in worker processes.

Every run goes through `tunesmith.fitting.fit`, so the trainer and run-directory contracts hold for
each of them (OUT/<variant>/seed-<s>/). Runs are independent, so they spread over worker processes
(spawned, never forked: a forked torch can deadlock on its thread pool); each worker trains with
one intra-op thread, so N workers use N cores instead of fighting over them. `workers=1` trains in
this process. With `resume`, finished runs are read back and unfinished ones continue from their
checkpoint, after checking that they were started with the same recipe.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from tunesmith.comparison.result import RunRecord
from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.fitting import fit
from tunesmith.recipe import Recipe, flatten
from tunesmith.run import RunDir

__all__ = ["Job", "available_cores", "run_job", "run_jobs"]


@dataclass(frozen=True)
class Job:
    variant: str
    seed: int
    recipe: Recipe  # train.seed already set to `seed`
    out: Path
    resume: bool = False


def available_cores() -> int:
    """Cores this process may use (the affinity mask in a container, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_job(job: Job) -> RunRecord:
    """Train one variant at one seed (or read it back when resuming) and return its metrics."""
    run = RunDir(job.out)
    if job.resume and run.recipe.is_file():
        _check_same_recipe(job, run)
        if run.complete:
            return RunRecord(job.variant, job.seed, job.out, run.load_metrics())
    try:
        result = fit(job.recipe, out=job.out, resume=job.resume and run.recipe.is_file(), progress=False, report=False)
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"Variant {job.variant!r} at seed {job.seed} ({job.out}): {exc}") from None
    return RunRecord(job.variant, job.seed, job.out, result.metrics)


def run_jobs(jobs: Sequence[Job], *, workers: int, progress: bool = True) -> list[RunRecord]:
    """Run every job; records come back in the order of `jobs`, whatever order they finish in."""
    with _progress(len(jobs), enabled=progress) as advance:
        if workers <= 1:
            records = []
            for job in jobs:
                records.append(run_job(job))
                advance(records[-1])
            return records
        done: dict[int, RunRecord] = {}
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
            futures = {pool.submit(run_job, job): i for i, job in enumerate(jobs)}
            try:
                for future in as_completed(futures):
                    done[futures[future]] = future.result()
                    advance(done[futures[future]])
            except BaseException:  # a bad run (or Ctrl-C) stops the comparison: start nothing more
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return [done[i] for i in range(len(jobs))]


def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)  # one core per worker: N workers x N threads would oversubscribe the CPU


@contextmanager
def _progress(total: int, *, enabled: bool) -> Iterator[Callable[[RunRecord], None]]:
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

        def advance(record: RunRecord) -> None:
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
