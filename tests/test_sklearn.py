"""scikit-learn estimators: scikit-learn's own contract checks, and real use in Pipeline, GridSearchCV, CV."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from tunesmith.errors import BadInput
from tunesmith.sklearn import NeuralClassifier, NeuralRegressor


# epochs=3 keeps the ~90 checks fast; the defaults (30 epochs, early stopping) are what users get.
@parametrize_with_checks([NeuralClassifier(epochs=3), NeuralRegressor(epochs=3)])
def test_scikit_learn_estimator_checks(estimator: object, check: object) -> None:
    check(estimator)  # type: ignore[operator]


def test_grid_search_in_a_pipeline_tunes_the_knobs() -> None:
    X, y = load_iris(return_X_y=True)
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    pipe = make_pipeline(FunctionTransformer(np.log1p), NeuralClassifier(epochs=15))
    grid = {"neuralclassifier__lr": [1e-3, 1e-2], "neuralclassifier__hidden": [8, 32]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X, labels)
    assert search.best_score_ > 0.8
    best = search.best_estimator_[-1]
    assert best.recipe_.model.width == search.best_params_["neuralclassifier__hidden"]
    assert best.model_.fc.in_features == best.hidden  # the knob reached the built model
    assert set(search.predict(X[:10])) <= set(labels)


def test_cross_val_score_learns_a_real_task() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    scores = cross_val_score(NeuralClassifier(epochs=10), X, y, cv=3)
    assert scores.mean() > 0.9  # a majority guess scores 0.63


def test_regressor_predicts_in_target_units() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = 1000 + 50 * X[:, 0] - 30 * X[:, 1] + rng.normal(0, 5, 400)  # far from zero mean, unit variance (T05)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, random_state=0)
    model = NeuralRegressor(epochs=40).fit(X_tr, y_tr)
    assert model.score(X_te, y_te) > 0.9
    assert abs(model.predict(X_te).mean() - y_te.mean()) < 10
    two = NeuralRegressor(epochs=3).fit(X_tr, np.column_stack([y_tr, -y_tr]))
    assert two.predict(X_te).shape == (100, 2)


def test_knobs_override_the_recipe_and_reach_the_trainer() -> None:
    X, y = load_iris(return_X_y=True)
    model = NeuralClassifier(
        epochs=4, lr=0.02, hidden=16, depth=1, dropout=0.0, recipe={"train.lr": 0.5, "train.weight_decay": 0.0}
    ).fit(X, y)
    train, net = model.recipe_.train, model.recipe_.model
    assert (train.lr, train.weight_decay, train.epochs) == (0.02, 0.0, 4)  # knob beats the recipe dict
    assert (net.width, net.depth, net.dropout) == (16, 1, 0.0)
    assert len(model.history_) == 4 and model.history_["lr"].max() <= 0.02 + 1e-12
    assert model.n_features_in_ == 4 and list(model.classes_) == [0, 1, 2]


def test_missing_values_are_imputed_not_refused() -> None:
    X, y = load_breast_cancer(return_X_y=True)
    X = X.copy()
    X[np.random.default_rng(0).random(X.shape) < 0.1] = np.nan  # 10% of cells missing (T01)
    model = NeuralClassifier(epochs=10).fit(X, y)
    assert model.score(X, y) > 0.85 and np.isfinite(model.predict_proba(X)).all()


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        ({"lr": -1.0}, "'lr' parameter of train"),
        ({"recipe": {"train.lrr": 0.1}}, "Did you mean 'train.lr'"),
        ({"recipe": "fast"}, "'recipe' parameter of NeuralClassifier must be a Recipe or a dict"),
    ],
)
def test_bad_parameters_fail_at_fit_and_name_the_recipe_key(params: dict, expect: str) -> None:
    model = NeuralClassifier(**params)  # __init__ only stores (scikit-learn's contract)
    with pytest.raises(BadInput, match=expect):
        model.fit(np.zeros((10, 2)), np.arange(10) % 2)


# ---- backbone= (issue 13): a pretrained encoder as a knob ---------------------------------------------------
@pytest.mark.parametrize("estimator", [NeuralClassifier, NeuralRegressor])
def test_backbone_is_a_parameter_that_clone_and_set_params_keep(estimator: type, tmp_path: Path) -> None:
    model = estimator(backbone=tmp_path, epochs=2)
    assert model.backbone is tmp_path  # stored as given; checked at fit
    assert model.get_params()["backbone"] is tmp_path and estimator().get_params()["backbone"] is None
    assert clone(model).get_params()["backbone"] == tmp_path
    pipe = make_pipeline(FunctionTransformer(), model)
    pipe.set_params(**{f"{estimator.__name__.lower()}__backbone": "other/dir"})
    assert clone(pipe)[-1].backbone == "other/dir"


@pytest.mark.parametrize(
    ("backbone", "X", "expect"),
    [
        (
            3,
            ["one text", "two texts", "three texts"],
            "'backbone' parameter of NeuralClassifier must be a Hugging Face",
        ),
        ("  ", ["one text", "two texts", "three texts"], "'backbone' parameter of NeuralClassifier must be a Hugging"),
        ("some/dir", np.zeros((3, 2)), "must be None when X is numeric. Got 'some/dir' instead. A pretrained"),
    ],
)
def test_a_bad_backbone_fails_at_fit_naming_the_parameter(backbone: object, X: object, expect: str) -> None:
    with pytest.raises(BadInput, match=re.escape(expect)):
        NeuralClassifier(backbone=backbone).fit(X, np.array([0, 1, 0]))


def test_a_backbone_classifier_fine_tunes_inside_a_pipeline(bert: Path) -> None:
    from tests.textdata import TOPICS, topical

    frame, fresh = topical(90, seed=1, words=(4, 20)), topical(30, seed=2, words=(4, 20))
    pipe = make_pipeline(
        FunctionTransformer(lambda texts: [t.strip().lower() for t in texts]),
        NeuralClassifier(backbone=bert, epochs=2, lr=1e-3),
    )
    pipe.fit(("  " + frame["body"].str.upper()).tolist(), frame["label"].to_numpy())
    clf = pipe[-1]
    assert clf.backbone == bert and clf.recipe_.model.backbone == str(bert)  # the knob, untouched, set the recipe
    assert clf.recipe_.model.family == "backbone" and type(clf.model_).__name__ == "BackboneModel"
    assert set(pipe.predict(fresh["body"].tolist())) <= set(TOPICS)
    assert pipe.predict_proba(fresh["body"].tolist()).shape == (30, 3)
    assert clone(pipe)[-1].get_params() == clf.get_params()  # a fitted pipeline clones to its parameters
