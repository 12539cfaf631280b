"""`tunesmith doctor` on the command line, and the doctor's answers to bad input (exit code 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from typer.testing import CliRunner

from tests.conftest import run_cli
from tests.doctor_cases.data import mlp, tabular
from tunesmith.cli import app
from tunesmith.diagnosis import doctor
from tunesmith.errors import BadInput

runner = CliRunner()


@pytest.fixture
def leaky_csv(tmp_path):
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 3))
    label = (x[:, 0] + x[:, 1] > 0).astype(int)
    frame = pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "refund_issued": label * 2.0, "label": label})
    path = tmp_path / "orders.csv"
    frame.to_csv(path, index=False)
    return path


def test_json_lists_every_check_and_exits_0_even_with_a_failure(leaky_csv, tmp_path) -> None:
    out = tmp_path / "diag"
    result = runner.invoke(
        app, ["doctor", "--data", str(leaky_csv), "--target", "label", "--json", "--steps", "20", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    findings = json.loads(result.output)
    assert len(findings) == 41 and all(
        set(f) == {"check", "status", "summary", "evidence", "advice", "tricks"} for f in findings
    )
    leak = next(f for f in findings if f["check"] == "target_leakage")
    assert leak["status"] == "fail" and "refund_issued" in leak["summary"]
    assert leak["evidence"]["value"] >= leak["evidence"]["threshold"]
    assert json.loads((out / "findings.json").read_text()) == findings
    assert "target_leakage" in (out / "report.html").read_text()


def test_table_output_names_the_fix(leaky_csv) -> None:
    result = runner.invoke(app, ["doctor", "--data", str(leaky_csv), "--target", "label", "--steps", "20"])
    assert result.exit_code == 0
    assert "target_leakage" in result.output and "41 checks: 1 fail" in result.output


def test_model_path_that_does_not_import_exits_2() -> None:
    result = run_cli("doctor", "--data", "iris", "--model", "no_such_pkg.nets:Net")
    assert result.returncode == 2
    assert "no_such_pkg" in result.stderr and "Traceback" not in result.stderr


def test_user_model_whose_forward_fails_shows_the_batch_shape(tmp_path, monkeypatch) -> None:
    (tmp_path / "badnet.py").write_text("from torch import nn\n\n\ndef Net():\n    return nn.Linear(3, 2)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    result = runner.invoke(app, ["doctor", "--data", "wine", "--model", "badnet:Net", "--steps", "20"])
    assert result.exit_code == 2
    assert "forward pass failed on a training batch of shape (16, 13)" in result.output
    assert "mat1 and mat2" in result.output  # torch's own error, shown


def test_nan_target_in_the_data_file_exits_2(tmp_path) -> None:
    frame = pd.DataFrame({"x": [1.0, 2, 3, 4] * 20, "y": [0, 1, np.nan, 1] * 20})
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["doctor", "--data", str(tmp_path / "t.csv"), "--target", "y"])
    assert result.exit_code == 2 and "missing values" in result.output


# ---- bad input through the Python API ----------------------------------------------------------------


def _data():  # type: ignore[no-untyped-def]
    return tabular(n=200)


def test_nan_inputs_are_a_finding_not_a_refusal() -> None:
    (x, y), val = _data()
    x = x.copy()
    x[[3, 7], 1] = np.nan
    x[5, 4] = np.inf
    diagnosis = doctor(mlp(8, 3), train=(x, y), val=val, steps=20, checks=["missing_values", "init_loss"])
    missing = diagnosis["missing_values"]
    assert missing.status == "fail" and missing.evidence["value"] == 3
    assert missing.evidence["train"]["first_rows"] == [3, 5, 7] and missing.evidence["train"]["columns"] == {
        "x[1]": 2,
        "x[4]": 1,
    }
    assert "imputed copy: 3 NaN/inf inputs" in diagnosis["init_loss"].evidence["data"]


def test_loss_returning_a_non_scalar_is_a_mismatch_finding() -> None:
    train, val = _data()
    diagnosis = doctor(
        mlp(8, 3),
        train=train,
        val=val,
        loss_fn=nn.CrossEntropyLoss(reduction="none"),
        batch_size=16,
        steps=20,
        checks=["loss_output_mismatch", "init_loss", "lr_too_high"],
    )
    assert diagnosis["loss_output_mismatch"].status == "fail"
    assert "returned (16,)" in diagnosis["loss_output_mismatch"].summary
    assert diagnosis["init_loss"].status == diagnosis["lr_too_high"].status == "skipped"


def test_empty_dataloader_is_refused() -> None:
    empty = DataLoader(TensorDataset(torch.zeros(0, 8), torch.zeros(0, dtype=torch.long)), batch_size=8)
    with pytest.raises(BadInput, match="yields no batches"):
        doctor(mlp(8, 3), train=empty)


def test_mismatched_x_and_y_are_refused() -> None:
    (x, y), val = _data()
    with pytest.raises(BadInput, match=r"differ in length \(150 vs 149 rows\)"):
        doctor(mlp(8, 3), train=(x, y[:-1]), val=val)


def test_forward_failure_names_the_batch_shape() -> None:
    train, val = _data()
    with pytest.raises(BadInput, match=r"failed on a training batch of shape \(32, 8\)"):
        doctor(nn.Linear(5, 3), train=train, val=val, batch_size=32)
