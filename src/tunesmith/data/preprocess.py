"""Preprocessing fitted on the training split only, stored as plain JSON (T01-T05, T08).

Statistics are learned with scikit-learn (SimpleImputer, StandardScaler/MinMaxScaler,
OneHotEncoder) on the training rows, then kept as numbers in `preprocess.json`: a run directory
can be used for prediction without unpickling anything. Applying the statistics is a few NumPy
lines, the same code for training, evaluation and `predict`.

- T01 missing values (and inf) are imputed (median/mean/most frequent, or interpolation along
  row order for ordered data); `impute: none` refuses them.
- T02 categorical columns are one-hot encoded; levels past `max_categories` and levels never seen
  in training go to one "other" column (all zeros when training had no rare level).
- T03 outliers are optionally clipped to training quantiles.
- T04 features are z-scored (or min-max scaled): per column for tables, per channel for arrays.
- T05 regression targets are z-scored for training and inverted for predictions and metrics.
- T08 images are zero-padded to a power-of-two side when the recipe asks for it.
- A season of the time column (data/season.py): a table whose regression target repeats with a period of
  the time column's steps gets sin and cos of each row's phase as its last two columns; transforming rows
  then needs their times (`time=`).
- Text is tokenized by a tokenizer trained on the training rows (data/text.py), or by a pretrained
  backbone's own (data/backbone.py); it is saved as its own tokenizer.json beside preprocess.json.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.backbone import locate
from tunesmith.data.season import season_terms
from tunesmith.data.text import fit_text, pretrained_text, tokenize, tokenizer_from
from tunesmith.errors import BadInput
from tunesmith.recipe import DataConfig

__all__ = ["Preprocessor"]

Features = pd.DataFrame | np.ndarray
TOKENIZER_FILE = "tokenizer.json"  # beside preprocess.json: the fitted tokenizer, a file any tokenizers user reads
BLOCK_BYTES = 2 * 2**20  # numeric columns are fitted/transformed in float64 blocks of about this size;
# scikit-learn's imputer and scaler hold a few copies of a block, so this bounds their extra memory


class Preprocessor:
    """Fitted preprocessing; `state` is JSON-serialisable and fully describes it."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    # ---- fitting (training rows only) ----------------------------------------------------------
    @classmethod
    def fit(
        cls,
        x: Features,
        y: np.ndarray | None,
        *,
        cfg: DataConfig,
        task: str,
        kind: str,
        classes: list[Any] | None = None,
        backbone: str | None = None,
        season: dict[str, Any] | None = None,
    ) -> Preprocessor:
        """Learn the statistics from training rows. `classes`: every label of the development rows. `backbone`:
        `model.backbone`, whose own tokenizer encodes the text (data/backbone.py). `season`: the time column's
        season (data/season.py `fit_season`) whose phase a table gets as two more columns."""
        state: dict[str, Any] = {"version": 1, "kind": kind, "task": task, "impute": cfg.impute}
        if kind == "tabular":
            assert isinstance(x, pd.DataFrame)  # sources guarantee tables are DataFrames
            state.update(_fit_table(x, cfg))
            if season is not None:
                state["season"] = season
                state["shape"][0] += 2
        elif backbone is not None:
            if kind != "text":
                raise BadInput(
                    f"model.backbone={backbone!r} reads text, and these data are {kind}. Pass a text column "
                    "(--text COL) or a folder of .txt files, or drop model.backbone."
                )
            found = locate(backbone)
            fitted = pretrained_text(
                _texts(x), tokenizer_file=found.tokenizer_file, max_length=cfg.max_length, limit=found.max_positions
            )
            state.update(fitted, shape=[fitted["max_length"]], backbone=str(found.path))
        elif kind == "text":
            fitted = fit_text(_texts(x), vocab_size=cfg.vocab_size, min_count=cfg.min_count, max_length=cfg.max_length)
            state.update(fitted, shape=[fitted["max_length"]])
        else:
            state.update(_fit_array(np.asarray(x), cfg, kind))
        state["target"] = _fit_target(y, task=task, classes=classes, scale=cfg.scale_target is True)
        return cls(state)

    # ---- applying ------------------------------------------------------------------------------
    @property
    def classes(self) -> list[Any] | None:
        return self.state["target"].get("classes")

    @property
    def n_outputs(self) -> int:
        target = self.state["target"]
        if "classes" in target:
            return 1 if len(target["classes"]) == 2 else len(target["classes"])  # T12: one logit for binary
        return len(target.get("center", [])) or self.n_features

    @property
    def n_features(self) -> int:
        return int(np.prod(self.state["shape"]))

    @property
    def vocab_size(self) -> int:
        """Text: the tokenizer's vocabulary (the embedding's rows); 0 for other kinds."""
        return int(self.state.get("vocab_size", 0))

    @property
    def season(self) -> dict[str, Any] | None:
        """The time column's season whose phase the table's last two columns hold (data/season.py), or None."""
        return self.state.get("season")

    def transform_x(self, x: Features | list[str], *, time: np.ndarray | None = None) -> np.ndarray:
        """Features -> model input: float32 (N, F) tables, (N, C, H, W) images, (N, T, C) sequences; int64
        token ids (N, max_length) for text (a one-column frame, or any sequence of strings). `time`: the rows'
        times, needed (and only read) when the table has a season."""
        if self.state["kind"] == "text":
            return tokenize(tokenizer_from(self.state), _texts(x), self.state["max_length"])
        if self.state["kind"] == "tabular":
            out = _apply_table(self.state, x)  # type: ignore[arg-type]
            if self.season is not None:
                if time is None:
                    raise BadInput(
                        f"This model reads the season of the time column (period {self.season['period']} steps): "
                        "the rows need their time column's values too. Include the time column."
                    )
                out[:, -2:] = season_terms(self.season, time)
            return out
        return _apply_array(self.state, np.asarray(x, dtype=np.float32))

    def transform_y(self, y: np.ndarray) -> np.ndarray:
        target = self.state["target"]
        if "classes" in target:
            lookup = {c: i for i, c in enumerate(target["classes"])}
            codes = np.array([lookup.get(plain_label(v), -1) for v in y], dtype=np.int64)
            if (codes < 0).any():
                unseen = sorted({str(v) for v, c in zip(y, codes, strict=True) if c < 0})[:5]
                raise BadInput(f"Labels {unseen} never occur in the training data; a model cannot predict them.")
            return codes
        values = np.asarray(y, dtype=np.float32)
        values = values[:, None] if values.ndim == 1 else values.reshape(len(values), -1)  # (N, K); N may be 0
        return (values - np.asarray(target["center"], np.float32)) / np.asarray(target["scale"], np.float32)

    def inverse_y(self, values: np.ndarray) -> np.ndarray:
        """Scaled regression outputs (N, K) -> target units."""
        target = self.state["target"]
        return values * np.asarray(target["scale"], np.float32) + np.asarray(target["center"], np.float32)

    def save(self, path: Path) -> None:
        """preprocess.json at `path`; a text run's tokenizer goes to tokenizer.json beside it."""
        state = dict(self.state)
        if "tokenizer" in state:
            (path.parent / TOKENIZER_FILE).write_text(state.pop("tokenizer"))
            state["tokenizer_file"] = TOKENIZER_FILE
        path.write_text(json.dumps(state, indent=1))

    @classmethod
    def load(cls, path: Path) -> Preprocessor:
        state = json.loads(path.read_text())
        if "tokenizer_file" in state:
            state["tokenizer"] = (path.parent / state.pop("tokenizer_file")).read_text()
        return cls(state)


def plain_label(value: Any) -> Any:
    """Labels as JSON keeps them: numpy scalars become Python scalars."""
    return value.item() if isinstance(value, np.generic) else value


def _texts(x: Features | list[str]) -> list[str]:
    """The strings of a text input: a one-column frame (the text column), or any sequence of strings."""
    values = x.iloc[:, 0] if isinstance(x, pd.DataFrame) else pd.Series(np.asarray(x, dtype=object).ravel())
    return values.fillna("").astype(str).tolist()


def _missing_error(n_bad: int, where: str) -> BadInput:
    return BadInput(
        f"The features have {n_bad} missing or infinite values ({where}) and data.impute is 'none'. "
        "Set data.impute to median, mean, most_frequent or interpolate, or clean the data."
    )


def _fit_table(x: pd.DataFrame, cfg: DataConfig) -> dict[str, Any]:
    from sklearn.preprocessing import OneHotEncoder

    unknown = [c for c in cfg.categorical if c not in x.columns]
    if unknown:
        raise BadInput(
            f"data.categorical names {', '.join(map(repr, unknown))}, which the features lack. Feature columns: "
            f"{', '.join(map(str, x.columns))}."
        )
    numeric = [
        c
        for c in x.columns
        if c not in cfg.categorical and pd.api.types.is_numeric_dtype(x[c]) and not pd.api.types.is_bool_dtype(x[c])
    ]
    categorical = [c for c in x.columns if c not in numeric]
    state: dict[str, Any] = {
        "columns": [str(c) for c in x.columns],
        "numeric": {"names": [str(c) for c in numeric]},
        "categorical": [],
        "filled": 0,
    }
    if numeric:
        stats, state["filled"] = _fit_numeric(x, numeric, cfg)
        state["numeric"].update(stats)
    for col in categorical:
        values = x[col].astype("string").fillna(pd.NA)
        if values.isna().any() and cfg.impute == "none":
            raise _missing_error(int(values.isna().sum()), f"column {col}")
        fill = str(values.mode(dropna=True).iloc[0]) if values.notna().any() else "missing"
        state["filled"] += int(values.isna().sum())
        strings = values.fillna(fill).astype(str).to_numpy()[:, None]
        enc = OneHotEncoder(max_categories=cfg.max_categories, handle_unknown="infrequent_if_exist").fit(strings)
        rare = set() if enc.infrequent_categories_[0] is None else set(enc.infrequent_categories_[0])
        levels = [str(c) for c in enc.categories_[0] if c not in rare]
        state["categorical"].append({"name": str(col), "fill": fill, "levels": levels, "other": bool(rare)})
    state["shape"] = [len(numeric) + sum(len(c["levels"]) + c["other"] for c in state["categorical"])]
    return state


def _blocks(names: list[Any], rows: int) -> list[list[Any]]:
    """Numeric columns in blocks of about BLOCK_BYTES as float64: statistics stay exact (per column, in
    float64) while the memory they need stays bounded whatever the number of rows (issue 7 scale target)."""
    size = max(1, BLOCK_BYTES // (8 * max(1, rows)))
    return [names[i : i + size] for i in range(0, len(names), size)]


def _fit_numeric(x: pd.DataFrame, numeric: list[Any], cfg: DataConfig) -> tuple[dict[str, list[float]], int]:
    """T01, T03, T04 statistics of the numeric columns: (fill, lo, hi, center, scale), values filled."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    strategy = "median" if cfg.impute in ("interpolate", "none") else cfg.impute  # the fallback of interpolation
    stats: dict[str, list[np.ndarray]] = {"fill": [], "lo": [], "hi": [], "center": [], "scale": []}
    n_bad: list[int] = []
    for block in _blocks(numeric, len(x)):
        values = x[block].to_numpy(dtype=np.float64, copy=True)  # (N, k)
        bad = ~np.isfinite(values)
        n_bad.extend(bad.sum(axis=0).tolist())
        values[bad] = np.nan
        all_nan = np.isnan(values).all(axis=0)
        values[:, all_nan] = 0.0  # a column with no value at all is filled with 0
        lo, hi = np.full(len(block), -np.inf), np.full(len(block), np.inf)
        with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow: _check_scale names them
            imputer = SimpleImputer(strategy=strategy, keep_empty_features=True).fit(values)
            values = imputer.transform(values)
            if cfg.outliers == "clip":
                lo, hi = np.quantile(values, [cfg.clip_quantile, 1 - cfg.clip_quantile], axis=0)
                values = np.clip(values, lo, hi)
            center, scale = _fit_scale(values, cfg.scale, StandardScaler, MinMaxScaler)
        _check_scale(block, values.min(axis=0), values.max(axis=0), center, scale, what="feature column(s)")
        for key, value in zip(stats, (imputer.statistics_, lo, hi, center, scale), strict=True):
            stats[key].append(value)
    if sum(n_bad) and cfg.impute == "none":
        raise _missing_error(sum(n_bad), "columns " + ", ".join(str(numeric[i]) for i in np.flatnonzero(n_bad)[:5]))
    return {key: np.concatenate(parts).tolist() for key, parts in stats.items()}, sum(n_bad)


def _check_scale(
    names: list[Any], low: np.ndarray, high: np.ndarray, center: np.ndarray, scale: np.ndarray, *, what: str
) -> None:
    """Statistics and scaled values must be finite float32 numbers: huge inputs are named, not blamed on the LR.

    low, high: each column's smallest and largest value (no copy of the data is needed)."""
    with np.errstate(over="ignore", invalid="ignore"):
        reach = np.maximum(high - center, center - low) / scale  # the largest scaled value per column
    bad = ~(np.isfinite(center) & np.isfinite(scale) & (reach < np.finfo(np.float32).max))
    if bad.any():
        cols = [names[i] for i in np.flatnonzero(bad)]
        largest = float(np.nan_to_num(np.maximum(np.abs(low), np.abs(high))[bad], posinf=np.inf).max())
        raise BadInput(
            f"The {what} {', '.join(map(repr, cols[:5]))} hold values too large to scale in float32 "
            f"(up to {largest:.3g}). Rescale them (e.g. log1p or divide by a constant) or drop them."
        )


def _fit_scale(values: np.ndarray, how: str, standard: Any, minmax: Any) -> tuple[np.ndarray, np.ndarray]:
    """(center, scale) per column of a 2-D array, so that (v - center) / scale is the scaled value."""
    if how == "standard":
        sc = standard().fit(values)
        return sc.mean_, sc.scale_
    if how == "minmax":
        mm = minmax().fit(values)
        return mm.data_min_, np.where(mm.data_range_ > 0, mm.data_range_, 1.0)
    return np.zeros(values.shape[1]), np.ones(values.shape[1])


def _apply_table(state: dict[str, Any], x: Features) -> np.ndarray:
    if not isinstance(x, pd.DataFrame):
        x = pd.DataFrame(np.asarray(x), columns=state["columns"])
    num = state["numeric"]
    out = np.empty((len(x), state["shape"][0]), np.float32)  # filled block by block: no concatenated copy
    start = 0
    for block in _blocks(num["names"], len(x)):
        cols = slice(start, start + len(block))
        values = x[block].to_numpy(dtype=np.float64, copy=True)  # (N, k)
        bad = ~np.isfinite(values)
        if bad.any():
            if state["impute"] == "none":
                raise _missing_error(int(bad.sum()), "numeric columns")
            values[bad] = np.nan
            if state["impute"] == "interpolate":  # T01: ordered rows borrow from their neighbours
                values = pd.DataFrame(values).interpolate(limit_direction="both").to_numpy()
            values = np.where(np.isnan(values), np.asarray(num["fill"][cols]), values)
        np.clip(values, num["lo"][cols], num["hi"][cols], out=values)
        values -= num["center"][cols]
        values /= num["scale"][cols]
        out[:, cols] = values
        start += len(block)
    for cat in state["categorical"]:
        strings = x[cat["name"]].astype("string").fillna(cat["fill"]).astype(str).to_numpy()
        lookup = {level: i for i, level in enumerate(cat["levels"])}
        width = len(cat["levels"]) + cat["other"]
        codes = np.array([lookup.get(s, len(cat["levels"]) if cat["other"] else -1) for s in strings], np.int64)
        onehot = out[:, start : start + width]
        onehot[:] = 0.0
        hit = codes >= 0  # unseen levels without an "other" column stay all-zero
        onehot[np.flatnonzero(hit), codes[hit]] = 1.0
        start += width
    return out


def _fit_array(x: np.ndarray, cfg: DataConfig, kind: str) -> dict[str, Any]:
    axis = 1 if kind == "image" else x.ndim - 1  # channel axis: (N, C, H, W) or (N, T, C)
    other = tuple(a for a in range(x.ndim) if a != axis)
    bad = ~np.isfinite(x)
    if bad.any() and cfg.impute == "none":
        raise _missing_error(int(bad.sum()), "array features")
    clean = np.where(bad, np.nan, x)
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing channel: its statistics are 0 and 1
        fill = np.nan_to_num(np.nanmedian(clean, axis=other))
        low, high = np.nanmin(clean, axis=other).astype(np.float64), np.nanmax(clean, axis=other).astype(np.float64)
        if cfg.scale == "standard":
            center, scale = (
                np.nanmean(clean, axis=other, dtype=np.float64),
                np.nanstd(clean, axis=other, dtype=np.float64),
            )
        elif cfg.scale == "minmax":
            center, scale = low, high - low
        else:
            center, scale = np.zeros(x.shape[axis]), np.ones(x.shape[axis])
    center = np.nan_to_num(np.asarray(center), nan=0.0, posinf=np.inf, neginf=-np.inf)
    scale = np.where(np.isnan(scale) | (scale == 0), 1.0, scale)
    low, high = np.nan_to_num(low), np.nan_to_num(high)  # an all-missing channel: filled with 0
    _check_scale(list(range(len(center))), low, high, center, scale, what="feature channel(s)")
    shape = list(x.shape[1:])
    pad = [0, 0]
    if kind == "image" and cfg.pad_pow2 is True:  # T08: power-of-two sides pool cleanly to 1x1
        pad = [_next_pow2(shape[1]) - shape[1], _next_pow2(shape[2]) - shape[2]]
        shape = [shape[0], shape[1] + pad[0], shape[2] + pad[1]]
    return {
        "axis": axis,
        "fill": fill.tolist(),
        "center": center.tolist(),
        "scale": scale.tolist(),
        "pad": pad,
        "shape": shape,
        "filled": int(bad.sum()),
    }


def _apply_array(state: dict[str, Any], x: np.ndarray) -> np.ndarray:
    view = [1] * x.ndim
    view[state["axis"]] = -1
    bad = ~np.isfinite(x)
    if bad.any():
        if state["impute"] == "none":
            raise _missing_error(int(bad.sum()), "array features")
        x = np.where(bad, np.reshape(np.asarray(state["fill"], np.float32), view), x)
    x = (x - np.reshape(np.asarray(state["center"], np.float32), view)) / np.reshape(
        np.asarray(state["scale"], np.float32), view
    )
    ph, pw = state["pad"]
    if ph or pw:  # zero is the training mean after scaling: padding adds no signal
        x = np.pad(x, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    return np.ascontiguousarray(x, dtype=np.float32)


def _next_pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _fit_target(y: np.ndarray | None, *, task: str, classes: list[Any] | None, scale: bool) -> dict[str, Any]:
    if task == "classification":
        assert classes is not None  # the loader always passes the label set for classification
        return {"classes": [plain_label(c) for c in classes]}
    if task == "reconstruction" or y is None:
        return {}
    values = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    if not np.isfinite(values).all():
        raise BadInput("The regression target has NaN or infinite values; drop or fix those rows.")
    with np.errstate(over="ignore", invalid="ignore"):
        center = values.mean(axis=0) if scale else np.zeros(values.shape[1])
        spread = values.std(axis=0) if scale else np.ones(values.shape[1])
    spread = np.where(spread > 0, spread, 1.0)
    low, high = values.min(axis=0), values.max(axis=0)
    _check_scale(list(range(values.shape[1])), low, high, center, spread, what="regression target column(s)")
    return {"center": center.tolist(), "scale": spread.tolist()}
