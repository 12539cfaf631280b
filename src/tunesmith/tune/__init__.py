"""Tuning (T31, T33, T40, T52, T53): the LR range test, the batch-size finder, and the staged playbook on Optuna.

`tunesmith.tune.lr_find` and `tunesmith.tune.batch_size` are modules; their functions are re-exported
here under names that do not shadow them (`ts.lr_find` is the range test itself).

Names load lazily (PEP 562), as in `tunesmith/__init__.py`: `tunesmith.recipe` imports
`tunesmith.tune.space.TuneConfig`, and that must not pull in torch or optuna. Add a public name by
adding it to `_API` (name -> module).
"""

from __future__ import annotations

import importlib
from typing import Any

_API = {
    "BatchSizeResult": "tunesmith.tune.batch_size",
    "find_batch_size": "tunesmith.tune.batch_size",
    "LRFindResult": "tunesmith.tune.lr_find",
    "lr_find_recipe": "tunesmith.tune.lr_find",
    "ParamSpec": "tunesmith.tune.space",
    "TuneConfig": "tunesmith.tune.space",
    "default_space": "tunesmith.tune.space",
    "TuneResult": "tunesmith.tune.study",
    "tune": "tunesmith.tune.study",
    "run_worker": "tunesmith.tune.worker",
    "create_sampler": "tunesmith.tune.samplers",
    "create_pruner": "tunesmith.tune.samplers",
    "open_storage": "tunesmith.tune.storage",
}
__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tunesmith.tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
