"""How long the whole doctor takes, against one plain training epoch of the same setup.

    python benchmarks/doctor_speed.py

Three setups from the issue: a 1,000-row table with a small MLP (limit 10 s), a 10,000-row table
with the model `tunesmith fit` would build (limit 60 s) and the digits images with tunesmith's
default CNN, through the CLI path `tunesmith doctor --data digits` (limit 60 s). The baseline is
one epoch of the same model on the same training rows with tunesmith's Trainer (the setup's
optimizer, batch size and learning rate). CPU load changes every number here: the header prints
the load average and torch's thread count; compare ratios, not seconds, across machines.
"""

from __future__ import annotations

import os
import time

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


def main() -> None:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; torch threads {torch.get_num_threads()}")
    small = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 3))
    train, val = table(1_000)
    started = time.perf_counter()
    doctor(small, train=train, val=val, steps=20)  # a fresh process pays lazy imports once: not counted below
    print(f"cold start (first call in a process, 20 steps): {time.perf_counter() - started:.1f} s")
    results = []
    started = time.perf_counter()
    doctor(small, train=train, val=val)
    seconds = time.perf_counter() - started
    results.append(("1k rows, small MLP", seconds, epoch_seconds({"train": train, "val": val}, small)))

    train, val = table(10_000)
    started = time.perf_counter()
    doctor(train=train, val=val)
    seconds = time.perf_counter() - started
    results.append(("10k rows, fit's MLP", seconds, epoch_seconds({"train": train, "val": val}, None)))

    started = time.perf_counter()
    diagnosis = doctor_recipe(overrides={"data.source": "digits"})
    seconds = time.perf_counter() - started
    from tunesmith.data import load_data
    from tunesmith.models import build_model
    from tunesmith.recipe import Recipe, resolve

    recipe = Recipe().with_overrides({"data.source": "digits"})
    prep = load_data(recipe.data, seed=0).prepare(0)
    resolved = resolve(recipe, prep.facts)
    cnn = build_model(resolved.model, kind="image", input_shape=prep.facts.input_shape, n_outputs=prep.facts.n_outputs)
    baseline = epoch_seconds({"train": (prep.x_train, prep.y_train), "val": (prep.x_val, prep.y_val)}, cnn)
    results.append(("digits, fit's CNN (CLI path)", seconds, baseline))
    assert len(diagnosis.findings) == 33

    print(f"{'setup':32s} {'doctor s':>9s} {'epoch s':>8s} {'ratio':>7s} {'limit s':>8s}  verdict")
    for name, doc, epoch in results:
        verdict = "ok" if doc < LIMITS[name] else "OVER"
        print(f"{name:32s} {doc:9.1f} {epoch:8.2f} {doc / epoch:6.0f}x {LIMITS[name]:8.0f}  {verdict}")


if __name__ == "__main__":
    main()
