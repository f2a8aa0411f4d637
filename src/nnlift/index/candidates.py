"""The candidate route: any index's raw top-k' search, turned into the reductions methods need.

A backend that cannot add a bias, leave out a row or sum over everything in
its own search (faiss, hnswlib, Qdrant) still answers each reduction: it finds
the top-k' rows by raw score, and the reduction runs on those candidates with
their exact scores. What that costs in accuracy depends on the data; wrap the
index in :class:`~nnlift.Checked` to have it measured.

========================  ===================================================
reduction                 candidate route
========================  ===================================================
top-k with a bias         top ``max(2k, k + 64)`` by raw score, re-ranked by ``s − bias``,
                          widened until no row left out can enter (exact over exact candidates)
top-k above a threshold   the top-k by raw score, those above the threshold
self-join                 each stored row's top ``k + 1``, itself left out
mean of the top-k         the top-k by raw score (exact when the search is)
log-sum-exp               the top ``LOGSUMEXP_CANDIDATES`` by raw score, widened (up to
                          ``LOGSUMEXP_WIDEST``) while the rows left out could add 1e-4 of the sum
========================  ===================================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..neighbors import Neighbors, sort_neighbors

if TYPE_CHECKING:
    from .base import BaseIndex

__all__ = [
    "rescored_topk",
    "self_join_by_search",
    "mean_of_topk",
    "logsumexp_of_candidates",
    "best_query_per_row",
    "bias_candidates",
]

# Raw-score candidates summed into a log-sum-exp. With β = 20 a row scoring
# 0.35 below the best adds e^-7 of its weight; the 256th of a bank is usually
# well past that.
LOGSUMEXP_CANDIDATES = 256
# Candidates a log-sum-exp row may widen to before its tail bound is given up on.
LOGSUMEXP_WIDEST = 8192
# Rows searched per call, so candidate buffers stay small.
_CHUNK = 4096


def bias_candidates(k: int, n: int) -> int:
    """Raw-score candidates re-ranked for a biased top-k: ``max(2k, k + 64)``, at most the index size."""
    return min(n, max(2 * k, k + 64))


def _raw(index: BaseIndex, queries: np.ndarray, width: int) -> Neighbors:
    """The backend's raw top-``width`` (positions), in chunks of queries."""
    parts = [index._search(queries[s : s + _CHUNK], width) for s in range(0, len(queries), _CHUNK)]
    if not parts:
        return Neighbors(np.empty((0, width), np.int64), np.empty((0, width), np.float32))
    ids = np.concatenate([p.ids for p in parts])
    scores = np.concatenate([p.scores for p in parts])
    return Neighbors(ids, np.where(ids >= 0, scores, -np.inf).astype(np.float32))


def _pad(found: Neighbors, k: int) -> Neighbors:
    ids, scores = found.ids[:, :k], found.scores[:, :k]
    if ids.shape[1] < k:
        extra = k - ids.shape[1]
        ids = np.pad(ids, ((0, 0), (0, extra)), constant_values=-1)
        scores = np.pad(scores, ((0, 0), (0, extra)), constant_values=-np.inf)
    return Neighbors(ids, scores)


def _widened(index: BaseIndex, queries: np.ndarray, found: Neighbors, cap: int, reduce, certified):
    """Reduce each row's raw candidates ``found``, widening (doubling) for the rows whose result is not yet certain.

    ``reduce(found)`` gives a result per row, ``certified(found, result)`` says
    per row whether a row outside ``found`` could still change it; rows stop at
    ``cap`` candidates (the whole index: then nothing lies outside).
    """
    width = found.ids.shape[1]
    result = reduce(found)
    pending = np.flatnonzero(~certified(found, result)) if width < cap else np.empty(0, np.int64)
    while len(pending) and width < cap:
        width = min(cap, 2 * width)
        wider = _raw(index, queries[pending], width)
        update = reduce(wider)
        for out, new in zip(result if isinstance(result, tuple) else (result,), update if isinstance(update, tuple) else (update,)):
            out[pending] = new
        pending = pending[~certified(wider, update)] if width < cap else pending[:0]
    return result


def rescored_topk(
    index: BaseIndex, queries: np.ndarray, k: int, *, bias: np.ndarray | None = None, threshold: float | None = None
) -> Neighbors:
    """Top-k of ``s − bias`` from raw candidates, widened until no row outside them can enter.

    A row outside the raw top-k' scores at most ``s_k'`` raw, so at most
    ``s_k' − min(bias)`` corrected: once a query's k-th corrected score beats
    that, its result is what an exact search over the backend's answers gives.
    """
    n = len(index)
    if bias is None:
        found = _raw(index, queries, min(k, n))
        scores = found.scores
        if threshold is not None:
            scores = np.where(scores > np.float32(threshold), scores, -np.inf).astype(np.float32)
        return _pad(sort_neighbors(found.ids, scores), k)
    lowest = float(bias.min())

    def reduce(found: Neighbors):
        scores = np.where(found.ids >= 0, found.scores - bias[np.maximum(found.ids, 0)], -np.inf).astype(np.float32)
        if threshold is not None:
            scores = np.where(scores > np.float32(threshold), scores, -np.inf).astype(np.float32)
        ranked = _pad(sort_neighbors(found.ids, scores), k)
        return ranked.ids.copy(), ranked.scores.copy()

    def certified(found: Neighbors, result) -> np.ndarray:
        outside = found.scores[:, -1].astype(np.float64) - lowest  # the best a row outside could score
        kth = result[1][:, -1].astype(np.float64)
        floor = -np.inf if threshold is None else threshold
        return (kth >= outside) | (outside <= floor) | (found.ids[:, -1] < 0)

    ids, scores = _widened(index, queries, _raw(index, queries, bias_candidates(k, n)), n, reduce, certified)
    return Neighbors(ids, scores)


def self_join_by_search(index: BaseIndex, k: int, *, threshold: float | None = None) -> Neighbors:
    vectors = index.stored_vectors()
    found = _raw(index, vectors, min(k + 1, len(index)))
    rows = np.arange(len(vectors))[:, None]
    scores = np.where(found.ids == rows, -np.inf, found.scores).astype(np.float32)
    if threshold is not None:
        scores = np.where(scores > np.float32(threshold), scores, -np.inf).astype(np.float32)
    return _pad(sort_neighbors(found.ids, scores), k)


def mean_of_topk(index: BaseIndex, queries: np.ndarray, k: int) -> np.ndarray:
    found = _raw(index, queries, min(k, len(index)))
    valid = found.ids >= 0
    total = np.where(valid, found.scores, 0.0).sum(axis=1, dtype=np.float64)
    return (total / np.maximum(valid.sum(axis=1), 1)).astype(np.float32)


def logsumexp_of_candidates(index: BaseIndex, queries: np.ndarray, beta: float, *, column_best: bool = False):
    """Log-sum-exp of the raw top candidates, widened while the rows left out could still add 1e-4 of it.

    The ``n − k'`` rows outside the candidates add at most ``(n − k')·exp(β·s_k')``;
    a row stops widening once that bound is below 1e-4 of its sum (an error
    under ``1e-4/β``) or at ``LOGSUMEXP_WIDEST`` candidates. With
    ``column_best``, each stored row's best query comes from the candidate
    pairs of the first ``LOGSUMEXP_CANDIDATES``.
    """
    n = len(index)

    def reduce(found: Neighbors) -> np.ndarray:
        scores = found.scores.astype(np.float64)
        top = scores[:, :1]
        with np.errstate(invalid="ignore"):
            total = np.exp(beta * (scores - top)).sum(axis=1)
        return (top[:, 0] + np.log(total) / beta).astype(np.float32)

    def certified(found: Neighbors, result: np.ndarray) -> np.ndarray:
        left = n - found.ids.shape[1]
        bound = np.log(max(left, 1)) + beta * (found.scores[:, -1].astype(np.float64) - result)
        return (left == 0) | (bound < np.log(1e-4))

    cap = min(n, max(LOGSUMEXP_CANDIDATES, LOGSUMEXP_WIDEST))
    found = _raw(index, queries, min(LOGSUMEXP_CANDIDATES, n))
    values = _widened(index, queries, found, cap, reduce, certified)
    return (values, best_query_per_row(found, n)) if column_best else values


def best_query_per_row(found: Neighbors, n: int) -> np.ndarray:
    """From per-query candidates, each stored row's best query (highest score, ties to the lower query); -1: none."""
    rows = np.repeat(np.arange(len(found)), found.ids.shape[1])
    ids, scores = found.ids.ravel(), found.scores.ravel()
    valid = ids >= 0
    rows, ids, scores = rows[valid], ids[valid], scores[valid]
    order = np.lexsort((rows, -scores.astype(np.float64), ids))
    ids, rows = ids[order], rows[order]
    first = np.r_[True, ids[1:] != ids[:-1]]
    best = np.full(n, -1, dtype=np.int64)
    best[ids[first]] = rows[first]
    return best
