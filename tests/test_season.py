"""A season in the time column (data/season.py): found on training rows only, read by every family, kept by predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import run_cli
from tunesmith.data import load_data
from tunesmith.data.season import LINE_RATIO, fit_season, season_terms
from tunesmith.errors import BadInput
from tunesmith.fitting import fit as ts_fit
from tunesmith.models import build_model
from tunesmith.prediction import predict
from tunesmith.recipe import DataConfig, DataFacts, make_recipe, resolve
from tunesmith.runsetup import RunSetup

LAGS = 24


def _process(n: int, seed: int, *, cycle: bool = True, phi: tuple[float, float] = (0.6, -0.3)) -> np.ndarray:
    """benchmarks/tune_series.py's process: y_t = 0.6 y_{t-1} - 0.3 y_{t-2} + sin(2 pi t / 12) + noise."""
    rng = np.random.default_rng(seed)
    y = np.zeros(n + 50)
    for t in range(2, len(y)):
        y[t] = phi[0] * y[t - 1] + phi[1] * y[t - 2] + (np.sin(2 * np.pi * t / 12) if cycle else 0) + 0.4 * rng.normal()
    return y[50:]


def _lag_table(path: Path, y: np.ndarray, *, time: pd.Series | np.ndarray | None = None) -> Path:
    """lag_1 .. lag_24, a time column `t` (the row number unless given) and the next value `y`."""
    rows = len(y) - LAGS
    frame = pd.DataFrame({f"lag_{k}": y[LAGS - k : LAGS - k + rows] for k in range(1, LAGS + 1)})
    frame.insert(0, "t", np.arange(rows) if time is None else time)
    frame["y"] = y[LAGS:]
    frame.to_csv(path, index=False)
    return path


def test_the_cycle_is_found_and_noise_is_not() -> None:
    """The benchmark's 12-step cycle is a line hundreds of times the median period's strength; autoregressions,
    a random walk and white noise of the same length stay under LINE_RATIO on every seed."""
    for seed in range(3):
        found = fit_season(np.arange(300), _process(300, seed), period="auto")
        assert found is not None and found["period"] == 12 and found["line"] > 5 * LINE_RATIO
        assert found["origin"] == 0 and found["step"] == 1.0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        walk = np.cumsum(rng.normal(size=300))
        ar1 = np.zeros(300)
        for t in range(1, 300):
            ar1[t] = 0.9 * ar1[t - 1] + rng.normal()
        for y in (_process(300, seed, cycle=False), walk, ar1, rng.normal(size=300)):
            assert fit_season(np.arange(300), y, period="auto") is None
    # too short to hold MIN_CYCLES of any candidate, constant, or switched off: no season
    assert fit_season(np.arange(8), np.arange(8.0), period="auto") is None
    assert fit_season(np.arange(100), np.ones(100), period="auto") is None
    assert fit_season(np.arange(300), _process(300, 0), period="none") is None
    gappy = np.arange(300.0)
    gappy[5] = np.nan  # a row without a time has no phase: no season found, and a given period is refused
    assert fit_season(gappy, _process(300, 0), period="auto") is None
    with pytest.raises(BadInput, match="missing values"):
        fit_season(gappy, _process(300, 0), period=12)


def test_dates_are_counted_in_their_own_step_and_the_phase_is_exact() -> None:
    """Daily dates, shuffled, two of them missing: a weekly cycle is 7 steps of one day, and the phase columns are
    sin and cos of 2 pi (days since the first training day) / 7."""
    days = pd.date_range("2024-01-01", periods=280, freq="D").delete([40, 41])
    rng = np.random.default_rng(0)
    y = 3 * np.cos(2 * np.pi * np.arange(280) / 7)[np.r_[0:40, 42:280]] + rng.normal(size=278)
    order = rng.permutation(278)
    time = days.to_numpy().astype("datetime64[ns]").astype(np.int64)[order]
    found = fit_season(time, y[order], period="auto")
    assert found is not None and found["period"] == 7 and found["step"] == 86_400e9
    assert found["origin"] == time.min()
    terms = season_terms(found, time)
    elapsed = (days - days[0]).days.to_numpy()[order]
    np.testing.assert_allclose(terms[:, 1], np.cos(2 * np.pi * elapsed / 7), atol=1e-6)
    np.testing.assert_allclose(terms[:, 0], np.sin(2 * np.pi * elapsed / 7), atol=1e-6)
    assert fit_season(time, y[order], period=5)["period"] == 5  # type: ignore[index]  # a given period: no evidence


def test_a_table_with_a_season_gets_its_phase_and_every_fold_the_same(tmp_path: Path) -> None:
    path = _lag_table(tmp_path / "s.csv", _process(400, 0))
    setup = RunSetup.build(make_recipe(data=str(path), target="y", time="t"))
    season = setup.prep.preprocessor.season
    assert season is not None and season["period"] == 12 and season["column"] == "t"
    assert setup.facts.season == 12 and setup.facts.series is not None  # the lags are still one series
    assert setup.prep.x_train.shape[1] == LAGS + 2 and setup.recipe.data.season == 12
    assert setup.recipe.model.step_columns == LAGS  # a sequence reading takes the lags, not the phase, as steps
    # the phase of the training rows, the validation rows and the (later) test rows, from the time column alone
    loaded = setup.loaded
    for x, rows in ((setup.prep.x_train, loaded.folds[0].train), (setup.prep.x_val, loaded.folds[0].val)):
        t = loaded.raw.time[rows]
        np.testing.assert_allclose(x[:, -2:], np.c_[np.sin(2 * np.pi * t / 12), np.cos(2 * np.pi * t / 12)], atol=1e-5)
    assert setup.prep.x_test is not None and loaded.time_test is not None
    assert loaded.time_test.min() > loaded.raw.time.max()  # time-ordered: the test rows come last
    np.testing.assert_allclose(setup.prep.x_test[:, -2], np.sin(2 * np.pi * loaded.time_test / 12), atol=1e-5)
    # every fold reads one season, found on the largest fold: the same columns whatever its own rows would say
    cv = load_data(DataConfig(source=str(path), target="y", time="t", cv=3), seed=0)
    assert {cv.prepare(k).x_train.shape[1] for k in range(3)} == {LAGS + 2}
    # switched off, or no time column: the lags alone; a classification target: no search for one
    off = load_data(DataConfig(source=str(path), target="y", time="t", season="none"), seed=0).prepare(0)
    assert off.x_train.shape[1] == LAGS and off.preprocessor.season is None and off.facts.season is None
    plain = RunSetup.build(make_recipe(data=str(path), target="y"))
    assert plain.prep.x_train.shape[1] == LAGS + 1 and plain.recipe.data.season == "none"  # t is no time column
    labels = pd.read_csv(path).assign(y=lambda f: (f["y"] > 0).astype(int))
    labels.to_csv(tmp_path / "c.csv", index=False)
    assert load_data(DataConfig(source=str(tmp_path / "c.csv"), target="y", time="t"), seed=0).season is None


def test_the_phase_buys_the_linear_baseline_what_the_lags_cannot(tmp_path: Path) -> None:
    """On the same rows, RidgeCV (the run's own baseline) with the phase beats RidgeCV on the lags alone: the
    lags estimate the cycle's phase from a few noisy values, the time column gives it."""
    path = _lag_table(tmp_path / "s.csv", _process(500, 1))
    scores = {}
    for season in ("auto", "none"):
        run = ts_fit(
            data=str(path), target="y", time="t", epochs=1, out=tmp_path / season, progress=False,
            overrides={"data.season": season},
        )  # fmt: skip
        scores[season] = run.metrics["baselines"]["linear"]["val"]["rmse"]
    assert scores["auto"] < 0.97 * scores["none"], scores


def test_sequence_families_read_the_lags_as_steps_and_the_phase_beside_them() -> None:
    """cnn and rnn over 24 lags and a phase: 24 steps reach the convolution or the recurrence; the two phase
    columns join the output layer (their weights are its last two inputs)."""
    facts_shape = (LAGS + 2,)
    for family in ("cnn", "rnn"):
        recipe = make_recipe(data="x.csv").with_overrides(
            {"model.family": family, "model.width": 8, "model.depth": 1, "model.step_columns": LAGS}
        )
        facts = DataFacts(task="regression", kind="tabular", n_train=100, input_shape=facts_shape, n_outputs=1)
        net = build_model(resolve(recipe, facts).model, kind="tabular", input_shape=facts_shape, n_outputs=1)
        seen: list[tuple[int, ...]] = []
        net.adapter.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(tuple(out.shape)))
        x = torch.randn(5, LAGS + 2)
        net.eval()
        out = net(x)
        assert seen == [(5, 1, LAGS) if family == "cnn" else (5, LAGS, 1)]
        last = net.classifier[-1]
        moved = x.clone()
        moved[:, -1] += 1.0  # the cos column: the output moves by its weight in the output layer, nothing else
        torch.testing.assert_close(net(moved) - out, last.weight[:, -1].expand(5, 1), rtol=1e-4, atol=1e-5)
    with pytest.raises(BadInput, match="step_columns"):
        recipe = make_recipe(data="x.csv").with_overrides({"model.family": "rnn", "model.step_columns": 40})
        facts = DataFacts(task="regression", kind="tabular", n_train=100, input_shape=facts_shape, n_outputs=1)
        build_model(resolve(recipe, facts).model, kind="tabular", input_shape=facts_shape, n_outputs=1)


def test_predict_reads_the_phase_from_the_time_column(tmp_path: Path) -> None:
    path = _lag_table(tmp_path / "s.csv", _process(400, 2))
    run = ts_fit(data=str(path), target="y", time="t", epochs=3, out=tmp_path / "run", progress=False)
    test = pd.read_csv(tmp_path / "run" / "test_predictions.csv")
    rows = pd.read_csv(path).sort_values("t").tail(len(test))
    np.testing.assert_allclose(rows["y"], test["y_true"], rtol=1e-6)  # the test rows, in their order
    np.testing.assert_allclose(predict(run.run_dir, rows)["prediction"], test["y_pred"], rtol=1e-5, atol=1e-5)
    rows.drop(columns=["t"]).to_csv(tmp_path / "no_time.csv", index=False)
    result = run_cli(
        "predict", str(run.run_dir), "--data", str(tmp_path / "no_time.csv"), "--out", str(tmp_path / "p.csv")
    )
    assert result.returncode == 2 and "time column 't'" in result.stderr and "period 12" in result.stderr
    assert not (tmp_path / "p.csv").exists()
    # a period asked for without a time column: exit 2 before anything is written
    result = run_cli(
        "fit", "--data", str(path), "--target", "y", "--set", "data.season=12", "--out", str(tmp_path / "x")
    )
    assert result.returncode == 2 and "data.season=12" in result.stderr and "--time" in result.stderr
    assert not (tmp_path / "x").exists()
