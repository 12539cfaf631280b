"""Data sources: CSV/Parquet tables, `.npz` arrays, image and text folders and scikit-learn's bundled sets.

Every source becomes a `RawData`: features as a DataFrame (tables; text: one column of strings) or a
float array (images (N, C, H, W), sequences (N, T, C)), the target, the optional time and group
columns (T51) and a given test split. Nothing here computes statistics: that is the preprocessor's job, on the
training split only (T01-T05).
"""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tunesmith.data.columns import plan_columns
from tunesmith.errors import BadInput, closest
from tunesmith.recipe import DataConfig
from tunesmith.validate import file_encoding, read_text

__all__ = ["BUILTIN_SETS", "TABLE_SUFFIXES", "RawData", "load_source", "time_values"]

BUILTIN_SETS = ("digits", "wine", "breast_cancer", "diabetes", "iris")
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
GREY_MODES = ("L", "1", "I", "I;16", "F", "LA")

Features = pd.DataFrame | np.ndarray


@dataclass
class RawData:
    name: str
    x: Features  # DataFrame for tables; float32 (N, C, H, W) images or (N, T, C) sequences
    y: np.ndarray | None  # (N,) labels or targets, (N, K) for several regression targets
    kind: str  # tabular | sequence | image | text
    time: np.ndarray | None = None  # (N,) sortable values of the declared time column
    groups: np.ndarray | None = None  # (N,) group ids of the declared group column
    x_test: Features | None = None  # a given test split, touched once at the end
    y_test: np.ndarray | None = None
    inferred: dict[str, Any] = field(default_factory=dict)  # recipe fields the source decided (data.dates, ...)
    notes: list[str] = field(default_factory=list)  # what was inferred, one sentence each (announced)

    def __len__(self) -> int:
        return len(self.x)


def load_source(cfg: DataConfig) -> RawData:
    """Read `cfg.source`; raise BadInput naming the file and the fix when it cannot be used."""
    if not cfg.source:
        raise BadInput(
            "No data given. Pass --data with a CSV/Parquet/.npz file, an image folder, "
            f"or a built-in set ({', '.join(BUILTIN_SETS)})."
        )
    path = Path(cfg.source)
    if cfg.source in BUILTIN_SETS and not path.exists():
        return _builtin(cfg.source)
    if not path.exists():
        guess = closest(cfg.source, BUILTIN_SETS)
        hint = f" Did you mean the built-in set {guess!r}?" if guess else ""
        raise BadInput(f"Data file {path} does not exist.{hint} Built-in sets: {', '.join(BUILTIN_SETS)}.")
    if path.is_dir():
        return _text_folder(path) if _is_text_folder(path) else _image_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _npz(path, cfg)
    if suffix in TABLE_SUFFIXES:
        return _table(path, cfg)
    raise BadInput(
        f"Data file {path} has an unknown type {suffix!r}. Use .csv, .tsv, .parquet, .jsonl, .npz or a folder."
    )


def _builtin(name: str) -> RawData:
    from sklearn import datasets

    if name == "digits":  # 8x8 grey images: keep them images so the CNN family applies (T10)
        bunch = datasets.load_digits()
        x = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8)
        return RawData(name, x, bunch.target, "image")
    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return RawData(name, bunch.data, bunch.target.to_numpy(), "tabular")


def read_table(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """A CSV/TSV/Parquet/JSONL file as a DataFrame, and what was inferred to read it (delimiter, encoding).

    CSV text is decoded as `validate.file_encoding` says (UTF-8, or UTF-16/32 with a byte-order
    mark); a CSV that reads as a single column is read again with the delimiter csv.Sniffer finds.
    """
    notes: list[str] = []
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pd.read_parquet(path), notes
        if path.suffix.lower() in (".jsonl", ".ndjson"):  # one JSON object per line (text sets often come so)
            return pd.read_json(path, lines=True, encoding=file_encoding(path), dtype=False), notes
        encoding = file_encoding(path)
        sep = "\t" if path.suffix.lower() == ".tsv" else ","
        frame = _read_csv(path, sep, encoding)
        if frame.shape[1] == 1:
            with open(path, encoding=encoding) as handle:
                sample = handle.read(65536)
            try:
                sniffed = csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
            except csv.Error:  # nothing found: a one-column table, reported by the caller
                sniffed = sep
            if sniffed != sep:
                frame = _read_csv(path, sniffed, encoding)
                notes.append(f"{path} is delimited by {sniffed!r}, not {sep!r}: read with {sniffed!r}.")
    except UnicodeDecodeError as exc:
        raise BadInput(
            f"{path} is not {exc.encoding.upper()} text (byte {exc.start}). Save it as UTF-8 (or UTF-16 with a "
            "byte-order mark)."
        ) from None
    except Exception as exc:  # pandas raises many types for unreadable files
        raise BadInput(
            f"Cannot read {path} as a table: {exc}. Check that it is a valid {path.suffix.lstrip('.').upper()} file."
        ) from None
    return frame, notes


def _read_csv(path: Path, sep: str, encoding: str) -> pd.DataFrame:
    with warnings.catch_warnings():  # mixed types across chunks: columns.py reads such columns as they are
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        return pd.read_csv(path, sep=sep, encoding=encoding)


def _table(path: Path, cfg: DataConfig) -> RawData:
    frame, notes = read_table(path)
    if frame.empty or frame.shape[1] < 2:
        raise BadInput(
            f"{path} holds no usable table ({frame.shape[0]} rows, {frame.shape[1]} columns). "
            "A table needs a header, a target column and at least one feature column, separated by "
            "commas (tabs in a .tsv)."
        )
    columns = list(frame.columns)
    target = cfg.target if cfg.target is not None else None
    if target is None:
        raise BadInput(f"{path} is a table: name its target column with --target (columns: {', '.join(columns)}).")
    for role, col in (("target", target), ("time", cfg.time), ("group", cfg.group), ("text", cfg.text)):
        if col is not None and col not in frame.columns:
            guess = closest(col, [str(c) for c in columns])
            hint = f" Did you mean {guess!r}?" if guess else ""
            raise BadInput(
                f"The {role} column {col!r} is not in {path}.{hint} Columns: {', '.join(map(str, columns))}."
            )
    for role, col in (("time", cfg.time), ("group", cfg.group), ("text", cfg.text)):
        if col == target:
            raise BadInput(
                f"The target column {target!r} of {path} is also the {role} column: a model cannot predict the "
                f"column that orders or groups its rows. Name another --target or --{role} column."
            )
    y = frame[target].to_numpy()
    if pd.isna(y).any():
        raise BadInput(
            f"The target column {target!r} of {path} has {int(pd.isna(y).sum())} missing values. "
            "Drop those rows or fill them before training."
        )
    drop = [target]
    time = groups = None
    if cfg.time is not None:
        time = time_values(frame[cfg.time], cfg.time, path)
        if not cfg.time_as_feature:
            drop.append(cfg.time)
    if cfg.group is not None:
        groups = frame[cfg.group].astype(str).to_numpy()
        if not cfg.group_as_feature:
            drop.append(cfg.group)
    features = frame.drop(columns=drop)
    if cfg.text is not None:
        return _text_table(path, features, y, cfg.text, named=True, time=time, groups=groups, notes=notes)
    plan = plan_columns(features, source=str(path), numbers=cfg.numbers, dates=cfg.dates, time=cfg.time)
    if plan.text and cfg.kind == "tabular":  # asked for: the text stays a category (doctor: text_as_category)
        notes.append(
            f"Column(s) {', '.join(map(repr, plan.text))} of {path} hold free text but data.kind is tabular: "
            "one-hot encoded as categories. Drop data.kind to train on the text (docs/text.md)."
        )
    elif plan.text:
        if len(plan.text) > 1:
            raise BadInput(
                f"{path} holds several free-text columns ({', '.join(map(repr, plan.text))}): a text run learns "
                f"from one. Name it with --text COL (data.text) and drop the others from the file, or join them "
                "into one column."
            )
        features = features.drop(columns=plan.empty)
        return _text_table(path, features, y, plan.text[0], named=False, time=time, groups=groups, notes=notes)
    elif cfg.kind == "text":
        raise BadInput(
            f"data.kind is 'text' but no column of {path} holds free text (mostly distinct, multi-word strings). "
            "Name the text column with --text COL."
        )
    if len(plan.empty) == features.shape[1]:
        raise BadInput(
            f"Every feature column of {path} has no values ({', '.join(map(repr, plan.empty))}): there is "
            "nothing to learn from. Check the file: values may sit under other headers."
        )
    return RawData(
        path.stem,
        plan.apply(features),
        y,
        "tabular",
        time=time,
        groups=groups,
        inferred={"numbers": plan.numbers, "dates": plan.dates},
        notes=notes + plan.notes,
    )


def _text_table(
    path: Path,
    features: pd.DataFrame,
    y: np.ndarray,
    column: str,
    *,
    named: bool,
    time: np.ndarray | None,
    groups: np.ndarray | None,
    notes: list[str],
) -> RawData:
    """A table whose feature is one free-text column (docs/text.md): the text alone; other feature columns
    are refused (no tabular branch beside the text encoder yet), empty texts dropped and counted."""
    values = features[column]
    texts = values.astype("string").str.strip()
    empty = (texts.isna() | (texts == "")).to_numpy()
    if empty.all():
        raise BadInput(
            f"Every row of the text column {column!r} of {path} is empty or whitespace: there is no text to learn "
            "from. Check the column (--text names it) and the file."
        )
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        raise BadInput(
            f"The text column {column!r} of {path} holds numbers ({values.dtype}), not text. Name the column that "
            "holds the text with --text, or drop --text to train on the table's columns."
        )
    others = [str(c) for c in features.columns if c != column]
    if others:
        raise BadInput(
            f"{path} mixes the text column {column!r} with other feature columns ({', '.join(map(repr, others[:8]))}"
            f"{' ...' if len(others) > 8 else ''}): tunesmith trains text models on the text alone. Drop those "
            "columns from the file (or write what matters of them into the text), or pass the table without the "
            "text column to train on the others (docs/text.md)."
        )
    said = (
        f"Column {column!r} of {path} is the text (--text): tokenized (a tokenizer fitted on the training rows, "
        "or model.backbone's own)."
        if named
        else f"Column {column!r} of {path} is free text (mostly distinct, multi-word strings): trained as text (a "
        f"tokenizer fitted on the training rows, or model.backbone's own), never one-hot encoded. --text {column} "
        "says so explicitly."
    )
    notes = [*notes, said]
    if empty.any():
        notes.append(f"{int(empty.sum())} of {len(texts)} rows of {path} have an empty text {column!r}: dropped.")
    keep = ~empty

    def pick(a: np.ndarray | None) -> np.ndarray | None:
        return None if a is None else a[keep]

    x = pd.DataFrame({column: texts[keep].astype(str).to_numpy(dtype=object)})
    return RawData(
        path.stem, x, y[keep], "text", time=pick(time), groups=pick(groups), inferred={"text": column}, notes=notes
    )


def time_values(col: pd.Series, name: str, path: Path | str) -> np.ndarray:
    """The time column's sortable values: its numbers, or its dates as int64 nanoseconds."""
    if pd.api.types.is_numeric_dtype(col):
        return col.to_numpy()
    parsed = pd.to_datetime(col, errors="coerce")
    if parsed.isna().any():
        raise BadInput(
            f"The time column {name!r} of {path} has values that are neither numbers nor dates "
            f"(e.g. {col[parsed.isna()].iloc[0]!r}). Use ISO dates or numbers."
        )
    return parsed.to_numpy().astype("datetime64[ns]").astype(np.int64)


def _npz(path: Path, cfg: DataConfig) -> RawData:
    try:
        arrays = dict(np.load(path, allow_pickle=False))
    except Exception as exc:  # zipfile/ValueError/OSError for corrupt archives
        raise BadInput(f"Cannot read {path} as an .npz archive: {exc}.") from None
    missing = [k for k in ("x", "y") if k not in arrays]
    if missing:
        raise BadInput(
            f"{path} lacks the array(s) {', '.join(missing)}: an .npz needs 'x' (features) and 'y' "
            f"(targets), optionally 'x_test' and 'y_test'. It holds: {', '.join(arrays) or 'nothing'}."
        )
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise BadInput(f"{path} has only one of x_test / y_test: give both or neither.")
    x, y = arrays["x"], arrays["y"]
    for name, a in arrays.items():
        if name.startswith("x") and (a.dtype.kind not in "biuf"):
            raise BadInput(f"{name} in {path} holds {a.dtype} values; features must be real numbers (or booleans).")
        if name.startswith("y") and (a.ndim > 2 or a.ndim == 0 or a.dtype.kind == "c"):
            raise BadInput(
                f"{name} in {path} has shape {a.shape} ({a.dtype}); targets are (rows,) labels or numbers, "
                "or (rows, K) numbers."
            )
    _check_lengths(x, y, path, "x", "y")
    if len(x) == 0 or x.ndim < 2 or x[0].size == 0:
        raise BadInput(f"x in {path} has shape {x.shape}: it needs at least one row and one feature.")
    kind = cfg.kind if cfg.kind != "auto" else {2: "tabular", 3: "sequence", 4: "image"}.get(x.ndim)
    if kind is None:
        raise BadInput(
            f"x in {path} has {x.ndim} dimensions; expected 2 (rows, features), 3 (rows, time, "
            "channels) or 4 (rows, channels, height, width)."
        )
    x_test, y_test = arrays.get("x_test"), arrays.get("y_test")
    notes: list[str] = []
    if cfg.task in ("auto", "classification") and _one_hot(y) and (y_test is None or _one_hot(y_test)):
        y, y_test = y.argmax(axis=1), None if y_test is None else y_test.argmax(axis=1)
        notes.append(
            f"y in {path} is one-hot ({len(y)}, {arrays['y'].shape[1]}): read as {arrays['y'].shape[1]} classes "
            "(argmax of each row). Set data.task=regression to fit the columns as numbers."
        )
    if x_test is not None and y_test is not None:
        _check_lengths(x_test, y_test, path, "x_test", "y_test")
        if x_test.shape[1:] != x.shape[1:]:
            raise BadInput(
                f"x_test in {path} has sample shape {x_test.shape[1:]}, x has {x.shape[1:]}: they must match."
            )
    x_test = None if x_test is None else _as_kind(x_test, kind)
    return RawData(path.stem, _as_kind(x, kind), y, kind, x_test=x_test, y_test=y_test, notes=notes)


def _one_hot(y: np.ndarray) -> bool:
    """(N, C >= 2) of 0/1 with exactly one 1 per row: class labels written one-hot."""
    if y.ndim != 2 or y.shape[1] < 2 or not np.issubdtype(y.dtype, np.number):
        return False
    return bool(np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all())


def _as_kind(x: np.ndarray, kind: str) -> Features:
    if kind == "tabular":
        if x.ndim != 2:
            raise BadInput(f"data.kind is 'tabular' but x has shape {x.shape}; tables are (rows, features).")
        return pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])], copy=False)  # a view: no second table
    if kind == "image" and x.ndim == 3:  # (N, H, W) grey images
        x = x[:, None]
    return x.astype(np.float32, copy=False)


def _check_lengths(x: np.ndarray, y: np.ndarray, path: Path, xn: str, yn: str) -> None:
    if len(x) != len(y):
        raise BadInput(
            f"{xn} and {yn} in {path} differ in length ({len(x)} vs {len(y)} rows): "
            "every sample needs exactly one target."
        )


def _image_folder(root: Path) -> RawData:
    from PIL import Image, UnidentifiedImageError  # pillow comes with matplotlib

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    files = [
        (f, i)
        for i, c in enumerate(classes)
        for f in sorted((root / c).iterdir())
        if f.suffix.lower() in IMAGE_SUFFIXES
    ]
    if not files:
        raise BadInput(
            f"The folder {root} holds no images and no .txt files. Expected {root}/<class>/*.png (or .jpg) for "
            f"images or {root}/<class>/*.txt for text, one sub-folder per class."
        )

    def unreadable(f: Path, exc: Exception) -> BadInput:
        return BadInput(f"The image {f} cannot be read ({exc}). Delete or replace it, then retry.")

    modes = []
    for f, _ in files:  # headers only: opening decodes nothing
        try:
            with Image.open(f) as img:
                modes.append(img.mode)
        except (UnidentifiedImageError, OSError) as exc:
            raise unreadable(f, exc) from None
    grey = sum(m in GREY_MODES for m in modes)
    mode = "L" if grey == len(modes) else "RGB"  # the richer mode: colour is never dropped
    notes = []
    if 0 < grey < len(modes):
        notes.append(
            f"{root} mixes {grey} grey and {len(modes) - grey} colour images: the grey ones are read as RGB "
            "(3 equal channels), so no colour is lost."
        )
    images, sizes = [], set()
    for f, _ in files:
        try:
            with Image.open(f) as img:
                arr = np.asarray(img.convert(mode), dtype=np.float32)
        except (UnidentifiedImageError, OSError) as exc:  # a truncated file fails only when decoded
            raise unreadable(f, exc) from None
        sizes.add(arr.shape[:2])
        if len(sizes) > 1:
            raise BadInput(
                f"The images in {root} have different sizes ({' and '.join(map(str, sizes))}, e.g. {f}). "
                "Resize them to one size first."
            )
        images.append(arr if arr.ndim == 3 else arr[..., None])
    x = np.stack(images).transpose(0, 3, 1, 2) / 255.0  # (N, C, H, W) in [0, 1]
    labels = np.array([classes[i] for _, i in files])
    return RawData(root.name, x.astype(np.float32), labels, "image", notes=notes)


def _is_text_folder(root: Path) -> bool:
    """Class folders of .txt files and no image (beside images, a .txt is a note about them)."""
    files = [f.suffix.lower() for f in root.glob("*/*")]
    return ".txt" in files and not any(suffix in IMAGE_SUFFIXES for suffix in files)


def _text_folder(root: Path) -> RawData:
    """`root/<class>/*.txt`: one example per file, its folder's name the label; empty files dropped, counted."""
    files = sorted(root.glob("*/*.txt"))
    texts = [read_text(f, "text file").strip() for f in files]  # an undecodable file is named
    empty = sum(not t for t in texts)
    if empty == len(texts):
        raise BadInput(f"Every .txt file under {root} is empty or whitespace: there is no text to learn from.")
    notes = [f"{root} is a text folder: {len(files)} .txt files in {len({f.parent for f in files})} class folders."]
    if empty:
        notes.append(f"{empty} of {len(files)} .txt files under {root} are empty or whitespace: dropped.")
    kept = [(t, f.parent.name) for t, f in zip(texts, files, strict=True) if t]
    x = pd.DataFrame({"text": np.array([t for t, _ in kept], dtype=object)})
    return RawData(root.name, x, np.array([c for _, c in kept]), "text", inferred={"text": "text"}, notes=notes)
