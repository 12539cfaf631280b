"""The final model as an ensemble: K members whose predictions are averaged (issue 14; `data.ensemble`).

    preds = [member_prediction(task, forward(m.model, m.preprocessor.transform_x(rows)), m.preprocessor, x)
             for m in members]
    average(preds)        # what `tunesmith predict` returns for an ensemble run

A member is one trained model with its own preprocessing: a fold model of `--cv K` (fold-K/model.pt and
fold-K/preprocess.json, fitted on that fold's training rows) or, for time-ordered data, one of K seeds
trained on every development row (data/splits.py `seed_members`). Each member reads the rows its own
way, and its prediction is taken in the units a user sees: class probabilities (softmax, or sigmoid for
one logit), regression outputs in target units (each member undoes its own target scaling, T05), or an
autoencoder's per-row reconstruction error. The ensemble's prediction is their plain mean (for
classification, the argmax of the mean probabilities): averaging raw logits or scaled outputs would mix
the members' scales.

Scores, with the network's loss and metrics (train/losses.py): `averaged_score` for the rows every
member predicts (the test split), `out_of_fold_score` for a k-fold ensemble's validation rows (each
fold's member on its own fold). The loss is on the scale the network reports it: cross-entropy of the
probabilities; the MSE of scaled targets, in each member's scaling in turn and averaged (k-fold members
scale alike but not identically). An autoencoder ensemble averages per-row errors, so its scores are its
members' mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from tunesmith.data.preprocess import Preprocessor
from tunesmith.train.losses import default_loss, outputs_to_predictions, score_outputs
from tunesmith.train.metrics import task_metrics

__all__ = ["Member", "Outputs", "average", "averaged_score", "member_prediction", "out_of_fold_score", "targets"]

EPS = float(np.finfo(np.float64).eps)  # log(0) guard for a class a member gave no probability at all


@dataclass(frozen=True)
class Member:
    """One member of a finished run: its fitted preprocessing and its trained model."""

    preprocessor: Preprocessor
    model: nn.Module


@dataclass(frozen=True)
class Outputs:
    """One member's outputs on some rows, beside the targets as that member was trained on them."""

    out: np.ndarray  # (N, outputs): logits, scaled regression outputs, or reconstructions (x's shape)
    y: np.ndarray  # class codes (N,), scaled targets (N, K), or the member's scaled inputs
    preprocessor: Preprocessor


def member_prediction(task: str, out: np.ndarray, pre: Preprocessor, x: np.ndarray | None = None) -> np.ndarray:
    """A member's outputs as a prediction that averages: (N, C) probabilities, (N, K) target units, or
    (N,) reconstruction errors (mean squared, in the member's scaled units; `x` is its scaled input)."""
    if task == "classification":
        _, proba = outputs_to_predictions(task, out.reshape(len(out), -1))
        assert proba is not None  # classification always has probabilities
        return proba
    if task == "regression":
        return pre.inverse_y(out.reshape(len(out), -1)).astype(np.float64)
    if x is None:
        raise ValueError("A reconstruction member's prediction needs its input x (the error is out - x).")
    return np.square(out - x).reshape(len(x), -1).mean(axis=1)


def average(predictions: list[np.ndarray]) -> np.ndarray:
    """The ensemble's prediction: the members' mean (one member: its own prediction, unchanged)."""
    return np.mean(np.stack(predictions), axis=0)


def targets(task: str, part: Outputs) -> np.ndarray:
    """The targets in the units predictions are scored in: class codes, or target units (regression)."""
    if task == "regression":
        return part.preprocessor.inverse_y(part.y.reshape(len(part.y), -1))
    return part.y


def averaged_score(task: str, prediction: np.ndarray, parts: list[Outputs]) -> dict[str, float]:
    """Loss and metrics of the averaged `prediction` on rows every member predicted (`parts`: their outputs)."""
    if task == "reconstruction":  # averaged per-row errors: the members' mean, metric by metric
        scores = [_member_score(task, p) for p in parts]
        return {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    loss = float(np.mean([_row_loss(task, prediction, p).mean() for p in parts]))
    return _scored(task, loss, prediction, targets(task, parts[0]))


def out_of_fold_score(task: str, parts: list[Outputs]) -> dict[str, float]:
    """Loss and metrics of each member's predictions on its own rows, pooled (a k-fold ensemble's validation)."""
    if task == "reconstruction":
        out, y = (np.concatenate([getattr(p, k) for p in parts]) for k in ("out", "y"))
        return score_outputs(task, torch.from_numpy(out), torch.from_numpy(y), loss_fn=default_loss(task))
    predictions = [member_prediction(task, p.out, p.preprocessor) for p in parts]
    loss = float(np.concatenate([_row_loss(task, q, p) for q, p in zip(predictions, parts, strict=True)]).mean())
    return _scored(task, loss, np.concatenate(predictions), np.concatenate([targets(task, p) for p in parts]))


def _row_loss(task: str, prediction: np.ndarray, part: Outputs) -> np.ndarray:
    """(N,) per-row loss of `prediction` in `part`'s member's terms: cross-entropy, or MSE of scaled targets."""
    if task == "classification":  # hard labels: the test and validation targets are never mixed
        picked = prediction[np.arange(len(part.y)), part.y.astype(np.int64)]
        return -np.log(np.clip(picked, EPS, 1.0))
    scaled = part.preprocessor.transform_y(prediction)  # (N, K) in this member's target scaling (T05)
    return np.square(scaled - part.y.reshape(scaled.shape)).mean(axis=1)


def _scored(task: str, loss: float, prediction: np.ndarray, y: np.ndarray) -> dict[str, float]:
    labels = prediction.argmax(axis=1) if task == "classification" else prediction
    return {"loss": loss, **task_metrics(task, labels, y)}


def _member_score(task: str, part: Outputs) -> dict[str, float]:
    out, y = torch.from_numpy(part.out), torch.from_numpy(part.y)
    return score_outputs(task, out, y, loss_fn=default_loss(task))
