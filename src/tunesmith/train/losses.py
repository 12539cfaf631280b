"""Losses by task (T12) and the metrics of a result check (T63).

T12: regression uses an identity output with MSE; binary classification one logit with a fused
sigmoid + BCE (`BCEWithLogitsLoss`, numerically stable); multiclass C logits with fused softmax +
cross-entropy. Soft targets (mixup) work with both fused losses. Metrics are scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "ClassificationLoss",
    "LossFn",
    "ShapedMSE",
    "class_report",
    "default_loss",
    "metric_direction",
    "outputs_to_predictions",
    "task_metrics",
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


def task_metrics(task: str, predictions: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Headline metrics (metrics.json contract): accuracy + f1_macro, or rmse + mae + r2.

    Computed every epoch, so written in plain NumPy (scikit-learn's input validation costs ~10 ms a
    call); `tests/test_trainer.py` checks them against scikit-learn's definitions.
    """
    if task == "classification":
        t, p = targets.astype(np.int64).ravel(), predictions.astype(np.int64).ravel()
        n = int(max(t.max(initial=0), p.max(initial=0))) + 1
        confusion = np.bincount(t * n + p, minlength=n * n).reshape(n, n)
        hits, predicted, actual = np.diag(confusion), confusion.sum(0), confusion.sum(1)
        present = (predicted + actual) > 0  # classes absent from both count as in sklearn's labels=None
        f1 = np.divide(2 * hits, predicted + actual, out=np.zeros(n), where=present)
        return {"accuracy": float(hits.sum() / max(1, len(t))), "f1_macro": float(f1[present].mean())}
    p64 = predictions.reshape(len(predictions), -1).astype(np.float64)
    t64 = targets.reshape(len(targets), -1).astype(np.float64)
    err = p64 - t64
    spread = ((t64 - t64.mean(axis=0)) ** 2).sum(axis=0)
    r2 = np.where(spread > 0, 1 - (err**2).sum(axis=0) / np.where(spread > 0, spread, 1), 0.0)
    return {"rmse": float(np.sqrt((err**2).mean())), "mae": float(np.abs(err).mean()), "r2": float(r2.mean())}


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


def metric_direction(name: str) -> bool:
    """True when a larger value of the metric is better."""
    return name in ("accuracy", "f1_macro", "r2")
