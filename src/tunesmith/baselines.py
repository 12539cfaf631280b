"""The baselines a user would try first, fitted beside the network on the same rows (design.md principles).

    baselines = fit_baselines(setup.prep)   # {"linear": {...}, "constant": {...}} for metrics.json

Both are scikit-learn's, fitted on the prepared fold's training rows, the very arrays the network
trains on (preprocessing fitted on those rows only; images and sequences flattened to (N, F)):

- linear: `RidgeCV` on the scaled regression targets (alpha by efficient leave-one-out) or
  `LogisticRegressionCV` (L2, C by stratified 3-fold log loss), a small grid and bounded iterations
  so it stays cheap (`train/exact.py`: the very model `train.solver: exact` loads into a depth-0
  network); skipped, with the reason recorded, when the training matrix is too large.
- constant: `DummyRegressor(strategy="mean")` or `DummyClassifier(strategy="prior")`.

Text is the exception to "the very arrays": a linear model on token ids in their positions means nothing,
so the linear baseline reads the same ids as a bag of words: TF-IDF (sublinear term frequency) over the
tokenizer's vocabulary, then the same LogisticRegressionCV / RidgeCV, the baseline a user tries first.

They are scored by `train.losses.score_outputs`, the function that scores the network: the loss on
the scale the network's loss is reported (cross-entropy; MSE of the scaled targets), the metrics of
`train/metrics.py` in target units. Reconstruction runs have no baseline here (skipped, with reason).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from tunesmith.data import Prepared
from tunesmith.train.exact import MAX_ITER, fit_quietly, linear_estimator
from tunesmith.train.losses import default_loss, score_outputs
from tunesmith.train.metrics import DEFAULT_FOR_TASK, METRICS

__all__ = ["MAX_CELLS", "compare_line", "fit_baselines", "linear_name", "mean_baselines"]

MAX_CELLS = 5_000_000  # rows x features of the training matrix above which the linear fit is skipped:
# at this size LogisticRegressionCV took 3-8 s on 2 cores (digits, 74k cells: 0.2 s); a large image set: minutes


def fit_baselines(prep: Prepared) -> dict[str, dict[str, Any]]:
    """The linear model and the constant predictor on one fold: val (and test) scores, or why skipped."""
    task = prep.facts.task
    if task == "reconstruction":
        reason = "reconstruction: a baseline would predict the input itself; none is fitted"
        return {"linear": {"skipped": reason}, "constant": {"skipped": reason}}
    x = _flat(prep.x_train)
    linear: dict[str, Any]
    if x.shape[0] * x.shape[1] > MAX_CELLS:
        linear = {
            "model": linear_name(task, prep.facts.kind),
            "skipped": f"{x.shape[0]:,} rows x {x.shape[1]:,} features exceed the {MAX_CELLS:,}-cell budget "
            "of a cheap linear baseline",
        }
    else:
        linear = _fitted(_linear(task, prep), prep, x, name=linear_name(task, prep.facts.kind))
    return {"linear": linear, "constant": _fitted(_constant(task), prep, x)}


def linear_name(task: str, kind: str) -> str:
    """The linear baseline's name as metrics.json and the logs give it."""
    name = "LogisticRegressionCV" if task == "classification" else "RidgeCV"
    return f"TF-IDF + {name}" if kind == "text" else name


def _linear(task: str, prep: Prepared) -> Any:
    """The linear model of train/exact.py; for text, behind TF-IDF of the token ids (the module docstring)."""
    model = linear_estimator(task, prep.y_train)
    if prep.facts.kind != "text":
        return model
    from sklearn.feature_extraction.text import TfidfTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    words = FunctionTransformer(_word_counts, kw_args={"vocab_size": prep.facts.vocab_size}, accept_sparse=True)
    return make_pipeline(words, TfidfTransformer(sublinear_tf=True), model)


def _word_counts(ids: np.ndarray, vocab_size: int) -> Any:
    """Token ids (N, L), padded with 0, as sparse counts (N, vocab_size): the bag of words."""
    from scipy.sparse import csr_matrix

    rows = np.repeat(np.arange(len(ids)), ids.shape[1])
    keep = ids.ravel() != 0
    values = np.ones(int(keep.sum()))
    return csr_matrix((values, (rows[keep], ids.ravel()[keep])), shape=(len(ids), vocab_size))


def _constant(task: str) -> Any:
    from sklearn.dummy import DummyClassifier, DummyRegressor

    return DummyClassifier(strategy="prior") if task == "classification" else DummyRegressor(strategy="mean")


def _fitted(model: Any, prep: Prepared, x: np.ndarray, *, name: str | None = None) -> dict[str, Any]:
    """Fit `model` on the training rows; its settings, seconds and val/test scores."""
    from sklearn.exceptions import ConvergenceWarning

    started = time.perf_counter()
    entry: dict[str, Any] = {"model": name or type(model).__name__}
    if hasattr(model, "strategy"):
        entry["strategy"] = model.strategy
    try:
        caught = fit_quietly(model, x, prep.y_train)  # recorded, not shown: a baseline is no cause for alarm
    except ValueError as exc:  # e.g. a class with a single training row: no cross-validation possible
        return {**entry, "skipped": f"{type(model).__name__} could not be fitted: {exc}"}
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        entry["note"] = f"lbfgs stopped at max_iter={MAX_ITER} before converging"
    last = model[-1] if hasattr(model, "steps") else model  # a text baseline's pipeline ends in the model
    if hasattr(last, "alpha_"):
        entry["alpha"] = float(last.alpha_)
    if hasattr(last, "C_"):
        entry["C"] = float(np.ravel(last.C_)[0])
    entry["seconds"] = round(time.perf_counter() - started, 3)
    if len(prep.x_val):  # seed members of a time-ordered ensemble train on every development row
        entry["val"] = _score(model, prep, prep.x_val, prep.y_val)
    if prep.x_test is not None and prep.y_test is not None:
        entry["test"] = _score(model, prep, prep.x_test, prep.y_test)
    return entry


def _score(model: Any, prep: Prepared, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """The network's scoring applied to the model's outputs on (x, y)."""
    task = prep.facts.task
    if task == "classification":  # log-probabilities over every class act as logits: cross-entropy = log loss
        proba = np.zeros((len(x), len(prep.preprocessor.classes or [])))  # (N, C)
        proba[:, model.classes_] = model.predict_proba(_flat(x))  # a class absent from training rows: 0
        out = np.log(np.clip(proba, np.finfo(np.float64).eps, 1.0))
    else:
        out = np.asarray(model.predict(_flat(x)), dtype=np.float64).reshape(len(x), -1)  # (N, K) scaled
    return score_outputs(
        task,
        torch.from_numpy(out),
        torch.from_numpy(np.asarray(y)),
        loss_fn=default_loss(task),
        target_inverse=prep.preprocessor.inverse_y if task == "regression" else None,
    )


def _flat(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), -1)  # (N, C, H, W) or (N, T, C) -> (N, F); a view for contiguous arrays


def mean_baselines(per_fold: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Cross-validation: each baseline's val/test scores averaged over the folds where it was fitted."""
    if len(per_fold) == 1:  # a hold-out run: the one fold's entries as they are
        return per_fold[0]
    merged: dict[str, dict[str, Any]] = {}
    for name in per_fold[0]:
        entries = [f[name] for f in per_fold if name in f]
        fitted = [e for e in entries if "skipped" not in e]
        if not fitted:
            merged[name] = entries[0]
            continue
        merged[name] = {k: v for k, v in fitted[0].items() if k not in ("val", "test", "seconds", "alpha", "C")}
        merged[name]["folds"] = len(fitted)
        for split in ("val", "test"):
            if all(split in e for e in fitted):
                merged[name][split] = {m: float(np.mean([e[split][m] for e in fitted])) for m in fitted[0][split]}
    return merged


def compare_line(metrics: dict[str, Any]) -> str:
    """'network vs linear baseline: +0.031 accuracy on val', signed so that + means the network is better."""
    baselines, task = metrics.get("baselines") or {}, metrics.get("task")
    if task not in DEFAULT_FOR_TASK or "val" not in metrics:
        return ""
    name = DEFAULT_FOR_TASK[task]
    for kind in ("linear", "constant"):  # the linear model when it was fitted, else the constant
        theirs = baselines.get(kind, {}).get("val", {}).get(name)
        ours = metrics["val"].get(name)
        if theirs is not None and ours is not None:
            gain = ours - theirs if METRICS[name].higher_is_better else theirs - ours
            return f"network vs {kind} baseline: {gain:+.4f} {name} on val"
    return ""
