"""LayerMonitor (T65, T66): exact per-layer numbers on the sampled batch, hooks gone after it, resumable."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunesmith.recipe import TrainConfig
from tunesmith.train.callbacks import Callback
from tunesmith.train.losses import default_loss
from tunesmith.train.monitor import COLUMNS, LayerMonitor
from tunesmith.train.trainer import Trainer


def _model() -> nn.Sequential:
    """Two of six ReLU units are dead (bias -100) and three of six tanh units saturated (bias +-50)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3))
    with torch.no_grad():
        net[0].bias[:2] = -100.0
        net[2].weight.mul_(0.1)
        net[2].bias[:3] = torch.tensor([50.0, -50.0, 50.0])
    return net


def _data() -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(32, 4, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=False)  # the first batch is x[:8]


def _train(net: nn.Module, path: Path, *, epochs: int, extra: list[Callback] | None = None) -> LayerMonitor:
    cfg = TrainConfig(epochs=epochs, batch_size=8, lr=1e-6, optimizer="sgd", schedule="constant", weight_decay=0.0)
    monitor = LayerMonitor(path)
    Trainer(net, cfg=cfg, task="classification", callbacks=[monitor, *(extra or [])]).fit(_data())
    return monitor


def test_first_epoch_rows_equal_a_hand_computed_pass_over_the_first_batch(tmp_path: Path) -> None:
    net = _model()
    reference = copy.deepcopy(net)
    _train(net, tmp_path / "layers.csv", epochs=2)

    xb, yb = next(iter(_data()))
    hidden = reference[1](reference[0](xb))
    squashed = reference[3](reference[2](hidden))
    default_loss("classification")(reference[4](squashed), yb).backward()

    rows = pd.read_csv(tmp_path / "layers.csv", dtype={"layer": str})
    assert list(rows.columns) == COLUMNS
    assert sorted(rows["epoch"].unique()) == [1, 2]
    first = rows[rows["epoch"] == 1].set_index("layer")
    assert list(first.index) == ["0", "1", "2", "3", "4"]  # forward order: Linear, ReLU, Linear, Tanh, Linear
    for name in ("0", "2", "4"):
        expected = torch.cat([p.grad.flatten() for p in reference[int(name)].parameters()]).norm().item()
        assert first.loc[name, "grad_norm"] == pytest.approx(expected, rel=1e-5)
    assert first.loc["1", "dead_frac"] == pytest.approx(2 / 6)
    assert first.loc["3", "saturated_frac"] == pytest.approx(3 / 6)
    assert first.loc["1", "act_mean"] == pytest.approx(hidden.mean().item(), rel=1e-5)
    assert first.loc["3", "act_std"] == pytest.approx(squashed.std().item(), rel=1e-5)
    assert pd.isna(first.loc["1", "grad_norm"]) and pd.isna(first.loc["0", "act_mean"])  # not measured there


class _HookCount(Callback):
    """Counts hooks left on the model after each batch (runs after the monitor)."""

    def __init__(self) -> None:
        self.after_batch: list[int] = []

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        modules = list(trainer.model.modules())
        self.after_batch.append(sum(len(m._forward_hooks) for m in modules))


def test_hooks_live_for_one_batch_per_epoch_only(tmp_path: Path) -> None:
    net = _model()
    probe = _HookCount()
    _train(net, tmp_path / "layers.csv", epochs=2, extra=[probe])
    assert probe.after_batch == [0] * 8  # 2 epochs x 4 batches, none left hooked after the sampled batch
    assert all(not p._backward_hooks for p in net.parameters())


def test_rows_survive_a_weights_only_checkpoint(tmp_path: Path) -> None:
    monitor = _train(_model(), tmp_path / "layers.csv", epochs=1)
    buffer = io.BytesIO()
    torch.save(monitor.state_dict(), buffer)
    buffer.seek(0)
    resumed = LayerMonitor(tmp_path / "again.csv")
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    assert resumed.rows == monitor.rows and len(resumed.rows) == 5


def test_fit_writes_no_layers_csv_when_the_monitor_is_off(tmp_path: Path) -> None:
    from tunesmith.fitting import fit

    result = fit(data="iris", epochs=1, out=tmp_path / "run", progress=False, overrides={"train.monitor": False})
    assert not (result.run_dir / "layers.csv").exists()
    assert 'id="layers"' not in (result.run_dir / "report.html").read_text()
