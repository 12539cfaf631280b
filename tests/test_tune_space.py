"""Search space, samplers/pruners and the playbook's stage logic (T52, T53): fast, no training."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tunesmith.errors import BadInput
from tunesmith.recipe import DataFacts, Recipe, load_recipe, resolve
from tunesmith.tuneconfig import ParamSpec, TuneConfig
from tunesmith.tuning.playbook import (
    REGULARIZATION_OFF,
    Criteria,
    decide,
    incumbent,
    narrow,
    plan_stages,
    refit_epochs,
    stage_of,
    suggested_lr,
)
from tunesmith.tuning.samplers import StagedSampler, create_pruner, create_sampler, rungs
from tunesmith.tuning.space import ambiguous_kind, check_space, default_space

IMAGES = DataFacts(task="classification", kind="image", n_train=1000, input_shape=(1, 8, 8), n_outputs=10)
TABLE = DataFacts(task="classification", kind="tabular", n_train=100, input_shape=(4,), n_outputs=3)


def test_default_space_follows_the_family() -> None:
    cnn = default_space(resolve(Recipe(), IMAGES), IMAGES)
    mlp = default_space(resolve(Recipe(), TABLE), TABLE)
    assert cnn["model.width"].choices == [16, 32, 64] and mlp["model.width"].choices == [64, 128, 256, 512]
    assert cnn["model.depth"].high == 3 and mlp["model.depth"].high == 4  # 8x8 maps: three 2x2 poolings (T16)
    assert "data.augment.strength" in cnn and "data.augment.strength" not in mlp  # T06: images only
    assert mlp["train.batch_size"].choices == [16]  # 100 rows: >= 4 steps an epoch (T07)
    assert cnn["train.lr"].log and cnn["train.lr"].low == 1e-4
    check_space(cnn)
    check_space(mlp)


def test_space_keys_are_checked_against_the_recipe() -> None:
    with pytest.raises(BadInput, match=r"Did you mean 'model.width'\?"):
        check_space({"model.widht": ParamSpec(type="int", low=8, high=64)})
    with pytest.raises(BadInput, match=r"model\.dropout.*less than 1"):
        check_space({"model.dropout": ParamSpec(type="float", low=0.0, high=1.5)})
    with pytest.raises(BadInput, match="empty"):
        check_space({})
    with pytest.raises(BadInput, match="cannot be searched"):
        check_space({"tune.trials": ParamSpec(type="int", low=1, high=3)})


def test_bad_ranges_name_the_key_and_the_fix() -> None:
    with pytest.raises(BadInput, match=r"'train.lr' parameter of tune.space .*unknown key 'lo', did you mean 'low'"):
        load_recipe(None, {"tune.space": {"train.lr": {"type": "float", "lo": 1e-4, "high": 1e-2}}})
    with pytest.raises(BadInput, match="log-scaled range with low > 0"):
        load_recipe(None, {"tune.space": {"train.lr": {"type": "float", "low": 0, "high": 1, "log": True}}})
    with pytest.raises(BadInput, match="grace_period"):
        load_recipe(None, {"tune.grace_period": 2, "tune.heartbeat_interval": 5})


def test_param_spec_grid_and_position() -> None:
    lr = ParamSpec(type="float", low=1e-4, high=1e-2, log=True)
    assert lr.grid(3) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert lr.position(1e-3) == pytest.approx(0.5)
    assert ParamSpec(type="int", low=1, high=4).grid(3) == [1, 2, 4]
    assert ParamSpec(type="categorical", choices=[16, 32, 64]).position(64) == 1.0
    assert ParamSpec(type="categorical", choices=["relu", "gelu"]).position("gelu") is None


def test_unknown_sampler_or_pruner_suggests_the_closest() -> None:
    with pytest.raises(BadInput, match=r"Did you mean 'tpe'\?"):
        create_sampler("tpee", seed=0, space={})
    with pytest.raises(BadInput, match=r"Did you mean 'hyperband'\?"):
        create_pruner("hyperbnd", epochs=10)
    for name in ("grid", "random", "tpe", "gp", "qmc"):
        assert isinstance(
            create_sampler(name, seed=0, space={"x": ParamSpec(type="int", low=1, high=3)}), optuna.samplers.BaseSampler
        )
    assert "rungs at epochs 5, 15" in rungs("successive_halving", epochs=20)


def test_staged_plan_splits_keys_and_budget() -> None:
    space = default_space(resolve(Recipe(), IMAGES), IMAGES)
    stages = plan_stages(space, TuneConfig(trials=20), trials=20)
    assert [s.name for s in stages] == ["capacity", "lr", "regularization"]
    assert sum(s.trials for s in stages) == 20
    assert set(stages[0].space) == {"model.width", "model.depth", "model.activation", "model.norm", "train.lr"}
    assert stages[0].space["train.lr"] == stages[1].space["train.lr"]  # the LR: a nuisance of capacity, then tuned
    assert stages[0].fixed["model.dropout"] == 0.0 and stages[0].fixed["train.early_stopping.patience"] is None
    assert "model.dropout" not in stages[1].fixed  # only the capacity stage turns regularization off (T40)
    assert stage_of("data.augment.strength") == "regularization" and stage_of("train.batch_size") == "lr"
    assert all(1 <= s.explore < s.trials for s in stages)
    with pytest.raises(BadInput, match="fewer than the 3 stages"):
        plan_stages(space, TuneConfig(), trials=2)
    flat = plan_stages(space, TuneConfig(strategy="flat"), trials=7)
    assert len(flat) == 1 and flat[0].trials == 7 and flat[0].space == space


def _trial(
    number: int, value: float, params: dict, *, train_loss: float = 0.01, epochs: int = 10, n_params: int = 1000
) -> optuna.trial.FrozenTrial:
    dists = {
        k: IntDistribution(1, 512) if isinstance(v, int) else FloatDistribution(1e-6, 1.0, log=True)
        for k, v in params.items()
    }
    curve = {e: value - 0.01 * (epochs - e) for e in range(1, epochs + 1)}  # still improving at the end
    t = create_trial(
        state=TrialState.COMPLETE,
        value=value,
        params=params,
        distributions=dists,
        user_attrs={"train_loss": train_loss, "n_params": n_params},
        intermediate_values=curve,
    )
    t.number = number
    return t


def test_capacity_winner_must_fit_and_shrinks_later() -> None:
    space = {
        "model.width": ParamSpec(type="int", low=16, high=256),
        "model.depth": ParamSpec(type="int", low=1, high=4),
    }
    stage = plan_stages(space, TuneConfig(trials=3), trials=3)[0]
    trials = [
        _trial(0, 0.95, {"model.width": 256, "model.depth": 4}, train_loss=0.5, n_params=9000),  # does not fit
        _trial(1, 0.90, {"model.width": 128, "model.depth": 3}, train_loss=0.05, n_params=5000),
        _trial(2, 0.89, {"model.width": 64, "model.depth": 2}, train_loss=0.05, n_params=2000),
        _trial(3, 0.80, {"model.width": 32, "model.depth": 1}, train_loss=0.02, n_params=500),
    ]
    out = decide(stage, space, trials, Criteria(maximize=True, fit_below=0.1, epochs=10, val_rows=400))
    # T40: only models that fit; T22: 0.89 is within one standard error (0.015) of 0.90, and smaller
    assert out.params == {"model.width": 64, "model.depth": 2}
    assert out.evidence["fit"]["fitting_trials"] == [1, 2, 3] and out.evidence["fit"]["within_one_se"] == [1, 2]
    assert any("still improving" in w for w in out.evidence["warnings"])
    exact = decide(stage, space, trials, Criteria(maximize=True, fit_below=0.1, epochs=10))  # no SE: the best
    assert exact.params == {"model.width": 128, "model.depth": 3}
    reg = plan_stages({**space, "model.dropout": ParamSpec(type="float", low=0, high=0.5)}, TuneConfig(), trials=3)[-1]
    assert reg.name == "regularization"
    shrunk = reg.kind.search_space(reg.space, [out], {})
    assert shrunk["model.width"].high == 64 and shrunk["model.depth"].high == 2  # T44: never larger
    assert reg.kind.search_space(reg.space, [], {}) == reg.space  # no capacity winner: nothing to shrink below


def test_boundary_and_divergence_checks() -> None:
    space = {"train.lr": ParamSpec(type="float", low=1e-4, high=1e-1, log=True)}
    stage = plan_stages(space, TuneConfig(strategy="flat"), trials=4)[0]
    trials = [_trial(i, 0.5 + 0.1 * i, {"train.lr": lr}) for i, lr in enumerate([1e-4, 1e-3, 1e-2, 0.09])]
    diverged = create_trial(state=TrialState.COMPLETE, value=0.0, user_attrs={"diverged": {"reason": "nan"}})
    diverged.number = 4
    out = decide(stage, space, [*trials, diverged], Criteria(maximize=True, fit_below=math.inf, epochs=10))
    assert out.params == {"train.lr": 0.09}
    assert out.evidence["boundary"] == [{"key": "train.lr", "value": 0.09, "edge": "upper"}]
    assert out.evidence["diverged"] == 1 and out.evidence["divergent_share"] == 0.2
    assert "widen the range" in out.decision


def test_a_winner_still_improving_is_refit_longer() -> None:
    """The "train longer" check, acted on: trials are short for the search's sake, the final model is not."""
    improving = _trial(0, 0.95, {"train.lr": 0.01})  # its curve peaks at its last epoch
    improving.user_attrs["overrides"] = {"train.epochs": 10}
    epochs, why = refit_epochs(improving, maximize=True)
    assert epochs == 20 and "still improving" in why
    peaked = _trial(1, 0.95, {"train.lr": 0.01})
    peaked.intermediate_values = {e: 0.95 - 0.01 * abs(e - 4) for e in range(1, 11)}  # best at epoch 4 of 10
    peaked.user_attrs["overrides"] = {"train.epochs": 10}
    assert refit_epochs(peaked, maximize=True) == (10, "the winner's validation curve peaked at epoch 4 of 10")


def test_prechecks_narrow_the_lr_stage() -> None:
    space = {
        "train.lr": ParamSpec(type="float", low=1e-4, high=3e-2, log=True),
        "train.batch_size": ParamSpec(type="categorical", choices=[32, 64, 128, 256]),
    }
    agree = {"lr_find": {"suggestion": 1e-3, "agree": True}, "batch_size": {"batch_size": 64}}
    narrowed = narrow(space, agree)
    assert (narrowed["train.lr"].low, narrowed["train.lr"].high) == pytest.approx((1e-4, 1e-2))
    assert narrowed["train.batch_size"].choices == [32, 64]
    disagree = narrow(space, {"lr_find": {"suggestion": 1e-3, "agree": False}})
    assert disagree["train.lr"] == space["train.lr"]  # no clear valley: keep the declared range


def test_an_agreed_lr_suggestion_is_the_lr_stages_baseline() -> None:
    """T31: when the range test's rules agree, the lr stage's first trial uses the suggestion, not the recipe's lr."""
    space = {"train.lr": ParamSpec(type="float", low=1e-4, high=3e-2, log=True)}
    assert suggested_lr(space, {"lr_find": {"suggestion": 4e-3, "agree": True}}) == {"train.lr": 4e-3}
    assert suggested_lr(space, {"lr_find": {"suggestion": 4e-3, "agree": False}}) == {}
    assert suggested_lr(space, {"lr_find": {"suggestion": 0.5, "agree": True}}) == {}  # outside the space
    assert suggested_lr(space, {}) == {}  # not measured (flat search, or no lr stage)


def test_staged_sampler_depends_only_on_history() -> None:
    """Two fresh samplers on the same history suggest the same point: what resume relies on."""
    space = {"x": ParamSpec(type="float", low=0.0, high=1.0), "c": ParamSpec(type="categorical", choices=["a", "b"])}

    def run(n: int) -> list[tuple[float, str]]:
        study = optuna.create_study(sampler=StagedSampler(exploit="tpe", seed=3, space=space, explore=2))
        for _ in range(n):
            trial = study.ask()
            x, c = (spec.suggest(trial, k) for k, spec in space.items())
            study.tell(trial, (x - 0.3) ** 2 + (c == "b"))
        return [(t.params["x"], t.params["c"]) for t in study.trials]

    first = run(5)
    again = run(5)
    assert first == again
    assert len({p for p in first}) == 5


def test_regularization_off_matches_recipe_fields() -> None:
    load_recipe(None, REGULARIZATION_OFF)  # every key is a real recipe field with a valid value


def test_an_ambiguous_kind_makes_the_family_a_capacity_choice() -> None:
    """T10: a wide unnamed array may be features or 1-D signals: the capacity stage tries both families."""
    wide = DataFacts(task="classification", kind="tabular", n_train=500, input_shape=(64,), n_outputs=2)
    recipe = Recipe().with_overrides({"data.source": "signals.npz"})
    assert ambiguous_kind(recipe, wide)
    assert not ambiguous_kind(recipe.with_overrides({"model.family": "mlp"}), wide)  # the recipe says which
    assert not ambiguous_kind(Recipe().with_overrides({"data.source": "table.csv"}), wide)
    space = default_space(resolve(recipe, wide), wide, ambiguous=True)
    assert space["model.family"].choices == ["mlp", "cnn"] and space["model.width"].choices == [32, 64, 128]
    capacity = plan_stages(space, TuneConfig(), trials=9)[0]
    assert "model.family" in capacity.space


def test_incumbent_keeps_the_current_values_the_space_admits() -> None:
    space = {
        "model.width": ParamSpec(type="categorical", choices=[32, 64, 128]),
        "model.depth": ParamSpec(type="int", low=1, high=3),
        "train.lr": ParamSpec(type="float", low=1e-4, high=1e-2, log=True),
        "train.weight_decay": ParamSpec(type="float", low=1e-6, high=1e-2, log=True),
        "model.activation": ParamSpec(type="categorical", choices=["relu", "gelu"]),
    }
    current = {"model.width": 64, "model.depth": 5, "train.lr": 1e-3, "train.weight_decay": 0.0, "model.norm": "batch"}
    # depth 5 and weight decay 0 lie outside their ranges, activation has no current value: the sampler draws them
    assert incumbent(space, current) == {"model.width": 64, "train.lr": 1e-3}
    assert incumbent(space, {"model.width": True, "train.lr": "1e-3"}) == {}  # a bool or a string is no number
