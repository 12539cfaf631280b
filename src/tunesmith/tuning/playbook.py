"""The staged playbook (T53): capacity -> learning rate and batch size -> regularization, then refit.

1. capacity (T40, T22, T44): regularization off (no dropout, weight decay, augmentation or early
   stopping); search width/depth (from depth 0, the linear model, for the MLP; and activation,
   normalization, and the family where the columns form an ordered series, T10), with the
   learning rate as a nuisance: the Tuning Playbook's rule is that architectures are compared
   each at a good LR, never all at one fixed LR that suits some of them. The winner is the
   smallest model within one standard error of the best validation score among the models that
   fit the training set (train loss below `tune.fit_loss` x the chance-level loss, or below the
   stage's noise floor: its lowest validation loss); if none fits, the one that came closest,
   with the advice to widen the space. Its LR is the lr stage's first trial's.
2. lr + batch size (T31, T33): the LR range is narrowed around the range test's suggestion and
   the batch sizes are capped by the batch-size finder (both run once, at this stage's start, on
   the capacity winner: tunesmith.tuning.prechecks).
3. regularization (T15, T41-T44): dropout, weight decay / L1, max-norm, augmentation strength,
   patience; width/depth may shrink below the capacity winner (a smaller model regularizes, T44).
4. refit and test: tunesmith.tuning.outputs; a winner still improving at its last epoch is refit
   for LONGER times its epochs (refit_epochs).

Each stage's first trial is its incumbent: the recipe's values (or the earlier stages' winners)
for the stage's keys, the baseline every other trial of the stage must beat. Within a stage the
sampler then explores quasi-randomly and exploits with TPE/GP after (samplers.StagedSampler).
Each stage's winner is fixed for the stages after it. After each stage the checks of the Deep
Learning Tuning Playbook run on its trials and are recorded with the decision: is the best point
near the edge of the space (widen it and rerun), how many trials diverged (many means a bug or an
LR range that is too high), and are the best curves still improving at the last epoch (train
longer) or getting worse after an early peak (regularize). The edge check is acted on: once a stage
has used WIDEN_AT of its budget (trials, or time), a best point at the edge of a numeric range widens
that range once (`widen`: log ranges 10x past the edge, linear and integer ranges by half their width,
always within SANE bounds; categorical choices stay, and the regularization stage never grows width or
depth, T44) and the stage's remaining trials search it.

Sources: catalog T10, T22, T31, T33, T40-T44, T53; Godbole et al. 2023, "Deep Learning Tuning
Playbook" (incremental tuning, exploration before exploitation, the post-search checks).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from optuna.trial import FrozenTrial, TrialState

from tunesmith.errors import BadInput
from tunesmith.train.metrics import standard_error
from tunesmith.tuneconfig import ParamSpec, TuneConfig
from tunesmith.tuning.evidence import LrEvidence
from tunesmith.tuning.space import space_to_json

__all__ = [
    "LONGER",
    "REGULARIZATION_OFF",
    "STAGED",
    "STAGES",
    "Capacity",
    "Criteria",
    "Flat",
    "LearningRate",
    "Outcome",
    "Regularization",
    "Stage",
    "StageKind",
    "at_edges",
    "curve_shape",
    "decide",
    "incumbent",
    "narrow",
    "plan_stages",
    "rank_key",
    "refit_epochs",
    "shrink_space",
    "stage_of",
    "suggested_lr",
    "widen",
    "widened_space",
]

LR_KEYS = {
    "train.lr",
    "train.batch_size",
    "train.optimizer",
    "train.momentum",
    "train.nesterov",
    "train.schedule",
    "train.warmup_epochs",
    "train.gamma",
    "train.step_every",
    "train.effective_batch_size",
    "train.clip_norm",
    "train.clip_value",
    "train.head_lr_mult",  # a backbone's (tuning/space.py finetune_space): LRs and how long they run
    "train.layer_decay",
    "train.freeze_epochs",
    "train.epochs",
}
REGULARIZATION_KEYS = {
    "model.dropout",
    "model.denoise",
    "model.sparsity",
    "train.weight_decay",
    "train.l1",
    "train.l2",
    "train.max_norm",
    "model.backbone_dropout",  # T15
}
REGULARIZATION_PREFIXES = ("data.augment.", "train.early_stopping.")
# T40: the capacity stage proves the model can fit, so nothing may hold it back
REGULARIZATION_OFF: dict[str, Any] = {
    "model.dropout": 0.0,
    "train.weight_decay": 0.0,
    "train.l1": 0.0,
    "train.l2": 0.0,
    "train.max_norm": None,
    "data.augment.strength": 0.0,
    "train.early_stopping.patience": None,
}
SHRINKABLE = ("model.width", "model.depth")  # T44
NUISANCE = ("train.lr",)  # searched in the capacity stage too: every architecture at a good LR (Tuning Playbook)
EDGE = 0.1  # a best value within this share of the range's end counts as "near the boundary"
MANY_DIVERGED = 0.3  # a larger share of divergent trials points to a bug or a too-high LR range
DROP = 0.02  # a curve that ends this much (relative) below its peak is getting worse
LONGER = 2  # the refit's epochs, as a multiple of the trials', when the winner was still improving
WIDEN_AT = 0.7  # share of a stage's budget (trials or time) after which a best point at an edge widens its range
WIDEN = 10.0  # a log range grows this factor past the edge it was at
SANE: dict[str, tuple[float, float]] = {  # how far widening may go (what a practitioner would still try)
    "train.lr": (1e-6, 1.0),
    "train.weight_decay": (1e-8, 0.1),
    "train.l1": (1e-8, 0.1),
    "train.l2": (1e-8, 0.1),
    "train.momentum": (0.0, 0.99),
    "model.dropout": (0.0, 0.8),
    "model.depth": (1, 12),
}  # categorical choices (widths, batch sizes) are never widened: Optuna fixes a categorical's choices in a study


def stage_of(key: str) -> str:
    if key in LR_KEYS:
        return "lr"
    if key in REGULARIZATION_KEYS or key.startswith(REGULARIZATION_PREFIXES):
        return "regularization"
    return "capacity"  # architecture, family, activation, normalization, preprocessing


@dataclass(frozen=True)
class Stage:
    name: str  # a key of STAGES: capacity | lr | regularization | flat
    space: dict[str, ParamSpec]
    trials: int  # this stage's share of the study's budget
    share: float  # its share of the search time under --timeout
    explore: int  # trials sampled quasi-randomly before the exploit sampler
    fixed: dict[str, Any] = field(default_factory=dict)  # overrides held during this stage only
    evidence: dict[str, Any] = field(default_factory=dict)  # what the data said of its keys (T10: "family")

    @property
    def kind(self) -> StageKind:
        """What this stage does with its keys (STAGES[name])."""
        return STAGES[self.name]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "space": space_to_json(self.space)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Stage:
        space = {k: ParamSpec.model_validate(v) for k, v in data["space"].items()}
        return cls(**{**data, "space": space})


def plan_stages(
    space: dict[str, ParamSpec], cfg: TuneConfig, *, trials: int, evidence: dict[str, Any] | None = None
) -> list[Stage]:
    """Split the space and the trial budget into stages (one "flat" stage for --strategy flat).

    evidence: what the data said of the capacity keys (T10's {"family": ...} when the family is searched),
    kept with the stage that searches them, for its plan line and its decision."""
    held = {"train.epochs": _trial_epochs(space, cfg)}
    fixed = {} if "train.epochs" in space else held  # searched (a backbone's): each trial its own
    if cfg.strategy == "flat":
        n = _cap(trials, space, cfg)
        return [Stage("flat", space, n, 1.0, _explore(n, cfg), fixed, dict(evidence or {}))]
    parts = {kind.name: kind.plan_space(space) for kind in STAGED}
    present = [(kind.name, share) for kind, share in zip(STAGED, cfg.shares, strict=True) if parts[kind.name]]
    if trials < len(present):
        raise BadInput(
            f"--trials {trials} is fewer than the {len(present)} stages of the staged playbook "
            f"({', '.join(n for n, _ in present)}). Use --trials {len(present)} or more, or --strategy flat."
        )
    total = sum(s for _, s in present)
    counts = [max(1, round(trials * s / total)) for _, s in present]
    counts[-1] = max(1, trials - sum(counts[:-1]))
    while sum(counts) > trials:  # rounding gave more than the budget: take from the largest stage
        counts[counts.index(max(counts))] -= 1
    stages = []
    searched = False  # the epochs are searched by this stage or an earlier one (then carried with its winner)
    for (name, share), n in zip(present, counts, strict=True):
        part = parts[name]
        n = _cap(n, part, cfg)
        notes = dict(evidence or {}) if name == Capacity.name else {}
        searched = searched or "train.epochs" in part
        fixed = {} if searched else held
        stages.append(Stage(name, part, n, share / total, _explore(n, cfg), {**STAGES[name].held, **fixed}, notes))
    return stages


def _trial_epochs(space: dict[str, ParamSpec], cfg: TuneConfig) -> int:
    """Epochs of a trial that does not draw its own: tune.epochs, or the longest of a searched train.epochs range
    (the stages before the one that searches it judge their candidates at full length)."""
    spec = space.get("train.epochs")
    if spec is None:
        return cfg.epochs
    return int(max(spec.choices or [1])) if spec.type == "categorical" else int(spec.high or cfg.epochs)


def _explore(n: int, cfg: TuneConfig) -> int:
    """Quasi-random trials before the exploit sampler; 0 leaves TPE/GP to their own random start."""
    return min(n, max(1, round(cfg.explore * n))) if cfg.explore > 0 else 0


def _cap(n: int, space: dict[str, ParamSpec], cfg: TuneConfig) -> int:
    """A grid search needs no more trials than its grid has points."""
    if cfg.sampler != "grid":
        return n
    return min(n, math.prod(len(spec.grid(cfg.grid_points)) for spec in space.values()))


def incumbent(space: dict[str, ParamSpec], current: dict[str, Any]) -> dict[str, Any]:
    """A staged stage's first trial (the Tuning Playbook's baseline): the current value of each searched
    key (the recipe's, or an earlier stage's winner) where the space admits it; the sampler draws the rest.
    Every later trial of the stage is then judged against a known-good point, not only against chance."""
    return {key: current[key] for key, spec in space.items() if key in current and spec.admits(current[key])}


def shrink_space(space: dict[str, ParamSpec], capacity: Outcome | None) -> dict[str, ParamSpec]:
    """T44: the regularization stage may try smaller widths/depths than the capacity winner, never larger."""
    space = dict(space)
    if capacity is None:
        return space
    for key in SHRINKABLE:
        spec, chosen = capacity.space.get(key), capacity.params.get(key)
        if spec is None or chosen is None:
            continue
        if spec.type == "categorical":
            smaller = [c for c in spec.choices or [] if c <= chosen]
            if len(smaller) > 1:
                space[key] = ParamSpec(type="categorical", choices=smaller)
        elif spec.low is not None and spec.low < chosen:
            space[key] = ParamSpec(type=spec.type, low=spec.low, high=chosen, log=spec.log)
    return space


def suggested_lr(space: dict[str, ParamSpec], evidence: LrEvidence) -> dict[str, float]:
    """T31: the lr stage's first trial takes the range test's suggestion when its rules agree (and the
    space admits it); {} otherwise, so the recipe's lr stays the baseline."""
    found, lr = evidence.get("lr_find"), space.get("train.lr")
    if lr is None or found is None or not found["agree"] or not lr.admits(found["suggestion"]):
        return {}
    return {"train.lr": found["suggestion"]}


def narrow(space: dict[str, ParamSpec], evidence: LrEvidence) -> dict[str, ParamSpec]:
    """The lr stage's space after the range test and the batch-size finder (unchanged keys stay as declared)."""
    space = dict(space)
    lr, found = space.get("train.lr"), evidence.get("lr_find")
    if lr is not None and lr.type == "float" and found is not None and found["agree"]:
        assert lr.low is not None and lr.high is not None
        low, high = max(lr.low, found["suggestion"] / 10), min(lr.high, found["suggestion"] * 10)
        if low < high:
            space["train.lr"] = ParamSpec(type="float", low=low, high=high, log=True)
    batch, sized = space.get("train.batch_size"), evidence.get("batch_size")
    cap = sized["batch_size"] if sized is not None else None
    if batch is not None and cap is not None:
        if batch.type == "categorical":
            kept = [b for b in batch.choices or [] if b <= cap] or [min(batch.choices or [cap])]
            space["train.batch_size"] = ParamSpec(type="categorical", choices=kept)
        elif batch.low is not None and batch.high is not None:
            space["train.batch_size"] = ParamSpec(type="int", low=batch.low, high=max(batch.low, min(batch.high, cap)))
    return space


def rank_key(trial: FrozenTrial, *, maximize: bool) -> tuple[float, float]:
    """Sort key, best first: the score, then the validation loss at the best epoch (accuracy ties often)."""
    value = trial.value if trial.value is not None else math.nan
    return (-value if maximize else value, trial.user_attrs.get("val_loss", math.inf))


@dataclass(frozen=True)
class Criteria:
    """How a stage's trials are judged (computed once per study, from the data)."""

    maximize: bool  # the metric's direction
    fit_below: float  # T40: a model "fits" when its training loss ends below this (or the noise floor)
    epochs: int  # a full-length trial (curve checks)
    val_rows: int | None = None  # validation rows, for the one-standard-error rule (None: no slack)
    metric: str = "accuracy"  # the score's metric: how its standard error is computed
    repeats: int = 1  # folds each trial is scored on (noise-aware scoring: prechecks.measure_noise)

    def standard_error(self, value: float) -> float:
        """The standard error of a validation score on val_rows rows (train.metrics.standard_error)."""
        return 0.0 if self.val_rows is None else standard_error(self.metric, value, self.val_rows)

    def slack(self, trial: FrozenTrial) -> float:
        """One standard error of a trial's score: the spread of its folds' scores when it was scored on several
        (noise-aware), else the error of its metric on val_rows rows."""
        if "se" in trial.user_attrs:
            return float(trial.user_attrs["se"])
        return self.standard_error(trial.value if trial.value is not None else math.nan)


@dataclass
class Outcome:
    """A finished stage: its winner (fixed for later stages), the decision and the evidence behind it."""

    name: str
    space: dict[str, ParamSpec]
    best: FrozenTrial | None
    params: dict[str, Any]
    decision: str
    evidence: dict[str, Any]


def decide(
    stage: Stage,
    space: dict[str, ParamSpec],
    trials: list[FrozenTrial],
    judge: Criteria,
    *,
    label: Callable[[FrozenTrial], int] = lambda t: t.number,
) -> Outcome:
    """Pick the stage's winner and run the playbook's checks; `label` numbers trials in the evidence."""
    feasible = [t for t in trials if t.state == TrialState.COMPLETE and "diverged" not in t.user_attrs]
    ranked = sorted(feasible, key=lambda t: rank_key(t, maximize=judge.maximize))
    evidence = stage.evidence | checks(
        space, trials, ranked, maximize=judge.maximize, epochs=judge.epochs, label=label, kept=stage.kind.kept_edges
    )
    if not ranked:
        return Outcome(stage.name, space, None, {}, _none_finished(stage, evidence), evidence)
    best, lead = stage.kind.pick(ranked, judge, evidence, label)
    params = {k: best.params[k] for k in space if k in best.params}
    chosen = ", ".join(f"{k}={_fmt(v)}" for k, v in params.items())
    decision = f"{stage.name}: {chosen} ({lead})" + "".join(f"; {w}" for w in evidence["warnings"])
    return Outcome(stage.name, space, best, params, decision, evidence)


def _capacity_winner(
    ranked: list[FrozenTrial], judge: Criteria, evidence: dict[str, Any], label: Callable[[FrozenTrial], int]
) -> tuple[FrozenTrial, str]:
    """T40 + T22 + T44: among the models that fit the training set, the smallest whose validation score is
    within one standard error of the best (Breiman's one-standard-error rule): capacity is chosen by
    validation, and a bigger model must earn its cost. The smallest candidate is the linear model (depth 0).

    A model fits when its best training loss is below `judge.fit_below` (tune.fit_loss x the chance loss).
    Once one model has (capacity proven, T40), a model also fits when its training loss is below the
    stage's noise floor. On noisy data no model can push its training
    loss below the noise without memorizing it: a linear target with noise leaves the linear model a
    training loss near the noise variance, far above 0.1 x chance. What the best model leaves unpredicted
    on unseen rows estimates that noise: the floor is the lowest validation loss of the stage, or the
    training loss of the model that reached it where that is higher (a recorded training loss is the mean
    over an epoch's batches in training mode, which sits above the same model's evaluated loss: the
    floor's own model must count as fitting). A model whose training loss reaches the floor has fitted
    all that generalizes; one that stays above it underfits. Without a model that fits by the first bar,
    a noisy target and a space too small look alike (training loss near validation loss everywhere), and
    the stage says the space may be too small."""
    scored = [t for t in ranked if math.isfinite(t.user_attrs.get("val_loss", math.inf))]
    best_val = min(scored, key=lambda t: t.user_attrs["val_loss"], default=None)
    floor = 0.0
    if best_val is not None:
        floor = max(best_val.user_attrs["val_loss"], best_val.user_attrs.get("train_loss", 0.0))
    proven = any(t.user_attrs.get("train_loss", math.inf) <= judge.fit_below for t in ranked)
    bar = max(judge.fit_below, floor) if proven else judge.fit_below
    fits = [t for t in ranked if t.user_attrs.get("train_loss", math.inf) <= bar]
    evidence["fit"] = {
        "train_loss_below": round(bar, 6),
        "chance_bar": round(judge.fit_below, 6),  # tune.fit_loss x the chance loss
        "noise_floor": round(floor, 6),  # the lowest validation loss (or its model's training loss, if higher)
        "floor_trial": None if best_val is None else label(best_val),
        "capacity_proven": proven,  # a model fits by the chance bar: then the noise floor counts too
        "fitting_trials": [label(t) for t in fits],
        "train_loss": {label(t): t.user_attrs.get("train_loss") for t in ranked},
    }
    below = f"train loss <= {bar:.3g}, T40"
    if bar > judge.fit_below:
        below = f"train loss <= {bar:.3g}, the noise floor: what the best model left unpredicted, T40"
    if not fits:
        evidence["warnings"].append(
            "no model reached a low training loss: the largest tried is too small, the LR is off or the trials are "
            "short; widen the capacity space (model.width, model.depth) or raise tune.epochs and rerun (T40)"
        )
        if judge.repeats == 1:
            closest = min(ranked, key=lambda t: t.user_attrs.get("train_loss", math.inf))
            lead = f"lowest train loss {closest.user_attrs.get('train_loss', math.nan):.4g}; none fit"
            return closest, lead + _family_choice(ranked, closest, evidence, label)
        # scored on folds because one split is noisy (prechecks.measure_noise): a noisy target cannot be
        # memorized in a trial's epochs without memorizing its noise, so validation decides among all models
        fits, below = ranked, "none reached the chance bar; the split is noisy, so validation decides among all"
    top = fits[0].value or 0.0
    slack = judge.slack(fits[0])
    close = [t for t in fits if abs((t.value or 0.0) - top) <= slack]
    chosen = min(close, key=lambda t: t.user_attrs.get("n_params", math.inf))
    evidence["fit"].update(one_se=round(slack, 6), within_one_se=[label(t) for t in close])
    if chosen.params.get("model.depth") == 0:
        lead = (
            f"the linear model (depth 0) is the smallest of the {len(fits)} of {len(ranked)} models that fit the "
            f"training set ({below}); its validation score {chosen.value:.4g} is within one standard error "
            f"({slack:.3g}) of the best {top:.4g}: the data look linear, T44"
        )
    else:
        lead = (
            f"the smallest of the {len(fits)} of {len(ranked)} models that fit the training set ({below}) whose "
            f"validation score {chosen.value:.4g} is within one standard error ({slack:.3g}) of the best"
        )
    return chosen, lead + _family_choice(ranked, chosen, evidence, label)


def _family_choice(
    ranked: list[FrozenTrial], chosen: FrozenTrial, evidence: dict[str, Any], label: Callable[[FrozenTrial], int]
) -> str:
    """T10, when the family was searched: how the winner reads the columns, and each family's best score."""
    best: dict[str, FrozenTrial] = {}
    for t in ranked:  # best first
        best.setdefault(str(t.params.get("model.family")), t)
    best.pop("None", None)
    if not best or "model.family" not in chosen.params:
        return ""
    evidence["families"] = {f: {"trial": label(t), "value": t.value} for f, t in best.items()}
    cols = evidence.get("family", {}).get("columns")
    what = f"the {cols['count']} columns {cols['first']}..{cols['last']}" if cols else "the columns"
    family = chosen.params["model.family"]
    if evidence.get("family", {}).get("kind") == "text":
        reading = f"the text read by {family}" + (
            " (depth 0: the bag's linear head)" * (chosen.params.get("model.depth") == 0)
        )
    elif chosen.params.get("model.depth") == 0:
        reading = f"{what} read by the linear model (depth 0: the same model in every family)"
    elif family == "mlp":
        reading = f"{what} read as a table (mlp)"
    else:
        reading = f"{what} read as a sequence of 1-D steps ({family})"
    scores = ", ".join(f"{f} {t.value:.4g}" for f, t in best.items())
    return f"; family (T10): {reading}; best validation score per family: {scores}"


def _none_finished(stage: Stage, evidence: dict[str, Any]) -> str:
    return f"{stage.name}: no trial finished feasibly; the earlier stages' choices are kept" + "".join(
        f"; {w}" for w in evidence["warnings"]
    )


def checks(
    space: dict[str, ParamSpec],
    trials: list[FrozenTrial],
    ranked: list[FrozenTrial],
    *,
    maximize: bool,
    epochs: int,
    label: Callable[[FrozenTrial], int],
    kept: frozenset[tuple[str, str]] = frozenset(),
) -> dict[str, Any]:
    """The Tuning Playbook's post-stage checks: boundary, divergence share, curve shape of the best trials.
    `kept`: (key, edge) pairs the stage never widens (T44: the regularization stage only shrinks the model), so
    a best point there is evidence, not advice."""
    finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("surplus")]
    diverged = [t for t in finished if "diverged" in t.user_attrs]
    share = len(diverged) / len(finished) if finished else 0.0
    states = {s.name.lower(): sum(t.state == s for t in finished) for s in (TrialState.COMPLETE, TrialState.PRUNED)}
    evidence: dict[str, Any] = {
        "trials": len(finished),
        **states,
        "diverged": len(diverged),
        "divergent_share": round(share, 3),
        "divergence_examples": [t.user_attrs["diverged"]["reason"][:160] for t in diverged[:2]],
        "boundary": at_edges(space, ranked[0]) if ranked else [],
        "curves": [{"trial": label(t), **curve_shape(t, maximize=maximize, epochs=epochs)} for t in ranked[:3]],
        "warnings": [],
    }
    warnings = evidence["warnings"]
    for hit in (h for h in evidence["boundary"] if (h["key"], h["edge"]) not in kept):
        where = f"best {hit['key']}={_fmt(hit['value'])} is at the {hit['edge']} edge"
        warnings.append(f"{where}: widen the range and rerun")
    if share > MANY_DIVERGED:
        warnings.append(f"{share:.0%} of trials diverged: lower the LR range or check the data for a bug (T31, T34)")
    verdicts = [c["verdict"] for c in evidence["curves"]]
    if verdicts and verdicts.count("improving") * 2 > len(verdicts):
        warnings.append("the best curves are still improving at the last epoch: raise tune.epochs (train longer)")
    if verdicts and verdicts.count("worsening") * 2 > len(verdicts):
        warnings.append("the best curves get worse after an early peak: regularize before anything else")
    return evidence


def at_edges(space: dict[str, ParamSpec], best: FrozenTrial) -> list[dict[str, Any]]:
    """The keys whose best value lies within EDGE of its range's end ({key, value, edge}); 0 is a natural floor."""
    hits = []
    for key, spec in space.items():
        if key not in best.params:
            continue
        pos = spec.position(best.params[key])
        natural_floor = spec.type != "categorical" and not spec.log and spec.low == 0  # nothing below 0 to try
        if pos is not None and pos <= EDGE and not natural_floor:
            hits.append({"key": key, "value": best.params[key], "edge": "lower"})
        elif pos is not None and pos >= 1 - EDGE:
            hits.append({"key": key, "value": best.params[key], "edge": "upper"})
    return hits


def widen(space: dict[str, ParamSpec], boundary: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each edge hit that can grow within SANE bounds: {key: {edge, value, from, to}} (ParamSpecs as JSON)."""
    record: dict[str, dict[str, Any]] = {}
    for hit in boundary:
        key, upper = hit["key"], hit["edge"] == "upper"
        spec, bounds = space.get(key), SANE.get(key)
        if spec is None or bounds is None:
            continue
        grown = _grown(spec, upper, bounds)
        if grown is not None:
            record[key] = {**hit, "from": spec.model_dump(mode="json"), "to": grown.model_dump(mode="json")}
    return record


def _grown(spec: ParamSpec, upper: bool, bounds: tuple[float, float]) -> ParamSpec | None:
    """`spec` extended past one edge (None when the SANE bound leaves no room)."""
    lo, hi = bounds
    if spec.type == "categorical":
        return None
    assert spec.low is not None and spec.high is not None
    if spec.log:
        low, high = (spec.low, min(hi, spec.high * WIDEN)) if upper else (max(lo, spec.low / WIDEN), spec.high)
    else:
        step = (spec.high - spec.low) / 2
        step = max(1.0, round(step)) if spec.type == "int" else step
        low, high = (spec.low, min(hi, spec.high + step)) if upper else (max(lo, spec.low - step), spec.high)
    if (low, high) == (spec.low, spec.high):
        return None
    if spec.type == "int":
        low, high = int(low), int(high)
    return ParamSpec(type=spec.type, low=low, high=high, log=spec.log)


def widened_space(space: dict[str, ParamSpec], record: dict[str, dict[str, Any]]) -> dict[str, ParamSpec]:
    """The space with a stage's recorded widening applied (every worker derives the same space from it)."""
    return {**space, **{key: ParamSpec.model_validate(r["to"]) for key, r in record.items() if key in space}}


def refit_epochs(trial: FrozenTrial, *, maximize: bool, most: int | None = None) -> tuple[int, str]:
    """The "train longer" check, acted on for the final model: (the refit's epochs, why). Trials are short so
    that many fit in the budget; a winner whose curve was still improving at its last epoch is refit for
    LONGER times its epochs, and early stopping (T43, when the recipe has it on) ends a fold once its
    validation score stops improving. `most`: the epochs the time left allows (--timeout), a cap."""
    epochs = int(trial.user_attrs["overrides"]["train.epochs"])
    shape = curve_shape(trial, maximize=maximize, epochs=epochs)
    if shape["verdict"] != "improving":
        planned, why = epochs, f"the winner's validation curve peaked at epoch {shape.get('best_epoch')} of {epochs}"
    else:
        planned = epochs * LONGER
        why = f"the winner was still improving at its last epoch ({epochs}): trained {LONGER}x longer"
    if most is not None and most < planned:
        return most, f"{why}; capped at {most} epochs, what the time left by --timeout allows"
    return planned, why


def curve_shape(trial: FrozenTrial, *, maximize: bool, epochs: int) -> dict[str, Any]:
    """improving: the peak is in the last tenth of a full-length run; worsening: it ends DROP below an early
    peak (in the metric's own direction: a falling accuracy, a rising loss)."""
    steps = sorted(trial.intermediate_values)
    values = [trial.intermediate_values[s] for s in steps]
    if not values:
        return {"verdict": "no curve"}
    sign = 1.0 if maximize else -1.0
    peak = max(range(len(values)), key=lambda i: sign * values[i])
    worse = sign * (values[peak] - values[-1]) / max(abs(values[peak]), 1e-12)
    verdict = "flat"
    if len(values) >= epochs and peak >= len(values) - max(1, epochs // 10):
        verdict = "improving"
    elif worse > DROP and peak < 0.7 * len(values):
        verdict = "worsening"
    return {"best_epoch": steps[peak], "epochs": len(values), "verdict": verdict}


# ---- the stages ---------------------------------------------------------------------------------


class StageKind:
    """What makes one stage itself, behind one narrow interface (as Optuna's samplers are): the keys
    it searches, what it holds fixed, what it makes of what is known (earlier winners, the prechecks),
    how it picks its winner and how the plan describes it. A new stage is a subclass in STAGES."""

    name: ClassVar[str]
    held: ClassVar[dict[str, Any]] = {}  # overrides held during this stage only
    kept_edges: ClassVar[frozenset[tuple[str, str]]] = frozenset()  # (key, edge) pairs its edge check never widens
    from_incumbent: ClassVar[bool] = True  # its first trial is the current values of its keys

    def plan_space(self, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        """The keys of the study's space this stage searches."""
        return {key: spec for key, spec in space.items() if stage_of(key) == self.name}

    def measures(self, space: dict[str, ParamSpec]) -> bool:
        """Whether the LR range test and batch-size finder run at this stage's start."""
        return False

    def search_space(
        self, space: dict[str, ParamSpec], done: list[Outcome], evidence: LrEvidence
    ) -> dict[str, ParamSpec]:
        """The space its trials sample, given the earlier stages' outcomes and the prechecks' evidence."""
        return dict(space)

    def baseline(self, space: dict[str, ParamSpec], evidence: LrEvidence) -> dict[str, Any]:
        """Values its first trial takes over the current ones."""
        return {}

    def seeded(self, space: dict[str, ParamSpec], start: dict[str, Any]) -> list[dict[str, Any]]:
        """Points tried right after the incumbent `start`, before the sampler's own ([] by default)."""
        return []

    def pick(
        self, ranked: list[FrozenTrial], judge: Criteria, evidence: dict[str, Any], label: Callable[[FrozenTrial], int]
    ) -> tuple[FrozenTrial, str]:
        """(the winner among the finished trials, best first; why it won). Scored on folds (noise-aware), a
        stage keeps its incumbent (its first trial, the values carried in) while that is within one standard
        error of the best: a change must be more than noise."""
        best = ranked[0]
        slack = judge.slack(best) if "se" in best.user_attrs else 0.0
        incumbent = next((t for t in ranked if t.number == 0), None) if self.from_incumbent else None
        if slack > 0 and incumbent is not None and abs((incumbent.value or 0.0) - (best.value or 0.0)) <= slack:
            evidence["one_se"] = {"best": label(best), "se": round(slack, 6), "kept": label(incumbent)}
            return incumbent, (
                f"the incumbent's score {incumbent.value:.4g} is within one standard error ({slack:.3g}) of the best "
                f"{best.value:.4g} (trial {label(best)}): no change beyond noise"
            )
        se = f" ± {slack:.3g} (one standard error over {judge.repeats} folds)" if slack > 0 else ""
        return best, f"best validation score {best.value:.4g}{se} among {len(ranked)} finished trials"

    def describe(self, stage: Stage) -> tuple[str, list[str]]:
        """For the plan: (a note after the stage's line, lines under it)."""
        return "", []


class Capacity(StageKind):
    """T40, T22: can the model fit? Regularization off, the LR a nuisance; the smallest model that fits wins."""

    name = "capacity"
    held = REGULARIZATION_OFF

    def plan_space(self, space: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        own = super().plan_space(space)
        return {**own, **{key: space[key] for key in NUISANCE if key in space}} if own else own

    def pick(
        self, ranked: list[FrozenTrial], judge: Criteria, evidence: dict[str, Any], label: Callable[[FrozenTrial], int]
    ) -> tuple[FrozenTrial, str]:
        return _capacity_winner(ranked, judge, evidence, label)

    def seeded(self, space: dict[str, ParamSpec], start: dict[str, Any]) -> list[dict[str, Any]]:
        """T44 taken to its end: the linear model (depth 0) at the top of the LR range, where its zero-initialized
        weights converge within a trial (drawn at random, it rarely gets an LR it can converge at)."""
        depth, lr = space.get("model.depth"), space.get("train.lr")
        if depth is None or not depth.admits(0) or start.get("model.depth") == 0:
            return []
        return [{**start, "model.depth": 0, **({"train.lr": lr.high} if lr is not None and lr.high else {})}]

    def describe(self, stage: Stage) -> tuple[str, list[str]]:
        nuisance = ", the LR a nuisance (each model at a good LR)" if "train.lr" in stage.space else ""
        lines = []
        family = stage.evidence.get("family")
        if family is not None and "model.family" in stage.space:
            lines.append(f"(the family is a choice, T10: {family['why']})")
        depth = stage.space.get("model.depth")
        if depth is not None and depth.low == 0:
            lines.append("(depth 0 is the linear model, the smallest candidate: it wins within one standard error)")
        return f"; regularization off{nuisance}", lines


class LearningRate(StageKind):
    """T31, T33: the LR and batch size, narrowed by the prechecks run on the capacity winner."""

    name = "lr"

    def measures(self, space: dict[str, ParamSpec]) -> bool:
        return bool({"train.lr", "train.batch_size"} & set(space))

    def search_space(
        self, space: dict[str, ParamSpec], done: list[Outcome], evidence: LrEvidence
    ) -> dict[str, ParamSpec]:
        return narrow(space, evidence)

    def baseline(self, space: dict[str, ParamSpec], evidence: LrEvidence) -> dict[str, Any]:
        return suggested_lr(space, evidence)

    def describe(self, stage: Stage) -> tuple[str, list[str]]:
        if not self.measures(stage.space):
            return "", []
        return "", ["(narrowed at its start: LR range test and batch-size finder on the capacity winner)"]


class Regularization(StageKind):
    """T15, T41-T44: dropout, weight decay, max-norm, augmentation, patience; the model may shrink."""

    name = "regularization"
    kept_edges = frozenset((key, "upper") for key in SHRINKABLE)  # T44: never larger than the capacity winner

    def search_space(
        self, space: dict[str, ParamSpec], done: list[Outcome], evidence: LrEvidence
    ) -> dict[str, ParamSpec]:
        return shrink_space(space, next((o for o in done if o.name == Capacity.name), None))

    def describe(self, stage: Stage) -> tuple[str, list[str]]:
        return "", ["(width/depth may also shrink below the capacity winner, T44)"]


class Flat(StageKind):
    """--strategy flat: the whole space in one stage, sampled from its first trial."""

    name = "flat"
    from_incumbent = False


STAGED: tuple[StageKind, ...] = (Capacity(), LearningRate(), Regularization())  # in order; tune.shares follows it
STAGES: dict[str, StageKind] = {kind.name: kind for kind in (*STAGED, Flat())}


def _fmt(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
