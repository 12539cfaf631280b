"""T06 augmentation: behaviour of every op on batched tensors (tunesmith.data.augment)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tunesmith.data import augment as aug_module
from tunesmith.data.augment import Augment, make_augment
from tunesmith.errors import BadInput
from tunesmith.recipe import AugmentConfig

IMAGE_OPS = ["flip", "rotate", "translate", "scale", "shear", "color", "noise"]
SEQUENCE_OPS = ["shift", "jitter", "scaling", "masking"]
TABULAR_OPS = ["noise", "mixup"]
ALL = [("image", op) for op in IMAGE_OPS] + [("sequence", op) for op in SEQUENCE_OPS]
ALL += [("tabular", op) for op in TABULAR_OPS]


def build(ops: list[str], kind: str, strength: float = 0.5, task: str = "regression", n_classes: int = 0) -> Augment:
    cfg = AugmentConfig.model_validate({"ops": ops, "strength": strength})
    augment = make_augment(cfg, kind=kind, task=task, n_classes=n_classes)
    assert augment is not None
    return augment


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batch(kind: str, seed: int = 1, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    g = gen(seed)
    shape = {"image": (16, 3, 12, 10), "sequence": (16, 40, 3), "tabular": (16, 5)}[kind]
    return torch.randn(shape, generator=g).to(dtype) + 1.0, torch.randn(16, 1, generator=g).to(dtype)


def run(augment: Augment, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return augment(x, y, gen(seed))


@pytest.mark.parametrize("cfg", [{"ops": []}, {"ops": ["rotate"], "strength": 0.0}])
def test_nothing_to_do_gives_none(cfg: dict[str, object]) -> None:
    assert make_augment(AugmentConfig.model_validate(cfg), kind="image", task="classification", n_classes=3) is None


def test_unresolved_auto_ops_are_refused() -> None:
    with pytest.raises(BadInput, match="resolved"):
        make_augment(AugmentConfig.model_validate({}), kind="image", task="regression", n_classes=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("kind", "op"), ALL)
def test_each_op_keeps_shape_dtype_labels_and_inputs(kind: str, op: str, dtype: torch.dtype) -> None:
    x, y = batch(kind, dtype=dtype)
    x0, y0 = x.clone(), y.clone()
    out, y_out = run(build([op], kind), x, y)
    assert out.shape == x.shape and out.dtype == dtype
    assert not torch.equal(out, x)  # the op did something
    assert torch.equal(x, x0) and torch.equal(y, y0)  # nothing modified in place
    if op != "mixup":
        assert y_out is y


@pytest.mark.parametrize(("kind", "op"), [k for k in ALL if k[1] != "flip"])
def test_magnitude_grows_with_strength(kind: str, op: str) -> None:
    x, y = batch(kind)
    change = {s: (run(build([op], kind, strength=s), x, y)[0] - x).abs().mean().item() for s in (0.2, 1.0)}
    assert change[1.0] > change[0.2] > 0


def test_same_seed_same_output_other_seed_other_output() -> None:
    augment = build(IMAGE_OPS, "image")
    x, y = batch("image")
    first, second, other = run(augment, x, y, 7)[0], run(augment, x, y, 7)[0], run(augment, x, y, 8)[0]
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)


def test_generator_state_replays_after_resume() -> None:
    augment, (x, y), g = build(["rotate", "color"], "image"), batch("image"), gen(3)
    augment(x, y, g)  # epoch 1, then the checkpoint saves the generator state
    state = g.get_state()
    expected = augment(x, y, g)[0]
    resumed = torch.Generator()
    resumed.set_state(state)
    assert torch.equal(augment(x, y, resumed)[0], expected)


def test_geometric_ops_share_one_grid_sample(monkeypatch: pytest.MonkeyPatch) -> None:
    calls, grid_sample = [], F.grid_sample

    def counting(*args: object, **kwargs: object) -> torch.Tensor:
        calls.append(1)
        return grid_sample(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aug_module.F, "grid_sample", counting)
    run(build(["flip", "color", "rotate", "translate", "scale", "shear"], "image"), *batch("image"))
    assert len(calls) == 1


def test_flip_gives_the_original_or_its_mirror() -> None:
    x, y = torch.rand(64, 2, 5, 7, generator=gen(2)), torch.zeros(64)
    out = run(build(["flip"], "image", strength=0.1), x, y)[0]
    same = (out - x).abs().flatten(1).amax(1) < 1e-5
    mirrored = (out - x.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all()) and 10 < int(mirrored.sum()) < 54
    twice = run(build(["flip", "flip"], "image"), x, y)[0]  # two fused flips: identity or one mirror
    same = (twice - x).abs().flatten(1).amax(1) < 1e-5
    mirrored = (twice - x.flip(-1)).abs().flatten(1).amax(1) < 1e-5
    assert bool((same | mirrored).all()) and int(same.sum()) > 10


def centre_of_mass(img: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) -> (B, 2) mass-weighted (row, column)."""
    h, w = img.shape[-2:]
    mass = img.sum((1, 2, 3))
    rows = (img.sum((1, 3)) * torch.arange(h)).sum(1) / mass
    cols = (img.sum((1, 2)) * torch.arange(w)).sum(1) / mass
    return torch.stack([rows, cols], 1)


def test_translate_moves_a_bright_pixel_by_a_bounded_amount() -> None:
    x = torch.zeros(64, 1, 21, 31)
    x[:, :, 10, 15] = 1.0
    out = run(build(["translate"], "image", strength=0.5), x, torch.zeros(64))[0]
    moved = (centre_of_mass(out) - centre_of_mass(x)).abs()  # (B, 2) in pixels
    assert torch.allclose(out.sum((1, 2, 3)), torch.ones(64), atol=1e-4)  # inside the frame: nothing lost
    assert bool((moved[:, 0] <= 0.1 * 21 + 1e-3).all()) and bool((moved[:, 1] <= 0.1 * 31 + 1e-3).all())
    assert moved.max() > 1.0


def test_rotation_preserves_mass_and_keeps_the_centre() -> None:
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    blob = torch.exp(-((yy - 15.5) ** 2 + (xx - 15.5) ** 2) / 18)  # centred Gaussian blob
    x = blob.expand(16, 1, 32, 32) * torch.linspace(1, 2, 16).view(16, 1, 1, 1)
    out = run(build(["rotate"], "image", strength=1.0), x, torch.zeros(16))[0]
    assert torch.allclose(out.sum((1, 2, 3)), x.sum((1, 2, 3)), rtol=0.02)
    assert torch.allclose(centre_of_mass(out), centre_of_mass(x), atol=0.05)
    stripe = torch.zeros(8, 1, 32, 32)
    stripe[..., 15:17, :] = 1.0  # a horizontal bar leaves its rows when rotated
    assert (run(build(["rotate"], "image"), stripe, torch.zeros(8))[0] - stripe).abs().max() > 0.5


def test_color_keeps_structure_and_noise_is_zero_mean() -> None:
    x, y = batch("image")
    out = run(build(["color"], "image"), x, y)[0]
    std, mean = torch.std_mean(x, dim=(1, 2, 3), keepdim=True)
    std_out, mean_out = torch.std_mean(out, dim=(1, 2, 3), keepdim=True)
    assert torch.allclose((out - mean_out) / std_out, (x - mean) / std, atol=1e-4)  # per-sample a * x + b, a > 0
    assert not torch.allclose(mean_out, mean) and not torch.allclose(std_out, std)
    big = torch.zeros(256, 3, 16, 16)
    noise = run(build(["noise"], "image", strength=1.0), big, torch.zeros(256))[0]
    assert abs(noise.mean().item()) < 0.01 and abs(noise.std().item() - 0.2) < 0.01


def test_masking_zeroes_one_contiguous_span() -> None:
    x, y = batch("sequence")
    x = x.abs() + 0.1  # no zeros before masking
    out = run(build(["masking"], "sequence", strength=1.0), x, y)[0]
    for sample, original in zip(out, x, strict=True):
        zero = (sample == 0).all(1)  # (T,) every channel zeroed together
        steps = zero.nonzero().flatten()
        assert 1 <= len(steps) <= 0.2 * 40 and int(steps[-1] - steps[0]) + 1 == len(steps)
        assert torch.equal(sample[~zero], original[~zero])


def test_shift_is_a_bounded_circular_roll() -> None:
    x, y = batch("sequence")
    out = run(build(["shift"], "sequence", strength=0.5), x, y)[0]
    rolled = 0
    for sample, original in zip(out, x, strict=True):
        steps = [k for k in range(-4, 5) if torch.equal(sample, original.roll(k, dims=0))]  # +/-10 % of T = 40
        assert len(steps) == 1
        assert torch.equal(sample.sort(0).values, original.sort(0).values)  # the multiset of values is kept
        rolled += steps[0] != 0
    assert rolled > 8


def test_scaling_factors_are_per_channel_and_bounded() -> None:
    x, y = batch("sequence")
    x = x.abs() + 0.5
    factor = run(build(["scaling"], "sequence", strength=0.5), x, y)[0] / x  # (B, T, C)
    assert torch.allclose(factor, factor[:, :1].expand_as(factor), atol=1e-5)  # constant in time
    assert bool((factor >= 0.8 - 1e-5).all() and (factor <= 1.2 + 1e-5).all())
    assert factor[:, 0].std() > 0.05


@pytest.mark.parametrize(("task", "n_classes"), [("classification", 8), ("classification", 2), ("regression", 0)])
def test_mixup_mixes_inputs_and_targets_alike(task: str, n_classes: int) -> None:
    n = 8
    x = torch.eye(n)  # row i is e_i, so a mixed row shows its weights directly
    y = torch.randn(n, 2, generator=gen(4)) if task == "regression" else torch.arange(n) % n_classes
    out, soft = run(build(["mixup"], "tabular", strength=1.0, task=task, n_classes=n_classes), x, y, seed=5)
    assert torch.allclose(out.sum(1), torch.ones(n)) and bool((out >= 0).all())
    assert ((out > 1e-3).sum(1) <= 2).all() and (out.max(1).values < 0.99).any()  # a convex pair, some mixed
    assert bool((out.diagonal() >= 0.5 - 1e-6).all())  # each row keeps the larger share
    targets = F.one_hot(y, 8).float() if n_classes == 8 else y.float()
    assert torch.allclose(soft, out @ targets, atol=1e-5)  # the same convex combination as x
    if n_classes == 8:
        assert soft.shape == (n, 8) and torch.allclose(soft.sum(1), torch.ones(n))
    if n_classes == 2:
        assert soft.shape == (n,) and soft.dtype == torch.float32 and bool(((soft >= 0) & (soft <= 1)).all())


def test_op_for_another_kind_names_the_valid_ops() -> None:
    with pytest.raises(BadInput, match="rotate") as info:
        build(["shift", "rotate"], "sequence")
    for word in ["sequence", *SEQUENCE_OPS, "image"]:
        assert word in str(info.value)
    with pytest.raises(BadInput, match="tabular data"):
        build(["masking"], "tabular")


def test_bad_kind_or_task_is_refused() -> None:
    with pytest.raises(BadInput, match="kind"):
        build(["noise"], "audio")
    with pytest.raises(BadInput, match="task"):
        build(["noise"], "tabular", task="classifcation")


def test_registry_refuses_duplicates() -> None:
    with pytest.raises(RuntimeError, match="twice"):
        aug_module._register("noise", "tabular")(lambda x, y, ctx: (x, y))


def test_strength_half_is_mild() -> None:
    ctx = aug_module._Ctx(0.5, "regression", 0, gen(), torch.device("cpu"))
    rotation = aug_module._rotate(1000, 8, 8, ctx)  # (B, 3, 3)
    degrees = torch.atan2(rotation[:, 1, 0], rotation[:, 0, 0]).abs().rad2deg()
    assert 9 < degrees.max() <= 10 + 1e-4
    shifts = aug_module._translate(1000, 8, 8, ctx)[:, :2, 2] / 8  # fractions of the side
    assert 0.09 < shifts.abs().max() <= 0.1 + 1e-6
