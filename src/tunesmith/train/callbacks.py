"""Trainer callbacks: seven events, no-op by default, dispatched only to those that override them.

Events: fit_start, epoch_start, batch_end, eval_end, epoch_end, fit_end, exception.
At fit start the Trainer builds one list per event holding only the callbacks that override it
(Lightning's `is_overridden` idea), so an unused event costs one empty loop. `batch_end` receives
the loss as a tensor on the device: reading it (`.item()`) is a host sync, so do it sparingly.
A checkpoint holds each callback's state under its `state_key` (Lightning's), so a user's own
EarlyStopping never takes the Trainer's state on resume.

Built-in: EarlyStopping (T43), FreezeBackbone (train.freeze_epochs), Checkpoint (resume), HistoryCSV
(history.csv), Progress (rich).
"""

from __future__ import annotations

import copy
import csv
import math
import os
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from tunesmith.errors import BadInput, must_be
from tunesmith.recipe import EarlyStopConfig

if TYPE_CHECKING:
    from tunesmith.train.trainer import Trainer

__all__ = [
    "EVENTS",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "FreezeBackbone",
    "HistoryCSV",
    "Progress",
    "atomic_save",
]

EVENTS = ("fit_start", "epoch_start", "batch_end", "eval_end", "epoch_end", "fit_end", "exception")


class Callback:
    """Override the events you need; `state_dict`/`load_state_dict` make a callback resumable."""

    def on_fit_start(self, trainer: Trainer) -> None: ...
    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None: ...
    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None: ...
    def on_eval_end(self, trainer: Trainer, metrics: dict[str, float]) -> None: ...
    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None: ...
    def on_fit_end(self, trainer: Trainer) -> None: ...
    def on_exception(self, trainer: Trainer, exc: BaseException) -> None: ...

    @property
    def state_key(self) -> str:
        """The name of this callback's state in a checkpoint; the n-th repeat of a key gets "#n" appended."""
        return type(self).__qualname__

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def overrides(callback: Callback, event: str) -> bool:
    name = f"on_{event}"
    return getattr(type(callback), name) is not getattr(Callback, name)


class FreezeBackbone(Callback):
    """`train.freeze_epochs`: the model's `backbone` frozen for the first `epochs` epochs, then unfrozen (ULMFiT's
    gradual unfreezing in one step). Frozen parameters get no gradient, so the optimizer (built over all of them)
    leaves them exactly as they are, weight decay included; the head trains meanwhile. Set from the epoch
    number at every epoch start, so a resumed run freezes exactly as a fresh one."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_fit_start(self, trainer: Trainer) -> None:
        if not isinstance(getattr(trainer.model, "backbone", None), torch.nn.Module):
            raise BadInput(
                f"train.freeze_epochs={self.epochs} freezes a pretrained backbone (model.backbone); this model "
                f"({type(trainer.model).__name__}) has none. Set train.freeze_epochs=0."
            )

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        trainer.model.backbone.requires_grad_(epoch >= self.epochs)


class EarlyStopping(Callback):
    """T43: stop after `patience` epochs without a val-loss improvement larger than `min_delta`,
    never before `min_epochs`, and restore the best epoch's weights (retrospective selection)."""

    def __init__(self, cfg: EarlyStopConfig) -> None:
        self.cfg = cfg
        self.best = math.inf
        self.best_epoch = -1
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stopped_epoch: int | None = None

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        loss, epoch = row.get("val_loss", row["train_loss"]), int(row["epoch"])
        if loss < self.best - self.cfg.min_delta:
            self.best, self.best_epoch = loss, epoch
            if self.cfg.restore_best:
                self.best_state = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        waited = epoch - self.best_epoch
        if self.cfg.patience is not None and epoch >= self.cfg.min_epochs and waited >= self.cfg.patience:
            self.stopped_epoch = epoch
            trainer.should_stop = True

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.best_state is not None:
            trainer.model.load_state_dict(self.best_state)
        trainer.best_epoch = self.best_epoch

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_state": self.best_state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.best_state = state["best"], state["best_epoch"], state["best_state"]


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Checkpoint(Callback):
    """Writes everything needed to continue (model, optimizer, schedule, RNG, callbacks) every epoch."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        atomic_save(trainer.state_dict(), self.path)


class HistoryCSV(Callback):
    """history.csv, one row per epoch: the whole file is rewritten at every epoch's end (a resumed run's too)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        rows = trainer.history
        with self.path.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


class Progress(Callback):
    """A rich progress bar over epochs on a terminal; nothing when stderr is not one."""

    def __init__(self, description: str = "fit") -> None:
        self.description = description
        self.bar: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not sys.stderr.isatty():
            return
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress

        self.bar = RichProgress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            transient=True,
        )
        self.bar.start()
        self.task = self.bar.add_task(
            self.description, total=trainer.cfg.epochs, completed=len(trainer.history), status=""
        )

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if self.bar is not None:
            status = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k.startswith(("train_loss", "val_")))
            self.bar.update(self.task, advance=1, status=status)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def snapshot(callbacks: list[Callback]) -> dict[str, Any]:
    """Non-empty callback states, each under its callback's key (see `_keyed`)."""
    return {key: st for key, cb in _keyed(callbacks).items() if (st := cb.state_dict())}


def restore(callbacks: list[Callback], states: dict[str, Any]) -> None:
    """Give each callback its state from `snapshot`; BadInput when they are not the checkpoint's callbacks."""
    by_key = _keyed(callbacks)
    stateful = [key for key, cb in by_key.items() if key in states or cb.state_dict()]
    if set(stateful) != set(states):
        raise BadInput(
            must_be(
                "callbacks",
                "the resumed Trainer",
                f"those the checkpoint was written with (states {', '.join(states) or 'none'})",
                stateful,
                hint="Resume with the same callbacks in the same order, or give each its own state_key.",
            )
        )
    for key, cb in by_key.items():
        if key in states:
            cb.load_state_dict(copy.deepcopy(states[key]))


def _keyed(callbacks: list[Callback]) -> dict[str, Callback]:
    """Callbacks by `state_key`; repeats of a key are told apart by position: "EarlyStopping", "EarlyStopping#1".

    The first of a key keeps it bare, so checkpoints written when states were keyed by class name still load.
    """
    seen: Counter[str] = Counter()
    out: dict[str, Callback] = {}
    for cb in callbacks:
        key, n = cb.state_key, seen[cb.state_key]
        seen[key] += 1
        out[key if n == 0 else f"{key}#{n}"] = cb
    return out
