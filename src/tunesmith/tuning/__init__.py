"""Tuning (T40, T52, T53): the staged playbook on Optuna (the LR range test and the batch-size finder
it runs as prechecks live in tunesmith.train: the doctor uses them too).

Names load lazily (PEP 562), as in `tunesmith/__init__.py`: importing one submodule (the CLI's
lazy imports do) must not pull in torch or optuna. Add a public name by adding it to `_API` (name -> module).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "ParamSpec": "tunesmith.tuneconfig",
    "TuneConfig": "tunesmith.tuneconfig",
    "default_space": "tunesmith.tuning.space",
    "TuneResult": "tunesmith.tuning.study",
    "tune": "tunesmith.tuning.study",
    "run_worker": "tunesmith.tuning.worker",
    "create_sampler": "tunesmith.tuning.samplers",
    "create_pruner": "tunesmith.tuning.samplers",
    "open_storage": "tunesmith.tuning.storage",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tunesmith.tuning' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
