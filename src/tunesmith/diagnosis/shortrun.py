"""The doctor's short training run: a few hundred seeded steps, shared by every short-run check.

The run trains a fresh copy of the model exactly as the setup would (the user's loss, optimizer and
batches; the recipe's penalties and clipping) at a constant learning rate: the peak of the schedule
(the schedule itself is checked by simulation, `lr_schedule`). It records

- the training loss of every step (one host sync per step: the divergence stop reads it),
- per weighted layer, the gradient and weight norms on every `steps // GRAD_RECORDS`-th step,
  read by tensor hooks on the parameters that are removed right after that step (T65),
- loss and metrics on fixed training and validation rows at EVALS + 1 evenly spaced checkpoints
  (eval mode), for the curves behind over- and underfitting (T61, T64).

The same function runs the LR probes (`lr_factor`) and the input-independent baseline (inputs
replaced by zeros, Karpathy 2019). Every run starts from the same seed and batch order (T50).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from tunesmith.repro import seed_everything
from tunesmith.train.trainer import Trainer, forever, probe_trainer

if TYPE_CHECKING:
    from tunesmith.diagnosis.context import Context

__all__ = ["EVALS", "GRAD_RECORDS", "RunRecord", "short_run"]

GRAD_RECORDS = 20  # steps whose per-layer gradient norms are recorded
EVALS = 10  # evaluation checkpoints after step 0
END_SHARE = 0.2  # the "end" of a run: the mean loss over its last fifth (smooths minibatch noise)


@dataclass
class RunRecord:
    lr: float
    losses: np.ndarray  # (steps,) minibatch training loss; NaN after a divergence stop
    diverged_at: int | None  # first step whose loss was not finite
    grad_steps: list[int]
    layers: list[str]  # weighted layers in forward order
    grad_norms: np.ndarray  # (records, layers) L2 norm of each layer's weight gradients
    weight_norms: np.ndarray  # (records, layers) L2 norm of each layer's weights
    checkpoints: list[int]  # steps at which the curves were evaluated (0 = before training)
    train_curve: list[dict[str, float]]  # loss + metrics on fixed training rows, eval mode
    val_curve: list[dict[str, float]]  # the same on validation rows (empty without validation data)
    model: nn.Module  # the weights at the end of the run
    seconds: float
    best_state: dict[str, torch.Tensor] | None = None  # weights at the checkpoint of lowest validation loss
    best_step: int | None = None

    @property
    def finite(self) -> np.ndarray:
        return self.losses[np.isfinite(self.losses)]

    @property
    def end_loss(self) -> float:
        """Mean training loss over the last fifth of the steps (inf when the run diverged)."""
        if self.diverged_at is not None:
            return math.inf
        tail = self.losses[-max(1, int(len(self.losses) * END_SHARE)) :]
        return float(np.mean(tail))

    def curve(self, split: str, key: str = "loss") -> list[float]:
        rows = self.train_curve if split == "train" else self.val_curve
        return [row.get(key, math.nan) for row in rows]


def short_run(
    ctx: Context, *, lr_factor: float = 1.0, zero_inputs: bool = False, steps: int | None = None, evals: bool = True
) -> RunRecord:
    """Train a fresh copy for `steps` (default ctx.steps) at lr * lr_factor; `evals=False` skips the curves."""
    ctx.require_loss()
    started = time.perf_counter()
    steps = steps or ctx.steps
    net = ctx.fresh_model()
    ctx.restore_loader()
    seed_everything(ctx.cfg.seed)
    optimizer = ctx.make_optimizer(net)
    for group in optimizer.param_groups:  # before the (constant) schedule reads its base LRs
        group["lr"] = group["lr"] * lr_factor
    trainer = probe_trainer(net, ctx.cfg, task=ctx.task, loss_fn=ctx.loss_fn, optimizer=optimizer)
    layers = [s.name for s in ctx.init.layers]
    modules = dict(net.named_modules())
    params = [[p for p in modules[name].parameters() if p.ndim >= 2 and p.requires_grad] for name in layers]
    every = max(1, steps // GRAD_RECORDS)
    checkpoints = sorted({round(i * steps / EVALS) for i in range(EVALS + 1)}) if evals else []
    rows = {s: ctx.eval_split(s) for s in ("train", "val")}
    if zero_inputs:
        rows = {s: None if d is None else (torch.zeros_like(d[0]), d[1]) for s, d in rows.items()}
    curves: dict[str, list[dict[str, float]]] = {"train": [], "val": []}
    best: dict[str, Any] = {"loss": math.inf, "state": None, "step": None}
    losses = np.full(steps, np.nan)
    grads: list[torch.Tensor] = []
    weights: list[torch.Tensor] = []
    grad_steps: list[int] = []
    diverged_at = None
    batches = forever(trainer.batches(ctx.train, train=True))
    for step in range(steps):
        if step in checkpoints:
            _evaluate(trainer, rows, curves, best, step)
        xb, yb = next(batches)
        if zero_inputs:
            xb = torch.zeros_like(xb)
        sink: list[list[torch.Tensor]] | None = [[] for _ in layers] if step % every == 0 else None
        handles = _grad_hooks(params, sink) if sink is not None else []
        try:
            loss = float(trainer.train_step(xb, yb))  # host sync per step: the divergence stop reads it
        finally:
            for handle in handles:
                handle.remove()
        losses[step] = loss
        if sink is not None:
            grads.append(torch.stack([_norm(parts) for parts in sink]))
            weights.append(torch.stack([_norm([p.detach() for p in ps]) for ps in params]))
            grad_steps.append(step)
        if not math.isfinite(loss):
            diverged_at = step
            break
    if diverged_at is None and checkpoints:
        _evaluate(trainer, rows, curves, best, steps)
    return RunRecord(
        lr=ctx.lr * lr_factor,
        losses=losses,
        diverged_at=diverged_at,
        grad_steps=grad_steps,
        layers=layers,
        grad_norms=torch.stack(grads).cpu().numpy() if grads else np.zeros((0, len(layers))),
        weight_norms=torch.stack(weights).cpu().numpy() if weights else np.zeros((0, len(layers))),
        checkpoints=checkpoints[: len(curves["train"])],
        train_curve=curves["train"],
        val_curve=curves["val"],
        model=net,
        seconds=time.perf_counter() - started,
        best_state=best["state"],
        best_step=best["step"],
    )


def _grad_hooks(params: list[list[nn.Parameter]], sink: list[list[torch.Tensor]]) -> list:
    """Tensor hooks that append each weight's gradient norm to its layer's list (removed after the step)."""
    return [
        p.register_hook(lambda g, i=i: sink[i].append(g.detach().float().norm()))
        for i, ps in enumerate(params)
        for p in ps
    ]


def _norm(parts: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of several tensors' concatenation (0 when there are none: no gradient reached them)."""
    if not parts:
        return torch.zeros(())
    return torch.stack([p.float().norm() for p in parts]).norm().cpu()


def _evaluate(
    trainer: Trainer,
    rows: dict[str, tuple[torch.Tensor, torch.Tensor] | None],
    curves: dict[str, list[dict[str, float]]],
    best: dict[str, Any],
    step: int,
) -> None:
    """Evaluate both splits; keep a copy of the weights when the validation loss is the lowest so far."""
    for split, data in rows.items():
        if data is None:
            continue
        try:
            curves[split].append(trainer.evaluate(data))
        except ValueError:  # scikit-learn refuses non-finite predictions
            curves[split].append({"loss": math.nan})
    if curves["val"] and curves["val"][-1]["loss"] < best["loss"]:
        best.update(loss=curves["val"][-1]["loss"], state=copy.deepcopy(trainer.model.state_dict()), step=step)
    trainer.model.train()  # evaluate() leaves the model in eval mode
