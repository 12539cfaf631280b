"""What the doctor knows about a model's pretrained parts: their weights are loaded, not initialized.

A Hugging Face backbone (models/backbone.py's `BackboneModel.backbone`, or any `transformers`
`PreTrainedModel` inside a user's model) arrives trained. Checks that judge an initialization (T13:
bad_init) read only the parts trained from scratch (the head); checks that compare gradients across
depth (T65) compare the blocks of the encoder stack with each other, not the pretrained body with
a fresh head (the head's gradients are large by design and it trains at a higher LR). The parts are
found by class name, so this module never imports `transformers`.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

__all__ = ["Pretrained", "find_pretrained"]


@dataclass(frozen=True)
class Pretrained:
    """The pretrained parts of a model: module-name prefixes, and the blocks of each part's layer stack."""

    parts: tuple[str, ...] = ()  # outermost pretrained submodules ("" when the model itself is one)
    blocks: tuple[str, ...] = ()  # each block of the encoder stacks, bottom to top ("backbone.encoder.layer.0")

    def __bool__(self) -> bool:
        return bool(self.parts)

    def holds(self, name: str) -> bool:
        """Whether module `name` (a dotted path from model.named_modules()) belongs to a pretrained part."""
        return any(_under(name, part) for part in self.parts)

    def block_of(self, name: str) -> str | None:
        """The stack block holding module `name`, or None (embeddings, the head)."""
        return next((block for block in self.blocks if _under(name, block)), None)


def find_pretrained(model: nn.Module) -> Pretrained:
    """The `PreTrainedModel` parts of `model` and the blocks of their layer stacks (empty when it has none)."""
    parts: list[str] = []
    for name, module in model.named_modules():
        if _is_pretrained(module) and not any(_under(name, p) for p in parts):
            parts.append(name)
    blocks: list[str] = []
    for part in parts:
        root = model.get_submodule(part)
        stacks = [(name, m) for name, m in root.named_modules() if isinstance(m, nn.ModuleList) and len(m) > 1]
        if stacks:  # the encoder's layers: its longest ModuleList (BERT's encoder.layer), as layer-wise decay reads it
            name, stack = max(stacks, key=lambda s: len(s[1]))
            prefix = ".".join(p for p in (part, name) if p)
            blocks += [f"{prefix}.{i}" for i in range(len(stack))]
    return Pretrained(tuple(parts), tuple(blocks))


def _is_pretrained(module: nn.Module) -> bool:
    return any(
        c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers") for c in type(module).__mro__
    )


def _under(name: str, prefix: str) -> bool:
    return prefix == "" or name == prefix or name.startswith(prefix + ".")
