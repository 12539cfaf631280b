"""How long the whole doctor takes, against one plain training epoch of the same setup.

    python benchmarks/doctor_speed.py
    python benchmarks/doctor_speed.py --against /tmp/old/src --rounds 2   # this tree's doctor / an older one's

Three setups from the issue: a 1,000-row table with a small MLP (limit 10 s), a 10,000-row table
with the model `tunesmith fit` would build (limit 60 s) and the digits images with tunesmith's
default CNN, through the CLI path `tunesmith doctor --data digits` (limit 60 s). The baseline is
one epoch of the same model on the same training rows with tunesmith's Trainer (the setup's
optimizer, batch size and learning rate). CPU load changes every number here: the header prints
the load average and torch's thread count; compare ratios, not seconds, across machines.

`--against SRC` times the same three doctor calls with this tree's code and with the code under SRC
(an older commit's `src`, e.g. from `git worktree add /tmp/old COMMIT`), each in fresh processes,
alternating, and prints the median ratio per setup: whether a change made the doctor slower.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import make_classification
from torch import nn

from tunesmith.diagnosis import doctor, doctor_recipe
from tunesmith.diagnosis.inputs import build_context, read_inputs
from tunesmith.train.trainer import Trainer

LIMITS = {"1k rows, small MLP": 10.0, "10k rows, fit's MLP": 60.0, "digits, fit's CNN (CLI path)": 60.0}


def table(rows: int, seed: int = 0) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A standardized 20-feature, 3-class table split 80/20."""
    x, y = make_classification(rows, 20, n_informative=8, n_classes=3, random_state=seed)
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    cut = int(rows * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def epoch_seconds(ctx_args: dict, model: nn.Module | None) -> float:
    """One epoch of plain training with the setup the doctor diagnosed (its model, optimizer, batches)."""
    inputs = read_inputs(ctx_args["train"], ctx_args["val"])
    ctx = build_context(inputs, model, inputs.recipe({}, seed=0, device="auto"))
    cfg = ctx.cfg.model_copy(update={"epochs": 1})
    trainer = Trainer(ctx.fresh_model(), cfg=cfg, task=ctx.task, loss_fn=ctx.loss_fn)
    started = time.perf_counter()
    trainer.fit(ctx.train)
    return time.perf_counter() - started


def small_mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))


def doctor_seconds() -> dict[str, float]:
    """Seconds of the three doctor calls (after a warm-up call that pays the lazy imports)."""
    train, val = table(1_000)
    doctor(small_mlp(), train=train, val=val, steps=20)  # a fresh process pays lazy imports once: not counted
    seconds = {}
    started = time.perf_counter()
    doctor(small_mlp(), train=train, val=val)
    seconds["1k rows, small MLP"] = time.perf_counter() - started
    train, val = table(10_000)
    started = time.perf_counter()
    doctor(train=train, val=val)
    seconds["10k rows, fit's MLP"] = time.perf_counter() - started
    started = time.perf_counter()
    doctor_recipe(overrides={"data.source": "digits"})
    seconds["digits, fit's CNN (CLI path)"] = time.perf_counter() - started
    return seconds


def against(old_src: Path, rounds: int) -> None:
    """Median doctor seconds with this tree's code and with `old_src`, in fresh processes, alternating."""
    new_src = Path(__file__).resolve().parents[1] / "src"
    runs: dict[str, list[dict[str, float]]] = {"new": [], "old": []}
    for _ in range(rounds):
        for label, src in (("old", old_src), ("new", new_src)):
            env = {**os.environ, "PYTHONPATH": str(src)}
            out = subprocess.run(
                [sys.executable, __file__, "--doctor-only"], env=env, check=True, capture_output=True, text=True
            ).stdout
            runs[label].append(json.loads(out.strip().splitlines()[-1]))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; {rounds} rounds; old = {old_src}")
    print(f"{'setup':32s} {'old s':>7s} {'new s':>7s} {'new/old':>8s}")
    for name in runs["new"][0]:
        old, new = (statistics.median(r[name] for r in runs[label]) for label in ("old", "new"))
        print(f"{name:32s} {old:7.1f} {new:7.1f} {new / old:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", type=Path, help="an older tree's src directory to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--doctor-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.doctor_only:
        print(json.dumps(doctor_seconds()))
        return
    if args.against:
        against(args.against.resolve(), args.rounds)
        return
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    seconds = doctor_seconds()
    train, val = table(1_000)
    small = epoch_seconds({"train": train, "val": val}, small_mlp())
    results = [("1k rows, small MLP", seconds["1k rows, small MLP"], small)]
    train, val = table(10_000)
    results.append(
        ("10k rows, fit's MLP", seconds["10k rows, fit's MLP"], epoch_seconds({"train": train, "val": val}, None))
    )
    from tunesmith.data import load_data
    from tunesmith.models import build_model
    from tunesmith.recipe import Recipe, resolve

    recipe = Recipe().with_overrides({"data.source": "digits"})
    prep = load_data(recipe.data, seed=0).prepare(0)
    resolved = resolve(recipe, prep.facts)
    cnn = build_model(resolved.model, kind="image", input_shape=prep.facts.input_shape, n_outputs=prep.facts.n_outputs)
    baseline = epoch_seconds({"train": (prep.x_train, prep.y_train), "val": (prep.x_val, prep.y_val)}, cnn)
    results.append(("digits, fit's CNN (CLI path)", seconds["digits, fit's CNN (CLI path)"], baseline))

    print(f"{'setup':32s} {'doctor s':>9s} {'epoch s':>8s} {'ratio':>7s} {'limit s':>8s}  verdict")
    for name, doc, epoch in results:
        verdict = "ok" if doc < LIMITS[name] else "OVER"
        print(f"{name:32s} {doc:9.1f} {epoch:8.2f} {doc / epoch:6.0f}x {LIMITS[name]:8.0f}  {verdict}")


if __name__ == "__main__":
    main()
