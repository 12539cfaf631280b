"""Where a pretrained backbone's files are (`model.backbone`), checked before any work.

`model.backbone` is a local Hugging Face directory (config.json, the weights, tokenizer.json) or a hub id.
A hub id is resolved to its cached download by `huggingface_hub` (the library `transformers` itself
downloads with), which fetches it on a machine with internet. Either way the result is a directory, and
both the data step (its tokenizer.json, read with `tokenizers`) and the model step (`transformers`'
AutoModel) read that one directory. The config is read here as plain JSON: the data step needs only the
position limit and the pad id, so tokenizing never imports `transformers`.

Missing pieces are refused with exit 2 naming the file and the fix (docs/text.md, "Pretrained backbones").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.data.text import PAD_ID
from tunesmith.errors import BadInput

__all__ = ["Backbone", "locate"]

WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # one of them; sharded checkpoints name their index
WEIGHT_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
NEEDED = ("config.json", "tokenizer.json", *WEIGHTS, *WEIGHT_INDEXES)  # what a hub download fetches
FIX = (
    "Download it on a machine with internet (huggingface-cli download ID --local-dir DIR, or "
    "AutoModel.from_pretrained(ID).save_pretrained(DIR) plus its tokenizer.json), copy DIR here and pass "
    "model.backbone=DIR."
)


@dataclass(frozen=True)
class Backbone:
    """A backbone directory and what its config.json says that the data step needs."""

    path: Path
    config: dict[str, Any]

    @property
    def tokenizer_file(self) -> Path:
        return self.path / "tokenizer.json"

    @property
    def max_positions(self) -> int | None:
        """Tokens the model can read at once (position embeddings); None when the config does not say."""
        value = self.config.get("max_position_embeddings")
        return int(value) if isinstance(value, int) and value > 0 else None


def locate(name: str) -> Backbone:
    """The checked directory of `model.backbone` (a local directory, or a hub id's download)."""
    path = Path(name).expanduser()
    if not path.is_dir():
        if path.exists() or name.startswith((".", "/", "~")) or name.count("/") > 1:
            raise BadInput(
                f"model.backbone={name!r} is not a directory. Pass a Hugging Face model directory (config.json, "
                "model.safetensors, tokenizer.json) or a hub id such as 'sentence-transformers/all-MiniLM-L6-v2'."
            )
        path = _download(name)
    for needed, what in (("config.json", "its configuration"), ("tokenizer.json", "its tokenizer")):
        if not (path / needed).is_file():
            extra = " (a slow tokenizer's vocab.txt alone is not read: save the fast one)" if needed[0] == "t" else ""
            raise BadInput(
                f"model.backbone={name!r}: {path} has no {needed}, {what}{extra}. Save the model with "
                f"save_pretrained and its tokenizer with tokenizer.save_pretrained into {path}, then rerun."
            )
    if not any((path / w).is_file() for w in (*WEIGHTS, *WEIGHT_INDEXES)):
        raise BadInput(
            f"model.backbone={name!r}: {path} has no weights ({' or '.join(WEIGHTS)}): a config alone would "
            f"train a randomly initialised model. Save the pretrained model there "
            f"(model.save_pretrained({str(path)!r})) and rerun."
        )
    try:
        config = json.loads((path / "config.json").read_text())
    except ValueError as exc:
        raise BadInput(f"model.backbone={name!r}: {path / 'config.json'} is not valid JSON ({exc}).") from None
    pad = config.get("pad_token_id", PAD_ID)
    if pad not in (PAD_ID, None):
        raise BadInput(
            f"model.backbone={name!r}: its pad_token_id is {pad}; tunesmith's batches pad with id {PAD_ID} "
            "(BERT, MiniLM, DistilBERT, ELECTRA and DeBERTa do). Choose a backbone whose pad id is 0."
        )
    return Backbone(path, config)


def _download(name: str) -> Path:
    """A hub id's files from the local cache, fetched first when the machine is online."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise BadInput("Pretrained backbones need 'transformers': pip install 'tunesmith[text]'.") from None
    try:
        return Path(snapshot_download(name, allow_patterns=list(NEEDED)))
    except Exception as exc:  # no network, no such repository, a gated one: all say the same to the user
        raise BadInput(
            f"model.backbone={name!r} is not a local directory, and downloading it from the Hugging Face hub "
            f"failed ({type(exc).__name__}: this machine has no network, or no such model). {FIX}"
        ) from None
