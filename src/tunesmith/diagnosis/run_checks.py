"""Checks on the seeded short training run: learning rate, schedule, capacity, determinism (T31-T34, T40, T50, T62).

The short run (`ctx.run`) is shared; LR probes (the same run at other learning rates) run only
when its curve is suspicious. A learning rate is called too high only when a 10x-1000x lower one
does clearly better in the same number of steps (lower rates are at a disadvantage in a short run,
so the verdict is conservative), and too low only when the loss barely moves while a higher rate
(the range test's suggestion, T31, or 10x/100x) moves it (Karpathy 2019; AUTOTRAINER's
"oscillating loss" and "slow convergence"; Smith 2017 for the range test). One batch must be
memorized (Karpathy 2019, T40, T62); the first steps, repeated with the same seed, must give the
same losses (T50); the LR schedule is simulated over the whole training, step by step (T32).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt, series
from tunesmith.diagnosis.shortrun import RunRecord, short_run
from tunesmith.diagnosis.targets import accuracy
from tunesmith.errors import BadInput
from tunesmith.repro import seed_everything
from tunesmith.train.optim import Schedule
from tunesmith.train.trainer import probe_trainer

__all__ = ["CannotOverfitBatch", "LrSchedule", "LrTooHigh", "LrTooLow", "Nondeterminism"]

BATCH_ROWS, BATCH_STEPS, BATCH_EVERY = 16, 300, 25  # overfit one small batch (Karpathy 2019)
BATCH_R2 = 0.9  # regression: explain 90% of the batch's variance
RISE = 0.25  # the smoothed training loss ends 25% above its minimum: unstable
BETTER = 0.1  # a probe ends lower by at least 10% of the starting loss
PROGRESS = 0.1  # the loss moved less than 10% of its starting value: barely moves
SLOW = 0.5  # removed less than half of the starting loss: worth probing lower rates
REPEAT_STEPS = 10
REPEAT_TOLERANCE = 1e-6
LR_FLOOR, FLOOR_SHARE = 0.01, 0.25  # a quarter of the steps below 1% of the peak LR
MAX_SIMULATED = 200_000


def _start(ctx: Context) -> float:
    """The loss before any update: mean over a few batches at initialization."""
    loss = ctx.init.loss
    return loss if math.isfinite(loss) else float(ctx.run.losses[0])


def _progress(run: RunRecord, start: float) -> float:
    """Share of `start` removed by the end of the run."""
    return (start - run.end_loss) / start if start > 0 else 0.0


def _moved(run: RunRecord) -> float:
    """Share of the loss removed between the run's first tenth and its last fifth (minibatch means, like for like)."""
    if run.diverged_at is not None:
        return -math.inf
    head = float(np.mean(run.losses[: max(1, len(run.losses) // 10)]))
    return 1 - run.end_loss / head if head > 0 else 0.0


def _smooth(losses: np.ndarray) -> np.ndarray:
    window = max(1, len(losses) // 10)
    return np.convolve(losses, np.ones(window) / window, mode="valid")


def _clearly_better(probe: RunRecord, run: RunRecord, start: float) -> bool:
    return probe.diverged_at is None and probe.end_loss < start and run.end_loss - probe.end_loss > BETTER * start


@register_check
class CannotOverfitBatch(Check):
    """Train on one batch of 16 rows: a working setup memorizes it (all correct, or R2 >= 0.9)."""

    id = "cannot_overfit_batch"
    group = "run"
    tricks = ("T40", "T62")

    def run(self, ctx: Context) -> Finding:
        ctx.require_loss()
        x, y = ctx.probe_batch(BATCH_ROWS)
        net = ctx.fresh_model()
        seed_everything(ctx.cfg.seed)
        trainer = probe_trainer(net, ctx.cfg, task=ctx.task, loss_fn=ctx.loss_fn, optimizer=ctx.make_optimizer(net))
        score, step = self._score(ctx, net, x, y), 0
        history = [score]
        while score < self._target(ctx) and step < BATCH_STEPS:
            for _ in range(BATCH_EVERY):
                trainer.train_step(x, y)
            step += BATCH_EVERY
            score = self._score(ctx, net, x, y)
            history.append(score)
        target = self._target(ctx)
        what = "accuracy" if ctx.task == "classification" else "R2"
        evidence: dict[str, Any] = {"value": score, "threshold": target, "steps": step, "scores": history}
        if score < target:
            return self.found(
                "fail",
                f"After {step} steps on one batch of {len(x)} rows the {what} is only "
                f"{measured(score, target, above=False)}: "
                "the setup cannot memorize 16 examples, so it cannot learn the data.",
                advice="Make it overfit one batch first (T40), with a small model and few rows (T62): look for frozen "
                "or detached parameters, a model that ignores its input, a learning rate far off, heavy dropout.",
                **evidence,
            )
        return self.ok(f"Memorizes one batch of {len(x)} rows in {step} steps ({what} {fmt(score)}).", **evidence)

    @staticmethod
    def _target(ctx: Context) -> float:
        return 1.0 if ctx.task == "classification" else BATCH_R2

    @staticmethod
    @torch.no_grad()
    def _score(ctx: Context, net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        net.eval()
        out = net(x)
        net.train()
        if not torch.isfinite(out).all():
            return -math.inf
        if ctx.task == "classification":
            return accuracy(out, y, ctx.loss_fn, ctx.family)
        target = y.reshape(len(y), -1).double()
        residual = (out.reshape(target.shape).double() - target).pow(2).sum()
        total = (target - target.mean(dim=0)).pow(2).sum()
        return float(1 - residual / total) if total > 0 else 1.0


@register_check
class LrTooHigh(Check):
    """The loss diverges, rises again or falls slowly; a 10x-1000x lower learning rate does clearly better."""

    id = "lr_too_high"
    group = "run"
    tricks = ("T31", "T34")

    def run(self, ctx: Context) -> Finding:
        run, start = ctx.run, _start(ctx)
        finite = run.finite
        smooth = _smooth(finite) if len(finite) else np.array([math.inf])
        low = int(np.argmin(smooth))
        # a rise counts when it is large relative to the minimum and to the starting loss (not 0.001 -> 0.002)
        rise = float(smooth[-1] / smooth[low] - 1) if smooth[-1] - smooth[low] > BETTER * start else 0.0
        evidence: dict[str, Any] = {"value": rise, "threshold": RISE, "losses": series(finite), "lr": run.lr}
        if run.diverged_at is None and _progress(run, start) >= SLOW and rise <= RISE:
            return self.ok(
                f"The loss falls steadily at lr {fmt(run.lr)} ({fmt(start)} -> {fmt(run.end_loss)}).", **evidence
            )
        for factor in (0.1, 0.01, 0.001):
            probe = ctx.probe(factor)
            if _clearly_better(probe, run, start):
                if run.diverged_at is not None:
                    how = f"diverges at step {run.diverged_at}"
                elif rise > RISE:
                    how = (
                        f"rises from step {low} ({fmt(float(smooth[low]))} -> {fmt(float(smooth[-1]))}, "
                        f"{measured(rise, RISE)})"
                    )
                elif run.end_loss >= start:
                    how = f"ends at {fmt(run.end_loss)}, above where it started ({fmt(start)})"
                else:
                    how = f"only falls from {fmt(start)} to {fmt(run.end_loss)}"
                evidence.update(
                    value=run.end_loss, threshold=probe.end_loss, probe_lr=probe.lr, probe_losses=series(probe.finite)
                )
                return self.found(
                    "fail" if run.diverged_at is not None else "warn",
                    f"At lr {fmt(run.lr)} the loss {how}; at lr {fmt(probe.lr)} it falls to {fmt(probe.end_loss)}: "
                    f"the learning rate is about {round(1 / factor)}x too high.",
                    advice=f"Lower the learning rate (try {probe.lr:.1g}, or run `tunesmith lr-find`, T31); clip the "
                    "gradient norm (T34: train.clip_norm=1.0) if spikes remain.",
                    **evidence,
                )
        return self.found(
            "info",
            f"The loss curve at lr {fmt(run.lr)} is slow or unsteady, but 10x to 1000x lower rates do no better: "
            "look elsewhere (data, loss, model).",
            **evidence,
        )


@register_check
class LrTooLow(Check):
    """The loss barely moves while a 10x or 100x higher learning rate moves it."""

    id = "lr_too_low"
    group = "run"
    tricks = ("T31",)

    def run(self, ctx: Context) -> Finding:
        run = ctx.run
        if run.diverged_at is not None:
            raise Skip("the run diverged (see lr_too_high)")
        progress = _moved(run)
        evidence: dict[str, Any] = {
            "value": progress,
            "threshold": PROGRESS,
            "losses": series(run.losses),
            "lr": run.lr,
        }
        if progress >= PROGRESS:
            return self.ok(f"The loss fell {progress:.0%} in {len(run.losses)} steps at lr {fmt(run.lr)}.", **evidence)
        for factor in self._factors(ctx):
            probe = ctx.probe(factor)
            moved = _moved(probe)
            if moved >= max(PROGRESS, 2 * progress):
                evidence.update(probe_lr=probe.lr, probe_progress=moved, probe_losses=series(probe.losses))
                return self.found(
                    "warn",
                    f"In {len(run.losses)} steps at lr {fmt(run.lr)} the loss moved {progress:.1%} "
                    f"({measured(progress, PROGRESS, above=False)}); at lr {fmt(probe.lr)} it falls {moved:.0%}.",
                    advice=f"Raise the learning rate (try {probe.lr:.1g}, or run `tunesmith lr-find` for a range "
                    "test, T31).",
                    **evidence,
                )
        return self.found(
            "info",
            f"The loss barely moves ({progress:.1%}), but higher rates do not help: not the learning rate.",
            **evidence,
        )

    @staticmethod
    def _factors(ctx: Context) -> list[float]:
        """LR multipliers to probe: the range test's valley and slide suggestions (T31, the two rules fastai
        found most reliable; the valley swings with the batch order) when 10x higher, then 10x, 100x."""
        from tunesmith.train.lr_find import lr_find

        net = ctx.fresh_model()
        factors = [10.0, 100.0]
        try:
            found = lr_find(
                net,
                ctx.train,
                task=ctx.task,
                cfg=ctx.cfg,
                loss_fn=ctx.loss_fn,
                optimizer=ctx.make_optimizer(net),
                seed=ctx.cfg.seed,
            )
            suggested = sorted({found.suggestions[rule] / ctx.lr for rule in ("valley", "slide")})
            factors[:0] = [f for f in suggested if f >= 10]
        except BadInput:  # the range test diverged too early to suggest anything
            pass
        finally:
            ctx.restore_loader()
        return factors


@register_check
class Nondeterminism(Check):
    """The first steps twice with the same seed and batches: the losses must match (T50)."""

    id = "nondeterminism"
    group = "run"
    tricks = ("T50",)

    def run(self, ctx: Context) -> Finding:
        a, b = (short_run(ctx, steps=REPEAT_STEPS, evals=False).losses for _ in range(2))
        both = np.isfinite(a) & np.isfinite(b)
        scale = float(np.abs(a[both]).max()) if both.any() else 1.0
        diff = float(np.abs(a[both] - b[both]).max()) / scale if both.any() else 0.0
        if (np.isfinite(a) != np.isfinite(b)).any():
            diff = math.inf
        evidence: dict[str, Any] = {
            "value": diff,
            "threshold": REPEAT_TOLERANCE,
            "run_a": series(a),
            "run_b": series(b),
        }
        if diff > REPEAT_TOLERANCE:
            return self.found(
                "warn",
                f"Two runs with the same seed and batches give different losses (relative difference "
                f"{measured(diff, REPEAT_TOLERANCE)}): results cannot be reproduced or compared.",
                advice="Draw every random number from seeded generators (torch/NumPy/random seeded once, T50); avoid "
                "unseeded np.random.default_rng(), time-based seeds and OS entropy in the model and the data.",
                **evidence,
            )
        return self.ok(f"Same seed, same losses over {REPEAT_STEPS} steps.", **evidence)


@register_check
class LrSchedule(Check):
    """Simulate the schedule over the whole training: time spent below 1% of the peak LR (T32)."""

    id = "lr_schedule"
    group = "run"
    tricks = ("T32",)

    def run(self, ctx: Context) -> Finding:
        cfg = ctx.cfg
        if cfg.schedule == "plateau":
            raise Skip("reduce-on-plateau follows the validation loss: it cannot be simulated ahead")
        per_epoch = ctx.steps_per_epoch
        total = cfg.n_epochs * per_epoch
        if total > MAX_SIMULATED:
            raise Skip(f"{total} steps are too many to simulate")
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=ctx.lr)
        lrs = []
        with warnings.catch_warnings():  # no optimizer steps here: torch warns about the order
            warnings.simplefilter("ignore", UserWarning)
            schedule = Schedule(optimizer, cfg, per_epoch)
            for _ in range(total):
                lrs.append(optimizer.param_groups[0]["lr"])
                if len(lrs) < total:
                    schedule.step()
        curve = np.asarray(lrs)
        low = curve < LR_FLOOR * curve.max()
        share = float(low.mean())
        evidence: dict[str, Any] = {
            "value": share,
            "threshold": FLOOR_SHARE,
            "schedule": cfg.schedule,
            "lr": series(curve),
        }
        if share > FLOOR_SHARE:
            first = int(np.argmax(low))
            return self.found(
                "warn",
                f"The {cfg.schedule} schedule drops below 1% of the peak LR at epoch {first // per_epoch + 1} of "
                f"{cfg.epochs}: {measured(share, FLOOR_SHARE)} of the steps barely move the weights.",
                advice="Decay more slowly or train fewer epochs: cosine or one-cycle over the whole run (T32).",
                **evidence,
            )
        return self.ok(
            f"The {cfg.schedule} schedule keeps the LR above 1% of its peak for {1 - share:.0%} of the steps.",
            **evidence,
        )
