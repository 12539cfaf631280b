"""The `tunesmith` command line (typer). Imports only typer here: each command body imports its
implementation, so `tunesmith --help` answers without loading torch (pip's commands_dict idea).

Exit codes (shared/design.md): 0 success, 2 bad input (one paragraph naming the file or field and
the fix, no traceback), 1 unexpected failure, 130 interrupted (the checkpoint allows --resume).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="tunesmith",
    help="Train, tune and diagnose PyTorch neural networks the way an experienced practitioner would.",
    pretty_exceptions_show_locals=False,  # locals hold tensors, paths and credentials
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """Train, tune and diagnose PyTorch neural networks the way an experienced practitioner would."""


RecipeArg = Annotated[Path | None, typer.Argument(help="A YAML recipe (optional: flags and --set suffice).")]
DataOpt = Annotated[
    str | None, typer.Option("--data", help="CSV/Parquet/.npz file, image or text folder, or built-in set.")
]
TargetOpt = Annotated[str | None, typer.Option(help="Target column of a table.")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Time column: time-ordered splits, no future leaks.")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Group column: no group in two splits.")]
TextOpt = Annotated[str | None, typer.Option("--text", help="Free-text column (found by itself when there is one).")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any recipe field: dotted.key=value (repeatable).")]


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


class _Echo(logging.Handler):
    """Log records to the current stderr ("warning: ..." for warnings), as typer.echo writes them; a warning
    already shown by this command is not repeated (a tune reads its data once per split design)."""

    def __init__(self) -> None:
        super().__init__()
        self.shown: set[str] = set()

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if record.levelno >= logging.WARNING:
            if message in self.shown:
                return
            self.shown.add(message)
        typer.echo(("warning: " if record.levelno >= logging.WARNING else "") + message, err=True)


def _log_to_stderr(level: int) -> None:
    """Every command shows tunesmith's warnings (what it inferred from the data, what it ignored), each once."""
    logger = logging.getLogger("tunesmith")
    echo = next((h for h in logger.handlers if isinstance(h, _Echo)), None)
    if echo is None:
        logger.addHandler(echo := _Echo())
    echo.shown.clear()
    logger.setLevel(level)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn tunesmith's documented errors into exit codes with one paragraph and no traceback."""
    from tunesmith.errors import BadInput, TrainingDiverged

    _log_to_stderr(logging.WARNING)
    try:
        yield
    except (BadInput, TrainingDiverged) as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except OSError as exc:  # a user-given path that cannot be read or written: name it, no traceback
        if exc.filename is None:
            raise
        _err(f"Cannot use {exc.filename}: {exc.strerror or exc}. Check the path and its permissions.")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _err("Interrupted. Finished epochs are checkpointed: run the same command with --resume to continue.")
        raise typer.Exit(130) from None


def _overrides(sets: list[str] | None, **flags: Any) -> dict[str, Any]:
    from tunesmith.recipe import SHORTCUTS, parse_set

    dotted = {SHORTCUTS[k]: v for k, v in flags.items() if v is not None}
    dotted.update(parse_set(sets or []))
    return dotted


@app.command()
def fit(
    recipe: RecipeArg = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time: TimeOpt = None,
    group: GroupOpt = None,
    text: TextOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<timestamp>-<name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="One seed for everything (T50).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: task-aware, T31).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size (default: from the data, T07).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (T54).")] = None,
    cv: Annotated[int | None, typer.Option(help="K-fold cross-validation: report every fold, mean ± std.")] = None,
    ensemble: Annotated[
        bool,
        typer.Option(help="With --cv K: the final model averages the K fold models (time data: K seeds on all rows)."),
    ] = False,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out after a crash or Ctrl-C.")] = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    tensorboard: Annotated[
        bool, typer.Option(help="TensorBoard event files under the run directory (needs tunesmith[tensorboard]).")
    ] = False,
) -> None:
    """Train a model from data with the catalog's task-aware defaults; write a run directory."""
    with _user_errors():
        from tunesmith.fitting import fit as run_fit
        from tunesmith.fitting import summary_line

        if resume and out is None:
            raise _bad("--resume needs --out DIR: the run directory to continue.")
        _out_dir(out)
        overrides = _overrides(
            set_,
            data=data,
            target=target,
            time=time,
            group=group,
            text=text,
            epochs=epochs,
            seed=seed,
            lr=lr,
            batch_size=batch_size,
            device=device,
            cv=cv,
            ensemble=ensemble or None,  # unset unless given: --resume compares only what was set
        )
        callbacks: list[Any] = []
        if tensorboard:
            from tunesmith.train.tensorboard import TensorBoard

            callbacks.append(TensorBoard())
        result = run_fit(recipe, out=out, resume=resume, overrides=overrides, callbacks=callbacks, progress=not quiet)
        typer.echo(f"{result.run_dir}: {summary_line(result.metrics)} ({result.metrics['seconds']:.1f} s)")


@app.command()
def predict(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (the --out of tunesmith fit).")],
    data: Annotated[Path, typer.Option("--data", help="CSV/Parquet table, or .npz with an array 'x'.")],
    out: Annotated[Path, typer.Option(help="Predictions file: .csv, .parquet or .npz.")] = Path("predictions.csv"),
    device: Annotated[str, typer.Option(help="auto, cpu or cuda (T54).")] = "auto",
) -> None:
    """Predict new rows with a trained run: same preprocessing, labels and probabilities in the original units."""
    with _user_errors():
        from tunesmith.prediction import output_format, write_predictions
        from tunesmith.prediction import predict as run_predict
        from tunesmith.validate import output_file

        output_file(out)  # a bad --out fails before any work
        output_format(out)
        frame = run_predict(run_dir, data, device=device)
        write_predictions(frame, out)
        typer.echo(f"{out}: {len(frame)} rows ({', '.join(frame.columns[:4])}{', ...' if frame.shape[1] > 4 else ''})")


@app.command()
def compare(
    sources: Annotated[
        list[Path] | None, typer.Argument(help="Recipe files (one variant each), or run directories to compare.")
    ] = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time: TimeOpt = None,
    group: GroupOpt = None,
    text: TextOpt = None,
    vary: Annotated[
        list[str] | None, typer.Option("--vary", help="KEY=V1,V2,...: one variant per value (repeatable).")
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Seeds, shared by every variant (paired, T50); default 5.")] = None,
    cv: Annotated[int | None, typer.Option(help="K folds per seed: pairs are (seed, fold).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs of every variant.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate of every variant.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size of every variant.")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (T54).")] = None,
    metric: Annotated[str | None, typer.Option(help="Validation metric of verdicts (accuracy/rmse/loss).")] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes (default: one per core, per run).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<timestamp>-compare).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the comparison in --out; finished runs are kept.")] = False,
    determinism: Annotated[
        bool, typer.Option(help="Run the first variant's first seed twice: repeats must agree (T50).")
    ] = True,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Is a change a real improvement or seed noise? Variants on shared seeds, judged on validation data."""
    with _user_errors():
        from tunesmith.comparison import compare as run_compare
        from tunesmith.comparison import parse_vary

        _out_dir(out)
        overrides = _overrides(
            set_,
            data=data,
            target=target,
            time=time,
            group=group,
            text=text,
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            device=device,
            cv=cv,
        )
        paths, base = list(sources or []), None
        if vary and len(paths) == 1 and not paths[0].is_dir():  # one recipe file: the base that --vary varies
            paths, base = [], paths[0]
        result = run_compare(
            paths or None,
            vary=parse_vary(vary or []),
            base=base,
            seeds=seeds,
            metric=metric,
            out=out,
            workers=workers,
            resume=resume,
            check_determinism=determinism,
            progress=not quiet,
            overrides=overrides,
        )
        result.render()
        typer.echo(f"compare.json and the runs: {result.out}")


@app.command("lr-find")
def lr_find(
    recipe: RecipeArg = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time: TimeOpt = None,
    group: GroupOpt = None,
    text: TextOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default runs/<timestamp>-lr-find).")] = None,
    seeds: Annotated[int, typer.Option(min=1, help="Sweeps, one per seed: shows how the suggestion swings.")] = 3,
    steps: Annotated[int, typer.Option(min=20, help="Steps of the exponential LR sweep.")] = 100,
    set_: SetOpt = None,
) -> None:
    """LR range test (T31): suggest a learning rate with its evidence; write lr_find.json and lr_find.png."""
    with _user_errors():
        from tunesmith.recipe import make_recipe
        from tunesmith.run import default_run_dir
        from tunesmith.runsetup import RunSetup
        from tunesmith.train.lr_find import lr_find as range_test

        _out_dir(out)
        chosen = make_recipe(
            recipe, overrides=_overrides(set_, data=data, target=target, time=time, group=group, text=text)
        )
        setup = RunSetup.build(chosen)  # the model `fit` would train, on its training rows
        cfg, first = setup.recipe.train, chosen.train.seed
        result = range_test(
            setup.new_model(),
            setup.train,
            task=setup.facts.task,
            cfg=cfg,
            steps=steps,
            seeds=range(first, first + seeds),
        )
        folder = out if out is not None else default_run_dir("lr-find")
        folder.mkdir(parents=True, exist_ok=True)
        result.to_json(folder / "lr_find.json")
        result.plot(folder / "lr_find.png")
        for line in result.describe():
            typer.echo(line)
        typer.echo(f"curve and evidence: {folder / 'lr_find.json'}, plot: {folder / 'lr_find.png'}")


StorageOpt = Annotated[
    str | None,
    typer.Option(help="Study storage: postgresql://USER:PASSWORD@HOST/DB, sqlite:///FILE or a .journal file."),
]


def _log_progress(quiet: bool) -> None:
    """tunesmith's INFO log lines (plan, one line per trial, decisions) go to stderr unless --quiet."""
    _log_to_stderr(logging.WARNING if quiet else logging.INFO)


@app.command()
def tune(
    recipe: RecipeArg = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time: TimeOpt = None,
    group: GroupOpt = None,
    text: TextOpt = None,
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<timestamp>-tune).")] = None,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Trials in all, shared by every worker, exact (default 30; with --timeout, as many as time allows)."
        ),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds for the whole tune, refit included.")] = None,
    workers: Annotated[int, typer.Option(help="Local worker processes (one torch thread each).")] = 1,
    storage: StorageOpt = None,
    study: Annotated[str | None, typer.Option(help="Study name (default: the run directory's name).")] = None,
    strategy: Annotated[str | None, typer.Option(help="staged (the playbook, T53) or flat (one search).")] = None,
    seed: Annotated[int | None, typer.Option(help="One seed for everything (T50).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the tune in --out after Ctrl-C or a crash.")] = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option(help="No plan, trial lines or progress bars.")] = False,
) -> None:
    """Tune a recipe with the staged playbook on Optuna (T52, T53); refit the winner and test it once."""
    with _user_errors():
        from tunesmith.fitting import summary_line
        from tunesmith.tuning.study import tune as run_tune
        from tunesmith.validate import finite

        _log_progress(quiet)
        _out_dir(out)
        finite("--timeout", timeout, positive=True)
        overrides = _overrides(set_, data=data, target=target, time=time, group=group, text=text, seed=seed)
        try:
            result = run_tune(
                recipe,
                out=out,
                resume=resume,
                overrides=overrides,
                storage=storage,
                study=study,
                workers=workers,
                trials=trials,
                timeout=timeout,
                strategy=strategy,
                progress=not quiet,
            )
        except KeyboardInterrupt:  # a second Ctrl-C: the running trial failed; --resume requeues it
            _err("Interrupted. Finished trials are kept in the study: run the same command with --resume to continue.")
            raise typer.Exit(130) from None
        if not result.complete:
            _err("Stopped: finished trials are kept in the study. Run the same command with --resume to continue.")
            raise typer.Exit(130)
        typer.echo(f"{result.run_dir}: {summary_line(result.metrics)} ({result.metrics['seconds']:.1f} s)")
        typer.echo(f"best recipe: {result.run_dir / 'best_recipe.yaml'} (rerun it with `tunesmith fit`)")


@app.command()
def worker(
    storage: Annotated[str, typer.Option(help="The study's storage (as given to `tunesmith tune --storage`).")],
    study: Annotated[str, typer.Option(help="The study to join.")],
    timeout: Annotated[float | None, typer.Option(help="Stop joining new trials after this many seconds.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for the study to be created by `tune`.")] = 0.0,
    quiet: Annotated[bool, typer.Option(help="No trial lines.")] = False,
) -> None:
    """Join a study started by `tunesmith tune` (any machine that reaches the storage and the data)."""
    with _user_errors():
        import time as clock

        from tunesmith.tuning.worker import TimeBudget, join
        from tunesmith.validate import finite

        finite("--timeout", timeout, positive=True)
        finite("--wait", wait)
        _log_progress(quiet)
        now = clock.time()
        budget = None if timeout is None else TimeBudget(start=now, end=now + timeout)  # no refit follows here
        if not join(storage, study, budget=budget, wait=wait):
            _err("Stopped: finished trials are kept in the study; start the worker again to continue.")
            raise typer.Exit(130)
        typer.echo(f"study {study!r}: every stage is done; `tunesmith tune` refits and tests the winner.")


@app.command()
def doctor(
    recipe: RecipeArg = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    time: TimeOpt = None,
    group: GroupOpt = None,
    text: TextOpt = None,
    model: Annotated[str | None, typer.Option(help="A user model, package.module:Factory (no arguments).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate to diagnose (default: task-aware, T31).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size (default: from the data, T07).")] = None,
    steps: Annotated[int, typer.Option(min=20, help="Optimizer steps of the short training run.")] = 200,
    out: Annotated[Path | None, typer.Option(help="Write findings.json and report.html into this directory.")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the findings list as JSON instead of a table.")] = False,
    set_: SetOpt = None,
) -> None:
    """Diagnose a setup: data, model and a short training run; evidence and the fix (T60-T67).

    Exits 0 even when findings warn or fail (the diagnosis itself succeeded); gate on the statuses
    in --json or findings.json. Exit 2: bad input (data, recipe, a --model that does not import).
    """
    with _user_errors():
        from tunesmith.diagnosis import doctor_recipe

        _out_dir(out)
        overrides = _overrides(
            set_, data=data, target=target, time=time, group=group, text=text, lr=lr, batch_size=batch_size
        )
        if model is not None:
            overrides["model.custom"] = model
        diagnosis = doctor_recipe(recipe, overrides=overrides, steps=steps)
        if out is not None:
            from tunesmith.report import write_report

            diagnosis.to_json(out)
            write_report(out)
        if json_:
            typer.echo(diagnosis.to_json())
        else:
            diagnosis.render()


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory written by fit, tune, doctor or compare.")],
) -> None:
    """(Re)write RUN_DIR/report.html: one self-contained page of plots and tables (no network needed)."""
    with _user_errors():
        from tunesmith.report import write_report

        typer.echo(write_report(run_dir))


def _out_dir(out: Path | None) -> None:
    """Every command's --out folder is checked before any work (nothing is half written)."""
    if out is not None:
        from tunesmith.validate import output_dir

        output_dir(out)


def _bad(message: str) -> Exception:
    from tunesmith.errors import BadInput

    return BadInput(message)


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point."""
    return app(args=argv if argv is not None else sys.argv[1:])
