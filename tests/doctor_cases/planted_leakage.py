"""Planted leakage and split bugs: validation that does not measure what it should."""

from __future__ import annotations

from pathlib import Path
from tempfile import mkdtemp

import numpy as np
import pandas as pd

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

# ---- train_val_duplicates -------------------------------------------------------------------------


@planted("train_val_duplicates", kind="tabular", fix=("T03", "T51"))
@seeded
def validation_padded_with_training_rows():
    (x, y), (xv, yv) = tabular()
    pick = np.random.default_rng(0).choice(len(x), 60, replace=False)
    return api((x, y), (np.concatenate([xv, x[pick]]), np.concatenate([yv, y[pick]])), mlp(8, 3))


@planted("train_val_duplicates", kind="sequence", fix=("T03", "T51"))
@seeded
def windows_split_after_oversampling():
    """The minority windows were copied 3x before the split: copies land on both sides."""
    (x, y), (xv, yv) = waves()
    xa, ya = np.concatenate([x, xv]), np.concatenate([y, yv])
    rare = ya == 2
    xa, ya = np.concatenate([xa, xa[rare], xa[rare]]), np.concatenate([ya, ya[rare], ya[rare]])
    return api(*split(xa, ya, seed=1), GRUNet())


# ---- target_leakage -------------------------------------------------------------------------------


@planted("target_leakage", kind="tabular", fix=(), mention="churn_date")
@seeded
def outcome_recorded_as_feature():
    """A column written after the outcome: the churn date is set exactly for churned customers."""
    (x, y), (xv, yv) = tabular(classes=2)
    noise = np.random.default_rng(0)
    names = [f"f{i}" for i in range(x.shape[1])] + ["churn_date"]
    xt = pd.DataFrame(np.column_stack([x, y * 3.0 + noise.normal(0, 0.05, len(y))]), columns=names)
    xvl = pd.DataFrame(np.column_stack([xv, yv * 3.0 + noise.normal(0, 0.05, len(yv))]), columns=names)
    return api((xt, y), (xvl, yv), mlp(9, 1))


@planted("target_leakage", kind="tabular", fix=(), mention="asking_price_k")
def target_copied_under_another_name_csv():
    """The CLI path: the sale price also sits in the table as the asking price in thousands."""
    rng = np.random.default_rng(0)
    n = 500
    area = rng.uniform(40, 200, n)
    rooms = np.round(area / 30 + rng.normal(0, 1, n))
    price = 3000 * area + 20000 * rooms + rng.normal(0, 40000, n)
    asking = price / 1000 + rng.normal(0, 2, n)
    frame = pd.DataFrame({"area": area, "rooms": rooms, "asking_price_k": asking, "price": price})
    path = Path(mkdtemp()) / "flats.csv"
    frame.to_csv(path, index=False)
    return {"recipe": {"data.source": str(path), "data.target": "price", "model.width": 32}, "steps": 100}


@planted("target_leakage", kind="image", fix=(), mention="x[0]")
@seeded
def label_stamped_in_a_corner_pixel():
    (x, y), (xv, yv) = digits()
    x, xv = x.copy(), xv.copy()
    x[:, 0, 0, 0], xv[:, 0, 0, 0] = y / 3.0, yv / 3.0  # the export tool wrote the class into pixel (0, 0)
    return api((x, y), (xv, yv), cnn())


@planted("target_leakage", kind="sequence", fix=())
@seeded
def target_appended_as_last_step():
    (x, y), (xv, yv) = waves(regression=True)
    x, xv = x.copy(), xv.copy()
    x[:, -1, 1], xv[:, -1, 1] = y, yv  # the label row was joined onto the sequence
    return api((x, y), (xv, yv), GRUNet(outputs=1))


# ---- multi_column_leakage -------------------------------------------------------------------------


@planted("multi_column_leakage", kind="tabular", fix=(), mention="discharge_day")
@seeded
def length_of_stay_from_admission_and_discharge():
    """Predicting the length of a hospital stay with the discharge date among the features: discharge minus
    admission is the target ("using 'hospital discharge date' to predict 'length of stay'",
    https://news.lavx.hu/glossary/data-leakage). Neither date alone says much: patients arrive all year."""
    rng = np.random.default_rng(9)
    n = 600
    age, severity = rng.normal(60, 15, n), rng.normal(0, 1, n)
    stay = np.maximum(1.0, 5 + 2 * severity + 0.05 * (age - 60) + rng.normal(0, 2, n))
    admission = rng.uniform(0, 365, n)
    frame = pd.DataFrame(
        {"age": age, "severity": severity, "admission_day": admission, "discharge_day": admission + stay}
    )
    x = standardize(frame.to_numpy(np.float64)[:450], frame.to_numpy(np.float64)[450:])
    y = ((stay - stay.mean()) / stay.std()).astype(np.float32)[:, None]
    names = list(frame.columns)
    return api((pd.DataFrame(x[0], columns=names), y[:450]), (pd.DataFrame(x[1], columns=names), y[450:]), mlp(4, 1))


@planted("multi_column_leakage", kind="tabular", fix=(), mention="label_b")
@seeded
def target_dummies_left_in_the_features():
    """pd.get_dummies on the whole frame, target included: the label's own one-hot columns stay among the
    features. One of them alone leaves two classes mixed; two of them give the third."""
    (x, y), (xv, yv) = tabular()
    names = [f"f{i}" for i in range(x.shape[1])] + ["label_a", "label_b", "label_c"]
    with_dummies = [
        pd.DataFrame(np.column_stack([a, np.eye(3, dtype=np.float32)[b]]), columns=names) for a, b in ((x, y), (xv, yv))
    ]
    return api((with_dummies[0], y), (with_dummies[1], yv), mlp(11, 3))


# ---- time_leakage ----------------------------------------------------------------------------------


def _dated_sales(n: int = 600) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    day = np.arange(n)
    x = np.column_stack([np.sin(day / 7), rng.normal(size=n), rng.normal(size=n)])
    y = x[:, 0] + 0.5 * x[:, 1] + 0.2 * rng.normal(size=n)
    return x.astype(np.float32), ((y - y.mean()) / y.std()).astype(np.float32), day


@planted("time_leakage", kind="tabular", fix=("T51",))
@seeded
def shuffled_split_of_dated_rows():
    x, y, day = _dated_sales()
    order = np.random.default_rng(1).permutation(len(x))
    tr, va = order[:450], order[450:]
    return api((x[tr], y[tr]), (x[va], y[va]), mlp(3, 1), time=(day[tr], day[va]))


@planted("time_leakage", kind="tabular", fix=("T51",))
@seeded
def kfold_middle_fold_of_a_series():
    """Fold 2 of a plain KFold on ordered rows: validation sits between training rows."""
    x, y, day = _dated_sales()
    va = np.arange(150, 300)
    tr = np.setdiff1d(np.arange(len(x)), va)
    return api((x[tr], y[tr]), (x[va], y[va]), mlp(3, 1), time=(day[tr], day[va]))


@planted("time_leakage", kind="sequence", fix=("T51",))
@seeded
def oldest_windows_for_validation():
    (x, y), (xv, yv) = waves()
    start = np.arange(len(x) + len(xv))  # window start times; validation took the oldest ones
    return api((x, y), (xv, yv), GRUNet(), time=(start[len(xv) :], start[: len(xv)]))


# ---- group_leakage ----------------------------------------------------------------------------------


@planted("group_leakage", kind="tabular", fix=("T51",))
@seeded
def patients_in_both_splits():
    (x, y), (xv, yv) = tabular()
    rng = np.random.default_rng(2)
    return api((x, y), (xv, yv), mlp(8, 3), groups=(rng.integers(0, 50, len(x)), rng.integers(0, 50, len(xv))))


@planted("group_leakage", kind="image", fix=("T51",))
@seeded
def writers_in_both_splits():
    (x, y), (xv, yv) = digits()
    writers = np.arange(len(x) + len(xv)) % 40  # 40 writers, split row by row
    return api((x, y), (xv, yv), cnn(), groups=(writers[: len(x)], writers[len(x) :]))


# ---- distribution_shift -----------------------------------------------------------------------------


@planted("distribution_shift", kind="tabular", fix=("T67", "T51"))
@seeded
def validation_from_another_site():
    (x, y), (xv, yv) = tabular()
    xv = xv.copy()
    xv[:, [1, 5]] += 1.5  # the second site's instruments read higher
    return api((x, y), (xv, yv), mlp(8, 3))


@planted("distribution_shift", kind="image", fix=("T67", "T51"))
@seeded
def validation_scanned_brighter():
    (x, y), (xv, yv) = digits()
    return api((x, y), (xv * 1.6 + 0.8, yv), cnn())


@planted("distribution_shift", kind="sequence", fix=("T67", "T51"))
@seeded
def validation_split_by_class():
    """Validation was cut from the end of a file sorted by class: almost only class 2."""
    (x, y), (xv, yv) = waves(n=800)
    xa, ya = np.concatenate([x, xv]), np.concatenate([y, yv])
    order = np.argsort(ya, kind="stable")
    tr, va = order[:600], order[600:]
    xt, xva = standardize(xa[tr], xa[va])
    return api((xt, ya[tr]), (xva, ya[va]), GRUNet())


@planted("distribution_shift", kind="tabular", fix=("T67", "T51"))
@seeded
def regression_validation_from_later_prices():
    (x, y), (xv, yv) = tabular_regression()
    xv = xv.copy()
    xv[:, 3] = xv[:, 3] * 2.5  # a feature whose spread grew over time
    return api((x, y), (xv, yv), mlp(6, 1))
