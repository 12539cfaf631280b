"""The report sections of a text run: how long the training texts are and what max_length cuts, and
what a pretrained backbone's neck learned.

TokenLengths reads preprocess.json (the tokenizer's statistics of the training rows: a length histogram,
max_length, the truncated share and the vocabulary size); NeckWeights reads layer_weights.json (T21: the
weight of each hidden layer in the backbone's scalar mix); see docs/text.md.
"""

from __future__ import annotations

from markupsafe import Markup

from tunesmith.report.files import RunFiles
from tunesmith.report.html import grid, kv, note
from tunesmith.report.plots import to_img, token_lengths

__all__ = ["NeckWeights", "TokenLengths"]


class TokenLengths:
    name = "text"
    title = "Text: token lengths and the tokenizer"

    def applies(self, run: RunFiles) -> bool:
        return (run.preprocess or {}).get("kind") == "text"

    def render(self, run: RunFiles) -> Markup:
        state = run.preprocess
        length = int(state["max_length"])
        fig = to_img(token_lengths(state["lengths"], max_length=length), alt="tokens per training text")
        facts = kv(
            {
                "max_length": length,
                "truncated (training rows)": f"{state['truncated_share']:.1%}",
                "median length": state["lengths"]["median"],
                "vocabulary": state["vocab_size"],
            }
        )
        where = (
            f"The backbone's own tokenizer ({state['backbone']}), copied as tokenizer.json"
            if "backbone" in state
            else "Tokenizer fitted on the training rows only (tokenizer.json)"
        )
        told = note(
            f"{where}; longer texts are cut at max_length, and each batch is cut to its longest row (dynamic padding)."
        )
        return grid(fig, facts + told)


class NeckWeights:
    name = "neck"
    title = "Backbone: the neck's layer weights (T21)"

    def applies(self, run: RunFiles) -> bool:
        return run.layer_weights is not None

    def render(self, run: RunFiles) -> Markup:
        found = run.layer_weights
        weights = dict(zip(found["layers"], (f"{w:.3f}" for w in found["weights"]), strict=True))
        told = note(
            "The softmax weight of each hidden layer in the pooled representation, learned with the head; equal "
            f"weights would be {1 / len(weights):.3f} each. Weight on the lower layers means the task reads more "
            "of their surface features than of the top layer's."
        )
        return kv(weights) + told
