"""The linear probe (T62): `train.solver=exact` with a backbone solves its head on the frozen embeddings,
cached in the run directory: reused by a second run, extended for new rows, missed for another backbone."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch

from tests.textdata import save_tiny_bert, topical
from tunesmith.fitting import fit as ts_fit
from tunesmith.models.backbone import BackboneModel, build_backbone_model
from tunesmith.recipe import ModelConfig
from tunesmith.train import probe

pytest.importorskip("transformers")

PROBE = {"train.solver": "exact"}


def probe_fit(folder: Path, bert: Path, *, out: str, rows: int = 90, seed: int = 0, cache: str = "cache") -> Any:
    path = folder / f"t{rows}.csv"
    if not path.is_file():
        topical(rows, seed=4).to_csv(path, index=False)
    overrides = {"model.backbone": str(bert), **PROBE}
    return ts_fit(
        data=str(path),
        target="label",
        seed=seed,
        out=folder / out,
        progress=False,
        report=False,
        overrides=overrides,
        embeddings=folder / cache,
    )


@pytest.fixture
def forwards(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The rows each embedding pass computed (not read from the cache)."""
    counted: list[int] = []
    real = probe._forward

    def counting(model: Any, ids: torch.Tensor) -> list[np.ndarray]:
        counted.append(len(ids))
        return real(model, ids)

    monkeypatch.setattr(probe, "_forward", counting)
    return counted


def test_the_probe_is_logistic_regression_on_the_frozen_embeddings(bert: Path, tmp_path: Path) -> None:
    from sklearn.linear_model import LogisticRegressionCV

    from tunesmith.train.exact import CS, MAX_ITER

    result = probe_fit(tmp_path, bert, out="run")
    model, prep = result.model, result.prepared
    assert prep is not None
    assert isinstance(model, BackboneModel) and result.metrics["epochs"] == 1
    fresh = build_backbone_model(ModelConfig(backbone=str(bert), dropout=0.1), n_outputs=3).eval()
    assert all(
        torch.equal(a, b)
        for a, b in zip(fresh.backbone.state_dict().values(), model.backbone.state_dict().values(), strict=True)
    )  # frozen
    x, y = torch.as_tensor(prep.x_train), torch.as_tensor(prep.y_train)
    with torch.no_grad():
        features = fresh.embed(x).numpy()
    mean, scale = features.mean(axis=0), np.sqrt(features.var(axis=0).mean())  # centered, one scale for all
    reference = LogisticRegressionCV(Cs=list(CS), cv=3, max_iter=MAX_ITER, scoring="neg_log_loss")
    reference.fit((features - mean) / scale, y.numpy())
    xv = torch.as_tensor(prep.x_val)
    with torch.no_grad():
        ours = torch.softmax(model.eval()(xv), dim=1).numpy()
        theirs = reference.predict_proba((fresh.embed(xv).numpy() - mean) / scale)
    assert np.allclose(ours, theirs, atol=1e-4)
    assert result.metrics["val"]["accuracy"] == pytest.approx(float((theirs.argmax(1) == prep.y_val).mean()))


def test_the_cache_is_reused_extended_for_new_rows_and_missed_for_another_backbone(
    bert: Path, tmp_path: Path, forwards: list[int]
) -> None:
    first = probe_fit(tmp_path, bert, out="run", cache="run/embeddings")  # the default: the run directory's
    assert first.prepared is not None
    n_train = len(first.prepared.x_train)
    assert forwards == [n_train]  # each training row embedded once
    (cached,) = (tmp_path / "run" / "embeddings").iterdir()
    forwards.clear()
    again = probe_fit(tmp_path, bert, out="again", cache="run/embeddings")  # a second run on the same rows
    assert forwards == [] and again.metrics["val"] == first.metrics["val"]
    more = probe_fit(tmp_path, bert, out="more", rows=120, cache="run/embeddings")  # the data changed: 30 new rows
    assert more.prepared is not None and 0 < forwards[0] < len(more.prepared.x_train)  # only the unseen rows
    forwards.clear()
    other = save_tiny_bert(tmp_path / "other", topical(150, seed=9)["body"].tolist(), hidden=48)
    probe_fit(tmp_path, other, out="another", cache="run/embeddings")
    assert forwards == [n_train]  # another backbone: nothing reused, its own file beside the first
    assert {p.name for p in (tmp_path / "run" / "embeddings").iterdir()} - {cached.name} != set()
    forwards.clear()
    shutil.rmtree(other)
    save_tiny_bert(other, topical(150, seed=9)["body"].tolist(), hidden=48)  # new weights in the same directory
    probe_fit(tmp_path, other, out="retrained", cache="run/embeddings")
    assert forwards == [n_train]


def test_probe_is_refused_nowhere_else_than_depth_0_or_a_backbone() -> None:
    from tunesmith.errors import BadInput
    from tunesmith.recipe import DataFacts, make_recipe, resolve

    facts = DataFacts(task="classification", kind="text", input_shape=(20,), n_outputs=3, n_train=60, vocab_size=50)
    with pytest.raises(BadInput, match="linear probe"):
        resolve(make_recipe(overrides={"train.solver": "exact", "model.family": "bag"}), facts)


def test_fine_tuning_starts_from_the_linear_probe(bert: Path, tmp_path: Path) -> None:
    """LP-FT (train.probe_init, on with a backbone): before the first step the head is the probe's solution."""
    from tunesmith.train.callbacks import Callback

    class FirstStep(Callback):
        head: ClassVar[dict[str, torch.Tensor]] = {}

        def on_epoch_start(self, trainer: Any, epoch: int) -> None:
            if epoch == 0:
                FirstStep.head = {k: v.clone() for k, v in trainer.model.classifier.state_dict().items()}

    def fine_tune(out: str, probe_init: str | bool) -> Any:
        overrides = {"model.backbone": str(bert), "train.probe_init": probe_init}
        return ts_fit(
            data=str(tmp_path / "t90.csv"),
            target="label",
            seed=0,
            out=tmp_path / out,
            progress=False,
            report=False,
            epochs=1,
            overrides=overrides,
            callbacks=[FirstStep()],
        )

    probe = probe_fit(tmp_path, bert, out="probe")
    assert fine_tune("ft", "auto").recipe.train.probe_init is True  # on with a backbone
    solved = probe.model.classifier.state_dict()
    assert all(torch.allclose(FirstStep.head[k], solved[k], atol=1e-5) for k in solved)
    assert fine_tune("off", False).recipe.train.probe_init is False
    assert not torch.allclose(FirstStep.head["1.weight"], solved["1.weight"])  # a random head
    assert not (tmp_path / "off" / "embeddings").exists()  # nothing embedded


def test_probe_init_without_a_backbone_is_refused() -> None:
    from tunesmith.errors import BadInput
    from tunesmith.recipe import DataFacts, make_recipe, resolve

    facts = DataFacts(task="classification", kind="tabular", input_shape=(4,), n_outputs=3, n_train=60)
    with pytest.raises(BadInput, match=r"train\.probe_init"):
        resolve(make_recipe(overrides={"train.probe_init": True}), facts)
    assert resolve(make_recipe(), facts).train.probe_init is False


def test_cached_keys_keep_their_trailing_zero_bytes(tmp_path: Path) -> None:
    keys = [bytes(15) + b"\x01", b"\x07" + bytes(15), bytes(16)]  # digests may end (or be made of) zero bytes
    stored = {k: np.full(4, i, dtype=np.float32) for i, k in enumerate(keys)}
    probe._save(tmp_path / "c.npz", stored)
    loaded = probe._load(tmp_path / "c.npz")
    assert list(loaded) == keys and all(np.array_equal(loaded[k], stored[k]) for k in keys)
