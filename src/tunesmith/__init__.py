"""tunesmith: train, tune and diagnose PyTorch neural networks the way an experienced practitioner would.

The public API is listed in `__all__`. Names load lazily (PEP 562) so that `import tunesmith`
and `tunesmith --help` stay instant: torch is imported only when a training function is used.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {
    "Recipe": "tunesmith.recipe",
    "load_recipe": "tunesmith.recipe",
    "fit": "tunesmith.fitting",
    "FitResult": "tunesmith.fitting",
    "predict": "tunesmith.prediction",
    "compare": "tunesmith.comparison",  # not tunesmith.compare: a submodule would shadow the function
    "lr_find": "tunesmith.train.lr_find",
    "find_batch_size": "tunesmith.train.batch_size",
    "tune": "tunesmith.tuning.study",
    "doctor": "tunesmith.diagnosis",  # not tunesmith.doctor: a subpackage would shadow the function
    "load_data": "tunesmith.data",
    "Trainer": "tunesmith.train.trainer",
    "Callback": "tunesmith.train.callbacks",
    "build_model": "tunesmith.models",
    "set_dropout": "tunesmith.models",
    "NeuralClassifier": "tunesmith.sklearn",  # scikit-learn estimators
    "NeuralRegressor": "tunesmith.sklearn",
    "TunesmithError": "tunesmith.errors",
    "BadInput": "tunesmith.errors",
    "TrainingDiverged": "tunesmith.errors",
}
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'tunesmith' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
