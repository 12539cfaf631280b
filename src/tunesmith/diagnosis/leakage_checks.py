"""Leakage and split checks: does validation measure what it should? (catalog T03, T07, T51, T67).

None of the training-debugging tools (TheDeepChecker, AUTOTRAINER, Cockpit) checks these; they
are deepchecks' train-test validation ideas, adapted: rows copied across the split, a single
feature that predicts the target almost perfectly on held-out rows (deepchecks' feature-label
predictive power score, measured here by a one-feature decision tree scored on validation rows
and normalized so that chance is 0 and perfect is 1), validation rows older than training rows,
groups in both splits, feature distributions that differ between the splits (two-sample
Kolmogorov-Smirnov with a Bonferroni-corrected significance level and deepchecks' effect size
0.1), and batches served sorted by target (compared with the same targets shuffled).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy import stats

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.data_checks import row_groups
from tunesmith.diagnosis.finding import Finding, fmt
from tunesmith.diagnosis.targets import hard_labels

__all__ = [
    "DistributionShift",
    "GroupLeakage",
    "TargetLeakage",
    "TimeLeakage",
    "TrainValDuplicates",
    "UnshuffledBatches",
]

CROSS_COPIES = 0.01  # share of validation rows copied from training, above the data's own duplicate rate
LEAK_SCORE = 0.98  # one feature alone: normalized held-out accuracy or R2
MAX_LEAK_FEATURES = 64  # features scored by a tree (the most target-related ones when there are more)
TREE_ROWS = 5000  # rows a one-feature tree is fitted on
ALPHA = 1e-3  # family-wise significance level of the distribution-shift tests (Bonferroni over features)
SHIFT_EFFECT = 0.1  # deepchecks' default drift threshold: a KS distance (or class-share distance) above 0.1
SHUFFLES = 20  # shuffled orders that estimate batch purity under shuffling


def _val(ctx: Context) -> None:
    if ctx.x_val is None:
        raise Skip("needs validation data (val=...)")


@register_check
class TrainValDuplicates(Check):
    """Validation rows whose exact input also occurs in training."""

    id = "train_val_duplicates"
    group = "data"
    tricks = ("T03", "T51")

    def run(self, ctx: Context) -> Finding:
        _val(ctx)
        train, val = ctx.rows("train"), ctx.rows("val")
        ids, counts = row_groups(np.concatenate([train, val]))
        in_train = np.zeros(len(counts), bool)
        in_train[ids[: len(train)]] = True
        share = float(in_train[ids[len(train) :]].mean())
        own = float((row_groups(train)[1] - 1).sum() / len(train))  # how often rows repeat by themselves
        limit = CROSS_COPIES + own
        evidence: dict[str, Any] = {"value": share, "threshold": limit, "rows": int(in_train[ids[len(train) :]].sum())}
        advice = (
            "Drop exact duplicates before splitting (T03), and split by the entity the copies come from "
            "(a group split, T51), so validation rows are new to the model."
        )
        if share > limit:
            return self.found(
                "warn",
                f"{share:.1%} of the validation rows also occur in training ({measured(share, limit)}): validation "
                "partly measures memorization.",
                advice=advice,
                **evidence,
            )
        if share > 0:
            return self.found(
                "info", f"{evidence['rows']} validation rows also occur in training.", advice=advice, **evidence
            )
        return self.ok("No validation row occurs in training.", **evidence)


@register_check
class TargetLeakage(Check):
    """A single feature that predicts the target almost perfectly on held-out rows."""

    id = "target_leakage"
    group = "data"
    tricks = ()  # the fix (dropping the feature) is not a catalog trick

    def run(self, ctx: Context) -> Finding:
        if ctx.task == "reconstruction":
            raise Skip("a reconstruction target is the input itself")
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        x, y = ctx.rows("train"), ctx.targets("train")
        if ctx.x_val is not None:
            xv, yv = ctx.rows("val"), ctx.targets("val")
        else:  # hold out a seeded fifth of the training rows
            order = np.random.default_rng(ctx.cfg.seed).permutation(len(x))
            cut = len(x) // 5
            (xv, yv), (x, y) = (x[order[:cut]], y[order[:cut]]), (x[order[cut:]], y[order[cut:]])
        x, y = x[:TREE_ROWS], y[:TREE_ROWS]
        names = ctx.column_names(x.shape[1])
        classify = ctx.task == "classification"
        model = (
            DecisionTreeClassifier(max_leaf_nodes=32, min_samples_leaf=5, random_state=0)
            if classify
            else DecisionTreeRegressor(max_leaf_nodes=32, min_samples_leaf=5, random_state=0)
        )
        scores = {
            j: self._score(model, x[:, j : j + 1], y, xv[:, j : j + 1], yv, classify)
            for j in self._candidates(x, y, classify)
        }
        j = max(scores, key=lambda k: scores[k])
        evidence: dict[str, Any] = {
            "value": scores[j],
            "threshold": LEAK_SCORE,
            "feature": names[j],
            "scored_features": len(scores),
        }
        if scores[j] >= LEAK_SCORE:
            return self.found(
                "fail",
                f"{names[j]} alone predicts the target on held-out rows with score {measured(scores[j], LEAK_SCORE)} "
                "(0 = chance, 1 = perfect): it almost certainly leaks the target.",
                advice=f"Find out how {names[j]} is computed; drop it if it is derived from the target or only known "
                "after the outcome. Every validation number is inflated while it stays.",
                **evidence,
            )
        return self.ok(
            f"No single feature predicts the target almost perfectly (best {names[j]}: {fmt(scores[j])}).", **evidence
        )

    @staticmethod
    def _candidates(x: np.ndarray, y: np.ndarray, classify: bool) -> list[int]:
        """Column indices worth a tree: all of them, or the most target-related by a linear screen."""
        if x.shape[1] <= MAX_LEAK_FEATURES:
            return list(range(x.shape[1]))
        centered = x - x.mean(axis=0)
        if classify:  # correlation ratio: the share of a feature's variance explained by the class means
            classes, counts = np.unique(y, return_counts=True)
            means = np.stack([x[y == c].mean(axis=0) for c in classes])
            weights = counts / len(y)
            between = (weights[:, None] * (means - x.mean(axis=0)) ** 2).sum(axis=0)
            strength = between / np.maximum(x.var(axis=0), 1e-12)
        else:
            t = y.reshape(len(y), -1)
            t = (t - t.mean(axis=0)) / np.maximum(t.std(axis=0), 1e-12)
            corr = centered.T @ t / len(x) / np.maximum(x.std(axis=0), 1e-12)[:, None]
            strength = np.abs(corr).max(axis=1)
        return list(np.argsort(strength)[::-1][:MAX_LEAK_FEATURES])

    @staticmethod
    def _score(model: Any, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, classify: bool) -> float:
        """Held-out score of a one-feature tree: normalized accuracy (0 = majority class) or R2."""
        from sklearn.base import clone

        fitted = clone(model).fit(x, y if classify else y.reshape(len(y), -1))
        pred = fitted.predict(xv)
        if classify:
            chance = np.unique(yv, return_counts=True)[1].max() / len(yv)
            return float(((pred == yv).mean() - chance) / (1 - chance)) if chance < 1 else 0.0
        target = yv.reshape(len(yv), -1)
        pred = pred.reshape(len(pred), -1)
        residual = ((target - pred) ** 2).sum(axis=0)
        total = ((target - target.mean(axis=0)) ** 2).sum(axis=0)
        return float(np.max(1 - residual / np.maximum(total, 1e-12)))


@register_check
class TimeLeakage(Check):
    """Validation rows older than the newest training row (time given)."""

    id = "time_leakage"
    group = "data"
    tricks = ("T51",)

    def run(self, ctx: Context) -> Finding:
        if ctx.time is None:
            raise Skip("no time given (time=(t_train, t_val) or --time COLUMN)")
        t_train, t_val = ctx.time
        newest = np.max(t_train)
        older = t_val < newest
        share = float(older.mean())
        evidence: dict[str, Any] = {
            "value": share,
            "threshold": 0.0,
            "rows": int(older.sum()),
            "newest_train": str(newest),
        }
        if share > 0:
            return self.found(
                "fail",
                f"{share:.1%} of the validation rows are older than the newest training row ({measured(share, 0.0)}): "
                "the model trains on the future of the rows it is judged on.",
                advice="Split by time: validation (and test) after every training row, with a gap for overlapping "
                "windows (T51: data.split=time, the default with --time).",
                **evidence,
            )
        return self.ok("Every validation row comes after the training rows.", **evidence)


@register_check
class GroupLeakage(Check):
    """Groups (patients, users, sites) that have rows in both splits (groups given)."""

    id = "group_leakage"
    group = "data"
    tricks = ("T51",)

    def run(self, ctx: Context) -> Finding:
        if ctx.groups is None:
            raise Skip("no groups given (groups=(g_train, g_val) or --group COLUMN)")
        g_train, g_val = ctx.groups
        shared = np.isin(g_val, np.unique(g_train))
        share = float(shared.mean())
        evidence: dict[str, Any] = {"value": share, "threshold": 0.0, "groups_in_both": len(np.unique(g_val[shared]))}
        if share > 0:
            return self.found(
                "fail",
                f"{evidence['groups_in_both']} groups have rows in both splits; they hold {share:.1%} of the "
                "validation "
                f"rows ({measured(share, 0.0)}): validation sees groups the model trained on.",
                advice="Split by group so that no group is in two splits "
                "(T51: data.split=group, the default with --group).",
                **evidence,
            )
        return self.ok("No group has rows in both splits.", **evidence)


@register_check
class DistributionShift(Check):
    """Features (and class shares) whose distribution differs between training and validation."""

    id = "distribution_shift"
    group = "data"
    tricks = ("T67", "T51")

    def run(self, ctx: Context) -> Finding:
        _val(ctx)
        (a, names), (b, _) = ctx.summaries("train"), ctx.summaries("val")
        tests = [(names[j], *stats.ks_2samp(a[:, j], b[:, j])) for j in range(a.shape[1])]
        if ctx.task == "classification" and ctx.n_classes and not ctx.multilabel:
            tests.append(("class shares", *self._label_shift(ctx)))
        alpha = ALPHA / len(tests)
        shifted = [(name, float(d), float(p)) for name, d, p in tests if p < alpha and d > SHIFT_EFFECT]
        name, d, p = max(shifted or [(n, float(d), float(p)) for n, d, p in tests], key=lambda t: t[1])
        evidence: dict[str, Any] = {
            "value": d,
            "threshold": SHIFT_EFFECT,
            "feature": name,
            "p_value": p,
            "alpha": alpha,
            "shifted": len(shifted),
        }
        if shifted:
            return self.found(
                "warn",
                f"{len(shifted)} of {len(tests)} features differ between training and validation; {name} the most: "
                f"distance {measured(d, SHIFT_EFFECT)} (p = {p:.1e} < {alpha:.1e}).",
                advice="If the split is random, re-split (stratified/grouped, T51); if the shift is real (time, site), "
                "expect validation to lag training and look for features that are stable across it (T67).",
                **evidence,
            )
        return self.ok(
            f"No feature distribution differs between the splits (largest distance {fmt(d)} on {name}).", **evidence
        )

    @staticmethod
    def _label_shift(ctx: Context) -> tuple[float, float]:
        """(total variation distance, chi-square p-value) between the splits' class shares."""
        labels = [ctx.targets(s) for s in ("train", "val")]
        classes = np.unique(np.concatenate(labels))
        table = np.stack([(y[:, None] == classes[None, :]).sum(axis=0) for y in labels])
        shares = table / table.sum(axis=1, keepdims=True)
        distance = float(np.abs(shares[0] - shares[1]).sum() / 2)
        p = float(stats.chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
        return distance, p


@register_check
class UnshuffledBatches(Check):
    """Batches served sorted by target (nearly single-class) by the user's DataLoader."""

    id = "unshuffled_batches"
    group = "data"
    tricks = ("T07",)

    def run(self, ctx: Context) -> Finding:
        if ctx.loader is None:
            return self.ok("tunesmith batches the rows itself, reshuffled every epoch (T07).")
        sampler = type(getattr(ctx.loader, "sampler", None)).__name__
        if ctx.task == "reconstruction":  # no target to sort by: only the sampler tells
            if sampler == "SequentialSampler":
                return self.found(
                    "info",
                    "The DataLoader serves the same order every epoch (shuffle=False).",
                    advice="Reshuffle every epoch (T07: DataLoader(shuffle=True)).",
                )
            return self.ok(f"The DataLoader draws its order with a {sampler} (T07).")
        sizes = [len(b) for b in ctx.batch_targets]
        if ctx.task == "classification":  # one class per row, whatever form the loss takes them in
            targets = np.concatenate([hard_labels(torch.from_numpy(b), ctx.family) for b in ctx.batch_targets])
        else:
            targets = np.concatenate([b.reshape(len(b), -1) for b in ctx.batch_targets])
        observed = self._order(targets, sizes, ctx.task)
        rng = np.random.default_rng(ctx.cfg.seed)
        expected = float(np.mean([self._order(rng.permutation(targets), sizes, ctx.task) for _ in range(SHUFFLES)]))
        limit = expected + (1 - expected) / 2  # half-way from shuffled to perfectly sorted
        evidence: dict[str, Any] = {"value": observed, "threshold": limit, "shuffled": expected, "batches": len(sizes)}
        if observed > limit:
            what = "class purity" if ctx.task == "classification" else "share of target variance between batches"
            return self.found(
                "warn",
                f"The DataLoader serves batches sorted by target: {what} {measured(observed, limit)} (shuffled order "
                f"gives {fmt(expected)}).",
                advice="Shuffle the training DataLoader (shuffle=True), so every batch is a sample of all "
                "classes (T07).",
                **evidence,
            )
        if sampler == "SequentialSampler":
            return self.found(
                "info",
                "The DataLoader serves the same order every epoch (shuffle=False); batches are mixed, though.",
                advice="Reshuffle every epoch (T07: DataLoader(shuffle=True)).",
                **evidence,
            )
        return self.ok(f"Batches are mixed (score {fmt(observed)}, shuffled order {fmt(expected)}).", **evidence)

    @staticmethod
    def _order(targets: np.ndarray, sizes: list[int], task: str) -> float:
        """Classification: mean share of a batch's commonest class. Regression: between-batch variance share."""
        batches = np.split(targets, np.cumsum(sizes)[:-1])
        if task == "classification":
            purity = [np.unique(b, return_counts=True)[1].max() / len(b) for b in batches]
            return float(np.average(purity, weights=sizes))
        flat = [b.reshape(len(b), -1).astype(np.float64) for b in batches]
        total = np.concatenate(flat).var(axis=0).sum()
        within = sum(b.var(axis=0).sum() * len(b) for b in flat) / len(targets)
        return float(1 - within / total) if total > 0 else 0.0
