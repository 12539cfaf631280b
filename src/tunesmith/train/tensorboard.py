"""TensorBoard logging (optional extra `tunesmith[tensorboard]`): the learning curves of T61, live.

`TensorBoard` is a Trainer callback. Every epoch it writes one scalar per history.csv column (lr,
train_loss, val_loss, val_<metric>, seconds) with the epoch as the step, and flushes, so a running
`tensorboard --logdir runs/` shows the curves as they grow. At the end of training it writes the
hyperparameters with the best epoch's metrics to TensorBoard's HParams tab, which compares runs (for
example the trials of a tuning study) side by side. Events go to `log_dir`; by default next to the
run's history.csv: `RUN_DIR/tensorboard/` for a hold-out run, `RUN_DIR/fold-K/tensorboard/` per fold.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunesmith.errors import BadInput
from tunesmith.train.callbacks import Callback, HistoryCSV

if TYPE_CHECKING:
    from tunesmith.train.trainer import Trainer

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Scalars per epoch and hyperparameters at the end, through `torch.utils.tensorboard.SummaryWriter`.

    log_dir: where the event files go; None: beside the run's history.csv (`tunesmith fit` runs).
    hparams: values for the HParams tab (e.g. a tuning trial's parameters); None: the train section's
        scalar settings (lr, batch_size, optimizer, schedule, weight_decay, ...).
    """

    def __init__(self, log_dir: str | Path | None = None, *, hparams: dict[str, Any] | None = None) -> None:
        if importlib.util.find_spec("tensorboard") is None:  # checked before training starts, not after
            raise BadInput(
                "TensorBoard logging needs the tensorboard package, which is not installed. "
                "Install it with: pip install 'tunesmith[tensorboard]'."
            )
        self.log_dir = None if log_dir is None else Path(log_dir)
        self.hparams = hparams
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.log_dir or _beside_history(trainer)))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        step = int(row["epoch"])
        for key, value in row.items():
            if key != "epoch":
                self.writer.add_scalar(key, value, global_step=step)
        self.writer.flush()  # once per epoch: the curves stay live without a flush per scalar

    def on_fit_end(self, trainer: Trainer) -> None:
        if trainer.history:
            epoch = trainer.best_epoch if trainer.best_epoch and trainer.best_epoch > 0 else len(trainer.history)
            best = trainer.history[epoch - 1]  # the epoch whose weights the run keeps (T43)
            metrics = {f"hparam/{k}": v for k, v in best.items() if k == "train_loss" or k.startswith("val_")}
            hparams = self.hparams or _scalars(trainer.cfg.model_dump())
            # at the last epoch's step: a step going backwards makes TensorBoard purge the curves as orphans
            self.writer.add_hparams(hparams, metrics, run_name=".", global_step=len(trainer.history))
        self._close()

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _beside_history(trainer: Trainer) -> Path:
    for cb in trainer.callbacks:
        if isinstance(cb, HistoryCSV):
            return cb.path.parent / "tensorboard"
    raise BadInput(
        "TensorBoard() without log_dir writes beside the run's history.csv, but this Trainer has no "
        "HistoryCSV callback. Pass TensorBoard(log_dir=...)."
    )


def _scalars(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested settings to the scalar types the HParams tab accepts ("early_stopping.patience": 10)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_scalars(value, f"{prefix}{key}."))
        elif isinstance(value, bool | int | float | str):
            flat[f"{prefix}{key}"] = value
    return flat
