"""Planted bugs ported from real user reports (issue 15, scope 5), each with its source and its fixed twin.

Every case names the report it comes from. `TWINS` maps each case to the same setup with the bug
fixed; tests/test_doctor_reports.py trains both in plain PyTorch and checks that the bug really
hurts (the buggy setup raises, or ends clearly worse on validation rows).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor_cases import planted
from tests.doctor_cases.data import GRUNet, api, mlp, seeded, tabular, tabular_regression, waves

TWINS: dict[str, Callable[[], dict[str, Any]]] = {}


def twin(of: Callable[..., Any]) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Register the fixed setup of the planted case `of`."""

    def register(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        TWINS[of.__name__] = fn
        return fn

    return register


def _binary(column: bool, dtype: type) -> dict[str, Any]:
    (x, y), (xv, yv) = tabular(classes=2)
    shape = (lambda a: a[:, None]) if column else (lambda a: a)
    return {"train": (x, shape(y).astype(dtype)), "val": (xv, shape(yv).astype(dtype))}


# ---- https://github.com/pytorch/pytorch/issues/2272 -----------------------------------------------
# "my input of the loss is a float, and the target is a long (1 or 0)": BCEWithLogitsLoss takes float
# targets only (fmassa: "We currently don't support automatic type casting").


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def bce_with_logits_on_long_targets():
    return {"model": mlp(8, 1), **_binary(True, np.int64), "loss_fn": nn.BCEWithLogitsLoss(), "optimizer": "adam"}


@twin(bce_with_logits_on_long_targets)
@seeded
def bce_with_logits_on_float_targets():
    return {"model": mlp(8, 1), **_binary(True, np.float32), "loss_fn": nn.BCEWithLogitsLoss(), "optimizer": "adam"}


# ---- https://github.com/pytorch/pytorch/issues/842 ------------------------------------------------
# "Unlike NLLLoss, BCELoss doesn't accept LongTensor targets": a sigmoid output with 0/1 int64 labels.


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def bce_loss_on_long_labels():
    model = nn.Sequential(mlp(8, 1), nn.Sigmoid(), nn.Flatten(0))
    return {"model": model, **_binary(False, np.int64), "loss_fn": nn.BCELoss(), "optimizer": "adam"}


@twin(bce_loss_on_long_labels)
@seeded
def bce_loss_on_float_labels():
    model = nn.Sequential(mlp(8, 1), nn.Sigmoid(), nn.Flatten(0))
    return {"model": model, **_binary(False, np.float32), "loss_fn": nn.BCELoss(), "optimizer": "adam"}


# ---- https://discuss.pytorch.org/t/how-exactly-should-i-understand-the-cross-entropy-loss-function/61183
# A CBOW model: one-hot targets built as torch.long and a softmax before CrossEntropyLoss.


def _one_hot(y: np.ndarray) -> np.ndarray:
    return np.eye(3, dtype=np.int64)[y]


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def one_hot_long_targets_into_cross_entropy():
    (x, y), (xv, yv) = tabular()
    return api((x, _one_hot(y)), (xv, _one_hot(yv)), mlp(8, 3), loss_fn=nn.CrossEntropyLoss(), optimizer="adam")


@twin(one_hot_long_targets_into_cross_entropy)
@seeded
def class_indices_into_cross_entropy():
    (x, y), (xv, yv) = tabular()
    return api((x, y), (xv, yv), mlp(8, 3), loss_fn=nn.CrossEntropyLoss(), optimizer="adam")


# ---- https://www.codegenes.net/blog/target-is-out-of-bounds-pytorch ---------------------------------
# "if you forget to subtract the minimum value from your target data": labels 1..C, C logits.


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def labels_counted_from_one():
    (x, y), (xv, yv) = tabular()
    return api((x, y + 1), (xv, yv + 1), mlp(8, 3), loss_fn=nn.CrossEntropyLoss(), optimizer="adam")


@twin(labels_counted_from_one)
@seeded
def labels_counted_from_zero():
    return class_indices_into_cross_entropy()


# ---- https://github.com/pytorch/vision/issues/3394 (and ultralytics/ultralytics#17135) ----------------
# Layers frozen although no pretrained weights were loaded ("freeze layers only if pretrained backbone
# is used"; "the training results for each epoch were the same with and without the pre trained model").


def _pretrained_body(x: np.ndarray, y: np.ndarray) -> nn.Sequential:
    """A body trained on the task (as a pretrained backbone would be), then frozen."""
    body = _body()
    head = nn.Linear(8, 3)
    optimizer = torch.optim.Adam([*body.parameters(), *head.parameters()], lr=1e-2)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(head(body(xt)), yt).backward()
        optimizer.step()
    return body


def _body() -> nn.Sequential:
    """A narrow body: 30 features squeezed into 8, where random directions lose most of the signal."""
    return nn.Sequential(nn.Linear(30, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU())


def _frozen(body: nn.Sequential) -> nn.Sequential:
    for p in body.parameters():
        p.requires_grad_(False)
    return nn.Sequential(body, nn.Linear(8, 3))


@planted("frozen_layers", kind="tabular", fix=())
@seeded
def backbone_frozen_without_its_pretrained_weights():
    (x, y), val = tabular(features=30)
    return api((x, y), val, _frozen(_body()), optimizer="adam")  # load_state_dict never ran


@twin(backbone_frozen_without_its_pretrained_weights)
@seeded
def backbone_frozen_with_its_pretrained_weights():
    (x, y), val = tabular(features=30)
    return api((x, y), val, _frozen(_pretrained_body(x, y)), optimizer="adam")


# ---- https://github.com/deepset-ai/FARM/issues/229 ---------------------------------------------------
# A regression head whose logits "were squeezed and therefore didn't match" the (N, 1) labels:
# MSELoss broadcasts (N,) against (N, 1) and compares every prediction with every target.


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def regression_logits_squeezed_against_column_labels():
    (x, y), (xv, yv) = tabular_regression()
    model = nn.Sequential(mlp(6, 1), nn.Flatten(0))
    return api((x, y[:, None]), (xv, yv[:, None]), model, loss_fn=nn.MSELoss(), optimizer="adam")


@twin(regression_logits_squeezed_against_column_labels)
@seeded
def regression_logits_shaped_like_the_labels():
    (x, y), (xv, yv) = tabular_regression()
    return api((x, y[:, None]), (xv, yv[:, None]), mlp(6, 1), loss_fn=nn.MSELoss(), optimizer="adam")


# ---- https://github.com/lllllllllllll-llll/NSSADNN_IQA/issues/1 --------------------------------------
# "Using a target size (torch.Size([1])) that is different to the input size" under L1Loss, and "it
# affects the results a lot": a quality score per image, (N,) predictions against (N, 1) scores.


@planted("loss_output_mismatch", kind="sequence", fix=("T12",))
@seeded
def l1_scores_broadcast_against_predictions():
    (x, y), (xv, yv) = waves(regression=True)
    model = nn.Sequential(GRUNet(outputs=1), nn.Flatten(0))
    return api((x, y[:, None]), (xv, yv[:, None]), model, loss_fn=nn.L1Loss(), optimizer="adam", lr=3e-3)


@twin(l1_scores_broadcast_against_predictions)
@seeded
def l1_scores_shaped_like_predictions():
    (x, y), (xv, yv) = waves(regression=True)
    return api((x, y[:, None]), (xv, yv[:, None]), GRUNet(outputs=1), loss_fn=nn.L1Loss(), optimizer="adam", lr=3e-3)


# ---- https://github.com/yudi-mars/daisyRec/pull/15 ---------------------------------------------------
# "Do not need sigmoid because there is sigmoid in BCEWithLogitsLoss. Otherwise loss does not converge."


@planted("loss_output_mismatch", kind="tabular", fix=("T12",))
@seeded
def sigmoid_inside_the_model_and_the_loss():
    model = nn.Sequential(mlp(8, 1), nn.Sigmoid())
    return {"model": model, **_binary(True, np.float32), "loss_fn": nn.BCEWithLogitsLoss(), "optimizer": "adam"}


@twin(sigmoid_inside_the_model_and_the_loss)
@seeded
def sigmoid_only_inside_the_loss():
    return bce_with_logits_on_float_targets()


# ---- https://github.com/pytorch/pytorch/issues/26338 (and rixwew/pytorch-fm#21) -----------------------
# "putting the model in eval mode doesn't disable dropout" for F.dropout without training=self.training.


class FunctionalDropoutNet(nn.Module):
    def __init__(self, training_flag: bool) -> None:
        super().__init__()
        self.body, self.head, self.training_flag = (
            nn.Sequential(nn.Linear(8, 64), nn.ReLU()),
            nn.Linear(64, 3),
            training_flag,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.body(x)
        if self.training_flag:
            return self.head(nn.functional.dropout(hidden, 0.7, training=self.training))
        return self.head(nn.functional.dropout(hidden, 0.7))  # training=True by default: on in eval too


@planted("train_eval_mode", kind="tabular", fix=("T15",))
@seeded
def functional_dropout_left_on_at_evaluation():
    (x, y), val = tabular()
    return api((x, y), val, FunctionalDropoutNet(training_flag=False), optimizer="adam")


@twin(functional_dropout_left_on_at_evaluation)
@seeded
def functional_dropout_following_the_mode():
    (x, y), val = tabular()
    return api((x, y), val, FunctionalDropoutNet(training_flag=True), optimizer="adam")


# ---- https://github.com/pytorch/pytorch/issues/4534 (and fastai/fastai#1352) --------------------------
# "Expected more than 1 value per channel when training": BatchNorm1d and a last batch of one row.


def _bn_loader(drop_last: bool) -> dict[str, Any]:
    (x, y), val = tabular(n=468)  # 351 training rows: 10 batches of 35 and a last one of 1 row
    data = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = DataLoader(
        data, batch_size=35, shuffle=True, generator=torch.Generator().manual_seed(0), drop_last=drop_last
    )
    model = nn.Sequential(nn.Linear(8, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))
    return api(loader, val, model, optimizer="adam")


@planted("batchnorm_small_batch", kind="tabular", fix=("T14", "T33"))
@seeded
def batchnorm_meets_a_last_batch_of_one():
    return _bn_loader(drop_last=False)


@twin(batchnorm_meets_a_last_batch_of_one)
@seeded
def batchnorm_with_the_last_batch_dropped():
    return _bn_loader(drop_last=True)


# ---- https://github.com/ratschlab/DeepSpot/issues/9 -------------------------------------------------
# "Train loss: nan" for every epoch: "you have nans in your input ... likely from empty cells/spots".


def _with_gaps(fill: bool) -> dict[str, Any]:
    (x, y), val = tabular()
    x = x.copy()
    x[np.random.default_rng(3).random(x.shape) < 0.02] = np.nan  # empty cells
    if fill:
        x = np.where(np.isnan(x), np.nanmedian(x, axis=0), x).astype(np.float32)
    return api((x, y), val, mlp(8, 3), optimizer="adam")


@planted("missing_values", kind="tabular", fix=("T01",))
@seeded
def empty_cells_read_as_nan():
    return _with_gaps(fill=False)


@twin(empty_cells_read_as_nan)
@seeded
def empty_cells_imputed_with_medians():
    return _with_gaps(fill=True)


# ---- https://github.com/evandowning/deepreflect/issues/11 -------------------------------------------
# "lose = nan - mse = nan": "a feature with a maximum value of 0, which leads to improper normalization
# that sets 0 as the denominator" (min-max scaling of a constant column).


def _min_max(constant_guard: bool) -> dict[str, Any]:
    (x, y), (xv, yv) = tabular_regression()
    x, xv = x.copy(), xv.copy()
    x[:, 5], xv[:, 5] = 0.0, 0.0  # a sensor that never fired
    low, span = x.min(axis=0), x.max(axis=0) - x.min(axis=0)
    span = np.where(span > 0, span, 1.0) if constant_guard else span
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = [((a - low) / span).astype(np.float32) for a in (x, xv)]
    return api((scaled[0], y[:, None]), (scaled[1], yv[:, None]), mlp(6, 1), optimizer="adam")


@planted("missing_values", kind="tabular", fix=("T01",))
@seeded
def min_max_scaling_divides_a_constant_column_by_zero():
    return _min_max(constant_guard=False)


@twin(min_max_scaling_divides_a_constant_column_by_zero)
@seeded
def min_max_scaling_guards_constant_columns():
    return _min_max(constant_guard=True)


# ---- https://github.com/Nixtla/neuralforecast/issues/186 ---------------------------------------------
# "silent bug, training with NaNs values": missing values in the y column make the loss NaN.


def _gappy_series(drop: bool) -> dict[str, Any]:
    (x, y), val = waves(regression=True)
    y = y.copy()
    y[np.random.default_rng(4).random(len(y)) < 0.03] = np.nan
    if drop:
        keep = np.isfinite(y)
        x, y = x[keep], y[keep]
    return api((x, y[:, None]), (val[0], val[1][:, None]), GRUNet(outputs=1), optimizer="adam", lr=3e-3)


@planted("missing_values", kind="sequence", fix=("T01",))
@seeded
def missing_targets_left_in_the_series():
    return _gappy_series(drop=False)


@twin(missing_targets_left_in_the_series)
@seeded
def missing_targets_dropped():
    return _gappy_series(drop=True)


# ---- https://github.com/DrexelChatbotGroup/DrexelChatbot/issues/15 ----------------------------------
# "randomizes the order of the x data, but not the y data. This invalidates the required association".


def _shuffled(together: bool) -> dict[str, Any]:
    (x, y), (xv, yv) = tabular()
    order = np.random.default_rng(5).permutation(len(x))
    return api((x[order], y[order] if together else y), (xv, yv), mlp(8, 3), optimizer="adam")


@planted("input_independent", kind="tabular", fix=("T62",))
@seeded
def inputs_shuffled_without_their_labels():
    return _shuffled(together=False)


@twin(inputs_shuffled_without_their_labels)
@seeded
def inputs_shuffled_with_their_labels():
    return _shuffled(together=True)


# ---- https://ai.stackexchange.com/questions/11914/how-should-i-encode-a-categorical-input -----------
# "an input which can take one of 10 different unique values": one input normalised over its range, or
# one-hot? The answer: for classes with no natural order ("the price of a car based on the
# manufacturer"), one-hot encoding. Here the maker is fed as one standardized code.


def _makers(one_hot: bool) -> dict[str, Any]:
    rng = np.random.default_rng(11)
    n, makers = 600, 20
    maker = rng.integers(0, makers, n)
    mileage, age = rng.normal(size=n), rng.normal(size=n)
    price = rng.normal(0, 1, makers)[maker] - 0.4 * mileage - 0.3 * age + 0.2 * rng.normal(size=n)
    code = (maker - maker.mean()) / maker.std()  # LabelEncoder, then standard scaling
    encoded = np.eye(makers)[maker] if one_hot else code[:, None]
    x = np.column_stack([encoded, mileage, age]).astype(np.float32)
    y = ((price - price.mean()) / price.std()).astype(np.float32)[:, None]
    cut = 450
    return api((x[:cut], y[:cut]), (x[cut:], y[cut:]), mlp(x.shape[1], 1), optimizer="adam")


@planted("category_codes", kind="tabular", fix=("T02",))
@seeded
def car_maker_fed_as_one_number():
    return _makers(one_hot=False)


@twin(car_maker_fed_as_one_number)
@seeded
def car_maker_one_hot_encoded():
    return _makers(one_hot=True)
