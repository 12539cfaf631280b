"""From what the user passes to `doctor(...)` to a `Context`: read the data, resolve the defaults, build the model.

`train` and `val` may be `(x, y)` arrays/tensors/DataFrames, a Dataset or a DataLoader. A DataLoader
is read once, as training would read its first epoch, up to MAX_ROWS rows (the per-batch targets
are kept for `unshuffled_batches`), and its RNG states are restored afterwards and before every
short run, so the doctor sees the batches exactly as the user's training would. Everything is copied: the user's
model and tensors are never modified, and inputs keep their dtype (integer token ids stay integer; floating
arrays become float32, as tunesmith's Trainer feeds them; a DataLoader's batches reach the model as served).

The copies are put in a canonical row order (sorted by their bytes), so no finding depends on whether the
same rows came as arrays, tensors, a Dataset or a shuffling DataLoader. The task follows from the loss and
the targets (`targets.py`) when the user does not name it.

Sick data is examined, not refused: NaN/inf inputs are replaced by the training column's median
and rows with a non-finite target are dropped, in the copies only; `missing_values` reports what
was found and every other finding says it ran on the imputed copy. A loss that cannot take the
outputs and targets is recorded for `loss_output_mismatch`. Defaults are what `tunesmith fit` would
choose for these data (`resolve`: T07 batch size, T10 family, T30 optimizer, T31 learning rate, T32
schedule). Only input that cannot be examined at all raises `BadInput` naming the argument and the
fix: x/y of different lengths, no rows (an empty DataLoader), a forward pass that fails (with the
batch shape).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.diagnosis.context import Context, Texts
from tunesmith.diagnosis.reading import Split, canonical_order, impute, loader_states, materialize, pair
from tunesmith.diagnosis.targets import infer_task, loss_family, multilabel, n_classes
from tunesmith.errors import BadInput, must_be
from tunesmith.models import fresh_model
from tunesmith.recipe import DataFacts, Recipe, resolve
from tunesmith.train.losses import LossFn, default_loss

__all__ = ["Inputs", "build_context", "optimizer_name", "read_inputs"]

_OPTIMIZER_NAMES = {
    torch.optim.SGD: "sgd",
    torch.optim.Adam: "adam",
    torch.optim.AdamW: "adamw",
    torch.optim.RMSprop: "rmsprop",
    torch.optim.Adagrad: "adagrad",
}
_KINDS = {2: "tabular", 3: "sequence", 4: "image"}
_TASKS = ("classification", "regression", "reconstruction")


@dataclass
class Inputs:
    """The doctor's data, read and copied, and what the loss implies: what `build_context` and the defaults need."""

    train: Split
    val: Split | None
    facts: DataFacts
    n_classes: int | None
    time: tuple[np.ndarray, np.ndarray] | None
    groups: tuple[np.ndarray, np.ndarray] | None
    loader_states: list[tuple[torch.Generator, torch.Tensor]]
    loss_fn: nn.Module | LossFn  # the user's, or the task's default (T12)
    family: str | None  # the loss's target convention (targets.FAMILIES), None for a user's callable
    task_given: bool  # the user named the task (else it was inferred from the loss and the targets)
    nonfinite: dict[str, Any] = field(default_factory=dict)  # what `impute` replaced, per split

    def recipe(self, overrides: dict[str, Any], *, seed: int, device: str) -> Recipe:
        """The recipe `tunesmith fit` would resolve for these data under dotted train overrides.

        Unset (None) overrides take fit's defaults; a DataLoader's own batch size wins over any other.
        """
        if self.train.loader is not None:
            batch = self.train.loader.batch_size or len(self.train.batch_targets[0])
            overrides = {**overrides, "train.batch_size": batch}
        resolved = resolve(Recipe().with_overrides({k: v for k, v in overrides.items() if v is not None}), self.facts)
        return resolved.model_copy(update={"train": resolved.train.model_copy(update={"seed": seed, "device": device})})


def read_inputs(
    train: Any,
    val: Any = None,
    *,
    task: str | None = None,
    loss_fn: nn.Module | LossFn | None = None,
    time: tuple[Any, Any] | None = None,
    groups: tuple[Any, Any] | None = None,
) -> Inputs:
    """Read `train`/`val` (a DataLoader as its first epoch, its RNGs left where they were) into clean copies."""
    states = loader_states(train)
    tr = materialize(train, "train")
    va = None if val is None else materialize(val, "val")
    for generator, state in states:  # reading the loader must not move its RNG
        generator.set_state(state)
    if task is not None and task not in _TASKS:
        raise BadInput(must_be("task", "doctor", "'classification', 'regression' or 'reconstruction'", task))
    resolved_task = task or infer_task(loss_family(loss_fn), tr.y)
    loss = loss_fn if loss_fn is not None else default_loss(resolved_task)
    family = loss_family(loss)
    splits = {"train": tr, **({"val": va} if va is not None else {})}
    nonfinite = impute(splits, target_values=resolved_task != "reconstruction")
    for s in splits.values():
        canonical_order(s)
        if resolved_task == "reconstruction":
            s.y = s.x
    classes = n_classes([s.y for s in splits.values()], family) if resolved_task == "classification" else None
    kind = _KINDS.get(tr.x.ndim)
    if kind is None:
        raise BadInput(
            must_be("train", "doctor", "x of 2 (rows, features), 3 (rows, time, channels) or 4 dims", tuple(tr.x.shape))
        )
    if va is not None and tuple(va.x.shape[1:]) != tuple(tr.x.shape[1:]):
        raise BadInput(
            f"val x has sample shape {tuple(va.x.shape[1:])}, train x {tuple(tr.x.shape[1:])}: they must match."
        )
    facts = DataFacts(
        task=resolved_task,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        n_train=len(tr.x),
        input_shape=tuple(tr.x.shape[1:]),
        n_outputs=_n_outputs(resolved_task, tr.y, classes, family),
    )
    return Inputs(
        tr,
        va,
        facts,
        classes,
        pair(time, "time", tr, va),
        pair(groups, "groups", tr, va),
        states,
        loss,
        family,
        task is not None,
        nonfinite,
    )


def build_context(
    inputs: Inputs,
    model: nn.Module | None,
    recipe: Recipe,
    *,
    optimizer: Any = None,
    steps: int = 200,
    feature_names: list[str] | None = None,
    notes: dict[str, Any] | None = None,
    texts: Texts | None = None,
) -> Context:
    """The checks' Context: the model (`recipe`'s default one when None) and the run settings of `recipe.train`.

    optimizer: the user's torch.optim class or factory(params, lr=...), used in place of the one the
    TrainConfig names; a name or None leaves the TrainConfig's.
    """
    if steps < 20:
        raise BadInput(must_be("steps", "doctor", "an int >= 20", steps))
    tr, va, task = inputs.train, inputs.val, inputs.facts.task
    net = fresh_model(recipe.model, inputs.facts, model)
    if not isinstance(net, nn.Module):
        raise BadInput(must_be("model", "doctor", "a torch.nn.Module", type(net).__name__))
    # sick rows train from the imputed copy, and a reconstruction from (x, x), not the loader's (x, y)
    served = tr.loader is not None and not inputs.nonfinite and task != "reconstruction"
    ctx = Context(
        task=task,
        kind=inputs.facts.kind,
        x_train=tr.x,
        y_train=tr.y,
        x_val=None if va is None else va.x,
        y_val=None if va is None else va.y,
        train=tr.loader if served else (tr.x, tr.y),  # type: ignore[arg-type]
        model=net.cpu(),
        loss_fn=inputs.loss_fn,
        cfg=recipe.train,
        n_classes=inputs.n_classes,
        family=inputs.family,
        task_given=inputs.task_given,
        optimizer_factory=_optimizer_factory(optimizer, recipe.train.lr),  # type: ignore[arg-type]
        loader=tr.loader,
        batch_targets=tr.batch_targets,
        time=inputs.time,
        groups=inputs.groups,
        feature_names=feature_names or tr.names,
        notes={**(notes or {}), **({"nonfinite": inputs.nonfinite} if inputs.nonfinite else {})},
        steps=steps,
        texts=texts,
        _loader_states=inputs.loader_states,
    )
    ctx.output_shape, ctx.loss_error = _check_forward(ctx)
    return ctx


def optimizer_name(optimizer: Any) -> str | None:
    """The TrainConfig name of a user's optimizer: a name as is, a torch.optim class by its name, else None."""
    if optimizer is None or isinstance(optimizer, str):
        return optimizer
    return _OPTIMIZER_NAMES.get(optimizer, "auto")


def _n_outputs(task: str, y: torch.Tensor, classes: int | None, family: str | None) -> int:
    """Outputs of the default model: one logit for a binary target (T12), C for C classes, one per target column."""
    if task == "classification":
        assert classes is not None
        if multilabel(y, family):
            return classes
        return 1 if classes == 2 else classes
    if task == "regression":
        return 1 if y.ndim == 1 else int(y.shape[1])
    return math.prod(y.shape[1:])


# ---- defaults and the model's first batch --------------------------------------------------------


def _optimizer_factory(optimizer: Any, lr: float) -> Callable[[nn.Module], torch.optim.Optimizer] | None:
    if optimizer is None or isinstance(optimizer, str):
        return None  # the resolved TrainConfig names it
    if not callable(optimizer):
        allowed = "a name (sgd, adam, adamw, rmsprop, adagrad), a torch.optim class or a factory(params, lr=...)"
        raise BadInput(must_be("optimizer", "doctor", allowed, type(optimizer).__name__))

    def factory(model: nn.Module) -> torch.optim.Optimizer:
        made = optimizer(model.parameters(), lr=lr)
        if not isinstance(made, torch.optim.Optimizer):
            raise BadInput(must_be("optimizer", "doctor", "a factory returning a torch.optim.Optimizer", made))
        return made

    return factory


def _check_forward(ctx: Context) -> tuple[tuple[int, ...], str | None]:
    """Run the model and the loss on one training batch: (the output's sample shape, why the loss fails).

    A forward pass that raises, or returns no row per sample, leaves nothing to examine: BadInput.
    A loss that raises on the outputs and targets, or returns no scalar, is a finding
    (`loss_output_mismatch` reports it, and the checks that need the loss skip).
    """
    xb, yb = ctx.x_train[: ctx.batch_size], ctx.y_train[: ctx.batch_size]
    model = copy.deepcopy(ctx.model).train()
    try:
        with torch.no_grad():
            out = model(xb)
    except Exception as exc:  # any error of user code: show it with the batch that caused it
        raise BadInput(
            f"The model's forward pass failed on a training batch of shape {tuple(xb.shape)} ({xb.dtype}): "
            f"{type(exc).__name__}: {exc}. The model must accept batches shaped (batch, "
            f"{', '.join(map(str, xb.shape[1:]))}) as the data provide them."
        ) from None
    if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != len(xb):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BadInput(
            f"The model returned {shape} for a batch of {len(xb)} rows; the doctor needs one output row per "
            "sample (a tensor shaped (batch, outputs))."
        )
    shapes = f"outputs {tuple(out.shape)} ({out.dtype}) and targets {tuple(yb.shape)} ({yb.dtype})"
    try:
        with torch.no_grad():
            loss = ctx.loss_fn(out, yb)
    except Exception as exc:  # user losses raise anything; the mismatch is the finding
        return tuple(out.shape[1:]), f"the loss raised on {shapes}: {type(exc).__name__}: {exc}"
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        return tuple(out.shape[1:]), f"the loss returned {shape} for {shapes}, not a scalar (reduction='none'?)"
    return tuple(out.shape[1:]), None
