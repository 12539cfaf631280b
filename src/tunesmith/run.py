"""The run directory (shared/design.md): what a run leaves behind, and when it counts as complete.

    recipe.yaml      the resolved recipe (re-runnable)         written first
    env.json         library versions and hardware (T50)       written first
    history.csv      one row per epoch                         rewritten every epoch
    checkpoint.pt    training state for --resume               every epoch, removed when done
    model.pt         the trained state_dict (weights_only)     at the end
    preprocess.json  fitted preprocessing, plain JSON          at the end
    backbone/        a pretrained backbone's config.json       at the end (predict rebuilds the model from it)
    metrics.json     final metrics                             LAST: its presence means complete
    failed.json      {"reason", "message"} of a run that stopped on divergence: never complete

With --cv K each fold has its own fold-K/ directory (history, checkpoint, model, fold.json) and
the top level holds the aggregate and the best-validation fold's model.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from tunesmith.errors import BadInput
from tunesmith.validate import output_dir

__all__ = ["RunDir", "default_run_dir", "write_json"]


def default_run_dir(name: str) -> Path:
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{name}"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so readers never see half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=float))
    os.replace(tmp, path)


class RunDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    recipe = property(lambda self: self.path / "recipe.yaml")
    metrics = property(lambda self: self.path / "metrics.json")
    model = property(lambda self: self.path / "model.pt")
    preprocess = property(lambda self: self.path / "preprocess.json")
    backbone = property(lambda self: self.path / "backbone")  # model.backbone's config (models/backbone.py)
    env = property(lambda self: self.path / "env.json")
    failed = property(lambda self: self.path / "failed.json")  # a run that stopped on an error (see fitting.py)
    embeddings = property(lambda self: self.path / "embeddings")  # a linear probe's cache (train/probe.py)

    @property
    def complete(self) -> bool:
        return self.metrics.is_file()

    def fold(self, k: int, n_folds: int) -> Path:
        """Directory of fold k (0-based): the run itself for a hold-out run."""
        return self.path if n_folds == 1 else self.path / f"fold-{k + 1}"

    def check_new(self) -> None:
        output_dir(self.path, "The run directory")
        if self.path.exists() and any(self.path.iterdir()):
            state = "a complete run" if self.complete else "an unfinished run"
            raise BadInput(
                f"The run directory {self.path} already holds {state}. Pass --resume to continue it, "
                "or choose another --out."
            )

    def check_resumable(self) -> None:
        if not self.recipe.is_file():
            raise BadInput(f"Nothing to resume in {self.path}: it has no recipe.yaml. Start the run without --resume.")

    def load_metrics(self) -> dict[str, Any]:
        return json.loads(self.metrics.read_text())
