"""From what the user passes to `doctor(...)` to a `Context`: read the data, resolve the defaults, build the model.

`train` and `val` may be `(x, y)` arrays/tensors/DataFrames, a Dataset or a DataLoader. A DataLoader
is read once, as training would read its first epoch, up to MAX_ROWS rows (the per-batch targets
are kept for `unshuffled_batches`), and its RNG states are restored afterwards and before every
short run, so the doctor sees the batches exactly as the user's training would. Everything is copied: the user's
model and tensors are never modified.

Defaults are what `tunesmith fit` would choose for these data (`resolve`: T07 batch size, T10
family, T30 optimizer, T31 learning rate, T32 schedule). Bad input raises `BadInput` naming the
argument and the fix: NaN/inf values, x/y of different lengths, an empty DataLoader, a forward pass
that fails (with the batch shape), a loss that does not return a scalar.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tunesmith.diagnosis.context import MAX_ROWS, Context
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
_DATA_ALLOWED = "(x, y) arrays or tensors, a torch Dataset or a DataLoader"


@dataclass
class _Split:
    x: torch.Tensor
    y: torch.Tensor
    loader: DataLoader | None = None
    batch_targets: list[np.ndarray] = field(default_factory=list)
    names: list[str] | None = None
    rows: int = 0  # rows of the whole source (a DataLoader may hold more than were read)


@dataclass
class Inputs:
    """The doctor's data, read, validated and copied: what `build_context` and the train defaults need."""

    train: _Split
    val: _Split | None
    facts: DataFacts
    n_classes: int | None
    time: tuple[np.ndarray, np.ndarray] | None
    groups: tuple[np.ndarray, np.ndarray] | None
    loader_states: list[tuple[torch.Generator, torch.Tensor]]

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
    time: tuple[Any, Any] | None = None,
    groups: tuple[Any, Any] | None = None,
) -> Inputs:
    """Read `train`/`val` (a DataLoader as its first epoch, its RNGs left where they were) and validate them."""
    states = _loader_states(train)
    tr = _materialize(train, "train")
    va = None if val is None else _materialize(val, "val")
    for generator, state in states:  # reading the loader must not move its RNG
        generator.set_state(state)
    task = _task(task, tr.y)
    n_classes = _targets(tr, va, task)
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
        task=task,  # type: ignore[arg-type]
        kind=kind,  # type: ignore[arg-type]
        n_train=len(tr.x),
        input_shape=tuple(tr.x.shape[1:]),
        n_outputs=_n_outputs(task, tr, n_classes),
    )
    return Inputs(tr, va, facts, n_classes, _pair(time, "time", tr, va), _pair(groups, "groups", tr, va), states)


def build_context(
    inputs: Inputs,
    model: nn.Module | None,
    recipe: Recipe,
    *,
    loss_fn: nn.Module | LossFn | None = None,
    optimizer: Any = None,
    steps: int = 200,
    feature_names: list[str] | None = None,
    notes: dict[str, Any] | None = None,
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
    ctx = Context(
        task=task,
        kind=inputs.facts.kind,
        x_train=tr.x,
        y_train=tr.y,
        x_val=None if va is None else va.x,
        y_val=None if va is None else va.y,
        train=tr.loader if tr.loader is not None else (tr.x, tr.y),
        model=net.cpu(),
        loss_fn=loss_fn if loss_fn is not None else default_loss(task),
        cfg=recipe.train,
        n_classes=inputs.n_classes,
        optimizer_factory=_optimizer_factory(optimizer, recipe.train.lr),  # type: ignore[arg-type]
        loader=tr.loader,
        batch_targets=tr.batch_targets,
        time=inputs.time,
        groups=inputs.groups,
        feature_names=feature_names or tr.names,
        notes=dict(notes or {}),
        steps=steps,
        _loader_states=inputs.loader_states,
    )
    ctx.loss_error = _check_forward(ctx)
    return ctx


def optimizer_name(optimizer: Any) -> str | None:
    """The TrainConfig name of a user's optimizer: a name as is, a torch.optim class by its name, else None."""
    if optimizer is None or isinstance(optimizer, str):
        return optimizer
    return _OPTIMIZER_NAMES.get(optimizer, "auto")


# ---- data ----------------------------------------------------------------------------------------


def _loader_states(data: Any) -> list[tuple[torch.Generator, torch.Tensor]]:
    if not isinstance(data, DataLoader):
        return []
    found = [getattr(data, "generator", None), getattr(data.sampler, "generator", None)]
    gens = [g for i, g in enumerate(found) if isinstance(g, torch.Generator) and g not in found[:i]]
    return [(g, g.get_state()) for g in gens]


def _materialize(data: Any, split: str) -> _Split:
    if isinstance(data, DataLoader | Dataset):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
        xs, ys = [], []
        for batch in loader:
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise BadInput(
                    f"The {split} data must yield (x, y) pairs; a batch held {type(batch).__name__} "
                    f"of {len(batch) if isinstance(batch, tuple | list) else 1} item(s)."
                )
            xs.append(torch.as_tensor(batch[0]))
            ys.append(torch.as_tensor(batch[1]))
            if sum(len(x) for x in xs) >= MAX_ROWS:  # enough to judge; the short runs still iterate it all
                break
        if not xs:
            raise BadInput(
                f"The {split} DataLoader yields no batches (an empty dataset, or drop_last=True with fewer "
                "rows than one batch). Pass data with at least one full batch."
            )
        out = _Split(_clean_x(torch.cat(xs), split), torch.cat(ys).clone(), rows=_length(loader.dataset))
        if isinstance(data, DataLoader):
            out.loader = data
            out.batch_targets = [y.numpy() for y in ys]
        return out
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise BadInput(must_be(split, "doctor", _DATA_ALLOWED, type(data).__name__))
    x_raw, y_raw = data
    names = [str(c) for c in x_raw.columns] if isinstance(x_raw, pd.DataFrame) else None
    x, y = _tensor(x_raw, f"{split} x"), _tensor(y_raw, f"{split} y")
    if len(x) != len(y):
        raise BadInput(
            f"The {split} x and y differ in length ({len(x)} vs {len(y)} rows): every sample needs exactly "
            "one target. Check that both come from the same rows."
        )
    if len(x) == 0:
        raise BadInput(f"The {split} data hold no rows.")
    return _Split(_clean_x(x, split), y.clone(), names=names, rows=len(x))


def _length(dataset: Any) -> int:
    """len(dataset), or 0 for an iterable dataset without one."""
    try:
        return len(dataset)
    except TypeError:
        return 0


def _tensor(a: Any, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    if isinstance(a, pd.DataFrame | pd.Series):
        a = a.to_numpy()
    try:
        array = np.asarray(a)
        return torch.from_numpy(np.array(array, dtype=np.float32 if array.dtype == object else array.dtype))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"The {what} cannot be read as a numeric array: {exc}.") from None


def _clean_x(x: torch.Tensor, split: str) -> torch.Tensor:
    x = x.detach().cpu().to(torch.float32).clone()  # a private float32 copy
    if x.ndim < 2:
        raise BadInput(f"The {split} x has shape {tuple(x.shape)}; it needs a row axis and features: (rows, features).")
    _finite(x, f"{split} x")
    return x


def _finite(t: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(t.reshape(len(t), -1))
    if bad.any():
        rows = torch.nonzero(bad.any(dim=1)).flatten().tolist()
        raise BadInput(
            f"The {what} holds {int(bad.sum())} NaN or infinite values in {len(rows)} rows (first rows: "
            f"{rows[:5]}). A model cannot train on them: impute them (T01; `tunesmith doctor --data FILE` "
            "imputes them with data.impute) or drop those rows."
        )


def _task(task: str | None, y: torch.Tensor) -> str:
    if task is not None:
        if task not in ("classification", "regression", "reconstruction"):
            raise BadInput(must_be("task", "doctor", "'classification', 'regression' or 'reconstruction'", task))
        return task
    return "regression" if y.is_floating_point() else "classification"


def _targets(tr: _Split, va: _Split | None, task: str) -> int | None:
    """Put targets in the loss's dtype (in place on the private copies); the class count for classification."""
    splits = [("train", tr)] + ([("val", va)] if va is not None else [])
    if task == "reconstruction":
        for _, s in splits:
            s.y = s.x
        return None
    if task == "regression":
        for name, s in splits:
            s.y = s.y.to(torch.float32)
            _finite(s.y, f"{name} y")
        return None
    for name, s in splits:
        if s.y.ndim != 1 or (s.y.is_floating_point() and not torch.equal(s.y, s.y.round())):
            raise BadInput(
                f"The {name} y of a classification must be class indices 0..C-1, one per row; got shape "
                f"{tuple(s.y.shape)} of {s.y.dtype}. Pass y.argmax(1) for one-hot targets."
            )
        if not s.y.is_floating_point():  # float 0./1. labels stay float: BCEWithLogitsLoss wants them so
            s.y = s.y.to(torch.int64)
        if len(s.y) and int(s.y.min()) < 0:
            raise BadInput(f"The {name} y holds negative class indices ({int(s.y.min())}); classes are 0..C-1.")
    return max(int(s.y.max()) + 1 for _, s in splits)


def _n_outputs(task: str, tr: _Split, n_classes: int | None) -> int:
    if task == "classification":
        assert n_classes is not None
        return 1 if n_classes == 2 else n_classes  # T12: one logit for binary
    if task == "regression":
        return 1 if tr.y.ndim == 1 else int(tr.y.shape[1])
    return math.prod(tr.x.shape[1:])


def _pair(
    value: tuple[Any, Any] | None, name: str, tr: _Split, va: _Split | None
) -> tuple[np.ndarray, np.ndarray] | None:
    if value is None:
        return None
    if not (isinstance(value, tuple | list) and len(value) == 2) or va is None:
        hint = "" if va is not None else " It needs validation data (val=...)."
        raise BadInput(
            must_be(name, "doctor", f"a pair ({name}_train, {name}_val) of arrays", type(value).__name__, hint=hint)
        )
    out = []
    for part, s, split in zip(value, (tr, va), ("train", "val"), strict=True):
        array = np.asarray(part)
        rows = s.rows or len(s.x)
        if len(array) != rows:
            raise BadInput(f"{name}[{split}] has {len(array)} values for {rows} {split} rows: one per row.")
        out.append(array)
    return out[0], out[1]


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


def _check_forward(ctx: Context) -> str | None:
    """Run the model and the loss on one training batch: BadInput when they cannot run at all.

    Returns a description when the loss cannot take the model's outputs because of a class-count
    mismatch (fewer logits than classes): `loss_output_mismatch` reports that as a finding.
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
    try:
        loss = ctx.loss_fn(out, yb)
    except Exception as exc:  # user losses raise anything
        width = out.shape[-1] if out.ndim > 1 else 1
        if ctx.task == "classification" and ctx.n_classes is not None and 1 < width < ctx.n_classes:
            return f"{type(exc).__name__}: {exc}"
        raise BadInput(
            f"loss_fn failed on the model's outputs {tuple(out.shape)} and targets {tuple(yb.shape)} "
            f"({yb.dtype}): {type(exc).__name__}: {exc}."
        ) from None
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise BadInput(
            f"loss_fn returned {shape} for outputs {tuple(out.shape)} and targets {tuple(yb.shape)}; it must "
            "return a scalar tensor (e.g. reduction='mean')."
        )
    return None
