"""The run setup: what every training run starts from, built in one place.

    setup = RunSetup.build(recipe)          # load -> split -> prepare fold 0 -> resolve
    trainer = setup.trainer(setup.new_model(), callbacks=[...])
    trainer.fit(setup.train, setup.val)

`fit` (each fold), every tuning trial, the refit, the prechecks, the LR range test, the doctor
and the scikit-learn estimators all start here, so they train the same model on the same arrays
with the same augmentation. `new_model()` seeds every RNG first (T50): two setups of one recipe
give the same starting weights. A user's own nn.Module rides along as `user_model` and is only
ever copied. `SetupCache` serves the setups of a study, loading each data configuration once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import nn

from tunesmith.data import LoadedData, Prepared, load_data
from tunesmith.data.augment import Augment, make_augment
from tunesmith.models import fresh_model
from tunesmith.recipe import DataFacts, Recipe, resolve
from tunesmith.repro import seed_everything
from tunesmith.train.callbacks import Callback
from tunesmith.train.losses import LossFn
from tunesmith.train.trainer import Trainer

__all__ = ["RunSetup", "SetupCache"]


@dataclass(frozen=True)
class RunSetup:
    """One fold's model-ready data, the recipe resolved against them, and the user's model (if any)."""

    given: Recipe  # as the caller gave it ("auto" left in: overrides resolve afresh)
    recipe: Recipe  # resolved against fold 0's facts (every fold of a run trains the same recipe)
    loaded: LoadedData
    prep: Prepared
    fold: int = 0
    user_model: nn.Module | None = None
    embeddings: Path | None = None  # where a backbone's linear probe caches its embeddings (train/probe.py)

    @classmethod
    def build(
        cls,
        recipe: Recipe,
        *,
        user_model: nn.Module | None = None,
        loaded: LoadedData | None = None,
        embeddings: Path | None = None,
    ) -> RunSetup:
        """Load `recipe`'s data (unless `loaded` is given), prepare fold 0 and resolve the recipe; `embeddings`:
        the folder of the run (or study) where a linear probe caches a backbone's embeddings."""
        loaded = (
            loaded
            if loaded is not None
            else load_data(recipe.data, seed=recipe.train.seed, backbone=recipe.model.backbone)
        )
        prep = loaded.prepare(0)
        return cls(recipe, resolve(recipe, prep.facts), loaded, prep, 0, user_model, embeddings)

    def for_fold(self, fold: int) -> RunSetup:
        """The same run on another cross-validation fold (preprocessing refitted on its training rows)."""
        return self if fold == self.fold else replace(self, prep=self.loaded.prepare(fold), fold=fold)

    def with_recipe(self, recipe: Recipe) -> RunSetup:
        """Another recipe on the same data (its data section must prepare the same arrays)."""
        return replace(self, given=recipe, recipe=resolve(recipe, self.prep.facts))

    def with_overrides(self, overrides: dict[str, Any]) -> RunSetup:
        """The given recipe with `overrides` (dotted keys), resolved afresh, on the same data."""
        return self.with_recipe(self.given.with_overrides(overrides))

    @property
    def facts(self) -> DataFacts:
        return self.prep.facts

    @property
    def train(self) -> tuple[Any, Any]:
        return self.prep.x_train, self.prep.y_train

    @property
    def val(self) -> tuple[Any, Any]:
        return self.prep.x_val, self.prep.y_val

    def new_model(self) -> nn.Module:
        """Seed every RNG (T50), then a fresh model: a copy of the user's, or the recipe's family."""
        seed_everything(self.recipe.train.seed, deterministic=self.recipe.train.deterministic)
        return fresh_model(self.recipe.model, self.facts, self.user_model)

    def augment(self) -> Augment | None:
        """The recipe's training-batch augmentation for these data (T06, T15-T17), or None."""
        classes = self.prep.preprocessor.classes or []
        return make_augment(
            self.recipe.data.augment, kind=self.facts.kind, task=self.facts.task, n_classes=len(classes)
        )

    def trainer(
        self,
        model: nn.Module,
        *,
        callbacks: Sequence[Callback] = (),
        augment: bool = True,
        loss_fn: nn.Module | LossFn | None = None,
    ) -> Trainer:
        """A Trainer for `model` with the recipe's train section; regression metrics in target units (T05)."""
        task = self.facts.task
        return Trainer(
            model,
            cfg=self.recipe.train,
            task=task,
            loss_fn=loss_fn,
            augment=self.augment() if augment else None,
            callbacks=callbacks,  # the Trainer adds EarlyStopping (T43) itself
            target_inverse=self.prep.preprocessor.inverse_y if task == "regression" else None,
            embeddings=self.embeddings,
        )


class SetupCache:
    """The setups of many recipes over one user model: each data configuration is loaded, and each of its
    folds prepared, once (trials that change only model or train sections share them)."""

    def __init__(self, user_model: nn.Module | None = None, *, embeddings: Path | None = None) -> None:
        self.user_model, self.embeddings = user_model, embeddings
        self._setups: dict[str, RunSetup] = {}
        self._folds: dict[tuple[str, int], Prepared] = {}

    def get(self, recipe: Recipe, *, fold: int = 0) -> RunSetup:
        """`recipe`'s setup on `fold` (its recipe resolved against fold 0, as `RunSetup.for_fold` keeps it)."""
        key = recipe.data.model_dump_json(exclude={"augment"}) + f"|{recipe.train.seed}|{recipe.model.backbone}"
        if key not in self._setups:
            self._setups[key] = RunSetup.build(recipe, user_model=self.user_model, embeddings=self.embeddings)
        setup = self._setups[key].with_recipe(recipe)
        if fold == 0:
            return setup
        if (key, fold) not in self._folds:
            self._folds[(key, fold)] = setup.loaded.prepare(fold)
        return replace(setup, prep=self._folds[(key, fold)], fold=fold)
