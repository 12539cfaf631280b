"""Benchmark (issue 7): what tunesmith's Trainer costs over a hand-written PyTorch loop.

Same model (an MLP with batch norm and dropout), data (in-memory tensors), batch size, optimizer
(AdamW), epochs and threads. The hand loop slices shuffled index batches from the tensors and,
like the Trainer, evaluates validation loss and accuracy after every epoch. The Trainer runs as
`fit` uses it: history rows with validation metrics every epoch (loss, accuracy, F1), the
constant schedule, callbacks dispatched. The runs alternate (the order rotates every pair) and
the ratio is the median of the per-pair ratios, so load on a shared machine hits both sides.
Wall time is the target; the process's CPU time is printed beside it, as it is the steadier
clock on a busy machine. On an oversubscribed CPU, run with `--threads 1`: OpenMP threads that
wait on each other made every run here 20-50x slower and the ratios meaningless.

If `lightning` is importable, its Trainer runs the same work in the same rotation: a
LightningModule around the same model, index-sliced batches (no per-sample collation), the
validation loss and accuracy logged every epoch; no progress bar, logger or checkpointing.

Target: tunesmith / hand loop <= 1.05.

    python benchmarks/overhead.py                 # 7 rounds
    python benchmarks/overhead.py --rounds 9 --rows 20000 --epochs 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from tunesmith.recipe import TrainConfig
from tunesmith.train.trainer import Trainer

FEATURES, CLASSES, WIDTH, BATCH, LR = 32, 10, 256, 128, 1e-3


def make_data(rows: int) -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    y = (x[:, :CLASSES] + 0.5 * rng.standard_normal((rows, CLASSES), dtype=np.float32)).argmax(1)
    cut = int(rows * 0.8)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y.astype(np.int64))
    return xt[:cut], yt[:cut], xt[cut:], yt[cut:]


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Linear(FEATURES, WIDTH),
        nn.BatchNorm1d(WIDTH),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(WIDTH, WIDTH),
        nn.BatchNorm1d(WIDTH),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Linear(WIDTH, CLASSES),
    )


def hand_loop(data: tuple[torch.Tensor, ...], epochs: int) -> float:
    """The loop a careful PyTorch user writes; returns the last validation accuracy."""
    x, y, xv, yv = data
    model = make_model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.0)
    generator = torch.Generator().manual_seed(0)
    accuracy = 0.0
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=generator)
        total = torch.zeros(())
        for i in range(0, len(x), BATCH):
            idx = order[i : i + BATCH]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.detach()
        _train_loss = (total / -(-len(x) // BATCH)).item()
        model.eval()
        with torch.inference_mode():
            out = torch.cat([model(xv[i : i + 1024]) for i in range(0, len(xv), 1024)])
            _val_loss = F.cross_entropy(out, yv).item()
            accuracy = (out.argmax(1) == yv).float().mean().item()
    return accuracy


def tunesmith_trainer(data: tuple[torch.Tensor, ...], epochs: int) -> float:
    x, y, xv, yv = data
    cfg = TrainConfig.model_validate(
        {
            "epochs": epochs,
            "batch_size": BATCH,
            "lr": LR,
            "optimizer": "adamw",
            "weight_decay": 0.0,
            "schedule": "constant",
            "early_stopping": {"patience": None},
            "device": "cpu",
            "checkpoint": False,
        }
    )
    trainer = Trainer(make_model(), cfg=cfg, task="classification")
    history = trainer.fit((x, y), (xv, yv))
    return history[-1]["val_accuracy"]


def lightning_trainer(data: tuple[torch.Tensor, ...], epochs: int) -> float:
    import lightning as L
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    x, y, xv, yv = data

    class Slices(torch.utils.data.Dataset):  # index-sliced batches: no per-sample collation
        def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
            self.a, self.b = a, b

        def __len__(self) -> int:
            return len(self.a)

        def __getitem__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
            return self.a[idx], self.b[idx]

    class Module(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = make_model()

        def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
            return F.cross_entropy(self.net(batch[0]), batch[1])

        def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
            out = self.net(batch[0])
            self.log("val_loss", F.cross_entropy(out, batch[1]), prog_bar=False)
            self.log("val_accuracy", (out.argmax(1) == batch[1]).float().mean(), prog_bar=False)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.AdamW(self.parameters(), lr=LR, weight_decay=0.0)

    train_ds, val_ds = Slices(x, y), Slices(xv, yv)
    generator = torch.Generator().manual_seed(0)
    train = DataLoader(
        train_ds, batch_size=None, sampler=BatchSampler(RandomSampler(train_ds, generator=generator), BATCH, False)
    )
    val = DataLoader(val_ds, batch_size=None, sampler=BatchSampler(SequentialSampler(val_ds), 1024, False))
    trainer = L.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    module = Module()
    trainer.fit(module, train, val)
    return float(trainer.callback_metrics["val_accuracy"])


def timed(
    run: Callable[[tuple[torch.Tensor, ...], int], float], data: tuple[torch.Tensor, ...], epochs: int
) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process): on a shared machine the CPU time is the steadier of the two."""
    wall, cpu = time.perf_counter(), time.process_time()
    run(data, epochs)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds (>= 5)")
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    runners: dict[str, Callable[[tuple[torch.Tensor, ...], int], float]] = {
        "hand": hand_loop,
        "tunesmith": tunesmith_trainer,
    }
    try:
        import lightning  # noqa: F401

        runners["lightning"] = lightning_trainer
        import logging

        logging.getLogger("lightning").setLevel(logging.ERROR)
        logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module="lightning")
    except ImportError:
        print("lightning is not installed: its column is skipped")
    data = make_data(args.rows)
    print(
        f"{args.rows} rows x {FEATURES} features, batch {BATCH}, {args.epochs} epochs, {args.threads} threads, "
        f"load average {os.getloadavg()}"
    )
    for run in runners.values():  # warm-up: first-call costs (imports, allocator) count for nobody
        run(data, 1)
    names = list(runners)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            times[name].append(timed(runners[name], data, args.epochs))
        print(f"round {r + 1}: " + ", ".join(f"{n} {times[n][-1][0]:.2f} s" for n in names), flush=True)
    for name in names[1:]:
        for i, clock in enumerate(("wall", "CPU")):
            ratios = [t[i] / h[i] for t, h in zip(times[name], times["hand"], strict=True)]
            ours, hand = statistics.median(t[i] for t in times[name]), statistics.median(h[i] for h in times["hand"])
            print(
                f"{name} / hand loop ({clock} time): median ratio {statistics.median(ratios):.3f} "
                f"(min {min(ratios):.3f}, max {max(ratios):.3f}); median {ours:.2f} s vs {hand:.2f} s"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
