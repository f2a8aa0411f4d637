"""Retrieval metrics over ranked ids and single or multiple targets per query.

Names say exactly what they measure:

- ``hit_rate_at_k``: at least one relevant item in the top k. Papers on
  cross-modal retrieval (CLIP, NNN, QB-Norm) call this "R@k" or "Recall@k".
- ``recall_at_k``: the fraction of a query's relevant items found in the top k.
  It equals the hit rate when each query has exactly one relevant item.
- ``precision_at_k``, ``mrr``, ``map_at_r`` and ``ndcg_at_k`` (binary relevance).

Every metric returns the mean over queries, or per-query values with
``per_query=True`` (for paired bootstrap confidence intervals).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._check import check_positive_int
from ..neighbors import Neighbors
from ..errors import InputError, InputTypeError

__all__ = [
    "relevance",
    "hit_rate_at_k",
    "recall_at_k",
    "precision_at_k",
    "mrr",
    "map_at_r",
    "ndcg_at_k",
    "retrieval_metrics",
    "check_targets",
]


def _ranked_ids(ranked: Any) -> np.ndarray:
    if isinstance(ranked, Neighbors):
        return ranked.ids
    ids = np.asarray(ranked)
    if ids.ndim != 2 or not np.issubdtype(ids.dtype, np.integer):
        raise InputError(
            f"ranked must be Neighbors or a 2-D integer array of ids; got shape {ids.shape}, dtype {ids.dtype}"
        )
    return ids.astype(np.int64)


def _target_id(value: Any, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Integral, np.integer)):
        raise InputTypeError(f"{name} must hold integer database rows (-1 for none); got {type(value).__name__} {value!r}")
    return int(value)


def _targets(targets: Any, n_queries: int, name: str = "targets") -> tuple[np.ndarray, np.ndarray]:
    """Targets as (query, id) pairs plus the number of relevant ids per query.

    Accepts one id per query (1-D ints), a 2-D int array padded with -1, or a
    sequence of iterables of ids (several relevant items per query). Floats,
    NaN and booleans are refused: a relevant item is a database row number.
    """
    if isinstance(targets, np.ndarray) and targets.dtype.kind not in "iuO":
        raise InputTypeError(f"{name} must hold integer database rows (-1 for none); got dtype {targets.dtype}")
    if isinstance(targets, np.ndarray) and targets.ndim == 1 and targets.dtype.kind in "iu":
        lists = [[int(t)] if t >= 0 else [] for t in targets]
    elif isinstance(targets, np.ndarray) and targets.ndim == 2 and targets.dtype.kind in "iu":
        lists = [[int(t) for t in row if t >= 0] for row in targets]
    else:
        if isinstance(targets, (str, bytes)) or not hasattr(targets, "__iter__"):
            raise InputTypeError(f"{name} must be one id per query or one list of ids per query; got {targets!r}")
        lists = []
        for entry in targets:
            if not hasattr(entry, "__iter__") or isinstance(entry, (str, bytes)):
                value = _target_id(entry, name)
                lists.append([value] if value >= 0 else [])
            else:
                lists.append(sorted({v for v in (_target_id(t, name) for t in entry) if v >= 0}))
    if len(lists) != n_queries:
        raise InputError(f"{name} has {len(lists)} entries but there are {n_queries} ranked queries")
    counts = np.array([len(set(entry)) for entry in lists], dtype=np.int64)
    queries = np.repeat(np.arange(n_queries), [len(entry) for entry in lists])
    ids = np.array([t for entry in lists for t in entry], dtype=np.int64)
    return np.stack([queries, ids], axis=1), counts


def check_targets(targets: Any, n_queries: int, n_items: int, name: str = "targets") -> None:
    """Refuse targets that cannot be measured: outside ``[0, n_items)``, or a query with none at all.

    An evaluation that counts such queries as misses would report a number
    that measures nothing; this names the first offending query instead.

    Examples
    --------
    >>> check_targets([0, 5], 2, 3)
    Traceback (most recent call last):
    ...
    nnlift.errors.InputError: targets of query 1 is row 5, outside the gallery of 3 items
    """
    pairs, counts = _targets(targets, n_queries, name)
    outside = np.flatnonzero(pairs[:, 1] >= n_items)
    if len(outside):
        query, row = pairs[outside[0]]
        raise InputError(f"{name} of query {int(query)} is row {int(row)}, outside the gallery of {n_items} items")
    raw = np.asarray(targets) if isinstance(targets, np.ndarray) else None
    if raw is not None and raw.dtype.kind in "iu" and raw.size and raw.min() < -1:
        raise InputError(f"{name} holds {int(raw.min())}; rows are >= 0, and -1 pads a query's list")
    empty = np.flatnonzero(counts == 0)
    if len(empty):
        raise InputError(f"{name} of query {int(empty[0])} is empty (no relevant row); {len(empty)} such queries")


def relevance(ranked: Any, targets: Any) -> tuple[np.ndarray, np.ndarray]:
    """Boolean relevance of every ranked slot, and the number of relevant items per query.

    A repeated id counts once (its first occurrence); padding (-1) is never relevant.

    Examples
    --------
    >>> import numpy as np
    >>> rel, n_rel = relevance(np.array([[3, 1, 2]]), [[1, 2, 9]])
    >>> rel.tolist(), n_rel.tolist()
    ([[False, True, True]], [3])
    """
    ids = _ranked_ids(ranked)
    pairs, counts = _targets(targets, ids.shape[0])
    base = int(max(ids.max(initial=0), pairs[:, 1].max(initial=0))) + 2
    wanted = np.unique(pairs[:, 0] * base + pairs[:, 1])
    keys = np.arange(ids.shape[0])[:, None] * base + ids
    rel = np.isin(keys, wanted) & (ids >= 0)
    if rel.any():  # keep only the first occurrence of a repeated id
        first = np.zeros_like(rel)
        for row in np.flatnonzero(rel.sum(axis=1) > 1):
            _, where = np.unique(ids[row], return_index=True)
            first[row, where] = True
        repeated = rel.sum(axis=1) > 1
        rel[repeated] &= first[repeated]
    return rel, counts


def _finish(values: np.ndarray, per_query: bool):
    return values if per_query else float(values.mean()) if len(values) else float("nan")


def _cut(rel: np.ndarray, k: int | None) -> np.ndarray:
    if k is None:
        return rel
    k = check_positive_int(k, "k")
    if k > rel.shape[1]:
        raise InputError(f"k={k} is larger than the {rel.shape[1]} ranked columns; search with k >= {k} first")
    return rel[:, :k]


def hit_rate_at_k(ranked: Any, targets: Any, k: int, *, per_query: bool = False):
    """Share of queries with at least one relevant item in the top k (the "R@k" of cross-modal papers).

    Examples
    --------
    >>> import numpy as np
    >>> hit_rate_at_k(np.array([[5, 2], [1, 0]]), np.array([2, 7]), k=2)
    0.5
    """
    rel, _ = relevance(ranked, targets)
    return _finish(_cut(rel, k).any(axis=1).astype(np.float64), per_query)


def recall_at_k(ranked: Any, targets: Any, k: int, *, per_query: bool = False):
    """Fraction of each query's relevant items found in the top k (queries without targets count 0).

    Examples
    --------
    >>> recall_at_k([[1, 2, 3]], [[1, 9]], k=3)
    0.5
    """
    rel, counts = relevance(ranked, targets)
    found = _cut(rel, k).sum(axis=1)
    return _finish(np.where(counts > 0, found / np.maximum(counts, 1), 0.0), per_query)


def precision_at_k(ranked: Any, targets: Any, k: int, *, per_query: bool = False):
    """Relevant items among the top k, divided by k.

    Examples
    --------
    >>> precision_at_k([[1, 2, 3, 4]], [[1, 3]], k=4)
    0.5
    """
    rel, _ = relevance(ranked, targets)
    return _finish(_cut(rel, k).sum(axis=1) / k, per_query)


def mrr(ranked: Any, targets: Any, k: int | None = None, *, per_query: bool = False):
    """Mean reciprocal rank of the first relevant item (0 when none is ranked, within k if given).

    Examples
    --------
    >>> mrr([[4, 2, 7], [1, 0, 0]], [[2], [5]])
    0.25
    """
    rel = _cut(relevance(ranked, targets)[0], k)
    has = rel.any(axis=1)
    first = np.argmax(rel, axis=1)
    return _finish(np.where(has, 1.0 / (first + 1), 0.0), per_query)


def map_at_r(ranked: Any, targets: Any, *, per_query: bool = False):
    """mAP@R (Musgrave et al., 2020): average precision over the first R ranks, R = number of relevant items.

    The ranked lists must be at least as long as the largest R to score fully;
    unranked relevant items count as misses.

    Examples
    --------
    >>> round(map_at_r([[1, 5, 2]], [[1, 2]]), 4)  # R=2: (1/1 + 0) / 2
    0.5
    """
    rel, counts = relevance(ranked, targets)
    ranks = np.arange(1, rel.shape[1] + 1)
    within = ranks[None, :] <= counts[:, None]
    hits = rel & within
    precision = np.cumsum(hits, axis=1) / ranks[None, :]
    ap = (precision * hits).sum(axis=1) / np.maximum(counts, 1)
    return _finish(np.where(counts > 0, ap, 0.0), per_query)


def ndcg_at_k(ranked: Any, targets: Any, k: int, *, per_query: bool = False):
    """nDCG@k with binary relevance: ``Σ rel_i / log2(i + 1)`` over the ideal ordering's value.

    Examples
    --------
    >>> round(ndcg_at_k([[9, 1]], [[1]], k=2), 4)
    0.6309
    """
    rel, counts = relevance(ranked, targets)
    rel = _cut(rel, k)
    discounts = 1.0 / np.log2(np.arange(2, rel.shape[1] + 2))
    dcg = (rel * discounts).sum(axis=1)
    ideal_hits = np.minimum(counts, rel.shape[1])
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[ideal_hits]
    return _finish(np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1), 0.0), per_query)


def retrieval_metrics(ranked: Any, targets: Any, ks=(1, 5, 10), *, per_query: bool = False) -> dict[str, Any]:
    """``hit_rate@k`` for each k, ``mrr`` and ``ndcg@10`` (and ``recall@k`` when queries have several targets)."""
    ids = _ranked_ids(ranked)
    out: dict[str, Any] = {}
    _, counts = _targets(targets, ids.shape[0])
    for k in ks:
        if k <= ids.shape[1]:
            out[f"hit_rate@{k}"] = hit_rate_at_k(ids, targets, k, per_query=per_query)
            if counts.max(initial=0) > 1:
                out[f"recall@{k}"] = recall_at_k(ids, targets, k, per_query=per_query)
    out["mrr"] = mrr(ids, targets, per_query=per_query)
    if ids.shape[1] >= 10:
        out["ndcg@10"] = ndcg_at_k(ids, targets, 10, per_query=per_query)
    return out
