"""Text as an input (issue 13, from scratch): detection, the tokenizer fitted on training rows only, the text
families, dynamic padding, fit -> predict on raw strings, the estimators on strings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests.textdata import topical
from tunesmith.data import load_data
from tunesmith.data.columns import plan_columns
from tunesmith.fitting import fit as ts_fit
from tunesmith.models import build_model
from tunesmith.prediction import predict
from tunesmith.recipe import DataConfig, DataFacts, ModelConfig, Recipe, resolve
from tunesmith.train.trainer import Trainer

pytest.importorskip("tokenizers")


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    topical(300).to_csv(folder / "reviews.csv", index=False)
    ts_fit(data=str(folder / "reviews.csv"), target="label", epochs=8, out=folder / "run", progress=False)
    return folder


# ---- detection ----------------------------------------------------------------------------------------
def test_free_text_is_found_and_never_one_hot_encoded_while_ids_stay_categories() -> None:
    frame = topical(60).drop(columns="label")
    frame["user"] = [f"user_{i:04d}" for i in range(60)]  # distinct, but one word each: an ID
    frame["city"] = np.resize(["New York", "Paris", "San Jose"], 60)  # multi-word, but few values: a category
    plan = plan_columns(frame, source="t.csv")
    assert plan.text == ["body"]


def test_a_text_table_loads_as_text_and_says_so(tmp_path: Path) -> None:
    topical(90).to_csv(tmp_path / "t.csv", index=False)
    loaded = load_data(DataConfig(source=str(tmp_path / "t.csv"), target="label"), seed=0)
    assert loaded.kind == "text" and loaded.cfg.text == "body"
    assert any("free text" in note and "never one-hot" in note for note in loaded.notes["inferred"])
    prep = loaded.prepare(0)
    assert prep.x_train.dtype == np.int64 and prep.x_train.shape[1] == prep.preprocessor.state["max_length"]
    assert prep.facts.vocab_size == prep.preprocessor.vocab_size > 30


def test_a_jsonl_file_with_a_text_field_loads_as_text(tmp_path: Path) -> None:
    topical(60).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    loaded = load_data(DataConfig(source=str(tmp_path / "t.jsonl"), target="label"), seed=0)
    assert loaded.kind == "text" and loaded.cfg.text == "body" and loaded.notes["rows"] == 60


# ---- tokenizer: training rows only ----------------------------------------------------------------------
def test_the_tokenizer_is_fitted_on_training_rows_only(tmp_path: Path) -> None:
    """New words planted in the test rows change nothing but the final test evaluation."""
    frame = topical(240)
    frame.to_csv(tmp_path / "clean.csv", index=False)
    test_texts = set(load_data(DataConfig(source=str(tmp_path / "clean.csv"), target="label"), seed=0).x_test["body"])
    poisoned = frame.assign(
        body=[t + " zorblax quuxian flimflam zorblax" if t in test_texts else t for t in frame["body"]]
    )
    poisoned.to_csv(tmp_path / "poisoned.csv", index=False)
    runs = {}
    for name in ("clean", "poisoned"):
        ts_fit(data=str(tmp_path / f"{name}.csv"), target="label", epochs=3, out=tmp_path / name, progress=False)
        runs[name] = tmp_path / name
    assert (runs["clean"] / "tokenizer.json").read_text() == (runs["poisoned"] / "tokenizer.json").read_text()
    assert "zorblax" not in (runs["clean"] / "tokenizer.json").read_text()
    histories = [pd.read_csv(r / "history.csv").drop(columns="seconds") for r in runs.values()]
    pd.testing.assert_frame_equal(*histories)
    metrics = [json.loads((r / "metrics.json").read_text()) for r in runs.values()]
    assert metrics[0]["val"] == metrics[1]["val"]
    assert metrics[0]["test"]["loss"] != metrics[1]["test"]["loss"]  # [UNK]s in the test rows: only this moves


def test_max_length_comes_from_the_training_lengths_and_truncation_is_recorded(text_run: Path) -> None:
    state = json.loads((text_run / "run" / "preprocess.json").read_text())
    assert state["tokenizer_file"] == "tokenizer.json" and "tokenizer" not in state
    assert state["max_length"] % 8 == 0 and state["max_length"] >= 32  # 95th percentile of 4..39 words
    assert 0.0 <= state["truncated_share"] <= 0.1
    assert sum(state["lengths"]["counts"]) == 192  # the training rows: 300, less 20% test, less 20% validation


# ---- models -----------------------------------------------------------------------------------------------
def text_model(family: str, **extra: object) -> nn.Module:
    facts = DataFacts(task="classification", kind="text", n_train=100, input_shape=(16,), n_outputs=3, vocab_size=50)
    recipe = resolve(Recipe(model=ModelConfig(family=family, **extra)), facts)  # type: ignore[arg-type]
    return build_model(recipe.model, kind="text", input_shape=(16,), n_outputs=3, vocab_size=50)


@pytest.mark.parametrize("family", ["bag", "cnn", "rnn", "transformer"])
def test_text_families_embed_with_truncated_normal_and_ignore_padding(family: str) -> None:
    torch.manual_seed(0)
    model = text_model(family).eval()
    embedding = next(m for m in model.modules() if isinstance(m, nn.Embedding))
    weight = embedding.weight.detach()
    assert embedding.padding_idx == 0 and torch.all(weight[0] == 0)  # T13: the pad row is zero
    assert 0.015 < float(weight[1:].std()) < 0.02 and float(weight.abs().max()) <= 0.04  # std 0.02, cut at 2 std
    ids = torch.randint(1, 50, (4, 6))
    padded = torch.cat([ids, torch.zeros(4, 10, dtype=torch.long)], dim=1)
    if family != "rnn":  # the RNN reads the pads (not packed); the others never see them
        torch.testing.assert_close(model(ids), model(padded))
    assert model(padded).shape == (4, 3)


def test_the_text_rnn_has_layer_norm_and_the_default_family_is_the_bag() -> None:
    model = text_model("rnn", cell="gru")
    assert isinstance(model.norm, nn.LayerNorm) and isinstance(model.rnn, nn.GRU)  # T14, T19
    facts = DataFacts(task="classification", kind="text", n_train=100, input_shape=(16,), n_outputs=3, vocab_size=50)
    resolved = resolve(Recipe(), facts)
    assert resolved.model.family == "bag" and resolved.model.norm == "layer" and resolved.train.dynamic_padding


def test_dynamic_padding_cuts_each_batch_to_its_longest_row() -> None:
    seen: list[int] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4, padding_idx=0)
            self.fc = nn.Linear(4, 2)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            seen.append(ids.shape[1])
            return self.fc(self.embed(ids).mean(dim=1))

    x = np.zeros((8, 32), dtype=np.int64)
    x[:4, :3] = 5  # four rows of 3 tokens, four of 20
    x[4:, :20] = 7
    y = np.array([0, 1] * 4)
    cfg = resolve(
        Recipe(train={"batch_size": 4}),
        DataFacts(task="classification", kind="text", n_train=8, input_shape=(32,), n_outputs=2, vocab_size=10),
    ).train
    trainer = Trainer(Probe(), cfg=cfg, task="classification")
    trainer.outputs((x[:4], y[:4]))
    assert seen == [3]  # a batch of short rows reaches the model with 3 columns, not max_length 32
    trainer.start(2)
    trainer.model.train()
    for xb, yb in trainer.batches((x, y), train=True):
        trainer.train_step(xb, yb)
    assert max(seen[1:]) == 20 and all(width in (3, 20) for width in seen)
    off = Trainer(Probe(), cfg=cfg.model_copy(update={"dynamic_padding": False}), task="classification")
    off.outputs((x[:4], y[:4]))
    assert seen[-1] == 32


def test_grouping_by_length_pads_far_less_and_still_serves_every_row_once() -> None:
    from tunesmith.train.trainer import TensorBatches

    rng = np.random.default_rng(0)
    lengths = torch.from_numpy(rng.integers(1, 60, size=1001))
    x = (torch.arange(60)[None, :] < lengths[:, None]).long()  # 1001 rows of 1..59 tokens, right-padded
    served = {}
    for group in (False, True):
        batches = TensorBatches(
            x,
            torch.arange(1001),
            16,
            shuffle=True,
            generator=torch.Generator().manual_seed(0),
            lengths=lengths,
            group=group,
        )
        rows = [yb for _, yb in batches]
        assert sorted(torch.cat(rows).tolist()) == list(range(1001))  # every row once (1001 % 16 = 9: no lone row)
        served[group] = sum(xb.numel() for xb, _ in batches)  # token cells the model reads, padding included
    assert served[True] < 0.6 * served[False]  # random batches of 16 nearly always hold a row of ~59 tokens
    assert served[True] >= int(lengths.sum())


# ---- fit, predict, estimators --------------------------------------------------------------------------
def test_a_from_scratch_fit_beats_chance_by_a_wide_margin(text_run: Path) -> None:
    metrics = json.loads((text_run / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.85  # chance is 1/3


def test_predict_on_raw_strings_equals_the_runs_test_predictions(text_run: Path) -> None:
    run = text_run / "run"
    loaded = load_data(DataConfig(source=str(text_run / "reviews.csv"), target="label", text="body"), seed=0)
    predicted = predict(run, loaded.x_test.assign(label=loaded.y_test))
    accuracy = float((predicted["prediction"].to_numpy() == loaded.y_test).mean())
    metrics = json.loads((run / "metrics.json").read_text())
    assert accuracy == pytest.approx(metrics["test"]["accuracy"])
    again = predict(run, loaded.x_test["body"].to_numpy())  # a bare array of strings reads alike
    pd.testing.assert_frame_equal(predicted, again)


def test_the_estimators_take_a_list_of_strings() -> None:
    from tunesmith.sklearn import NeuralClassifier

    frame = topical(150, seed=1)
    clf = NeuralClassifier(epochs=10).fit(frame["body"].tolist(), frame["label"].to_numpy())
    fresh = topical(60, seed=2)
    assert clf.kind_ == "text" and clf.recipe_.model.family == "bag"
    assert (clf.predict(fresh["body"].tolist()) == fresh["label"].to_numpy()).mean() > 0.8
    assert clf.predict_proba(["", "ball goal team"]).shape == (2, 3)  # an empty text is all padding, no crash


def test_a_tabular_fit_imports_no_tokenizers_or_transformers(tmp_path: Path) -> None:
    code = (
        "import sys, tunesmith as ts; "
        f"ts.fit(data='iris', epochs=1, out={str(tmp_path / 'run')!r}, progress=False, report=False); "
        "print(sorted(m for m in ('tokenizers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


# ---- bad input: exit 2, one paragraph naming the file or field and the fix, nothing written -------------------
def _texts_with(tmp: Path, **columns: object) -> Path:
    frame = topical(60)
    for name, values in columns.items():
        frame[name] = values
    frame.to_csv(tmp / "t.csv", index=False)
    return tmp / "t.csv"


def _text_folder(tmp: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        (tmp / "docs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / "docs" / name).write_bytes(content)
    return tmp / "docs"


BAD = {
    "missing --text column": (lambda t: [str(_texts_with(t)), "--text", "bdy"], ("'bdy'", "Did you mean 'body'")),
    "numeric --text column": (
        lambda t: [str(_texts_with(t, stars=np.arange(60))), "--text", "stars"],
        ("'stars'", "numbers", "--text"),
    ),
    "every text empty": (
        lambda t: [str(_texts_with(t, body=["  "] * 60)), "--text", "body"],
        ("'body'", "empty or whitespace"),
    ),
    "one class": (lambda t: [str(_texts_with(t, label="sport"))], ("single class", "--target")),
    "mixed table": (
        lambda t: [str(_texts_with(t, stars=np.arange(60), country="fr"))],
        ("'body'", "'stars'", "'country'", "Drop those columns", "docs/text.md"),
    ),
    "folder without files": (
        lambda t: [str(_text_folder(t, {"a/.keep": b""}).parent / "docs")],
        ("no images and no .txt files", "<class>/*.txt"),
    ),
    "undecodable file": (
        lambda t: [str(_text_folder(t, {"a/one.txt": b"good words here", "b/two.txt": b"bad \xff\xfe bytes"}))],
        ("two.txt", "UTF-8"),
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_text_input_exits_2_naming_the_file_or_field_and_the_fix(case: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    build, words = BAD[case]
    args = ["fit", "--data", *build(tmp_path), "--target", "label", "--epochs", "1", "--quiet", "--out"]
    result = CliRunner().invoke(app, [*args, str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    for word in words:
        assert word.lower() in result.output.lower(), (word, result.output)
    assert "Traceback" not in result.output and not (tmp_path / "run").exists()


def test_empty_texts_are_dropped_and_counted(tmp_path: Path) -> None:
    path = _texts_with(tmp_path, body=["", "   ", *topical(58)["body"].tolist()])
    loaded = load_data(DataConfig(source=str(path), target="label"), seed=0)
    assert loaded.notes["rows"] == 58
    assert any("2 of 60 rows" in note and "dropped" in note for note in loaded.notes["inferred"])


def test_a_text_folder_fits_with_one_folder_per_class(tmp_path: Path) -> None:
    frame = topical(90)
    files = {
        f"{label}/{i}.txt": body.encode()
        for i, (body, label) in enumerate(zip(frame["body"], frame["label"], strict=True))
    }
    files["food/empty.txt"] = b"  \n"
    loaded = load_data(DataConfig(source=str(_text_folder(tmp_path, files))), seed=0)
    assert loaded.kind == "text" and loaded.classes == ["food", "sport", "tech"]
    assert loaded.notes["rows"] == 90 and any("1 of 91" in note for note in loaded.notes["inferred"])


def test_tune_chooses_among_the_text_families_and_embedding_sizes() -> None:
    from tunesmith.tuning.space import ambiguous_kind, default_space

    facts = DataFacts(task="classification", kind="text", n_train=500, input_shape=(64,), n_outputs=3, vocab_size=900)
    evidence = ambiguous_kind(Recipe(), facts)
    space = default_space(resolve(Recipe(), facts), facts, ambiguous=evidence is not None)
    assert space["model.family"].choices == ["bag", "cnn", "rnn", "transformer"]
    assert space["model.embed_dim"].choices == [64, 128, 256] and space["model.depth"].low == 0
    assert ambiguous_kind(Recipe(model={"family": "rnn"}), facts) is None  # the user's family is kept


def test_the_linear_baseline_of_a_text_run_is_tfidf_logistic_regression(text_run: Path) -> None:
    linear = json.loads((text_run / "run" / "metrics.json").read_text())["baselines"]["linear"]
    assert linear["model"] == "TF-IDF + LogisticRegressionCV" and linear["val"]["accuracy"] > 0.8


def test_the_report_shows_the_token_length_histogram_with_max_length(text_run: Path) -> None:
    page = (text_run / "run" / "report.html").read_text()
    state = json.loads((text_run / "run" / "preprocess.json").read_text())
    assert "Text: token lengths and the tokenizer" in page and "truncated (training rows)" in page
    assert f"<dd>{state['max_length']}</dd>" in page
    assert "is free text" in page and "never one-hot encoded" in page  # the detection, announced in the report
