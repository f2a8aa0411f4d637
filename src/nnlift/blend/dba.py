"""Database-side augmentation (DBA) and alpha query expansion (αQE)."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._artifact import ArtifactError
from .._base import Estimator
from .._check import check_array, check_finite_scalar, check_k, check_positive_int, normalize_rows
from ..errors import InputTypeError
from ..index.base import BaseIndex, Index
from ..neighbors import Neighbors
from .graph import neighbor_graph, unit_rows
from .weights import blend_rows

__all__ = ["DatabaseAugmentation", "alpha_query_expansion"]


class DatabaseAugmentation(Estimator):
    """DBA: ``x'_i = normalize(Σ_{j ∈ top-n(i) ∪ {i}} max(s_ij, 0)^alpha · x_j)``.

    Negative similarities get weight 0 (an odd power would otherwise push a
    row away from its dissimilar neighbours). The neighbours come from the
    self-join of a clone of ``index`` (default ``ExactIndex()``); what a
    ``Checked`` index measured is kept in ``checks_``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> out = DatabaseAugmentation(n=3, alpha=3).fit_transform(rng.normal(size=(20, 4)))
    >>> out.shape
    (20, 4)
    """

    _artifact_arrays = ("augmented_",)

    def __init__(self, n: int = 10, alpha: float = 3.0, index: BaseIndex | None = None, progress: bool = True) -> None:
        self.n = n
        self.alpha = alpha
        self.index = index
        self.progress = progress

    def fit(self, database: Any, y: Any = None) -> DatabaseAugmentation:
        self.fit_transform(database)
        return self

    def fit_transform(self, database: Any, y: Any = None) -> np.ndarray:
        unit = unit_rows(database, "database")
        n = check_k(self.n, unit.shape[0] - 1, name="n", what="other database rows") if unit.shape[0] > 1 else 0
        alpha = check_finite_scalar(self.alpha, "alpha", low=0.0)
        found, built = neighbor_graph(unit, n + 1, None, index=self.index, progress=self.progress)
        self.checks_ = list(getattr(built, "checks_", []))
        weights = np.where(found.ids >= 0, np.maximum(found.scores, 0.0) ** alpha, 0.0)
        graph = Neighbors(found.ids, weights).to_csr(n_columns=unit.shape[0])
        self.graph_ = graph
        self.augmented_ = blend_rows(unit, graph)
        return self.augmented_

    def _restore_extra(self, extra, arrays) -> None:
        checks = extra.get("checks", [])
        if not isinstance(checks, list) or not all(isinstance(c, dict) for c in checks):
            raise ArtifactError("DatabaseAugmentation artifact: extra.checks must be a list of records")
        self.checks_ = checks

    def _artifact_extra(self) -> dict:
        return {"checks": getattr(self, "checks_", [])}


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
    if not isinstance(index, Index):
        raise InputTypeError(f"index must be an nnlift index (ExactIndex, FaissIndex, ...); got {type(index).__name__}")
    unit = normalize_rows(check_array(queries, "queries", width=index.dim), "queries")
    n = check_positive_int(n, "n")
    alpha = check_finite_scalar(alpha, "alpha", low=0.0)
    found = index.search(unit, n)
    valid = found.ids >= 0
    labels = found.keys if found.keys is not None else found.ids  # the index's own ids, as get takes them
    weights = np.where(valid, np.maximum(found.scores, 0.0) ** alpha, 0.0).astype(np.float32)
    vectors = np.zeros((*found.ids.shape, unit.shape[1]), dtype=np.float32)
    if valid.any():
        vectors[valid] = index.get(np.asarray(labels)[valid].tolist())
    expanded = unit + np.einsum("qk,qkd->qd", weights, vectors)
    return normalize_rows(np.ascontiguousarray(expanded, dtype=np.float32), "expanded queries")
