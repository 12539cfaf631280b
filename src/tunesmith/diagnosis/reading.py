"""The doctor's private copies of the user's rows: read once, dtypes kept, sick values imputed, canonical order.

`materialize` reads `(x, y)` arrays/tensors/DataFrames, a Dataset or a DataLoader (once: x and y
come from the same pass, up to MAX_ROWS rows, the per-batch targets kept for `unshuffled_batches`).
Inputs keep their dtype: integer token ids or category codes stay integer; floating arrays and
tensors become float32 as tunesmith's Trainer feeds them; a DataLoader's batches are kept as served,
because they reach the model that way. Integer targets become int64 (what CrossEntropyLoss indexes
with), floating targets float32.

`impute` replaces NaN/inf inputs by the training column's median and drops the rows whose target is
not finite, and reports what it changed (counts, columns, first rows) for `missing_values` (T01).
`canonical_order` sorts the rows by their bytes, so the same rows delivered in any order give the
same copies and the same findings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from tunesmith.diagnosis.context import MAX_ROWS
from tunesmith.errors import BadInput, must_be

__all__ = ["Split", "canonical_order", "impute", "loader_states", "materialize", "pair"]

_DATA_ALLOWED = "(x, y) arrays or tensors, a torch Dataset or a DataLoader"
_REPORTED = 5  # rows and columns named in the evidence


@dataclass
class Split:
    x: torch.Tensor
    y: torch.Tensor
    loader: DataLoader | None = None
    batch_targets: list[np.ndarray] = field(default_factory=list)
    names: list[str] | None = None
    rows: int = 0  # rows of the whole source (a DataLoader may hold more than were read)


def loader_states(data: Any) -> list[tuple[torch.Generator, torch.Tensor]]:
    """The RNG states of a DataLoader's generators (its own and its sampler's), to put back after reading."""
    if not isinstance(data, DataLoader):
        return []
    found = [getattr(data, "generator", None), getattr(data.sampler, "generator", None)]
    gens = [g for i, g in enumerate(found) if isinstance(g, torch.Generator) and g not in found[:i]]
    return [(g, g.get_state()) for g in gens]


def materialize(data: Any, split: str) -> Split:
    """Private tensor copies of one split; BadInput only when there is nothing to examine."""
    if isinstance(data, DataLoader | Dataset):
        loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=256)
        xs, ys = [], []
        for batch in loader:  # one pass: x and y of a row come from the same draw
            if not (isinstance(batch, tuple | list) and len(batch) == 2):
                raise BadInput(
                    f"The {split} data must yield (x, y) pairs; a batch held {type(batch).__name__} "
                    f"of {len(batch) if isinstance(batch, tuple | list) else 1} item(s)."
                )
            xs.append(torch.as_tensor(batch[0]).detach().cpu())
            ys.append(torch.as_tensor(batch[1]).detach().cpu())
            if sum(len(x) for x in xs) >= MAX_ROWS:  # enough to judge; the short runs still iterate it all
                break
        if not xs:
            raise BadInput(
                f"The {split} DataLoader yields no batches (an empty dataset, or drop_last=True with fewer "
                "rows than one batch). Pass data with at least one full batch."
            )
        served = isinstance(data, DataLoader)  # batches reach the model as the loader serves them
        out = Split(
            _copy_x(torch.cat(xs), split, as_served=served), _copy_y(torch.cat(ys)), rows=_length(loader.dataset)
        )
        if served:
            out.loader = loader
            out.batch_targets = [y.numpy() for y in ys]
        return out
    if not (isinstance(data, tuple | list) and len(data) == 2):
        raise BadInput(must_be(split, "doctor", _DATA_ALLOWED, type(data).__name__))
    x_raw, y_raw = data
    names = [str(c) for c in x_raw.columns] if isinstance(x_raw, pd.DataFrame) else None
    x, y = _tensor(x_raw, f"{split} x"), _tensor(y_raw, f"{split} y")
    if len(x) != len(y):
        raise BadInput(
            f"The {split} x and y differ in length ({len(x)} vs {len(y)} rows): every sample needs exactly "
            "one target. Check that both come from the same rows."
        )
    if len(x) == 0:
        raise BadInput(f"The {split} data hold no rows.")
    return Split(_copy_x(x, split, as_served=False), _copy_y(y), names=names, rows=len(x))


def impute(splits: dict[str, Split], *, target_values: bool) -> dict[str, Any]:
    """Replace non-finite inputs by training medians, drop rows with a non-finite target; what was changed.

    The medians are per value position (a table's column, an image's pixel), over the finite
    training values (0 where none is finite). `target_values`: the targets are values that can be
    non-finite (not a reconstruction, whose target is the input).
    """
    report: dict[str, Any] = {}
    medians: torch.Tensor | None = None
    for name, s in splits.items():
        found: dict[str, Any] = {}
        if s.x.is_floating_point():
            flat = s.x.reshape(len(s.x), -1)
            bad = ~torch.isfinite(flat)
            if bad.any():
                if medians is None:
                    medians = _medians(splits["train"].x)
                s.x = torch.where(bad, medians.to(flat.dtype), flat).reshape(s.x.shape)
                per_column = bad.sum(dim=0)
                worst = torch.argsort(per_column, descending=True)[:_REPORTED]
                columns = s.names if s.names is not None and len(s.names) == flat.shape[1] else None
                found.update(
                    values=int(bad.sum()),
                    rows=int(bad.any(dim=1).sum()),
                    first_rows=torch.nonzero(bad.any(dim=1)).flatten()[:_REPORTED].tolist(),
                    columns={
                        (columns[j] if columns else f"x[{j}]"): int(per_column[j])
                        for j in worst.tolist()
                        if per_column[j]
                    },
                )
        if target_values and s.y.is_floating_point():
            lost = ~torch.isfinite(s.y.reshape(len(s.y), -1)).all(dim=1)
            if lost.any():
                found.update(
                    target_rows=int(lost.sum()), first_target_rows=torch.nonzero(lost).flatten()[:_REPORTED].tolist()
                )
                s.x, s.y = s.x[~lost], s.y[~lost]
                if len(s.x) == 0:
                    raise BadInput(f"Every {name} row has a NaN or infinite target: there is nothing to examine.")
        if found:
            report[name] = found
    return report


def canonical_order(s: Split) -> None:
    """Sort the copies' rows by their bytes (inputs, then targets): the order of delivery leaves no trace."""
    order = np.argsort(_row_keys(s.y), kind="stable")
    order = order[np.argsort(_row_keys(s.x)[order], kind="stable")]
    index = torch.from_numpy(order)
    s.x, s.y = s.x[index], s.y[index]


def pair(value: tuple[Any, Any] | None, name: str, tr: Split, va: Split | None) -> tuple[np.ndarray, np.ndarray] | None:
    """`time` or `groups` as (train, val) arrays of one value per row."""
    if value is None:
        return None
    if not (isinstance(value, tuple | list) and len(value) == 2) or va is None:
        hint = "" if va is not None else " It needs validation data (val=...)."
        raise BadInput(
            must_be(name, "doctor", f"a pair ({name}_train, {name}_val) of arrays", type(value).__name__, hint=hint)
        )
    out = []
    for part, s, split in zip(value, (tr, va), ("train", "val"), strict=True):
        array = np.asarray(part)
        rows = s.rows or len(s.x)
        if len(array) != rows:
            raise BadInput(f"{name}[{split}] has {len(array)} values for {rows} {split} rows: one per row.")
        out.append(array)
    return out[0], out[1]


def _row_keys(t: torch.Tensor) -> np.ndarray:
    """One opaque key per row (its bytes), for sorting."""
    rows = np.ascontiguousarray(t.reshape(len(t), -1).numpy())
    return rows.view(np.dtype((np.void, rows.dtype.itemsize * max(1, rows.shape[1])))).ravel()


def _medians(x: torch.Tensor) -> torch.Tensor:
    flat = x.reshape(len(x), -1).double()
    flat = torch.where(torch.isfinite(flat), flat, torch.nan)
    return torch.nan_to_num(flat.nanmedian(dim=0).values, nan=0.0)


def _length(dataset: Any) -> int:
    """len(dataset), or 0 for an iterable dataset without one."""
    try:
        return len(dataset)
    except TypeError:
        return 0


def _tensor(a: Any, what: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a.detach().cpu()
    if isinstance(a, pd.DataFrame | pd.Series):
        a = a.to_numpy()
    try:
        array = np.asarray(a)
        return torch.from_numpy(np.array(array, dtype=np.float32 if array.dtype == object else array.dtype))
    except (TypeError, ValueError) as exc:
        raise BadInput(f"The {what} cannot be read as a numeric array: {exc}.") from None


def _copy_x(x: torch.Tensor, split: str, *, as_served: bool) -> torch.Tensor:
    """A private copy in the dtype the model will receive: integers stay integer, floats become float32
    (the Trainer's rule for arrays), a DataLoader's batches stay exactly as served."""
    if x.ndim < 2:
        raise BadInput(f"The {split} x has shape {tuple(x.shape)}; it needs a row axis and features: (rows, features).")
    if x.is_floating_point() and not as_served:
        x = x.to(torch.float32)
    return x.clone()


def _copy_y(y: torch.Tensor) -> torch.Tensor:
    """Targets as losses take them: int64 class indices, float32 values."""
    if y.is_floating_point():
        return y.to(torch.float32).clone()
    return y.to(torch.int64).clone() if y.dtype != torch.bool else y.clone()
