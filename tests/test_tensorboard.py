"""TensorBoard callback: the event files hold exactly the history.csv curves, per fold, plus the HParams table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tunesmith.cli import app
from tunesmith.errors import BadInput
from tunesmith.recipe import TrainConfig
from tunesmith.train.tensorboard import TensorBoard
from tunesmith.train.trainer import Trainer


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_fit_flag_writes_every_history_column_per_epoch(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "run"
    result = CliRunner().invoke(
        app, ["fit", "--data", "iris", "--epochs", "3", "--tensorboard", "--out", str(run), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    logged = scalars(run / "tensorboard")
    history = pd.read_csv(run / "history.csv")
    for column in history.columns.drop("epoch"):
        steps, values = zip(*logged[column], strict=True)
        assert list(steps) == history["epoch"].tolist()
        np.testing.assert_allclose(values, history[column], rtol=1e-6)  # float32 in the event file
    assert [step for step, _ in logged["hparam/val_loss"]] == [3]  # never a step backwards: TensorBoard would purge
    best = history.loc[history["val_loss"].idxmin()]  # the epoch whose weights the run keeps (T43)
    assert logged["hparam/val_accuracy"][0][1] == pytest.approx(best["val_accuracy"], rel=1e-6)


def test_cross_validation_logs_one_run_per_fold(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    run = tmp_path / "cv"
    result = CliRunner().invoke(
        app, ["fit", "--data", "iris", "--epochs", "2", "--cv", "2", "--tensorboard", "--out", str(run), "--quiet"]
    )
    assert result.exit_code == 0, result.output
    for fold in ("fold-1", "fold-2"):
        assert [step for step, _ in scalars(run / fold / "tensorboard")["val_loss"]] == [1, 2]


def test_a_plain_trainer_needs_a_log_dir_and_takes_trial_hparams(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch import nn

    x = np.random.default_rng(0).normal(size=(64, 3)).astype(np.float32)
    data = (x, x[:, :1] * 2)
    cfg = TrainConfig(epochs=2, lr=1e-2, batch_size=16, optimizer="adam", schedule="constant")
    with pytest.raises(BadInput, match=r"Pass TensorBoard\(log_dir=\.\.\.\)"):
        Trainer(nn.Linear(3, 1), cfg=cfg, task="regression", callbacks=[TensorBoard()]).fit(data, data)
    board = TensorBoard(tmp_path / "trial-7", hparams={"lr": 1e-2, "width": 8})
    Trainer(nn.Linear(3, 1), cfg=cfg, task="regression", callbacks=[board]).fit(data, data)
    assert [step for step, _ in scalars(tmp_path / "trial-7")["val_rmse"]] == [1, 2]
    events = EventAccumulator(str(tmp_path / "trial-7"))
    events.Reload()
    assert b"width" in events.PluginTagToContent("hparams")["_hparams_/session_start_info"]


def test_missing_tensorboard_is_bad_input_before_training(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    with pytest.raises(BadInput, match=r"pip install 'tunesmith\[tensorboard\]'"):
        TensorBoard()
