"""The LR range test (T31): the caller's objects stay bit-identical, the rules read curves right,
disagreement falls back to the task default, the seed spread is reported, and the CLI writes its files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.conftest import run_cli
from tunesmith.errors import BadInput
from tunesmith.recipe import TrainConfig
from tunesmith.train.lr_find import RULES, decide, lr_find, suggest
from tunesmith.train.trainer import Trainer

CFG = TrainConfig.model_validate(
    {"batch_size": 32, "lr": 1e-3, "optimizer": "adamw", "schedule": "constant", "epochs": 2, "checkpoint": False}
)


def _data(n: int = 512) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 8)).astype(np.float32)
    return x, (x[:, 0] + x[:, 1] > 0).astype(np.int64)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 2))


def _snapshot(model: nn.Module, optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    clone = lambda t: t.clone() if isinstance(t, torch.Tensor) else t  # noqa: E731
    opt = optimizer.state_dict()
    state = {k: {n: clone(v) for n, v in s.items()} for k, s in opt["state"].items()}
    groups = [{k: v for k, v in g.items() if k != "params"} for g in opt["param_groups"]]
    return {k: v.clone() for k, v in model.state_dict().items()}, {"state": state, "groups": groups}


def test_a_finder_run_after_training_leaves_model_optimizer_and_rng_bit_identical() -> None:
    x, y = _data()
    trainer = Trainer(_model(), cfg=CFG, task="classification")
    trainer.fit((x, y))  # a trained model with real optimizer state (Adam moments, step counts)
    model, optimizer = trainer.model, trainer.optimizer
    assert optimizer is not None and optimizer.state  # the state we must not disturb exists
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)  # patches optimizer.step
    weights, opt_state = _snapshot(model, optimizer)
    sched_state, rng, training = scheduler.state_dict(), torch.get_rng_state(), model.training

    result = lr_find(model, (x, y), task="classification", cfg=CFG, optimizer=optimizer, steps=40)

    assert len(result.lrs) > 10 and np.isfinite(result.smoothed).all()
    after_weights, after_opt = _snapshot(model, optimizer)
    assert weights.keys() == after_weights.keys()
    for name, value in weights.items():  # parameters and BatchNorm running statistics
        assert torch.equal(value, after_weights[name]), name
    assert opt_state["groups"] == after_opt["groups"]  # lr, betas, weight decay untouched
    for key, entry in opt_state["state"].items():
        for name, value in entry.items():
            assert torch.equal(value, after_opt["state"][key][name]) if isinstance(value, torch.Tensor) else True
    assert scheduler.state_dict() == sched_state
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's next shuffle/dropout draw is unchanged
    assert model.training == training


def test_the_sweep_is_exponential_stops_on_divergence_and_finds_a_working_lr() -> None:
    x, y = _data()
    threads = torch.get_num_threads()
    one_thread = CFG.model_copy(update={"threads": 1})
    result = lr_find(_model(), (x, y), task="classification", cfg=one_thread, start_lr=1e-6, end_lr=100.0, steps=60)
    assert torch.get_num_threads() == threads  # the recipe's thread count applied to the sweep only
    lrs = np.asarray(result.lrs)
    assert lrs[0] == pytest.approx(1e-6)
    assert np.allclose(lrs[1:] / lrs[:-1], (1e8) ** (1 / 59))  # constant ratio: exponential
    assert len(lrs) < 60  # AdamW at lr 100 diverges: the 4x stop ended the sweep early
    assert result.smoothed[-1] > 4 * min(result.smoothed) * 0.999
    assert set(result.suggestions) == set(RULES)
    assert 1e-5 < result.suggestions["valley"] < 10.0
    # training with the suggestion learns: loss at the valley is below the starting loss
    at = np.interp(np.log(result.suggestions["valley"]), np.log(lrs), result.smoothed)
    assert at < result.smoothed[0]


def test_rules_on_a_known_curve() -> None:
    lrs = np.geomspace(1e-6, 1.0, 100)
    log = np.log10(lrs)
    # a plateau at 2.0, a sigmoid descent centred on 1e-3, the bottom near 1e-2, then a parabolic blow-up
    loss = 2 - 1.5 / (1 + np.exp(-3 * (log + 3))) + np.where(log > -2, 3 * (log + 2) ** 2, 0.0)
    found = suggest(lrs, loss)
    assert found["steepest"] == pytest.approx(1e-3, rel=0.2)  # the sigmoid's centre
    assert found["minimum"] == pytest.approx(lrs[np.argmin(loss)] / 10)
    assert 1e-4 < found["valley"] < found["steepest"]  # inside the descent, on its safe side
    assert 1e-4 < found["slide"] < 1e-2
    suggestion, agree, warning = decide(found, 1e-3)
    assert agree and warning is None and suggestion == found["valley"]


def test_rules_that_disagree_fall_back_to_the_task_default_with_a_warning() -> None:
    suggestion, agree, warning = decide({"valley": 1e-2, "minimum": 3e-2, "steepest": 1e-5, "slide": 2e-2}, 1e-3)
    assert (suggestion, agree) == (1e-3, False)
    assert warning is not None and "3000x" in warning and "1.0e-03" in warning


def test_seeds_report_the_spread_and_take_the_median() -> None:
    x, y = _data()
    result = lr_find(_model(), (x, y), task="classification", cfg=CFG, steps=40, seeds=(0, 1, 2))
    spread = result.spread
    assert spread["seeds"] == [0, 1, 2]
    for rule in RULES:
        values = spread["suggestions"][rule]
        assert len(values) == 3
        assert result.suggestions[rule] == pytest.approx(sorted(values)[1])  # the median of three
        assert spread["ratio"][rule] == pytest.approx(max(values) / min(values))
    assert spread["suggestions"]["valley"] != [spread["suggestions"]["valley"][0]] * 3  # the seed moves it


def test_json_format_plot_and_loader_input(tmp_path: Path) -> None:
    x, y = _data(256)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=16, shuffle=True)
    result = lr_find(_model(), loader, task="classification", steps=30)
    path = result.to_json(tmp_path)
    saved = json.loads(path.read_text())
    assert path.name == "lr_find.json"
    assert list(saved) == ["lrs", "losses", "smoothed", "suggestions", "suggestion", "agree", "warning", "spread"]
    assert list(saved["suggestions"]) == ["valley", "minimum", "steepest", "slide"]
    assert saved["suggestion"] == result.suggestion and len(saved["lrs"]) == len(saved["smoothed"])
    png = result.plot(tmp_path / "lr_find.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [({"start_lr": 1.0, "end_lr": 0.1}, "start_lr"), ({"steps": 5}, "steps"), ({"diverge": 1.0}, "diverge")],
)
def test_bad_arguments_name_the_parameter(kwargs: dict, field: str) -> None:
    x, y = _data(64)
    with pytest.raises(BadInput, match=f"'{field}' parameter of lr_find"):
        lr_find(_model(), (x, y), task="classification", **kwargs)


def test_a_sweep_that_diverges_at_once_is_refused() -> None:
    x, y = _data(64)
    x[0, 0] = np.nan  # a non-finite loss from the first batch on
    with pytest.raises(BadInput, match="diverged after"):
        lr_find(_model(), (x, y), task="classification", cfg=CFG.model_copy(update={"batch_size": 64}), steps=30)


@pytest.mark.slow
def test_cli_prints_the_evidence_and_writes_json_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "lr"
    done = run_cli(
        "lr-find", "--data", "iris", "--out", str(out), "--seeds", "2", "--steps", "30", "--set", "train.threads=1"
    )
    assert done.returncode == 0, done.stderr
    assert "suggested lr" in done.stdout and "valley" in done.stdout and "swing over seeds [0, 1]" in done.stdout
    saved = json.loads((out / "lr_find.json").read_text())
    assert saved["spread"]["seeds"] == [0, 1] and (out / "lr_find.png").stat().st_size > 10_000
    bad = run_cli("lr-find", "--data", "nosuch.csv", "--out", str(tmp_path / "x"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and "Traceback" not in bad.stderr
