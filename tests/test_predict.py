"""`predict`: a run reproduces its own test metrics on new rows, and every schema problem is named (exit 2)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import run_cli
from tunesmith.cli import app
from tunesmith.data import load_data
from tunesmith.errors import BadInput
from tunesmith.fitting import fit as ts_fit
from tunesmith.prediction import load_run, predict, write_predictions
from tunesmith.recipe import load_recipe

runner = CliRunner()


def shop_table(n: int, seed: int) -> pd.DataFrame:
    """Three classes from a numeric feature and a colour; a few sizes missing (imputed, T01)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(0, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    score = size + pd.Series(color).map({"red": 1.5, "green": 0.0, "blue": -1.5}).to_numpy()
    label = np.where(score > 0.8, "large", np.where(score < -0.8, "small", "medium"))
    size[rng.choice(n, 5, replace=False)] = np.nan
    return pd.DataFrame({"size": size, "weight": rng.normal(10, 2, n), "color": color, "label": label})


@pytest.fixture(scope="module")
def shop_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shop")
    shop_table(300, seed=0).to_csv(folder / "shop.csv", index=False)
    ts_fit(data=str(folder / "shop.csv"), target="label", epochs=8, out=folder / "run", progress=False)
    return folder / "run"


@pytest.fixture
def new_rows(tmp_path: Path) -> pd.DataFrame:
    return shop_table(40, seed=1)


def test_predict_reproduces_the_runs_test_metrics(shop_run: Path) -> None:
    recipe = load_recipe(shop_run / "recipe.yaml")
    loaded = load_data(recipe.data, seed=recipe.train.seed)  # the same held-out rows the run was judged on
    frame = predict(shop_run, loaded.x_test)
    metrics = pd.read_json(shop_run / "metrics.json", typ="series")
    accuracy = float(np.mean(frame["prediction"].to_numpy() == loaded.y_test))
    assert accuracy == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)
    assert accuracy > 0.6  # three classes: chance is ~0.33
    assert list(frame.columns) == ["prediction", "proba_large", "proba_medium", "proba_small"]
    np.testing.assert_allclose(frame.filter(like="proba_").sum(axis=1), 1.0, atol=1e-6)


def test_regression_predictions_are_in_target_units(tmp_path: Path, sales_csv: Path) -> None:
    result = ts_fit(data=str(sales_csv), target="revenue", time="date", epochs=12, out=tmp_path / "r", progress=False)
    loaded = load_data(result.recipe.data, seed=result.recipe.train.seed)
    frame = predict(result.run_dir, loaded.x_test.assign(revenue=loaded.y_test))  # the target column is ignored
    rmse = float(np.sqrt(np.mean((frame["prediction"].to_numpy() - loaded.y_test) ** 2)))
    assert rmse == pytest.approx(result.metrics["test"]["rmse"], rel=1e-4)
    assert abs(frame["prediction"].mean() - loaded.y_test.mean()) < 0.2 * loaded.y_test.std()  # T05 inverted


def test_cli_writes_predictions_for_every_row(shop_run: Path, new_rows: pd.DataFrame, tmp_path: Path) -> None:
    new_rows.to_csv(tmp_path / "new.csv", index=False)
    done = run_cli("predict", str(shop_run), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv"))
    assert done.returncode == 0, done.stderr
    written = pd.read_csv(tmp_path / "p.csv")
    expected = predict(shop_run, new_rows)
    assert len(written) == 40 and written["prediction"].tolist() == expected["prediction"].tolist()
    np.testing.assert_allclose(written["proba_small"], expected["proba_small"], rtol=1e-6)


def test_npz_output_loads_without_pickle(shop_run: Path, new_rows: pd.DataFrame, tmp_path: Path) -> None:
    frame = predict(shop_run, new_rows)
    write_predictions(frame, tmp_path / "p.npz")
    arrays = np.load(tmp_path / "p.npz", allow_pickle=False)
    assert arrays["prediction"].tolist() == frame["prediction"].tolist()
    assert arrays["proba_large"].shape == (40,)


def test_extra_columns_are_ignored_with_a_warning(
    shop_run: Path, new_rows: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    plain = predict(shop_run, new_rows.drop(columns="label"))
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        noisy = predict(shop_run, new_rows.assign(notes="x", store_id=7)[["notes", *new_rows.columns, "store_id"]])
    pd.testing.assert_frame_equal(plain, noisy)
    assert "2 column(s)" in caplog.text and "notes, store_id" in caplog.text
    assert "label" not in caplog.text  # the recipe's target column is expected, not extra


def test_unseen_categories_get_all_zero_one_hot_and_are_counted(
    shop_run: Path, new_rows: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    rows = new_rows.copy()
    rows.loc[[3, 7], "color"] = "purple"
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        frame = predict(shop_run, rows)
    assert "'color': 2 row(s)" in caplog.text and "'purple'" in caplog.text
    run = load_run(shop_run)
    onehot = run.preprocessor.transform_x(rows)[:, -3:]  # the colour block: blue, green, red
    assert onehot[[3, 7]].sum() == 0 and (onehot[[0, 1, 2]].sum(axis=1) == 1).all()
    assert np.isfinite(frame.filter(like="proba_").to_numpy()).all()


def test_image_runs_take_npz_arrays_and_check_their_shape(tmp_path: Path) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = digits.images[:, None].astype(np.float32)  # (N, 1, 8, 8); a 3-D x would be sequences
    np.savez(tmp_path / "digits.npz", x=images[:300], y=digits.target[:300])
    ts_fit(data=str(tmp_path / "digits.npz"), epochs=1, out=tmp_path / "run", progress=False)
    np.savez(tmp_path / "new.npz", x=digits.images[300:350])  # (N, 8, 8) grey images are accepted too
    frame = predict(tmp_path / "run", tmp_path / "new.npz")
    assert len(frame) == 50 and set(frame["prediction"]) <= set(range(10))
    with pytest.raises(BadInput, match=r"expects numbers of shape \(rows, 1, 8, 8\)"):
        predict(tmp_path / "run", digits.images[:5, :7, :7])


def invoke_predict(run: Path, data: Path, out: Path) -> tuple[int, str]:
    result = runner.invoke(app, ["predict", str(run), "--data", str(data), "--out", str(out)])
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("case", "expect"),
    [
        ("no run", "does not exist"),
        ("incomplete run", "not complete"),
        ("missing column", "Missing feature column(s) in"),
        ("text in a numeric column", "Column 'size'"),
        ("npz without x", "lacks the array 'x'"),
        ("unknown output type", "Cannot write predictions"),
    ],
)
def test_bad_input_exits_2_with_the_fix(
    case: str, expect: str, shop_run: Path, new_rows: pd.DataFrame, tmp_path: Path
) -> None:
    run, data, out = shop_run, tmp_path / "new.csv", tmp_path / "p.csv"
    rows = new_rows
    if case == "no run":
        run = tmp_path / "nowhere"
    elif case == "incomplete run":
        run = tmp_path / "partial"
        shutil.copytree(shop_run, run)
        (run / "metrics.json").unlink()  # as if the fit was killed before its end
    elif case == "missing column":
        rows = new_rows.drop(columns=["weight"])
    elif case == "text in a numeric column":
        rows = new_rows.astype({"size": object})
        rows.loc[4, "size"] = "12,5cm"
    elif case == "npz without x":
        data = tmp_path / "new.npz"
        np.savez(data, features=np.zeros((3, 3)))
    else:
        out = tmp_path / "p.xlsx"
    rows.to_csv(tmp_path / "new.csv", index=False)
    code, message = invoke_predict(run, data, out)
    assert code == 2, message
    assert expect in message and "Traceback" not in message
    if case == "incomplete run":
        assert "--resume" in message
    if case == "missing column":
        assert "weight" in message and "size" not in message
    if case == "text in a numeric column":
        assert "'12,5cm'" in message
    assert not out.exists()


def test_batching_does_not_change_predictions_and_bad_options_are_named(shop_run: Path, new_rows: pd.DataFrame) -> None:
    whole = predict(shop_run, new_rows)
    pd.testing.assert_frame_equal(predict(shop_run, new_rows, batch_size=7), whole, rtol=1e-5)  # 6 batches
    with pytest.raises(BadInput, match="'device' parameter of predict must be auto, cpu or cuda"):
        predict(shop_run, new_rows, device="gpu")
    with pytest.raises(BadInput, match="'batch_size' parameter of predict"):
        predict(shop_run, new_rows, batch_size=0)


def test_a_run_of_a_model_object_says_how_to_predict_from_it(tmp_path: Path) -> None:
    from torch import nn

    net = nn.Sequential(nn.Linear(4, 7), nn.ReLU(), nn.Linear(7, 3))  # no built-in family has this shape
    ts_fit(data="iris", epochs=2, model=net, out=tmp_path / "obj", progress=False, report=False)
    with pytest.raises(BadInput, match=r"model object \(ts\.fit or ts\.tune with model=\)"):
        load_run(tmp_path / "obj")
