"""Hubness statistics of a k-nearest-neighbour relation (Radovanović et al. 2010; Feldbauer et al. 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import skew

from .._check import check_positive_int
from ..neighbors import Neighbors
from ..errors import InputError

__all__ = ["k_occurrence", "hubness"]


def k_occurrence(ranked: Any, n_items: int, k: int | None = None) -> np.ndarray:
    """N_k: how often each of ``n_items`` items appears in the queries' top-k lists.

    Examples
    --------
    >>> import numpy as np
    >>> k_occurrence(np.array([[0, 1], [0, 2]]), 4).tolist()
    [2, 1, 1, 0]
    """
    ids = ranked.ids if isinstance(ranked, Neighbors) else np.asarray(ranked)
    if ids.ndim != 2 or ids.dtype.kind not in "iu":
        raise InputError(f"ranked must be Neighbors or a 2-D integer array of ids; got shape {ids.shape}, dtype {ids.dtype}")
    n_items = check_positive_int(n_items, "n_items")
    if k is not None:
        k = check_positive_int(k, "k")
        if k > ids.shape[1]:
            raise InputError(f"k={k} is larger than the {ids.shape[1]} ranked columns; search with k >= {k} first")
        ids = ids[:, :k]
    ids = ids.astype(np.int64)
    ids = ids[ids >= 0]
    if len(ids) and ids.max() >= n_items:
        raise InputError(f"ranked holds id {int(ids.max())} but n_items is {n_items}")
    return np.bincount(ids, minlength=n_items)


def hubness(ranked: Any, n_items: int, k: int | None = None) -> dict[str, float]:
    """Skewness of N_k, the Robin Hood index, the largest N_k, and the share of antihubs (N_k = 0).

    The Robin Hood (Hoover) index is the share of all k-occurrences that would
    have to move for every item to occur equally often: 0 means no hubs.

    Examples
    --------
    >>> import numpy as np
    >>> stats = hubness(np.array([[0], [0], [0], [1]]), 4)
    >>> stats["max"], stats["antihub_share"], stats["robin_hood"]
    (3.0, 0.5, 0.5)
    """
    occurrence = k_occurrence(ranked, n_items, k).astype(np.float64)
    total = occurrence.sum()
    return {
        "skewness": float(skew(occurrence)) if occurrence.std() > 0 else 0.0,
        "robin_hood": float(np.abs(occurrence - occurrence.mean()).sum() / (2 * total)) if total else 0.0,
        "max": float(occurrence.max(initial=0)),
        "antihub_share": float(np.mean(occurrence == 0)),
    }
