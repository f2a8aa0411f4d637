"""What a distributed job reads: a Ray Dataset, or shard files (parquet, .npy, .npz) named by paths or globs.

Every shard is read by the one embeddings loader (:func:`nnlift.datasets.load_embeddings`).
A shard without ids gets global row numbers: its offset (the rows of the
shards before it, in sorted path order) plus its own row numbers, so a job
over ``.npy`` shards numbers rows as one concatenated array would.
"""

from __future__ import annotations

import glob
import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._check import check_array
from ..datasets import load_embeddings
from ..datasets.files import _list_column
from ..errors import InputError, InputTypeError
from ._ray import ray_module

__all__ = ["Shard", "Columns", "find_shards", "as_dataset", "batch_rows", "is_dataset"]

SUFFIXES = (".parquet", ".npy", ".npz")
READ_CPUS = 0.25  # a reading task's CPUs: the actor pool leaves this much free (see _ray.Pool)


@dataclass(frozen=True)
class Columns:
    """Column names of a source: ``None`` takes the loader's defaults for files and ``id``/``embedding`` for Datasets."""

    id: str | None = None
    embedding: str | None = None

    @property
    def id_name(self) -> str:
        return self.id or "id"

    @property
    def embedding_name(self) -> str:
        return self.embedding or "embedding"


@dataclass(frozen=True)
class Shard:
    """One input file: where it is, its place in the job, its rows and the global row number of its first row."""

    path: str
    number: int
    rows: int
    offset: int

    def fingerprint(self) -> dict[str, Any]:
        """What identifies this input for a rerun: path, size and modification time."""
        stat = os.stat(self.path)
        return {"path": self.path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "rows": self.rows}

    def read(self, columns: Columns) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, float32 rows)`` of the shard."""
        matrix, ids = load_embeddings(self.path, key=columns.embedding, ids_key=columns.id)
        if ids is None:
            ids = np.arange(self.offset, self.offset + len(matrix), dtype=np.int64)
        if len(ids) != len(matrix):
            raise InputError(f"{self.path}: {len(ids)} ids for {len(matrix)} rows")
        return np.asarray(ids), check_array(matrix, f"embeddings of {self.path}", allow_empty=True)


def is_dataset(value: Any) -> bool:
    """Whether ``value`` is a Ray Dataset (without importing Ray when it is not installed)."""
    return type(value).__module__.startswith("ray.data") and hasattr(value, "map_batches")


def find_shards(source: Any, columns: Columns = Columns(), width: int | None = None) -> list[Shard]:
    """The shard files of ``source`` (a path, glob, folder, or a list of them), sorted, with row counts and offsets.

    Each shard's header or metadata is read here, on the driver: a missing
    column, or rows whose width differs from ``width`` (the bank's), is an
    error now, naming the file, not a failed task on a worker later.
    """
    entries = [source] if isinstance(source, (str, os.PathLike)) else source
    if not isinstance(entries, (list, tuple)) or not entries:
        raise InputTypeError(
            f"dataset must be a ray.data.Dataset, or paths or globs of .parquet, .npy or .npz shards; got {source!r}"
        )
    paths: list[str] = []
    for entry in entries:
        if not isinstance(entry, (str, os.PathLike)):
            raise InputTypeError(f"dataset paths must be strings or paths; got {entry!r}")
        text = os.fspath(entry)
        if os.path.isdir(text):
            found = [p for p in sorted(glob.glob(os.path.join(text, "*"))) if p.lower().endswith(SUFFIXES)]
        else:
            found = sorted(glob.glob(text)) if glob.has_magic(text) else [text]
        if not found:
            raise InputError(f"dataset: {text!r} matches no .parquet, .npy or .npz file")
        paths += found
    for path in paths:
        if not os.path.isfile(path):
            raise InputError(f"dataset: no such file {path!r}")
        if not path.lower().endswith(SUFFIXES):
            raise InputError(f"dataset: {path!r} is not a .parquet, .npy or .npz file")
    if len(set(paths)) != len(paths):
        raise InputError("dataset names a shard more than once")
    shards, offset = [], 0
    for number, path in enumerate(paths):
        rows, found_width = describe(path, columns)
        if width is not None and found_width is not None and found_width != width and rows:
            raise InputError(f"dataset: {path} has rows of {found_width} dimensions; the job needs {width}")
        shards.append(Shard(os.path.abspath(path), number, rows, offset))
        offset += rows
    return shards


def describe(path: str, columns: Columns) -> tuple[int, int | None]:
    """A shard's rows and width (``None`` where its format does not say) from its header, without reading vectors.

    Names a missing embedding or id column the way the loader would.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".npy":
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        if len(shape) != 2:
            raise InputError(f"{path}: expected a 2-D (rows, dimensions) array; got shape {shape}")
        return int(shape[0]), int(shape[1])
    if suffix == ".parquet":
        from .._optional import require

        pa = require("pyarrow", "reading parquet shards")
        metadata = require("pyarrow.parquet", "reading parquet shards").ParquetFile(path).metadata
        schema = metadata.schema.to_arrow_schema()
        for name in (columns.embedding or "embedding", columns.id):
            if name is not None and name not in schema.names:
                raise InputError(f"{path}: no column {name!r} (columns: {schema.names})")
        kind = schema.field(columns.embedding or "embedding").type
        width = kind.list_size if pa.types.is_fixed_size_list(kind) else None
        return int(metadata.num_rows), width
    with zipfile.ZipFile(path) as archive:
        members = {name[:-4]: name for name in archive.namelist() if name.endswith(".npy")}
        if columns.id is not None and columns.id not in members:
            raise InputError(f"{path}: no array {columns.id!r} (arrays: {sorted(members)})")
        wanted = columns.embedding or ("embeddings" if "embeddings" in members else None)
        for name in [wanted] if wanted else list(members):
            if name not in members:
                raise InputError(f"{path}: no array {name!r} (arrays: {sorted(members)})")
            with archive.open(members[name]) as handle:
                version = np.lib.format.read_magic(handle)
                shape = np.lib.format._read_array_header(handle, version)[0]
            if len(shape) == 2:
                return int(shape[0]), int(shape[1])
        raise InputError(f"{path}: no 2-D array (arrays: {sorted(members)})")


def digest(array: np.ndarray) -> str:
    """A short content hash of an array (a bank, a model's state): a rerun with other inputs is refused."""
    hasher = hashlib.sha256(str((array.shape, array.dtype.str)).encode())
    hasher.update(np.ascontiguousarray(array).tobytes())
    return hasher.hexdigest()[:16]


def _read_shard_batch(batch: dict[str, np.ndarray], columns: Columns) -> dict[str, np.ndarray]:
    """One shard's rows as a batch (``batch`` holds the shard's description)."""
    shard = Shard(str(batch["path"][0]), int(batch["number"][0]), int(batch["rows"][0]), int(batch["offset"][0]))
    ids, rows = shard.read(columns)
    return {columns.id_name: ids, columns.embedding_name: rows}


def _read_table_batch(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from .._optional import require

    table = require("pyarrow.parquet", "reading parquet shards").read_table(str(batch["path"][0]))
    return table_columns(table)


def table_columns(table: Any) -> dict[str, np.ndarray]:
    """An arrow table's columns as numpy arrays; list columns (fixed or not, of one length) as 2-D arrays."""
    from .._optional import require

    pa = require("pyarrow", "reading parquet shards")
    out = {}
    for name in table.column_names:
        chunks = table.column(name).chunks
        parts = []
        for column in chunks:
            if isinstance(column.type, pa.ExtensionType) and hasattr(column, "to_numpy_ndarray"):
                parts.append(column.to_numpy_ndarray())
            elif pa.types.is_fixed_size_list(column.type) or pa.types.is_list(column.type):
                parts.append(_list_column(column, None, name, dtype=None))
            else:
                parts.append(column.to_numpy(zero_copy_only=False))
        out[name] = np.concatenate(parts) if parts else np.empty(0)
    return out


def read_tables(paths: list[str]) -> Any:
    """A Dataset of parquet files' rows, one reading task per file (a job's output, read back)."""
    ray = ray_module()
    # Absolute: the reading tasks run in their workers' folders, not the driver's.
    return ray.data.from_items([{"path": os.path.abspath(p)} for p in paths]).map_batches(
        _read_table_batch, batch_size=1, batch_format="numpy", num_cpus=READ_CPUS
    )


def as_dataset(source: Any, columns: Columns = Columns(), width: int | None = None) -> Any:
    """A Ray Dataset of ``(id, embedding)`` rows: ``source`` itself, or its shard files read one task each."""
    if is_dataset(source):
        return source
    ray = ray_module()
    shards = find_shards(source, columns, width)
    items = [{"path": s.path, "number": s.number, "rows": s.rows, "offset": s.offset} for s in shards]
    return ray.data.from_items(items).map_batches(
        _read_shard_batch, fn_kwargs={"columns": columns}, batch_size=1, batch_format="numpy", num_cpus=READ_CPUS
    )


def batch_rows(batch: dict[str, Any], columns: Columns, width: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``(ids, float32 rows)`` of a Ray Data batch, checked like any input (a clear error names the column)."""
    for name in (columns.id_name, columns.embedding_name):
        if name not in batch:
            raise InputError(
                f"dataset has no column {name!r} (columns: {sorted(batch)}); name it with "
                "id_column= / embedding_column="
            )
    embedding = batch[columns.embedding_name]
    if isinstance(embedding, np.ndarray) and embedding.dtype == object:
        embedding = np.stack([np.asarray(row, dtype=np.float32) for row in embedding]) if len(embedding) else embedding
    rows = check_array(embedding, f"column {columns.embedding_name!r}", width=width, allow_empty=True)
    return np.asarray(batch[columns.id_name]), rows
