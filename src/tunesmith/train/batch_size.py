"""The batch-size finder (T33): the largest power of two that still buys throughput and fits in memory.

Batch size is a throughput choice, not a knob for the validation score (Deep Learning Tuning
Playbook, "Choosing the batch size"): other hyperparameters, the LR first, are retuned for it.
The finder doubles the batch from 16 while examples/second still rise by at least 10% per
doubling and the memory a training step needs stays within the budget less a safety margin,
then verifies the pick with a real train step + optimizer step + eval step (halving on failure).
A size's examples/second is the median over its timed steps, so one stalled step on a shared
machine does not decide the search.

Memory: on a GPU, `torch.cuda.max_memory_allocated` against the device's memory. On the CPU, the
growth of the process's resident memory (psutil), sampled by hooks after the forward pass
(activations alive) and before the optimizer step (gradients alive), against the memory
available when the search starts. Before each doubling the need is extrapolated from the sizes
already measured, so a CPU search stops short of the kernel's OOM killer; a GPU OOM is caught.

Gradient accumulation (T33, `train.effective_batch_size`) is deliberately not used here: it adds
no throughput. It is the seeds' answer when a recipe needs a larger *effective* batch than memory
allows (contrastive and representation learning, where the batch supplies the negatives): keep
the batch found here and accumulate k of them. After changing the batch size, retune the LR
(`tunesmith lr-find`): the best LR moves with the batch size.

Sources: Godbole et al., "Deep Learning Tuning Playbook" (2023); Lightning
`tuner/batch_size_scaling.py` (power scaling until an OOM, which is caught and halved).
"""

from __future__ import annotations

import copy
import ctypes
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tunesmith.errors import BadInput, must_be
from tunesmith.recipe import TrainConfig
from tunesmith.repro import torch_threads
from tunesmith.train.trainer import DataArg, Trainer, forever, probe_trainer, resolve_device

__all__ = ["BatchSizeResult", "find_batch_size"]

START = 16  # first size tried (smaller sizes are measured only when 16 does not fit)
MIN_GAIN = 0.10  # a doubling must raise examples/second by this much to be worth it
MIN_STEPS, MIN_SECONDS = 5, 0.2  # each size is timed over at least this many steps and seconds


@dataclass
class BatchSizeResult:
    batch_size: int
    trials: list[dict[str, Any]]  # {batch_size, examples_per_s, peak_bytes} per size measured
    reason: str  # why the search stopped where it did, and the verification

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_batch_size(
    model: nn.Module,
    train: DataArg,
    *,
    task: str,
    cfg: TrainConfig,
    device: str | torch.device,
    budget_bytes: int | None = None,
    max_batch: int | None = None,
    margin: float = 0.25,
    min_gain: float = MIN_GAIN,
) -> BatchSizeResult:
    """Find the batch size for training `model` (a copy is trained; the original is untouched).

    train: what `Trainer.batches` accepts; a DataLoader is re-batched from its dataset.
    budget_bytes: memory the training step may use; None: device memory (GPU) or available RAM (CPU).
    max_batch: the largest size considered; None: a quarter of the rows (at least 4 steps an epoch, T07).
    margin: share of the budget kept free (fragmentation, evaluation, other processes).
    min_gain: the examples/second gain a doubling must bring; a negative value grows to the cap or budget.
    """
    if not 0 <= margin < 1:
        raise BadInput(must_be("margin", "find_batch_size", "a float in [0, 1)", margin))
    if max_batch is not None and max_batch < 1:
        raise BadInput(must_be("max_batch", "find_batch_size", "an int >= 1 or None", max_batch))
    device = device if isinstance(device, torch.device) else resolve_device(str(device))
    data = train.dataset if isinstance(train, DataLoader) else train
    cap = _pow2_floor(max_batch if max_batch is not None else max(1, _rows(data) // 4))
    trainer = probe_trainer(copy.deepcopy(model), cfg.model_copy(update={"device": device.type}), task=task)
    meter = _Meter(trainer, budget_bytes)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch_threads(cfg.threads):
        torch.manual_seed(cfg.seed)
        size, trials, reason = _grow(
            trainer, data, cap=cap, meter=meter, limit=meter.budget * (1 - margin), gain=min_gain
        )
        size, reason = _verify(trainer, data, size, reason)
    return BatchSizeResult(size, trials, reason + "; retune the LR for this batch size")


def _grow(
    trainer: Trainer, data: Any, *, cap: int, meter: _Meter, limit: float, gain: float
) -> tuple[int, list[dict[str, Any]], str]:
    """Double from START while throughput scales and memory holds: (size, trials, reason)."""
    trials: list[dict[str, Any]] = []
    size = min(START, cap)
    while True:  # the first size must fit: halve until it does
        first = _trial(trainer, data, size, meter)
        if first is not None:
            trials.append(first)
            if first["peak_bytes"] <= limit:
                break
        if size == 1:
            raise BadInput(
                f"Even a batch of 1 needs more memory than the budget ({_mb(limit)} after the margin). "
                "Use a smaller model, a larger budget_bytes, or another device."
            )
        size //= 2
    current = first
    while True:
        bigger = size * 2
        if bigger > cap:
            return size, trials, f"stopped at the cap of {cap} (max_batch, or a quarter of the rows)"
        need = _extrapolate([t for t in trials if t["peak_bytes"] <= limit], bigger)
        if need > limit:
            return size, trials, f"memory: batch {bigger} would need about {_mb(need)}, over the {_mb(limit)} allowed"
        trial = _trial(trainer, data, bigger, meter)
        if trial is None:
            return size, trials, f"memory: batch {bigger} ran out of memory"
        trials.append(trial)
        if trial["peak_bytes"] > limit:
            return size, trials, f"memory: batch {bigger} needed {_mb(trial['peak_bytes'])}, over {_mb(limit)}"
        rise = trial["examples_per_s"] / current["examples_per_s"] - 1
        if rise < gain:
            return (
                size,
                trials,
                (
                    f"throughput: batch {bigger} gave {rise:+.0%} examples/s over {size} (less than {gain:.0%}): "
                    "a larger batch buys no speed"
                ),
            )
        size, current = bigger, trial


def _trial(trainer: Trainer, data: Any, size: int, meter: _Meter) -> dict[str, Any] | None:
    """Time real training steps at `size`: {batch_size, examples_per_s, peak_bytes}, or None on OOM."""
    trainer.cfg = trainer.cfg.model_copy(update={"batch_size": size})  # Trainer.batches reads it
    meter.reset()
    try:
        batches = forever(trainer.batches(data, train=True))
        trainer.train_step(*next(batches))  # warm-up: lazy optimizer state, allocator caches
        meter.sync()
        rates: list[float] = []  # examples/second of each step: their median shrugs off a stall on a busy machine
        started = time.perf_counter()
        while len(rates) < MIN_STEPS or time.perf_counter() - started < MIN_SECONDS:
            xb, yb = next(batches)
            begun = time.perf_counter()
            trainer.train_step(xb, yb)
            meter.sync()  # CUDA: the step's kernels finish before the clock is read
            rates.append(len(xb) / (time.perf_counter() - begun))
    except Exception as exc:
        if not _is_oom(exc):
            raise
        trainer.optimizer.zero_grad(set_to_none=True)
        meter.release()
        return None
    return {"batch_size": size, "examples_per_s": statistics.median(rates), "peak_bytes": meter.peak()}


def _verify(trainer: Trainer, data: Any, size: int, reason: str) -> tuple[int, str]:
    """Run a real train step + optimizer step + eval step at `size`; halve until they run."""
    while True:
        trainer.cfg = trainer.cfg.model_copy(update={"batch_size": size})
        try:
            xb, yb = next(forever(trainer.batches(data, train=True)))
            trainer.train_step(xb, yb)
            trainer.evaluate((xb, yb))
            trainer.model.train()
            return size, f"{reason}; verified with a train, optimizer and eval step at {size}"
        except Exception as exc:
            if not _is_oom(exc) or size == 1:
                raise
            trainer.optimizer.zero_grad(set_to_none=True)
            reason = f"{reason}; batch {size} ran out of memory in its verification step"
            size //= 2


class _Meter:
    """Peak memory of the steps since `reset`: the CUDA allocator's counter, or RSS growth sampled by hooks."""

    def __init__(self, trainer: Trainer, budget: int | None) -> None:
        self.device = trainer.device
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.budget = budget or torch.cuda.get_device_properties(self.device).total_memory
            return
        self.process = psutil.Process()
        self.budget = budget or psutil.virtual_memory().available
        self.base = self.high = self._baseline()
        trainer.model.register_forward_hook(lambda *_: self._sample())  # activations alive
        trainer.optimizer.register_step_pre_hook(lambda *_: self._sample())  # gradients

    def _sample(self) -> None:
        self.high = max(self.high, self.process.memory_info().rss)

    def reset(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self.base = self.high = self._baseline()

    def _baseline(self) -> int:
        """The RSS growth is counted from: taken after freed heap memory is handed back to the OS. Memory the
        allocator keeps from earlier work (earlier batch sizes, earlier trials, other code in the process) would
        be reused without raising RSS, and a batch would look cheaper than it is."""
        _trim_heap()
        return int(self.process.memory_info().rss)

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def release(self) -> None:
        if self.cuda:
            torch.cuda.empty_cache()

    def peak(self) -> int:
        if self.cuda:
            return int(torch.cuda.max_memory_allocated(self.device))
        self._sample()
        return self.high - self.base


def _trim_heap() -> None:
    """glibc's malloc_trim(0): free pages go back to the OS (a no-op where there is no glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


def _extrapolate(trials: list[dict[str, Any]], size: int) -> float:
    """Memory at `size`: linear through the last two sizes measured, proportional from a single one."""
    if len(trials) == 1:
        return trials[0]["peak_bytes"] * size / trials[0]["batch_size"]
    (b1, p1), (b2, p2) = ((t["batch_size"], t["peak_bytes"]) for t in trials[-2:])
    return p2 + max(0.0, (p2 - p1) / (b2 - b1)) * (size - b2)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _rows(data: Any) -> int:
    if isinstance(data, tuple | list) and len(data) == 2:
        return len(data[0])
    if isinstance(data, Dataset) and hasattr(data, "__len__"):
        return len(data)
    raise BadInput("find_batch_size needs data of known length: (x, y), a map-style Dataset or its DataLoader.")


def _pow2_floor(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _mb(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"
