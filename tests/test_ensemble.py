"""The final model as an ensemble (data.ensemble, tune's refit): members averaged, scored once on the test
split, read back by `predict`; time-ordered data get seed members trained on all of train+val."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from tests.conftest import clean_and_poisoned
from tunesmith.cli import app
from tunesmith.data import LoadedData, load_data
from tunesmith.data.preprocess import Preprocessor
from tunesmith.errors import BadInput
from tunesmith.fitting import fit
from tunesmith.models import build_model
from tunesmith.prediction import load_run, predict
from tunesmith.recipe import load_recipe, make_recipe
from tunesmith.train.trainer import Trainer

runner = CliRunner()
FAST = {"train.monitor": False, "train.checkpoint": False}


@pytest.fixture(scope="module")
def wine_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wine") / "run"
    fit(data="wine", cv=3, ensemble=True, epochs=4, overrides=FAST, out=out, progress=False, report=False)
    return out


@pytest.fixture(scope="module")
def diabetes_ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("diabetes") / "run"
    fit(data="diabetes", cv=3, ensemble=True, epochs=5, overrides=FAST, out=out, progress=False, report=False)
    return out


def held_out(run: Path) -> LoadedData:
    """The run's data, split as it was: `x_test`/`y_test` are the rows it was judged on."""
    recipe = load_recipe(run / "recipe.yaml")
    return load_data(recipe.data, seed=recipe.train.seed)


def by_hand(run: Path, k: int, rows: pd.DataFrame) -> tuple[Preprocessor, np.ndarray]:
    """Member k's raw outputs on `rows`, rebuilt from fold-k/model.pt and fold-k/preprocess.json alone."""
    recipe = load_recipe(run / "recipe.yaml")
    pre = Preprocessor.load(run / f"fold-{k}" / "preprocess.json")
    net = build_model(recipe.model, kind="tabular", input_shape=tuple(pre.state["shape"]), n_outputs=pre.n_outputs)
    net.load_state_dict(torch.load(run / f"fold-{k}" / "model.pt", weights_only=True))
    with torch.no_grad():
        return pre, net.eval()(torch.from_numpy(pre.transform_x(rows))).numpy()


def test_classification_ensemble_averages_its_members_probabilities(wine_ensemble: Path) -> None:
    loaded = held_out(wine_ensemble)
    frame = predict(wine_ensemble, loaded.x_test)
    probabilities = [torch.softmax(torch.from_numpy(by_hand(wine_ensemble, k, loaded.x_test)[1]), 1) for k in (1, 2, 3)]
    mean = torch.stack(probabilities).mean(0).numpy()
    np.testing.assert_allclose(frame.filter(like="proba_").to_numpy(), mean, atol=1e-6)
    assert (frame["prediction"].to_numpy() == mean.argmax(axis=1)).all()  # wine's labels are 0, 1, 2
    metrics = json.loads((wine_ensemble / "metrics.json").read_text())
    accuracy = float(np.mean(frame["prediction"].to_numpy() == loaded.y_test))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)  # predict gives the scored ensemble
    assert len(load_run(wine_ensemble).members) == 3


def test_metrics_lead_with_the_ensemble_and_keep_the_members_mean_and_std(wine_ensemble: Path) -> None:
    metrics = json.loads((wine_ensemble / "metrics.json").read_text())
    members, folds = metrics["members"], metrics["folds"]
    assert members["count"] == 3 and members["kind"] == "folds" and members["average"] == "class probabilities"
    for split in ("val", "test"):
        assert members[split]["accuracy"] == pytest.approx(np.mean([f[split]["accuracy"] for f in folds]))
        spread = np.std([f[split]["accuracy"] for f in folds], ddof=1)
        assert members[f"{split}_std"]["accuracy"] == pytest.approx(spread)
    assert "val_std" not in metrics and "test_std" not in metrics  # the headline is one model's: the ensemble
    # validation: out-of-fold, each development row scored once, by the member that did not train on it
    rows = [len(f.val) for f in held_out(wine_ensemble).folds]
    pooled = sum(f["val"]["accuracy"] * n for f, n in zip(folds, rows, strict=True)) / sum(rows)
    assert metrics["val"]["accuracy"] == pytest.approx(pooled) and sum(rows) == metrics["data"]["dev_rows"]
    assert sum(metrics["test_report"]["support"]) == metrics["data"]["test_rows"]


def test_regression_ensemble_averages_target_units_and_predict_repeats_its_test_predictions(
    diabetes_ensemble: Path,
) -> None:
    loaded = held_out(diabetes_ensemble)
    frame = predict(diabetes_ensemble, loaded.x_test)
    members = [by_hand(diabetes_ensemble, k, loaded.x_test) for k in (1, 2, 3)]
    mean = np.mean([pre.inverse_y(out) for pre, out in members], axis=0)[:, 0]  # each member undoes its own T05
    np.testing.assert_allclose(frame["prediction"].to_numpy(), mean, rtol=1e-5)
    own = pd.read_csv(diabetes_ensemble / "test_predictions.csv")  # the ensemble's, written when it was scored
    np.testing.assert_allclose(frame["prediction"].to_numpy(), own["y_pred"].to_numpy(), rtol=1e-4)
    metrics = json.loads((diabetes_ensemble / "metrics.json").read_text())
    err = frame["prediction"].to_numpy() - loaded.y_test
    r2 = 1 - np.sum(err**2) / np.sum((loaded.y_test - loaded.y_test.mean()) ** 2)
    assert r2 == pytest.approx(metrics["test"]["r2"], abs=1e-4)
    assert metrics["members"]["average"] == "outputs in target units"


def test_the_test_split_is_read_once_per_member_after_every_member_trained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, test_reads: list[str]
) -> None:
    events, train = test_reads, Trainer.fit

    def fitted(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        events.append("fit")
        return train(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "fit", fitted)
    fit(data="wine", cv=3, ensemble=True, epochs=2, overrides=FAST, out=tmp_path / "run", progress=False, report=False)
    assert events.count("fit") == 3 and events.count("test") == 3  # one pass per member, no second look
    last_fit = len(events) - 1 - events[::-1].index("fit")
    assert events.index("test") > last_fit


def test_the_test_split_moves_nothing_but_the_ensembles_test_scores(tmp_path: Path) -> None:
    clean_and_poisoned(tmp_path, rows=150, test_rows=40)
    runs = [
        fit(data=str(tmp_path / f"{n}.npz"), cv=3, ensemble=True, epochs=3, overrides=FAST, out=tmp_path / n,
            progress=False, report=False)
        for n in ("clean", "poisoned")
    ]  # fmt: skip
    assert runs[0].history.drop(columns="seconds").equals(runs[1].history.drop(columns="seconds"))
    assert runs[0].metrics["val"] == runs[1].metrics["val"]  # out-of-fold: development rows only
    assert runs[0].metrics["members"]["val"] == runs[1].metrics["members"]["val"]
    for k in (1, 2, 3):
        pre = [json.loads((tmp_path / n / f"fold-{k}" / "preprocess.json").read_text()) for n in ("clean", "poisoned")]
        assert pre[0] == pre[1]
    assert runs[0].metrics["test"] != runs[1].metrics["test"]


def test_time_ordered_data_get_seed_members_on_all_development_rows(sales_csv: Path, tmp_path: Path) -> None:
    overrides = {**FAST, "train.early_stopping.patience": 1, "train.early_stopping.min_epochs": 0}
    result = fit(
        data=str(sales_csv), target="revenue", time="date", cv=3, ensemble=True, epochs=4, overrides=overrides,
        out=tmp_path / "run", progress=False, report=False,
    )  # fmt: skip
    metrics = result.metrics
    members = metrics["members"]
    assert members["kind"] == "seeds" and members["seeds"] == [0, 1, 2] and "no validation" in members["note"]
    assert "val" not in metrics and "val" not in members and {"rmse", "r2", "loss"} <= set(metrics["test"])
    loaded = held_out(tmp_path / "run")
    dev_rows = metrics["data"]["dev_rows"]
    assert all(len(f.train) == dev_rows and len(f.val) == 0 for f in loaded.folds)  # no expanding windows
    assert (result.history.groupby("fold").size() == 4).all()  # patience 1 would have stopped: it is off
    assert "val_loss" not in result.history.columns
    states = [torch.load(tmp_path / "run" / f"fold-{k}" / "model.pt", weights_only=True) for k in (1, 2, 3)]
    first = next(iter(states[0]))
    assert not torch.equal(states[0][first], states[1][first])  # each member from its own seed
    pres = {(tmp_path / "run" / f"fold-{k}" / "preprocess.json").read_text() for k in (1, 2, 3)}
    assert len(pres) == 1  # the same rows, the same preprocessing
    new = pd.read_csv(sales_csv).tail(20)
    assert np.isfinite(predict(tmp_path / "run", new)["prediction"]).all()


def test_resume_rescores_finished_members_and_trains_the_missing_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = fit(data="wine", cv=3, ensemble=True, epochs=3, deterministic=True, overrides=FAST, out=out,
                progress=False, report=False)  # fmt: skip
    (out / "metrics.json").unlink()  # as if killed while fold 3 trained: folds 1 and 2 are done
    shutil.rmtree(out / "fold-3")
    again = fit(out=out, resume=True, progress=False, report=False)
    assert again.metrics["test"] == first.metrics["test"] and again.metrics["val"] == first.metrics["val"]
    assert again.metrics["members"] == first.metrics["members"]


def test_ensemble_needs_folds_and_the_cli_flag_sets_it(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match=r"'ensemble' parameter of data must be false unless data.cv >= 2"):
        make_recipe(data="wine", ensemble=True)
    refused = runner.invoke(app, ["fit", "--data", "wine", "--ensemble", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2 and "data.cv >= 2" in refused.output
    flags = ["--data", "iris", "--cv", "2", "--ensemble", "--epochs", "2", "--quiet", "--out", str(tmp_path / "a")]
    done = runner.invoke(app, ["fit", *flags])
    assert done.exit_code == 0, done.output
    assert "ensemble of 2 folds (members' test accuracy" in done.output
    assert load_recipe(tmp_path / "a" / "recipe.yaml").data.ensemble
