"""The report sections of a training run, one small class each behind `page.Section`.

Summary, baselines (the linear model and the constant predictor beside the network), recipe
choices with their catalog ids, curves (T61), learning-rate schedule (T32), LR range
test (T31), test results (T63: confusion matrix and per-class scores, or residuals for regression)
and per-layer statistics (T65, T66). Tuning, doctor and compare sections live in their own modules;
`page.py` lists them all in display order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import yaml
from markupsafe import Markup, escape

from tunesmith.report.files import RunFiles
from tunesmith.report.html import fmt, grid, kv, note, table
from tunesmith.report.plots import confusion, curves, layer_lines, lr_range, lr_schedule, residuals, to_img
from tunesmith.report.tricks import TRICK_NAMES, trick_for

__all__ = [
    "Baselines",
    "ClassReport",
    "Curves",
    "Failure",
    "Layers",
    "LearningRate",
    "RangeTest",
    "RecipeChoices",
    "Residuals",
    "Summary",
]


def _trick(tid: str | None) -> str:
    return f"{tid} {TRICK_NAMES.get(tid, '')}".strip() if tid else "—"


class Failure:
    """A run that stopped before metrics.json (failed.json): said first, so no curve reads as a result."""

    name = "failure"
    title = "This run failed"

    def applies(self, run: RunFiles) -> bool:
        return run.failed is not None

    def render(self, run: RunFiles) -> Markup:
        failed = run.failed
        before = "The curves below show the epochs before it stopped; t" if run.histories else "T"
        return note(
            f"This run failed ({failed.get('reason', 'error')}): {failed.get('message', '')} "
            f"{before}here are no final metrics.",
            css="error",
        )


class Summary:
    name = "summary"
    title = "Summary"

    def applies(self, run: RunFiles) -> bool:
        return run.metrics is not None

    def render(self, run: RunFiles) -> Markup:
        m, env = run.metrics, run.env or {}
        facts = {
            "task": m.get("task"),
            "data": m.get("data", {}).get("source"),
            "epochs trained": m.get("epochs"),
            "best epoch": m.get("best_epoch"),
            "time": f"{m['seconds']:.1f} s" if "seconds" in m else None,
            "seed (T50)": m.get("seed"),
            "device": env.get("gpu") or env.get("device"),
            "versions": " · ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
        }
        names = list(dict.fromkeys([*m.get("val", {}), *m.get("test", {})]))
        splits = [s for s in ("val", "test") if s in m]
        rows = [[name, *(self._value(m, s, name) for s in splits)] for name in names]
        blocks = [
            Markup("<div><h3>Metrics</h3>")
            + table(["metric", *("validation" if s == "val" else "test" for s in splits)], rows, css="metrics")
            + Markup("</div>"),
            Markup("<div><h3>Run</h3>")
            + kv({k: v for k, v in facts.items() if v not in (None, "")})
            + Markup("</div>"),
        ]
        if m.get("members"):
            blocks.append(self._members(m))
        if m.get("data"):
            blocks.append(Markup("<div><h3>Data</h3>") + kv(m["data"]) + Markup("</div>"))
        folds = Markup("<h3>Folds (T51, T63)</h3>") + self._folds(m["folds"]) if m.get("folds") else Markup("")
        return grid(*blocks, css="cols") + folds

    @staticmethod
    def _value(m: dict[str, Any], split: str, name: str) -> str:
        value, std = m[split].get(name), m.get(f"{split}_std", {}).get(name)
        return fmt(value) + (f" ± {fmt(std)}" if std is not None and np.isfinite(std) else "")

    @classmethod
    def _members(cls, m: dict[str, Any]) -> Markup:
        """An ensemble's metrics lead the table above; its members' mean ± std stand here beside them."""
        members = m["members"]
        splits = [s for s in ("val", "test") if s in members]
        names = list(dict.fromkeys(k for s in splits for k in members[s]))
        rows = [[name, *(cls._value(members, s, name) for s in splits)] for name in names]
        lead = f"The metrics are the ensemble's: {members.get('count')} {members.get('kind', 'members')}"
        lead += f", averaging {members['average']}. " if members.get("average") else ". "
        lead += members.get("note", "")
        return (
            Markup("<div><h3>Ensemble members (mean ± std)</h3>")
            + note(lead)
            + table(["metric", *("validation" if s == "val" else "test" for s in splits)], rows, css="metrics")
            + Markup("</div>")
        )

    @staticmethod
    def _folds(folds: list[dict[str, Any]]) -> Markup:
        metric_cols = [(s, k) for s in ("val", "test") for k in folds[0].get(s, {})]
        rows = [
            [f.get("fold"), f.get("epochs"), f.get("best_epoch"), *(f.get(s, {}).get(k) for s, k in metric_cols)]
            for f in folds
        ]
        return table(["fold", "epochs", "best epoch", *(f"{s} {k}" for s, k in metric_cols)], rows)


class Baselines:
    """The network beside the baselines fitted on the same rows (metrics.json "baselines", baselines.py)."""

    name = "baselines"
    title = "Baselines: the network beside a linear model and a constant predictor"

    def applies(self, run: RunFiles) -> bool:
        return run.metrics is not None and bool(run.metrics.get("baselines"))

    def render(self, run: RunFiles) -> Markup:
        m = run.metrics
        splits = [s for s in ("val", "test") if s in m]
        names = list(m.get("val") or m.get("test") or {})
        family = ((run.recipe or {}).get("model") or {}).get("family")
        entries = [("network", {**m, "model": family or "the trained network"}), *m["baselines"].items()]
        rows = [
            [kind, _model(entry), *(entry.get(s, {}).get(n) for s in splits for n in names)]
            for kind, entry in entries
            if "skipped" not in entry
        ]
        cols = ["", "model", *(f"{'validation' if s == 'val' else 'test'} {n}" for s in splits for n in names)]
        notes = [f"{kind}: skipped ({e['skipped']})" for kind, e in m["baselines"].items() if "skipped" in e]
        notes += [f"{kind}: {e['note']}" for kind, e in m["baselines"].items() if e.get("note")]
        folds = next((e["folds"] for e in m["baselines"].values() if "folds" in e), None)
        lead = "Fitted on the network's training rows (the same preprocessing), scored like the network"
        lead += f", averaged over {folds} folds" if folds and folds > 1 else ""
        lead += ". The loss is on the scale the network trains on (regression: its scaled targets)."
        return note(lead) + table(cols, rows, css="metrics") + Markup("").join(note(n) for n in notes)


def _model(entry: dict[str, Any]) -> str:
    """The model and the setting its cross-validation chose (or its strategy)."""
    chosen = [f"{k}={fmt(entry[k])}" for k in ("alpha", "C", "strategy") if k in entry]
    return f"{entry.get('model', '')} ({', '.join(chosen)})" if chosen else str(entry.get("model", ""))


class RecipeChoices:
    name = "recipe"
    title = "Recipe: every non-default choice and its catalog trick"

    def applies(self, run: RunFiles) -> bool:
        return run.recipe is not None

    def render(self, run: RunFiles) -> Markup:
        from tunesmith.recipe import Recipe, flatten

        defaults = flatten(Recipe().model_dump(mode="json"))
        rows = [
            [key, _show(value), _show(defaults[key]) if key in defaults else "—", _trick(trick_for(key))]
            for key, value in flatten(run.recipe or {}).items()
            if key not in defaults or value != defaults[key]
        ]
        text = yaml.safe_dump(run.recipe, sort_keys=False)
        return (
            note(
                "Fields whose default is auto (or none for width, depth, lr, batch size and epochs) were filled "
                "from the data."
            )
            + table(["field", "value", "default", "catalog trick"], rows, css="recipe")
            + Markup(f"<details><summary>resolved recipe.yaml</summary><pre>{escape(text)}</pre></details>")
        )


def _show(value: Any) -> str:
    return "none" if value is None else fmt(value)


class Curves:
    name = "curves"
    title = "Training curves: train vs validation (T61)"

    def applies(self, run: RunFiles) -> bool:
        return bool(run.histories)

    def render(self, run: RunFiles) -> Markup:
        frame = run.histories[0][1]
        columns = [str(c) for c in frame.columns]
        quantities = ["loss", *(c.removeprefix("val_") for c in columns if c.startswith("val_") and c != "val_loss")]
        best = (run.metrics or {}).get("best_epoch")
        figures = [
            to_img(curves(run.histories, column=q, best_epoch=best), alt=f"{q.replace('_', ' ')} per epoch")
            for q in quantities
        ]
        lines = "one line per fold; " if len(run.histories) > 1 else ""
        return note(f"{lines}solid: training, dashed: validation.") + grid(*figures)


class LearningRate:
    name = "lr-schedule"
    title = "Learning-rate schedule (T32)"

    def applies(self, run: RunFiles) -> bool:
        return bool(run.histories) and "lr" in run.histories[0][1]

    def render(self, run: RunFiles) -> Markup:
        return to_img(lr_schedule(run.histories), alt="learning rate at the start of each epoch")


class RangeTest:
    name = "lr-find"
    title = "Learning-rate range test (T31)"

    def applies(self, run: RunFiles) -> bool:
        return run.lr_find is not None

    def render(self, run: RunFiles) -> Markup:
        found = run.lr_find
        chosen = found.get("suggestion")
        rows = [
            [rule, lr, "← suggested" if lr is not None and lr == chosen else ""]
            for rule, lr in found.get("suggestions", {}).items()
        ]
        notes = []
        if found.get("agree") is not None:
            notes.append(
                "The rules agree: the suggestion is well supported."
                if found["agree"]
                else "The rules disagree: treat the suggestion as a starting point and tune around it."
            )
        ratio = (found.get("spread") or {}).get("ratio")
        if ratio:
            swing = ", ".join(f"{rule} {r:.2g}x" for rule, r in ratio.items())
            notes.append(f"Swing of each rule over seeds {found['spread'].get('seeds')} (max / min): {swing}.")
        if found.get("warning"):
            notes.append(f"Warning: {found['warning']}")
        fig = to_img(lr_range(found), alt="training loss while the learning rate grows")
        return grid(fig, table(["rule", "learning rate", ""], rows) + Markup("").join(note(n) for n in notes))


class ClassReport:
    name = "classification"
    title = "Test results: confusion matrix and per-class scores (T63)"

    def applies(self, run: RunFiles) -> bool:
        return run.metrics is not None and "test_report" in run.metrics

    def render(self, run: RunFiles) -> Markup:
        rep = run.metrics["test_report"]
        cols = ("precision", "recall", "f1", "support")
        rows: list[list[Any]] = [[c, *(rep[k][i] for k in cols)] for i, c in enumerate(rep["classes"])]
        rows.append(["macro average", *(float(np.mean(rep[k])) for k in cols[:3]), int(np.sum(rep["support"]))])
        fig = to_img(confusion(rep), alt="confusion matrix on the test split")
        return grid(fig, table(["class", *cols], rows, css="scores"))


class Residuals:
    name = "regression"
    title = "Test results: residuals"

    def applies(self, run: RunFiles) -> bool:
        return run.predictions is not None

    def render(self, run: RunFiles) -> Markup:
        frame = run.predictions
        targets = [str(c).removeprefix("y_true") for c in frame if str(c).startswith("y_true")]
        parts = []
        for suffix in targets:
            true, pred = frame[f"y_true{suffix}"].to_numpy(float), frame[f"y_pred{suffix}"].to_numpy(float)
            name = f"target {suffix.lstrip('_')}" if suffix else "target"
            parts.append(to_img(residuals(true, pred, target=name), alt=f"{name}: test predictions"))
        # the fit's own numbers (train/metrics.py), in target units; the loss is in the scaled units it trained on
        scores = {k: v for k, v in run.predictions_test.items() if k != "loss"}
        pooled = note("rmse and mae pool the targets; r2 is their mean.") if len(targets) > 1 else Markup("")
        summary = table([*scores, "rows"], [[*scores.values(), len(frame)]]) + pooled if scores else Markup("")
        return summary + Markup("").join(parts)


class Layers:
    name = "layers"
    title = "Per-layer gradients and activations (T65, T66)"

    def applies(self, run: RunFiles) -> bool:
        return run.layers is not None and len(run.layers) > 0

    def render(self, run: RunFiles) -> Markup:
        layers = run.layers
        panels = [
            ("grad_norm", "gradient norm per layer (T65)", True),
            ("act_std", "activation std per layer", False),
            ("dead_frac", "share of ReLU units never active (T66)", False),
            ("saturated_frac", "share of saturated tanh/sigmoid units", False),
        ]
        figures = [
            to_img(layer_lines(layers, column=col, title=title, log=log), alt=title)
            for col, title, log in panels
            if col in layers and layers[col].notna().any()
        ]
        last = layers[layers["epoch"] == layers["epoch"].max()]
        cols = ["layer", "type", "grad_norm", "act_mean", "act_std", "dead_frac", "saturated_frac"]
        rows = [[r[c] if c in ("layer", "type") else _num(r[c]) for c in cols] for _, r in last.iterrows()]
        grads = last["grad_norm"].dropna()
        grads = grads[grads > 0]
        spread = (
            note(
                f"At epoch {int(last['epoch'].iloc[0])} the largest layer gradient norm is "
                f"{grads.max() / grads.min():.3g} times the smallest; norms falling by orders of magnitude towards "
                "the input mean vanishing gradients, growing ones exploding gradients (T65)."
            )
            if len(grads) > 1
            else Markup("")
        )
        sampled = note(
            "Sampled on the first batch of every epoch; dead and saturated units are those never active "
            "(or always saturated) on that batch."
        )
        return sampled + grid(*figures) + spread + table(cols, rows, caption="last epoch", css="layers")


def _num(value: Any) -> float | None:
    return None if value is None or value != value else float(value)
