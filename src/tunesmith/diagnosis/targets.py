"""What a loss expects of the targets, and the task that implies (T12): every standard PyTorch convention.

A loss belongs to one family, and each family takes the targets its own documentation describes:

- `indices`: CrossEntropyLoss (class indices (N,) int64, or class probabilities (N, C)), NLLLoss
  (indices, on log-softmax outputs), MultiMarginLoss, tunesmith's ClassificationLoss (indices, or
  0/1 targets for one logit).
- `binary`: BCEWithLogitsLoss, BCELoss, MultiLabelSoftMarginLoss: float targets in [0, 1] shaped
  like the outputs, (N,) or (N, 1) for one binary label, (N, K) for K labels.
- `regression`: MSELoss, L1Loss, SmoothL1Loss, HuberLoss, tunesmith's ShapedMSE.
- None: a user's own callable (or no loss given): the targets decide, integers classify.

Without a `task` from the user the family decides it. When the user's task and the loss disagree
(class labels into MSE, CrossEntropy on a regression), the doctor still examines the setup and
`loss_output_mismatch` reports the disagreement; nothing here raises.

For the data checks every classification row gets one hard label: the index itself, the argmax of
a probability row, the rounded 0/1 of a binary target. K independent labels per row (multi-label
BCE) have no single class, and the checks that count classes skip them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.diagnosis.base import Skip
from tunesmith.train.losses import ClassificationLoss, ShapedMSE

__all__ = [
    "FAMILIES",
    "accuracy",
    "hard_labels",
    "infer_task",
    "loss_family",
    "multilabel",
    "n_classes",
    "uninformed_loss",
]

FAMILIES: dict[str, tuple[type, ...]] = {
    "indices": (nn.CrossEntropyLoss, nn.NLLLoss, nn.MultiMarginLoss, ClassificationLoss),
    "binary": (nn.BCEWithLogitsLoss, nn.BCELoss, nn.MultiLabelSoftMarginLoss),
    "regression": (nn.MSELoss, nn.L1Loss, nn.SmoothL1Loss, nn.HuberLoss, ShapedMSE),
}


def loss_family(loss_fn: Any) -> str | None:
    """'indices', 'binary' or 'regression' for a standard loss; None for a user's callable or no loss."""
    return next((name for name, kinds in FAMILIES.items() if isinstance(loss_fn, kinds)), None)


def infer_task(family: str | None, y: torch.Tensor) -> str:
    """The task a loss family implies; without one, integer targets classify and float targets regress."""
    if family in ("indices", "binary"):
        return "classification"
    if family == "regression":
        return "regression"
    return "regression" if y.is_floating_point() else "classification"


def multilabel(y: torch.Tensor, family: str | None) -> bool:
    """K > 1 independent binary labels per row (BCE on (N, K) targets)."""
    return family == "binary" and y.ndim == 2 and y.shape[1] > 1


def hard_labels(y: torch.Tensor, family: str | None) -> np.ndarray:
    """(N,) int64: one class per row, for the checks that count classes; Skip for multi-label targets."""
    if multilabel(y, family):
        raise Skip(f"multi-label targets {tuple(y.shape[1:])} have no single class per row")
    if y.ndim == 2 and y.shape[1] > 1:  # class probabilities or one-hot rows
        return y.argmax(dim=1).numpy().astype(np.int64)
    flat = y.reshape(len(y)).double()
    return flat.round().numpy().astype(np.int64)


def n_classes(ys: list[torch.Tensor], family: str | None) -> int:
    """Classes the loss scores: K labels or C probability columns, 2 for a binary target, else max index + 1."""
    y = ys[0]
    if y.ndim == 2 and y.shape[1] > 1:
        return int(y.shape[1])
    if family == "binary":
        return 2
    return max(2, max(int(hard_labels(t, family).max(initial=0)) + 1 for t in ys))


def accuracy(out: torch.Tensor, y: torch.Tensor, loss_fn: Any, family: str | None) -> float:
    """Share of correct predictions (per label for multi-label targets): argmax of C outputs, one output
    thresholded at logit 0 (at 0.5 when BCELoss says the outputs are probabilities)."""
    out = out.detach().double().cpu().reshape(len(out), -1)
    y = y.detach().cpu()
    cut = 0.5 if isinstance(loss_fn, nn.BCELoss) else 0.0
    if multilabel(y, family):
        return float(((out > cut) == (y.reshape(out.shape) > 0.5)).double().mean())
    truth = torch.from_numpy(hard_labels(y, family))
    pred = (out[:, 0] > cut).long() if out.shape[1] == 1 else out.argmax(dim=1)
    return float((pred == truth).double().mean())


def uninformed_loss(y: torch.Tensor, family: str | None) -> float:
    """Cross-entropy of the best constant prediction: the entropy of the mean target distribution.

    Indices or probability rows: H(class shares); binary targets: the mean over labels of H(label rate).
    """
    if family == "binary":
        rates = y.double().reshape(len(y), -1).mean(dim=0).clamp(1e-12, 1 - 1e-12)
        return float(-(rates * rates.log() + (1 - rates) * (1 - rates).log()).mean())
    if y.ndim == 2 and y.shape[1] > 1:
        shares = y.double().mean(dim=0).numpy()
    else:
        counts = np.unique(hard_labels(y, family), return_counts=True)[1]
        shares = counts / counts.sum()
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())
