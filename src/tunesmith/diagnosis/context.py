"""What every doctor check reads: the data as the model sees it, the model, the loss, the optimizer.

A `Context` holds private copies (the user's model and tensors are never touched): the training and
validation tensors, one epoch of batch targets as the user's DataLoader served them, NumPy views for
the data checks, a pristine copy of the model (each check works on a fresh copy of it), the loss and
the optimizer factory, and the resolved TrainConfig (lr, batch size, schedule, epochs, seed).

Measurements shared by several checks are computed lazily, once: the seeded short training run and
its LR probes (`run`, `probe`), the same run on zeroed inputs (`zero_run`), the statistics at
initialization (`init`). A check that needs one of them pays for it only if it runs.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from tunesmith.diagnosis.base import Skip
from tunesmith.diagnosis.pretrained import Pretrained, find_pretrained
from tunesmith.diagnosis.targets import hard_labels, multilabel
from tunesmith.recipe import TrainConfig
from tunesmith.train.losses import LossFn
from tunesmith.train.optim import make_optimizer
from tunesmith.train.trainer import DataArg, resolve_device

__all__ = ["MAX_ROWS", "PROBE_ROWS", "Context", "OptimizerFactory", "Texts"]

OptimizerFactory = Callable[[nn.Module], torch.optim.Optimizer]
MAX_ROWS = 20_000  # data checks read at most this many rows per split (a seeded sample beyond it) ...
MAX_CELLS = 20_000_000  # ... and at most this many values (160 MB as float64) for wide samples (images)
PROBE_ROWS = 256  # rows of the probe batch that activation and gradient statistics are measured on
EVAL_ROWS = 512  # rows of each split evaluated at the short run's checkpoints


@dataclass(frozen=True)
class Texts:
    """The raw strings behind a recipe's inputs, which token ids and one-hot columns hide (text_checks.py)."""

    state: dict[str, Any]  # the fold's preprocessor state (text: the tokenizer, max_length, truncated share)
    splits: dict[str, list[str]] = field(default_factory=dict)  # a text run's train/val/test texts
    labels: np.ndarray | None = None  # the training rows' labels, as given (classification)
    classes: list[Any] = field(default_factory=list)  # class labels (classification)
    categories: dict[str, pd.Series] = field(default_factory=dict)  # tables: one-hot encoded columns, training rows


@dataclass(eq=False)
class Context:
    task: str  # classification | regression | reconstruction
    kind: str  # tabular (N, F) | sequence (N, T, C) | image (N, C, H, W)
    x_train: torch.Tensor  # as the model sees it (CPU): float32, integer ids, or a DataLoader's dtype
    y_train: torch.Tensor  # as the loss takes it: indices (N,) int64, probabilities (N, C), float targets, or x
    x_val: torch.Tensor | None
    y_val: torch.Tensor | None
    train: DataArg  # what the short runs iterate: (x_train, y_train) or the user's DataLoader
    model: nn.Module  # a private, never-trained copy; checks call fresh_model()
    loss_fn: nn.Module | LossFn
    cfg: TrainConfig  # resolved: lr, batch_size, optimizer, schedule, epochs, seed, device, penalties
    n_classes: int | None = None
    family: str | None = None  # the loss's target convention (targets.FAMILIES); None: a user's callable
    task_given: bool = False  # the user named the task (else the loss and the targets implied it)
    optimizer_factory: OptimizerFactory | None = None  # the user's optimizer class/factory; None: cfg's
    loader: DataLoader | None = None  # the user's training DataLoader, when one was given
    batch_targets: list[np.ndarray] = field(default_factory=list)  # targets per batch, one epoch as served
    time: tuple[np.ndarray, np.ndarray] | None = None  # (t_train, t_val)
    groups: tuple[np.ndarray, np.ndarray] | None = None  # (g_train, g_val)
    feature_names: list[str] | None = None  # tabular column names
    notes: dict[str, Any] = field(default_factory=dict)  # facts from loading raw data (imputed, dropped)
    texts: Texts | None = None  # the raw strings (doctor_recipe); None for a user's arrays
    steps: int = 200  # optimizer steps of the short run
    loss_error: str | None = None  # why loss_fn cannot be evaluated on the model's outputs (a mismatch)
    output_shape: tuple[int, ...] = ()  # the model's output per sample, e.g. (C,)
    _loader_states: list[tuple[torch.Generator, torch.Tensor]] = field(default_factory=list, repr=False)
    _rows_cache: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    _probes: dict[float, Any] = field(default_factory=dict, repr=False)

    # ---- model, optimizer ------------------------------------------------------------------------
    @cached_property
    def device(self) -> torch.device:
        return resolve_device(self.cfg.device)

    @cached_property
    def pretrained(self) -> Pretrained:
        """The model's pretrained parts (a Hugging Face backbone) and their encoder blocks; empty when it has none."""
        return find_pretrained(self.model)

    def fresh_model(self) -> nn.Module:
        """A new copy of the untrained model, on the device."""
        return copy.deepcopy(self.model).to(self.device)

    def clone(self, state: nn.Module | dict[str, torch.Tensor]) -> nn.Module:
        """A fresh copy of the model holding the weights of `state` (a trained copy or its state_dict)."""
        model = self.fresh_model()
        model.load_state_dict(state.state_dict() if isinstance(state, nn.Module) else state)
        return model

    def make_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        if self.optimizer_factory is not None:
            return self.optimizer_factory(model)
        return make_optimizer(model, self.cfg)

    @property
    def lr(self) -> float:
        assert self.cfg.lr is not None  # resolved
        return self.cfg.lr

    @property
    def batch_size(self) -> int:
        assert self.cfg.batch_size is not None  # resolved
        return self.cfg.batch_size

    @property
    def steps_per_epoch(self) -> int:
        if self.loader is not None:
            return len(self.loader)
        return math.ceil(len(self.x_train) / self.batch_size)

    def restore_loader(self) -> None:
        """Put the user's DataLoader RNGs back where they were, so every run sees the same batch order."""
        for generator, state in self._loader_states:
            generator.set_state(state)

    # ---- batches for probes ---------------------------------------------------------------------
    @cached_property
    def probe_rows(self) -> torch.Tensor:
        """Indices of a seeded sample of training rows (all of them when there are few)."""
        n = len(self.x_train)
        g = torch.Generator().manual_seed(self.cfg.seed)
        return torch.randperm(n, generator=g)[: min(n, PROBE_ROWS)]

    def probe_batch(self, rows: int = PROBE_ROWS) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) of up to `rows` seeded training rows, on the device."""
        idx = self.probe_rows[:rows]
        return self.x_train[idx].to(self.device), self.y_train[idx].to(self.device)

    def eval_split(self, split: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The rows evaluated at the short run's checkpoints: a seeded sample of EVAL_ROWS of a split."""
        data = self.split(split)
        if data is None:
            return None
        g = torch.Generator().manual_seed(self.cfg.seed)
        idx = torch.randperm(len(data[0]), generator=g)[:EVAL_ROWS]
        return data[0][idx], data[1][idx]

    # ---- NumPy views for the data checks --------------------------------------------------------
    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        if name == "train":
            return self.x_train, self.y_train
        return None if self.x_val is None or self.y_val is None else (self.x_val, self.y_val)

    def rows(self, name: str) -> np.ndarray:
        """(N, F) float64: one flattened sample per row (a seeded sample of MAX_ROWS beyond that)."""
        if name not in self._rows_cache:
            data = self.split(name)
            if data is None:
                raise ValueError(f"no {name} split")
            x = data[0][self._sample(data[0])]
            self._rows_cache[name] = x.reshape(len(x), -1).double().numpy()
        return self._rows_cache[name]

    def targets(self, name: str) -> np.ndarray:
        """One class per row (N,) int64, or targets (N, K) float64, on the same rows as `rows(name)`.

        Classes are the rows' hard labels (targets.hard_labels); multi-label targets raise Skip.
        """
        data = self.split(name)
        if data is None:
            raise ValueError(f"no {name} split")
        y = data[1][self._sample(data[0])]
        if self.task == "classification":
            return hard_labels(y, self.family)
        return y.reshape(len(y), -1).double().numpy()

    def target_values(self, name: str) -> np.ndarray:
        """The targets as given, (N, K) float64, on the same rows as `rows(name)` (for exact-copy checks)."""
        data = self.split(name)
        if data is None:
            raise ValueError(f"no {name} split")
        y = data[1][self._sample(data[0])]
        return y.reshape(len(y), -1).double().numpy()

    @property
    def multilabel(self) -> bool:
        """K independent binary labels per row (BCE on (N, K) targets): no single class per row."""
        return multilabel(self.y_train, self.family)

    def require_loss(self) -> None:
        """Skip a check that needs the loss when the loss cannot take the model's outputs and targets."""
        if self.loss_error is not None:
            raise Skip("the loss cannot be computed on the model's outputs and targets (see loss_output_mismatch)")

    @property
    def integer_inputs(self) -> bool:
        """Inputs are integer codes (token ids, categories for an embedding), not measurements."""
        return not (self.x_train.is_floating_point() or self.x_train.is_complex())

    @property
    def token_ids(self) -> bool:
        """Inputs are the token ids of texts (a text recipe, or a model with a pretrained backbone): their columns
        are positions in a text, not features."""
        text = self.texts is not None and self.texts.state.get("kind") == "text"
        return self.integer_inputs and (text or bool(self.pretrained))

    def channels(self, name: str) -> tuple[np.ndarray, list[str]]:
        """(values, names): one column per feature (tables) or per channel, pooled over positions."""
        x = self.rows(name)
        if self.kind == "tabular":
            return x, self.column_names(x.shape[1])
        full = self.split(name)[0]  # type: ignore[index]
        axis = 1 if self.kind == "image" else full.ndim - 1  # channel axis of (N, C, H, W) or (N, T, C)
        c = full.shape[axis]
        shaped = x.reshape((len(x), *full.shape[1:]))
        pooled = np.moveaxis(shaped, axis, -1).reshape(-1, c)
        return pooled, [f"channel {i}" for i in range(c)]

    def summaries(self, name: str) -> tuple[np.ndarray, list[str]]:
        """Per-sample features for comparing splits: the columns of a table; per-channel mean and std otherwise."""
        x = self.rows(name)
        if self.kind == "tabular":
            return x, self.column_names(x.shape[1])
        full = self.split(name)[0]  # type: ignore[index]
        axis = 1 if self.kind == "image" else full.ndim - 1
        c = full.shape[axis]
        per = np.moveaxis(x.reshape((len(x), *full.shape[1:])), axis, 1).reshape(len(x), c, -1)  # (N, C, positions)
        names = [f"channel {i} mean" for i in range(c)] + [f"channel {i} std" for i in range(c)]
        return np.concatenate([per.mean(axis=2), per.std(axis=2)], axis=1), names

    def column_names(self, n: int) -> list[str]:
        names = self.feature_names
        return list(names) if names is not None and len(names) == n else [f"x[{i}]" for i in range(n)]

    def _sample(self, x: torch.Tensor) -> np.ndarray | slice:
        """The rows the data checks read: all, or a seeded sample within MAX_ROWS and MAX_CELLS."""
        n, keep = len(x), min(MAX_ROWS, MAX_CELLS // max(1, x[0].numel()))
        if n <= keep:
            return slice(None)
        return np.sort(np.random.default_rng(self.cfg.seed).choice(n, keep, replace=False))

    # ---- shared measurements (lazy, computed once) -----------------------------------------------
    @cached_property
    def init(self) -> Any:
        """Statistics of the untrained model: loss over a few batches, layer outputs, activations."""
        from tunesmith.diagnosis.probes import measure_init

        return measure_init(self)

    @cached_property
    def run(self) -> Any:
        """The seeded short training run at the configured learning rate (a `RunRecord`)."""
        from tunesmith.diagnosis.shortrun import short_run

        return short_run(self)

    def probe(self, factor: float) -> Any:
        """The same short run with the learning rate multiplied by `factor` (cached per factor)."""
        from tunesmith.diagnosis.shortrun import short_run

        if factor not in self._probes:
            self._probes[factor] = short_run(self, lr_factor=factor)
        return self._probes[factor]

    @cached_property
    def zero_run(self) -> Any:
        """Half the short run on zeroed inputs: what the model learns without looking at the data."""
        from tunesmith.diagnosis.shortrun import short_run

        return short_run(self, zero_inputs=True, steps=self.steps // 2)
