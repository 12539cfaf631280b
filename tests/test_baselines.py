"""Baselines, always (issue 14): every fit stands beside scikit-learn's linear model and the constant predictor.

The numbers in metrics.json are checked against scikit-learn fitted here on the arrays the run
trained on (rebuilt from the run's recipe.yaml through RunSetup), and the constant predictor against
a hand computation.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.linear_model import LogisticRegressionCV, RidgeCV
from typer.testing import CliRunner

from tunesmith import baselines
from tunesmith.baselines import compare_line, fit_baselines, mean_baselines
from tunesmith.cli import app
from tunesmith.data import Prepared
from tunesmith.fitting import fit, summary_line
from tunesmith.recipe import load_recipe, make_recipe
from tunesmith.report import render_report
from tunesmith.runsetup import RunSetup
from tunesmith.train.exact import ALPHAS, CS, CV, MAX_ITER

APPROX = {"rel": 1e-5, "abs": 1e-7}


def cli_fit(out: Path, data: str) -> tuple[dict[str, Any], str, Prepared]:
    """`tunesmith fit` on a built-in set: metrics.json, the printed line, and the fold it trained on."""
    result = CliRunner().invoke(app, ["fit", "--data", data, "--epochs", "3", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    prep = RunSetup.build(load_recipe(out / "recipe.yaml")).prep
    # the same rows, preprocessed alike: the fitted statistics equal those the run saved
    assert json.loads((out / "preprocess.json").read_text()) == json.loads(json.dumps(prep.preprocessor.state))
    return metrics, result.output, prep


@pytest.fixture(scope="module")
def wine(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Prepared]:
    return cli_fit(tmp_path_factory.mktemp("wine") / "run", "wine")


@pytest.fixture(scope="module")
def diabetes(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Prepared]:
    return cli_fit(tmp_path_factory.mktemp("diabetes") / "run", "diabetes")


def test_metrics_json_holds_both_baselines_on_val_and_test(
    wine: tuple[dict[str, Any], str, Prepared], diabetes: tuple[dict[str, Any], str, Prepared]
) -> None:
    for (metrics, _, prep), linear in ((wine, "LogisticRegressionCV"), (diabetes, "RidgeCV")):
        assert metrics["data"]["rows"] == len(prep.x_train) + len(prep.x_val) + len(prep.y_test)  # type: ignore[arg-type]
        assert set(metrics["baselines"]) == {"linear", "constant"} and metrics["baselines"]["linear"]["model"] == linear
        for entry in metrics["baselines"].values():
            assert set(entry["val"]) == set(entry["test"]) == set(metrics["val"])  # the network's metrics, each one


def test_logistic_baseline_equals_scikit_learns_on_the_same_arrays(wine: tuple[dict[str, Any], str, Prepared]) -> None:
    metrics, _, prep = wine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # scikit-learn 1.8+: l1_ratios / scoring defaults change
        model = LogisticRegressionCV(Cs=list(CS), cv=CV, max_iter=MAX_ITER, scoring="neg_log_loss")
        model.fit(prep.x_train, prep.y_train)
    linear = metrics["baselines"]["linear"]
    assert linear["model"] == "LogisticRegressionCV" and linear["C"] == pytest.approx(float(np.ravel(model.C_)[0]))
    labels = list(range(len(prep.preprocessor.classes or [])))
    for split, x, y in (("val", prep.x_val, prep.y_val), ("test", prep.x_test, prep.y_test)):
        proba = model.predict_proba(x)
        pred = proba.argmax(axis=1)
        assert linear[split] == pytest.approx(
            {
                "loss": skm.log_loss(y, proba, labels=labels),
                "accuracy": skm.accuracy_score(y, pred),
                "f1_macro": skm.f1_score(y, pred, average="macro"),
            },
            **APPROX,
        )


def test_ridge_baseline_equals_scikit_learns_in_target_units(diabetes: tuple[dict[str, Any], str, Prepared]) -> None:
    metrics, _, prep = diabetes
    model = RidgeCV(alphas=ALPHAS).fit(prep.x_train, prep.y_train)  # the scaled targets the network trains on
    linear = metrics["baselines"]["linear"]
    assert linear["model"] == "RidgeCV" and linear["alpha"] == pytest.approx(model.alpha_)
    center, scale = (np.asarray(prep.preprocessor.state["target"][k]) for k in ("center", "scale"))
    for split, x, y in (("val", prep.x_val, prep.y_val), ("test", prep.x_test, prep.y_test)):
        scaled = model.predict(x).reshape(len(x), -1)
        true, pred = y * scale + center, scaled * scale + center  # back in the target's own units (T05)
        assert linear[split] == pytest.approx(
            {
                "loss": skm.mean_squared_error(y, scaled),  # the network's loss: MSE of the scaled targets
                "rmse": np.sqrt(skm.mean_squared_error(true, pred)),
                "mae": skm.mean_absolute_error(true, pred),
                "r2": skm.r2_score(true, pred),
            },
            **APPROX,
        )


def test_constant_classifier_predicts_the_training_prior(wine: tuple[dict[str, Any], str, Prepared]) -> None:
    metrics, _, prep = wine
    prior = np.bincount(prep.y_train) / len(prep.y_train)
    majority = int(prior.argmax())
    constant = metrics["baselines"]["constant"]
    assert constant["model"] == "DummyClassifier" and constant["strategy"] == "prior"
    for split, y in (("val", prep.y_val), ("test", prep.y_test)):
        hits = float(np.mean(y == majority))
        f1_majority = 2 * np.sum(y == majority) / (len(y) + np.sum(y == majority))  # predicted: all rows
        present = len(set(y.tolist()) | {majority})  # the other present classes score f1 = 0
        assert constant[split] == pytest.approx(
            {"loss": -np.mean(np.log(prior[y])), "accuracy": hits, "f1_macro": f1_majority / present}, **APPROX
        )


def test_constant_regressor_predicts_the_training_mean(diabetes: tuple[dict[str, Any], str, Prepared]) -> None:
    metrics, _, prep = diabetes
    center, scale = (np.asarray(prep.preprocessor.state["target"][k]) for k in ("center", "scale"))
    mean = prep.y_train.astype(np.float64).mean()  # 0 in scaled units: the scaler centred on these rows
    constant = metrics["baselines"]["constant"]
    assert constant["model"] == "DummyRegressor" and constant["strategy"] == "mean"
    for split, y in (("val", prep.y_val), ("test", prep.y_test)):
        err = (y.astype(np.float64).ravel() - mean) * scale[0]  # in target units
        true = y.astype(np.float64).ravel() * scale[0] + center[0]
        assert constant[split] == pytest.approx(
            {
                "loss": np.mean((y.ravel() - mean) ** 2),
                "rmse": np.sqrt(np.mean(err**2)),
                "mae": np.mean(np.abs(err)),
                "r2": 1 - np.sum(err**2) / np.sum((true - true.mean()) ** 2),
            },
            **APPROX,
        )


def test_the_summary_line_says_how_the_network_fares_against_the_linear_model(
    wine: tuple[dict[str, Any], str, Prepared], diabetes: tuple[dict[str, Any], str, Prepared]
) -> None:
    for (metrics, output, _), name, higher in ((wine, "accuracy", True), (diabetes, "rmse", False)):
        ours, theirs = metrics["val"][name], metrics["baselines"]["linear"]["val"][name]
        gain = ours - theirs if higher else theirs - ours  # + means the network is better
        line = f"network vs linear baseline: {gain:+.4f} {name} on val"
        assert line in output and summary_line(metrics).endswith(line)


def test_the_report_shows_the_baselines_table(tmp_path: Path, wine: tuple[dict[str, Any], str, Prepared]) -> None:
    metrics, _, _ = wine
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    html = render_report(tmp_path, sections=["baselines"])
    assert '<section id="baselines">' in html and "LogisticRegressionCV (C=" in html and "DummyClassifier" in html
    assert f'<td class="num">{metrics["baselines"]["constant"]["test"]["accuracy"]:.4g}</td>' in html


def test_on_a_linear_target_the_linear_model_beats_the_constant(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    np.savez(tmp_path / "linear.npz", x=x, y=x @ np.array([1.0, -2.0, 0.5, 3.0, 0.0], np.float32) + 4.0)
    found = fit_baselines(RunSetup.build(make_recipe(None, data=str(tmp_path / "linear.npz"))).prep)
    linear, constant = found["linear"], found["constant"]
    for split in ("val", "test"):
        assert linear[split]["r2"] > 0.999 and linear[split]["rmse"] <= constant[split]["rmse"]
        assert linear[split]["loss"] <= constant[split]["loss"] and constant[split]["r2"] <= 0.0 + 0.05


def test_a_matrix_over_the_budget_skips_the_linear_model_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    prep = RunSetup.build(make_recipe(None, data="wine")).prep
    monkeypatch.setattr(baselines, "MAX_CELLS", 100)
    found = fit_baselines(prep)
    assert "cell budget" in found["linear"]["skipped"] and "val" not in found["linear"]
    assert "val" in found["constant"]  # the constant predictor costs nothing: always there
    metrics = {"task": "classification", "val": {"accuracy": 0.9}, "baselines": found}
    gain = 0.9 - found["constant"]["val"]["accuracy"]
    assert compare_line(metrics) == f"network vs constant baseline: {gain:+.4f} accuracy on val"


def test_reconstruction_runs_record_why_there_is_no_baseline(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(60, 4)).astype(np.float32)
    np.savez(tmp_path / "x.npz", x=x, y=np.zeros(len(x)))
    recipe = make_recipe(None, data=str(tmp_path / "x.npz"), overrides={"data.task": "reconstruction"})
    found = fit_baselines(RunSetup.build(recipe).prep)
    assert set(found) == {"linear", "constant"} and all("reconstruction" in e["skipped"] for e in found.values())
    assert compare_line({"task": "reconstruction", "val": {"loss": 1.0}, "baselines": found}) == ""


def test_cross_validation_averages_each_fold_baseline_like_the_network(tmp_path: Path) -> None:
    result = fit(data="wine", epochs=1, cv=2, out=tmp_path / "cv", progress=False, report=False)
    per_fold = [f["baselines"] for f in result.metrics["folds"]]
    assert len(per_fold) == 2 and per_fold[0]["linear"]["val"] != per_fold[1]["linear"]["val"]
    merged = result.metrics["baselines"]
    assert merged == mean_baselines(per_fold) and merged["linear"]["folds"] == 2
    for kind in ("linear", "constant"):
        for split in ("val", "test"):
            mean = {k: np.mean([f[kind][split][k] for f in per_fold]) for k in per_fold[0][kind][split]}
            assert merged[kind][split] == pytest.approx(mean)
