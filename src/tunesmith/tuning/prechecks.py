"""What the playbook measures besides its trials (T40, T31, T33), and how it uses it.

- overfit one batch (T40), once, before the first trial: the starting model, regularization off,
  trained on one mini-batch of training rows for up to `STEPS` steps, must drive that batch's loss
  far below the chance level. When it cannot, no amount of tuning will help: the evidence points
  at a bug (labels, loss, LR).
- the linear probe (T62), once, before the first trial when a pretrained backbone is tuned: the backbone
  frozen and a linear head solved on its embeddings (train/probe.py), scored on the validation split. It
  costs one pass of embeddings and is the first evidence: fine-tuning must beat it, and the final choice
  (tuning/final.py) delivers the probe when the best fine-tuned model does not, by more than a standard error.
- noise (issue 14), once, before the first trial: the starting recipe trained under NOISE_SEEDS seeds
  on the same split. When the validation split is small (under SMALL_VAL rows) or the seeds' spread
  is more than NOISE_SHARE of the recipe's lead over the constant predictor (the differences the
  search must resolve are a fraction of that lead), one validation score decides nothing: every
  trial is then scored by CV_FOLDS-fold cross-validation over train+val (mean and standard error),
  and the stages choose within one standard error. Large splits (LARGE_VAL rows) are trusted
  without measuring.
- at the start of the lr stage, on the model the capacity stage chose (the one the lr stage
  trains): the LR range test (T31, tunesmith.train.lr_find), whose suggestion, when its rules
  agree, narrows the lr stage to a decade either side and is its first trial's LR; and the
  batch-size finder (T33, tunesmith.train.batch_size), which drops the batch sizes larger than
  the one that still buys throughput. Measuring the chosen model rather than the starting one is
  what the playbook's order means (capacity first, then its LR), and it keeps both measurements
  off the path to the first trial.

All of them read training rows only: the validation rows are for scoring trials, the test rows for
the one final evaluation.
"""

from __future__ import annotations

import time

from tunesmith.errors import TrainingDiverged
from tunesmith.runsetup import RunSetup
from tunesmith.train.batch_size import find_batch_size
from tunesmith.train.callbacks import Callback
from tunesmith.train.lr_find import lr_find
from tunesmith.train.trainer import Trainer
from tunesmith.tuneconfig import ParamSpec
from tunesmith.tuning.evidence import LrEvidence, NoiseEvidence, OverfitEvidence, ProbeEvidence
from tunesmith.tuning.objective import train_trial
from tunesmith.tuning.playbook import REGULARIZATION_OFF

__all__ = [
    "CV_FOLDS",
    "NOISE_SEEDS",
    "describe",
    "linear_probe",
    "lr_prechecks",
    "measure_noise",
    "overfit_one_batch",
]

BATCH_ROWS = 64  # the one batch the model must memorize
STEPS = 100  # optimizer steps on it (Adam memorizes 64 rows in far fewer)
NOISE_SEEDS = 3  # seeds the starting recipe is trained under to measure the spread of its score
NOISE_SHARE = 0.02  # a spread above this share of the lead over the constant predictor is noise worth folds
SMALL_VAL = 200  # validation rows below which one split's score is noisy whatever the seeds say
LARGE_VAL = 2000  # validation rows from which one split's score is trusted without measuring
CV_FOLDS = 5  # folds a trial is scored on when one split is too noisy


def linear_probe(setup: RunSetup, *, metric: str, maximize: bool) -> ProbeEvidence:
    """T62: the backbone's linear probe (train.solver=exact) scored on the validation split, and what it cost."""
    started = time.perf_counter()
    value = train_trial(setup.with_overrides({"train.solver": "exact"}), metric=metric, maximize=maximize).value
    seconds = time.perf_counter() - started
    why = (
        f"the linear probe (the backbone frozen, a linear head on its embeddings) scores val {metric} {value:.4g} in "
        f"{seconds:.1f} s: fine-tuning must beat it"
    )
    return {"value": round(value, 6), "seconds": round(seconds, 3), "why": why}


def measure_noise(setup: RunSetup, *, metric: str, maximize: bool, epochs: int) -> NoiseEvidence:
    """Whether one validation score can rank trials (repeats 1) or each trial needs CV_FOLDS folds."""
    from statistics import mean, stdev

    from tunesmith.baselines import fit_baselines

    val_rows = len(setup.prep.x_val)
    if val_rows >= LARGE_VAL:
        return {"val_rows": val_rows, "repeats": 1, "why": f"{val_rows} validation rows: one split is trusted"}
    scores = [
        train_trial(
            setup.with_overrides({"train.seed": seed, "train.epochs": epochs}), metric=metric, maximize=maximize
        ).value
        for seed in range(NOISE_SEEDS)
    ]
    constant = fit_baselines(setup.prep)["constant"].get("val", {}).get(metric)
    spread = stdev(scores)
    lead = abs(mean(scores) - constant) if constant is not None else 0.0
    noisy = val_rows < SMALL_VAL or spread > NOISE_SHARE * lead
    if val_rows < SMALL_VAL:
        why = f"{val_rows} validation rows (< {SMALL_VAL}): one split's score is noisy"
    else:
        why = (
            f"the seed-to-seed spread {spread:.3g} is {'more' if noisy else 'less'} than {NOISE_SHARE:.0%} of the "
            f"starting recipe's lead {lead:.3g} over the constant predictor"
        )
    repeats = CV_FOLDS if noisy else 1
    why += f": each trial is scored by {CV_FOLDS}-fold cross-validation" if noisy else ": one split per trial"
    rounded = [round(s, 6) for s in scores]
    return {
        "val_rows": val_rows,
        "seed_scores": rounded,
        "spread": round(spread, 6),
        "lead": round(lead, 6),
        "repeats": repeats,
        "why": why,
    }


def overfit_one_batch(setup: RunSetup, *, below: float) -> OverfitEvidence:
    """T40: can the starting model memorize one batch? (loss before/after, and whether it got below `below`)."""
    rows = min(BATCH_ROWS, len(setup.prep.x_train))
    held = {**REGULARIZATION_OFF, "train.epochs": STEPS, "train.batch_size": rows, "train.schedule": "constant"}
    probe = setup.with_overrides(held)
    trainer = probe.trainer(probe.new_model(), callbacks=[_StopBelow(below)], augment=False)
    batch = (setup.prep.x_train[:rows], setup.prep.y_train[:rows])
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


def lr_prechecks(setup: RunSetup, *, space: dict[str, ParamSpec]) -> LrEvidence:
    """The LR range test and the batch-size finder on `setup`'s model (a user's module, else the
    recipe's), as JSON-ready evidence for tuning.json; `space` bounds the batch sizes measured."""
    cfg, task = setup.recipe.train, setup.facts.task
    found = lr_find(setup.new_model(), setup.train, task=task, cfg=cfg, seed=cfg.seed)
    out: LrEvidence = {
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
    sized = find_batch_size(setup.new_model(), setup.train, task=task, cfg=cfg, device=cfg.device, max_batch=cap)
    out["batch_size"] = {"batch_size": sized.batch_size, "reason": sized.reason}
    return out


def describe(evidence: LrEvidence) -> list[str]:
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
