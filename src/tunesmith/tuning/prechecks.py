"""What the playbook measures besides its trials (T40, T31, T33), and how it uses it.

- overfit one batch (T40), once, before the first trial: the starting model, regularization off,
  trained on one mini-batch of training rows for up to `STEPS` steps, must drive that batch's loss
  far below the chance level. When it cannot, no amount of tuning will help: the evidence points
  at a bug (labels, loss, LR).
- at the start of the lr stage, on the model the capacity stage chose (the one the lr stage
  trains): the LR range test (T31, tunesmith.tuning.lr_find), whose suggestion, when its rules
  agree, narrows the lr stage to a decade either side and is its first trial's LR; and the
  batch-size finder (T33, tunesmith.tuning.batch_size), which drops the batch sizes larger than
  the one that still buys throughput. Measuring the chosen model rather than the starting one is
  what the playbook's order means (capacity first, then its LR), and it keeps both measurements
  off the path to the first trial.

All of them read training rows only: the validation rows are for scoring trials, the test rows for
the one final evaluation.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from tunesmith.data import Prepared
from tunesmith.errors import TrainingDiverged
from tunesmith.models import fresh_model
from tunesmith.recipe import Recipe, resolve
from tunesmith.repro import seed_everything
from tunesmith.train.callbacks import Callback
from tunesmith.train.trainer import Trainer
from tunesmith.tuning.batch_size import find_batch_size
from tunesmith.tuning.lr_find import lr_find
from tunesmith.tuning.playbook import REGULARIZATION_OFF
from tunesmith.tuning.space import ParamSpec

__all__ = ["describe", "lr_prechecks", "narrow", "overfit_one_batch", "suggested_lr"]

BATCH_ROWS = 64  # the one batch the model must memorize
STEPS = 100  # optimizer steps on it (Adam memorizes 64 rows in far fewer)


def overfit_one_batch(
    recipe: Recipe, prep: Prepared, *, below: float, model: nn.Module | None = None
) -> dict[str, Any]:
    """T40: can the starting model memorize one batch? (loss before/after, and whether it got below `below`)."""
    rows = min(BATCH_ROWS, len(prep.x_train))
    held = {**REGULARIZATION_OFF, "train.epochs": STEPS, "train.batch_size": rows, "train.schedule": "constant"}
    resolved = resolve(recipe.with_overrides(held), prep.facts)
    facts = prep.facts
    seed_everything(resolved.train.seed)
    net = fresh_model(resolved.model, facts, model)
    trainer = Trainer(net, cfg=resolved.train, task=facts.task, callbacks=[_StopBelow(below)])
    batch = (prep.x_train[:rows], prep.y_train[:rows])
    try:
        trainer.fit(batch)  # one step per epoch: the batch is the whole training set here
    except TrainingDiverged as exc:
        return {"rows": rows, "steps": len(trainer.history), "passed": False, "diverged": str(exc)[:300]}
    first, last = trainer.history[0]["train_loss"], trainer.history[-1]["train_loss"]
    return {
        "rows": rows,
        "steps": len(trainer.history),  # at most STEPS: the check ends once the batch is memorized
        "loss_first": round(first, 6),
        "loss_last": round(last, 6),
        "below": round(below, 6),
        "passed": last <= below,
    }


class _StopBelow(Callback):
    """Ends the overfit check at the first step whose loss is below the bar: passing needs no more."""

    def __init__(self, below: float) -> None:
        self.below = below

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        if row["train_loss"] <= self.below:
            trainer.should_stop = True


def lr_prechecks(
    recipe: Recipe, prep: Prepared, *, space: dict[str, ParamSpec], model: nn.Module | None = None
) -> dict[str, Any]:
    """The LR range test and the batch-size finder on `recipe`'s model (a user's module, else the
    recipe's), as JSON-ready evidence for tuning.json; `space` bounds the batch sizes measured."""
    resolved = resolve(recipe, prep.facts)
    facts = prep.facts
    train = (prep.x_train, prep.y_train)

    def starting() -> Any:
        seed_everything(resolved.train.seed)
        return fresh_model(resolved.model, facts, model)

    found = lr_find(starting(), train, task=facts.task, cfg=resolved.train, seed=resolved.train.seed)
    out: dict[str, Any] = {
        "lr_find": {
            "suggestion": found.suggestion,
            "agree": found.agree,
            "warning": found.warning,
            "suggestions": found.suggestions,
        }
    }
    batch = space.get("train.batch_size")
    sizes = [int(b) for b in batch.grid(2)] if batch is not None else []  # the largest size the space offers
    cap = max(sizes, default=None)
    device = resolved.train.device
    sized = find_batch_size(starting(), train, task=facts.task, cfg=resolved.train, device=device, max_batch=cap)
    out["batch_size"] = {"batch_size": sized.batch_size, "reason": sized.reason}
    return out


def describe(evidence: dict[str, Any]) -> list[str]:
    """The lr prechecks in a line each, for the log."""
    lines = []
    found, sized = evidence.get("lr_find"), evidence.get("batch_size")
    if found is not None:
        rules = ", ".join(f"{rule} {lr:.2g}" for rule, lr in found["suggestions"].items())
        verdict = "agree: a decade either side is searched" if found["agree"] else "disagree: the range is kept"
        lines.append(f"LR range test: {rules}; the rules {verdict}")
    if sized is not None:
        lines.append(f"batch-size finder: up to {sized['batch_size']} ({sized['reason']})")
    return lines


def suggested_lr(space: dict[str, ParamSpec], evidence: dict[str, Any]) -> dict[str, float]:
    """T31: the lr stage's first trial takes the range test's suggestion when its rules agree (and the
    space admits it); {} otherwise, so the recipe's lr stays the baseline."""
    found, lr = evidence.get("lr_find", {}), space.get("train.lr")
    if lr is None or not found.get("agree") or not lr.admits(found["suggestion"]):
        return {}
    return {"train.lr": found["suggestion"]}


def narrow(space: dict[str, ParamSpec], evidence: dict[str, Any]) -> dict[str, ParamSpec]:
    """The lr stage's space after the range test and the batch-size finder (unchanged keys stay as declared)."""
    space = dict(space)
    lr, found = space.get("train.lr"), evidence.get("lr_find", {})
    if lr is not None and lr.type == "float" and found.get("agree"):
        assert lr.low is not None and lr.high is not None
        low, high = max(lr.low, found["suggestion"] / 10), min(lr.high, found["suggestion"] * 10)
        if low < high:
            space["train.lr"] = ParamSpec(type="float", low=low, high=high, log=True)
    batch, cap = space.get("train.batch_size"), evidence.get("batch_size", {}).get("batch_size")
    if batch is not None and cap is not None:
        if batch.type == "categorical":
            kept = [b for b in batch.choices or [] if b <= cap] or [min(batch.choices or [cap])]
            space["train.batch_size"] = ParamSpec(type="categorical", choices=kept)
        elif batch.low is not None and batch.high is not None:
            space["train.batch_size"] = ParamSpec(type="int", low=batch.low, high=max(batch.low, min(batch.high, cap)))
    return space
