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

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy import stats

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.data_checks import row_groups
from tunesmith.diagnosis.finding import Finding, fmt
from tunesmith.diagnosis.probing import heldout_score, holdout, least_squares
from tunesmith.diagnosis.targets import hard_labels

__all__ = [
    "DistributionShift",
    "GroupLeakage",
    "MultiColumnLeakage",
    "TargetLeakage",
    "TimeLeakage",
    "TrainValDuplicates",
    "UnshuffledBatches",
    "leak_candidates",
]

CROSS_COPIES = 0.01  # share of validation rows copied from training, above the data's own duplicate rate
LEAK_SCORE = 0.98  # one feature (or a few together): normalized held-out accuracy or R2
MAX_LEAK_FEATURES = 64  # features probed (the most target-related ones when there are more)
LEAK_SET = 3  # multi_column_leakage: the most columns a leak may be spread over
HONEST_ERROR_SHARE = 0.1  # ... which leave at most this share of the error the other columns leave
PAIRS = 5  # column pairs scored on held-out rows after the closed-form screen
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
        from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

        x, y, xv, yv = holdout(ctx)
        names = ctx.column_names(x.shape[1])
        classify = ctx.task == "classification"
        tree = DecisionTreeClassifier if classify else DecisionTreeRegressor
        scores = {}
        for j in leak_candidates(x, y, classify):
            fitted = tree(max_leaf_nodes=32, min_samples_leaf=5, random_state=0).fit(
                x[:, j : j + 1], y if classify else y.reshape(len(y), -1)
            )
            scores[j] = heldout_score(fitted.predict(xv[:, j : j + 1]), yv, classify)
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


def leak_candidates(x: np.ndarray, y: np.ndarray, classify: bool) -> list[int]:
    """Column indices worth probing: all of them, or the MAX_LEAK_FEATURES most target-related by a linear screen."""
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
    return [int(j) for j in np.argsort(strength)[::-1][:MAX_LEAK_FEATURES]]


@register_check
class MultiColumnLeakage(Check):
    """A few columns that together determine the target (a linear fit, R² near 1), far better than all the others."""

    id = "multi_column_leakage"
    group = "data"
    tricks = ()  # the fix (dropping the columns) is not a catalog trick

    def run(self, ctx: Context) -> Finding:
        x, y, xv, yv = holdout(ctx)
        classify = ctx.task == "classification"
        candidates = leak_candidates(x, y, classify)
        names = ctx.column_names(x.shape[1])

        # the target as numbers (one indicator per class): a leak makes it a function of a few columns, which a
        # linear fit recovers almost exactly (R² near 1); well separated classes alone give accuracy 1, not R² 1
        target, target_val = (
            ((t[:, None] == np.unique(y)[None, :]).astype(np.float64) for t in (y, yv))
            if classify
            else (y.reshape(len(y), -1), yv.reshape(len(yv), -1))
        )
        spread = ((target_val - target_val.mean(axis=0)) ** 2).sum()

        def score(columns: list[int]) -> float:
            """Held-out R² (pooled over the target's columns) of a least-squares fit on `columns`."""
            if not columns:  # the best constant
                return 0.0
            pred = least_squares(x[:, columns], target, xv[:, columns], classify=False)
            return float(1 - ((target_val - pred) ** 2).sum() / max(spread, 1e-12))

        together = score(candidates)
        evidence: dict[str, Any] = {"value": together, "threshold": LEAK_SCORE, "scored_features": len(candidates)}
        if together < LEAK_SCORE:
            return self.ok(
                f"The columns together do not determine the target (held-out R² of a linear fit {fmt(together)} < "
                f"{fmt(LEAK_SCORE)}).",
                **evidence,
            )
        chosen = self._smallest_set(x, target, candidates, score)
        few, rest = score(chosen), score([j for j in candidates if j not in chosen])
        columns = [names[j] for j in chosen]
        # the few columns leave at most a tenth of the error that all the other columns leave
        limit = 1 - HONEST_ERROR_SHARE * (1 - rest)
        evidence.update(value=few, threshold=max(LEAK_SCORE, limit), columns=columns, others=rest, together=together)
        if len(chosen) >= 2 and few >= LEAK_SCORE and rest < LEAK_SCORE and few >= limit:
            listed = ", ".join(columns)
            return self.found(
                "fail",
                f"{listed} together determine the target on held-out rows: a linear fit on them reaches R² "
                f"{measured(few, evidence['threshold'])}, while the other columns reach {fmt(rest)}. The target is "
                "almost a function of these columns, so they leak it.",
                advice=f"Find out how {listed} are computed (a total and its parts, the target's own one-hot columns, "
                "dates that bracket the outcome); drop what is derived from the target or known only after it.",
                **evidence,
            )
        if len(chosen) == 1 and few >= LEAK_SCORE:
            return self.ok(f"One column alone ({columns[0]}) carries the fit: see target_leakage.", **evidence)
        return self.ok(
            f"The columns predict the target well together ({fmt(together)}), but no {LEAK_SET} of them stand out "
            f"(best {', '.join(columns)}: {fmt(few)}; the others {fmt(rest)}).",
            **evidence,
        )

    @staticmethod
    def _smallest_set(
        x: np.ndarray, target: np.ndarray, candidates: list[int], score: Callable[[list[int]], float]
    ) -> list[int]:
        """The pair of columns that explains the target best, plus a third when the pair falls short.

        Columns that leak together (a total and its parts, two dates around the outcome) may each say little
        alone, so pairs are screened exhaustively: the in-sample R² of a least-squares fit on two columns has
        a closed form in their correlations, (r_a² + r_b² - 2 r_a r_b r_ab) / (1 - r_ab²), summed over the
        target's columns. The best PAIRS pairs are then scored on held-out rows.
        """
        if len(candidates) < 2:
            return list(candidates)
        sub = x[:, candidates]
        zx = (sub - sub.mean(axis=0)) / np.maximum(sub.std(axis=0), 1e-12)
        zt = (target - target.mean(axis=0)) / np.maximum(target.std(axis=0), 1e-12)
        r_xx, r_xt = zx.T @ zx / len(zx), zx.T @ zt / len(zx)  # (p, p), (p, K)
        denominator = np.maximum(1 - r_xx**2, 1e-9)
        explained = sum(
            (r[:, None] ** 2 + r[None, :] ** 2 - 2 * r[:, None] * r[None, :] * r_xx) / denominator for r in r_xt.T
        )
        a, b = np.triu_indices(len(candidates), k=1)
        top = np.argsort(np.asarray(explained)[a, b])[::-1][:PAIRS]
        pairs = [[candidates[a[i]], candidates[b[i]]] for i in top]
        best = max(pairs, key=score)
        if score(best) >= LEAK_SCORE or LEAK_SET < 3:
            alone = [j for j in best if score([j]) >= LEAK_SCORE]  # one of them suffices: target_leakage's
            return alone[:1] or best
        return [*best, max((j for j in candidates if j not in best), key=lambda j: score([*best, j]))]


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
