"""Blending's neighbour graph: thresholds, and the self-join of any index (exact by default)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._check import check_array, check_finite_scalar, normalize_rows
from ..errors import InputError, InputTypeError
from ..index.base import build_index, quiet
from ..index.exact import ExactIndex
from ..neighbors import Neighbors, sort_neighbors

__all__ = ["neighbor_graph", "with_self", "default_lists", "check_threshold", "check_thresholds", "unit_rows"]


def check_threshold(thresh: Any, name: str = "thresh") -> float:
    value = check_finite_scalar(thresh, name)
    if value >= 1.0:
        raise InputError(
            f"{name}={value} must be < 1: cosine similarity never exceeds 1, so no neighbour (not even the point "
            "itself) would be kept and every row would become zeros"
        )
    return value


def check_thresholds(threshes: Any, *, allow_auto: bool = False) -> list[Any]:
    """Validated thresholds, each < 1; with ``allow_auto``, ``"auto"`` entries stay (chosen per pass from the data)."""
    if isinstance(threshes, (str, bytes)) or not isinstance(threshes, (Sequence, np.ndarray)):
        raise InputTypeError(f"thresholds must be a sequence of numbers such as (0.9, 0.8); got {threshes!r}")
    values = []
    for i, t in enumerate(threshes):
        if allow_auto and isinstance(t, str):
            if t != "auto":
                raise InputError(f"thresholds[{i}] must be a number below 1 or 'auto'; got {t!r}")
            values.append(t)
        else:
            values.append(check_threshold(t, f"thresholds[{i}]"))
    if not values:
        raise InputError("thresholds is empty; give at least one threshold, for example (0.9, 0.8)")
    return values


def unit_rows(emb: Any, name: str = "emb") -> np.ndarray:
    return normalize_rows(check_array(emb, name), name)


def neighbor_graph(
    unit: np.ndarray,
    k: int,
    threshold: float | None,
    *,
    index: Any = None,
    like: Any = None,
    progress: bool = True,
) -> tuple[Neighbors, Any]:
    """Each row's self plus its top-(k−1) other rows with similarity > threshold (validated unit rows).

    The other rows come from the self-join of a clone of the ``index``
    template (default ``ExactIndex()``: the symmetric exact self-join) built
    over ``unit``; ``like`` is the previous pass's index, whose IVF centroids
    start the next k-means. Self is always kept, first unless an exact
    duplicate with a lower id ties it. Returns the neighbours (padded with -1)
    and the index built, whose ``checks_`` hold what a ``Checked`` one measured.
    """
    n = unit.shape[0]
    others = k - 1
    built = build_index(ExactIndex() if index is None else index, unit, like=like)
    if others == 0:
        found = Neighbors(np.empty((n, 0), np.int64), np.empty((n, 0), np.float32))
    else:
        with quiet(built, progress):
            found = built.self_join(others, threshold=threshold)
    return with_self(unit, np.arange(n, dtype=np.int64), found, threshold), built


def with_self(unit: np.ndarray, positions: np.ndarray, others: Neighbors, threshold: float | None) -> Neighbors:
    """Rows ``positions`` (vectors ``unit``): each one itself, first, then its ``others`` above the threshold.

    ``others`` come sorted, padding last. Self goes first unless a neighbour
    ties or beats it (an exact duplicate, or rounding), and only such rows are
    sorted again, ties to the lower id.
    """
    ids, scores = others.ids, others.scores
    if threshold is not None:
        drop = scores <= threshold
        ids, scores = np.where(drop, -1, ids), np.where(drop, -np.inf, scores)
    self_scores = np.einsum("ij,ij->i", unit, unit).astype(np.float32)
    unsorted = np.flatnonzero(scores[:, 0] >= self_scores) if scores.shape[1] else np.empty(0, np.int64)
    ids = np.concatenate([np.asarray(positions, dtype=np.int64)[:, None], ids], axis=1)
    scores = np.concatenate([self_scores[:, None], scores], axis=1)
    if len(unsorted):
        again = sort_neighbors(ids[unsorted], scores[unsorted])
        ids[unsorted], scores[unsorted] = again.ids, again.scores
    return Neighbors(ids, scores)


def default_lists(n: int) -> int:
    """IVF lists for a blending self-join of ``n`` rows: ``2√n``, twice an IVF index's default.

    A self-join's neighbours are near-duplicates sitting in few lists, so
    smaller lists hold them as well or better while each probe multiplies half
    as much; routing to twice the centroids costs little beside it. Measured
    with 8 probes (first-pass recall over all rows against exact search;
    median build and search): 50k×384 clustered, recall 0.9973 → 0.9990,
    build 0.22 → 0.34 s, search 0.53 → 0.35 s; 51.6k×256 WordNet glosses
    embedded by wordllama (threshold 0.6), recall 0.903 → 0.916, build
    0.13 → 0.24 s, search 0.42 → 0.30 s.
    """
    return max(1, min(n, round(2 * math.sqrt(n))))
