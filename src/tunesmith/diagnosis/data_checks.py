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
from tunesmith.diagnosis.probing import heldout_score, holdout, least_squares

__all__ = [
    "CategoryCodes",
    "ClassImbalance",
    "ConflictingLabels",
    "ConstantColumns",
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
NEAR_CONSTANT = 0.99  # one value holds at least this share of a column's training rows
UNSEEN_SHARE = 0.01  # validation rows holding a value a training-constant column never showed (a rare level: info)
CODE_LEVELS = (5, 50)  # distinct values of a column that may hold category codes (4 levels fit a cubic exactly)
CODE_GAIN = 0.1  # held-out score that per-level means add over a smooth (cubic) function of the code


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


@register_check
class ConstantColumns(Check):
    """Columns (channels) with one value in training: warn when > 1% of validation rows hold others, else info."""

    id = "constant_columns"
    group = "data"
    tricks = ("T04",)

    def run(self, ctx: Context) -> Finding:
        if ctx.token_ids:  # [CLS] fills the first position, padding the last ones, of every short text
            raise Skip(
                "the inputs are token ids: a position that one token fills is a text length, not a constant "
                "feature (text_truncation reads the lengths)"
            )
        values, names = ctx.channels("train")
        lo, hi = values.min(axis=0), values.max(axis=0)
        constant = np.flatnonzero(lo == hi)
        top_share = np.array([np.unique(values[:, j], return_counts=True)[1].max() for j in range(values.shape[1])])
        near = [names[j] for j in np.flatnonzero(top_share >= NEAR_CONSTANT * len(values)) if lo[j] < hi[j]]
        varying: dict[str, float] = {}
        if ctx.x_val is not None and len(constant):
            val = ctx.channels("val")[0]
            varying = {names[j]: float((val[:, j] != lo[j]).mean()) for j in constant if (val[:, j] != lo[j]).any()}
        evidence: dict[str, Any] = {
            "value": max(varying.values(), default=0.0),
            "threshold": UNSEEN_SHARE,
            "constant": [names[j] for j in constant][:20],
            "near_constant": near[:20],
            "varying_in_validation": varying,
        }
        advice = (
            f"Drop {', '.join(varying)} or re-split so training sees their values (a feature added late, a sensor "
            "switched on after the split date, a category only validation holds); fit scaling where they vary (T04)."
        )
        name, share = max(varying.items(), key=lambda kv: kv[1], default=("", 0.0))
        if share > UNSEEN_SHARE:
            return self.found(
                "warn",
                f"{len(varying)} column(s) are constant in training but vary in validation ({name}: {share:.1%} of the "
                f"validation rows differ, {measured(share, UNSEEN_SHARE)}): the model never saw them move, so its "
                "response to them is untrained and standardizing them divides by a zero spread.",
                advice=advice,
                **evidence,
            )
        if varying:
            return self.found(
                "info",
                f"{len(varying)} column(s) are constant in training and differ on a few validation rows ({name}: "
                f"{share:.1%}, a level training never showed).",
                advice=advice,
                **evidence,
            )
        if len(constant) or near:
            what = ", ".join([*evidence["constant"], *evidence["near_constant"]][:5])
            return self.found(
                "info",
                f"{len(constant)} constant and {len(near)} near-constant (one value in >= {NEAR_CONSTANT:.0%} of rows) "
                f"columns ({what}): they carry little or no signal, and standardizing a near-constant column turns its "
                "rare values into large inputs.",
                advice="Drop columns that never vary; check that near-constant ones are not a broken feed "
                "(scaling, T04, magnifies their rare values).",
                **evidence,
            )
        return self.ok("Every column varies in training.", **evidence)


@register_check
class CategoryCodes(Check):
    """A column of a few distinct values whose levels relate to the target in no order: category codes as a number."""

    id = "category_codes"
    group = "data"
    tricks = ("T02",)

    def run(self, ctx: Context) -> Finding:
        if ctx.kind != "tabular":
            raise Skip(f"applies to table columns ({ctx.kind} inputs here)")
        if ctx.integer_inputs:
            raise Skip("integer inputs already index an embedding, the right encoding for codes")
        x, y, xv, yv = holdout(ctx)
        classify = ctx.task == "classification"
        names = ctx.column_names(x.shape[1])
        columns = (self._column(x[:, j], y, xv[:, j], yv, classify, names[j]) for j in range(x.shape[1]))
        found = [c for c in columns if c]
        if not found:
            return self.ok(
                "No column looks like category codes (no few-valued column whose levels the target follows out of "
                "order).",
                value=0.0,
                threshold=CODE_GAIN,
            )
        worst = max(found, key=lambda c: c["gain"])
        evidence: dict[str, Any] = {"value": worst["gain"], "threshold": CODE_GAIN, "columns": found[:10]}
        return self.found(
            "warn",
            f"{worst['feature']} holds {worst['levels']} distinct values whose effect on the target follows no order: "
            f"per-value means score {fmt(worst['levels_score'])} on held-out rows against {fmt(worst['smooth_score'])} "
            f"for a smooth function of the number (gain {measured(worst['gain'], CODE_GAIN)}). It is a category coded "
            "as one number, which the network must cut into steps.",
            advice=f"One-hot encode {worst['feature']} (T02: tunesmith does it with --set "
            f"data.categorical=[{worst['feature']}]), or feed the codes to an embedding.",
            **evidence,
        )

    @staticmethod
    def _column(
        code: np.ndarray, y: np.ndarray, code_val: np.ndarray, yv: np.ndarray, classify: bool, name: str
    ) -> dict | None:
        """Held-out scores of per-level means and of a cubic in the code, when the column has few levels."""
        levels, index = np.unique(code, return_inverse=True)
        if not CODE_LEVELS[0] <= len(levels) <= min(CODE_LEVELS[1], len(code) // 10):
            return None
        seen = np.isin(code_val, levels)
        if seen.mean() < 0.9:  # validation mostly holds other values: a measurement, not codes
            return None
        where = np.searchsorted(levels, code_val[seen])
        if classify:
            classes = np.unique(y)
            counts = np.zeros((len(levels), len(classes)))
            np.add.at(counts, (index, np.searchsorted(classes, y)), 1)
            by_level = classes[np.argmax(counts, axis=1)][where]
        else:
            target = y.reshape(len(y), -1)
            sums = np.zeros((len(levels), target.shape[1]))
            np.add.at(sums, index, target)
            by_level = (sums / np.bincount(index)[:, None])[where]
        z = (code - code.mean()) / code.std()
        zv = (code_val[seen] - code.mean()) / code.std()
        smooth = least_squares(np.stack([z, z**2, z**3], 1), y, np.stack([zv, zv**2, zv**3], 1), classify)
        levels_score = heldout_score(by_level, yv[seen], classify)
        smooth_score = heldout_score(smooth, yv[seen], classify)
        gain = levels_score - smooth_score
        if gain < CODE_GAIN:
            return None
        return {
            "feature": name,
            "levels": len(levels),
            "levels_score": levels_score,
            "smooth_score": smooth_score,
            "gain": gain,
        }
