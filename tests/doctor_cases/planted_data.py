"""Planted data bugs: each case breaks one thing about otherwise healthy data."""

from __future__ import annotations

from pathlib import Path
from tempfile import mkdtemp

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor_cases import planted
from tests.doctor_cases.data import GRUNet, api, cnn, digits, mlp, seeded, tabular, tabular_regression, waves

# ---- missing_values ---------------------------------------------------------------------------


@planted("missing_values", kind="tabular", fix=("T01",))
@seeded
def sentinel_code_in_table():
    (x, y), val = tabular()
    x = x.copy()
    x[np.random.default_rng(1).random(len(x)) < 0.1, 2] = -999.0  # "missing" written as -999
    return api((x, y), val, mlp(8, 3))


@planted("missing_values", kind="tabular", fix=("T01",))
def sentinel_code_in_csv():
    """The CLI path: a CSV whose 'age' column uses 9999 for unknown; tunesmith scales it like any value."""
    rng = np.random.default_rng(0)
    n = 400
    age = rng.uniform(20, 70, n)
    income = rng.normal(50, 10, n)
    label = (age / 50 + income / 50 + rng.normal(0, 0.3, n) > 2).astype(int)
    age[rng.random(n) < 0.08] = 9999
    path = Path(mkdtemp()) / "people.csv"
    pd.DataFrame({"age": age, "income": income, "label": label}).to_csv(path, index=False)
    return {"recipe": {"data.source": str(path), "data.target": "label", "model.width": 32}, "steps": 100}


@planted("missing_values", kind="sequence", fix=("T01",))
@seeded
def sensor_dropout_code():
    (x, y), val = waves()
    x = x.copy()
    x[:, :, 1][np.random.default_rng(2).random(x.shape[:2]) < 0.05] = -1e4  # logger writes -10000 when offline
    return api((x, y), val, GRUNet())


# ---- unscaled_inputs ----------------------------------------------------------------------------


@planted("unscaled_inputs", kind="tabular", fix=("T04",))
@seeded
def income_in_dollars():
    (x, y), (xv, yv) = tabular()
    x, xv = x.copy(), xv.copy()
    x[:, 0], xv[:, 0] = x[:, 0] * 15000 + 60000, xv[:, 0] * 15000 + 60000
    return api((x, y), (xv, yv), mlp(8, 3))


@planted("unscaled_inputs", kind="image", fix=("T04",))
@seeded
def raw_pixels():
    (x, y), (xv, yv) = digits(raw=True)
    return api((x * 16, y), (xv * 16, yv), cnn())  # 0-255 grey levels fed as they are


@planted("unscaled_inputs", kind="sequence", fix=("T04",))
@seeded
def millivolts():
    (x, y), (xv, yv) = waves()
    return api((x * 200 + 500, y), (xv * 200 + 500, yv), GRUNet())


# ---- unscaled_target ----------------------------------------------------------------------------


@planted("unscaled_target", kind="tabular", fix=("T05",))
@seeded
def price_in_dollars():
    (x, y), (xv, yv) = tabular_regression()
    return api((x, y * 50_000 + 250_000), (xv, yv * 50_000 + 250_000), mlp(6, 1))


@planted("unscaled_target", kind="sequence", fix=("T05",))
@seeded
def target_in_millihertz():
    (x, y), (xv, yv) = waves(regression=True)
    return api((x, y * 1000 + 2000), (xv, yv * 1000 + 2000), GRUNet(outputs=1))


# ---- class_imbalance ----------------------------------------------------------------------------


@planted("class_imbalance", kind="tabular", fix=("T63", "T51"))
@seeded
def rare_positive_class():
    (x, y), (xv, yv) = tabular(n=1500, classes=2)
    keep = (y == 0) | (np.random.default_rng(0).random(len(y)) < 0.05)
    return api((x[keep], y[keep]), (xv, yv), mlp(8, 1))


@planted("class_imbalance", kind="image", fix=("T63", "T51"))
@seeded
def rare_digit():
    (x, y), val = digits(n=1400)
    keep = (y != 7) | (np.random.default_rng(0).random(len(y)) < 0.1)
    return api((x[keep], y[keep]), val, cnn())


# ---- duplicate_rows -------------------------------------------------------------------------------


@planted("duplicate_rows", kind="tabular", fix=("T03",))
@seeded
def training_set_concatenated_twice():
    (x, y), val = tabular()
    return api((np.concatenate([x, x]), np.concatenate([y, y])), val, mlp(8, 3))


@planted("duplicate_rows", kind="image", fix=("T03",))
@seeded
def images_copied_as_augmentation():
    (x, y), val = digits()
    return api((np.repeat(x, 3, axis=0), np.repeat(y, 3)), val, cnn())


# ---- conflicting_labels ---------------------------------------------------------------------------


@planted("conflicting_labels", kind="tabular", fix=("T03",))
@seeded
def copies_with_flipped_labels():
    (x, y), val = tabular()
    pick = np.random.default_rng(3).random(len(x)) < 0.1
    return api((np.concatenate([x, x[pick]]), np.concatenate([y, (y[pick] + 1) % 3])), val, mlp(8, 3))


@planted("conflicting_labels", kind="image", fix=("T03",))
@seeded
def relabelled_image_copies():
    (x, y), val = digits()
    pick = np.random.default_rng(4).random(len(x)) < 0.08
    return api((np.concatenate([x, x[pick]]), np.concatenate([y, (y[pick] + 3) % 10])), val, cnn())


# ---- outliers -------------------------------------------------------------------------------------


@planted("outliers", kind="tabular", fix=("T03",))
@seeded
def grams_among_kilograms():
    (x, y), val = tabular()
    x = x.copy()
    rows = np.random.default_rng(5).choice(len(x), 3, replace=False)
    x[rows, 1] = x[rows, 1] * 1000 + 3000  # three rows entered in grams
    return api((x, y), val, mlp(8, 3))


@planted("outliers", kind="sequence", fix=("T03",))
@seeded
def sensor_spikes():
    (x, y), val = waves()
    x = x.copy()
    spikes = np.random.default_rng(6).random(x.shape[:2]) < 0.002
    x[:, :, 0][spikes] = 800.0
    return api((x, y), val, GRUNet())


# ---- constant_columns -----------------------------------------------------------------------------


@planted("constant_columns", kind="tabular", fix=("T04",))
@seeded
def sensor_switched_on_after_the_split_date():
    """A time split: the humidity sensor was installed later, so training rows hold its default 0 only."""
    (x, y), (xv, yv) = tabular_regression()
    x, xv = x.copy(), xv.copy()
    x[:, 3] = 0.0
    xv[:, 3] = np.random.default_rng(8).normal(0, 1, len(xv)).astype(np.float32)
    return api((x, y[:, None]), (xv, yv[:, None]), mlp(6, 1))


@planted("constant_columns", kind="sequence", fix=("T04",))
@seeded
def second_channel_recorded_only_for_validation():
    (x, y), (xv, yv) = waves()
    x = x.copy()
    x[:, :, 1] = 0.0  # the second lead was unplugged while the training windows were recorded
    return api((x, y), (xv, yv), GRUNet())


# ---- unshuffled_batches ---------------------------------------------------------------------------


@planted("unshuffled_batches", kind="tabular", fix=("T07",))
@seeded
def loader_sorted_by_label():
    (x, y), val = tabular()
    order = np.argsort(y, kind="stable")
    data = TensorDataset(torch.from_numpy(x[order]), torch.from_numpy(y[order]))
    return api(DataLoader(data, batch_size=32, shuffle=False), val, mlp(8, 3))


@planted("unshuffled_batches", kind="image", fix=("T07",))
@seeded
def image_folder_read_class_by_class():
    (x, y), val = digits()
    order = np.argsort(y, kind="stable")
    data = TensorDataset(torch.from_numpy(x[order]), torch.from_numpy(y[order]))
    return api(DataLoader(data, batch_size=32), val, cnn())


@planted("unshuffled_batches", kind="sequence", fix=("T07",))
@seeded
def regression_loader_sorted_by_target():
    (x, y), val = waves(regression=True)
    order = np.argsort(y)
    data = TensorDataset(torch.from_numpy(x[order]), torch.from_numpy(y[order]))
    return api(DataLoader(data, batch_size=32), val, GRUNet(outputs=1))
