"""Search space, samplers/pruners and the playbook's stage logic (T52, T53): fast, no training."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from tunesmith.data import load_data
from tunesmith.errors import BadInput
from tunesmith.models import build_model
from tunesmith.recipe import DataConfig, DataFacts, Recipe, SeriesFacts, load_recipe, resolve
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
from tunesmith.tuning.samplers import AmongPeers, StagedSampler, create_pruner, create_sampler, rungs
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


def test_a_trial_is_pruned_against_its_own_family_only() -> None:
    """Where the family is a choice, a slow-starting recurrent trial is judged against recurrent trials, not
    against linear models that converge within a few epochs (the median over both cuts it at the first rung)."""
    study = optuna.create_study(direction="minimize")
    dist = {"model.family": CategoricalDistribution(["mlp", "rnn"]), "model.depth": IntDistribution(0, 3)}

    def add(family: str, depth: int, curve: list[float], state: TrialState = TrialState.COMPLETE) -> None:
        values = {step: v for step, v in enumerate(curve, 1)}
        value = min(curve) if state == TrialState.COMPLETE else None
        params = {"model.family": family, "model.depth": depth}
        study.add_trial(
            create_trial(params=params, distributions=dist, value=value, intermediate_values=values, state=state)
        )

    for _ in range(3):  # linear models: converged by epoch 2
        add("mlp", 0, [0.50, 0.45, 0.45, 0.45, 0.45, 0.45])
    add("rnn", 1, [0.90, 0.80, 0.70, 0.60, 0.55, 0.52], TrialState.RUNNING)
    slow = study.get_trials()[-1]
    inner = create_pruner("median", epochs=20)  # warm-up: 5 epochs
    assert inner.prune(study, slow)  # the plain median cuts it at epoch 6: 0.52 is worse than 0.45
    assert not AmongPeers(inner).prune(study, slow)  # no recurrent peer has finished: nothing to judge it by
    for _ in range(3):  # recurrent peers that did better by epoch 6
        add("rnn", 2, [0.80, 0.60, 0.50, 0.45, 0.44, 0.43])
    assert AmongPeers(inner).prune(study, study.get_trials()[3])


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
    # a regularization winner at the capacity winner's size is at the shrunk range's upper edge: evidence, no advice
    at_top = [_trial(0, 0.91, {"model.width": 64, "model.depth": 2, "model.dropout": 0.2})]
    kept = decide(reg, shrunk, at_top, Criteria(maximize=True, fit_below=0.1, epochs=10))
    assert {h["key"] for h in kept.evidence["boundary"]} == {"model.width", "model.depth"}
    assert "widen" not in kept.decision


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
    """T10: a wide unnamed array of one scale may be features or 1-D signals: the capacity stage tries the
    MLP and the sequence families."""
    signals = SeriesFacts(first="x0", last="x63", count=64, step=1, std_ratio=1.2, mean_spread=0.1, named=False)
    wide = DataFacts(task="classification", kind="tabular", n_train=500, input_shape=(64,), n_outputs=2)
    wide = dataclasses.replace(wide, series=signals)
    recipe = Recipe().with_overrides({"data.source": "signals.npz"})
    assert ambiguous_kind(recipe, wide)
    assert not ambiguous_kind(recipe.with_overrides({"model.family": "mlp"}), wide)  # the recipe says which
    assert not ambiguous_kind(recipe, dataclasses.replace(wide, series=None))  # columns that are no series
    space = default_space(resolve(recipe, wide), wide, ambiguous=True)
    assert space["model.family"].choices == ["mlp", "cnn", "rnn"] and space["model.width"].choices == [32, 64, 128]
    assert (space["model.depth"].low, space["model.depth"].high) == (0, 3)  # depth 0: the linear model in each
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


# ---- T10: the family is a choice when the columns form an ordered series ---------------------------


def _facts(source: Path | str, **cfg: Any) -> DataFacts:
    """The facts tune reads: the data loaded, split and prepared (fold 0's training rows)."""
    target = {"target": "y"} if str(source).endswith(".csv") else {}
    return load_data(DataConfig(source=str(source), **target, **cfg), seed=0).prepare(0).facts


def _ar_lags(path: Path, *, rows: int = 400, lags: int = 24, order: list[int] | None = None) -> Path:
    """An AR(2) process with a 12-step cycle, written as a table of lag columns and the next value."""
    rng = np.random.default_rng(0)
    r, theta = 0.9, 2 * np.pi / 12
    series = np.zeros(rows + lags + 1)
    for t in range(2, len(series)):
        series[t] = 2 * r * np.cos(theta) * series[t - 1] - r**2 * series[t - 2] + rng.normal()
    table = {f"lag_{k}": series[lags - k : lags - k + rows] for k in order or range(1, lags + 1)}
    pd.DataFrame({**table, "y": series[lags : lags + rows]}).to_csv(path, index=False)
    return path


def test_an_ordered_series_brings_the_sequence_families_into_the_capacity_stage(tmp_path: Path) -> None:
    """lag_1..lag_24 of one process: one name, a running index, one scale: a table or 24 steps of a signal."""
    facts = _facts(_ar_lags(tmp_path / "ar.csv"))
    assert facts.series is not None and (facts.series.first, facts.series.last) == ("lag_1", "lag_24")
    assert facts.series.step == 1 and facts.series.std_ratio < 1.5  # lags of one stationary process
    recipe = Recipe().with_overrides({"data.source": str(tmp_path / "ar.csv")})
    evidence = ambiguous_kind(recipe, facts)
    assert evidence is not None and evidence["families"] == ["mlp", "cnn", "rnn"]
    assert "lag_1..lag_24" in evidence["why"] and "running index" in evidence["why"]
    space = default_space(resolve(recipe, facts), facts, ambiguous=True)
    assert space["model.family"].choices == ["mlp", "cnn", "rnn"] and space["model.depth"].low == 0
    capacity = plan_stages(space, TuneConfig(), trials=9, evidence={"family": evidence})[0]
    assert "model.family" in capacity.space and capacity.evidence["family"] == evidence
    _, lines = capacity.kind.describe(capacity)
    assert any("the family is a choice, T10" in line and "lag_1..lag_24" in line for line in lines)
    # what the recipe says wins: a declared kind or family is no guess
    for said in ({"model.family": "mlp"}, {"data.kind": "tabular"}):
        assert ambiguous_kind(recipe.with_overrides(said), facts) is None
    # every family reads the (N, F) arrays: cnn and rnn view a row as (F, 1), no reloading per trial
    for family in ("mlp", "cnn", "rnn"):
        cfg = resolve(recipe.with_overrides({"model.family": family, "model.width": 8, "model.depth": 1}), facts)
        net = build_model(cfg.model, kind=facts.kind, input_shape=facts.input_shape, n_outputs=facts.n_outputs)
        assert net(torch.randn(4, 24)).shape == (4, 1)


def test_lag_columns_are_read_oldest_first_by_the_sequence_families(tmp_path: Path) -> None:
    """lag_1 .. lag_24 run back in time: cnn and rnn read them reversed, so a recurrent model ends on lag_1, the
    newest value. Columns already oldest first (lag_24 .. lag_1), or an index counting forward, are kept."""
    newest_first = _facts(_ar_lags(tmp_path / "ar.csv"))
    oldest_first = _facts(_ar_lags(tmp_path / "back.csv", order=list(range(24, 0, -1))))
    assert newest_first.series is not None and newest_first.series.newest_first
    assert oldest_first.series is not None and oldest_first.series.step == -1 and not oldest_first.series.newest_first
    forward = pd.read_csv(tmp_path / "back.csv").rename(columns=lambda c: c.replace("lag_", "x"))  # x24 .. x1
    forward[forward.columns[::-1]].to_csv(tmp_path / "forward.csv", index=False)  # y, x1 .. x24: x counts forward
    assert not _facts(tmp_path / "forward.csv").series.newest_first  # type: ignore[union-attr]
    recipe = Recipe().with_overrides({"data.source": str(tmp_path / "ar.csv"), "model.family": "rnn"})
    assert resolve(recipe, newest_first).model.step_order == "reversed"
    assert resolve(recipe, oldest_first).model.step_order == "columns"
    assert resolve(recipe.with_overrides({"model.step_order": "columns"}), newest_first).model.step_order == "columns"
    x = torch.randn(5, 24)  # (B, F): lag_1 first
    for family in ("cnn", "rnn"):
        nets = {}
        for order in ("reversed", "columns"):
            cfg = resolve(recipe.with_overrides({"model.family": family, "model.step_order": order}), newest_first)
            torch.manual_seed(0)
            nets[order] = build_model(cfg.model, kind="tabular", input_shape=(24,), n_outputs=1).eval()
        with torch.no_grad():  # the same weights: reading reversed is reading the flipped row
            assert torch.allclose(nets["reversed"](x), nets["columns"](x.flip(1)), atol=1e-6), family


def test_an_unordered_table_keeps_the_mlp_alone(tmp_path: Path) -> None:
    """Ordinary tables, indexed columns among unrelated ones, a shuffled index or mixed scales: no series."""
    rng = np.random.default_rng(0)
    n = 300
    people = pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "income": rng.lognormal(10, 1, n),
            "height": rng.normal(170, 10, n),
            "weight": rng.normal(70, 12, n),
            "children": rng.integers(0, 5, n),
            "score_1": rng.normal(size=n),
            "score_2": rng.normal(size=n),
            "score_3": rng.normal(size=n),
            "y": rng.normal(size=n),
        }
    )
    people.to_csv(tmp_path / "people.csv", index=False)
    scales = pd.DataFrame({f"f{i}": rng.normal(size=n) * 10.0**i for i in range(1, 11)} | {"y": rng.normal(size=n)})
    scales.to_csv(tmp_path / "scales.csv", index=False)
    shuffled = _ar_lags(tmp_path / "shuffled.csv", order=list(rng.permutation(np.arange(1, 25))))
    for source in ("wine", "diabetes", "breast_cancer", tmp_path / "people.csv", tmp_path / "scales.csv", shuffled):
        facts = _facts(source)
        recipe = Recipe().with_overrides({"data.source": str(source)})
        assert facts.series is None and ambiguous_kind(recipe, facts) is None, source
        space = default_space(resolve(recipe, facts), facts)
        assert "model.family" not in space and space["model.depth"].low == 0  # the linear model is still tried


def test_an_unnamed_array_is_a_series_when_wide_and_on_one_scale(tmp_path: Path) -> None:
    """.npz (N, F): x0..x{F-1} only number the columns; F >= 16 and one scale make it a batch of signals."""
    rng = np.random.default_rng(0)
    phase = rng.uniform(0, 2 * np.pi, (200, 1))
    waves = np.sin(np.linspace(0, 4 * np.pi, 32) + phase) + 0.1 * rng.normal(size=(200, 32))  # (N, 32)
    np.savez(tmp_path / "waves.npz", x=waves, y=(phase[:, 0] > np.pi).astype(int))
    np.savez(tmp_path / "narrow.npz", x=waves[:, :10], y=(phase[:, 0] > np.pi).astype(int))
    table = rng.normal(size=(200, 32)) * np.logspace(0, 3, 32)  # wide, but every column its own unit
    np.savez(tmp_path / "table.npz", x=table, y=(phase[:, 0] > np.pi).astype(int))
    wide = _facts(tmp_path / "waves.npz")
    assert wide.series is not None and not wide.series.named and wide.series.count == 32
    evidence = ambiguous_kind(Recipe().with_overrides({"data.source": str(tmp_path / "waves.npz")}), wide)
    assert evidence is not None and "unnamed array" in evidence["why"]
    assert _facts(tmp_path / "narrow.npz").series is None and _facts(tmp_path / "table.npz").series is None


# ---- T22, T44: the linear model is the capacity stage's smallest candidate --------------------------


def _sized(number: int, value: float, params: dict[str, Any], **attrs: Any) -> optuna.trial.FrozenTrial:
    dists: dict[str, Any] = {
        "model.depth": IntDistribution(0, 4),
        "model.width": IntDistribution(1, 512),
        "model.family": CategoricalDistribution(["mlp", "cnn", "rnn"]),
    }
    t = create_trial(
        state=TrialState.COMPLETE,
        value=value,
        params=params,
        distributions={k: dists[k] for k in params},
        user_attrs=attrs,
        intermediate_values={e: value for e in range(1, 11)},
    )
    t.number = number
    return t


def test_the_linear_model_wins_the_capacity_stage_on_linear_noisy_data() -> None:
    """y = X w + noise (val rmse in scaled units): the linear model cannot reach 0.1 x chance on its training
    rows (the noise stays), but it reaches the noise floor; within one standard error of the best it wins."""
    space = {
        "model.width": ParamSpec(type="int", low=16, high=256),
        "model.depth": ParamSpec(type="int", low=0, high=4),
    }
    stage = plan_stages(space, TuneConfig(trials=3), trials=3)[0]
    trials = [  # rmse on 100 validation rows; train/val losses are MSEs of the scaled target (chance: 1.0)
        _sized(0, 0.52, {"model.width": 256, "model.depth": 2}, train_loss=0.08, val_loss=0.27, n_params=70_000),
        _sized(1, 0.51, {"model.width": 64, "model.depth": 0}, train_loss=0.24, val_loss=0.26, n_params=11),
        _sized(2, 0.60, {"model.width": 512, "model.depth": 4}, train_loss=0.01, val_loss=0.36, n_params=800_000),
    ]
    judge = Criteria(maximize=False, fit_below=0.1, epochs=10, val_rows=100, metric="rmse")
    out = decide(stage, space, trials, judge)
    assert out.params == {"model.width": 64, "model.depth": 0}
    assert "the linear model (depth 0)" in out.decision and "the data look linear" in out.decision
    fit = out.evidence["fit"]
    assert fit["noise_floor"] == 0.26 and fit["train_loss_below"] == 0.26 and fit["chance_bar"] == 0.1
    assert fit["fitting_trials"] == [1, 0, 2] and fit["within_one_se"] == [1, 0]  # rmse SE: 0.51 / sqrt(200)
    assert out.evidence["boundary"] == []  # depth 0 is a floor, not an edge to widen past
    # on a non-linear target the linear model underfits: its training loss stays above what others predict
    curved = [
        _sized(0, 0.30, {"model.width": 256, "model.depth": 2}, train_loss=0.05, val_loss=0.09, n_params=70_000),
        _sized(1, 0.72, {"model.width": 64, "model.depth": 0}, train_loss=0.50, val_loss=0.52, n_params=11),
    ]
    out = decide(stage, space, curved, judge)
    assert out.params["model.depth"] == 2 and out.evidence["fit"]["fitting_trials"] == [0]
    assert "linear" not in out.decision
    # the floor's own model fits: its training loss (an epoch's mean in training mode) may exceed its val loss
    ar = [
        _sized(0, 0.99, {"model.width": 32, "model.depth": 2}, train_loss=0.111, val_loss=0.079, n_params=34_000),
        _sized(1, 1.10, {"model.width": 32, "model.depth": 3}, train_loss=0.020, val_loss=0.098, n_params=96_000),
    ]
    out = decide(stage, space, ar, judge)
    assert out.params["model.depth"] == 2 and out.evidence["fit"]["noise_floor"] == 0.111
    # no model fits by the chance bar: capacity is not proven, a noisy target and a small space look alike
    small = [_sized(i, 0.8, {"model.width": 16, "model.depth": i}, train_loss=0.6, val_loss=0.62) for i in (0, 1)]
    out = decide(stage, space, small, judge)
    assert out.evidence["fit"]["fitting_trials"] == [] and not out.evidence["fit"]["capacity_proven"]
    assert any("widen the capacity space" in w for w in out.evidence["warnings"])


def test_the_capacity_decision_names_the_family_and_each_familys_best() -> None:
    space = {
        "model.family": ParamSpec(type="categorical", choices=["mlp", "cnn", "rnn"]),
        "model.depth": ParamSpec(type="int", low=0, high=3),
    }
    evidence = {"family": {"columns": {"first": "lag_1", "last": "lag_24", "count": 24}, "why": "an ordered series"}}
    stage = plan_stages(space, TuneConfig(trials=3), trials=3, evidence=evidence)[0]
    trials = [
        _sized(0, 0.80, {"model.family": "mlp", "model.depth": 2}, train_loss=0.05, val_loss=0.4, n_params=5000),
        _sized(1, 0.93, {"model.family": "rnn", "model.depth": 1}, train_loss=0.05, val_loss=0.2, n_params=9000),
        _sized(2, 0.88, {"model.family": "cnn", "model.depth": 2}, train_loss=0.05, val_loss=0.3, n_params=3000),
    ]
    out = decide(stage, space, trials, Criteria(maximize=True, fit_below=0.1, epochs=10, val_rows=1000))
    assert out.params == {"model.family": "rnn", "model.depth": 1}
    assert "the 24 columns lag_1..lag_24 read as a sequence of 1-D steps (rnn)" in out.decision
    assert "rnn 0.93, cnn 0.88, mlp 0.8" in out.decision
    assert out.evidence["family"] == evidence["family"]  # the data's evidence, kept with the choice
    assert out.evidence["families"]["cnn"] == {"trial": 2, "value": 0.88}
