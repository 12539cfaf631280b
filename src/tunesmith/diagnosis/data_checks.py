"""Data-quality checks on the training rows as the model sees them (catalog T01, T03-T05, T63).

Thresholds are relative to the data: scales to unit scale (the scale that standard initializations
assume, He 2015 / Glorot 2010), class shares to the balanced share 1/C, distances to the spread of
a column's other values. Duplicate and conflict shares follow deepchecks' defaults (5%, 0).
Tables are read per column; images and sequences per channel, pooled over positions. NaN/inf
values were replaced in the copies (reading.py): `missing_values` reports them; integer inputs are
codes (token ids, categories), which the scale checks leave alone.

Sources: Karpathy 2019, "A Recipe for Training Neural Networks" (become one with the data);
deepchecks (DataDuplicates, ConflictingLabels, ClassImbalance, OutlierSampleDetection).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tunesmith.diagnosis.base import Check, Skip, measured, register_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding, fmt

__all__ = [
    "ClassImbalance",
    "ConflictingLabels",
    "DuplicateRows",
    "MissingValues",
    "Outliers",
    "UnscaledInputs",
    "UnscaledTarget",
    "row_groups",
]

UNIT_FACTOR = 10.0  # an order of magnitude away from unit scale
SPREAD_LIMIT = 100.0  # feature scales two orders of magnitude apart
MIN_CODE_SHARE = 0.005  # a missing-value code covers at least 0.5% of the rows (and 5 rows)
IMBALANCE = 0.2  # the rarest class has less than a fifth of its balanced share 1/C
DUPLICATES = 0.05  # deepchecks' DataDuplicates default
CONFLICTS = 0.01  # share of rows whose identical copies carry another label
OUTLIER_WARN, OUTLIER_INFO = 100.0, 10.0  # robust z-scores: a unit mix-up / a heavy tail
MAD_TO_SD = 1.4826  # MAD of a normal distribution times this is its standard deviation


def _measurements(ctx: Context) -> None:
    """Skip scale checks on integer inputs: token ids and category codes index an embedding, they are not sizes."""
    if ctx.integer_inputs:
        raise Skip("integer inputs are codes (token ids, categories) for an embedding, not measurements")


def _robust_z(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(columns with a robust spread, their |x - median| / (1.4826 MAD)): a MAD of 0 leaves a column out."""
    median = np.median(values, axis=0)
    mad = np.median(np.abs(values - median), axis=0) * MAD_TO_SD
    usable = mad > 0
    return usable, np.abs(values[:, usable] - median[usable]) / mad[usable]


def row_groups(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group id per row, group sizes): rows with identical bytes share an id."""
    contiguous = np.ascontiguousarray(rows)
    keys = contiguous.view(np.dtype((np.void, contiguous.dtype.itemsize * contiguous.shape[1]))).ravel()
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return inverse.ravel(), counts


@register_check
class MissingValues(Check):
    """Values filled by preprocessing (info) and numeric missing-value codes such as -999 (warn)."""

    id = "missing_values"
    group = "data"
    tricks = ("T01",)

    def run(self, ctx: Context) -> Finding:
        sick = ctx.notes.get("nonfinite")
        if sick:
            values = sum(s.get("values", 0) for s in sick.values())
            targets = sum(s.get("target_rows", 0) for s in sick.values())
            where = "; ".join(
                f"{split}: "
                + ", ".join(
                    part
                    for part in (
                        f"{s['values']} values in {s['rows']} rows (columns {', '.join(s['columns'])})"
                        if s.get("values")
                        else "",
                        f"{s['target_rows']} non-finite targets" if s.get("target_rows") else "",
                    )
                    if part
                )
                for split, s in sick.items()
            )
            return self.found(
                "fail",
                f"The data hold {values} NaN or infinite inputs and {targets} non-finite targets ({where}; "
                f"{measured(values + targets, 0)}): the loss of any batch holding one is NaN, and one NaN step "
                "ruins every weight.",
                advice="Impute the missing inputs on the training split (T01: data.impute, median by default) "
                "and drop rows without a target. The other checks ran on such an imputed copy.",
                value=values + targets,
                threshold=0,
                **sick,
            )
        if ctx.integer_inputs:
            return self.ok("No NaN or infinite values; integer inputs are codes, so no numeric missing-value codes.")
        values, names = ctx.channels("train")
        codes = [c for c in (self._code(values[:, j], names[j]) for j in range(values.shape[1])) if c]
        if codes:
            worst = max(codes, key=lambda c: c["distance_in_spans"])
            return self.found(
                "warn",
                f"{worst['feature']} holds {fmt(worst['code'])} in {worst['share']:.1%} of rows, "
                f"{measured(worst['distance_in_spans'], 1.0)} spans of its other values away: a missing-value code.",
                advice=f"Replace the code {fmt(worst['code'])} with NaN so it is imputed (T01: data.impute), "
                "instead of training on it as a real value.",
                value=worst["distance_in_spans"],
                threshold=1.0,
                codes=codes[:10],
            )
        filled = int(ctx.notes.get("imputed", 0))
        if filled:
            return self.found(
                "info",
                f"{filled} missing values in the raw data were imputed before training ({ctx.notes.get('impute')}).",
                advice="Imputation (T01) is on; check that the missing values are random, not a signal.",
                value=filled,
            )
        return self.ok("No missing or non-finite values and no numeric missing-value codes.")

    @staticmethod
    def _code(column: np.ndarray, name: str) -> dict | None:
        """A value repeated in >= 0.5% of rows that lies further from the others than their whole span."""
        uniques, counts = np.unique(column, return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] < max(5, MIN_CODE_SHARE * len(column)) or len(uniques) < 11:
            return None  # too rare to be a code, or too few other values to judge their spread
        others = np.delete(uniques, top)
        span = float(others.max() - others.min())
        gap = float(np.abs(others - uniques[top]).min())
        if span <= 0 or gap <= span:
            return None
        return {
            "feature": name,
            "code": float(uniques[top]),
            "share": counts[top] / len(column),
            "distance_in_spans": gap / span,
        }


@register_check
class UnscaledInputs(Check):
    """Feature scales far from unit (RMS > 10) or wildly different from each other (std ratio > 100)."""

    id = "unscaled_inputs"
    group = "data"
    tricks = ("T04",)

    def run(self, ctx: Context) -> Finding:
        _measurements(ctx)
        values, names = ctx.channels("train")
        rms = np.sqrt(np.mean(values**2, axis=0))
        std = values.std(axis=0)
        lo, hi = values.min(axis=0), values.max(axis=0)
        binary = ((values == lo) | (values == hi)).all(axis=0)  # one-hot and flag columns keep their 0/1 scale
        graded = (std > 0) & ~binary
        spread = float(std[graded].max() / std[graded].min()) if graded.sum() >= 2 else 1.0
        j = int(np.argmax(rms))
        evidence: dict[str, Any] = {
            "value": float(rms[j]),
            "threshold": UNIT_FACTOR,
            "feature": names[j],
            "spread": spread,
            "spread_threshold": SPREAD_LIMIT,
        }
        advice = "Standardize each feature on the training split (T04: data.scale=standard, the default)."
        if rms[j] > UNIT_FACTOR:
            return self.found(
                "warn",
                f"{names[j]} has RMS {measured(float(rms[j]), UNIT_FACTOR)}: inputs far from unit scale blow up the "
                "first layer's pre-activations.",
                advice=advice,
                **evidence,
            )
        if spread > SPREAD_LIMIT:
            big, small = (
                names[int(np.argmax(np.where(graded, std, -np.inf)))],
                names[int(np.argmin(np.where(graded, std, np.inf)))],
            )
            evidence.update(value=spread, threshold=SPREAD_LIMIT)
            return self.found(
                "warn",
                f"Feature scales differ by {measured(spread, SPREAD_LIMIT)}x ({big} vs {small}): one learning rate "
                "cannot suit both.",
                advice=advice,
                **evidence,
            )
        return self.ok(
            f"Inputs are near unit scale (largest RMS {fmt(float(rms[j]))}, std ratio {fmt(spread)}).", **evidence
        )


@register_check
class UnscaledTarget(Check):
    """Regression targets far from unit scale (RMS outside [0.1, 10])."""

    id = "unscaled_target"
    group = "data"
    tricks = ("T05",)

    def run(self, ctx: Context) -> Finding:
        if ctx.task != "regression":
            raise Skip(f"applies to regression targets ({ctx.task} here)")
        y = ctx.targets("train")
        rms = np.sqrt(np.mean(y**2, axis=0))
        j = int(np.argmax(np.abs(np.log10(np.maximum(rms, 1e-300)))))
        value, far = float(rms[j]), not (1 / UNIT_FACTOR <= rms[j] <= UNIT_FACTOR)
        evidence: dict[str, Any] = {
            "value": value,
            "threshold": UNIT_FACTOR if value > 1 else 1 / UNIT_FACTOR,
            "mean": float(y[:, j].mean()),
            "std": float(y[:, j].std()),
        }
        if far:
            return self.found(
                "warn",
                f"Target column {j} has RMS {measured(value, evidence['threshold'], above=value > 1)}: the output "
                "layer starts near 0, so the loss and its gradients are scaled by the target.",
                advice="Standardize the target for training and invert it for predictions "
                "(T05: data.scale_target=true).",
                **evidence,
            )
        return self.ok(f"Targets are near unit scale (RMS {fmt(value)}).", **evidence)


@register_check
class ClassImbalance(Check):
    """The rarest class's share of training rows against the balanced share 1/C."""

    id = "class_imbalance"
    group = "data"
    tricks = ("T63", "T51")

    def run(self, ctx: Context) -> Finding:
        if ctx.task != "classification" or ctx.n_classes is None:
            raise Skip(f"applies to classification ({ctx.task} here)")
        y = ctx.targets("train")
        # the classes are the labels that occur in either split: a label value no row carries (class 0 of
        # labels 1..C) is not a class, while a class seen only in validation has a training share of 0
        classes = np.unique(np.concatenate([y, ctx.targets("val")]) if ctx.x_val is not None else y)
        counts = (y[:, None] == classes[None, :]).sum(axis=0)
        shares = counts / counts.sum()
        rarest = int(np.argmin(shares))
        c = len(classes)
        ratio = float(shares[rarest] * c)  # 1 when balanced
        evidence: dict[str, Any] = {
            "value": ratio,
            "threshold": IMBALANCE,
            "classes": classes.tolist(),
            "counts": counts.tolist(),
        }
        text = (
            f"class {classes[rarest]} has {shares[rarest]:.1%} of the training rows against a balanced "
            f"{1 / c:.1%} (ratio {fmt(ratio)}"
        )
        advice = (
            "Judge the model by per-class recall and macro F1, not accuracy (T63); keep splits stratified (T51); "
            "weight the loss by inverse class frequency or resample the rare classes."
        )
        if ratio < IMBALANCE:
            return self.found("warn", f"Imbalanced: {text} < threshold {IMBALANCE}).", advice=advice, **evidence)
        if ratio < 0.5:
            return self.found("info", f"Mildly imbalanced: {text}).", advice=advice, **evidence)
        return self.ok(f"Classes are balanced enough: {text}).", **evidence)


@register_check
class DuplicateRows(Check):
    """Exact copies among the training rows (features and target)."""

    id = "duplicate_rows"
    group = "data"
    tricks = ("T03",)

    def run(self, ctx: Context) -> Finding:
        rows = ctx.rows("train")
        _, counts = row_groups(np.column_stack([rows, ctx.target_values("train")]))
        share = float((counts - 1).sum() / len(rows))
        dropped = int(ctx.notes.get("duplicates_dropped", 0))
        evidence: dict[str, Any] = {
            "value": share,
            "threshold": DUPLICATES,
            "copies": int((counts - 1).sum()),
            "dropped_before_split": dropped,
        }
        advice = "Drop exact duplicates before splitting (T03: data.drop_duplicates=true, the default for tables)."
        if share > DUPLICATES:
            return self.found(
                "warn",
                f"{share:.1%} of the training rows are exact copies of another row ({measured(share, DUPLICATES)}): "
                "the copies weigh more in the loss and may straddle the split.",
                advice=advice,
                **evidence,
            )
        if share > 0 or dropped:
            what = (
                f"{int((counts - 1).sum())} duplicate training rows"
                if share > 0
                else f"{dropped} duplicates dropped before splitting"
            )
            return self.found("info", f"{what} (T03).", advice=advice, **evidence)
        return self.ok("No duplicate training rows.", **evidence)


@register_check
class ConflictingLabels(Check):
    """Identical training inputs that carry different labels."""

    id = "conflicting_labels"
    group = "data"
    tricks = ("T03",)

    def run(self, ctx: Context) -> Finding:
        if ctx.task != "classification":
            raise Skip("applies to classification: identical inputs with different regression targets are noise")
        ids, counts = row_groups(ctx.rows("train"))
        if (counts == 1).all():
            return self.ok("No repeated inputs, so no conflicting labels.", value=0.0, threshold=CONFLICTS)
        pairs = np.unique(np.column_stack([ids, ctx.targets("train")]), axis=0)  # distinct (group, label)
        conflicted = np.bincount(pairs[:, 0], minlength=len(counts))[ids] > 1  # rows whose group has 2+ labels
        share = float(conflicted.mean())
        evidence: dict[str, Any] = {"value": share, "threshold": CONFLICTS, "rows": int(conflicted.sum())}
        advice = "Deduplicate the conflicting copies and fix or drop their labels (T03); accuracy on them is capped."
        if share > CONFLICTS:
            return self.found(
                "warn",
                f"{share:.1%} of the training rows have an identical copy with another label "
                f"({measured(share, CONFLICTS)}).",
                advice=advice,
                **evidence,
            )
        if share > 0:
            return self.found(
                "info",
                f"{int(conflicted.sum())} training rows have identical copies with another label.",
                advice=advice,
                **evidence,
            )
        return self.ok("Repeated inputs carry the same label.", **evidence)


@register_check
class Outliers(Check):
    """Values many robust standard deviations (median absolute deviation) from their column's median."""

    id = "outliers"
    group = "data"
    tricks = ("T03",)

    def run(self, ctx: Context) -> Finding:
        blocks = [] if ctx.integer_inputs else [ctx.channels("train")]  # integer inputs are codes, not sizes
        if ctx.task == "regression":  # a target entered in the wrong unit dominates the loss like a feature does
            y = ctx.targets("train")
            blocks.append((y, ["target"] if y.shape[1] == 1 else [f"target[{k}]" for k in range(y.shape[1])]))
        if not blocks:
            raise Skip("integer inputs are codes (token ids, categories), not measurements, and no regression target")
        scored = [(np.asarray(names)[usable], z) for values, names in blocks for usable, z in [_robust_z(values)]]
        scored = [(names, z) for names, z in scored if z.shape[1]]
        if not scored:  # columns that are mostly one value have no robust spread to measure against
            raise Skip("no column has a robust spread (every column is mostly one value)")
        names, z = max(scored, key=lambda t: float(t[1].max()))
        name, worst = str(names[int(np.argmax(z.max(axis=0)))]), float(z.max())
        n_far = sum(int((z_ > OUTLIER_INFO).sum()) for _, z_ in scored)
        evidence: dict[str, Any] = {
            "value": worst,
            "threshold": OUTLIER_WARN,
            "feature": name,
            "values_beyond_10": n_far,
        }
        advice = (
            "Check those values for unit or entry errors; clip outliers to training quantiles "
            "(T03: data.outliers=clip)."
        )
        if worst > OUTLIER_WARN:
            return self.found(
                "warn",
                f"{name} has a value {measured(worst, OUTLIER_WARN)} robust standard deviations from its median: "
                "an entry or unit error that dominates the loss and the feature's scale.",
                advice=advice,
                **evidence,
            )
        if worst > OUTLIER_INFO:
            return self.found(
                "info",
                f"{n_far} values lie more than {OUTLIER_INFO:.0f} robust SDs out (heavy tails).",
                advice=advice,
                **evidence,
            )
        return self.ok(f"No far outliers (largest robust z {fmt(worst)}).", **evidence)
