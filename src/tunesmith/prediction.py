"""`tunesmith predict`: apply a finished run to new rows (issue 4), with the run's own preprocessing (T01-T05).

`load_run(run_dir)` rebuilds the trained model from the run directory without unpickling anything:
recipe.yaml (YAML), preprocess.json (the fitted statistics as plain JSON) and model.pt (a state_dict read
with `torch.load(weights_only=True)`). `predict(run, data)` checks the new data against the training
schema, applies the same preprocessing and runs one batched forward pass (no per-row Python), returning a
DataFrame: `prediction` in the original label space or target units, plus `proba_<class>` for
classification (`reconstruction_error` for an autoencoder run). An ensemble run (`data.ensemble`, and every
tune run) predicts with all its members, fold-K/model.pt each with its fold-K/preprocess.json, and averages
them (tunesmith.ensemble).

Schema rules for tables (docs/predict.md):
- a feature column of the training data is missing: BadInput listing every missing column;
- extra columns are ignored with a warning (the recipe's target/time/group columns silently);
- a numeric feature holding text: BadInput naming the column and an example value;
- a category never seen in training: the column's "other" level, or all-zero one-hot when training had
  no rare level (T02); counted in a warning;
- missing values are imputed with the training statistics (T01), or refused when data.impute is none;
- a run whose table reads the time column's season (data/season.py) needs the time column too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tunesmith.data.columns import ColumnPlan
from tunesmith.data.preprocess import Preprocessor
from tunesmith.data.sources import TABLE_SUFFIXES, read_table, time_values
from tunesmith.ensemble import Member, average, member_prediction
from tunesmith.errors import BadInput, closest, must_be
from tunesmith.models import build_model
from tunesmith.recipe import Recipe, load_recipe
from tunesmith.run import RunDir
from tunesmith.train.trainer import resolve_device

__all__ = ["OUTPUT_SUFFIXES", "LoadedRun", "forward", "load_run", "output_format", "predict", "write_predictions"]

log = logging.getLogger("tunesmith")

OUTPUT_SUFFIXES = (".csv", ".parquet", ".npz")
BATCH = 8192  # rows per forward pass: large enough to amortise the call, small enough for any RAM


@dataclass
class LoadedRun:
    """A finished run, ready to predict: its resolved recipe, fitted preprocessing and trained model.

    `members` holds every member of an ensemble run (data.ensemble: fold-K/model.pt with its own
    fold-K/preprocess.json), whose predictions `predict` averages; `preprocessor` and `model` are the
    top-level ones (an ensemble's representative member). Empty `members`: the one model.
    """

    path: Path
    recipe: Recipe
    preprocessor: Preprocessor
    model: nn.Module
    members: list[Member] = field(default_factory=list)


def load_run(run_dir: str | Path) -> LoadedRun:
    """Rebuild the model (every member of an ensemble) of a complete run directory (recipe.yaml,
    preprocess.json, model.pt; fold-K/ for an ensemble's members)."""
    run = RunDir(Path(run_dir))
    if not run.path.is_dir():
        state = "is a file, not a directory" if run.path.exists() else "does not exist"
        raise BadInput(f"The run directory {run.path} {state}. Pass the --out directory of a `tunesmith fit` run.")
    if not run.recipe.is_file():
        raise BadInput(f"{run.path} is not a tunesmith run directory: it has no recipe.yaml. Pass a run's --out.")
    if not run.complete:
        raise BadInput(
            f"The run in {run.path} is not complete (it has no metrics.json yet): resume it with "
            f"`tunesmith fit --out {run.path} --resume`, then predict."
        )
    recipe = load_recipe(run.recipe)
    top = _load_member(run, recipe, run.path)
    members = [top]
    if recipe.data.ensemble:  # the final model averages every fold's (or seed's) member
        members = [_load_member(run, recipe, run.fold(k, recipe.data.cv)) for k in range(recipe.data.cv)]
    return LoadedRun(run.path, recipe, top.preprocessor, top.model, members)


def _load_member(run: RunDir, recipe: Recipe, where: Path) -> Member:
    """The model and preprocessing stored in `where` (the run itself, or one member's fold-K/)."""
    weights, preprocess = where / "model.pt", where / "preprocess.json"
    for needed in (weights, preprocess):
        if not needed.is_file():
            name = needed.relative_to(run.path)
            raise BadInput(f"The run in {run.path} lacks {name}: the directory is damaged. Train it again.")
    try:
        pre = Preprocessor.load(preprocess)
        shape = tuple(pre.state["shape"])
    except (ValueError, KeyError) as exc:  # json.JSONDecodeError is a ValueError
        raise BadInput(f"{preprocess} is not valid preprocessing state ({exc}). Train the run again.") from None
    saved = (run.backbone / "config.json").is_file()  # a backbone's architecture; model.pt holds every weight
    try:
        model = build_model(
            recipe.model,
            kind=recipe.data.kind,
            input_shape=shape,
            n_outputs=pre.n_outputs,
            vocab_size=pre.vocab_size,
            architecture=run.backbone if saved else None,
        )
    except BadInput as exc:
        if recipe.model.backbone is None or saved:
            raise
        raise BadInput(
            f"{exc} The run in {run.path} has no backbone/config.json (runs trained before tunesmith kept one), so "
            "its model is rebuilt from model.backbone: if that directory is gone, put it back or train the run again."
        ) from None
    try:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    except Exception as exc:  # torch raises many types for corrupt archives and mismatched weights
        raise BadInput(
            f"{weights} cannot be loaded into the model of {run.recipe} ({type(exc).__name__}): the file is "
            "damaged or belongs to another recipe (train the run again), or the run trained a model object "
            "(ts.fit or ts.tune with model=), which the recipe cannot rebuild: load model.pt into your module "
            "with torch.load, or name the model in the recipe (model.custom) to predict from the command line."
        ) from None
    return Member(pre, model.eval())


def predict(
    run: str | Path | LoadedRun,
    data: str | Path | pd.DataFrame | np.ndarray,
    *,
    device: str = "auto",
    batch_size: int = BATCH,
) -> pd.DataFrame:
    """Predictions for the rows of `data` (a CSV/Parquet/.npz path, a DataFrame or an array), in row order.

    An ensemble run's prediction is its members' average (tunesmith.ensemble): each member preprocesses
    the rows with its own statistics; probabilities, target-unit outputs or reconstruction errors are averaged.
    """
    if device not in ("auto", "cpu", "cuda"):
        raise BadInput(must_be("device", "predict", "auto, cpu or cuda", device))
    if batch_size < 1:
        raise BadInput(must_be("batch_size", "predict", "an int >= 1", batch_size))
    loaded = run if isinstance(run, LoadedRun) else load_run(run)
    pre = loaded.preprocessor
    source = str(data) if isinstance(data, str | Path) else "the data"
    features = _read(data) if isinstance(data, str | Path) else data
    if len(features) == 0:
        raise BadInput(f"{source} holds no rows to predict (a header alone, or an empty array). Add rows.")
    if isinstance(features, pd.DataFrame):  # text cells read as numbers, dates expanded: as in training
        features = ColumnPlan.recorded(loaded.recipe.data).apply(features.rename(columns=str))
    time = None
    if pre.state["kind"] == "tabular":
        time = _season_time(features, loaded, source=source)
        checked: pd.DataFrame | np.ndarray = _check_table(features, loaded, source=source)
    elif pre.state["kind"] == "text":
        checked = _check_text(features, loaded, source=source)
    else:
        checked = _check_array(features, pre)
    target = resolve_device(device)
    task = pre.state["task"]
    predictions = []
    for member in loaded.members or [Member(pre, loaded.model)]:
        x = member.preprocessor.transform_x(checked, time=time)
        out = forward(member.model.to(target), x, batch_size=batch_size)  # (N, n_outputs), or x's shape
        predictions.append(member_prediction(task, out, member.preprocessor, x))
    values = average(predictions)  # (N, C) probabilities, (N, K) target units (T05), or (N,) errors
    if task == "classification":
        classes = pre.classes or []
        frame = pd.DataFrame(values, columns=[f"proba_{c}" for c in classes])
        return frame.assign(prediction=np.asarray(classes)[values.argmax(axis=1)])[["prediction", *frame.columns]]
    if task == "regression":
        names = ["prediction"] if values.shape[1] == 1 else [f"prediction_{k}" for k in range(values.shape[1])]
        return pd.DataFrame(values, columns=names)
    return pd.DataFrame({"reconstruction_error": values})  # per-row MSE, scaled units


@torch.inference_mode()
def forward(model: nn.Module, x: np.ndarray, *, batch_size: int = BATCH) -> np.ndarray:
    """`model(x)` in eval mode, `batch_size` rows at a time, on the model's device and in its dtype."""
    if len(x) == 0:
        raise BadInput("The data hold no rows to predict.")
    model.eval()
    weight = next(model.parameters())
    dtype = weight.dtype if np.issubdtype(x.dtype, np.floating) else None  # token ids stay integers
    outs = [
        model(torch.from_numpy(x[i : i + batch_size]).to(weight.device, dtype)).cpu().numpy()  # host sync
        for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(outs)


def output_format(path: Path) -> str:
    """The suffix of a predictions file, checked before any work is done."""
    suffix = path.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise BadInput(
            f"Cannot write predictions to {path}: use a file ending in {', '.join(OUTPUT_SUFFIXES)}. Got {suffix!r}."
        )
    return suffix


def write_predictions(frame: pd.DataFrame, path: str | Path) -> None:
    """CSV/Parquet: one column per output; .npz: one array per column (loadable without pickle)."""
    path = Path(path)
    suffix = output_format(path)
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:  # object columns (string labels) become fixed-width text: loadable with allow_pickle=False
        arrays: dict[str, Any] = {c: frame[c].to_numpy() for c in frame.columns}
        np.savez(path, **{c: a.astype(str) if a.dtype == object else a for c, a in arrays.items()})


def _read(path: str | Path) -> pd.DataFrame | np.ndarray:
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise BadInput(f"Data file {path} does not exist. Pass a CSV/Parquet table or an .npz with an array 'x'.")
    if suffix == ".npz":
        try:
            arrays = np.load(path, allow_pickle=False)
            names = list(arrays.files)
        except Exception as exc:  # zipfile/ValueError/OSError for corrupt archives
            raise BadInput(f"Cannot read {path} as an .npz archive: {exc}.") from None
        if "x" not in names:
            raise BadInput(
                f"{path} lacks the array 'x' (the features to predict). It holds: {', '.join(names) or 'nothing'}."
            )
        return arrays["x"]
    if suffix not in TABLE_SUFFIXES:
        raise BadInput(f"Data file {path} has an unknown type {suffix!r}. Use .csv, .tsv, .parquet, .jsonl or .npz.")
    frame, notes = read_table(path)
    for note in notes:
        log.warning(note)
    return frame


def _check_table(features: pd.DataFrame | np.ndarray, run: LoadedRun, *, source: str) -> pd.DataFrame:
    """The training feature columns of `features`, numeric ones as numbers; raises or warns per the schema rules."""
    state = run.preprocessor.state
    columns: list[str] = state["columns"]
    if not isinstance(features, pd.DataFrame):
        x = np.asarray(features)
        if x.ndim != 2 or x.shape[1] != len(columns):
            raise BadInput(
                f"The array in {source} has shape {x.shape}; this run expects (rows, {len(columns)}) "
                f"with the columns {', '.join(columns[:8])}{' ...' if len(columns) > 8 else ''} in that order."
            )
        features = pd.DataFrame(x, columns=columns)
    frame = features.rename(columns=str)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        guess = closest(missing[0], [c for c in frame.columns if c not in columns])
        hint = f" Is {guess!r} the column {missing[0]!r} renamed?" if guess else ""
        raise BadInput(
            f"Missing feature column(s) in {source}: {', '.join(missing)}. The model was trained on them.{hint} "
            "Add them (empty values are imputed) with the training data's names."
        )
    roles = {run.recipe.data.target, run.recipe.data.time, run.recipe.data.group}
    extra = [c for c in frame.columns if c not in columns and c not in roles]
    if extra:
        log.warning("Ignoring %d column(s) the model was not trained on: %s.", len(extra), ", ".join(extra[:10]))
    text = [c for c in state["numeric"]["names"] if not pd.api.types.is_numeric_dtype(frame[c])]
    frame = frame[columns].assign(**{c: _as_numbers(frame[c], c, source) for c in text})
    for cat in state["categorical"]:
        strings = frame[cat["name"]].astype("string").fillna(cat["fill"])
        unseen = ~strings.isin(cat["levels"]).to_numpy()
        if unseen.any():
            to = "its 'other' column" if cat["other"] else "all-zero one-hot (no level)"
            example = strings[unseen].iloc[0]
            log.warning(
                "Column %r: %d row(s) have categories not among the training levels (e.g. %r); encoded as %s.",
                cat["name"],
                int(unseen.sum()),
                example,
                to,
            )
    return frame


def _season_time(features: pd.DataFrame | np.ndarray, run: LoadedRun, *, source: str) -> np.ndarray | None:
    """The rows' times, where the run's table reads the time column's season (data/season.py); else None."""
    season = run.preprocessor.season
    if season is None:
        return None
    column = season["column"]
    if not isinstance(features, pd.DataFrame) or column not in features.columns:
        raise BadInput(
            f"This run's model reads the season of the time column {column!r} (period {season['period']} steps), "
            f"and {source} lacks that column. Pass a table with a {column!r} column, in the training data's format."
        )
    return time_values(features[column], column, source)  # missing times: season_terms refuses them


def _as_numbers(col: pd.Series, name: str, source: str) -> pd.Series:
    numbers = pd.to_numeric(col, errors="coerce")
    bad = numbers.isna() & col.notna()
    if bad.any():
        raise BadInput(
            f"Column {name!r} of {source} must hold numbers, as in training. Got {col[bad].iloc[0]!r} "
            f"({int(bad.sum())} such value(s)). Fix or blank those cells (blanks are imputed)."
        )
    return numbers


def _check_text(features: pd.DataFrame | np.ndarray, run: LoadedRun, *, source: str) -> np.ndarray:
    """Text runs: the raw strings of the training text column (or of a 1-D array of strings), as objects."""
    column = run.recipe.data.text or "text"
    if isinstance(features, pd.DataFrame):
        if column not in features.columns:
            guess = closest(column, [str(c) for c in features.columns])
            hint = f" Is {guess!r} the column {column!r} renamed?" if guess else ""
            raise BadInput(
                f"The text column {column!r} is missing from {source}: the model reads it (tokenized with the run's "
                f"tokenizer.json).{hint} Columns: {', '.join(map(str, features.columns))}."
            )
        return features[column].fillna("").astype(str).to_numpy(dtype=object)
    x = np.asarray(features, dtype=object)
    if x.ndim != 1:
        raise BadInput(f"'x' in {source} has shape {x.shape}; this text run expects (rows,) strings.")
    return x.astype(str).astype(object)


def _check_array(features: pd.DataFrame | np.ndarray, pre: Preprocessor) -> np.ndarray:
    """Image/sequence runs: the sample shape must be the training one (before any T08 padding)."""
    kind, state = pre.state["kind"], pre.state
    if isinstance(features, pd.DataFrame):
        raise BadInput(f"This run was trained on {kind} arrays: pass an .npz whose 'x' holds them, not a table.")
    x = np.asarray(features)
    if kind == "image" and x.ndim == 3:  # (N, H, W) grey images
        x = x[:, None]
    expected = list(state["shape"])
    if kind == "image":
        expected[1] -= state["pad"][0]
        expected[2] -= state["pad"][1]
    if list(x.shape[1:]) != expected or not np.issubdtype(x.dtype, np.number):
        raise BadInput(
            f"'x' has shape {x.shape} ({x.dtype}); this {kind} run expects numbers of shape (rows, "
            f"{', '.join(map(str, expected))})."
        )
    return x.astype(np.float32, copy=False)
