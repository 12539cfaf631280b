"""The batch-size finder (T33): it doubles while throughput scales, stops at the memory budget (RSS on
the CPU, the allocator on a GPU), survives out-of-memory errors, and verifies its pick with an eval step."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import tunesmith.train.batch_size as batch_size_module
from tunesmith.errors import BadInput
from tunesmith.recipe import TrainConfig
from tunesmith.train.batch_size import find_batch_size

CFG = TrainConfig.model_validate({"batch_size": 32, "lr": 1e-3, "optimizer": "adamw"})
MiB = 2**20


def _data(n: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int64)


CLOCK = [0.0]


@pytest.fixture(autouse=True)
def virtual_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The finder times steps with perf_counter; here each reading advances 10 ms plus what a Probe
    "spends", so throughput is set by the test, not by the machine's load."""

    def perf_counter() -> float:
        CLOCK[0] += 0.01
        return CLOCK[0]

    monkeypatch.setattr(batch_size_module, "time", SimpleNamespace(perf_counter=perf_counter))


class Probe(nn.Module):
    """A tiny classifier whose cost and failures are set by hand: a fixed sleep per step (time that a
    bigger batch amortizes), a sleep per row (time it cannot), and an out-of-memory error above a size."""

    def __init__(self, *, per_step: float = 0.0, per_row: float = 0.0, oom_train: int = 10**9, oom_eval: int = 10**9):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.per_step, self.per_row, self.oom_train, self.oom_eval = per_step, per_row, oom_train, oom_eval

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(x) > (self.oom_train if self.training else self.oom_eval):
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory (simulated at batch {len(x)})")
        CLOCK[0] += self.per_step + self.per_row * len(x)  # virtual time: no test reads the wall clock
        return self.lin(x)


class Wide(nn.Module):
    """Few parameters, 64 KiB of saved activation per row: memory, not compute, limits the batch."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))
        self.lin = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wide = x.repeat(1, 4096) * self.scale  # (B, 16384), kept for the backward pass
        return self.lin(wide.view(len(x), 4096, 4).mean(1))


def _find(model: nn.Module, data: object = None, **kwargs: object):  # type: ignore[no-untyped-def]
    return find_batch_size(model, data or _data(), task="classification", cfg=CFG, device="cpu", **kwargs)


def test_grows_while_a_bigger_batch_amortizes_the_step_and_stops_at_the_cap() -> None:
    model = Probe(per_step=0.03)  # the step costs 30 ms whatever its size: doubling doubles examples/s
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = _find(model, max_batch=128)
    assert [t["batch_size"] for t in result.trials] == [16, 32, 64, 128]
    assert result.batch_size == 128 and result.reason.startswith("stopped at the cap of 128")
    assert "verified with a train, optimizer and eval step at 128" in result.reason
    rates = [t["examples_per_s"] for t in result.trials]
    assert rates[-1] > 2 * rates[0]
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the caller's model is untouched


def test_stops_when_examples_per_second_stop_scaling() -> None:
    result = _find(Probe(per_row=0.01))  # 10 ms a row swamps the fixed cost: a bigger batch buys nothing
    assert [t["batch_size"] for t in result.trials] == [16, 32]
    assert result.batch_size == 16 and result.reason.startswith("throughput: batch 32 gave")


def test_the_rss_budget_holds_on_the_cpu() -> None:
    budget, margin = 48 * MiB, 0.25
    result = _find(Wide(), budget_bytes=budget, margin=margin, max_batch=1024, min_gain=-1.0)
    limit = budget * (1 - margin)
    # batch 1024 keeps >= 64 MiB of activations alive: it must never be picked under a 36 MiB limit
    assert result.batch_size <= 512 and result.reason.startswith("memory: batch")
    picked = [t for t in result.trials if t["batch_size"] <= result.batch_size]
    assert all(t["peak_bytes"] <= limit for t in picked)
    unlimited = _find(Wide(), max_batch=1024, min_gain=-1.0)  # the same search without the budget goes on
    assert unlimited.batch_size == 1024 and unlimited.trials[-1]["peak_bytes"] > limit


def test_an_out_of_memory_error_stops_the_growth_at_the_last_size_that_ran() -> None:
    result = _find(Probe(oom_train=64), max_batch=512, min_gain=-1.0)
    assert [t["batch_size"] for t in result.trials] == [16, 32, 64]
    assert result.batch_size == 64 and result.reason.startswith("memory: batch 128 ran out of memory")


def test_the_verification_eval_step_halves_a_pick_that_fails() -> None:
    result = _find(Probe(oom_eval=32), max_batch=128, min_gain=-1.0)
    assert result.trials[-1]["batch_size"] == 128  # training steps ran up to the cap ...
    assert result.batch_size == 32  # ... but evaluation at 128 and 64 ran out of memory
    assert "batch 128 ran out of memory in its verification step" in result.reason
    assert "verified with a train, optimizer and eval step at 32" in result.reason


def test_a_loader_is_rebatched_and_the_default_cap_is_a_quarter_of_the_rows() -> None:
    x, y = _data(256)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=8)
    result = _find(Probe(per_step=0.03), loader)
    assert result.batch_size == 64 and [t["batch_size"] for t in result.trials] == [16, 32, 64]


def test_nothing_fits_and_bad_arguments_are_refused() -> None:
    with pytest.raises(BadInput, match="Even a batch of 1"):
        _find(Probe(oom_train=0))
    with pytest.raises(BadInput, match="'margin' parameter of find_batch_size"):
        _find(Probe(), margin=1.0)
    with pytest.raises(BadInput, match="'max_batch' parameter"):
        _find(Probe(), max_batch=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_device_memory_budget_holds_on_a_gpu() -> None:
    x, y = _data(65536)
    budget = 64 * MiB
    result = find_batch_size(
        Wide(), (x, y), task="classification", cfg=CFG, device="cuda", budget_bytes=budget, min_gain=-1.0
    )
    assert result.batch_size < 16384 and result.reason.startswith("memory: batch")
    assert all(t["peak_bytes"] <= budget * 0.75 for t in result.trials if t["batch_size"] <= result.batch_size)
