"""Small seeded data sets and models for the doctor's cases: tabular, image (digits) and sequence.

Every generator returns standardized, shuffled, healthy data split into train and validation; a
planted case then breaks exactly one thing. Models are small (tens of units) so that a whole
doctor run stays in seconds.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch
from sklearn.datasets import load_digits, make_classification
from torch import nn

Split = tuple[np.ndarray, np.ndarray]


def split(x: np.ndarray, y: np.ndarray, *, val: float = 0.25, seed: int = 0) -> tuple[Split, Split]:
    """A seeded random train/validation split."""
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * (1 - val))
    tr, va = order[:cut], order[cut:]
    return (x[tr], y[tr]), (x[va], y[va])


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Scale every array with the training array's per-column mean and std (T04)."""
    axes = tuple(a for a in range(train.ndim) if a != (1 if train.ndim == 4 else train.ndim - 1))
    mean, std = train.mean(axis=axes, keepdims=True), train.std(axis=axes, keepdims=True) + 1e-8
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)]


def tabular(n: int = 600, features: int = 8, classes: int = 3, seed: int = 0) -> tuple[Split, Split]:
    """Classification table: informative Gaussian clusters (scikit-learn's make_classification)."""
    x, y = make_classification(
        n_samples=n,
        n_features=features,
        n_informative=max(2, features // 2),
        n_redundant=0,
        n_classes=classes,
        n_clusters_per_class=1,
        class_sep=1.5,
        random_state=seed,
    )
    (xt, yt), (xv, yv) = split(x, y, seed=seed)
    xt, xv = standardize(xt, xv)
    return (xt, yt.astype(np.int64)), (xv, yv.astype(np.int64))


def tabular_regression(n: int = 600, features: int = 6, seed: int = 0) -> tuple[Split, Split]:
    """Regression table: a smooth nonlinear function of the features plus noise; target standardized."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features))
    y = x[:, 0] + 0.5 * x[:, 1] ** 2 + np.sin(2 * x[:, 2]) + 0.3 * rng.normal(size=n)
    y = (y - y.mean()) / y.std()
    (xt, yt), (xv, yv) = split(x, y.astype(np.float32), seed=seed)
    xt, xv = standardize(xt, xv)
    return (xt, yt), (xv, yv)


@cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    bunch = load_digits()
    return bunch.images.astype(np.float32)[:, None], bunch.target.astype(np.int64)  # (N, 1, 8, 8)


def digits(n: int = 800, seed: int = 0, raw: bool = False) -> tuple[Split, Split]:
    """8x8 digit images (N, 1, 8, 8), 10 classes; standardized unless `raw` (values 0-16)."""
    x, y = _digits()
    idx = np.random.default_rng(seed).permutation(len(x))[:n]
    (xt, yt), (xv, yv) = split(x[idx], y[idx], seed=seed)
    if not raw:
        xt, xv = standardize(xt, xv)
    return (xt, yt), (xv, yv)


def waves(n: int = 600, steps: int = 20, seed: int = 0, regression: bool = False) -> tuple[Split, Split]:
    """Sequences (N, T, 2): noisy sines whose frequency is the class (3 classes) or the target."""
    rng = np.random.default_rng(seed)
    freq = rng.integers(0, 3, n) if not regression else rng.uniform(0, 2, n)
    t = np.linspace(0, 2 * np.pi, steps)
    phase = rng.uniform(0, 2 * np.pi, (n, 1))
    base = np.sin((1 + np.asarray(freq, float))[:, None] * t + phase)
    x = np.stack([base, np.cos(t + phase) * 0.5], axis=2) + 0.3 * rng.normal(size=(n, steps, 2))
    y = freq.astype(np.int64) if not regression else ((freq - 1) / 0.58).astype(np.float32)
    (xt, yt), (xv, yv) = split(x.astype(np.float32), y, seed=seed)
    xt, xv = standardize(xt, xv)
    return (xt, yt), (xv, yv)


def api(train: Split, val: Split, model: nn.Module | None, **options: object) -> dict[str, object]:
    """Keyword arguments for `tunesmith.diagnosis.doctor`."""
    return {"model": model, "train": train, "val": val, **options}


# ---- models -------------------------------------------------------------------------------------


def mlp(inputs: int, outputs: int, *, width: int = 32, depth: int = 2, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Flatten -> depth x (Linear -> act) -> Linear."""
    layers: list[nn.Module] = [nn.Flatten()]
    for i in range(depth):
        layers += [nn.Linear(inputs if i == 0 else width, width), act()]
    layers.append(nn.Linear(width if depth else inputs, outputs))
    return nn.Sequential(*layers)


def cnn(outputs: int = 10, *, channels: int = 8, norm: bool = False) -> nn.Sequential:
    """Two 3x3 conv stages on (N, 1, 8, 8), global average pooling, a Linear head."""
    bn = (lambda c: nn.BatchNorm2d(c)) if norm else (lambda c: nn.Identity())
    return nn.Sequential(
        nn.Conv2d(1, channels, 3, padding=1),
        bn(channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(channels, 2 * channels, 3, padding=1),
        bn(2 * channels),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * channels, outputs),
    )


class GRUNet(nn.Module):
    """A GRU over (B, T, C) that reads its last step and its mean, then a Linear head."""

    def __init__(self, inputs: int = 2, outputs: int = 3, *, width: int = 24, batch_first: bool = True) -> None:
        super().__init__()
        self.gru = nn.GRU(inputs, width, batch_first=batch_first)
        self.head = nn.Linear(2 * width, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.gru(x)  # (B, T, H): only when the GRU was built with batch_first=True
        return self.head(torch.cat([seq[:, -1], seq.mean(dim=1)], dim=1))


def seeded(fn):  # type: ignore[no-untyped-def]
    """Build models under a fixed seed, so cases are identical on every run."""

    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        return fn(*args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper
