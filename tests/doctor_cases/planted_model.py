"""Planted model and loss bugs: the code that defines the model or the loss is wrong."""

from __future__ import annotations

import torch
from torch import nn

from tests.doctor_cases import planted
from tests.doctor_cases.data import GRUNet, api, cnn, digits, mlp, seeded, tabular, tabular_regression, waves

# ---- loss_output_mismatch ---------------------------------------------------------------------------


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def softmax_before_cross_entropy():
    train, val = tabular()
    return api(train, val, nn.Sequential(mlp(8, 3), nn.Softmax(dim=1)), loss_fn=nn.CrossEntropyLoss())


@planted("loss_output_mismatch", kind="image", fix=("T12",))
@seeded
def sigmoid_before_bce_with_logits():
    (x, y), (xv, yv) = digits()
    y, yv = (y % 2).astype("float32"), (yv % 2).astype("float32")  # odd vs even
    model = nn.Sequential(cnn(outputs=1), nn.Sigmoid(), nn.Flatten(0))
    return api((x, y), (xv, yv), model, task="classification", loss_fn=nn.BCEWithLogitsLoss())


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def ten_outputs_for_three_classes():
    train, val = tabular()
    return api(train, val, mlp(8, 10))  # copied from an MNIST script


@planted("loss_output_mismatch", kind="sequence", fix=("T12",))
@seeded
def mse_broadcasts_column_against_row():
    train, val = waves(regression=True)
    return api(train, val, GRUNet(outputs=1), loss_fn=nn.MSELoss())  # (B, 1) against (B,)


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def relu_on_regression_output():
    train, val = tabular_regression()
    return api(train, val, nn.Sequential(mlp(6, 1), nn.ReLU()))


# ---- init_loss ----------------------------------------------------------------------------------------


@planted("init_loss", kind="tabular", fix=("T13",))
@seeded
def last_layer_scaled_up():
    train, val = tabular()
    model = mlp(8, 3)
    with torch.no_grad():
        model[-1].weight.mul_(40)  # "std=1.0" init of the head
    return api(train, val, model)


@planted("init_loss", kind="image", fix=("T13",))
@seeded
def head_bias_favours_one_class():
    train, val = digits()
    model = cnn()
    with torch.no_grad():
        model[-1].bias[3] = 12.0  # a bias loaded from another task
    return api(train, val, model)


@planted("init_loss", kind="sequence", fix=("T13",))
@seeded
def regression_head_starts_far_off():
    train, val = waves(regression=True)
    model = GRUNet(outputs=1)
    with torch.no_grad():
        model.head.bias.fill_(6.0)
    return api(train, val, model)


# ---- gradient_check -----------------------------------------------------------------------------------


class LeakyBackwardReLU(torch.autograd.Function):
    """A hand-written ReLU whose backward forgets the mask: gradient flows where the unit is off."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        return grad


class CustomReLU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return LeakyBackwardReLU.apply(x)


class HalfSquare(torch.autograd.Function):
    """x**2 / 2 with a backward that returns 2x instead of x."""

    @staticmethod
    def forward(ctx, x):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(x)
        return x * x / 2

    @staticmethod
    def backward(ctx, grad):  # type: ignore[no-untyped-def, override]
        (x,) = ctx.saved_tensors
        return grad * 2 * x


class HalfSquareAct(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return HalfSquare.apply(x)


class DetachedBody(nn.Module):
    """Features computed through a NumPy round trip: the graph is cut, the body gets no gradient."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Sequential(nn.Linear(8, 32), nn.ReLU()), nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.from_numpy(self.body(x).detach().numpy()).to(x.dtype)
        return self.head(h + 0 * self.body(x))  # the "+ 0 *" keeps autograd from complaining


@planted("gradient_check", kind="tabular", fix=("T60",))
@seeded
def custom_relu_with_wrong_backward():
    train, val = tabular()
    return api(train, val, nn.Sequential(nn.Linear(8, 32), CustomReLU(), nn.Linear(32, 3)))


@planted("gradient_check", kind="image", fix=("T60",))
@seeded
def custom_activation_backward_off_by_two():
    train, val = digits()
    model = nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), HalfSquareAct(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)
    )
    return api(train, val, model)


@planted("gradient_check", kind="tabular", fix=("T60",))
@seeded
def numpy_round_trip_cuts_the_graph():
    train, val = tabular()
    return api(train, val, DetachedBody())


# ---- bad_init ------------------------------------------------------------------------------------------


def _init(model: nn.Module, fn) -> nn.Module:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.Conv2d):
                fn(m.weight)
                nn.init.zeros_(m.bias)
    return model


@planted("bad_init", kind="tabular", fix=("T13",))
@seeded
def tiny_gaussian_init_deep_tanh():
    train, val = tabular()
    return api(train, val, _init(mlp(8, 3, width=64, depth=5, act=nn.Tanh), lambda w: nn.init.normal_(w, std=0.01)))


@planted("bad_init", kind="tabular", fix=("T13",))
@seeded
def constant_init():
    train, val = tabular()
    return api(train, val, _init(mlp(8, 3, depth=3), lambda w: nn.init.constant_(w, 0.05)))


@planted("bad_init", kind="image", fix=("T13",))
@seeded
def unit_gaussian_init_deep_relu():
    train, val = digits()
    model = nn.Sequential(
        nn.Flatten(),
        *[m for i in range(4) for m in (nn.Linear(64, 64), nn.ReLU())],
        nn.Linear(64, 10),
    )
    return api(train, val, _init(model, lambda w: nn.init.normal_(w, std=1.0)))


# ---- batchnorm_small_batch ----------------------------------------------------------------------------


@planted("batchnorm_small_batch", kind="tabular", fix=("T14", "T33"))
@seeded
def batchnorm_with_batches_of_four():
    train, val = tabular(n=300)
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return api(train, val, model, batch_size=4)


@planted("batchnorm_small_batch", kind="image", fix=("T14", "T33"))
@seeded
def cnn_batchnorm_batch_of_eight():
    train, val = digits(n=400)
    return api(train, val, cnn(norm=True), batch_size=8)


# ---- batch_independence --------------------------------------------------------------------------------


@planted("batch_independence", kind="sequence", fix=())
@seeded
def gru_fed_batch_first_without_flag():
    train, val = waves()
    return api(train, val, GRUNet(batch_first=False))  # (B, T, C) read as (T, B, C)


class ViewInsteadOfPermute(nn.Module):
    """Moves channels last with view (which reinterprets memory) instead of permute."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.head = nn.Conv2d(1, 8, 3, padding=1), nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))  # (B, 8, 8, 8)
        h = h.view(h.shape[1], h.shape[0], -1)  # meant (C, B, HW): mixes samples and channels
        return self.head(h.mean(dim=2).transpose(0, 1))


@planted("batch_independence", kind="image", fix=())
@seeded
def view_mixes_batch_and_channels():
    train, val = digits()
    return api(train, val, ViewInsteadOfPermute())


class BatchCentered(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x - x.mean(dim=0))  # "centering" with the batch mean, at inference too


@planted("batch_independence", kind="tabular", fix=())
@seeded
def centering_with_batch_mean():
    train, val = tabular()
    return api(train, val, BatchCentered())


# ---- train_eval_mode -----------------------------------------------------------------------------------


class FunctionalDropout(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(8, 64), nn.Linear(64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(nn.functional.dropout(torch.relu(self.a(x)), 0.3))  # training=True by default


@planted("train_eval_mode", kind="tabular", fix=("T15",))
@seeded
def functional_dropout_always_on():
    train, val = tabular()
    return api(train, val, FunctionalDropout())


@planted("train_eval_mode", kind="image", fix=("T14",))
@seeded
def batchnorm_without_running_stats():
    train, val = digits()
    model = cnn()
    model[1] = nn.BatchNorm2d(8, track_running_stats=False)
    return api(train, val, model)
