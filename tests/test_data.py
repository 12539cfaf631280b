"""Data: sources, splits designed for the data (T51), preprocessing fitted on training rows only (T01-T05)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tunesmith.data import load_data
from tunesmith.data.preprocess import Preprocessor
from tunesmith.errors import BadInput
from tunesmith.recipe import DataConfig


def config(**kw: object) -> DataConfig:
    return DataConfig(**kw)  # type: ignore[arg-type]


def test_time_column_gives_time_ordered_splits_and_is_not_a_feature(sales_csv: Path) -> None:
    loaded = load_data(config(source=str(sales_csv), target="revenue", time="date", gap=5), seed=0)
    assert loaded.split == "time"
    assert "date" not in loaded.raw.x.columns  # identifiers are not features unless asked
    time = loaded.raw.time
    fold = loaded.folds[0]
    assert time[fold.train].max() < time[fold.val].min()  # the future never trains
    assert loaded.notes["test_rows"] == 60  # the most recent 20% of 300 rows
    assert len(fold.train) + len(fold.val) + 5 == loaded.notes["dev_rows"]  # the gap rows are dropped


def test_time_as_feature_keeps_the_column(sales_csv: Path) -> None:
    loaded = load_data(config(source=str(sales_csv), target="revenue", time="date", time_as_feature=True), seed=0)
    assert {"date_year", "date_days"} <= set(loaded.raw.x.columns)  # the dates as numbers, never a category
    assert loaded.cfg.dates == ["date"] and "It is the time column too" in loaded.notes["inferred"][0]


def test_shuffled_split_of_time_stamped_rows_is_refused(sales_csv: Path) -> None:
    with pytest.raises(BadInput, match="train on the future"):
        load_data(config(source=str(sales_csv), target="revenue", time="date", split="random"), seed=0)


def test_group_split_keeps_each_group_in_one_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"patient": np.repeat(np.arange(40), 5), "a": rng.normal(size=200), "y": rng.integers(0, 2, 200)}
    )
    path = tmp_path / "g.csv"
    frame.to_csv(path, index=False)
    loaded = load_data(config(source=str(path), target="y", group="patient", cv=4), seed=0)
    groups = loaded.raw.groups
    for fold in loaded.folds:
        assert not set(groups[fold.train]) & set(groups[fold.val])
    with pytest.raises(BadInput, match="one group"):
        load_data(config(source=str(path), target="y", group="patient", split="stratified"), seed=0)


def test_stratified_test_split_keeps_class_shares() -> None:
    loaded = load_data(config(source="breast_cancer"), seed=0)
    share = np.mean(loaded.y_test)
    assert abs(share - np.mean(loaded.raw.y)) < 0.02


def test_preprocessing_statistics_come_from_training_rows_only(sales_csv: Path) -> None:
    loaded = load_data(config(source=str(sales_csv), target="revenue", time="date"), seed=0)
    prep = loaded.prepare(0)
    assert prep.x_train[:, 0].mean() == pytest.approx(0.0, abs=1e-5)  # z-scored on train (T04)
    assert prep.x_train[:, 0].std() == pytest.approx(1.0, abs=1e-3)
    assert abs(prep.x_val[:, 0].mean()) > 1e-4  # val is transformed with train's statistics
    assert prep.y_train.mean() == pytest.approx(0.0, abs=1e-5)  # T05: scaled regression target
    restored = prep.preprocessor.inverse_y(prep.y_train)
    raw_rows = loaded.raw.y[loaded.folds[0].train]
    assert np.allclose(restored[:, 0], raw_rows, atol=1e-3)
    assert prep.x_train.shape[1] == 1 + 3  # price + one-hot region (T02)
    assert np.isfinite(prep.x_train).all()  # the 10 missing prices are imputed (T01)


def test_missing_values_are_refused_when_imputation_is_off(sales_csv: Path) -> None:
    loaded = load_data(config(source=str(sales_csv), target="revenue", impute="none"), seed=0)
    with pytest.raises(BadInput, match="missing or infinite values"):
        loaded.prepare(0)


def test_outlier_clipping_and_duplicates(tmp_path: Path) -> None:
    x = np.r_[np.random.default_rng(0).normal(size=198), [1e6, 1e6]]
    frame = pd.DataFrame({"a": x, "y": np.r_[np.zeros(100), np.ones(100)].astype(int)})
    path = tmp_path / "o.csv"
    frame.to_csv(path, index=False)
    loaded = load_data(config(source=str(path), target="y", outliers="clip", clip_quantile=0.02, test_size=0.1), seed=0)
    assert loaded.notes["duplicates_dropped"] == 1  # the two identical (1e6, 1) rows (T03)
    prep = loaded.prepare(0)
    assert np.abs(prep.x_train).max() < 10  # clipped to training quantiles before scaling


def test_unseen_categories_do_not_crash_and_state_is_plain_json(sales_csv: Path, tmp_path: Path) -> None:
    loaded = load_data(config(source=str(sales_csv), target="revenue", time="date"), seed=0)
    pre = loaded.prepare(0).preprocessor
    pre.save(tmp_path / "p.json")
    again = Preprocessor.load(tmp_path / "p.json")
    new = pd.DataFrame({"price": [5.0], "region": ["mars"]})
    assert again.transform_x(new)[0, 1:].sum() == 0  # an unseen level: all-zero one-hot (T02)


def test_rare_levels_pool_into_other(tmp_path: Path) -> None:
    levels = [f"l{i}" for i in range(30)]
    frame = pd.DataFrame({"c": np.random.default_rng(0).choice(levels, 400), "y": np.arange(400) % 2})
    path = tmp_path / "c.csv"
    frame.to_csv(path, index=False)
    prep = load_data(config(source=str(path), target="y", max_categories=5), seed=0).prepare(0)
    assert prep.x_train.shape[1] == 5  # 4 frequent levels + "other"


def test_numeric_codes_named_categorical_are_one_hot_encoded(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"maker": rng.integers(0, 6, 300), "km": rng.normal(size=300), "y": rng.normal(size=300)})
    path = tmp_path / "cars.csv"
    frame.to_csv(path, index=False)
    as_number = load_data(config(source=str(path), target="y"), seed=0).prepare(0)
    as_codes = load_data(config(source=str(path), target="y", categorical=["maker"]), seed=0).prepare(0)
    assert as_number.x_train.shape[1] == 2 and as_codes.x_train.shape[1] == 7  # 6 makers one-hot + km
    one_hot = as_codes.x_train[:, 1:]  # numeric columns first, then each categorical column's levels
    assert set(np.unique(one_hot)) == {0.0, 1.0} and (one_hot.sum(axis=1) == 1).all()
    with pytest.raises(BadInput, match=r"data\.categorical names 'make'"):
        load_data(config(source=str(path), target="y", categorical=["make"]), seed=0).prepare(0)


def test_npz_with_given_test_split_and_sequences(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "s.npz"
    np.savez(
        path,
        x=rng.normal(size=(100, 16, 3)),
        y=rng.integers(0, 2, 100),
        x_test=rng.normal(size=(20, 16, 3)),
        y_test=rng.integers(0, 2, 20),
    )
    loaded = load_data(config(source=str(path)), seed=0)
    assert loaded.kind == "sequence" and loaded.notes["test_rows"] == 20 and loaded.notes["dev_rows"] == 100
    prep = loaded.prepare(0)
    assert prep.x_train.shape[1:] == (16, 3)
    assert np.allclose(prep.x_train.mean(axis=(0, 1)), 0, atol=1e-5)  # per-channel scaling


def test_image_folder_and_power_of_two_padding(tmp_path: Path) -> None:
    from PIL import Image

    for label in ("cat", "dog"):
        (tmp_path / "imgs" / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(np.full((6, 6), 40 * i, np.uint8)).save(tmp_path / "imgs" / label / f"{i}.png")
    loaded = load_data(config(source=str(tmp_path / "imgs"), pad_pow2=True, test_size=0.25), seed=0)
    assert loaded.kind == "image" and loaded.task == "classification"
    assert loaded.prepare(0).x_train.shape[1:] == (1, 8, 8)  # 6x6 padded to 8x8 (T08)


def test_cv_folds_cover_every_dev_row_once() -> None:
    loaded = load_data(config(source="wine", cv=5), seed=0)
    vals = np.concatenate([f.val for f in loaded.folds])
    assert len(loaded.folds) == 5 and sorted(vals) == list(range(len(loaded.raw)))


def test_task_inference() -> None:
    assert load_data(config(source="diabetes"), seed=0).task == "regression"
    assert load_data(config(source="iris"), seed=0).task == "classification"
