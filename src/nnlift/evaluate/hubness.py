"""Hubness statistics of a k-nearest-neighbour relation (Radovanović et al. 2010; Feldbauer et al. 2018)."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import skew

from .._check import check_finite_scalar, check_positive_int
from ..neighbors import Neighbors
from ..errors import InputError

__all__ = ["k_occurrence", "hubness", "gini_index", "hub_occurrence"]


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


def gini_index(occurrence: Any) -> float:
    """The Gini index of N_k: 0 when every item occurs equally often, towards 1 when one item takes every slot.

    ``G = Σ_i (2i − n − 1)·x_(i) / (n · Σ x)`` over the k-occurrences sorted ascending (scikit-hubness's formula).

    Examples
    --------
    >>> gini_index([1, 1, 1, 1]), gini_index([0, 0, 0, 4])
    (0.0, 0.75)
    """
    values = np.sort(np.asarray(occurrence, dtype=np.float64).ravel())
    n, total = len(values), values.sum()
    if n == 0 or total == 0:
        return 0.0
    return float(((2 * np.arange(1, n + 1) - n - 1) * values).sum() / (n * total))


def hub_occurrence(ranked: Any, n_items: int, k: int | None = None, hub_size: float = 2.0) -> float:
    """Share of all top-k slots taken by hubs, items with N_k ≥ ``hub_size``·k (scikit-hubness's definition).

    Examples
    --------
    >>> import numpy as np
    >>> hub_occurrence(np.array([[0], [0], [0], [1]]), 4)  # item 0 occurs 3 ≥ 2·1 times: 3 of 4 slots
    0.75
    """
    occurrence, width = _occurrence_and_width(ranked, n_items, k)
    hubs = occurrence >= check_finite_scalar(hub_size, "hub_size", low=0.0) * width
    slots = occurrence.sum()
    return float(occurrence[hubs].sum() / slots) if slots else 0.0


def _occurrence_and_width(ranked: Any, n_items: int, k: int | None) -> tuple[np.ndarray, int]:
    occurrence = k_occurrence(ranked, n_items, k)
    ids = ranked.ids if isinstance(ranked, Neighbors) else np.asarray(ranked)
    return occurrence, ids.shape[1] if k is None else k


def hubness(ranked: Any, n_items: int, k: int | None = None, hub_size: float = 2.0) -> dict[str, float]:
    """The hubness of a top-k relation, as scikit-hubness reports it.

    - ``skewness``: of N_k (0 for a symmetric spread; hubs make it large);
    - ``robin_hood``: the Robin Hood (Hoover) index, the share of all k-occurrences that would have
      to move for every item to occur equally often (0: no hubs);
    - ``gini``: the Gini index of N_k (:func:`gini_index`);
    - ``max``: the largest N_k;
    - ``hub_occurrence``: the share of slots taken by hubs, N_k ≥ ``hub_size``·k (:func:`hub_occurrence`);
    - ``antihub_share``: the share of items that never occur (N_k = 0).

    Examples
    --------
    >>> import numpy as np
    >>> stats = hubness(np.array([[0], [0], [0], [1]]), 4)
    >>> stats["max"], stats["antihub_share"], stats["robin_hood"], stats["gini"], stats["hub_occurrence"]
    (3.0, 0.5, 0.5, 0.625, 0.75)
    """
    occurrence = k_occurrence(ranked, n_items, k).astype(np.float64)
    total = occurrence.sum()
    return {
        "skewness": float(skew(occurrence)) if occurrence.std() > 0 else 0.0,
        "robin_hood": float(np.abs(occurrence - occurrence.mean()).sum() / (2 * total)) if total else 0.0,
        "gini": gini_index(occurrence),
        "max": float(occurrence.max(initial=0)),
        "hub_occurrence": hub_occurrence(ranked, n_items, k, hub_size),
        "antihub_share": float(np.mean(occurrence == 0)),
    }
