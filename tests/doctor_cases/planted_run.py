"""Planted training bugs: they show only when the setup trains (the doctor's short run)."""

from __future__ import annotations

import random
from functools import partial

import numpy as np
import torch
from sklearn.datasets import make_circles
from torch import nn
from torch.utils.data import DataLoader, Dataset

from tests.doctor_cases import planted
from tests.doctor_cases.data import (
    GRUNet,
    api,
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

# ---- cannot_overfit_batch -----------------------------------------------------------------------------


@planted("cannot_overfit_batch", kind="tabular", fix=("T40", "T62"))
@seeded
def frozen_body_and_head_weights():
    """Fine-tuning code froze everything but the last bias."""
    train, val = tabular()
    model = mlp(8, 3)
    for name, p in model.named_parameters():
        p.requires_grad_(name == "5.bias")
    return api(train, val, model)


class ConstantFeatures(nn.Module):
    """Reads a registered buffer instead of the batch (a leftover from a debugging session)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("probe", torch.randn(1, 1, 8, 8))
        self.net = cnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.probe.expand_as(x))


@planted("cannot_overfit_batch", kind="image", fix=("T40", "T62"))
@seeded
def forward_reads_a_buffer_not_the_batch():
    train, val = digits()
    return api(train, val, ConstantFeatures())


@planted("cannot_overfit_batch", kind="sequence", fix=("T40", "T62"))
@seeded
def heavy_dropout_in_a_one_unit_bottleneck():
    train, val = waves()
    model = nn.Sequential(nn.Flatten(), nn.Linear(40, 1), nn.Dropout(0.9), nn.Linear(1, 3))
    return api(train, val, model)


# ---- lr_too_high / lr_too_low -------------------------------------------------------------------------


@planted("lr_too_high", kind="tabular", fix=("T31", "T34"))
@seeded
def sgd_lr_five():
    train, val = tabular()
    return api(train, val, mlp(8, 3), optimizer="sgd", lr=5.0)


@planted("lr_too_high", kind="image", fix=("T31", "T34"))
@seeded
def adam_lr_point_five():
    train, val = digits()
    return api(train, val, cnn(), optimizer="adam", lr=0.5)


@planted("lr_too_high", kind="sequence", fix=("T31", "T34"))
@seeded
def rmsprop_lr_one_on_gru():
    train, val = waves(regression=True)
    return api(train, val, GRUNet(outputs=1), optimizer="rmsprop", lr=1.0)


@planted("lr_too_low", kind="tabular", fix=("T31",))
@seeded
def adam_lr_1e_6():
    train, val = tabular_regression()
    return api(train, val, mlp(6, 1), optimizer="adam", lr=1e-6)


@planted("lr_too_low", kind="image", fix=("T31",))
@seeded
def sgd_lr_1e_5():
    train, val = digits(n=400)
    return api(train, val, cnn(), optimizer=torch.optim.SGD, lr=1e-5)


# ---- vanishing / exploding gradients ------------------------------------------------------------------


@planted("vanishing_gradients", kind="tabular", fix=("T65", "T11", "T14", "T18"))
@seeded
def ten_sigmoid_layers():
    train, val = tabular()
    return api(train, val, mlp(8, 3, width=32, depth=10, act=nn.Sigmoid), optimizer="sgd", lr=0.1)


@planted("vanishing_gradients", kind="image", fix=("T65", "T11", "T14", "T18"))
@seeded
def deep_sigmoid_cnn():
    train, val = digits(n=400)
    convs = [m for i in range(5) for m in (nn.Conv2d(1 if i == 0 else 4, 4, 3, padding=1), nn.Sigmoid())]
    model = nn.Sequential(*convs, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
    return api(train, val, model, optimizer="sgd", lr=0.1)


class ReluRNN(nn.Module):
    """A plain ReLU RNN whose recurrent weights were scaled up: gradients grow through time."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.rnn = nn.RNN(2, 32, nonlinearity="relu", batch_first=True)
        self.head = nn.Linear(32, 3)
        with torch.no_grad():
            self.rnn.weight_hh_l0.copy_(torch.eye(32) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, _ = self.rnn(x)
        return self.head(seq[:, -1])


@planted("exploding_gradients", kind="sequence", fix=("T65", "T34", "T14"))
@seeded
def relu_rnn_with_large_recurrent_weights():
    train, val = waves(steps=40)
    return api(train, val, ReluRNN(1.3), optimizer="sgd", lr=0.01)


@planted("exploding_gradients", kind="tabular", fix=("T65", "T34", "T14"))
@seeded
def deep_relu_net_initialized_too_large():
    train, val = tabular()
    model = mlp(8, 3, width=64, depth=8)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                m.weight.mul_(8.0)
    return api(train, val, model, optimizer="sgd", lr=0.01)


# ---- dead / saturated units -----------------------------------------------------------------------------


@planted("dead_units", kind="tabular", fix=("T66", "T11", "T13", "T31"))
@seeded
def negative_bias_init():
    train, val = tabular()
    model = mlp(8, 3, width=64, depth=2)
    with torch.no_grad():
        for m in list(model)[:-1]:
            if isinstance(m, nn.Linear):
                m.bias.fill_(-4.0)
    return api(train, val, model)


@planted("dead_units", kind="image", fix=("T66", "T11", "T13", "T31"))
@seeded
def relus_killed_by_a_high_learning_rate():
    train, val = digits()
    return api(train, val, cnn(channels=16), optimizer="sgd", lr=3.0)


@planted("saturated_units", kind="tabular", fix=("T13", "T04", "T14", "T11"))
@seeded
def tanh_with_unit_gaussian_weights():
    train, val = tabular()
    model = mlp(8, 3, width=128, depth=3, act=nn.Tanh)
    with torch.no_grad():
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=1.0)
    return api(train, val, model)


@planted("saturated_units", kind="sequence", fix=("T13", "T04", "T14", "T11"))
@seeded
def sigmoid_net_on_raw_sensor_values():
    (x, y), (xv, yv) = waves()
    return api((x * 40, y), (xv * 40, yv), mlp(40, 3, width=64, act=nn.Sigmoid))


# ---- overfitting / underfitting -------------------------------------------------------------------------


@planted("overfitting", kind="tabular", fix=("T64", "T41", "T15", "T43"))
@seeded
def wide_net_on_sixty_noisy_rows():
    (x, y), (xv, yv) = tabular(n=800, features=30)
    flip = np.random.default_rng(0).random(60) < 0.3
    y60 = np.where(flip, (y[:60] + 1) % 3, y[:60])
    return api((x[:60], y60), (xv, yv), mlp(30, 3, width=512))


@planted("overfitting", kind="image", fix=("T64", "T41", "T15", "T43"))
@seeded
def big_mlp_on_eighty_noisy_digits():
    (x, y), (xv, yv) = digits(n=1000)
    noisy = np.where(np.random.default_rng(1).random(80) < 0.2, (y[:80] + 1) % 10, y[:80])  # a fifth mislabelled
    return api((x[:80], noisy), (xv, yv), mlp(64, 10, width=512, depth=3))


@planted("underfitting", kind="tabular", fix=("T64", "T22"))
@seeded
def linear_model_on_circles():
    x, y = make_circles(n_samples=600, noise=0.05, factor=0.5, random_state=0)
    (xt, yt), (xv, yv) = split(x.astype(np.float32), y.astype(np.int64))
    xt, xv = standardize(xt, xv)
    return api((xt, yt), (xv, yv), nn.Linear(2, 1))


@planted("underfitting", kind="image", fix=("T64", "T22"))
@seeded
def weight_decay_fifty():
    train, val = digits()
    return api(train, val, cnn(), optimizer=partial(torch.optim.AdamW, weight_decay=50.0), lr=1e-3)


# ---- nondeterminism -----------------------------------------------------------------------------------


class UnseededNoise(nn.Module):
    """Adds training noise from a fresh, unseeded NumPy generator on every call."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            x = x + torch.from_numpy(np.random.default_rng().normal(0, 0.1, x.shape).astype(np.float32))
        return self.net(x)


@planted("nondeterminism", kind="tabular", fix=("T50",))
@seeded
def noise_from_an_unseeded_generator():
    train, val = tabular()
    return api(train, val, UnseededNoise())


class JitteredWaves(Dataset):
    """Augments with OS entropy (random.SystemRandom), which no seed reaches."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        self.x, self.y, self.rng = torch.from_numpy(x), torch.from_numpy(y), random.SystemRandom()

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i] * (1 + 0.1 * self.rng.random()), self.y[i]


@planted("nondeterminism", kind="sequence", fix=("T50",))
@seeded
def augmentation_with_os_entropy():
    (x, y), val = waves()
    return api(DataLoader(JitteredWaves(x, y), batch_size=32, shuffle=True), val, GRUNet())


# ---- input_independent ----------------------------------------------------------------------------


@planted("input_independent", kind="tabular", fix=("T62",))
@seeded
def labels_shuffled_apart_from_rows():
    """y was sorted separately from x (a merge on the wrong key)."""
    (x, y), (xv, yv) = tabular()
    rng = np.random.default_rng(0)
    return api((x, rng.permutation(y)), (xv, rng.permutation(yv)), mlp(8, 3))


class FirstStepOnly(nn.Module):
    """Reads only the first time step, which the padding left at zero for every sequence."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(x[:, 0])


@planted("input_independent", kind="sequence", fix=("T62",))
@seeded
def model_reads_the_padding():
    (x, y), (xv, yv) = waves()
    x, xv = np.pad(x, ((0, 0), (1, 0), (0, 0))), np.pad(xv, ((0, 0), (1, 0), (0, 0)))  # left padding
    return api((x, y), (xv, yv), FirstStepOnly())


# ---- lr_schedule -----------------------------------------------------------------------------------------


@planted("lr_schedule", kind="tabular", fix=("T32",))
@seeded
def exponential_decay_per_epoch():
    train, val = tabular_regression()
    return api(train, val, mlp(6, 1), schedule="exponential", epochs=30)


@planted("lr_schedule", kind="image", fix=("T32",))
@seeded
def step_decay_over_a_hundred_epochs():
    train, val = digits()
    return api(train, val, cnn(), schedule="step", epochs=100)
