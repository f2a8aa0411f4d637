"""Sampling a collection's neighbour structure: each sampled point's nearest neighbours within the sample."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._check import check_array, check_positive_int, normalize_rows
from .kernel import _self_topk_arrays
from .errors import InputError

__all__ = ["SampledMatrix", "sample_neighbors"]


@dataclass(frozen=True)
class SampledMatrix:
    """A sparse (n, n) similarity matrix over sampled points, with their ids and float32 vectors.

    Row i holds point i's ``limit`` most similar sampled points (itself excluded) and their similarities.
    """

    matrix: sp.csr_matrix
    ids: list
    vectors: np.ndarray

    def save(self, path) -> None:
        """Write to a ``.npz`` (CSR parts, ids as strings, vectors)."""
        m = self.matrix
        np.savez(
            path,
            data=m.data,
            indices=m.indices,
            indptr=m.indptr,
            shape=np.array(m.shape),
            ids=np.asarray([str(i) for i in self.ids]),
            vectors=self.vectors,
        )

    @classmethod
    def load(cls, path) -> SampledMatrix:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InputError(
                f"{path} is not a sampled similarity matrix (expected the .npz of `nnlift blocks prepare`)"
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
    progress: bool = True,
) -> SampledMatrix:
    """Sample ``sample`` rows and keep each one's ``limit`` nearest sampled rows (exact, symmetric self-join).

    Examples
    --------
    >>> import numpy as np
    >>> sampled = sample_neighbors(np.random.default_rng(0).normal(size=(50, 4)), sample=20, limit=3)
    >>> sampled.matrix.shape, int(sampled.matrix.getnnz(axis=1).max())
    ((20, 20), 3)
    """
    array = check_array(vectors, "vectors")
    n = array.shape[0]
    if n < 2:
        raise InputError(f"sampling needs at least 2 vectors; got {n}")
    sample = check_positive_int(sample, "sample")
    limit = check_positive_int(limit, "limit")
    ids = list(range(n)) if ids is None else list(ids)
    if len(ids) != n:
        raise InputError(f"ids has {len(ids)} entries for {n} vectors")
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    chosen = np.ascontiguousarray(array[rows])
    unit = normalize_rows(chosen, "vectors") if metric == "cosine" else chosen
    found = _self_topk_arrays(unit, min(limit, len(rows) - 1), exclude_self=True, progress=progress)
    return SampledMatrix(found.to_csr(n_columns=len(rows)), [ids[r] for r in rows], chosen)
