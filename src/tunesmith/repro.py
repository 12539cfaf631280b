"""Reproducibility (T50): one seed for Python, NumPy and torch, deterministic mode, the run's environment.

The seed is recorded in recipe.yaml and metrics.json; `environment()` is written to env.json so a
reader can tell which library versions and hardware produced a result.
"""

from __future__ import annotations

import os
import platform
import random
import sys
from importlib import metadata
from typing import Any

import numpy as np
import torch

__all__ = ["environment", "seed_everything"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed every RNG a run touches; with `deterministic`, refuse nondeterministic kernels too."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # required by cuBLAS for determinism
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.benchmark = False
    else:
        torch.use_deterministic_algorithms(False)


def environment(device: torch.device) -> dict[str, Any]:
    """The facts that decide whether two runs can be compared number for number."""
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
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "deterministic": torch.are_deterministic_algorithms_enabled(),
        "versions": versions,
    }
