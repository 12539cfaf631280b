"""The Trainer: each trick in scope changes what it should (trained and measured, not only accepted)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tunesmith.errors import BadInput, TrainingDiverged
from tunesmith.recipe import Recipe, TrainConfig
from tunesmith.train.callbacks import Callback
from tunesmith.train.trainer import Trainer


def blobs(n: int = 256, *, seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.normal(0, 1, (n, 8)) + y[:, None] * 1.5
    return (x * scale).astype(np.float32), y


def cfg(**changes: object) -> TrainConfig:
    base = {
        "train.epochs": 5,
        "train.batch_size": 32,
        "train.lr": 1e-2,
        "train.schedule": "constant",
        "train.optimizer": "adam",
    }
    return Recipe().with_overrides({**base, **{f"train.{k}": v for k, v in changes.items()}}).train


def mlp(seed: int = 0, hidden: int = 32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 3))


class StepProbe(Callback):
    """Wraps optimizer.step to record what the step sees: gradient norm, max |grad|, and the count."""

    def __init__(self) -> None:
        self.norms: list[float] = []
        self.max_abs: list[float] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        opt = trainer.optimizer
        original = opt.step

        def step(*args, **kwargs):
            grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
            self.norms.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))
            self.max_abs.append(max(float(g.abs().max()) for g in grads))
            return original(*args, **kwargs)

        opt.step = step


def train(config: TrainConfig, *, data=None, val=None, model=None, callbacks=()) -> Trainer:
    data = data or blobs()
    trainer = Trainer(model or mlp(), cfg=config, task="classification", callbacks=list(callbacks))
    trainer.fit(data, val if val is not None else blobs(128, seed=1))
    return trainer


def test_learns_separable_blobs() -> None:
    trainer = train(cfg(epochs=10))
    assert trainer.evaluate(blobs(256, seed=2))["accuracy"] > 0.9
    assert trainer.history[-1]["train_loss"] < trainer.history[0]["train_loss"]


def test_clip_norm_bounds_the_gradient_norm() -> None:
    data = blobs(scale=50.0)  # unscaled inputs: big gradients
    free, clipped = StepProbe(), StepProbe()
    train(cfg(epochs=2), data=data, callbacks=[free])
    train(cfg(epochs=2, clip_norm=0.5), data=data, callbacks=[clipped])
    assert max(free.norms) > 2.0
    assert max(clipped.norms) <= 0.5 + 1e-4


def test_clip_value_bounds_every_gradient_element() -> None:
    data = blobs(scale=50.0)
    free, clipped = StepProbe(), StepProbe()
    train(cfg(epochs=1), data=data, callbacks=[free])
    train(cfg(epochs=1, clip_value=0.01), data=data, callbacks=[clipped])
    assert max(free.max_abs) > 0.1
    assert max(clipped.max_abs) <= 0.01 + 1e-7


def test_max_norm_bounds_each_units_incoming_weights() -> None:
    def row_norms(trainer: Trainer) -> float:
        return max(float(m.weight.detach().norm(dim=1).max()) for m in trainer.model if isinstance(m, nn.Linear))

    assert row_norms(train(cfg(epochs=5))) > 0.8
    assert row_norms(train(cfg(epochs=5, max_norm=0.3))) <= 0.3 + 1e-5


def test_warmup_shapes_the_recorded_lr() -> None:
    lrs = [row["lr"] for row in train(cfg(epochs=6, warmup_epochs=3)).history]
    steps = math.ceil(256 / 32)
    assert lrs[0] == pytest.approx(1e-2 / (3 * steps))  # first step of a linear ramp over 3 epochs
    assert lrs[0] < lrs[1] < lrs[2] < lrs[3]
    assert lrs[3:] == pytest.approx([1e-2] * 3)


@pytest.mark.parametrize(
    ("schedule", "check"),
    [
        ("step", lambda lrs: lrs[0] == pytest.approx(1e-2) and lrs[2] == pytest.approx(1e-3)),
        ("cosine", lambda lrs: all(a > b for a, b in itertools.pairwise(lrs))),
        ("exponential", lambda lrs: lrs[1] == pytest.approx(1e-2 * 0.5)),
        ("linear", lambda lrs: lrs == pytest.approx([1e-2 * (1 - k / 6) for k in range(6)])),  # to 0 at the end
        ("onecycle", lambda lrs: max(lrs) > lrs[0] * 5 and lrs[-1] < max(lrs) / 5),
    ],
)
def test_schedules_shape_the_lr(schedule: str, check) -> None:
    extra = {"step_every": 2} if schedule == "step" else {"gamma": 0.5} if schedule == "exponential" else {}
    lrs = [row["lr"] for row in train(cfg(epochs=6, schedule=schedule, **extra)).history]
    assert check(lrs), lrs


def test_plateau_lowers_lr_when_val_stops_improving() -> None:
    # a validation set with random labels cannot improve: the plateau schedule must cut the lr
    x, _ = blobs(128, seed=3)
    noise = (x, np.random.default_rng(0).integers(0, 3, 128))
    lrs = [row["lr"] for row in train(cfg(epochs=12, schedule="plateau", gamma=0.5), val=noise).history]
    assert lrs[-1] < lrs[0]


def test_early_stopping_restores_the_best_epoch() -> None:
    # few noisy rows and a wide net: validation loss rises after a few epochs
    def noisy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = blobs(n, seed=seed)
        return x, np.where(np.random.default_rng(seed).random(n) < 0.4, (y + 1) % 3, y)

    val = noisy(128, 1)
    config = cfg(epochs=60, lr=3e-2, early_stopping={"patience": 3, "min_epochs": 5})
    trainer = train(config, data=noisy(48, 4), val=val, model=mlp(hidden=256))
    val_losses = [row["val_loss"] for row in trainer.history]
    assert len(val_losses) < 60  # stopped early
    best = int(np.argmin(val_losses))
    assert trainer.best_epoch == best + 1
    assert len(val_losses) == best + 1 + 3  # exactly `patience` epochs after the best
    assert trainer.evaluate(val)["loss"] == pytest.approx(val_losses[best], rel=1e-5)


def test_min_epochs_prevents_premature_stopping() -> None:
    x, _ = blobs(128, seed=3)
    noise = (x, np.random.default_rng(0).integers(0, 3, 128))
    config = cfg(epochs=12, early_stopping={"patience": 1, "min_epochs": 9})
    assert len(train(config, val=noise).history) >= 9


def test_l1_makes_weights_sparser_and_l2_smaller() -> None:
    def first_weights(trainer: Trainer) -> torch.Tensor:
        return trainer.model[0].weight.detach()

    plain = first_weights(train(cfg(epochs=8, weight_decay=0.0)))
    l1 = first_weights(train(cfg(epochs=8, weight_decay=0.0, l1=1e-3)))
    l2 = first_weights(train(cfg(epochs=8, weight_decay=0.0, l2=1e-2)))
    assert (l1.abs() < 1e-2).float().mean() > 2 * (plain.abs() < 1e-2).float().mean()
    assert l2.norm() < 0.8 * plain.norm()


def test_gradient_accumulation_steps_once_per_effective_batch() -> None:
    probe = StepProbe()
    train(cfg(epochs=1, effective_batch_size=128), callbacks=[probe])
    assert len(probe.norms) == 2  # 8 mini-batches of 32, one step per 4
    with pytest.raises(BadInput, match="multiple of"):
        Trainer(mlp(), cfg=cfg(effective_batch_size=48), task="classification")


def test_divergence_stops_cleanly_and_points_at_lr_and_clipping() -> None:
    with pytest.raises(TrainingDiverged, match=r"(?s)train\.lr.*clip_norm"):
        train(cfg(epochs=5, lr=1e6, optimizer="sgd"), data=blobs(scale=100.0))


def test_same_seed_same_history_in_deterministic_mode() -> None:
    from tunesmith.repro import seed_everything

    histories = []
    for _ in range(2):
        seed_everything(7, deterministic=True)
        config = cfg(epochs=3, seed=7, deterministic=True)
        history = train(
            config, model=nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 3))
        ).history
        histories.append([(r["train_loss"], r["val_loss"], r["lr"]) for r in history])
    seed_everything(0)
    assert histories[0] == histories[1]


def test_accepts_a_dataset_and_a_user_dataloader() -> None:
    x, y = blobs()
    ds = TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    trainer = train(cfg(epochs=8), data=ds, val=DataLoader(TensorDataset(*map(torch.from_numpy, blobs(64, seed=5)))))
    assert trainer.history[-1]["val_accuracy"] > 0.8
    loader = DataLoader(ds, batch_size=64, shuffle=True)
    assert len(train(cfg(epochs=2), data=loader).history) == 2


def test_resumed_state_continues_exactly() -> None:
    full = train(cfg(epochs=6)).history
    first = Trainer(mlp(), cfg=cfg(epochs=6), task="classification")
    stopper = type(
        "Stop", (Callback,), {"on_epoch_end": lambda self, t, row: setattr(t, "should_stop", row["epoch"] == 3)}
    )
    first.callbacks.append(stopper())
    first.fit(blobs(), blobs(128, seed=1))
    state = first.state_dict()
    state["should_stop"] = False
    second = Trainer(mlp(seed=99), cfg=cfg(epochs=6), task="classification")
    second.fit(blobs(), blobs(128, seed=1), resume=state)
    strip = lambda h: [(r["train_loss"], r["val_loss"]) for r in h]  # noqa: E731
    assert strip(second.history) == strip(full)


def test_empty_and_mismatched_data_are_bad_input() -> None:
    with pytest.raises(BadInput, match="differ in length"):
        train(cfg(), data=(np.zeros((10, 8), np.float32), np.zeros(9, np.int64)))
    with pytest.raises(BadInput, match="no rows"):
        train(cfg(), data=(np.zeros((0, 8), np.float32), np.zeros(0, np.int64)))


def test_batches_are_reshuffled_every_epoch() -> None:
    from tunesmith.train.trainer import TensorBatches

    x = torch.arange(64).float()[:, None]
    batches = TensorBatches(x, torch.arange(64), 16, shuffle=True, generator=torch.Generator().manual_seed(0))
    first, second = ([int(b[0][0]) for b in batches] for _ in range(2))  # T07
    assert first != second
    assert sorted(torch.cat([xb for xb, _ in batches]).flatten().tolist()) == list(range(64))


def test_binary_task_uses_one_logit_with_fused_bce() -> None:
    from tunesmith.train.losses import ClassificationLoss, outputs_to_predictions

    logits, target = torch.tensor([[2.0], [-1.0]]), torch.tensor([1, 0])
    expected = nn.functional.binary_cross_entropy(torch.sigmoid(logits[:, 0]), target.float())
    assert ClassificationLoss()(logits, target) == pytest.approx(float(expected))  # T12
    predictions, proba = outputs_to_predictions("classification", logits.numpy())
    assert predictions.tolist() == [1, 0] and proba.sum(axis=1) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("sgd", torch.optim.SGD),
        ("adam", torch.optim.Adam),
        ("adamw", torch.optim.AdamW),
        ("rmsprop", torch.optim.RMSprop),
        ("adagrad", torch.optim.Adagrad),
    ],
)
def test_optimizer_choice(name: str, kind: type) -> None:
    from tunesmith.train.optim import make_optimizer

    opt = make_optimizer(mlp(), cfg(optimizer=name))  # T30
    assert type(opt) is kind
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 1e-4]  # weight decay on weight matrices, never on biases (T41)
    if name == "sgd":
        assert opt.defaults["nesterov"] and opt.defaults["momentum"] == 0.9


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_epoch_metrics_match_scikit_learn(seed: int) -> None:
    from sklearn import metrics as skm

    from tunesmith.train.metrics import task_metrics

    rng = np.random.default_rng(seed)
    t, p = rng.integers(0, 5, 300), rng.integers(0, 4, 300)  # class 4 is never predicted
    got = task_metrics("classification", p, t)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(t, p))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(t, p, average="macro", zero_division=0))
    y, yhat = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    reg = task_metrics("regression", yhat, y)
    assert reg["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, yhat)))
    assert reg["mae"] == pytest.approx(skm.mean_absolute_error(y, yhat))
    assert reg["r2"] == pytest.approx(skm.r2_score(y, yhat))


def test_a_user_early_stopping_keeps_its_own_state_across_a_resume(tmp_path) -> None:
    from tunesmith.recipe import EarlyStopConfig
    from tunesmith.train.callbacks import EarlyStopping, atomic_save

    def user() -> EarlyStopping:  # next to the Trainer's own; min_delta 10: it improves on epoch 1 only
        return EarlyStopping(EarlyStopConfig(patience=2, min_delta=10.0, restore_best=False))

    def states(trainer: Trainer) -> list[tuple]:
        return [(cb.best, cb.best_epoch, cb.best_state is None) for cb in trainer.callbacks]  # type: ignore[attr-defined]

    first = train(cfg(epochs=3), callbacks=[user()])
    assert states(first)[0] != states(first)[1]
    atomic_save(first.state_dict(), tmp_path / "checkpoint.pt")
    resumed = Trainer(mlp(seed=99), cfg=cfg(epochs=3), task="classification", callbacks=[user()])
    resumed.fit(blobs(), blobs(128, seed=1), resume=torch.load(tmp_path / "checkpoint.pt", weights_only=True))
    assert states(resumed) == states(first)  # keyed by class name, both got the user's (the last) state
    saved, restored = first.callbacks[0].best_state, resumed.callbacks[0].best_state  # type: ignore[attr-defined]
    assert all(torch.equal(saved[k], restored[k]) for k in saved)


def test_resuming_without_the_checkpoints_callbacks_is_bad_input() -> None:
    from tunesmith.recipe import EarlyStopConfig
    from tunesmith.train.callbacks import EarlyStopping

    first = train(cfg(epochs=2), callbacks=[EarlyStopping(EarlyStopConfig(patience=2))])
    alone = Trainer(mlp(), cfg=cfg(epochs=2), task="classification")
    with pytest.raises(BadInput, match="EarlyStopping#1"):
        alone.fit(blobs(), blobs(128, seed=1), resume=first.state_dict())
