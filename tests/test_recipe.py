"""The recipe: validation messages, overrides, resolution of task-aware defaults."""

from __future__ import annotations

import pytest
import yaml

from tunesmith.errors import BadInput
from tunesmith.recipe import DataFacts, Recipe, load_recipe, parse_set, resolve

IMAGE = DataFacts(task="classification", kind="image", n_train=1000, input_shape=(1, 8, 8), n_outputs=10)
TABLE = DataFacts(task="regression", kind="tabular", n_train=50_000, input_shape=(20,), n_outputs=1)
SEQ = DataFacts(task="classification", kind="sequence", n_train=500, input_shape=(32, 3), n_outputs=4)


def test_unknown_key_names_the_path_and_the_closest_key() -> None:
    with pytest.raises(BadInput, match=r"Unknown recipe key 'train.lrr'. Did you mean 'train.lr'\?"):
        Recipe().with_overrides({"train.lrr": 0.1})


def test_unknown_key_in_yaml_file(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  dropuot: 0.3\n")
    with pytest.raises(BadInput, match=r"'model.dropuot'. Did you mean 'model.dropout'"):
        load_recipe(path)


def test_bad_value_names_field_allowed_values_and_input() -> None:
    with pytest.raises(BadInput, match=r"'lr' parameter of train must be greater than 0. Got -1 instead"):
        Recipe().with_overrides({"train.lr": -1})
    with pytest.raises(BadInput, match=r"'activation' parameter of model must be 'relu', 'leaky_relu'"):
        Recipe().with_overrides({"model.activation": "relux"})


@pytest.mark.parametrize("key", ["train.batch_size", "train.epochs"])
def test_zero_sizes_are_refused(key: str) -> None:
    with pytest.raises(BadInput, match=r"greater than or equal to 1\. Got 0"):
        Recipe().with_overrides({key: 0})


def test_parse_set_reads_yaml_scalars() -> None:
    assert parse_set(["train.lr=3e-4", "model.residual=true", "train.epochs=5"]) == {
        "train.lr": "3e-4",
        "model.residual": True,
        "train.epochs": 5,
    }
    recipe = Recipe().with_overrides(parse_set(["train.lr=3e-4"]))
    assert recipe.train.lr == pytest.approx(3e-4)
    with pytest.raises(BadInput, match=r"dotted\.key=value"):
        parse_set(["train.lr"])


def test_resolve_follows_the_catalog_rules() -> None:
    image = resolve(Recipe(), IMAGE)
    assert (image.model.family, image.model.norm, image.model.init) == ("cnn", "batch", "kaiming_uniform")
    assert image.train.lr == pytest.approx(1e-3) and image.train.optimizer == "adamw"
    assert image.train.batch_size == 64 and image.data.augment.ops == ["rotate", "translate", "scale"]
    table = resolve(Recipe(), TABLE)
    assert (table.model.family, table.data.scale_target, table.train.batch_size) == ("mlp", True, 128)
    assert table.data.augment.ops == []
    seq = resolve(Recipe(), SEQ)
    assert (seq.model.family, seq.model.norm) == ("rnn", "layer")  # T10, T14
    tanh = resolve(Recipe().with_overrides({"model.activation": "tanh"}), TABLE)
    assert tanh.model.init == "xavier_uniform"  # T13
    tuned = resolve(Recipe().with_overrides({"model.custom": "x:y", "model.pretrained": True}), TABLE)
    assert tuned.train.lr == pytest.approx(1e-5) and tuned.train.optimizer == "adam"  # T31 fine-tuning


def test_resolved_recipe_round_trips_and_is_idempotent(tmp_path) -> None:
    resolved = resolve(Recipe(), IMAGE)
    path = tmp_path / "recipe.yaml"
    path.write_text(resolved.to_yaml())
    again = load_recipe(path)
    assert again == resolved
    assert resolve(again, IMAGE) == resolved
    # every data-dependent default is concrete; only the device stays "auto" (T54: same recipe, CPU or GPU)
    sections = yaml.safe_dump(resolved.model_dump(mode="json", include={"data", "model", "train"}))
    assert [line for line in sections.splitlines() if "auto" in line] == ["  device: auto"]


def test_small_data_gets_a_smaller_batch() -> None:
    tiny = DataFacts(task="classification", kind="tabular", n_train=100, input_shape=(4,), n_outputs=3)
    assert resolve(Recipe(), tiny).train.batch_size == 16


@pytest.mark.parametrize("name", ["mnist_like_cnn.yaml", "tabular_regression.yaml"])
def test_example_recipes_are_valid(name: str) -> None:
    from pathlib import Path

    recipe = load_recipe(Path(__file__).parents[1] / "examples" / name)
    assert recipe.name != "run" and recipe.train.epochs > 1
