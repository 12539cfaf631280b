"""The CLI: fast --help without torch, and every bad input of issue 7 -> exit 2, one paragraph, nothing left behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tunesmith.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_cli_import_does_not_load_torch() -> None:
    heavy = "('torch', 'optuna', 'sklearn', 'matplotlib', 'tokenizers', 'transformers')"
    code = f"import sys, tunesmith.cli; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0 and "fit" in result.output


def test_python_api_is_lazy_and_callable() -> None:
    code = "import sys, tunesmith as ts; assert 'torch' not in sys.modules; print(callable(ts.fit), ts.Recipe.__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "Recipe"]


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=60), "b": rng.normal(size=60), "label": rng.integers(0, 2, 60)})
    frame.loc[3, "a"] = np.nan
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return path


def bad(tmp_path: Path, *args: str, expect: str) -> None:
    out = tmp_path / "run"
    result = invoke("fit", *args, "--out", str(out), "--quiet")
    assert result.exit_code == 2, result.output
    message = result.output
    assert expect in message, message
    assert "Traceback" not in message
    assert not (out / "metrics.json").exists()  # never left looking complete
    assert not out.exists() or not any(out.iterdir())


def test_missing_file(tmp_path: Path) -> None:
    bad(tmp_path, "--data", str(tmp_path / "nope.csv"), "--target", "y", expect="does not exist")


def test_builtin_typo_suggests_the_set(tmp_path: Path) -> None:
    bad(tmp_path, "--data", "digts", expect="Did you mean the built-in set 'digits'")


def test_unreadable_csv(tmp_path: Path) -> None:
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\x00\x9f\x92\x96" * 50)
    bad(tmp_path, "--data", str(path), "--target", "y", expect=str(path))


def test_target_column_absent_lists_columns(tmp_path: Path, table: Path) -> None:
    bad(tmp_path, "--data", str(table), "--target", "lable", expect="Did you mean 'label'? Columns: a, b, label")


def test_missing_target_flag(tmp_path: Path, table: Path) -> None:
    bad(tmp_path, "--data", str(table), expect="--target")


def test_nan_features_refused_when_imputation_is_off(tmp_path: Path, table: Path) -> None:
    bad(tmp_path, "--data", str(table), "--target", "label", "--set", "data.impute=none", expect="data.impute")


def test_single_class_target(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    pd.DataFrame({"a": np.arange(30.0), "y": ["same"] * 30}).to_csv(path, index=False)
    bad(tmp_path, "--data", str(path), "--target", "y", expect="single class")


def test_fewer_rows_than_folds(tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    pd.DataFrame({"a": np.arange(12.0), "y": np.arange(12.0) * 2.5}).to_csv(path, index=False)
    bad(tmp_path, "--data", str(path), "--target", "y", "--cv", "20", expect="more folds than there are rows")


def test_image_folder_without_images(tmp_path: Path) -> None:
    (tmp_path / "imgs" / "cat").mkdir(parents=True)
    (tmp_path / "imgs" / "cat" / "notes.md").write_text("no images here")  # a .txt would make a text folder
    bad(tmp_path, "--data", str(tmp_path / "imgs"), expect="holds no images")


def test_image_folder_with_mixed_sizes(tmp_path: Path) -> None:
    from PIL import Image

    for label, size in (("a", 8), ("b", 10)):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        Image.fromarray(np.zeros((size, size), np.uint8)).save(tmp_path / "imgs" / label / "0.png")
    bad(tmp_path, "--data", str(tmp_path / "imgs"), expect="different sizes")


def test_npz_without_x_or_y(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", features=np.zeros((10, 2)))
    bad(tmp_path, "--data", str(tmp_path / "d.npz"), expect="lacks the array(s) x, y")


def test_npz_length_mismatch(tmp_path: Path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((10, 2)), y=np.zeros(9))
    bad(tmp_path, "--data", str(tmp_path / "d.npz"), expect="differ in length (10 vs 9 rows)")


@pytest.mark.parametrize(
    ("flag", "value", "expect"),
    [
        ("--lr", "-0.1", "'lr' parameter of train must be greater than 0"),
        ("--lr", "0", "'lr' parameter of train must be greater than 0"),
        ("--batch-size", "0", "'batch_size' parameter of train must be greater than or equal to 1"),
        ("--epochs", "0", "'epochs' parameter of train must be greater than or equal to 1"),
    ],
)
def test_non_positive_numbers(tmp_path: Path, flag: str, value: str, expect: str) -> None:
    bad(tmp_path, "--data", "iris", flag, value, expect=expect)


def test_unknown_recipe_key_suggests_the_closest(tmp_path: Path) -> None:
    bad(
        tmp_path,
        "--data",
        "iris",
        "--set",
        "train.learning_rate=0.1",
        expect="Unknown recipe key 'train.learning_rate'",
    )
    bad(tmp_path, "--data", "iris", "--set", "modle.width=3", expect="Did you mean 'model'?")


def test_resume_from_a_corrupt_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke("fit", "--data", "iris", "--epochs", "2", "--out", str(out), "--quiet").exit_code == 0
    (out / "metrics.json").unlink()  # as if killed before the end
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = invoke("fit", "--out", str(out), "--resume", "--quiet")
    assert result.exit_code == 2 and "is corrupt" in result.output and "Traceback" not in result.output
    assert not (out / "metrics.json").exists()


def test_resume_needs_a_run(tmp_path: Path) -> None:
    result = invoke("fit", "--out", str(tmp_path / "empty"), "--resume")
    assert result.exit_code == 2 and "Nothing to resume" in result.output


def test_existing_run_directory_is_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert invoke("fit", "--data", "iris", "--epochs", "1", "--out", str(out), "--quiet").exit_code == 0
    result = invoke("fit", "--data", "iris", "--epochs", "1", "--out", str(out), "--quiet")
    assert result.exit_code == 2 and "already holds a complete run" in result.output


def test_api_functions_survive_importing_their_modules() -> None:
    # a submodule named like an API function would replace it on the package once imported
    code = (
        "import tunesmith as ts, tunesmith.fitting, tunesmith.tuning, tunesmith.prediction, tunesmith.diagnosis, "
        "tunesmith.comparison\n"
        "print(all(callable(getattr(ts, n)) for n in ('fit', 'tune', 'predict', 'doctor', 'compare', 'lr_find')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_a_warning_is_shown_once_per_command(capsys: pytest.CaptureFixture[str]) -> None:
    """A tune reads its data once per split design: what it infers is said once, and again by the next command."""
    import logging

    from tunesmith.cli import _log_to_stderr

    log = logging.getLogger("tunesmith")
    for _ in range(2):
        _log_to_stderr(logging.WARNING)
        log.warning("Column %r holds dates.", "when")
        log.warning("Column %r holds dates.", "when")
        log.warning("Column %r holds dates.", "then")
    assert capsys.readouterr().err.splitlines() == 2 * [
        "warning: Column 'when' holds dates.",
        "warning: Column 'then' holds dates.",
    ]
