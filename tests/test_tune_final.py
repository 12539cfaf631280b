"""T44 taken to its end: the linear model solved exactly (`train.solver: exact`), and tune's final choice between
the best network and it (tuning/final.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import RidgeCV

from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.fitting import fit
from tunesmith.prediction import predict
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup
from tunesmith.train.exact import ALPHAS
from tunesmith.tuning.study import tune

EXACT = {"model.depth": 0, "train.solver": "exact"}


@pytest.mark.parametrize("data", ["diabetes", "wine", "breast_cancer"])  # regression, 3 classes, 2 classes (1 logit)
def test_a_depth_0_network_solved_exactly_scores_as_the_linear_baseline(tmp_path: Path, data: str) -> None:
    result = fit(data=data, out=tmp_path / "run", overrides=EXACT, progress=False, report=False)
    assert result.metrics["epochs"] == 1 and len(result.history) == 1  # solved in one step, nothing to iterate
    linear = result.metrics["baselines"]["linear"]  # scikit-learn's model on the same rows, scored alike
    for split in ("val", "test"):
        for name, value in linear[split].items():
            assert result.metrics[split][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (split, name)


def test_the_solved_weights_are_ridge_coefficients_on_the_scaled_targets(tmp_path: Path) -> None:
    result = fit(data="diabetes", out=tmp_path / "run", overrides=EXACT, progress=False, report=False)
    prep = result.prepared
    ridge = RidgeCV(alphas=ALPHAS).fit(prep.x_train, prep.y_train)
    fc = result.model.fc
    np.testing.assert_allclose(fc.weight.detach().numpy().ravel(), ridge.coef_.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fc.bias.detach().numpy(), np.atleast_1d(ridge.intercept_), rtol=1e-5, atol=1e-6)


def test_solver_exact_refuses_a_model_with_hidden_layers() -> None:
    with pytest.raises(BadInput, match=r"train\.solver=exact .* model\.depth=2.* Set model\.depth=0"):
        RunSetup.build(make_recipe(data="iris", overrides={"train.solver": "exact"}))  # the default mlp: depth 2
    with pytest.raises(BadInput, match="reconstruction"):
        RunSetup.build(make_recipe(data="iris", overrides={**EXACT, "data.task": "reconstruction"}))


# ---- tune's final choice ---------------------------------------------------------------------------------------

QUICK = {"tune.epochs": 6, "tune.refit_folds": 3, "tune.folds": 3}


def linear_csv(path: Path, rows: int = 240, seed: int = 0) -> Path:
    """y = X w + noise: nothing a network can add to the linear model."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    y = x @ np.array([1.5, -2.0, 0.5, 0.0, 1.0, -0.7]) + rng.normal(scale=1.0, size=rows)
    pd.DataFrame(x, columns=[f"x{i}" for i in range(6)]).assign(y=y).to_csv(path, index=False)
    return path


def circles_csv(path: Path, rows: int = 400, seed: int = 0) -> Path:
    """Two classes on two rings: no line separates them (a linear model sits at chance), a small MLP does."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, size=rows)
    angle = rng.uniform(0, 2 * np.pi, size=rows)
    radius = np.where(label == 1, 1.0, 2.0) + rng.normal(scale=0.1, size=rows)
    frame = pd.DataFrame({"a": radius * np.cos(angle), "b": radius * np.sin(angle), "label": label})
    frame.to_csv(path, index=False)
    return path


def quick_tune(data: Path, target: str, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """Six QUICK trials on `data`; the result and its final choice."""
    result = tune(data=str(data), target=target, out=tmp_path / "run", trials=6, overrides=QUICK, progress=False)
    return result, result.tuning["final"]


@pytest.mark.slow
def test_a_linear_target_makes_tune_deliver_the_linear_model(tmp_path: Path) -> None:
    data = linear_csv(tmp_path / "linear.csv")
    result, final = quick_tune(data, "y", tmp_path)
    assert final["chosen"] == "linear" and "the refit delivers the linear model" in final["reason"]
    linear = final["linear"]
    assert len(linear["fold_values"]) == 3 and linear["value"] == pytest.approx(np.mean(linear["fold_values"]))
    assert linear["se"] == pytest.approx(np.std(linear["fold_values"], ddof=1) / np.sqrt(3))
    assert result.best_recipe.train.solver == "exact" and result.best_recipe.model.depth == 0
    assert result.metrics["tuning"]["final"] == "linear"
    # the delivered ensemble: member k is RidgeCV on refit fold k's rows; predict averages them in target units
    new = pd.read_csv(data).drop(columns="y").head(20)
    setup = RunSetup.build(result.best_recipe.with_overrides({"data.cv": 3, "data.ensemble": True}))
    by_hand = []
    for k in range(3):
        prep = setup.for_fold(k).prep
        ridge = RidgeCV(alphas=ALPHAS).fit(prep.x_train, prep.y_train)
        by_hand.append(prep.preprocessor.inverse_y(ridge.predict(prep.preprocessor.transform_x(new)).reshape(-1, 1)))
    predicted = predict(result.run_dir, new)["prediction"].to_numpy()
    np.testing.assert_allclose(predicted, np.mean(by_hand, axis=0).ravel(), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_curved_target_keeps_the_network(tmp_path: Path) -> None:
    result, final = quick_tune(circles_csv(tmp_path / "circles.csv"), "label", tmp_path)
    assert final["chosen"] == "network" and "better by more than one standard error" in final["reason"]
    assert final["linear"]["value"] < 0.7 < final["network"]["value"]  # a line cannot split two rings
    assert result.best_recipe.train.solver == "gradient" and result.metrics["tuning"]["final"] == "network"


@pytest.mark.slow
def test_tune_final_network_always_delivers_the_network(tmp_path: Path) -> None:
    data = linear_csv(tmp_path / "linear.csv")
    overrides = {**QUICK, "tune.final": "network"}
    result = tune(data=str(data), target="y", out=tmp_path / "run", trials=3, overrides=overrides, progress=False)
    assert result.tuning["final"] == {
        "chosen": "network",
        "skipped": "tune.final=network: the network is delivered whatever the linear model scores",
    }
    assert result.best_recipe.train.solver == "gradient"


@pytest.mark.slow
def test_a_winner_that_diverges_on_a_fresh_seed_is_not_shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tunesmith.tuning.final as final_module

    real = final_module.score_recipe

    def diverging(*args: Any, seed: int | None = None, **kwargs: Any) -> Any:
        if seed is not None:  # the fresh-seed retraining of the best network
            raise TrainingDiverged(f"loss nan at seed {seed}")
        return real(*args, seed=seed, **kwargs)

    monkeypatch.setattr(final_module, "score_recipe", diverging)
    data = circles_csv(tmp_path / "circles.csv")
    result = tune(data=str(data), target="label", out=tmp_path / "run", trials=3, overrides=QUICK, progress=False)
    final = result.tuning["final"]
    assert final["chosen"] == "linear" and "diverged when retrained with seeds [1, 2]" in final["reason"]
    assert result.best_recipe.train.solver == "exact" and result.metrics["tuning"]["final"] == "linear"
