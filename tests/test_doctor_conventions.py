"""The doctor on the setups people really write (issue 15): every standard loss convention, the user's
inputs left untouched, sick data diagnosed instead of refused, and the false findings the issue lists."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor_cases.data import mlp, tabular, tabular_regression
from tests.doctor_cases.healthy_cases import TokenBag
from tunesmith.diagnosis import doctor

F32 = np.float32
LOSS_CHECKS = ["loss_output_mismatch", "init_loss", "gradient_check", "cannot_overfit_batch"]


def _binary():  # type: ignore[no-untyped-def]
    return tabular(n=300, classes=2)


def _three():  # type: ignore[no-untyped-def]
    return tabular(n=300)


class LogSoftmaxNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = mlp(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.net(x), dim=1)


def _conventions():  # type: ignore[no-untyped-def]
    """(name, doctor kwargs, the task the doctor must infer): each loss with the targets its docs describe."""
    (xb, yb), _ = _binary()
    (x3, y3), _ = _three()
    (xr, yr), _ = tabular_regression(n=300)
    soft = np.eye(3, dtype=F32)[y3] * 0.9 + 0.1 / 3
    column = (yb[:, None].astype(F32),)
    yield (
        "cross_entropy_indices",
        {"model": mlp(8, 3), "train": (x3, y3), "loss_fn": nn.CrossEntropyLoss()},
        "classification",
    )
    yield (
        "cross_entropy_probabilities",
        {"model": mlp(8, 3), "train": (x3, soft), "loss_fn": nn.CrossEntropyLoss()},
        "classification",
    )
    yield "nll_on_log_softmax", {"model": LogSoftmaxNet(), "train": (x3, y3), "loss_fn": nn.NLLLoss()}, "classification"
    yield (
        "bce_logits_column",
        {"model": mlp(8, 1), "train": (xb, column[0]), "loss_fn": nn.BCEWithLogitsLoss()},
        "classification",
    )
    flat = nn.Sequential(mlp(8, 1), nn.Flatten(0))
    yield (
        "bce_logits_flat",
        {"model": flat, "train": (xb, yb.astype(F32)), "loss_fn": nn.BCEWithLogitsLoss()},
        "classification",
    )
    squashed = nn.Sequential(mlp(8, 1), nn.Sigmoid())
    yield "bce_probabilities", {"model": squashed, "train": (xb, column[0]), "loss_fn": nn.BCELoss()}, "classification"
    labels = np.stack([y3 == 0, y3 == 1, y3 != 1], axis=1).astype(F32)  # K = 3 independent labels
    yield (
        "bce_multilabel",
        {"model": mlp(8, 3), "train": (x3, labels), "loss_fn": nn.BCEWithLogitsLoss()},
        "classification",
    )
    for loss in (nn.MSELoss(), nn.L1Loss(), nn.SmoothL1Loss(), nn.HuberLoss()):
        yield type(loss).__name__, {"model": mlp(6, 1), "train": (xr, yr[:, None]), "loss_fn": loss}, "regression"
    callable_ce = lambda out, y: nn.functional.cross_entropy(out, y)  # noqa: E731
    yield "user_callable", {"model": mlp(8, 3), "train": (x3, y3), "loss_fn": callable_ce}, "classification"


@pytest.mark.parametrize(("name", "kwargs", "task"), list(_conventions()), ids=[c[0] for c in _conventions()])
def test_every_standard_loss_convention_is_examined_not_refused(name, kwargs, task) -> None:
    torch.manual_seed(0)
    diagnosis = doctor(**kwargs, steps=20, checks=LOSS_CHECKS)
    mismatch = diagnosis["loss_output_mismatch"]
    assert mismatch.status == "ok", mismatch.summary
    assert mismatch.evidence["task"] == f"{task} (inferred from the loss and the targets)"
    assert diagnosis["gradient_check"].status == "ok"
    assert diagnosis["cannot_overfit_batch"].status == "ok", diagnosis["cannot_overfit_batch"].summary
    init = diagnosis["init_loss"]
    if init.status == "skipped":  # L1, Huber, a user's callable: no known value at init
        assert name in ("L1Loss", "SmoothL1Loss", "HuberLoss", "user_callable")
    elif task == "regression":  # MSE of predicting 0: the targets' mean square
        assert init.evidence["expected"] == pytest.approx(float(np.mean(kwargs["train"][1].astype(np.float64) ** 2)))
    else:  # cross-entropy losses start near ln K for K outputs, ln 2 per binary label
        assert init.evidence["expected"] == pytest.approx(math.log(2 if name.startswith("bce") else 3))


def _disagreements():  # type: ignore[no-untyped-def]
    """(name, doctor kwargs, text the finding must contain): targets and loss that disagree."""
    (xb, yb), _ = _binary()
    (x3, y3), _ = _three()
    labels = y3.astype(F32)[:, None]
    yield (
        "mse_on_declared_classes",
        {"model": mlp(8, 1), "train": (x3, labels), "task": "classification", "loss_fn": nn.MSELoss()},
        "MSELoss on class labels",
    )
    yield (
        "mse_on_integer_labels",
        {"model": mlp(8, 1), "train": (x3, y3[:, None]), "loss_fn": nn.MSELoss()},
        "int64 class labels",
    )
    squashed = nn.Sequential(mlp(8, 1), nn.Sigmoid())
    yield (
        "sigmoid_before_bce_logits",
        {"model": squashed, "train": (xb, yb[:, None].astype(F32)), "loss_fn": nn.BCEWithLogitsLoss()},
        "already went through a sigmoid",
    )
    yield (
        "probabilities_into_indices_ce",
        {"model": mlp(8, 2), "train": (xb, yb.astype(F32) * 0.8), "loss_fn": nn.CrossEntropyLoss()},
        "cannot take what it is given",
    )
    yield (
        "integer_targets_into_bce",
        {"model": mlp(8, 1), "train": (xb, yb[:, None]), "loss_fn": nn.BCEWithLogitsLoss()},
        "cannot take",
    )
    yield (
        "labels_one_to_c",
        {"model": mlp(8, 3), "train": (x3, y3 + 1), "loss_fn": nn.CrossEntropyLoss()},
        "cannot take",
    )
    yield (
        "bce_on_logits",
        {"model": mlp(8, 1), "train": (xb, yb[:, None].astype(F32)), "loss_fn": nn.BCELoss()},
        "BCEWithLogitsLoss",
    )


@pytest.mark.parametrize(("name", "kwargs", "text"), list(_disagreements()), ids=[c[0] for c in _disagreements()])
def test_targets_and_loss_that_disagree_are_a_mismatch_finding(name, kwargs, text) -> None:
    torch.manual_seed(0)
    diagnosis = doctor(**kwargs, steps=20, checks=["loss_output_mismatch", "class_imbalance"])
    finding = diagnosis["loss_output_mismatch"]
    assert finding.status == "fail" and text in finding.summary + finding.advice, finding.summary
    assert "T12" in finding.advice and finding.evidence["loss"] == type(kwargs["loss_fn"]).__name__
    assert finding.evidence["target_dtype"] == str(torch.as_tensor(kwargs["train"][1]).dtype).replace("torch.", "")


def test_labels_one_to_c_name_the_shift() -> None:
    (x3, y3), _ = _three()
    finding = doctor(mlp(8, 3), train=(x3, y3 + 1), loss_fn=nn.CrossEntropyLoss(), checks=["loss_output_mismatch"])[
        "loss_output_mismatch"
    ]
    assert "Subtract 1" in finding.advice and finding.evidence["value"] == 4 and finding.evidence["threshold"] == 3


def test_labels_one_to_c_with_c_plus_one_outputs_draw_no_imbalance_about_class_0() -> None:
    (x3, y3), (xv, yv) = _three()
    finding = doctor(mlp(8, 4), train=(x3, y3 + 1), val=(xv, yv + 1), checks=["class_imbalance"])["class_imbalance"]
    counts = np.unique(y3, return_counts=True)[1]
    assert finding.status == "ok" and finding.evidence["classes"] == [1, 2, 3]
    assert finding.evidence["value"] == pytest.approx(counts.min() / counts.sum() * 3)


# ---- the user's inputs stay as given -----------------------------------------------------------------


class DtypeRecorder(TokenBag):
    """Records the dtype of every batch it is called on."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[torch.dtype] = set()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        self.seen.add(ids.dtype)
        return super().forward(ids)


def test_integer_inputs_stay_integer_and_the_users_module_is_untouched() -> None:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(rng.integers(0, 60, (300, 12)))
    labels = torch.from_numpy((ids[:, :3] >= 40).sum(dim=1).numpy() > 0).long()
    model = DtypeRecorder().eval()
    model.embed.weight.requires_grad_(False)
    before = copy.deepcopy(model.state_dict())
    ids_before = ids.clone()
    diagnosis = doctor(model, train=(ids[:240], labels[:240]), val=(ids[240:], labels[240:]), steps=20)
    assert not model.training and not model.embed.weight.requires_grad and model.seen == set()
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert ids.dtype == torch.int64 and torch.equal(ids, ids_before)
    assert not [f for f in diagnosis.findings if "Could not run" in f.summary]
    assert diagnosis["unscaled_inputs"].status == "skipped" and "codes" in diagnosis["unscaled_inputs"].summary
    assert diagnosis["loss_output_mismatch"].status == "ok"


def test_the_doctors_copies_receive_the_integer_dtype() -> None:
    rng = np.random.default_rng(1)
    ids = torch.from_numpy(rng.integers(0, 60, (120, 6)).astype(np.int32))
    seen: list[torch.dtype] = []

    class Probe(TokenBag):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append(x.dtype)
            return super().forward(x)

    doctor(Probe(), train=(ids, torch.zeros(120, dtype=torch.long) + (ids[:, 0] > 30)), steps=20, checks=["init_loss"])
    assert seen and set(seen) == {torch.int32}


# ---- sick data is diagnosed --------------------------------------------------------------------------


def test_nan_targets_drop_rows_and_a_nan_dataloader_still_runs() -> None:
    (x, y), (xv, yv) = tabular_regression(n=300)
    y = y.copy()
    y[[0, 10]] = np.nan
    x = x.copy()
    x[4, 2] = np.inf
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=32)
    diagnosis = doctor(mlp(6, 1), train=loader, val=(xv, yv), steps=20, checks=["missing_values", "lr_too_low"])
    missing = diagnosis["missing_values"]
    assert missing.status == "fail" and missing.evidence["train"]["target_rows"] == 2
    assert missing.evidence["train"]["values"] == 1 and missing.evidence["value"] == 3
    assert diagnosis["lr_too_low"].status != "skipped" and "imputed copy" in diagnosis["lr_too_low"].evidence["data"]


# ---- findings that were false ----------------------------------------------------------------------


def test_frozen_backbone_has_no_exploding_gradients() -> None:
    (x, y), (xv, yv) = _three()
    torch.manual_seed(0)
    model = mlp(8, 3, depth=3)
    for p in model[1].parameters():
        p.requires_grad_(False)
    diagnosis = doctor(
        model, train=(x, y), val=(xv, yv), steps=40, checks=["exploding_gradients", "vanishing_gradients"]
    )
    for check in ("exploding_gradients", "vanishing_gradients"):
        assert diagnosis[check].status == "ok", diagnosis[check].summary
        assert diagnosis[check].evidence["frozen_layers"] == ["1"]
    assert math.isfinite(diagnosis["exploding_gradients"].evidence["value"])


@pytest.mark.parametrize(("value", "depth", "width"), [(0.3, 5, 128), (1.0, 3, 128), (1.0, 5, 32)])
def test_gradient_check_accepts_round_off_of_a_correct_backward(value, depth, width) -> None:
    """Constant-initialized MLPs: huge activations, tiny or saturated gradients, autograd still right."""
    (x, y), val = _three()
    model = mlp(8, 3, depth=depth, width=width)
    with torch.no_grad():
        for layer in model:
            if isinstance(layer, nn.Linear):
                nn.init.constant_(layer.weight, value)
                nn.init.zeros_(layer.bias)
    finding = doctor(model, train=(x, y), val=val, steps=20, checks=["gradient_check"])["gradient_check"]
    assert finding.status == "ok", finding.summary
    assert finding.evidence["loss_roundoff"] > 0 and finding.evidence["value"] <= 1e-4


def test_outliers_look_at_a_regression_target() -> None:
    (x, y), val = tabular_regression(n=300)
    y = y.copy()
    y[7] = y[7] * 1000 + 5000  # one price entered in cents
    finding = doctor(mlp(6, 1), train=(x, y), val=val, steps=20, checks=["outliers"])["outliers"]
    median = np.median(y)
    z = abs(y[7] - median) / (1.4826 * np.median(np.abs(y - median)))
    assert finding.status == "warn" and finding.evidence["feature"] == "target"
    assert finding.evidence["value"] == pytest.approx(float(z), rel=1e-4)


class CountingRows(torch.utils.data.Dataset):
    """Row i holds x = i (every feature) and y = i % 3; counts how often each row is read."""

    def __init__(self, n: int) -> None:
        self.reads = np.zeros(n, dtype=int)

    def __len__(self) -> int:
        return len(self.reads)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads[i] += 1
        return torch.full((4,), float(i)), torch.tensor(i % 3)


def test_a_dataloader_is_read_once_with_x_and_y_from_the_same_pass() -> None:
    from tunesmith.diagnosis.inputs import read_inputs

    data = CountingRows(90)
    loader = DataLoader(data, batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))
    inputs = read_inputs(loader)
    assert (data.reads == 1).all()  # read once, every row
    x, y = inputs.train.x, inputs.train.y
    assert torch.equal(y, x[:, 0].long() % 3)  # each target stays with its own input
    assert torch.equal(x[:, 0].sort().values, torch.arange(90, dtype=torch.float32))  # each row exactly once
