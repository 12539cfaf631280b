"""Issue 16: bad, hostile and silently-wrong inputs, one row per case.

Each row builds its input in a temporary folder, runs one command in-process and states the
expected exit code, the words the message must contain and what the run directory may hold
afterwards: nothing (exit 2), or a complete run whose metrics say the right task (exit 0).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()
QUICK = ["--epochs", "1", "--quiet"]


def table(path: Path, n: int = 60, seed: int = 0, **extra: object) -> Path:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "label": rng.integers(0, 3, n)})
    for name, values in extra.items():
        frame[name] = values
    frame.to_csv(path, index=False)
    return path


@dataclass
class Case:
    name: str
    build: Callable[[Path], list[str]]  # makes the input under tmp, returns the command line
    code: int
    words: tuple[str, ...] = ()  # each must appear in the output (case-insensitive)
    task: str | None = None  # exit 0: metrics.json's task
    check: Callable[[Path], None] | None = None  # more checks on the run directory (exit 0)
    out: str = "run"  # the run directory the command was given (relative to tmp)
    absent: tuple[str, ...] = field(default_factory=tuple)  # words that must NOT appear (misattribution)


# ---- silent success with a wrong result ---------------------------------------------------------------
def onehot_npz(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 90)
    np.savez(tmp / "d.npz", x=rng.normal(size=(90, 4)) + labels[:, None], y=np.eye(3)[labels])
    return ["fit", "--data", str(tmp / "d.npz")]


def float01_npz(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 90)
    np.savez(tmp / "d.npz", x=rng.normal(size=(90, 4)) + labels[:, None], y=labels.astype(np.float64))
    return ["fit", "--data", str(tmp / "d.npz")]


def numbers_with_text(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    values = rng.normal(size=60).round(3).astype(object)
    values[::10] = "abc"
    table(tmp / "t.csv", c=values)
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label"]


def numeric_column_kept(run: Path) -> None:
    state = json.loads((run / "preprocess.json").read_text())
    assert "c" in state["numeric"]["names"] and not any(c["name"] == "c" for c in state["categorical"])


def date_column(tmp: Path) -> list[str]:
    table(tmp / "t.csv", when=pd.date_range("2024-01-01", periods=60, freq="D").strftime("%Y-%m-%d"))
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label"]


def date_expanded(run: Path) -> None:
    state = json.loads((run / "preprocess.json").read_text())
    assert not any(c["name"] == "when" for c in state["categorical"])
    assert {"when_year", "when_month", "when_day", "when_weekday", "when_days"} <= set(state["numeric"]["names"])


def target_is_time(tmp: Path) -> list[str]:
    table(tmp / "t.csv", when=np.arange(60))
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "when", "--time", "when"]


def image_folder(tmp: Path, modes: tuple[str, ...], corrupt: bool = False) -> Path:
    rng = np.random.default_rng(0)
    root = tmp / "imgs"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
        for i in range(12):
            mode = modes[i % len(modes)]
            shape = (8, 8, 3) if mode == "RGB" else (8, 8)
            Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8), mode=mode).save(root / c / f"{i}.png")
    if corrupt:
        (root / "dog" / "broken.png").write_bytes(b"not a png at all")
    return root


def mixed_modes(tmp: Path) -> list[str]:
    return ["fit", "--data", str(image_folder(tmp, ("L", "RGB")))]


def three_channels(run: Path) -> None:
    assert json.loads((run / "preprocess.json").read_text())["shape"][0] == 3


def finished(tmp: Path, *more: str) -> list[str]:
    """A complete fit in tmp/run, then the command line `more` (a resume with other flags)."""
    assert runner.invoke(app, ["fit", "--data", "iris", "--out", str(tmp / "run"), *QUICK]).exit_code == 0
    return list(more)


def diverged(tmp: Path) -> list[str]:
    """A run that diverges (plain SGD at lr 100 on a regression), then `tunesmith report` on it."""
    argv = ["fit", "--data", "diabetes", "--set", "train.optimizer=sgd", "--lr", "100", "--out", str(tmp / "run")]
    result = runner.invoke(app, [*argv, *QUICK])
    assert result.exit_code == 2 and "diverged" in result.output, result.output
    return ["report", str(tmp / "run")]


def says_failed(run: Path) -> None:
    page = (run / "report.html").read_text()
    assert "This run failed" in page and "diverged" in page


# ---- tracebacks -------------------------------------------------------------------------------------
def utf16_recipe(tmp: Path) -> list[str]:
    (tmp / "r.yaml").write_bytes("data:\n  source: iris\ntrain:\n  epochs: 1\n".encode("utf-16"))
    return ["fit", str(tmp / "r.yaml"), "--quiet"]


def header_only(tmp: Path) -> list[str]:
    finished(tmp)
    (tmp / "new.csv").write_text("sepal length (cm),sepal width (cm),petal length (cm),petal width (cm)\n")
    return ["predict", str(tmp / "run"), "--data", str(tmp / "new.csv"), "--out", str(tmp / "p.csv")]


def renamed_column(tmp: Path) -> list[str]:
    table(tmp / "t.csv")
    assert (
        runner.invoke(
            app, ["fit", "--data", str(tmp / "t.csv"), "--target", "label", "--out", str(tmp / "run"), *QUICK]
        ).exit_code
        == 0
    )
    pd.read_csv(tmp / "t.csv").rename(columns={"b": "B"}).to_csv(tmp / "new.csv", index=False)
    return ["predict", str(tmp / "run"), "--data", str(tmp / "new.csv"), "--out", str(tmp / "p.csv")]


def a_file(tmp: Path, name: str = "taken") -> Path:
    (tmp / name).write_text("not a directory")
    return tmp / name


# ---- misattributed messages -------------------------------------------------------------------------
def huge_inputs(tmp: Path) -> list[str]:
    table(tmp / "t.csv", big=np.full(60, 1e308) * np.random.default_rng(1).choice([-1, 1], 60))
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label"]


def semicolons(tmp: Path) -> list[str]:
    frame = pd.read_csv(table(tmp / "t.csv"))
    frame.to_csv(tmp / "s.csv", sep=";", index=False)
    return ["fit", "--data", str(tmp / "s.csv"), "--target", "label"]


def all_nan(tmp: Path) -> list[str]:
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": [np.nan] * 120, "b": [np.nan] * 120, "label": rng.integers(0, 2, 120)}).to_csv(
        tmp / "t.csv", index=False
    )
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label"]


def one_group(tmp: Path) -> list[str]:
    table(tmp / "t.csv", g=["x"] * 60)
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label", "--group", "g"]


def two_rows(tmp: Path) -> list[str]:
    (tmp / "t.csv").write_text("a,b,label\n1,2,0\n3,4,1\n")
    return ["fit", "--data", str(tmp / "t.csv"), "--target", "label"]


def recipe_file(tmp: Path, text: str) -> list[str]:
    (tmp / "r.yaml").write_text(text)
    return ["fit", str(tmp / "r.yaml"), "--quiet"]


CASES = [
    # silent success with a wrong result: now right (exit 0, announced) or refused
    Case("one-hot y in an npz", onehot_npz, 0, ("one-hot", "argmax"), task="classification"),
    Case("float 0/1 y in an npz", float01_npz, 0, ("0/1",), task="classification"),
    Case("numbers with text cells", numbers_with_text, 0, ("'c'", "6", "missing"), check=numeric_column_kept),
    Case("date column without --time", date_column, 0, ("'when'", "dates", "--time when"), check=date_expanded),
    Case("--target equal to --time", target_is_time, 2, ("'when'", "target", "time")),
    Case("grey and RGB images mixed", mixed_modes, 0, ("RGB", "grey"), check=three_channels),
    Case(
        "resume with other flags",
        lambda t: finished(t, "fit", "--out", str(t / "run"), "--resume", "--epochs", "5", "--lr", "0.5"),
        2,
        ("train.epochs", "train.lr", "--resume"),
        out="unchecked",
    ),
    Case(
        "resume with other data",
        lambda t: finished(t, "fit", "--out", str(t / "run"), "--resume", "--data", "wine"),
        2,
        ("data.source", "'wine'"),
        out="unchecked",
    ),
    Case("doctor --lr inf", lambda t: ["doctor", "--data", "iris", "--lr", "inf"], 2, ("lr", "finite")),
    Case("fit --lr inf", lambda t: ["fit", "--data", "iris", "--lr", "inf"], 2, ("lr", "finite")),
    Case("fit --set train.lr=nan", lambda t: ["fit", "--data", "iris", "--set", "train.lr=.nan"], 2, ("lr", "finite")),
    Case("tune --timeout inf", lambda t: ["tune", "--data", "iris", "--timeout", "inf"], 2, ("timeout", "finite")),
    Case("report on a diverged run", diverged, 0, (), check=says_failed, out="unchecked"),
    # tracebacks
    Case("corrupt png", lambda t: ["fit", "--data", str(image_folder(t, ("L",), corrupt=True))], 2, ("broken.png",)),
    Case("recipe in UTF-16 with a BOM", utf16_recipe, 0, (), task="classification", out="unchecked"),
    Case(
        "recipe in Latin-1", lambda t: recipe_file_bytes(t, "name: caf\xe9\n".encode("latin-1")), 2, ("r.yaml", "UTF-8")
    ),
    Case("huge seed", lambda t: ["fit", "--data", "iris", "--seed", "99999999999999999999"], 2, ("seed",)),
    Case(
        "negative seed",
        lambda t: ["fit", "--data", "iris", "--seed", "-1"],
        2,
        ("seed", "greater than or equal to 0"),
        absent=("stratif",),
    ),
    Case("predict on a header-only CSV", header_only, 2, ("new.csv", "no rows"), out="unchecked"),
    Case(
        "fit --out is a file",
        lambda t: ["fit", "--data", "iris", "--out", str(a_file(t))],
        2,
        ("taken", "file"),
        out="unchecked",
    ),
    Case(
        "fit --out under a file",
        lambda t: ["fit", "--data", "iris", "--out", str(a_file(t) / "run")],
        2,
        ("taken",),
        out="taken/run",
    ),
    Case(
        "lr-find --out is a file",
        lambda t: ["lr-find", "--data", "iris", "--out", str(a_file(t))],
        2,
        ("taken", "file"),
        out="unchecked",
    ),
    Case(
        "lr-find --out under a file",
        lambda t: ["lr-find", "--data", "iris", "--out", str(a_file(t) / "lr")],
        2,
        ("taken",),
        out="unchecked",
    ),
    Case(
        "doctor --out is a file",
        lambda t: ["doctor", "--data", "iris", "--steps", "20", "--out", str(a_file(t))],
        2,
        ("taken", "file"),
        out="unchecked",
    ),
    Case(
        "predict --out under a file",
        lambda t: finished(
            t, "predict", str(t / "run"), "--data", str(table(t / "x.csv")), "--out", str(a_file(t) / "p.csv")
        ),
        2,
        ("taken", "is a file"),
        out="unchecked",
    ),
    Case(
        "predict --out under a missing folder",
        lambda t: finished(
            t, "predict", str(t / "run"), "--data", str(table(t / "x.csv")), "--out", str(t / "no" / "p.csv")
        ),
        2,
        ("no", "does not exist"),
        out="unchecked",
    ),
    Case(
        "predict --out is a folder",
        lambda t: finished(
            t, "predict", str(t / "run"), "--data", str(table(t / "x.csv")), "--out", str(t / "run" / ".")
        ),
        2,
        ("folder",),
        out="unchecked",
    ),
    # misattributed messages and half-written run directories
    Case("inputs of 1e308", huge_inputs, 2, ("'big'", "1e+308"), absent=("lr",)),
    Case("semicolon-delimited CSV", semicolons, 0, ("';'",), task="classification"),
    Case("one group", one_group, 2, ("'g'", "one group")),
    Case("two-row table", two_rows, 2, ("2 rows",)),
    Case("all-NaN features", all_nan, 2, ("'a'", "'b'", "no values"), absent=("hold out",)),
    Case("renamed column in predict", renamed_column, 2, ("'B'", "'b'"), out="unchecked"),
    Case(
        "sqlite under a missing folder",
        lambda t: ["tune", "--data", "iris", "--storage", f"sqlite:///{t}/no/such/s.db", "--trials", "3"],
        2,
        ("no/such", "does not exist"),
        absent=("host",),
    ),
    Case(
        "worker on a missing study",
        lambda t: ["worker", "--storage", str(t / "s.journal"), "--study", "nope"],
        2,
        ("nope",),
        out="s.journal",
    ),
    Case(
        "journal under a missing folder",
        lambda t: ["tune", "--data", "iris", "--storage", str(t / "no" / "s.journal"), "--trials", "3"],
        2,
        ("does not exist",),
        check=lambda run: None if not (run.parent / "no").exists() else pytest.fail("created the folder"),
    ),
    Case(
        "epochs: true", lambda t: recipe_file(t, "data: {source: iris}\ntrain: {epochs: true}\n"), 2, ("epochs", "true")
    ),
    Case("--cv 1", lambda t: ["fit", "--data", "iris", "--cv", "1"], 2, ("cv", ">= 2")),
]


def recipe_file_bytes(tmp: Path, raw: bytes) -> list[str]:
    (tmp / "r.yaml").write_bytes(raw)
    return ["fit", str(tmp / "r.yaml")]


def run_case(case: Case, tmp: Path) -> tuple[int, str]:
    argv = case.build(tmp)
    if argv[0] in ("fit", "tune", "lr-find") and "--out" not in argv:
        argv += ["--out", str(tmp / case.out)]
    if argv[0] in ("fit", "tune") and "--epochs" not in argv and "--quiet" not in argv:
        argv += ["--quiet"] + (["--epochs", "1"] if argv[0] == "fit" else ["--trials", "3"])
    result = runner.invoke(app, argv)
    return result.exit_code, result.output


@pytest.mark.filterwarnings("error::RuntimeWarning", "error::UserWarning", "error::FutureWarning")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    code, output = run_case(case, tmp_path)
    assert code == case.code, output
    assert "Traceback" not in output and "Warning:" not in output, output
    text = output.lower()
    for word in case.words:
        assert word.lower() in text, (word, output)
    for word in case.absent:
        assert not re.search(rf"\b{re.escape(word.lower())}\b", text), (word, output)
    run = tmp_path / case.out
    if case.code == 2 and case.out != "unchecked":  # nothing left looking started
        assert not run.exists() or (run.is_dir() and not any(run.iterdir())), run
    if case.code == 0 and case.out != "unchecked":
        metrics = json.loads((run / "metrics.json").read_text())
        assert case.task is None or metrics["task"] == case.task
    if case.check is not None:
        case.check(tmp_path / ("run" if case.out == "unchecked" else case.out))


def test_every_row_is_listed() -> None:
    print(f"{len(CASES)} rows")
    assert len({c.name for c in CASES}) == len(CASES) >= 35
