"""The report section of a text run: how long the training texts are, and what max_length cuts.

It reads preprocess.json (the tokenizer's statistics of the training rows: a length histogram,
max_length, the truncated share and the vocabulary size); see docs/text.md.
"""

from __future__ import annotations

from markupsafe import Markup

from tunesmith.report.files import RunFiles
from tunesmith.report.html import grid, kv, note
from tunesmith.report.plots import to_img, token_lengths

__all__ = ["TokenLengths"]


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
        told = note(
            "Tokenizer fitted on the training rows only (tokenizer.json); longer texts are cut at max_length, "
            "and each batch is cut to its longest row (dynamic padding)."
        )
        return grid(fig, facts + told)
