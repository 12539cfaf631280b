"""The Trainer: a tight mini-batch loop over any nn.Module, with the catalog's training tricks.

The step reads like nanoGPT's: forward/backward with accumulation (T33), clip (T34), step,
max-norm (T42), zero_grad(set_to_none=True), schedule (T32), then callbacks. In-memory data are
batched by index on the device (no per-sample collation, T07 reshuffle every epoch; token ids cut
to each batch's longest row when `train.dynamic_padding` is on); a Dataset or DataLoader works too.
The epoch's loss is summed on the device and read once per epoch (one host sync). Training
randomness (shuffling, augmentation, dropout) comes from torch RNGs only, whose states go into
checkpoints, so a resumed run continues exactly (T50).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.recipe import TrainConfig
from tunesmith.repro import torch_threads
from tunesmith.train.callbacks import EVENTS, Callback, EarlyStopping, FreezeBackbone, overrides, restore, snapshot
from tunesmith.train.exact import solve_linear
from tunesmith.train.losses import LossFn, default_loss, score_outputs
from tunesmith.train.optim import Schedule, make_optimizer, max_norm_, weight_penalty
from tunesmith.train.probe import solve_probe

__all__ = ["DataArg", "Trainer", "forever", "probe_trainer", "resolve_device"]

Augment = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]]
DataArg = tuple[Any, Any] | Dataset | DataLoader  # (x, y) arrays/tensors, a Dataset or a DataLoader


class Batches(Protocol):
    """What the loop iterates: TensorBatches or a DataLoader."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[Any]: ...


EVAL_BATCH = 1024
GROUP_POOL = 50  # batches per pool sorted by length under train.group_by_length (Hugging Face's megabatch)


def resolve_device(name: str) -> torch.device:
    """T54: "auto" takes the GPU when there is one."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInput("train.device is 'cuda' but PyTorch sees no CUDA GPU here. Use --device auto or cpu.")
    return torch.device(name)


class TensorBatches:
    """Index-sliced mini-batches of in-memory tensors already on the device.

    lengths: token ids (N, L) right-padded with 0 (text): each row's length, on the host. Each batch is then
    cut to its longest row (dynamic padding), read from these host numbers: no device sync per batch.
    group: with lengths, shuffled rows are sorted by length within pools of GROUP_POOL batches, and the batches
    cut from them are served in random order (Hugging Face's group_by_length): rows of a batch have similar
    lengths, so little of it is padding.
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool,
        generator: torch.Generator | None = None,
        lengths: torch.Tensor | None = None,
        group: bool = False,
    ) -> None:
        self.x, self.y, self.batch_size, self.shuffle, self.generator = x, y, batch_size, shuffle, generator
        self.lengths, self.group = lengths, group and lengths is not None

    def __len__(self) -> int:
        return math.ceil(self._rows() / self.batch_size)

    def _rows(self) -> int:
        """Rows served per epoch: a lone last row breaks batch norm in training, so it waits a turn."""
        n = len(self.x)
        return n - 1 if self.shuffle and n > 1 and n % self.batch_size == 1 else n

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self._rows()
        if not self.shuffle:
            for i in range(0, n, self.batch_size):
                yield (
                    self._trim(self.x[i : i + self.batch_size], slice(i, i + self.batch_size)),
                    self.y[i : i + self.batch_size],
                )
            return
        host = torch.randperm(len(self.x), generator=self.generator)
        if self.group:
            host = self._grouped(host)
        order = host.to(self.x.device)
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield self._trim(self.x[idx], host[i : i + self.batch_size]), self.y[idx]

    def _grouped(self, perm: torch.Tensor) -> torch.Tensor:
        """The shuffled rows sorted by length (longest first) within each pool of GROUP_POOL batches, cut into
        batches served in random order; a partial batch stays last (where `_rows` may leave out a lone row)."""
        assert self.lengths is not None  # group is set only with lengths
        pools = [
            p[torch.argsort(self.lengths[p], descending=True, stable=True)]
            for p in perm.split(GROUP_POOL * self.batch_size)
        ]
        batches = torch.cat(pools).split(self.batch_size)
        full = [b for b in batches if len(b) == self.batch_size]
        rest = [b for b in batches if len(b) < self.batch_size]
        return torch.cat([*(full[i] for i in torch.randperm(len(full), generator=self.generator)), *rest])

    def _trim(self, xb: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
        """Dynamic padding: the batch without the pad columns beyond its longest row (at least one column)."""
        if self.lengths is None:
            return xb
        return xb[:, : max(1, int(self.lengths[rows].max()))]  # host numbers: no device sync


class Trainer:
    """Train `model` with a resolved TrainConfig; `fit` returns the history (one dict per epoch).

    task: classification | regression | reconstruction (picks the default loss and metrics, T12).
    target_inverse: maps scaled regression outputs back to target units for metrics (T05).
    embeddings: the folder caching a backbone's embeddings for its linear probe (train/probe.py); None: no cache.
    """

    optimizer: torch.optim.Optimizer  # set by start()
    schedule: Schedule

    def __init__(
        self,
        model: nn.Module,
        *,
        cfg: TrainConfig,
        task: str,
        loss_fn: nn.Module | LossFn | None = None,
        augment: Augment | None = None,
        callbacks: Sequence[Callback] = (),
        target_inverse: Callable[[np.ndarray], np.ndarray] | None = None,
        embeddings: Path | None = None,
    ) -> None:
        if cfg.batch_size is None or cfg.lr is None or cfg.epochs is None:
            raise BadInput(
                "The Trainer needs a resolved recipe (batch_size, lr and epochs set); pass it through resolve()."
            )
        self.cfg, self.task, self.augment = cfg, task, augment
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        self.loss_fn = loss_fn if loss_fn is not None else default_loss(task)
        frozen = [FreezeBackbone(cfg.freeze_epochs)] if cfg.freeze_epochs else []  # a backbone's frozen start
        self.callbacks = [EarlyStopping(cfg.early_stopping), *frozen, *callbacks]  # T43 is part of every fit
        self.target_inverse, self.embeddings = target_inverse, embeddings
        self.generator = torch.Generator().manual_seed(cfg.seed)  # shuffling + augmentation
        self.history: list[dict[str, float]] = []
        self.should_stop = False
        self.best_epoch: int | None = None
        self.accumulate = _accumulation(cfg)
        self._weights: list[torch.Tensor] = [p for p in model.parameters() if p.ndim >= 2 and p.requires_grad]
        self._pending = 0  # mini-batches backpropagated since the last optimizer step (T33)

    # ---- data ----------------------------------------------------------------------------------
    def batches(self, data: DataArg, *, train: bool) -> Batches:
        if isinstance(data, DataLoader):
            return data  # the user's loader decides order and batch size
        if isinstance(data, Dataset):
            return DataLoader(
                data, batch_size=self.cfg.batch_size if train else EVAL_BATCH, shuffle=train, generator=self.generator
            )
        if not (isinstance(data, tuple | list) and len(data) == 2):
            raise BadInput(f"Training data must be (x, y), a Dataset or a DataLoader. Got {type(data).__name__}.")
        x, y = (_as_tensor(a, self.device) for a in data)
        if len(x) != len(y):
            raise BadInput(f"x and y differ in length ({len(x)} vs {len(y)} rows).")
        if len(x) == 0:
            raise BadInput("The data hold no rows.")
        return TensorBatches(
            x,
            y,
            self.cfg.batch_size if train else EVAL_BATCH,  # type: ignore[arg-type]
            shuffle=train,
            generator=self.generator,
            lengths=_token_lengths(x) if self.cfg.dynamic_padding is True else None,
            group=train and self.cfg.group_by_length,
        )

    # ---- training ------------------------------------------------------------------------------
    def fit(self, train: DataArg, val: DataArg | None = None, *, resume: dict[str, Any] | None = None) -> list[dict]:
        """Train for cfg.epochs (or until early stopping); `resume` is a `state_dict()` to continue from.

        Runs with the recipe's `train.threads` (when set) and gives the caller its thread count back.
        """
        with torch_threads(self.cfg.threads):
            return self._fit(train, val, resume)

    def _fit(self, train: DataArg, val: DataArg | None, resume: dict[str, Any] | None) -> list[dict]:
        cfg = self.cfg
        train_batches = self.batches(train, train=True)
        n_batches = len(train_batches)
        if n_batches == 0:
            raise BadInput("The training data yield no batches (an empty DataLoader?).")
        self.start(n_batches)
        if resume is not None:
            self.load_state_dict(resume)
        elif cfg.probe_init is True and cfg.solver == "gradient":  # LP-FT: the head from the linear probe (T62)
            self._solve_head(_in_memory(train_batches))
        events = {e: [cb for cb in self.callbacks if overrides(cb, e)] for e in EVENTS}
        for cb in events["fit_start"]:
            cb.on_fit_start(self)
        try:
            for epoch in range(len(self.history), cfg.n_epochs):
                if self.should_stop:
                    break
                self._epoch(epoch, train_batches, n_batches, val, events)
        except BaseException as exc:
            for cb in events["exception"]:
                cb.on_exception(self, exc)
            raise
        for cb in events["fit_end"]:
            cb.on_fit_end(self)
        return self.history

    def _epoch(self, epoch: int, batches: Any, n_batches: int, val: DataArg | None, events: dict) -> None:
        started = time.perf_counter()
        for cb in events["epoch_start"]:
            cb.on_epoch_start(self, epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        self.model.train()
        if self.cfg.solver == "exact":
            train_loss = self._solve(batches)
        else:
            total = torch.zeros((), device=self.device)  # summed on the device: no host sync per step
            for step, (xb, yb) in enumerate(batches):
                loss = self.train_step(xb, yb, last=step + 1 == n_batches)
                total += loss
                for cb in events["batch_end"]:
                    cb.on_batch_end(self, step, loss)
            train_loss = (total / n_batches).item()  # host sync, once per epoch
        row: dict[str, float] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss}
        if val is not None:
            metrics = self.evaluate(val)
            for cb in events["eval_end"]:
                cb.on_eval_end(self, metrics)
            row.update({f"val_{k}": v for k, v in metrics.items()})
        if not all(math.isfinite(row[k]) for k in ("train_loss", "val_loss") if k in row):
            raise TrainingDiverged(
                f"The loss became {train_loss} in epoch {epoch + 1} (lr={lr:.3g}): training diverged. Lower "
                f"train.lr (try {lr / 10:.1g}, or run `tunesmith lr-find`), or bound the steps with "
                "train.clip_norm=1.0 (T31, T34). Check the inputs for huge values too."
            )
        row["seconds"] = time.perf_counter() - started
        self.history.append(row)
        self.schedule.epoch_end(row.get("val_loss", train_loss))
        for cb in events["epoch_end"]:
            cb.on_epoch_end(self, row)

    def _solve(self, batches: Batches) -> float:
        """train.solver=exact: the depth-0 network's weights solved on every training row at once (train/exact.py),
        or a backbone's head on its frozen embeddings (the linear probe, train/probe.py); the epoch's train loss is
        the solved model's loss on those rows. One epoch says all: training stops."""
        rows = _in_memory(batches)
        if hasattr(self.model, "embed"):  # a pretrained backbone: its head solved on the frozen embeddings
            self._solve_head(rows)
        else:
            solve_linear(self.model, rows.x.cpu().numpy(), rows.y.cpu().numpy(), task=self.task)
        self.should_stop = True
        return self.evaluate((rows.x, rows.y))["loss"]

    def _solve_head(self, rows: TensorBatches) -> None:
        """A backbone's head solved on the frozen embeddings of every training row (train/probe.py)."""
        solve_probe(self.model, rows.x, rows.y.cpu().numpy(), task=self.task, cache=self.embeddings)

    # ---- the step: fit's epoch loop drives it, and so can anyone (the LR range test, the doctor) ----
    def start(self, steps_per_epoch: int, *, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Set up to train: the optimizer (the recipe's, or `optimizer` over this model's parameters)
        and the LR schedule over cfg.epochs epochs of `steps_per_epoch` mini-batches. `fit` calls it;
        call it yourself before driving `train_step` outside `fit` (put the model in train mode too)."""
        self.optimizer = optimizer if optimizer is not None else make_optimizer(self.model, self.cfg)
        self.schedule = Schedule(self.optimizer, self.cfg, math.ceil(steps_per_epoch / self.accumulate))
        self._pending = 0

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor, *, last: bool = False) -> torch.Tensor:
        """One mini-batch exactly as `fit` trains it; returns its (detached) loss, left on the device.

        To the device, augment (T15), forward, the loss with the model's aux loss and the L1/L2
        penalty (T41), backward (scaled by the accumulation, T33); every `accumulate` mini-batches,
        or at the `last` one of an epoch: clip (T34), optimizer step, max-norm (T42), zero_grad,
        schedule step (T32).
        """
        xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
        if self.augment is not None:
            xb, yb = self.augment(xb, yb, self.generator)
        loss = self._loss(self.model(xb), yb)
        (loss / self.accumulate if self.accumulate > 1 else loss).backward()
        self._pending += 1
        if self._pending == self.accumulate or last:
            self._update()
            self._pending = 0
        return loss.detach()

    def _loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = self.loss_fn(output, target)
        aux = getattr(self.model, "aux_loss", None)  # e.g. the autoencoder's L1 on its code (T20)
        if aux is not None:
            loss = loss + aux
        penalty = weight_penalty(self._weights, self.cfg.l1, self.cfg.l2)  # T41
        return loss if penalty is None else loss + penalty

    def _update(self) -> None:
        params = self.model.parameters()
        if self.cfg.clip_value is not None:  # T34
            torch.nn.utils.clip_grad_value_(params, self.cfg.clip_value)
        if self.cfg.clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.clip_norm)
        self.optimizer.step()
        if self.cfg.max_norm is not None:  # T42
            max_norm_(self._weights, self.cfg.max_norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.schedule.step()

    # ---- evaluation ----------------------------------------------------------------------------
    @torch.inference_mode()
    def outputs(self, data: DataArg) -> tuple[torch.Tensor, torch.Tensor]:
        """(model outputs, targets) over all of `data`, in eval mode."""
        self.model.eval()
        outs, ys = [], []
        for xb, yb in self.batches(data, train=False):
            outs.append(self.model(xb.to(self.device, non_blocking=True)))
            ys.append(yb.to(self.device, non_blocking=True))
        return torch.cat(outs), torch.cat(ys)

    def evaluate(self, data: DataArg) -> dict[str, float]:
        """loss plus the task's metrics (accuracy/f1_macro or rmse/mae/r2, in target units)."""
        out, y = self.outputs(data)
        return score_outputs(self.task, out, y, loss_fn=self.loss_fn, target_inverse=self.target_inverse)

    def history_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.history)

    # ---- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: loadable with torch.load(weights_only=True)."""
        rng: dict[str, Any] = {"torch": torch.get_rng_state(), "generator": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "history": self.history,
            "should_stop": self.should_stop,
            "callbacks": snapshot(self.callbacks),
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`: call after `start` (fit does, given `resume`)."""
        try:
            self.model.load_state_dict(state["model"])
        except RuntimeError as exc:  # other names or shapes: e.g. model.backbone's directory now holds another size
            first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
            raise BadInput(
                f"The checkpoint's weights do not fit this model ({first[:200]}): it was saved by another model, "
                "such as a model.backbone directory since replaced by one of another hidden size. Restore the "
                "model the run started with, or start a new run without --resume."
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.history = list(state["history"])
        self.should_stop = state["should_stop"]
        restore(self.callbacks, state["callbacks"])
        torch.set_rng_state(state["rng"]["torch"])
        self.generator.set_state(state["rng"]["generator"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])


def probe_trainer(
    model: nn.Module,
    cfg: TrainConfig,
    *,
    task: str,
    loss_fn: nn.Module | LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> Trainer:
    """A started Trainer over `model` (pass a copy) for probes that drive `train_step` themselves.

    The LR range test, the batch-size finder and the doctor's short runs measure the loss surface of
    the real rows: one optimizer step per `train_step` (no accumulation), no augmentation, and a
    constant schedule, so whoever drives the steps sets the LR. Its optimizer is `optimizer` (over
    `model`'s parameters) or the recipe's.
    """
    probe = cfg.model_copy(  # one epoch: whoever drives the steps decides how many (a constant schedule has no end)
        update={"schedule": "constant", "warmup_epochs": 0.0, "effective_batch_size": None, "epochs": 1}
    )
    trainer = Trainer(model, cfg=probe, task=task, loss_fn=loss_fn)
    trainer.start(1, optimizer=optimizer)
    trainer.model.train()
    return trainer


def forever(batches: Batches) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Cycle through the batches (a fresh shuffle every pass) for as many steps as asked."""
    if len(batches) == 0:
        raise BadInput("The training data yield no batches (an empty DataLoader?).")
    while True:
        yield from batches


def _as_tensor(a: Any, device: torch.device) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a))
    if t.is_floating_point() and t.dtype != torch.float32:
        t = t.float()
    return t.to(device)


def _in_memory(batches: Batches) -> TensorBatches:
    """The training rows as in-memory tensors: what the exact solver and the linear probe solve on."""
    if not isinstance(batches, TensorBatches):
        raise BadInput(
            "train.solver=exact and train.probe_init solve on every training row at once, from in-memory arrays "
            "(x, y); they cannot read a Dataset or DataLoader. Pass arrays, or use train.solver=gradient and "
            "train.probe_init=false."
        )
    return batches


def _token_lengths(x: torch.Tensor) -> torch.Tensor | None:
    """Each row's length of right-padded token ids (N, L), on the host (one sync per call, not per batch);
    None for inputs that are not token ids (floats, or more than two dims): those are never trimmed."""
    if x.is_floating_point() or x.ndim != 2:
        return None
    return (x != 0).sum(dim=1).cpu()  # 0 is the pad id (data/text.py PAD_ID); (N,)


def _accumulation(cfg: TrainConfig) -> int:
    """T33: optimizer steps every `effective_batch_size / batch_size` mini-batches."""
    if cfg.effective_batch_size is None:
        return 1
    assert cfg.batch_size is not None
    if cfg.effective_batch_size % cfg.batch_size:
        raise BadInput(
            f"train.effective_batch_size ({cfg.effective_batch_size}) must be a multiple of "
            f"train.batch_size ({cfg.batch_size}): gradients are accumulated over whole batches."
        )
    return cfg.effective_batch_size // cfg.batch_size
