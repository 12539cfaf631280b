"""scikit-learn estimators that train with tunesmith's recipe defaults, preprocessing, model families and Trainer.

`NeuralClassifier` and `NeuralRegressor` follow scikit-learn's contract (style guideline 7): `__init__` only
stores a few keyword-only knobs, `fit` validates X and y with scikit-learn's `validate_data`, builds a Recipe
(defaults < `recipe` < knobs) and trains exactly like `tunesmith fit` does on a table: the Preprocessor
imputes and scales on the training rows only (T01, T04; regression targets T05), the family and its size
come from `resolve` (T07, T10), and `data.val_size` of the rows (20%) is held out for early stopping with
the best epoch's weights restored (T43), like `MLPClassifier(early_stopping=True)`. Nothing is written to
disk. The estimators pass `sklearn.utils.estimator_checks` (tests/test_sklearn.py).

X may also be a sequence of strings: the estimators then train a text model (the `bag` family by default)
with a tokenizer fitted on the training rows (docs/text.md), exactly like `tunesmith fit` on a text column.
`backbone=DIR` (a Hugging Face directory or hub id: `model.backbone`) fine-tunes that pretrained encoder on
them instead, with its own tokenizer and the fine-tuning defaults; like every knob it is only stored by
`__init__` and checked at `fit`, so `clone`, `get_params` and `set_params` treat it as any other parameter.

    from tunesmith.sklearn import NeuralClassifier
    GridSearchCV(NeuralClassifier(epochs=20), {"lr": [1e-3, 3e-3], "hidden": [64, 128]}).fit(X, y)
    make_pipeline(FunctionTransformer(clean), NeuralClassifier(backbone=DIR, epochs=3)).fit(texts, labels)
"""

from __future__ import annotations

import abc
import math
import os
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, validate_data

from tunesmith.data import LoadedData, RawData
from tunesmith.data.splits import dev_folds
from tunesmith.errors import BadInput, must_be
from tunesmith.prediction import forward
from tunesmith.recipe import Recipe, resolve_data
from tunesmith.runsetup import RunSetup
from tunesmith.train.callbacks import Progress
from tunesmith.train.losses import outputs_to_predictions

__all__ = ["NeuralClassifier", "NeuralRegressor"]

# The knobs and the recipe keys they set; a knob left at None keeps the recipe's (task-aware) value.
KNOBS = {
    "epochs": "train.epochs",
    "lr": "train.lr",
    "batch_size": "train.batch_size",
    "hidden": "model.width",
    "depth": "model.depth",
    "dropout": "model.dropout",
    "seed": "train.seed",
}


E = TypeVar("E", bound="_NeuralEstimator")


class _NeuralEstimator(BaseEstimator, abc.ABC):
    """Shared fit/predict plumbing; subclasses name the task and turn model outputs into predictions."""

    _task: ClassVar[str]

    def __init__(
        self,
        *,
        epochs: int | None = None,
        lr: float | None = None,
        batch_size: int | None = None,
        hidden: int | None = None,
        depth: int | None = None,
        dropout: float | None = None,
        seed: int | None = None,
        backbone: str | os.PathLike[str] | None = None,
        recipe: Recipe | dict[str, Any] | None = None,
        verbose: bool = False,
    ) -> None:
        self.epochs = epochs  # None: the recipe's (30 with early stopping, T43; 10 fine-tuning a backbone)
        self.lr = lr  # None: 1e-3 for AdamW (T31)
        self.batch_size = batch_size  # None: from the training rows (T07)
        self.hidden = hidden  # model.width; None: 256 units
        self.depth = depth  # model.depth; None: 2 hidden layers, 0: the linear model
        self.dropout = dropout  # model.dropout; None: 0.1 (T15)
        self.seed = seed  # train.seed; None: 0. Seeds Python, NumPy and torch at fit (T50)
        self.backbone = backbone  # model.backbone: a Hugging Face directory or hub id to fine-tune on text X (T30-T31)
        self.recipe = recipe  # a Recipe, or dotted overrides {"train.weight_decay": 1e-3, "data.val_size": 0.1}
        self.verbose = verbose  # a progress bar on a terminal

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # T01: the Preprocessor imputes missing values with training medians
        return tags

    def fit(self: E, X: Any, y: Any) -> E:
        """Train on (X, y), holding out `data.val_size` of the rows for early stopping. Returns self.

        X: a numeric array (N, F), or a sequence of N strings: text, tokenized on the training rows (docs/text.md).
        """
        regression = self._task == "regression"
        self.kind_ = "text" if _is_text(X) else "tabular"
        if self.kind_ == "text":
            X = np.asarray(X, dtype=object)
            y = np.asarray(y)
            y = y.astype(np.float32) if regression else y
            check_consistent_length(X, y)
        else:
            X, y = validate_data(
                self,
                X,
                y,
                dtype=np.float32,
                ensure_all_finite="allow-nan",
                multi_output=regression,
                y_numeric=regression,
            )
        classes = self._check_targets(y)
        recipe = self._recipe(self.kind_)
        name = type(self).__name__
        if len(X) < 3:
            raise BadInput(f"{name} needs at least 3 samples (2 to train on, 1 to validate); got {_count(len(X))}.")
        split = "stratified" if classes is not None and _can_stratify(y, recipe.data.val_size) else "random"
        text = "text" if self.kind_ == "text" else None
        cfg = resolve_data(
            recipe.data.model_copy(update={"cv": 0}), task=self._task, kind=self.kind_, split=split, text=text
        )
        folds = dev_folds(
            split,
            np.arange(len(X)),
            y=y if split == "stratified" else None,
            time=None,
            groups=None,
            cfg=cfg,
            seed=recipe.train.seed,
        )
        columns = ["text"] if self.kind_ == "text" else [f"x{i}" for i in range(X.shape[1])]
        raw = RawData(name, pd.DataFrame(X.reshape(len(X), -1), columns=columns), y, self.kind_)
        loaded = LoadedData(
            raw, self._task, self.kind_, split, folds, None, None, classes, cfg, backbone=recipe.model.backbone
        )
        setup = RunSetup.build(recipe, loaded=loaded)
        trainer = setup.trainer(setup.new_model(), callbacks=[Progress(name)] if self.verbose else [])
        trainer.fit(setup.train, setup.val)
        self.model_ = trainer.model.double().eval()  # float64 predictions do not depend on the batch size
        self.preprocessor_ = setup.prep.preprocessor
        self.recipe_ = setup.recipe
        self.history_ = trainer.history_frame()
        return self

    @abc.abstractmethod
    def _check_targets(self, y: np.ndarray) -> list[Any] | None:
        """The sorted class labels (classification) or None; sets the target's fitted attributes."""

    def _recipe(self, kind: str) -> Recipe:
        name = type(self).__name__
        if isinstance(self.recipe, Recipe):
            base = self.recipe
        elif self.recipe is None or isinstance(self.recipe, dict):
            base = Recipe()
        else:
            raise BadInput(must_be("recipe", name, "a Recipe or a dict of dotted overrides", self.recipe))
        knobs = {key: getattr(self, knob) for knob, key in KNOBS.items() if getattr(self, knob) is not None}
        if self.backbone is not None:
            knobs["model.backbone"] = self._backbone(kind)
        overrides = {**(self.recipe if isinstance(self.recipe, dict) else {}), **knobs}
        try:
            return base.with_overrides({**overrides, "data.task": self._task, "data.kind": kind})
        except BadInput as exc:
            mapping = ", ".join(f"{knob} is {key}" for knob, key in KNOBS.items())
            raise BadInput(f"{name}: {exc} (the knobs set recipe keys: {mapping}).") from None

    def _backbone(self, kind: str) -> str:
        """The `backbone` knob as model.backbone: a str or path, and only for text X (a backbone reads token ids)."""
        name = type(self).__name__
        if not isinstance(self.backbone, str | os.PathLike) or not str(self.backbone).strip():
            allowed = "a Hugging Face model directory or hub id (a str or a path), or None"
            raise BadInput(must_be("backbone", name, allowed, self.backbone))
        if kind != "text":
            raise BadInput(
                must_be("backbone", name, "None when X is numeric", str(self.backbone))
                + " A pretrained backbone encodes text: pass X as a sequence of strings, or leave backbone=None."
            )
        return os.fspath(self.backbone)

    def _outputs(self, X: Any) -> np.ndarray:
        """Model outputs for X: (N, n_outputs) float64."""
        check_is_fitted(self)
        if self.kind_ == "text":
            if not _is_text(X):
                raise BadInput(f"{type(self).__name__} was fitted on text: X must be a sequence of strings.")
            return forward(self.model_, self.preprocessor_.transform_x(list(X)))
        X = validate_data(self, X, dtype=np.float32, ensure_all_finite="allow-nan", reset=False)
        return forward(self.model_, self.preprocessor_.transform_x(X))


class NeuralClassifier(ClassifierMixin, _NeuralEstimator):
    """A tunesmith MLP classifier (one logit for two classes, softmax otherwise; T12) with the recipe defaults;
    on text X a text model, or the pretrained `backbone` fine-tuned.

    Fitted attributes: classes_, n_features_in_, model_ (the nn.Module), preprocessor_, recipe_ (resolved),
    history_ (one row per epoch, as history.csv).
    """

    _task = "classification"

    def _check_targets(self, y: np.ndarray) -> list[Any] | None:
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise BadInput(f"NeuralClassifier needs at least 2 classes in y; got 1 class ({self.classes_[0]!r}).")
        return self.classes_.tolist()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of classes_."""
        _, proba = outputs_to_predictions("classification", self._outputs(X))
        assert proba is not None  # always set for classification
        return proba

    def predict(self, X: Any) -> np.ndarray:
        proba = self.predict_proba(X)  # checks fitted state first
        return self.classes_[proba.argmax(axis=1)]


class NeuralRegressor(RegressorMixin, _NeuralEstimator):
    """A tunesmith MLP regressor (MSE on z-scored targets, T05, T12) with the recipe defaults; y may be (N, K).
    On text X a text model, or the pretrained `backbone` fine-tuned.

    Fitted attributes: n_features_in_, model_ (the nn.Module), preprocessor_, recipe_ (resolved), history_.
    """

    _task = "regression"

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True  # the Preprocessor scales each target column; one output per column
        return tags

    def _check_targets(self, y: np.ndarray) -> list[Any] | None:
        self._flat = y.ndim == 1  # predict returns (N,) for a 1-D y, (N, K) otherwise
        return None

    def predict(self, X: Any) -> np.ndarray:
        values = self._outputs(X)
        values = self.preprocessor_.inverse_y(values)  # target units (T05)
        return values.ravel() if self._flat else values


def _is_text(X: Any) -> bool:
    """A list, array or Series of strings (one text per sample): the estimators train a text model on it."""
    if isinstance(X, str) or not hasattr(X, "__len__") or hasattr(X, "columns"):
        return False
    values = np.asarray(X, dtype=object)
    return values.ndim == 1 and len(values) > 0 and all(isinstance(v, str) for v in values)


def _can_stratify(y: np.ndarray, size: float) -> bool:
    """Whether a stratified hold-out of `size` is possible: every class twice, room for each class on both sides."""
    _, counts = np.unique(y, return_counts=True)
    n_val = math.ceil(size * len(y))  # scikit-learn's rounding of a fractional test_size
    return bool(counts.min() >= 2 and len(counts) <= min(n_val, len(y) - n_val))


def _count(n: int) -> str:
    return f"{n} sample" if n == 1 else f"{n} samples"
