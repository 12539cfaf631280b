"""Model families, blocks, init and dropout reset (catalog T10-T22): real forward/backward behaviour."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from torch import nn

from tunesmith.errors import BadInput
from tunesmith.models import build_model, get_act_layer, get_norm_layer, init_weights, register_family, set_dropout
from tunesmith.models.blocks import (
    Bottleneck,
    ConvNormAct,
    DenseBlock,
    FlattenHead,
    GapHead,
    HierarchicalNeck,
    MultiKernelBlock,
    PlainBlock,
    ResidualBlock,
)
from tunesmith.recipe import DataFacts, ModelConfig, Recipe, resolve

SHAPES = {"tabular": (10,), "sequence": (12, 3), "image": (2, 8, 8)}
TABLE = DataFacts(task="classification", kind="tabular", n_train=200, input_shape=(10,), n_outputs=3)
STAGE_BLOCKS = (PlainBlock, ResidualBlock, DenseBlock, Bottleneck, MultiKernelBlock)


def config(**overrides: object) -> ModelConfig:
    """A small resolved config (what `resolve` hands to build_model)."""
    fields: dict[str, object] = dict(
        family="cnn", width=8, depth=2, norm="batch", init="kaiming_uniform", code_size=4, dropout=0.0
    )
    return ModelConfig(**{**fields, **overrides})


def types_in(model: nn.Module) -> set[type]:
    return {type(m) for m in model.modules()}


def forward_backward(model: nn.Module, shape: tuple[int, ...], batch: int = 4) -> torch.Tensor:
    out = model(torch.randn(batch, *shape))
    out.square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
    return out


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("kind", list(SHAPES))
@pytest.mark.parametrize("family", ["mlp", "cnn", "rnn", "autoencoder"])
def test_every_family_and_kind_gives_the_right_shape_and_backpropagates(family: str, kind: str) -> None:
    shape = SHAPES[kind]
    model = build_model(config(family=family), kind=kind, input_shape=shape, n_outputs=3)
    out = forward_backward(model, shape)
    assert out.shape == ((4, *shape) if family == "autoencoder" else (4, 3))


def test_default_cnn_is_the_reference_digits_net() -> None:
    model = build_model(config(width=32, depth=3), kind="image", input_shape=(1, 8, 8), n_outputs=10)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]  # T16: powers of two
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)  # BN follows: no bias
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    assert {PlainBlock, GapHead, nn.BatchNorm2d, nn.ReLU, nn.Dropout} <= types_in(model)
    assert not {ResidualBlock, DenseBlock, Bottleneck, MultiKernelBlock, HierarchicalNeck} & types_in(model)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({"residual": True}, ResidualBlock),
        ({"dense": True}, DenseBlock),
        ({"bottleneck": True}, Bottleneck),
        ({"multi_kernel": True}, MultiKernelBlock),
        ({"residual": True, "bottleneck": True}, Bottleneck),
        ({"neck": True}, HierarchicalNeck),
        ({"head": "flatten"}, FlattenHead),
    ],
)
@pytest.mark.parametrize("kind", ["image", "sequence"])
def test_block_flags_change_the_architecture_and_still_train(flags: dict, expected: type, kind: str) -> None:
    plain = types_in(build_model(config(), kind=kind, input_shape=SHAPES[kind], n_outputs=3))
    model = build_model(config(**flags), kind=kind, input_shape=SHAPES[kind], n_outputs=3)
    assert expected in types_in(model) and expected not in plain
    assert forward_backward(model, SHAPES[kind]).shape == (4, 3)


def test_residual_projects_the_shortcut_only_when_channels_change() -> None:
    model = build_model(config(residual=True), kind="image", input_shape=(2, 8, 8), n_outputs=3)
    first, second = (m for m in model.modules() if isinstance(m, ResidualBlock))
    assert isinstance(first.shortcut, ConvNormAct) and first.shortcut.conv.kernel_size == (1, 1)  # 2 -> 8
    assert isinstance(second.shortcut, ConvNormAct)  # 8 -> 16
    same = build_model(config(residual=True, depth=1, width=2), kind="image", input_shape=(2, 8, 8), n_outputs=3)
    (block,) = (m for m in same.modules() if isinstance(m, ResidualBlock))
    assert isinstance(block.shortcut, nn.Identity)
    assert isinstance(block.body[-1].act, nn.Identity)  # the sum is activated, not the body's last unit


def test_block_choices_are_exclusive_and_multi_kernel_needs_four_channels() -> None:
    with pytest.raises(BadInput, match="at most one"):
        build_model(config(dense=True, bottleneck=True), kind="image", input_shape=(1, 8, 8), n_outputs=2)
    with pytest.raises(BadInput, match="width"):
        build_model(config(multi_kernel=True, width=2), kind="image", input_shape=(1, 8, 8), n_outputs=2)


@pytest.mark.parametrize("shape", [(1, 4, 4), (1, 9, 1), (3, 1, 1)])
def test_pooling_never_shrinks_a_dim_to_zero(shape: tuple[int, ...]) -> None:
    model = build_model(config(depth=5, width=2, head="flatten"), kind="image", input_shape=shape, n_outputs=2)
    assert forward_backward(model, shape).shape == (4, 2)


def test_hierarchical_neck_weights_every_stage() -> None:
    neck = HierarchicalNeck([4, 8, 16])
    features = [torch.randn(5, c, s, s) for c, s in [(4, 8), (8, 4), (16, 2)]]
    assert neck(features).shape == (5, 16)
    assert len(neck.project) == 3 and neck.out_features == 16


def test_rnn_uses_the_chosen_cell_direction_and_layer_norm() -> None:
    cfg = config(family="rnn", cell="gru", bidirectional=False, norm="layer", depth=2, width=6, dropout=0.2)
    model = build_model(cfg, kind="sequence", input_shape=(7, 3), n_outputs=2)
    gru = next(m for m in model.modules() if isinstance(m, nn.GRU))
    assert (gru.hidden_size, gru.num_layers, gru.bidirectional, gru.dropout) == (6, 2, False, 0.2)
    assert nn.LayerNorm in types_in(model) and nn.LSTM not in types_in(model)
    assert forward_backward(model, (7, 3)).shape == (4, 2)


def test_norm_choices_reach_the_layers() -> None:
    def layers(norm: str) -> set[type]:
        return types_in(build_model(config(norm=norm), kind="image", input_shape=(1, 8, 8), n_outputs=2))

    assert nn.GroupNorm in layers("layer") and nn.BatchNorm2d not in layers("layer")
    assert not {nn.GroupNorm, nn.BatchNorm2d} & layers("none")
    biased = build_model(config(norm="none"), kind="image", input_shape=(1, 8, 8), n_outputs=2)
    assert all(m.bias is not None for m in biased.modules() if isinstance(m, nn.Conv2d))  # no norm: bias kept
    assert get_norm_layer("layer", dims=2)(8).num_groups == 1  # layer norm over (C, H, W)
    assert isinstance(get_norm_layer("layer", dims=0)(8), nn.LayerNorm)


def test_activation_registry_and_typos() -> None:
    for name in ["relu", "leaky_relu", "prelu", "rrelu", "elu", "gelu", "tanh", "sigmoid"]:
        assert isinstance(get_act_layer(name)(), nn.Module)
    assert get_act_layer("gelu") is nn.GELU
    with pytest.raises(BadInput, match=r"Did you mean 'leaky_relu'\?") as err:
        get_act_layer("leaky_rellu")
    assert "relu, leaky_relu, prelu" in str(err.value)
    with pytest.raises(BadInput, match="batch, layer, none"):
        get_norm_layer("bach", dims=1)


@pytest.mark.parametrize(
    ("scheme", "activation", "expected_std"),
    [
        ("kaiming_uniform", "relu", math.sqrt(2 / 1024)),
        ("kaiming_normal", "gelu", math.sqrt(2 / 1024)),
        ("kaiming_normal", "leaky_relu", math.sqrt(2 / (1 + 0.01**2) / 1024)),
        ("xavier_uniform", "tanh", 5 / 3 * math.sqrt(2 / (1024 + 512))),
        ("xavier_normal", "sigmoid", math.sqrt(2 / (1024 + 512))),
    ],
)
def test_init_matches_the_theoretical_std_and_zeroes_biases(scheme: str, activation: str, expected_std: float) -> None:
    model = nn.Sequential(nn.Linear(1024, 512), nn.BatchNorm1d(512))
    nn.init.constant_(model[0].bias, 1.0)
    nn.init.constant_(model[1].weight, 3.0)
    nn.init.constant_(model[1].bias, 3.0)
    init_weights(model, scheme=scheme, activation=activation)
    assert model[0].weight.std().item() == pytest.approx(expected_std, rel=0.15)
    assert torch.all(model[0].bias == 0)
    assert torch.all(model[1].weight == 1) and torch.all(model[1].bias == 0)


def test_init_kaiming_and_xavier_differ_and_torch_keeps_the_defaults() -> None:
    kaiming, xavier, default = (nn.Linear(1024, 512) for _ in range(3))
    init_weights(kaiming, scheme="kaiming_normal", activation="relu")
    init_weights(xavier, scheme="xavier_normal", activation="sigmoid")
    ratio = (kaiming.weight.std() / xavier.weight.std()).item()
    assert ratio == pytest.approx(math.sqrt((1024 + 512) / 1024), rel=0.1)  # sqrt(2 / fan_in) vs sqrt(2 / fan_sum)
    before = default.weight.detach().clone()
    init_weights(default, scheme="torch", activation="relu")
    assert torch.equal(default.weight, before)
    with pytest.raises(BadInput, match="kaiming_uniform"):
        init_weights(default, scheme="kaiming", activation="relu")


def test_init_embeddings_and_recurrent_weights() -> None:
    model = nn.ModuleDict({"emb": nn.Embedding(5000, 64, padding_idx=0), "lstm": nn.LSTM(8, 16)})
    init_weights(model, scheme="kaiming_uniform", activation="relu")
    emb = model["emb"].weight
    assert emb.std().item() == pytest.approx(0.02 * 0.88, rel=0.1)  # a normal truncated at 2 std shrinks by 0.88
    assert emb.abs().max() <= 0.04 and torch.all(emb[0] == 0)
    w_hh = model["lstm"].weight_hh_l0  # (4H, H), orthogonal columns
    assert torch.allclose(w_hh.T @ w_hh, torch.eye(16), atol=1e-5)
    assert torch.all(model["lstm"].bias_ih_l0 == 0)


def test_set_dropout_changes_every_dropout_layer_of_a_user_model() -> None:
    user = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Sequential(nn.Dropout2d(0.3), nn.AlphaDropout(0.1)))
    assert set_dropout(user, p=0.25) == 3
    assert [m.p for m in user.modules() if hasattr(m, "p")] == [0.25, 0.25, 0.25]
    assert set_dropout(user, p=0.0) == 3 and user[1].p == 0.0
    assert set_dropout(nn.Linear(2, 2), p=0.3) == 0
    with pytest.raises(BadInput, match="dropout"):
        set_dropout(user, p=1.5)


def test_autoencoder_exposes_aux_loss_only_with_sparsity() -> None:
    shape = (1, 8, 8)
    sparse = build_model(config(family="autoencoder", sparsity=0.1), kind="image", input_shape=shape, n_outputs=1)
    sparse(torch.randn(4, *shape))
    assert sparse.aux_loss is not None and sparse.aux_loss.ndim == 0 and sparse.aux_loss.item() > 0
    sparse.aux_loss.backward()
    assert sparse.encode(torch.randn(4, *shape)).shape == (4, 4)
    plain = build_model(config(family="autoencoder"), kind="image", input_shape=shape, n_outputs=1)
    plain(torch.randn(4, *shape))
    assert getattr(plain, "aux_loss", None) is None


def test_autoencoder_adds_noise_in_training_mode_only() -> None:
    x = torch.randn(4, 10)

    def outputs(denoise: float, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = config(family="autoencoder", denoise=denoise, norm="none")
        model = build_model(cfg, kind="tabular", input_shape=(10,), n_outputs=1).train(train)
        return model(x), model(x)

    assert not torch.equal(*outputs(0.5, train=True))
    assert torch.equal(*outputs(0.5, train=False))
    assert torch.equal(*outputs(0.0, train=True))


def test_custom_model_is_imported_and_its_dropout_set(tmp_path, monkeypatch) -> None:
    (tmp_path / "user_nets.py").write_text(
        "from torch import nn\n"
        "def small():\n    return nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))\n"
        "def needs_args(n):\n    return nn.Linear(n, 2)\n"
        "NOT_A_MODEL = 3\n"
        "net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.Linear(8, 2))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_nets", raising=False)
    model = build_model(config(custom="user_nets:small", dropout=0.2), kind="tabular", input_shape=(4,), n_outputs=2)
    assert model[1].p == 0.2 and model(torch.randn(3, 4)).shape == (3, 2)
    first = build_model(config(custom="user_nets:net", dropout=0.2), kind="tabular", input_shape=(4,), n_outputs=2)
    second = build_model(config(custom="user_nets:net", dropout=0.2), kind="tabular", input_shape=(4,), n_outputs=2)
    original = sys.modules["user_nets"].net
    assert first is not original and second is not first and original[1].p == 0.5  # an instance is copied
    with torch.no_grad():
        first[0].weight.add_(1.0)  # training one build leaves the next build, and the user's object, alone
    assert torch.equal(second[0].weight, original[0].weight) and first[1].p == 0.2
    with pytest.raises(BadInput, match="Did you mean user_nets:small"):
        build_model(config(custom="user_nets:smal"), kind="tabular", input_shape=(4,), n_outputs=2)
    with pytest.raises(BadInput, match="needs arguments"):
        build_model(config(custom="user_nets:needs_args"), kind="tabular", input_shape=(4,), n_outputs=2)
    with pytest.raises(BadInput, match=r"not a torch\.nn\.Module"):
        build_model(config(custom="user_nets:NOT_A_MODEL"), kind="tabular", input_shape=(4,), n_outputs=2)


@pytest.mark.parametrize("path", ["no_such_package_xyz.nets:Model", "missing_colon"])
def test_custom_model_that_does_not_import_raises_bad_input(path: str) -> None:
    with pytest.raises(BadInput, match="custom") as err:
        build_model(config(custom=path), kind="tabular", input_shape=(4,), n_outputs=2)
    assert repr(path) in str(err.value)


def test_bad_configs_and_shapes_raise_bad_input() -> None:
    with pytest.raises(BadInput, match="resolve"):
        build_model(ModelConfig(), kind="image", input_shape=(1, 8, 8), n_outputs=2)
    with pytest.raises(BadInput, match=r"\(C, H, W\)"):
        build_model(config(), kind="image", input_shape=(8, 8), n_outputs=2)
    with pytest.raises(BadInput, match="Did you mean 'image'"):
        build_model(config(), kind="imag", input_shape=(1, 8, 8), n_outputs=2)
    unknown = ModelConfig.model_construct(**{**config().model_dump(), "family": "mlpp"})
    with pytest.raises(BadInput, match="Did you mean 'mlp'"):
        build_model(unknown, kind="tabular", input_shape=(4,), n_outputs=2)
    with pytest.raises(ValueError, match="already registered"):
        register_family("mlp")(lambda cfg, **_: nn.Identity())


def test_depth_0_is_the_linear_model() -> None:
    """T44: depth 0 is one Linear from the inputs to the outputs, whichever family reads the data."""
    for family in ("mlp", "cnn", "rnn"):
        model = build_model(config(family=family, depth=0), kind="tabular", input_shape=(10,), n_outputs=3)
        weighted = [m for m in model.modules() if list(m.parameters(recurse=False))]
        assert len(weighted) == 1 and isinstance(weighted[0], nn.Linear), family
        assert (weighted[0].in_features, weighted[0].out_features) == (10, 3)
        x = torch.randn(4, 10)
        assert torch.allclose(model(x), weighted[0](x))  # nothing before or after it
        assert not weighted[0].weight.any()  # no hidden unit, no symmetry to break: the constant predictor first
    image = build_model(config(family="mlp", depth=0), kind="image", input_shape=(2, 8, 8), n_outputs=3)
    assert sum(p.numel() for p in image.parameters()) == 2 * 8 * 8 * 3 + 3  # flattened pixels -> logits
    linear_ae = build_model(config(family="autoencoder", depth=0), kind="tabular", input_shape=(10,), n_outputs=1)
    assert forward_backward(linear_ae, (10,)).shape == (4, 10)  # encoder and decoder: one Linear each
    assert sum(isinstance(m, nn.Linear) for m in linear_ae.modules()) == 2
    resolved = resolve(Recipe().with_overrides({"model.depth": 0}), TABLE)
    assert resolved.model.depth == 0  # 0 is a choice, not "unset"
    with pytest.raises(BadInput, match=r"'depth' parameter of model must be greater than or equal to 0"):
        Recipe().with_overrides({"model.depth": -1})


def test_default_cnn_learns_digits() -> None:
    """The default CNN (width 32, depth 3, plain blocks, BN, ReLU, GAP, dropout 0.1) on 8x8 digits, 5 epochs."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    np.random.seed(0)
    images, labels = load_digits(return_X_y=True)
    split = train_test_split(images / 16, labels, test_size=0.2, random_state=0, stratify=labels)
    x_train, x_test = (torch.as_tensor(a, dtype=torch.float32).reshape(-1, 1, 8, 8) for a in split[:2])  # (N, 1, 8, 8)
    y_train, y_test = (torch.as_tensor(a) for a in split[2:])
    model = build_model(config(width=32, depth=3, dropout=0.1), kind="image", input_shape=(1, 8, 8), n_outputs=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(5):
        for idx in torch.randperm(len(x_train)).split(64):
            loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(dim=1) == y_test).float().mean().item()
    assert accuracy >= 0.95
