"""The linear model solved exactly (T44 taken to its end): scikit-learn's fit, loaded into a depth-0 network.

    estimator = linear_estimator("regression", y)     # RidgeCV or LogisticRegressionCV, not yet fitted
    solve_linear(model, x, y, task="regression")     # fits it on (x, y) and copies it into model's Linear

A depth-0 network is one Linear from the flattened inputs to the outputs: the linear model. Trained by
mini-batch steps it approaches the convex optimum only as its learning rate, schedule and epochs allow;
`train.solver: exact` fits it instead with the model a user tries first, whose penalty is chosen by
cross-validation on the training rows: `RidgeCV` on the (scaled) regression targets, alpha by efficient
leave-one-out, or `LogisticRegressionCV` (L2, C by stratified 3-fold log loss). Its coefficients become the
Linear's weights, so the network predicts exactly what the scikit-learn model does, through the same
checkpoint, `predict` and ensemble as any network. The linear baseline (tunesmith.baselines) is this
same estimator, so "the network solved exactly" and "the baseline" are one model.

The recipe's weight decay, L1/L2 penalties, dropout, learning rate and batch size do not apply to it:
the estimator's own cross-validated penalty takes their place.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.errors import BadInput

__all__ = [
    "ABSENT_LOGIT",
    "ALPHAS",
    "CS",
    "CV",
    "MAX_ITER",
    "fit_quietly",
    "linear_estimator",
    "linear_layer",
    "solve_linear",
]

# RidgeCV: 1e-3 .. 1e3 in half decades; leave-one-out costs one SVD for all of them, so a finer grid is free (on
# diabetes a whole-decade grid stops at alpha 10 where 31.6 is better on the test rows too)
ALPHAS = tuple(10.0 ** (k / 2) for k in range(-6, 7))
CS = (0.01, 0.1, 1.0, 10.0)  # LogisticRegressionCV: 4 inverse penalties, warm-started along the path
CV = 3  # LogisticRegressionCV folds: 3 is cheap and still says which C generalises
MAX_ITER = 200  # lbfgs iterations per C: enough on standardized features; a cap, not a target
ABSENT_LOGIT = float(np.log(np.finfo(np.float64).eps))  # a class without training rows: probability ~eps


def linear_estimator(task: str, y: np.ndarray) -> Any:
    """The unfitted scikit-learn linear model for `task` on training targets `y`."""
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV

    if task == "regression":
        return RidgeCV(alphas=ALPHAS)
    if task != "classification":
        raise BadInput(f"train.solver=exact fits classification or regression, not {task}. Use train.solver=gradient.")
    counts = np.bincount(np.asarray(y))
    cv = int(min(CV, counts[counts > 0].min()))  # stratified folds need that many rows of every class
    return LogisticRegressionCV(Cs=list(CS), cv=max(cv, 2), max_iter=MAX_ITER, scoring="neg_log_loss")


def fit_quietly(model: Any, x: np.ndarray, y: np.ndarray) -> list[warnings.WarningMessage]:
    """model.fit(x, y) with its warnings (convergence, scikit-learn's changing defaults) recorded, not shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y)
    return caught


def linear_layer(model: nn.Module, in_features: int) -> nn.Linear:
    """The one Linear of a depth-0 network, reading all `in_features` flattened inputs."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if len(linears) != 1 or linears[0].in_features != in_features:
        raise BadInput(
            f"train.solver=exact solves a linear model: a network with one Linear over its {in_features} flattened "
            f"inputs (model.depth=0, family mlp, cnn or rnn); this one has {len(linears)} Linear layer(s). Set "
            "model.depth=0, or train.solver=gradient."
        )
    return linears[0]


def solve_linear(model: nn.Module, x: np.ndarray, y: np.ndarray, *, task: str) -> Any:
    """Fit the linear estimator on (x, y) and copy its coefficients into the model's Linear; returns it.

    Regression: weights = coef_, bias = intercept_ (the targets as the network sees them, scaled or not).
    Classification: the logits whose sigmoid or softmax is predict_proba: a binary network's one logit is
    scikit-learn's z; C logits are the multinomial decision function, or [0, z] when only two classes have
    training rows (softmax([0, z]) = sigmoid(z)); a class absent from the rows gets ABSENT_LOGIT.
    """
    flat = x.reshape(len(x), -1)  # the dtype the baseline fits on: one model, one result
    layer = linear_layer(model, flat.shape[1])
    estimator = linear_estimator(task, y)
    fit_quietly(estimator, flat, y)
    weight = np.zeros((layer.out_features, flat.shape[1]))
    bias = np.zeros(layer.out_features)
    coef, intercept = np.atleast_2d(estimator.coef_), np.atleast_1d(estimator.intercept_)
    if task == "regression":
        weight[:], bias[:] = coef.reshape(layer.out_features, -1), intercept
    else:
        classes = estimator.classes_
        if layer.out_features == 1:  # binary, one logit: P(class 1) = sigmoid(z), scikit-learn's own z
            weight[0], bias[0] = coef[0], intercept[0]
        elif len(classes) == 2:  # two of C classes present: one z for the second, softmax([0, z]) = sigmoid(z)
            bias[:] = ABSENT_LOGIT
            bias[classes[0]] = 0.0
            weight[classes[1]], bias[classes[1]] = coef[0], intercept[0]
        else:
            bias[:] = ABSENT_LOGIT
            weight[classes], bias[classes] = coef, intercept
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight))
        layer.bias.copy_(torch.from_numpy(bias))
    return estimator
