"""Database-side augmentation (DBA) and alpha query expansion (αQE)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._base import Estimator
from .._check import check_array, check_finite_scalar, check_k, check_positive_int, normalize_rows
from ..errors import InputTypeError
from ..neighbors import Neighbors
from .graph import neighbor_graph, unit_rows
from .weights import blend_rows

__all__ = ["DatabaseAugmentation", "alpha_query_expansion"]


class DatabaseAugmentation(Estimator):
    """DBA: ``x'_i = normalize(Σ_{j ∈ top-n(i) ∪ {i}} max(s_ij, 0)^alpha · x_j)``.

    Negative similarities get weight 0 (an odd power would otherwise push a
    row away from its dissimilar neighbours). With ``approximate=True`` the
    neighbours come from the IVF index and their recall, measured on
    ``check_sample`` rows, is kept in ``recall_`` (None on the exact path).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> out = DatabaseAugmentation(n=3, alpha=3).fit_transform(rng.normal(size=(20, 4)))
    >>> out.shape
    (20, 4)
    """

    _artifact_arrays = ("augmented_",)

    def __init__(
        self,
        n: int = 10,
        alpha: float = 3.0,
        approximate: bool = False,
        check_sample: int = 1000,
        working_memory=None,
        progress: bool = True,
    ) -> None:
        self.n = n
        self.alpha = alpha
        self.approximate = approximate
        self.check_sample = check_sample
        self.working_memory = working_memory
        self.progress = progress

    def fit(self, database: Any, y: Any = None) -> DatabaseAugmentation:
        self.fit_transform(database)
        return self

    def fit_transform(self, database: Any, y: Any = None) -> np.ndarray:
        unit = unit_rows(database, "database")
        n = check_k(self.n, unit.shape[0] - 1, name="n", what="other database rows") if unit.shape[0] > 1 else 0
        alpha = check_finite_scalar(self.alpha, "alpha", low=0.0)
        found, recall = neighbor_graph(
            unit,
            n + 1,
            None,
            approximate=self.approximate,
            check_sample=check_positive_int(self.check_sample, "check_sample"),
            working_memory=self.working_memory,
            progress=self.progress,
        )
        self.recall_ = None if recall is None else recall.value
        weights = np.where(found.ids >= 0, np.maximum(found.scores, 0.0) ** alpha, 0.0)
        graph = Neighbors(found.ids, weights).to_csr(n_columns=unit.shape[0])
        self.graph_ = graph
        self.augmented_ = blend_rows(unit, graph)
        return self.augmented_

    def _restore_extra(self, extra, arrays) -> None:
        self.recall_ = extra.get("recall")

    def _artifact_extra(self) -> dict:
        return {"recall": getattr(self, "recall_", None)}


def alpha_query_expansion(queries: Any, index: Any, n: int = 10, alpha: float = 3.0) -> np.ndarray:
    """αQE: ``q' = normalize(q + Σ_{j ∈ top-n(q)} max(s_qj, 0)^alpha · x_j)`` over any nnlift index.

    Parameters
    ----------
    queries : array-like of shape (n_queries, d)
    index : Index
        An nnlift index (or a fitted ``DatabaseAugmentation``'s vectors in an
        ``ExactIndex``); its stored vectors are the ``x_j``.
    n : int
        Neighbours mixed into each query.
    alpha : float
        Power of the similarity weights.

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import ExactIndex
    >>> index = ExactIndex().add(np.eye(3))
    >>> alpha_query_expansion([[1.0, 0.1, 0.0]], index, n=1).astype(float).round(3).tolist()
    [[0.999, 0.05, 0.0]]
    """
    from ..index.base import BaseIndex

    if not isinstance(index, BaseIndex):
        raise InputTypeError(f"index must be an nnlift index (ExactIndex, FaissIndex, ...); got {type(index).__name__}")
    unit = normalize_rows(check_array(queries, "queries", width=index.dim), "queries")
    n = check_positive_int(n, "n")
    alpha = check_finite_scalar(alpha, "alpha", low=0.0)
    found = index.search(unit, n)
    positions = found.ids if found.keys is None and index._external is None else None
    if positions is None:  # map external ids back to stored rows
        flat = found.keys if found.keys is not None else found.ids
        valid = found.ids >= 0
        positions = np.full(found.ids.shape, -1, dtype=np.int64)
        positions[valid] = index.positions(np.asarray(flat)[valid].tolist())
    valid = positions >= 0
    weights = np.where(valid, np.maximum(found.scores, 0.0) ** alpha, 0.0).astype(np.float32)
    vectors = index._get(np.where(valid, positions, 0).ravel()).reshape(*positions.shape, -1)
    expanded = unit + np.einsum("qk,qkd->qd", weights, vectors)
    return normalize_rows(np.ascontiguousarray(expanded, dtype=np.float32), "expanded queries")
