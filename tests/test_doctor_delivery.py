"""Findings do not depend on how the same rows are delivered (issue 15, scope 4).

Every healthy and planted case of tests/doctor_cases that passes its data as `(x, y)` arrays runs
four times: as NumPy arrays, as tensors, as a `TensorDataset` and as a shuffling `DataLoader` with
the batch size the doctor would use. The statuses must be identical. Cases whose planted bug *is*
the delivery (a sorted DataLoader, a Dataset with OS entropy) and the CLI-path cases (which read a
file) are left out: they have no other delivery of the same setup.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from tests.doctor_cases import HEALTHY, PLANTED, Case
from tunesmith.diagnosis import doctor
from tunesmith.diagnosis.inputs import optimizer_name, read_inputs

DELIVERIES = ("arrays", "tensors", "dataset", "loader")


def _as_arrays(data: Any) -> tuple[np.ndarray, np.ndarray] | None:
    if not (isinstance(data, tuple) and len(data) == 2):
        return None
    x, y = (np.asarray(a.to_numpy() if isinstance(a, pd.DataFrame) else a) for a in data)
    # float32, as the model takes them: a DataLoader's batches reach the model unconverted
    return tuple(a.astype(np.float32) if a.dtype == np.float64 else a for a in (x, y))  # type: ignore[return-value]


def _deliver(rows: tuple[np.ndarray, np.ndarray], how: str, batch: int, seed: int) -> Any:
    x, y = (torch.from_numpy(np.ascontiguousarray(a)) for a in rows)
    if how == "arrays":
        return rows
    if how == "tensors":
        return x, y
    data = TensorDataset(x, y)
    if how == "dataset":
        return data
    # as tunesmith's own batches do, a lone last row waits a turn (BatchNorm cannot train on one row)
    return DataLoader(
        data,
        batch_size=batch,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        drop_last=len(data) % batch == 1,
    )


def _deliverable(inputs: dict[str, Any]) -> bool:
    return "recipe" not in inputs and _as_arrays(inputs["train"]) is not None


CASES = HEALTHY + PLANTED


def _batch_size(inputs: dict[str, Any], rows: tuple[np.ndarray, np.ndarray], val: Any) -> int:
    """The batch size the doctor resolves for these arrays: what the shuffling DataLoader must serve."""
    read = read_inputs(rows, val, task=inputs.get("task"), loss_fn=inputs.get("loss_fn"))
    overrides = {
        "train.batch_size": inputs.get("batch_size"),
        "train.lr": inputs.get("lr"),
        "train.optimizer": optimizer_name(inputs.get("optimizer")),
    }
    batch = read.recipe(overrides, seed=0, device="cpu").train.batch_size
    assert batch is not None
    return batch


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_same_rows_in_four_deliveries_give_the_same_statuses(case: Case) -> None:
    if not _deliverable(case.build()):
        pytest.skip("the case's delivery is its bug, or it reads a file (the CLI path)")
    checks = None if case.expect is None else [case.expect]
    statuses = {}
    for how in DELIVERIES:
        inputs = case.build()  # a fresh, seeded model per delivery
        rows = _as_arrays(inputs["train"])
        val = _as_arrays(inputs["val"]) if inputs.get("val") is not None else None
        assert rows is not None
        batch = _batch_size(inputs, rows, val)
        inputs["train"] = _deliver(rows, how, batch, seed=1)
        if val is not None:
            inputs["val"] = _deliver(val, how, batch, seed=2)
        diagnosis = doctor(**inputs, checks=checks)
        statuses[how] = {f.check: f.status for f in diagnosis.findings}
    differ = {
        check: {how: s[check] for how, s in statuses.items()}
        for check in statuses["arrays"]
        if len({s[check] for s in statuses.values()}) > 1
    }
    assert not differ, differ
    if case.expect is not None:
        assert statuses["loader"][case.expect] in ("warn", "fail")


@pytest.mark.slow
def test_the_delivery_sweep_covers_the_suite() -> None:
    covered = [c for c in CASES if _deliverable(c.build())]
    assert len(covered) >= 80 and {c.kind for c in covered} == {"tabular", "image", "sequence"}
    assert sum(c.expect is None for c in covered) >= 8
