"""Sparse pre-fetch: candidates by the sparse dot product of block vectors, then rescored on the dense vectors.

The collection's block embeddings, thresholded, form a sparse matrix ``S``
(at most ``1/threshold − 1`` entries per block); a query's block vector ``b``
ranks every item by ``S·b``, cheaply, and the ``candidates`` best are scored
exactly on the dense vectors. :meth:`SparsePrefetch.recall_curve` measures
what a candidate budget costs in recall@k against exact dense search. On
Qdrant the same two steps are one query (:func:`qdrant_prefetch_search`):
the sparse vector as ``prefetch``, rescored on the dense vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .._check import check_array, check_finite_scalar, check_positive_int, normalize_rows
from ..errors import InputError
from ..kernel.keys import decode_keys
from ..kernel.selection import tile_topk_keys
from ..neighbors import Neighbors, sort_neighbors
from .confidence import sparse_matrix

__all__ = ["SparsePrefetch", "qdrant_prefetch_search"]


class SparsePrefetch:
    """Search a collection through its block embeddings: sparse candidates, then exact dense rescoring.

    Parameters
    ----------
    encoder : BlocksEncoder
    threshold : float
        Entries of the collection's block vectors kept (``> threshold``); 0.1 is the seed's, and smaller keeps
        more (measured in ``benchmarks/blocks.py``).
    candidates : int
        Items rescored per query.
    metric : {"cosine", "ip"}
        How the dense vectors are scored.

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift.blocks import BlocksEncoder
    >>> vectors = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    >>> prefetch = SparsePrefetch(BlocksEncoder(8, 2, 4), candidates=200).fit(vectors)
    >>> found = prefetch.search(vectors[:3], k=5)   # every item a candidate: exact search
    >>> found.ids[:, 0].tolist()
    [0, 1, 2]
    """

    def __init__(self, encoder: Any, threshold: float = 0.1, candidates: int = 1000, metric: str = "cosine") -> None:
        if not hasattr(encoder, "encode") or not hasattr(encoder, "num_blocks"):
            raise InputError(f"encoder must be a trained BlocksEncoder; got {type(encoder).__name__}")
        if metric not in ("cosine", "ip"):
            raise InputError(f"metric must be 'cosine' or 'ip'; got {metric!r}")
        self.encoder = encoder
        self.threshold = check_finite_scalar(threshold, "threshold", low=0.0, high=1.0)
        self.candidates = check_positive_int(candidates, "candidates")
        self.metric = metric

    def _dense(self, vectors: Any, name: str) -> np.ndarray:
        array = check_array(vectors, name, width=self.encoder.input_dim)
        return normalize_rows(array, name) if self.metric == "cosine" else array

    def fit(self, vectors: Any, ids: Any = None) -> SparsePrefetch:
        """Encode the collection; ``ids`` label the results (positions when omitted)."""
        self.vectors_ = self._dense(vectors, "vectors")
        if ids is not None and len(ids) != len(self.vectors_):
            raise InputError(f"ids has {len(ids)} entries for {len(self.vectors_)} vectors")
        self.ids_ = None if ids is None else np.asarray(list(ids), dtype=object)
        self.sparse_ = sparse_matrix(self.encoder.encode(self.vectors_), self.threshold).tocsr().astype(np.float32)
        return self

    def candidates_for(self, queries: Any, budget: int | None = None, blocks: Any = None) -> np.ndarray:
        """Per query, the positions of its ``budget`` best items by sparse dot product (best first, ties to lower).

        ``blocks`` replaces the queries' own block vectors (for example :func:`steer`'s).
        """
        if not hasattr(self, "sparse_"):
            raise InputError("this SparsePrefetch is not fitted; call fit(vectors) first")
        dense = self._dense(queries, "queries")
        budget = min(check_positive_int(budget or self.candidates, "budget"), len(self.vectors_))
        width = self.encoder.num_blocks * self.encoder.block_size
        blocks = self.encoder.encode(dense) if blocks is None else check_array(blocks, "blocks", width=width)
        if len(blocks) != len(dense):
            raise InputError(f"blocks has {len(blocks)} rows for {len(dense)} queries")
        out = np.empty((len(dense), budget), dtype=np.int64)
        for lo in range(0, len(dense), 256):  # a (256, n) score block at a time
            scores = np.asarray((self.sparse_ @ blocks[lo : lo + 256].T).T, dtype=np.float32)
            out[lo : lo + 256] = decode_keys(tile_topk_keys(scores, budget, 0))[1]  # the kernel's exact top-k
        return out

    def search(self, queries: Any, k: int = 10, candidates: int | None = None, blocks: Any = None) -> Neighbors:
        """The top ``k`` of each query's candidates by exact dense score (ties to the lower position).

        ``blocks`` (optional) chooses the candidates in place of the queries' own block vectors.
        """
        k = check_positive_int(k, "k")
        dense = self._dense(queries, "queries")
        return self._rescored(dense, self.candidates_for(dense, candidates, blocks), k)

    def _rescored(self, dense: np.ndarray, chosen: np.ndarray, k: int) -> Neighbors:
        """The top ``k`` of the ``chosen`` positions of each row by exact dense score, padded to ``k``."""
        scores = np.einsum("qd,qcd->qc", dense.astype(np.float64), self.vectors_[chosen].astype(np.float64))
        found = sort_neighbors(chosen, scores.astype(np.float32))
        ids, scores = found.ids[:, :k], found.scores[:, :k]
        if ids.shape[1] < k:  # fewer candidates than k: pad as every Neighbors does
            pad = k - ids.shape[1]
            ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
            scores = np.pad(scores, ((0, 0), (0, pad)), constant_values=-np.inf)
        keys = None if self.ids_ is None else np.where(ids >= 0, self.ids_[np.maximum(ids, 0)], None)
        return Neighbors(ids, scores, keys)

    def recall_curve(self, queries: Any, budgets: Sequence[int], k: int = 10) -> dict[int, float]:
        """recall@k of the rescored list against exact dense search, for each candidate budget."""
        dense = self._dense(queries, "queries")
        k = check_positive_int(k, "k")
        from ..kernel import topk

        truth = topk(dense, self.vectors_, min(k, len(self.vectors_)), metric="ip").ids
        budgets = [check_positive_int(int(b), "budgets") for b in budgets]
        # The best `budget` candidates are a prefix of the best `max(budgets)`: one sparse pass serves every budget.
        widest = self.candidates_for(dense, max(budgets))
        curve = {}
        for budget in budgets:
            found = self._rescored(dense, widest[:, :budget], k).ids
            curve[budget] = float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)]))
        return curve


def qdrant_prefetch_search(
    index: Any, encoder: Any, queries: Any, k: int = 10, *, candidates: int = 1000, name: str = "blocks"
) -> Neighbors:
    """:class:`SparsePrefetch` on Qdrant: the query's block vector as a sparse ``prefetch``, rescored on the dense one.

    ``index`` is the collection's :class:`~nnlift.QdrantIndex`, and its block
    vectors were written by ``write_sparse(..., name=name)`` (``nnlift blocks
    convert --collection``). Where the sparse vector lives in the collection
    itself this is one query per row; where it went to the companion
    collection ``<collection>_<name>``, it is two: the sparse candidates there,
    then the dense rescoring here, restricted to those ids. ``keys`` hold the
    points' ids (the strings nnlift wrote, for string ids), ``ids`` their insertion order.
    """
    from .._optional import require
    from ..index.qdrant import KEY, SEQ, with_retries

    models = require("qdrant_client.models", "the Qdrant integration")
    k = check_positive_int(k, "k")
    candidates = check_positive_int(candidates, "candidates")
    dense = check_array(queries, "queries", width=encoder.input_dim)
    blocks = encoder.encode(normalize_rows(dense, "queries"))
    client = index.client
    params = client.get_collection(index.collection).config.params
    inside = name in (params.sparse_vectors or {})
    companion = f"{index.collection}_{name}"
    if not inside and not client.collection_exists(companion):
        raise InputError(
            f"collection {index.collection!r} has no sparse vector {name!r} (nor a companion {companion!r}); "
            "write one with write_sparse or `nnlift blocks convert --collection`"
        )
    keys = np.full((len(dense), k), None, dtype=object)
    ids = np.full((len(dense), k), -1, dtype=np.int64)
    scores = np.full((len(dense), k), -np.inf, dtype=np.float32)
    for row, (query, block) in enumerate(zip(dense, blocks)):
        where = np.flatnonzero(block > 0)
        sparse = models.SparseVector(indices=where.tolist(), values=block[where].astype(float).tolist())
        if inside:
            call = lambda: client.query_points(
                index.collection,
                prefetch=models.Prefetch(query=sparse, using=name, limit=candidates),
                query=query.tolist(),
                using=index.using,
                limit=k,
                with_payload=[KEY, SEQ],
            )
        else:
            found = with_retries(
                lambda: client.query_points(companion, query=sparse, using=name, limit=candidates),
                retries=index.retries,
            )
            allowed = [point.id for point in found.points]
            call = lambda: client.query_points(
                index.collection,
                query=query.tolist(),
                using=index.using,
                limit=k,
                with_payload=[KEY, SEQ],
                query_filter=models.Filter(must=[models.HasIdCondition(has_id=allowed)]),
            )
        for col, point in enumerate(with_retries(call, retries=index.retries).points):
            payload = point.payload or {}
            keys[row, col] = payload.get(KEY, point.id)
            ids[row, col] = payload.get(SEQ, point.id if isinstance(point.id, int) else -1)  # insertion order
            scores[row, col] = point.score
    return Neighbors(ids, scores, keys)
