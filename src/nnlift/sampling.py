"""Sampling a collection's neighbour structure: each sampled point's nearest neighbours within the sample."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._artifact import ArtifactError, Contents, load_artifact, require_arrays
from ._artifact import save as save_object
from ._check import check_array, check_positive_int, normalize_rows
from .index.base import BaseIndex, build_index, quiet
from .index.exact import ExactIndex
from .errors import InputError

__all__ = ["SampledMatrix", "sample_neighbors", "split_neighbors"]


@dataclass(frozen=True)
class SampledMatrix:
    """A sparse (n, n) similarity matrix over sampled points, with their ids and float32 vectors.

    Row i holds point i's ``limit`` most similar sampled points (itself excluded) and their similarities.
    """

    matrix: sp.csr_matrix
    ids: list
    vectors: np.ndarray

    _saved_params = ()  # all of it is data: arrays, not parameters

    def _artifact(self) -> Contents:
        m = self.matrix.tocsr()
        ids = np.asarray(self.ids)
        if ids.dtype.kind not in "iu":  # strings (or a mix, kept as their text)
            ids = np.asarray([str(i) for i in self.ids])
        arrays = {
            "data": m.data.astype(np.float32),
            "indices": m.indices.astype(np.int64),
            "indptr": m.indptr.astype(np.int64),
            "ids": ids,
            "vectors": np.ascontiguousarray(self.vectors, dtype=np.float32),
        }
        return Contents({}, arrays, {"n": int(m.shape[0])})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save as an nnlift artifact folder (atomic; an existing artifact is replaced only with ``overwrite``)."""
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict, parts: dict) -> SampledMatrix:
        require_arrays(arrays, ("data", "indices", "indptr", "ids", "vectors"), owner="SampledMatrix")
        n = manifest["extra"].get("n")
        data, indices, indptr = arrays["data"], arrays["indices"], arrays["indptr"]
        if (
            isinstance(n, bool)
            or not isinstance(n, int)
            or indptr.shape != (n + 1,)
            or arrays["ids"].shape != (n,)
            or arrays["vectors"].ndim != 2
            or len(arrays["vectors"]) != n
            or data.shape != indices.shape
            or indptr[0] != 0
            or indptr[-1] != len(data)
            or (np.diff(indptr) < 0).any()
            or (indices.size and (indices.min() < 0 or indices.max() >= n))
            or not np.isfinite(data).all()
        ):
            raise ArtifactError("SampledMatrix artifact: its CSR parts, ids and vectors do not fit together")
        matrix = sp.csr_matrix((data, indices, indptr), shape=(n, n))
        return cls(matrix, arrays["ids"].tolist(), arrays["vectors"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> SampledMatrix:
        """Load a saved sample: an artifact folder (or the ``.npz`` of nnlift 0.1)."""
        path = Path(path)
        if path.is_dir() or not path.exists():
            return load_artifact(path, expected_class=cls)
        try:
            data = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise InputError(f"{path} is not a sampled similarity matrix ({exc})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(
                f"{path} is not a sampled similarity matrix (expected the folder written by `nnlift blocks prepare`)"
            )
        with data:
            missing = {"data", "indices", "indptr", "shape", "ids", "vectors"} - set(data.files)
            if missing:
                raise InputError(f"{path} is not a sampled similarity matrix (missing {sorted(missing)})")
            matrix = sp.csr_matrix((data["data"], data["indices"], data["indptr"]), shape=tuple(data["shape"]))
            return cls(matrix, data["ids"].tolist(), data["vectors"])


def sample_neighbors(
    vectors: Any,
    ids: Any = None,
    *,
    sample: int = 20_000,
    limit: int = 100,
    seed: int = 0,
    metric: str = "cosine",
    index: BaseIndex | None = None,
    progress: bool = True,
) -> SampledMatrix:
    """Sample ``sample`` rows and keep each one's ``limit`` nearest sampled rows.

    The neighbours come from the self-join of a clone of ``index`` over the
    sampled rows: by default ``ExactIndex()``, the exact symmetric self-join.

    Examples
    --------
    >>> import numpy as np
    >>> sampled = sample_neighbors(np.random.default_rng(0).normal(size=(50, 4)), sample=20, limit=3)
    >>> sampled.matrix.shape, int(sampled.matrix.getnnz(axis=1).max())
    ((20, 20), 3)
    """
    array, ids = _checked(vectors, ids)
    sample = check_positive_int(sample, "sample")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(array), size=min(sample, len(array)), replace=False))
    return _within(array, ids, rows, limit, metric, index, progress)


def split_neighbors(
    vectors: Any,
    ids: Any = None,
    *,
    sample: int = 20_000,
    validation: int = 2_000,
    limit: int = 100,
    seed: int = 0,
    metric: str = "cosine",
    index: BaseIndex | None = None,
    progress: bool = True,
) -> tuple[SampledMatrix, SampledMatrix]:
    """Two disjoint samples, for training and for validation, each with its rows' neighbours within itself.

    No row of one is in the other, so the validation loss measures what
    training did not see. When the collection has fewer than
    ``sample + validation`` rows, the validation sample keeps its size and
    training gets the rest.

    Examples
    --------
    >>> import numpy as np
    >>> train, val = split_neighbors(np.random.default_rng(0).normal(size=(60, 4)), sample=40, validation=10, limit=3)
    >>> train.matrix.shape, val.matrix.shape, set(train.ids) & set(val.ids)
    ((40, 40), (10, 10), set())
    """
    array, ids = _checked(vectors, ids)
    sample = check_positive_int(sample, "sample")
    validation = check_positive_int(validation, "validation")
    if len(array) < validation + 3:
        raise InputError(f"validation={validation} leaves fewer than 3 of the {len(array)} rows for training")
    rng = np.random.default_rng(seed)
    drawn = rng.choice(len(array), size=min(sample + validation, len(array)), replace=False)
    held, kept = np.sort(drawn[:validation]), np.sort(drawn[validation:])
    return (
        _within(array, ids, kept, limit, metric, index, progress),
        _within(array, ids, held, limit, metric, index, progress),
    )


def _checked(vectors: Any, ids: Any) -> tuple[np.ndarray, list]:
    array = check_array(vectors, "vectors")
    n = array.shape[0]
    if n < 2:
        raise InputError(f"sampling needs at least 2 vectors; got {n}")
    ids = list(range(n)) if ids is None else list(ids)
    if len(ids) != n:
        raise InputError(f"ids has {len(ids)} entries for {n} vectors")
    return array, ids


def _within(
    array: np.ndarray, ids: list, rows: np.ndarray, limit: int, metric: str, index: BaseIndex | None, progress: bool
) -> SampledMatrix:
    """The sampled ``rows`` and each one's ``limit`` nearest among them (itself excluded)."""
    limit = check_positive_int(limit, "limit")
    chosen = np.ascontiguousarray(array[rows])
    unit = normalize_rows(chosen, "vectors") if metric == "cosine" else chosen
    built = build_index(ExactIndex() if index is None else index, unit)
    with quiet(built, progress):
        found = built.self_join(min(limit, len(rows) - 1))
    return SampledMatrix(found.to_csr(n_columns=len(rows)), [ids[r] for r in rows], chosen)
