"""The planted bugs ported from user reports really hurt: each against its fixed twin, in plain PyTorch.

A plain loop (Adam, full batches or the case's DataLoader, the case's own loss) trains the buggy
setup and its twin for the same steps. The bug hurts when the buggy setup cannot train at all (the
loss raises, or goes NaN), ends with a validation accuracy (R2 for regression) clearly (0.1) below
the twin's, or gives the same validation rows different predictions on two evaluations (where the
twin does not): results that cannot be reproduced. The doctor must find the bug and
say nothing about the twin at warn/fail.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from tests.doctor_cases import PLANTED, run_case
from tests.doctor_cases.planted_reports import TWINS
from tunesmith.diagnosis import doctor
from tunesmith.diagnosis.targets import accuracy, loss_family

STEPS = 150
MARGIN = 0.1  # validation accuracy (or R2) the fix must add, when the bug does not stop training outright
CASES = [c for c in PLANTED if c.name in TWINS]


def _plain_training(setup: dict[str, Any]) -> tuple[float, bool]:
    """(validation accuracy, or R2 for a regression loss, after STEPS Adam steps; whether two evaluations
    of the same rows agree). The score is NaN when training cannot run or diverges."""
    model, loss_fn = setup["model"], setup.get("loss_fn") or _default_loss(setup)
    train = setup["train"]
    batches = train if isinstance(train, DataLoader) else [tuple(torch.as_tensor(np.asarray(a)) for a in train)]
    xv, yv = (torch.as_tensor(np.asarray(a)) for a in setup["val"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-2)
    model.train()
    try:
        for step, (xb, yb) in enumerate(b for _ in range(STEPS) for b in batches):
            if step == STEPS:
                break
            optimizer.zero_grad()
            loss = loss_fn(model(xb), yb)
            if not torch.isfinite(loss):
                return math.nan, True
            loss.backward()
            optimizer.step()
    except (RuntimeError, IndexError, ValueError):  # the bug stops training
        return math.nan, True
    model.eval()
    with torch.no_grad():
        out, again = model(xv), model(xv)
    stable = bool(torch.equal(out, again))
    if loss_family(loss_fn) == "regression":
        target = yv.double().reshape(len(yv), -1)
        residual = (out.double().reshape(target.shape) - target).pow(2).sum()
        return float(1 - residual / (target - target.mean(dim=0)).pow(2).sum()), stable
    return accuracy(out, yv, loss_fn, loss_family(loss_fn)), stable


def _default_loss(setup: dict[str, Any]) -> nn.Module:
    """What tunesmith's default would be: cross-entropy on integer targets, MSE on float targets."""
    y = np.asarray(setup["val"][1])
    return nn.CrossEntropyLoss() if np.issubdtype(y.dtype, np.integer) else nn.MSELoss()


def test_every_report_case_has_a_twin() -> None:
    assert len(CASES) == len(TWINS) >= 14


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_reported_bug_hurts_against_its_fixed_twin(case) -> None:  # type: ignore[no-untyped-def]
    (buggy, buggy_stable), (fixed, fixed_stable) = _plain_training(case.build()), _plain_training(TWINS[case.name]())
    assert fixed > 0.6 and fixed_stable, f"the fixed twin of {case.name} does not train ({fixed})"
    assert math.isnan(buggy) or buggy < fixed - MARGIN or not buggy_stable, (buggy, fixed)


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_the_doctor_finds_the_bug_and_clears_the_twin(case) -> None:  # type: ignore[no-untyped-def]
    found = run_case(case, checks=[case.expect])[case.expect]
    assert found.failed, found.summary
    twin = doctor(**TWINS[case.name](), checks=[case.expect])[case.expect]
    assert not twin.failed, twin.summary
