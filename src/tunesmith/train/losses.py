"""Losses by task (T12), model outputs as predictions, and the per-class report of a result check (T63).

T12: regression uses an identity output with MSE; binary classification one logit with a fused
sigmoid + BCE (`BCEWithLogitsLoss`, numerically stable); multiclass C logits with fused softmax +
cross-entropy. Soft targets (mixup) work with both fused losses. The headline metrics are in
`train/metrics.py`; `score_outputs` turns any model's outputs into the loss plus those metrics (the
network's in `Trainer.evaluate`, the baselines' in `baselines.py`); the per-class report is scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.train.metrics import task_metrics

__all__ = [
    "ClassificationLoss",
    "LossFn",
    "ShapedMSE",
    "class_report",
    "default_loss",
    "outputs_to_predictions",
    "score_outputs",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class ClassificationLoss(nn.Module):
    """Fused softmax + cross-entropy for C > 1 logits; fused sigmoid + BCE for one logit (T12).

    Targets are class indices, or soft probabilities from mixup ((B, C), or (B,) for one logit).
    """

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[-1] == 1:
            return nn.functional.binary_cross_entropy_with_logits(
                logits.reshape(-1), target.reshape(-1).to(logits.dtype)
            )
        return nn.functional.cross_entropy(logits, target)


class ShapedMSE(nn.Module):
    """MSE that lines the target up with the output ((B,) vs (B, 1) is a classic silent broadcast bug)."""

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.mse_loss(output, target.reshape(output.shape).to(output.dtype))


def default_loss(task: str) -> nn.Module:
    return ClassificationLoss() if task == "classification" else ShapedMSE()


def outputs_to_predictions(task: str, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Model outputs -> (predictions, class probabilities or None)."""
    if task != "classification":
        return outputs, None
    if outputs.shape[1] == 1:  # one logit: P(class 1) = sigmoid
        p1 = 1.0 / (1.0 + np.exp(-outputs[:, 0].astype(np.float64)))
        proba = np.stack([1 - p1, p1], axis=1)
    else:
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        e = np.exp(shifted.astype(np.float64))
        proba = e / e.sum(axis=1, keepdims=True)
    return proba.argmax(axis=1), proba


def score_outputs(
    task: str,
    out: torch.Tensor,
    y: torch.Tensor,
    *,
    loss_fn: nn.Module | LossFn,
    target_inverse: Callable[[np.ndarray], np.ndarray] | None = None,
) -> dict[str, float]:
    """loss (on the scale the model trains on) plus the task's metrics (regression: in target units, T05)."""
    loss = float(loss_fn(out, y))
    out_np = out.float().cpu().numpy().reshape(len(out), -1)
    y_np = y.cpu().numpy()
    predictions, _ = outputs_to_predictions(task, out_np)
    if task == "classification" and y_np.ndim > 1:  # soft labels (mixup) -> hard
        y_np = y_np.argmax(axis=1)
    elif task != "classification":
        y_np = y_np.reshape(len(y_np), -1)
        if target_inverse is not None:
            predictions, y_np = target_inverse(predictions), target_inverse(y_np)
    return {"loss": loss, **task_metrics(task, predictions, y_np)}


def class_report(predictions: np.ndarray, targets: np.ndarray, classes: list[Any]) -> dict[str, Any]:
    """T63: confusion matrix and per-class precision/recall/F1."""
    from sklearn import metrics as skm

    labels = list(range(len(classes)))
    p, r, f, support = skm.precision_recall_fscore_support(targets, predictions, labels=labels, zero_division=0)
    return {
        "classes": [str(c) for c in classes],
        "confusion": skm.confusion_matrix(targets, predictions, labels=labels).tolist(),
        "precision": p.tolist(),
        "recall": r.tolist(),
        "f1": f.tolist(),
        "support": support.tolist(),
    }
