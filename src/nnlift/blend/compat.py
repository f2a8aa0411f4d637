"""PyPI ``neighborblend``'s three functions, with their names and meaning and without its defects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .._check import check_k
from ..errors import InputError
from .blender import NeighborhoodBlender
from .graph import check_threshold, check_thresholds, neighbor_graph, unit_rows
from .weights import blend_rows

__all__ = ["neighborhood_search", "blend_neighborhood", "iterative_neighborhood_blending"]


def neighborhood_search(emb: Any, thresh: float, k_neighbors: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Exact top-``k_neighbors`` (the point itself included) keeping similarities > ``thresh``.

    Parameters
    ----------
    emb : array-like of shape (n, d)
        Embeddings; a normalised copy is searched (``emb`` is never changed).
    thresh : float
        Keep neighbours with cosine similarity strictly greater (must be < 1).
    k_neighbors : int
        Neighbours per row, the row itself included.

    Returns
    -------
    match_index_lst, similarities_lst : list of numpy.ndarray
        Per row, the kept ids and similarities in descending order.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.array([[1.0, 0.0], [0.99, 0.1], [0.0, 1.0]])
    >>> ids, sims = neighborhood_search(emb, 0.5, 2)
    >>> [i.tolist() for i in ids]
    [[0, 1], [1, 0], [2]]
    """
    unit = unit_rows(emb)
    threshold = check_threshold(thresh)
    k = check_k(k_neighbors, unit.shape[0], name="k_neighbors", what="rows")
    found, _ = neighbor_graph(unit, k, threshold, progress=False)
    return found.to_lists()


def blend_neighborhood(emb: Any, match_index_lst: Sequence, similarities_lst: Sequence) -> np.ndarray:
    """``e'_i = normalize(Σ_j s_ij · e_j)`` over each row's neighbour list (on a normalised copy of ``emb``).

    Examples
    --------
    >>> import numpy as np
    >>> out = blend_neighborhood(np.eye(2), [np.array([0, 1]), np.array([1])], [np.array([1.0, 1.0]), np.array([1.0])])
    >>> out.astype(float).round(3).tolist()
    [[0.707, 0.707], [0.0, 1.0]]
    """
    unit = unit_rows(emb)
    n = unit.shape[0]
    if len(match_index_lst) != n or len(similarities_lst) != n:
        raise InputError(
            f"match_index_lst and similarities_lst need one entry per row of emb ({n}); "
            f"got {len(match_index_lst)} and {len(similarities_lst)}"
        )
    lengths = np.array([len(ids) for ids in match_index_lst])
    if any(len(s) != length for s, length in zip(similarities_lst, lengths)):
        raise InputError("each similarities_lst entry must have the length of its match_index_lst entry")
    if lengths.sum() == 0:
        raise InputError("every neighbour list is empty; nothing to blend")
    columns = np.concatenate([np.asarray(ids, dtype=np.int64) for ids in match_index_lst])
    weights = np.concatenate([np.asarray(s, dtype=np.float64) for s in similarities_lst])
    if columns.size and (columns.min() < 0 or columns.max() >= n):
        raise InputError(f"match_index_lst holds ids outside [0, {n}) (padding such as -1 is not an index)")
    if not np.isfinite(weights).all():
        raise InputError("similarities_lst holds NaN or inf")
    if (lengths == 0).any():
        raise InputError(f"{int((lengths == 0).sum())} row(s) have no neighbours; include each row itself")
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    graph = sp.csr_matrix((weights.astype(np.float32), columns, indptr), shape=(n, n))
    return blend_rows(unit, graph)


def iterative_neighborhood_blending(
    emb: Any, threshes: Sequence[float], k_neighbors: int
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """One neighbourhood search and blend per threshold; returns the final embeddings and the last lists.

    Examples
    --------
    >>> import numpy as np
    >>> emb = np.array([[1.0, 0.0], [0.95, 0.3], [0.0, 1.0]])
    >>> out, ids, sims = iterative_neighborhood_blending(emb, [0.9, 0.8], 2)
    >>> out.shape, [i.tolist() for i in ids]
    ((3, 2), [[0, 1], [1, 0], [2]])
    """
    thresholds = check_thresholds(threshes)
    blender = NeighborhoodBlender(thresholds=tuple(thresholds), k=k_neighbors, progress=False)
    out = blender.fit_transform(emb)
    ids, sims = blender.neighbors_.to_lists()
    return out, ids, sims


# --------------------------------------------------------------------------- estimators
