"""The variants of a comparison: recipes to train, or existing run directories to read (T50).

A variant is a recipe file, a `Recipe`, dotted overrides on a base recipe ({"model.dropout": 0.3}),
one value of `--vary KEY=V1,V2,...`, or a run directory (or a folder of them, such as a variant
folder of an earlier comparison). Every variant must use the same data, task and splits: the
comparison is paired, so seed s and fold k have to mean the same rows for all of them.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunesmith.comparison.result import SeedRun
from tunesmith.errors import BadInput
from tunesmith.recipe import Recipe, make_recipe
from tunesmith.run import RunDir

__all__ = ["PAIRING_KEYS", "Variant", "VariantSpec", "check_pairable", "load_runs", "make_variants", "parse_vary"]

# data fields that decide which rows exist and how they are split: equal across variants, or no pairing
PAIRING_KEYS = ("source", "target", "time", "group", "task", "split", "cv", "val_size", "test_size", "gap")

VariantSpec = Mapping[str, Any] | Recipe | str | Path


@dataclass(frozen=True)
class Variant:
    name: str
    recipe: Recipe | None = None  # a recipe to train at every seed ...
    path: Path | None = None  # ... or a run directory (or a folder of run directories) to read


def parse_vary(items: Sequence[str]) -> dict[str, list[Any]]:
    """CLI `--vary KEY=V1,V2,...` items -> {key: [values]}; values are YAML scalars or [lists]."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        try:
            values = yaml.safe_load(f"[{raw}]") if sep else None
        except yaml.YAMLError:
            values = None
        if not key.strip() or not values:
            raise BadInput(
                f"--vary expects KEY=V1,V2,... (e.g. model.dropout=0,0.2,0.5), one variant per value. "
                f"Got {item!r} instead."
            )
        out[key.strip()] = values
    return out


def make_variants(
    variants: Mapping[str, VariantSpec] | Sequence[str | Path] | None,
    *,
    vary: Mapping[str, Sequence[Any]] | None = None,
    base: Recipe | str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    shortcuts: Mapping[str, Any] | None = None,
) -> list[Variant]:
    """Validated variants (all recipes, or all run directories), at least two, paired on the same data."""
    common = dict(overrides or {})
    if variants is not None and vary:
        raise BadInput(
            "Pass either variants or vary, not both: vary makes one variant per value on the base recipe "
            "(base=..., or a single recipe file on the command line)."
        )
    if vary:
        specs: dict[str, VariantSpec] = {
            ",".join(f"{k}={_show(v)}" for k, v in zip(vary, values, strict=True)): dict(zip(vary, values, strict=True))
            for values in itertools.product(*vary.values())
        }
    elif isinstance(variants, Mapping):
        specs = dict(variants)
    else:
        specs = _named(list(variants or []))
    if len(specs) < 2:
        raise BadInput(
            f"A comparison needs at least 2 variants; got {len(specs)} ({', '.join(specs) or 'none'}). Pass two "
            "recipes or run directories, or --vary KEY=V1,V2."
        )
    seeded = [repr(n) for n, spec in specs.items() if isinstance(spec, Mapping) and "train.seed" in spec]
    if seeded or "train.seed" in common or (shortcuts or {}).get("seed") is not None:
        raise BadInput(
            f"train.seed is set ({', '.join(seeded) or 'for every variant'}), but a comparison sets the seed "
            "itself: every variant runs on the same seeds (paired, T50). Choose them with --seeds N "
            "(Python: seeds=5 or seeds=[0, 7])."
        )
    built = [_variant(name, spec, base=base, common=common, shortcuts=shortcuts or {}) for name, spec in specs.items()]
    if len({v.recipe is None for v in built}) > 1:
        raise BadInput(
            "Variants mix run directories and recipes. Compare existing run directories with each other, "
            "or recipes with each other (their runs are then trained on shared seeds)."
        )
    if built[0].recipe is not None:
        check_pairable({v.name: v.recipe.data.model_dump(mode="json") for v in built if v.recipe is not None})
    return built


def check_pairable(data: Mapping[str, Mapping[str, Any]]) -> None:
    """Refuse variants whose data sections differ in a PAIRING_KEYS field (named by variant or run)."""
    (first, ref), *others = data.items()
    for name, section in others:
        for key in PAIRING_KEYS:
            if section.get(key) != ref.get(key):
                raise BadInput(
                    f"{name!r} differs from {first!r} in data.{key} ({section.get(key)!r} vs {ref.get(key)!r}). "
                    "A comparison is paired: every variant must use the same data, task and splits, so that "
                    "seed s and fold k mean the same rows for all. Compare one data set at a time, and vary "
                    "model, train or preprocessing fields (e.g. data.scale) instead."
                )


def load_runs(name: str, path: Path) -> list[SeedRun]:
    """Every finished run of variant `name` in `path` (a run directory, or a folder of them), sorted by name."""
    runs = [path] if (path / "recipe.yaml").is_file() else sorted(p for p in path.iterdir() if p.is_dir())
    runs = [p for p in runs if (p / "recipe.yaml").is_file()]
    if not runs:
        raise BadInput(
            f"{path} holds no run directory (no recipe.yaml in it or in its subfolders). Pass run directories "
            "written by tunesmith fit or tunesmith compare."
        )
    records = []
    for run in map(RunDir, runs):
        if not run.complete:
            raise BadInput(
                f"The run {run.path} is unfinished (no metrics.json). Finish it with `tunesmith fit --out "
                f"{run.path} --resume`, or remove it."
            )
        metrics = run.load_metrics()
        records.append(SeedRun(name, int(metrics["seed"]), run.path, metrics))
    return records


def run_data(record: SeedRun) -> dict[str, Any]:
    """The resolved data section a finished run was trained with."""
    return yaml.safe_load((record.path / "recipe.yaml").read_text())["data"]


def _variant(
    name: str, spec: VariantSpec, *, base: Recipe | str | Path | None, common: dict[str, Any], shortcuts: Mapping
) -> Variant:
    if isinstance(spec, Mapping):  # overrides on the base recipe; the variant's own keys win
        return Variant(name, recipe=make_recipe(base, overrides={**common, **spec}, **shortcuts))
    if isinstance(spec, Recipe):
        return Variant(name, recipe=make_recipe(spec, overrides=common, **shortcuts))
    path = Path(spec)
    if not path.exists():
        raise BadInput(f"Variant {name!r}: {path} does not exist. Pass a YAML recipe file or a run directory.")
    if path.is_dir():
        if common or any(v is not None for v in shortcuts.values()) or base is not None:
            raise BadInput(
                f"Run directory {path} is compared as it was run: --set, --data, --epochs and other recipe "
                "options do not apply to it. Drop them, or pass recipe files to train new runs."
            )
        return Variant(name, path=path)
    return Variant(name, recipe=make_recipe(path, overrides=common, **shortcuts))


def _named(paths: list[str | Path]) -> dict[str, VariantSpec]:
    """Variants named after their files or folders; the paths as given when two names would clash."""
    stems = [Path(p).stem if Path(p).suffix in (".yaml", ".yml") else Path(p).name for p in paths]
    names = stems if len(set(stems)) == len(stems) else [str(p) for p in paths]
    if len(set(names)) < len(names):
        raise BadInput(f"The same variant is given twice ({', '.join(map(str, paths))}). Pass each once.")
    return dict(zip(names, paths, strict=True))


def _show(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)
