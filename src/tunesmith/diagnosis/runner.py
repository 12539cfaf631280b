"""Run every registered check on a Context: one finding per check, never a crash, timed.

A check that does not apply raises `Skip(reason)`; a check that fails unexpectedly on an unusual
model or data (an error inside user code it calls, say) is reported as `skipped` with the error,
so one check can never take the others down. Each check's time includes the shared measurements
(the short run, the probes) that it was the first to need. On data with NaN/inf values every
finding but `missing_values` says in its evidence that it ran on the imputed copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import replace

from tunesmith.diagnosis.base import Skip, check_ids, create_check
from tunesmith.diagnosis.context import Context
from tunesmith.diagnosis.finding import Finding
from tunesmith.errors import BadInput

__all__ = ["run_all"]

log = logging.getLogger("tunesmith.diagnosis")


def run_all(ctx: Context, checks: Sequence[str] | None = None) -> tuple[list[Finding], dict[str, float]]:
    """(findings in registry order, seconds per check) for `checks` (default: all of them)."""
    names = list(checks) if checks is not None else check_ids()
    plugins = [create_check(name) for name in names]  # unknown names fail before anything runs
    findings, timings = [], {}
    for check in plugins:
        started = time.perf_counter()
        try:
            finding = check.run(ctx)
        except Skip as exc:
            finding = Finding(check.id, "skipped", f"Skipped: {exc}.")
        except BadInput:
            raise
        except Exception as exc:  # any error of user code or an unusual setup: report, do not crash
            log.debug("doctor check %s failed", check.id, exc_info=True)
            finding = Finding(
                check.id,
                "skipped",
                f"Could not run on this setup: {type(exc).__name__}: {exc}",
                {"error": type(exc).__name__},
            )
        timings[check.id] = time.perf_counter() - started
        findings.append(_on_imputed_copy(ctx, finding))
    return findings, timings


def _on_imputed_copy(ctx: Context, finding: Finding) -> Finding:
    """Say in the evidence that a check ran on the imputed copy of sick data (missing_values reports the data)."""
    sick = ctx.notes.get("nonfinite")
    if not sick or finding.check == "missing_values" or finding.status == "skipped":
        return finding
    values = sum(s.get("values", 0) for s in sick.values())
    rows = sum(s.get("target_rows", 0) for s in sick.values())
    note = f"imputed copy: {values} NaN/inf inputs replaced by training medians, {rows} rows without a target dropped"
    return replace(finding, evidence={**finding.evidence, "data": note})
