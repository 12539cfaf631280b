"""Files that tune, doctor, compare and lr-find write, made up in the documented formats (docs/report.md).

Used by the report tests and by benchmarks/report_speed.py. The tuning study has a known answer:
in the `lr_batch` stage the score depends on the learning rate (best near 3e-3) and only weakly on
the batch size, so the report must put the best trial near lr 3e-3 and rank lr first.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from tunesmith.comparison.stats import mean_interval

SPACE = {
    "width": {"type": "int", "low": 16, "high": 512, "log": True},
    "depth": {"type": "int", "low": 1, "high": 4, "log": False},
    "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
    "batch_size": {"type": "categorical", "choices": [32, 64, 128, 256]},
    "dropout": {"type": "float", "low": 0.0, "high": 0.5, "log": False},
    "weight_decay": {"type": "float", "low": 1e-6, "high": 1e-2, "log": True},
}
STAGES = {
    "capacity": ("width", "depth"),
    "lr_batch": ("lr", "batch_size"),
    "regularization": ("dropout", "weight_decay"),
}


def _score(p: dict[str, float | int]) -> float:
    """An accuracy-like response surface: lr matters most, then width; batch size barely."""
    lr = math.log10(float(p.get("lr", 3e-3)))
    width = math.log2(float(p.get("width", 128)))
    batch = {32: 0.002, 64: 0.004, 128: 0.003, 256: 0.0}[int(p.get("batch_size", 64))]
    return (
        0.95
        - 0.06 * (lr + 2.5) ** 2
        - 0.004 * (width - 7) ** 2
        - 0.1 * (float(p.get("dropout", 0.1)) - 0.15) ** 2
        + batch
    )


def write_tuning(run_dir: Path, *, n_trials: int = 24, seed: int = 0, epochs: int = 12) -> None:
    """tuning.json + trials.csv of a staged study: a third of the trials per stage, every 7th pruned."""
    rng = np.random.default_rng(seed)
    fixed: dict[str, float | int] = {
        "width": 128,
        "depth": 2,
        "lr": 1e-3,
        "batch_size": 64,
        "dropout": 0.1,
        "weight_decay": 1e-4,
    }
    rows, stages, curves = [], [], {}
    bounds = np.linspace(0, n_trials, len(STAGES) + 1).round().astype(int)
    for (stage, keys), start, end in zip(STAGES.items(), bounds[:-1], bounds[1:], strict=True):
        numbers = list(range(int(start), int(end)))
        for number in numbers:
            params = {k: _sample(k, rng) for k in keys}
            value = _score({**fixed, **params}) + rng.normal(0, 0.003)
            pruned = number % 7 == 6
            rows.append(
                {
                    "number": number,
                    "state": "PRUNED" if pruned else "COMPLETE",
                    "value": np.nan if pruned else value,
                    "seconds": float(rng.uniform(2, 6)),
                    "stage": stage,
                    **{f"params_{k}": v for k, v in params.items()},
                }
            )
            if not pruned:
                curves[str(number)] = [value - 0.4 * math.exp(-e / 3) for e in range(epochs)]
        done = [r for r in rows if r["stage"] == stage and r["state"] == "COMPLETE"]
        best = max(done, key=lambda r: r["value"])
        best_params = {k: best[f"params_{k}"] for k in keys}
        fixed.update(best_params)
        stages.append(
            {
                "name": stage,
                "trials": numbers,
                "best": {"value": best["value"], "params": best_params},
                "decision": f"keep {', '.join(f'{k}={v:.3g}' for k, v in best_params.items())}",
                "evidence": {"trials": len(numbers), "best_value": round(best["value"], 4)},
            }
        )
    overall = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["value"])
    doc = {
        "direction": "maximize",
        "metric": "accuracy",
        "strategy": "staged",
        "space": SPACE,
        "stages": stages,
        "best": {"trial": overall["number"], "value": overall["value"], "params": fixed},
        "curves": curves,
        "refit": {"epochs": 40, "reason": "the winner was still improving at its last epoch (20): trained 2x longer"},
    }
    (run_dir / "tuning.json").write_text(json.dumps(doc))
    pd.DataFrame(rows).to_csv(run_dir / "trials.csv", index=False)


def _sample(key: str, rng: np.random.Generator) -> float | int:
    spec = SPACE[key]
    if spec["type"] == "categorical":
        return int(rng.choice(spec["choices"]))
    low, high = float(spec["low"]), float(spec["high"])
    x = 10 ** rng.uniform(math.log10(low), math.log10(high)) if spec["log"] else rng.uniform(low, high)
    return round(x) if spec["type"] == "int" else float(x)


def write_lr_find(run_dir: Path) -> dict:
    lrs = np.geomspace(1e-6, 1.0, 60)
    losses = 2.3 - 1.5 / (1 + np.exp(-(np.log10(lrs) + 3.5) * 2)) + np.where(lrs > 0.1, (lrs - 0.1) * 30, 0)
    doc = {
        "lrs": lrs.tolist(),
        "losses": losses.tolist(),
        "smoothed": losses.tolist(),
        "suggestions": {"valley": 3e-3, "minimum": 8e-3, "steepest": 3.2e-4, "slide": 2e-3},
        "suggestion": 3e-3,
        "agree": False,
    }
    (run_dir / "lr_find.json").write_text(json.dumps(doc))
    return doc


FINDINGS = [
    {
        "check": "data.leakage",
        "status": "ok",
        "summary": "No duplicate rows across splits.",
        "evidence": {"duplicates": 0},
        "advice": "",
        "tricks": ["T03"],
    },
    {
        "check": "grad.vanishing",
        "status": "warn",
        "summary": "Gradients shrink 300x from the last layer to the first.",
        "evidence": {"value": 300.0, "threshold": 100.0, "per_layer": [1e-4, 1e-3, 5e-3, 3e-2]},
        "advice": "Add normalization layers or residual connections.",
        "tricks": ["T65", "T14", "T18"],
    },
    {
        "check": "units.dead",
        "status": "fail",
        "summary": "62% of ReLU units never fire.",
        "evidence": {"value": 0.62, "threshold": 0.4},
        "advice": "Use LeakyReLU or a lower learning rate.",
        "tricks": ["T66", "T11"],
    },
    {
        "check": "fit.gap",
        "status": "info",
        "summary": "Validation loss is 5% above training loss.",
        "evidence": {"value": 0.05, "threshold": 0.2},
        "advice": "",
        "tricks": ["T64"],
    },
    {
        "check": "shift.features",
        "status": "skipped",
        "summary": "No test split given.",
        "evidence": {},
        "advice": "",
        "tricks": ["T67"],
    },
]


def write_findings(run_dir: Path) -> list[dict]:
    (run_dir / "findings.json").write_text(json.dumps(FINDINGS))
    return FINDINGS


def write_compare(run_dir: Path) -> dict:
    seeds = [0, 1, 2, 3, 4]
    variants = {
        "baseline": [0.912, 0.905, 0.918, 0.909, 0.915],
        "dropout=0.3": [0.925, 0.917, 0.929, 0.921, 0.926],
        "leaky_relu": [0.910, 0.908, 0.915, 0.911, 0.913],
    }
    doc = {
        "metric": "accuracy",
        "higher_is_better": True,
        "seeds": seeds,
        "variants": {k: _variant(v) for k, v in variants.items()},
        "verdicts": [
            {"a": "dropout=0.3", "b": "baseline", "diff": 0.0118, "ci95": [0.0103, 0.0133], "verdict": "better"},
            {
                "a": "leaky_relu",
                "b": "baseline",
                "diff": -0.0004,
                "ci95": [-0.004, 0.0032],
                "verdict": "no detectable difference",
            },
        ],
    }
    (run_dir / "compare.json").write_text(json.dumps(doc))
    return doc


def _variant(values: list[float]) -> dict:
    """One variant of compare.json, summarised as compare writes it (comparison/stats.py)."""
    mean, std, (low, high) = mean_interval(np.asarray(values))
    return {"values": values, "mean": mean, "std": std, "ci95": [low, high]}


def write_all(run_dir: Path, *, n_trials: int = 24) -> None:
    """Every non-fit input of the report, beside whatever a fit left in `run_dir`."""
    write_lr_find(run_dir)
    write_tuning(run_dir, n_trials=n_trials)
    write_findings(run_dir)
    write_compare(run_dir)
