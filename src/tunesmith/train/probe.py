"""The linear probe (T62, "start simple"): a pretrained backbone frozen, a linear model solved on its embeddings.

    features = embed_rows(model, ids, cache=run_dir / "embeddings")   # (N, H), each row embedded once
    solve_probe(model, ids, y, task=..., cache=...)                   # the head = LogisticRegressionCV / RidgeCV

`train.solver: exact` with `model.backbone` set is the probe: the backbone's pooled embedding of every
training row is computed once (eval mode: no dropout), the linear estimator of train/exact.py is fitted on
the centered and scaled embeddings (`solve_probe`), and its coefficients, the scaling folded in, become the
weights of the model's classifier Linear. `train.probe_init` (on with a backbone) starts fine-tuning from that
head (LP-FT). The model then predicts through its ordinary forward (backbone, neck, pooling,
Linear), so checkpoints, `predict`, ensembles and `compare` treat the probe like any run, and
`compare --vary train.solver=exact,gradient` asks whether fine-tuning beats it on paired seeds.

The cache: a run's `embeddings/` folder holds one `.npz` per backbone (its weights' and config's digest, the
neck and the pooling), each row's vector under the digest of its token ids. A second run over the same rows
(another seed, a fold, a tune trial, `--resume`) embeds nothing; rows it has not seen are embedded and added;
another backbone or another tokenization misses. Sources: Kumar et al. 2022 ("Fine-Tuning can Distort
Pretrained Features": the probe as the baseline full fine-tuning must beat); catalog T62.
"""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tunesmith.data.text import PAD_ID
from tunesmith.train.exact import solve_linear

__all__ = ["EMBED_BATCH", "cache_file", "embed_rows", "solve_probe"]

EMBED_BATCH = 64  # rows per forward pass: sorted by length first, so each batch pads to its own longest row


def embed_rows(model: Any, ids: torch.Tensor, *, cache: Path | None) -> np.ndarray:
    """The frozen model's pooled embedding (N, H) of token-id rows (N, T) padded with 0, float32; rows found in
    `cache` are read, the others computed (shortest first, each batch trimmed to its longest row) and added."""
    keys = [_row_key(row) for row in ids.cpu().numpy()]
    path = cache_file(model, cache) if cache is not None else None
    stored = _load(path) if path is not None else {}
    todo = sorted({k: i for i, k in enumerate(keys) if k not in stored}.values(), key=lambda i: _length(ids[i]))
    if todo:
        stored.update(zip((keys[i] for i in todo), _forward(model, ids[todo]), strict=True))
        if path is not None:
            _save(path, stored)
    return np.stack([stored[k] for k in keys]).astype(np.float32)


def solve_probe(model: Any, ids: torch.Tensor, y: np.ndarray, *, task: str, cache: Path | None) -> Any:
    """Fit the linear estimator on the scaled embeddings of the training rows and load it, the scaling folded into
    the weights, into the model's classifier Linear; returns the estimator.

    The embeddings are centered per dimension and divided by one scale (their root mean variance), not per
    dimension: the penalty grid then means the same for every backbone, and the head stays well-conditioned
    when fine-tuning starts from it (train.probe_init). Per-dimension scaling would divide the weights of
    nearly constant dimensions by their tiny spread, and the first steps of fine-tuning, which move those
    dimensions by far more than that, would throw the logits into the hundreds."""
    features = embed_rows(model, ids, cache=cache)
    mean = features.mean(axis=0)
    scale = float(np.sqrt(np.mean(features.var(axis=0)))) or 1.0  # one scale for all dimensions (the docstring)
    layer = model.classifier[-1]
    estimator = solve_linear(layer, (features - mean) / scale, y, task=task)
    with torch.no_grad():  # w.(f - m)/s + b = (w/s).f + (b - (w/s).m)
        weight = layer.weight / scale
        layer.bias -= weight @ torch.from_numpy(mean).to(layer.weight)
        layer.weight.copy_(weight)
    return estimator


def cache_file(model: Any, folder: Path) -> Path:
    """The cache file of this backbone, neck and pooling in `folder`."""
    parts = (_backbone_digest(model.source), type(model.neck).__name__, type(model.pool).__name__)
    return folder / f"{hashlib.blake2b('|'.join(parts).encode(), digest_size=8).hexdigest()}.npz"


@torch.inference_mode()
def _forward(model: Any, ids: torch.Tensor) -> list[np.ndarray]:
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    vectors = []
    for batch in ids.split(EMBED_BATCH):
        width = max(1, int((batch != PAD_ID).sum(dim=1).max()))  # host sync, once per batch
        vectors.append(model.embed(batch[:, :width].to(device)).float().cpu().numpy())
    model.train(was_training)
    return list(np.concatenate(vectors))


def _row_key(row: np.ndarray) -> bytes:
    return hashlib.blake2b(np.trim_zeros(row.astype(np.int64), "b").tobytes(), digest_size=16).digest()


def _length(row: torch.Tensor) -> int:
    return int((row != PAD_ID).sum())


def _load(path: Path) -> dict[bytes, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path) as saved:  # keys as (N, 16) bytes: numpy's "S" strings would drop a digest's trailing zeros
        return dict(zip((k.tobytes() for k in saved["keys"]), saved["vectors"], strict=True))


def _save(path: Path, stored: dict[bytes, np.ndarray]) -> None:
    """Written whole to a temporary file, then renamed: a reader (another worker) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.partial")
    with partial.open("wb") as handle:
        keys = np.frombuffer(b"".join(stored), dtype=np.uint8).reshape(len(stored), -1)
        np.savez(handle, keys=keys, vectors=np.stack(list(stored.values())))
    partial.replace(path)


def _backbone_digest(directory: Path) -> str:
    files = sorted(p for p in directory.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    return _digest(tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files))


@functools.lru_cache(maxsize=8)
def _digest(files: tuple[tuple[str, int, int], ...]) -> str:
    """The contents' digest of the backbone's config, tokenizer and weights (read once per process and version)."""
    h = hashlib.blake2b(digest_size=16)
    for name, _, _ in files:
        with open(name, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()
