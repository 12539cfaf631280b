"""Each finding's evidence is true on its own (issue 15, scope 7): on healthy setups the data checks report
ok (or info), and their numbers match an independent computation from the rows the test itself holds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.doctor_cases.healthy_cases import tabular_mlp_sgd_momentum, tanh_regression_split_by_time_and_store
from tunesmith.diagnosis import Diagnosis, doctor

DATA_CHECKS = [
    "missing_values",
    "unscaled_inputs",
    "unscaled_target",
    "class_imbalance",
    "duplicate_rows",
    "conflicting_labels",
    "outliers",
    "constant_columns",
    "category_codes",
    "train_val_duplicates",
    "multi_column_leakage",
    "time_leakage",
    "group_leakage",
    "distribution_shift",
    "frozen_layers",
    "init_loss",
]


@pytest.fixture(scope="module")
def regression() -> tuple[dict, Diagnosis]:
    inputs = tanh_regression_split_by_time_and_store()
    return inputs, doctor(**inputs, steps=20, checks=DATA_CHECKS)


@pytest.fixture(scope="module")
def classification() -> tuple[dict, Diagnosis]:
    inputs = tabular_mlp_sgd_momentum()
    return inputs, doctor(**inputs, steps=20, checks=DATA_CHECKS)


def _robust_z(values: np.ndarray) -> float:
    median = np.median(values, axis=0)
    mad = np.median(np.abs(values - median), axis=0) * 1.4826
    return float((np.abs(values - median) / mad).max())


@pytest.mark.parametrize("setup", ["regression", "classification"])
def test_healthy_data_checks_report_ok_or_info(setup, request) -> None:
    _, diagnosis = request.getfixturevalue(setup)
    applicable = [f for f in diagnosis.findings if f.status != "skipped"]
    assert len(applicable) >= 9 and all(f.status in ("ok", "info") for f in applicable), [
        (f.check, f.status) for f in applicable if f.status not in ("ok", "info")
    ]


def test_regression_evidence_matches_an_independent_computation(regression) -> None:
    inputs, diagnosis = regression
    (x, y), (xv, _) = inputs["train"], inputs["val"]
    x, xv = x.astype(np.float64), xv.astype(np.float64)
    assert diagnosis["unscaled_inputs"].evidence["value"] == pytest.approx(np.sqrt((x**2).mean(axis=0)).max())
    assert diagnosis["unscaled_target"].evidence["value"] == pytest.approx(
        math.sqrt(float(np.mean(y.astype(float) ** 2)))
    )
    assert diagnosis["outliers"].evidence["value"] == pytest.approx(
        max(_robust_z(x), _robust_z(y.astype(np.float64)[:, None])), rel=1e-5
    )
    distances = [stats.ks_2samp(x[:, j], xv[:, j]).statistic for j in range(x.shape[1])]
    assert diagnosis["distribution_shift"].evidence["value"] == pytest.approx(max(distances), rel=1e-6)
    frame = pd.DataFrame(np.column_stack([x, y]))
    assert diagnosis["duplicate_rows"].evidence["value"] == pytest.approx(frame.duplicated().mean())
    t_train, t_val = inputs["time"]
    assert diagnosis["time_leakage"].evidence["value"] == float(np.mean(t_val < t_train.max())) == 0.0
    g_train, g_val = inputs["groups"]
    assert diagnosis["group_leakage"].evidence["value"] == float(np.isin(g_val, g_train).mean()) == 0.0
    assert diagnosis["init_loss"].evidence["expected"] == pytest.approx(float(np.mean(y.astype(float) ** 2)))
    assert diagnosis["class_imbalance"].status == diagnosis["conflicting_labels"].status == "skipped"


def test_classification_evidence_matches_an_independent_computation(classification) -> None:
    inputs, diagnosis = classification
    (x, y), (xv, _) = inputs["train"], inputs["val"]
    counts = np.bincount(y)
    imbalance = diagnosis["class_imbalance"].evidence
    assert imbalance["counts"] == counts.tolist() and imbalance["classes"] == [0, 1, 2]
    assert imbalance["value"] == pytest.approx(counts.min() / counts.sum() * 3)
    train_rows = {row.tobytes() for row in x}
    in_train = np.mean([row.tobytes() in train_rows for row in xv])
    assert diagnosis["train_val_duplicates"].evidence["value"] == pytest.approx(in_train)
    assert diagnosis["init_loss"].evidence["expected"] == pytest.approx(math.log(3))
    assert diagnosis["outliers"].evidence["value"] == pytest.approx(_robust_z(x.astype(np.float64)), rel=1e-5)
    assert diagnosis["frozen_layers"].status == "ok" and diagnosis["frozen_layers"].evidence["frozen_layers"] == []
    assert diagnosis["unscaled_target"].status == "skipped"


def test_constant_columns_evidence_is_the_share_of_validation_rows_that_differ() -> None:
    from tests.doctor_cases.planted_data import sensor_switched_on_after_the_split_date

    inputs = sensor_switched_on_after_the_split_date()
    finding = doctor(**inputs, steps=20, checks=["constant_columns"])["constant_columns"]
    (x, _), (xv, _) = inputs["train"], inputs["val"]
    constant = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) == 0]
    assert finding.status == "warn" and finding.evidence["constant"] == [f"x[{j}]" for j in constant] == ["x[3]"]
    assert finding.evidence["varying_in_validation"] == {"x[3]": pytest.approx(float((xv[:, 3] != x[0, 3]).mean()))}


def test_category_codes_evidence_matches_group_means_and_a_cubic_fit() -> None:
    from sklearn.metrics import r2_score

    from tests.doctor_cases.planted_reports import car_maker_fed_as_one_number

    inputs = car_maker_fed_as_one_number()
    finding = doctor(**inputs, steps=20, checks=["category_codes"])["category_codes"]
    (x, y), (xv, yv) = inputs["train"], inputs["val"]
    code, code_val = x[:, 0].astype(np.float64), xv[:, 0].astype(np.float64)
    means = pd.Series(y[:, 0].astype(np.float64)).groupby(code).mean()
    levels_r2 = r2_score(yv[:, 0], means.reindex(code_val).to_numpy())
    z, zv = ((c - code.mean()) / code.std() for c in (code, code_val))
    cubic = np.polyval(np.polyfit(z, y[:, 0].astype(np.float64), 3), zv)
    column = finding.evidence["columns"][0]
    assert finding.status == "warn" and column["feature"] == "x[0]" and column["levels"] == 20
    assert column["levels_score"] == pytest.approx(levels_r2, rel=1e-6)
    assert column["smooth_score"] == pytest.approx(r2_score(yv[:, 0], cubic), rel=1e-6)
    assert finding.evidence["value"] == pytest.approx(levels_r2 - r2_score(yv[:, 0], cubic), rel=1e-6)


def test_multi_column_leakage_evidence_matches_scikit_learns_linear_regression() -> None:
    from sklearn.linear_model import LinearRegression

    from tests.doctor_cases.planted_leakage import length_of_stay_from_admission_and_discharge

    inputs = length_of_stay_from_admission_and_discharge()
    finding = doctor(**inputs, steps=20, checks=["multi_column_leakage"])["multi_column_leakage"]
    (x, y), (xv, yv) = inputs["train"], inputs["val"]

    def held_out_r2(columns: list[str]) -> float:
        return LinearRegression().fit(x[columns], y).score(xv[columns], yv)

    leak, honest = ["admission_day", "discharge_day"], ["age", "severity"]
    assert finding.status == "fail" and finding.evidence["columns"] == leak
    assert finding.evidence["value"] == pytest.approx(held_out_r2(leak), rel=1e-6)
    assert finding.evidence["others"] == pytest.approx(held_out_r2(honest), rel=1e-6)
    assert finding.evidence["together"] == pytest.approx(held_out_r2(leak + honest), rel=1e-6)
