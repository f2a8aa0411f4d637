"""Loading users' own embeddings, ids and targets from .npy, .npz or parquet files."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from .._optional import require
from ..errors import InputError

__all__ = ["load_embeddings", "load_targets"]


def load_embeddings(
    path: str | os.PathLike, *, key: str | None = None, ids_key: str | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Embeddings (2-D) and optional ids from a file.

    - ``.npy``: the array itself (no ids).
    - ``.npz``: the array named ``key`` (default ``"embeddings"``, else the
      only/first 2-D array) and ids from ``ids_key`` (default ``"ids"`` if present).
    - ``.parquet``: a list-valued column ``key`` (default ``"embedding"``) and an
      id column ``ids_key`` (default ``"id"`` if present); needs pyarrow.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _as_matrix(np.load(path, allow_pickle=False), path), None
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            names = data.files
            name = key or (
                "embeddings" if "embeddings" in names else next((n for n in names if data[n].ndim == 2), None)
            )
            if name is None or name not in names:
                raise InputError(f"{path}: no 2-D array {'named ' + repr(key) if key else ''} (arrays: {names})")
            ids_name = ids_key or ("ids" if "ids" in names else None)
            ids = data[ids_name] if ids_name is not None else None
            return _as_matrix(data[name], path), ids
    if suffix == ".parquet":
        parquet = require("pyarrow.parquet", "reading parquet embeddings")
        table = parquet.read_table(path)
        column = key or "embedding"
        if column not in table.column_names:
            raise InputError(f"{path}: no column {column!r} (columns: {table.column_names})")
        matrix = _list_column(table.column(column), path, column)
        ids_name = ids_key or ("id" if "id" in table.column_names else None)
        ids = table.column(ids_name).to_numpy() if ids_name else None
        return _as_matrix(matrix, path), ids
    raise InputError(f"{path}: unsupported file type {suffix!r}; use .npy, .npz or .parquet")


def _list_column(column: Any, path: Path | None, name: str, dtype: Any = np.float32) -> np.ndarray:
    """A list column as a (rows, width) matrix, from its flat values (no Python lists); ``dtype=None`` keeps the values'.

    A null row or rows of unequal lengths are an error naming the column (and the file, ``path``), never misaligned rows.
    """
    pa = require("pyarrow", "reading parquet embeddings")
    compute = require("pyarrow.compute", "reading parquet embeddings")
    where = f"{path}: " if path is not None else ""
    array = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type)):
        raise InputError(f"{where}column {name!r} must hold one list of numbers per row; it is {array.type}")
    if array.null_count:
        raise InputError(f"{where}column {name!r} has {array.null_count} empty (null) rows")
    lengths = np.asarray(compute.list_value_length(array))
    if len(lengths) and (lengths != lengths[0]).any():
        raise InputError(f"{where}column {name!r} has rows of different lengths ({lengths.min()}..{lengths.max()})")
    width = int(lengths[0]) if len(lengths) else getattr(array.type, "list_size", 0)
    values = np.asarray(array.flatten().to_numpy(zero_copy_only=False), dtype=dtype)
    return values.reshape(len(array), width)


def _as_matrix(array: Any, path: Path) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != 2:
        raise InputError(f"{path}: expected a 2-D (rows, dimensions) array; got shape {array.shape}")
    return array


def load_targets(path: str | os.PathLike, n_queries: int | None = None) -> np.ndarray:
    """Integer targets (relevant database rows) per query from .npy/.npz (1-D, or 2-D padded with -1)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as data:
            targets = data["targets"] if "targets" in data.files else data[data.files[0]]
    else:
        targets = np.load(path, allow_pickle=False)
    if targets.ndim not in (1, 2) or not np.issubdtype(targets.dtype, np.integer):
        raise InputError(
            f"{path}: targets must be 1-D or 2-D integers; got shape {targets.shape}, dtype {targets.dtype}"
        )
    if n_queries is not None and len(targets) != n_queries:
        raise InputError(f"{path}: {len(targets)} targets for {n_queries} queries")
    return targets.astype(np.int64)
