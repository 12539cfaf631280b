"""Per-layer gradient norms and activation statistics over training (catalog T65, T66): `layers.csv`.

`LayerMonitor` watches ONE batch per epoch, the epoch's first: at epoch start it attaches forward
hooks to the activation modules and gradient hooks to every parameter, and removes them all once
that batch's backward pass is done, so the other batches (and evaluation) run without hooks. The
hooks keep their statistics as tensors on the device; they are read in one host sync at epoch end.

Per module and epoch (one row of layers.csv, empty where a statistic does not apply):

    grad_norm       L2 norm of the gradient of the module's own parameters for that batch's loss (T65:
                    vanishing or exploding gradients show as norms that shrink or grow with depth)
    act_mean/std    mean and standard deviation of the activation module's output
    dead_frac       ReLU family: share of units never active (output <= 0 for every sample and position,
                    T66); a unit is a feature of `(B, F)` outputs or a channel of `(B, C, ...)` maps
    saturated_frac  tanh / sigmoid: share of units saturated for every sample and position
                    (|tanh| > 0.99, sigmoid < 0.01 or > 0.99: the local derivative is below 0.02)

Sources: Glorot & Bengio 2010 (saturation, gradient flow per layer); Lu et al. 2019, "Dying ReLU and
initialization"; nanoGPT's "read values only at the log interval" (style.md).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from tunesmith.train.callbacks import Callback

if TYPE_CHECKING:
    from tunesmith.train.trainer import Trainer

__all__ = ["COLUMNS", "LayerMonitor"]

COLUMNS = ["epoch", "layer", "type", "grad_norm", "act_mean", "act_std", "dead_frac", "saturated_frac"]

# Output > 0 exactly when the input is > 0, so "never > 0" means the unit never fires (T66).
_RELU_FAMILY = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU)
SATURATION = 0.99  # |tanh| above this (and sigmoid beyond 0.01 / 0.99) leaves a derivative below 0.02


def _activation_kind(module: nn.Module) -> str | None:
    if isinstance(module, _RELU_FAMILY):
        return "relu"
    if isinstance(module, nn.Tanh):
        return "tanh"
    if isinstance(module, nn.Sigmoid):
        return "sigmoid"
    return None


class LayerMonitor(Callback):
    """Writes `path` (layers.csv) every epoch; its rows travel in checkpoints, so --resume continues it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.rows: list[dict[str, Any]] = []
        self._handles: list[RemovableHandle] = []
        self._grads: dict[str, list[torch.Tensor]] = {}  # module name -> squared norms of its parameters' grads
        self._acts: dict[str, tuple[str, torch.Tensor]] = {}  # module name -> (kind, [mean, std, share])

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self._grads, self._acts = {}, {}
        for name, module in trainer.model.named_modules():
            kind = _activation_kind(module)
            if kind is not None:
                self._handles.append(module.register_forward_hook(partial(self._record_activation, name, kind)))
            for param in module.parameters(recurse=False):
                if param.requires_grad:
                    self._handles.append(param.register_hook(partial(self._record_grad, name)))

    def on_batch_end(self, trainer: Trainer, step: int, loss: torch.Tensor) -> None:
        if self._handles:  # the sampled batch is done: the rest of the epoch runs without hooks
            self._remove_hooks()

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        modules = [(n, m) for n, m in trainer.model.named_modules() if n in self._grads or n in self._acts]
        if not modules:
            return
        # (L, 4): grad norm, mean, std, dead/saturated share per module; NaN where not measured
        table = torch.stack([self._stats(name, trainer.accumulate, trainer.device) for name, _ in modules])
        epoch = int(row["epoch"])
        for (name, module), values in zip(modules, table.tolist(), strict=True):  # host sync, once per epoch
            grad, mean, std, share = (None if v != v else v for v in values)  # NaN -> empty cell
            kind = self._acts[name][0] if name in self._acts else None
            self.rows.append(
                {
                    "epoch": epoch,
                    "layer": name,
                    "type": type(module).__name__,
                    "grad_norm": grad,
                    "act_mean": mean,
                    "act_std": std,
                    "dead_frac": share if kind == "relu" else None,
                    "saturated_frac": share if kind in ("tanh", "sigmoid") else None,
                }
            )
        pd.DataFrame(self.rows, columns=COLUMNS).to_csv(self.path, index=False)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._remove_hooks()  # e.g. an epoch that ended before its first batch

    def on_exception(self, trainer: Trainer, exc: BaseException) -> None:
        self._remove_hooks()

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = list(state["rows"])

    # ---- hooks: tensors only, no host sync -----------------------------------------------------
    def _record_grad(self, name: str, grad: torch.Tensor) -> None:
        self._grads.setdefault(name, []).append(grad.detach().float().pow(2).sum())

    def _record_activation(self, name: str, kind: str, module: nn.Module, args: Any, output: Any) -> None:
        if name in self._acts or not isinstance(output, torch.Tensor):
            return  # a module called twice in one forward pass keeps its first call
        y = output.detach().float()
        per_unit = tuple(d for d in range(y.ndim) if d != 1) if y.ndim > 1 else (0,)  # all but the unit axis
        if kind == "relu":
            flag = y.amax(dim=per_unit) <= 0  # (units,) never active
        else:
            z = y if kind == "tanh" else 2 * y - 1  # sigmoid mapped onto tanh's range
            flag = z.abs().amin(dim=per_unit) > SATURATION  # (units,) saturated on every value
        self._acts[name] = (kind, torch.stack([y.mean(), y.std(), flag.float().mean()]))

    def _stats(self, name: str, accumulate: int, device: torch.device) -> torch.Tensor:
        stats = torch.full((4,), float("nan"), device=device)  # grad norm, mean, std, share
        grads, acts = self._grads.get(name), self._acts.get(name)
        if grads:  # the Trainer backpropagates loss / accumulate: scale back to one batch's loss
            stats[0] = torch.stack(grads).sum().sqrt() * accumulate
        if acts is not None:
            stats[1:] = acts[1]
        return stats

    def _remove_hooks(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
