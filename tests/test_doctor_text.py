"""The doctor on text (issue 13): the text checks on a planted case and a healthy one, and every existing check
running on an embedding model fed integer token ids (a finding or `skipped` with a reason, never an error)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.textdata import topical
from tunesmith.diagnosis import check_ids, doctor_recipe

pytest.importorskip("tokenizers")


def diagnose(tmp: Path, frame: pd.DataFrame, *checks: str, **overrides: object) -> dict[str, object]:
    frame.to_csv(tmp / "t.csv", index=False)
    found = doctor_recipe(
        overrides={"data.source": str(tmp / "t.csv"), "data.target": "label", **overrides}, checks=list(checks)
    )
    return {f.check: f for f in found.findings}


def healthy() -> pd.DataFrame:
    return topical(300, seed=3, words=(15, 40))


def gibberish(rng: np.random.Generator, n: int) -> str:
    return " ".join("".join(rng.choice(list("qwxzvkj"), 7)) for _ in range(n))


CHECKS = ("text_truncation", "unknown_tokens", "text_duplicates", "label_in_text", "text_as_category")


def test_the_text_checks_pass_a_healthy_text_set(tmp_path: Path) -> None:
    found = diagnose(tmp_path, healthy(), *CHECKS)
    assert {c: found[c].status for c in CHECKS} == dict.fromkeys(CHECKS, "ok")  # type: ignore[attr-defined]


def test_text_truncation_warns_when_max_length_cuts_most_rows(tmp_path: Path) -> None:
    finding = diagnose(tmp_path, healthy(), "text_truncation", **{"data.max_length": 8})["text_truncation"]
    assert finding.status == "warn" and finding.evidence["value"] > 0.9  # type: ignore[attr-defined]


def test_unknown_tokens_warns_on_words_the_training_rows_never_saw(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frame = healthy()
    frame["body"] = [f"{body} {gibberish(rng, 30)}" for body in frame["body"]]  # words seen once: [UNK]
    finding = diagnose(tmp_path, frame, "unknown_tokens")["unknown_tokens"]
    assert finding.status == "warn" and finding.evidence["value"] > 0.3  # type: ignore[attr-defined]


def test_text_duplicates_finds_near_copies_across_the_splits(tmp_path: Path) -> None:
    frame = healthy()
    twins = frame.assign(body=frame["body"] + " indeed")  # not an exact copy: drop_duplicates keeps both
    finding = diagnose(tmp_path, pd.concat([frame, twins]), "text_duplicates")["text_duplicates"]
    assert finding.status == "warn" and finding.evidence["value"] > 0.3  # type: ignore[attr-defined]


def test_label_in_text_warns_when_the_text_names_its_class(tmp_path: Path) -> None:
    frame = healthy()
    frame["body"] = "category " + frame["label"] + ": " + frame["body"]
    finding = diagnose(tmp_path, frame, "label_in_text")["label_in_text"]
    assert finding.status == "warn" and "'sport'" in finding.summary  # type: ignore[attr-defined]


def test_text_as_category_warns_when_the_text_is_one_hot_encoded(tmp_path: Path) -> None:
    found = diagnose(tmp_path, healthy(), "text_as_category", **{"data.kind": "tabular"})
    assert found["text_as_category"].status == "warn"  # type: ignore[attr-defined]
    assert "'body'" in found["text_as_category"].summary  # type: ignore[attr-defined]


@pytest.mark.parametrize("family", ["bag", "rnn"])
def test_every_check_runs_on_an_embedding_model_fed_token_ids(tmp_path: Path, family: str) -> None:
    topical(150).to_csv(tmp_path / "t.csv", index=False)
    found = doctor_recipe(
        overrides={"data.source": str(tmp_path / "t.csv"), "data.target": "label", "model.family": family}, steps=20
    ).findings
    assert [f.check for f in found] == check_ids()
    errors = {f.check: f.summary for f in found if "error" in f.evidence}
    assert not errors  # every check gives a finding or skips with a reason; none fails on int64 ids
    assert sum(f.status != "skipped" for f in found) >= 20
