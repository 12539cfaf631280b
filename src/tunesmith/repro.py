"""Reproducibility (T50): one seed for Python, NumPy and torch, deterministic mode, the run's environment.

The seed is recorded in recipe.yaml and metrics.json; `environment()` is written to env.json so a
reader can tell which library versions and hardware produced a result.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import Any

import numpy as np
import torch

__all__ = ["environment", "seed_everything", "torch_threads"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed every RNG a run touches; with `deterministic`, refuse nondeterministic kernels too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS for determinism
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    elif torch.are_deterministic_algorithms_enabled():
        # only when a previous run turned it on: the call also imports torch._inductor and sets its config
        torch.use_deterministic_algorithms(False)


def environment(device: torch.device, threads: int | None = None) -> dict[str, Any]:
    """The facts that decide whether two runs can be compared number for number.

    threads: the recipe's `train.threads` (None: torch's current setting, which training keeps).
    """
    versions: dict[str, str | None] = {}
    for dist in ("tunesmith", "torch", "numpy", "scikit-learn", "pandas", "optuna"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads or torch.get_num_threads(),
        "device": str(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "versions": versions,
    }


@contextmanager
def torch_threads(count: int | None) -> Iterator[None]:
    """Run with `count` torch intra-op threads (None: leave them), then restore the caller's setting."""
    previous = torch.get_num_threads()
    if count:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
