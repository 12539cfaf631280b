"""Optimizers (T30), learning-rate schedules (T32) and weight penalties/constraints (T41, T42).

Schedules (constant, step, exponential, cosine, linear decay to 0) are stepped once per optimizer
step, except reduce-on-plateau, which reads the validation loss once per epoch. Warmup is a linear
ramp multiplied into the step-wise schedules; one-cycle has its own warmup (Smith & Topin 2019),
plateau none. Each parameter group keeps its own rate under the schedule (a backbone's layers, `lr_scales`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from tunesmith.errors import BadInput
from tunesmith.recipe import TrainConfig

__all__ = ["Schedule", "lr_scales", "make_optimizer", "max_norm_", "weight_penalty"]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """T30 + T41. Weight decay skips biases and norm parameters (1-D tensors), as nanoGPT does. A model with
    `layer_groups` (a pretrained backbone) gets one learning rate per layer (`lr_scales`)."""
    lr = cfg.lr
    assert lr is not None  # resolve() fills it
    groups = []
    for params, scale in lr_scales(model, cfg):
        trainable = [p for p in params if p.requires_grad]
        groups += [
            {"params": [p for p in trainable if p.ndim >= 2], "weight_decay": cfg.weight_decay, "lr": lr * scale},
            {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0, "lr": lr * scale},
        ]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise BadInput("The model has no trainable parameters: nothing for the optimizer to train.")
    name = cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, momentum=cfg.momentum)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=lr)
    raise BadInput(f"train.optimizer={name!r} is not resolved; run the recipe through resolve() first.")


def lr_scales(model: nn.Module, cfg: TrainConfig) -> list[tuple[list[nn.Parameter], float]]:
    """Each parameter group and its factor on `train.lr`. One group at 1 for most models. For a model with
    `layer_groups()` (bottom to top: embeddings, layers 1..L, head; models/backbone.py), discriminative rates
    (ULMFiT; ELECTRA's layer-wise decay): the top layer L trains at lr, layer L - k at lr x layer_decay^k, the
    embeddings at lr x layer_decay^L, the head at lr x head_lr_mult. General lower layers move least. Listed top
    layer first: the optimizer's first group runs at lr itself, the rate history.csv records."""
    layered = getattr(model, "layer_groups", None)
    if layered is None:
        return [(list(model.parameters()), 1.0)]
    *body, head = layered()
    decay = cfg.layer_decay or 1.0
    return [*((params, decay**depth) for depth, params in enumerate(reversed(body))), (head, cfg.head_lr_mult or 1.0)]


class Schedule:
    """One object for every T32 schedule: `step()` after each optimizer step, `epoch_end(val_loss)`."""

    def __init__(self, optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int) -> None:
        total = max(1, cfg.n_epochs * steps_per_epoch)
        warmup = round((cfg.warmup_epochs or 0.0) * steps_per_epoch)
        if warmup and cfg.schedule in ("onecycle", "plateau"):
            raise BadInput(
                f"train.warmup_epochs applies to constant, step, exponential and cosine schedules; "
                f"{cfg.schedule!r} has its own ramp. Set warmup_epochs to 0 or pick another schedule."
            )
        self.plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self.per_step: torch.optim.lr_scheduler.LRScheduler | None = None
        if cfg.schedule == "onecycle":
            self.per_step = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=total)  # type: ignore[arg-type]
        elif cfg.schedule == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.gamma, patience=3)
        else:
            shape = _shape(cfg.schedule, cfg.gamma, cfg.step_every, steps_per_epoch, total)

            def factor(step: int) -> float:
                ramp = min(1.0, (step + 1) / warmup) if warmup else 1.0
                return ramp * shape(step)

            self.per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def step(self) -> None:
        if self.per_step is not None:
            self.per_step.step()

    def epoch_end(self, val_loss: float) -> None:
        if self.plateau is not None:
            self.plateau.step(val_loss)

    def state_dict(self) -> dict[str, Any]:
        sched = self.per_step or self.plateau
        return sched.state_dict() if sched is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        sched = self.per_step or self.plateau
        if sched is not None:
            sched.load_state_dict(state)


def _shape(name: str, gamma: float, step_every: int, steps_per_epoch: int, total: int) -> Any:
    if name == "constant":
        return lambda step: 1.0
    if name == "step":
        return lambda step: gamma ** ((step // steps_per_epoch) // step_every)
    if name == "exponential":
        return lambda step: gamma ** (step / steps_per_epoch)
    if name == "cosine":
        return lambda step: 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))
    if name == "linear":  # BERT's fine-tuning decay: to 0 at the last step
        return lambda step: max(0.0, 1.0 - step / total)
    raise BadInput(f"train.schedule={name!r} is not resolved; run the recipe through resolve() first.")


def weight_penalty(weights: list[torch.Tensor], l1: float, l2: float) -> torch.Tensor | None:
    """T41: L1 and coupled L2 penalties on the weight matrices (biases and norms are exempt)."""
    if not weights or (l1 == 0 and l2 == 0):
        return None
    total = weights[0].new_zeros(())
    for w in weights:
        if l1:
            total = total + l1 * w.abs().sum()
        if l2:
            total = total + l2 * w.pow(2).sum()
    return total


@torch.no_grad()
def max_norm_(weights: list[torch.Tensor], limit: float) -> None:
    """T42: rescale each unit's incoming weight vector (row of a Linear, filter of a Conv) to norm <= limit."""
    for w in weights:
        rows = w.view(w.shape[0], -1)
        norms = rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
        rows.mul_(norms.clamp(max=limit) / norms)
