"""The one run setup and the Trainer's public step: every caller trains what `fit` trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tunesmith.fitting import fit
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup, SetupCache
from tunesmith.train.trainer import probe_trainer

FAST = {"train.epochs": 3, "model.width": 16, "model.depth": 1}


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_a_setup_trains_exactly_what_fit_trains(tmp_path: Path) -> None:
    recipe = make_recipe(data="wine", overrides=FAST)
    setup = RunSetup.build(recipe)
    assert setup.recipe.model.family == "mlp" and setup.recipe.train.lr is not None  # resolved
    assert setup.given.model.family == "auto"  # what the caller gave, for overrides to resolve afresh
    assert same(weights(setup.new_model()), weights(setup.new_model()))  # seeded: the same start twice
    trainer = setup.trainer(setup.new_model())
    history = trainer.fit(setup.train, setup.val)
    result = fit(recipe, out=tmp_path / "run", progress=False, report=False)
    ours = [(r["train_loss"], r["val_loss"]) for r in history]
    assert ours == list(zip(result.history["train_loss"], result.history["val_loss"], strict=True))


def test_overrides_resolve_afresh_on_the_same_data() -> None:
    setup = RunSetup.build(make_recipe(data="wine", overrides=FAST))
    sgd = setup.with_overrides({"train.optimizer": "sgd"})
    assert sgd.prep is setup.prep  # the same arrays, not reloaded
    assert sgd.recipe.train.lr == 1e-2 and setup.recipe.train.lr == 1e-3  # T31: sgd's default LR, not adamw's


def test_folds_share_the_recipe_and_refit_their_preprocessing() -> None:
    setup = RunSetup.build(make_recipe(data="wine", overrides={**FAST, "data.cv": 3}))
    second = setup.for_fold(1)
    assert second.fold == 1 and second.recipe == setup.recipe
    assert not np.array_equal(second.prep.y_val, setup.prep.y_val)  # other validation rows
    assert setup.for_fold(0) is setup


def test_the_user_model_is_copied_and_the_cache_loads_data_once() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(13, 3))
    before = weights(net)
    cache = SetupCache(net)
    first = cache.get(make_recipe(data="wine", overrides=FAST))
    other = cache.get(make_recipe(data="wine", overrides={**FAST, "train.lr": 0.05}))
    assert other.prep is first.prep and other.recipe.train.lr == 0.05  # one load, two recipes
    trained = first.trainer(first.new_model())
    trained.fit(first.train, first.val)
    assert trained.model is not net and same(weights(net), before)  # trials train copies


def test_driving_train_step_by_hand_is_fits_epoch_loop() -> None:
    """The public step is the loop's step: start + train_step over one epoch's batches gives the
    weights one epoch of fit gives, with gradient accumulation (T33) and augmentation (T15) on."""
    overrides = {
        **FAST,
        "train.epochs": 1,
        "train.batch_size": 16,
        "train.effective_batch_size": 32,
        "data.augment.ops": ["noise"],
        "data.augment.strength": 0.5,
    }
    setup = RunSetup.build(make_recipe(data="wine", overrides=overrides))
    by_fit = setup.trainer(setup.new_model())
    by_fit.fit(setup.train)
    by_hand = setup.trainer(setup.new_model())
    batches = by_hand.batches(setup.train, train=True)
    by_hand.start(len(batches))
    by_hand.model.train()
    losses = [by_hand.train_step(xb, yb, last=i + 1 == len(batches)) for i, (xb, yb) in enumerate(batches)]
    assert len(losses) > 2 and not any(loss.requires_grad for loss in losses)
    assert same(weights(by_hand.model), weights(by_fit.model))
    assert by_fit.history[0]["train_loss"] == float(torch.stack(losses).mean())


def test_a_probe_steps_once_per_call_at_the_lr_it_is_set_to() -> None:
    setup = RunSetup.build(make_recipe(data="wine", overrides={**FAST, "train.effective_batch_size": 256}))
    probe = probe_trainer(setup.new_model(), setup.recipe.train, task="classification")
    assert probe.accumulate == 1  # probes measure one optimizer step per batch
    steps = []
    probe.optimizer.register_step_post_hook(lambda *_: steps.append(probe.optimizer.param_groups[0]["lr"]))
    xb, yb = (torch.as_tensor(a[:32]) for a in setup.train)
    for lr in (0.01, 0.02, 0.04):  # the LR range test's way: set the LR, take one step
        for group in probe.optimizer.param_groups:
            group["lr"] = lr
        probe.train_step(xb.float(), yb)
    probe.train_step(xb.float(), yb)
    # every call stepped at the LR it was given; the constant schedule then holds the recipe's LR
    assert steps == [0.01, 0.02, 0.04, setup.recipe.train.lr]
