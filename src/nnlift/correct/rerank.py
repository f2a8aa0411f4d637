"""Bank-free hubness reduction by re-ranking a candidate list: local scaling, NICDM, mutual proximity.

Distances are Euclidean between (normalised) vectors, ``d = sqrt(max(0, 2 − 2·s))``
for cosine. Each item's neighbourhood statistics come from its k nearest
database neighbours (itself excluded); a query's from its k nearest items.
"""

from __future__ import annotations


import numpy as np
from scipy.special import ndtr

from .._check import check_k, check_positive_int
from ..index.base import BaseIndex
from ..neighbors import Neighbors, sort_neighbors
from .base import Correction
from ..errors import InputError

__all__ = ["LocalScaling", "MutualProximity"]


def _distance(similarity: np.ndarray) -> np.ndarray:
    """Euclidean distance between unit vectors from their cosine similarity."""
    return np.sqrt(np.maximum(0.0, 2.0 - 2.0 * similarity.astype(np.float64)))


class _Reranker(Correction):
    """Shared machinery: k-NN distance statistics of items and queries, then a re-scored candidate list."""

    needs_bank = False
    _artifact_arrays = ("database_", "bias_", "spread_")

    def _neighbor_distances(self, vectors: np.ndarray | None) -> np.ndarray:
        """Distances to the k nearest database rows: of ``vectors``, or of every database row (None) but itself."""
        index = self._database_index()
        if vectors is None:
            found = self._reduce("database", index, "self_join", self.k)
        else:
            found = self._reduce("database", index, "search_arrays", vectors, self.k)
        return _distance(found.scores)

    def _fit(self, database, bank, progress: bool = True) -> None:
        if self.metric != "cosine":
            # Neighbours by raw inner product are not the nearest by distance,
            # so the neighbourhood statistics would be meaningless.
            raise InputError(f"{type(self).__name__} supports metric='cosine' only; got {self.metric!r}")
        k = check_positive_int(self.k, f"{type(self).__name__}.k")
        check_k(k, database.shape[0] - 1, name=f"{type(self).__name__}.k", what="other database rows")
        distances = self._neighbor_distances(None)
        self.bias_, self.spread_ = self._statistics(distances)

    def _search_arrays(self, queries: np.ndarray, k: int, *, progress: bool = True) -> Neighbors:
        width = min(self.database_.shape[0], max(k, check_positive_int(self.candidates, "candidates")))
        found = self._reduce("database", self._database_index(), "search_arrays", queries, width, progress=progress)
        scores = self._score_arrays(queries, found.ids, found.scores)
        ranked = sort_neighbors(found.ids, scores)
        return Neighbors(ranked.ids[:, :k], ranked.scores[:, :k])

    def _score_arrays(self, queries, ids, raw):
        query_stats = self._statistics(self._neighbor_distances(queries))
        return self._similarity(_distance(raw), query_stats, ids).astype(np.float32)


class LocalScaling(_Reranker):
    """Local scaling (``1 − exp(−d²/(σ_x σ_y))`` as a distance) or NICDM (``d/√(μ_x μ_y)``).

    Scores returned are similarities (higher is better): ``exp(−d²/(σ_x σ_q))``
    for local scaling, ``−d/√(μ_x μ_q)`` for NICDM.

    Parameters
    ----------
    k : int
        Neighbourhood size: σ is the distance to the k-th neighbour, μ the mean distance to the k neighbours.
    variant : {"ls", "nicdm"}
    candidates : int
        Raw top candidates re-ranked per query.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = LocalScaling(k=3).fit(rng.normal(size=(40, 4)))
    >>> model.search(rng.normal(size=(2, 4)), k=5).ids.shape
    (2, 5)
    """

    def __init__(
        self,
        k: int = 10,
        variant: str = "ls",
        candidates: int = 100,
        metric: str = "cosine",
        index: BaseIndex | None = None,
    ) -> None:
        self.k = k
        self.variant = variant
        self.candidates = candidates
        self.metric = metric
        self.index = index

    def _statistics(self, distances: np.ndarray):
        if self.variant not in ("ls", "nicdm"):
            raise InputError(f"variant must be 'ls' or 'nicdm'; got {self.variant!r}")
        scale = distances[:, -1] if self.variant == "ls" else distances.mean(axis=1)
        return np.maximum(scale, 1e-12).astype(np.float32), np.zeros_like(scale, dtype=np.float32)

    def _similarity(self, distance, query_stats, ids):
        query_scale = query_stats[0][:, None].astype(np.float64)
        item_scale = self.bias_[ids].astype(np.float64)
        if self.variant == "ls":
            return np.exp(-(distance**2) / (query_scale * item_scale))
        return -distance / np.sqrt(query_scale * item_scale)


class MutualProximity(_Reranker):
    """Mutual proximity: the probability that ``x`` and ``q`` are each other's close neighbours.

    - ``method="normal"`` (Gaussian MP): similarity ``SF(d; μ_x, σ_x) · SF(d; μ_q, σ_q)``, with μ and σ the mean
      and standard deviation of each point's distances to its k nearest database neighbours.
    - ``method="empiric"`` (empirical MP, Schnitzer et al. 2012): the share of database items ``j`` farther
      from both, ``|{j : d(q, j) > d(q, x) and d(x, j) > d(q, x)}| / n``, counted over the whole database
      (in float64). Exact, no distribution assumed, and O(n·d) per candidate: for collections up to some
      ten thousand items, as in scikit-hubness.

    The MP distance is ``1 − `` the similarity.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> model = MutualProximity(k=5).fit(rng.normal(size=(40, 4)))
    >>> model.search(rng.normal(size=(1, 4)), k=3).ids.shape
    (1, 3)
    """

    def __init__(
        self,
        k: int = 10,
        candidates: int = 100,
        metric: str = "cosine",
        index: BaseIndex | None = None,
        method: str = "normal",
    ) -> None:
        self.k = k
        self.candidates = candidates
        self.metric = metric
        self.index = index
        self.method = method

    def _fit(self, database, bank, progress: bool = True) -> None:
        if self.method not in ("normal", "empiric"):
            raise InputError(f"method must be 'normal' or 'empiric'; got {self.method!r}")
        super()._fit(database, bank, progress=progress)

    def _score_arrays(self, queries, ids, raw):
        if self.method == "normal":
            return super()._score_arrays(queries, ids, raw)
        return _empirical_mp(queries, self.database_, ids).astype(np.float32)

    def _statistics(self, distances: np.ndarray):
        return distances.mean(axis=1).astype(np.float32), np.maximum(distances.std(axis=1), 1e-6).astype(np.float32)

    def _similarity(self, distance, query_stats, ids):
        query_mean, query_std = (s[:, None].astype(np.float64) for s in query_stats)
        item_mean, item_std = self.bias_[ids].astype(np.float64), self.spread_[ids].astype(np.float64)
        survival_item = 1.0 - ndtr((distance - item_mean) / item_std)
        survival_query = 1.0 - ndtr((distance - query_mean) / query_std)
        return survival_item * survival_query


def _empirical_mp(queries: np.ndarray, database: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per (query, candidate) pair, the share of database rows farther from both than they are from each other.

    One query at a time and in float64, so a pair's value never depends on the batch it came in.
    """
    rows = database.astype(np.float64)
    values = np.zeros(ids.shape, dtype=np.float64)
    for row, query in enumerate(queries.astype(np.float64)):
        candidates = ids[row]
        valid = candidates >= 0
        from_query = _distance(rows @ query)  # (n,)
        between = from_query[candidates[valid]]  # d(q, x) per candidate
        from_candidates = _distance(rows[candidates[valid]] @ rows.T)  # (m, n)
        farther = (from_query[None, :] > between[:, None]) & (from_candidates > between[:, None])
        values[row, valid] = farther.sum(axis=1) / len(rows)
    return values
