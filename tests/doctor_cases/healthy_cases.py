"""Healthy setups: different families, tasks, data kinds, optimizers and input forms.

The doctor must draw no warn or fail from any check on these (a false alarm is a bug).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor_cases import healthy
from tests.doctor_cases.data import (
    GRUNet,
    cnn,
    digits,
    mlp,
    seeded,
    split,
    standardize,
    tabular,
    tabular_regression,
    waves,
)


@healthy(kind="tabular")
def wine_through_the_cli_path():
    """`tunesmith doctor --data wine`: tunesmith's MLP, AdamW, one-cycle, its own preprocessing."""
    return {"recipe": {"data.source": "wine"}}


@healthy(kind="tabular")
def diabetes_regression_through_the_cli_path():
    """`tunesmith doctor --data diabetes --set model.width=64`: a hard, noisy regression."""
    return {"recipe": {"data.source": "diabetes", "model.width": 64}}


@healthy(kind="image")
@seeded
def digits_with_the_default_model():
    """model=None: the CNN `tunesmith fit` would build, with its optimizer and learning rate."""
    train, val = digits()
    return {"train": train, "val": val}


@healthy(kind="tabular")
@seeded
def tabular_mlp_sgd_momentum():
    train, val = tabular()
    return {"model": mlp(8, 3, width=64), "train": train, "val": val, "optimizer": "sgd", "lr": 0.05}


@healthy(kind="image")
@seeded
def cnn_with_batchnorm_from_a_user_dataloader():
    (x, y), val = digits()
    g = torch.Generator().manual_seed(0)
    loader = DataLoader(
        TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=32, shuffle=True, generator=g
    )
    return {"model": cnn(norm=True), "train": loader, "val": val, "optimizer": torch.optim.Adam, "lr": 3e-3}


@healthy(kind="sequence")
@seeded
def gru_classifier_rmsprop():
    train, val = waves()
    return {"model": GRUNet(), "train": train, "val": val, "optimizer": "rmsprop", "lr": 3e-3}


class Conv1dRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(nn.Conv1d(2, 16, 5, padding=2), nn.ReLU(), nn.Conv1d(16, 16, 5, padding=2), nn.ReLU())
        self.head = nn.Linear(16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x.transpose(1, 2)).mean(dim=2))  # (B, T, C) -> (B, 1)


@healthy(kind="sequence")
@seeded
def conv1d_regression_adamw():
    train, val = waves(regression=True)
    return {"model": Conv1dRegressor(), "train": train, "val": val, "optimizer": "adamw", "lr": 3e-3}


@healthy(kind="tabular")
@seeded
def tanh_regression_split_by_time_and_store():
    """Daily sales of 30 stores: validation is the later days of other stores (time and group splits)."""
    rng = np.random.default_rng(0)
    n = 900
    store, day = rng.integers(0, 30, n), rng.integers(0, 365, n)
    x = np.column_stack([rng.normal(size=n), rng.normal(size=n), np.sin(2 * np.pi * day / 7)])
    y = (x[:, 0] - 0.5 * x[:, 1] + 0.8 * x[:, 2] + 0.3 * rng.normal(size=n)).astype(np.float32)
    tr, va = (store < 22) & (day < 300), (store >= 22) & (day >= 300)
    xt, xv = standardize(x[tr], x[va])
    model = mlp(3, 1, width=32, act=nn.Tanh)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
    return {
        "model": model,
        "train": (xt, y[tr]),
        "val": (xv, y[va]),
        "time": (day[tr], day[va]),
        "groups": (store[tr], store[va]),
        "optimizer": "adam",
        "lr": 3e-3,
    }


@healthy(kind="tabular")
@seeded
def breast_cancer_one_logit_bce():
    bunch = load_breast_cancer()
    (xt, yt), (xv, yv) = split(bunch.data, bunch.target.astype(np.float32))
    xt, xv = standardize(xt, xv)
    model = nn.Sequential(mlp(30, 1, width=32), nn.Flatten(0))
    return {
        "model": model,
        "train": (xt, yt),
        "val": (xv, yv),
        "task": "classification",
        "loss_fn": nn.BCEWithLogitsLoss(),
        "optimizer": "adam",
    }


@healthy(kind="image")
@seeded
def digits_autoencoder_default():
    """Reconstruction with the default autoencoder."""
    train, val = digits(n=600)
    return {"train": train, "val": val, "task": "reconstruction"}


@healthy(kind="tabular")
@seeded
def binary_bce_with_column_targets():
    """The PyTorch docs' form: one logit, BCEWithLogitsLoss, float targets shaped (N, 1)."""
    (x, y), (xv, yv) = tabular(classes=2)
    return {
        "model": mlp(8, 1),
        "train": (x, y[:, None].astype(np.float32)),
        "val": (xv, yv[:, None].astype(np.float32)),
        "loss_fn": nn.BCEWithLogitsLoss(),
        "optimizer": "adam",
    }


@healthy(kind="tabular")
@seeded
def regression_with_negative_targets():
    """Log-concentrations: every target is negative (mean -1, unit scale); L1 loss, task inferred from it."""
    (x, _), (xv, _) = tabular_regression()
    rng = np.random.default_rng(1)

    def target(a: np.ndarray) -> np.ndarray:
        return (-np.log1p(np.exp(a[:, 0])) - 0.3 * a[:, 1] ** 2 + 0.1 * rng.normal(size=len(a))).astype(np.float32)

    return {
        "model": mlp(6, 1),
        "train": (x, target(x)[:, None]),
        "val": (xv, target(xv)[:, None]),
        "loss_fn": nn.L1Loss(),
        "optimizer": "adam",
        "lr": 3e-3,
    }


@healthy(kind="tabular")
@seeded
def house_prices_with_counts_and_a_one_hot_district():
    """Counts (rooms 1-8, floor 0-12) whose effect is smooth, a district one-hot encoded properly (one rare
    district), and the price in log units: few-valued columns that are measurements, not codes."""
    rng = np.random.default_rng(2)
    n = 800
    rooms, floor, area = rng.integers(1, 9, n), rng.integers(0, 13, n), rng.gamma(4.0, 20.0, n)
    district = rng.choice(4, n, p=[0.45, 0.3, 0.245, 0.005])
    log_price = 0.25 * rooms + 0.04 * floor - 0.002 * floor**2 + 0.01 * area + np.array([0, 0.3, -0.2, 0.5])[district]
    log_price = log_price + 0.2 * rng.normal(size=n)
    x = np.column_stack([rooms, floor, area, np.eye(4)[district]]).astype(np.float64)
    y = ((log_price - log_price.mean()) / log_price.std()).astype(np.float32)[:, None]
    (xt, yt), (xv, yv) = split(x, y)
    xt[:, :3], xv[:, :3] = standardize(xt[:, :3], xv[:, :3])
    return {"model": mlp(7, 1), "train": (xt.astype(np.float32), yt), "val": (xv.astype(np.float32), yv)}


class TokenBag(nn.Module):
    """Token ids (B, T) int64 -> embedding (B, T, D) -> mean over time -> logits."""

    def __init__(self, vocab: int = 60, dim: int = 16, classes: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Sequential(nn.Linear(dim, 32), nn.ReLU(), nn.Linear(32, classes))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(ids).mean(dim=1))


@healthy(kind="sequence")
@seeded
def embedding_model_on_token_ids():
    """Integer token ids must reach nn.Embedding as integers; positive reviews use more of tokens 40-59."""
    rng = np.random.default_rng(0)
    n, length = 800, 12
    label = rng.integers(0, 2, n)
    high = rng.random((n, length)) < np.where(label == 1, 0.6, 0.2)[:, None]
    ids = np.where(high, rng.integers(40, 60, (n, length)), rng.integers(0, 40, (n, length))).astype(np.int64)
    (xt, yt), (xv, yv) = split(ids, label.astype(np.int64))
    return {"model": TokenBag(), "train": (torch.from_numpy(xt), yt), "val": (xv, yv), "optimizer": "adam", "lr": 3e-3}


@healthy(kind="image")
@seeded
def zero_initialized_output_layer():
    """A deliberate zero init where it is harmless: the head starts at 0 (uniform predictions), the body is He."""
    train, val = digits()
    model = cnn()
    with torch.no_grad():
        nn.init.zeros_(model[-1].weight)
        nn.init.zeros_(model[-1].bias)
    return {"model": model, "train": train, "val": val, "optimizer": "adam", "lr": 3e-3}


@healthy(kind="tabular")
@seeded
def pretrained_backbone_frozen_on_purpose():
    """Transfer learning done right: a trained body frozen, a new head trained on top (frozen_layers: info)."""
    from tests.doctor_cases.planted_reports import backbone_frozen_with_its_pretrained_weights

    return backbone_frozen_with_its_pretrained_weights()
