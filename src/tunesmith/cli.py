"""The `tunesmith` command line (typer). Imports only typer here: each command body imports its
implementation, so `tunesmith --help` answers without loading torch (pip's commands_dict idea).

Exit codes (shared/design.md): 0 success, 2 bad input (one paragraph naming the file or field and
the fix, no traceback), 1 unexpected failure, 130 interrupted (the checkpoint allows --resume).
"""

from __future__ import annotations

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
DataOpt = Annotated[str | None, typer.Option("--data", help="CSV/Parquet/.npz file, image folder or built-in set.")]
TargetOpt = Annotated[str | None, typer.Option(help="Target column of a table.")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Time column: time-ordered splits, no future leaks.")]
GroupOpt = Annotated[str | None, typer.Option("--group", help="Group column: no group in two splits.")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="Any recipe field: dotted.key=value (repeatable).")]


def _err(message: str) -> None:
    typer.echo(f"error: {message}", err=True)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn tunesmith's documented errors into exit codes with one paragraph and no traceback."""
    from tunesmith.errors import BadInput, TrainingDiverged

    try:
        yield
    except (BadInput, TrainingDiverged) as exc:
        _err(str(exc))
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _err("Interrupted. Finished epochs are checkpointed: run the same command with --resume to continue.")
        raise typer.Exit(130) from None


def _overrides(sets: list[str] | None, **flags: Any) -> dict[str, Any]:
    from tunesmith.fit import SHORTCUTS
    from tunesmith.recipe import parse_set

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
    out: Annotated[Path | None, typer.Option(help="Run directory (default runs/<timestamp>-<name>).")] = None,
    epochs: Annotated[int | None, typer.Option(help="Training epochs.")] = None,
    seed: Annotated[int | None, typer.Option(help="One seed for everything (T50).")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: task-aware, T31).")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Mini-batch size (default: from the data, T07).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (T54).")] = None,
    cv: Annotated[int | None, typer.Option(help="K-fold cross-validation: report every fold, mean ± std.")] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out after a crash or Ctrl-C.")] = False,
    set_: SetOpt = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Train a model from data with the catalog's task-aware defaults; write a run directory."""
    with _user_errors():
        from tunesmith.fit import fit as run_fit
        from tunesmith.fit import summary_line

        if resume and out is None:
            raise _bad("--resume needs --out DIR: the run directory to continue.")
        overrides = _overrides(
            set_,
            data=data,
            target=target,
            time=time,
            group=group,
            epochs=epochs,
            seed=seed,
            lr=lr,
            batch_size=batch_size,
            device=device,
            cv=cv,
        )
        result = run_fit(recipe, out=out, resume=resume, overrides=overrides, progress=not quiet)
        typer.echo(f"{result.run_dir}: {summary_line(result.metrics)} ({result.metrics['seconds']:.1f} s)")


def _bad(message: str) -> Exception:
    from tunesmith.errors import BadInput

    return BadInput(message)


def main(argv: list[str] | None = None) -> Callable[..., Any] | None:
    """Console-script entry point."""
    return app(args=argv if argv is not None else sys.argv[1:])
