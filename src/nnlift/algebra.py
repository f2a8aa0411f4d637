"""Embedding algebra over an index: centroids, directions, walks, analogies and masked queries (seed 002).

Every function takes ``index``, a :class:`~nnlift.Recommender` or any nnlift
index, and accepts ids (looked up in the index) or raw vectors wherever a
point or a group is expected. Each step reports which ids are new compared
with the step before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._check import check_array, check_finite_scalar, check_positive_int, normalize_rows
from .index.base import BaseIndex
from .neighbors import Neighbors
from .recommend import Recommender
from .errors import InputError, InputTypeError

__all__ = ["centroid", "direction", "walk", "analogy", "masked_query", "Step"]


@dataclass(frozen=True)
class Step:
    """Neighbours of one point of a walk (or of a query), with the ids new since the previous step."""

    scale: float
    ids: list
    scores: list[float]
    new: list

    def __repr__(self) -> str:
        return f"Step(scale={self.scale:g}, ids={self.ids}, new={self.new})"


def _recommender(index: Any) -> Recommender:
    if isinstance(index, Recommender):
        return index
    if isinstance(index, BaseIndex):
        return Recommender(index=index, metric=index.metric)
    raise InputTypeError(f"index must be a Recommender or an nnlift index; got {type(index).__name__}")


def _is_vector_like(value: Any) -> bool:
    """Floats (one vector or rows), or a 2-D array of any numbers; a 1-D list of ints is a list of ids."""
    if isinstance(value, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in value):
        return False
    try:
        array = np.asarray(value)
    except ValueError:  # ragged rows
        return False
    return (array.dtype.kind in "fc" and array.ndim in (1, 2)) or (array.dtype.kind in "iub" and array.ndim == 2)


def _points(value: Any, index: Recommender, name: str) -> np.ndarray:
    """Vectors for ids or vectors (unit rows for a cosine index)."""
    if isinstance(value, (str, int, np.integer)):
        return index.vectors([value])
    if isinstance(value, (list, tuple)) and not value:
        raise InputError(f"{name} is empty")
    if _is_vector_like(value):
        array = check_array(np.atleast_2d(np.asarray(value)), name, width=getattr(index.index, "dim", None))
        return normalize_rows(array, name) if index.metric == "cosine" else array
    ids = list(value)
    if not ids:
        raise InputError(f"{name} is empty")
    return index.vectors(ids)


def centroid(group: Any, index: Any) -> np.ndarray:
    """Mean of a group's (normalised, for cosine) vectors; the group is ids or a 2-D array.

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import ExactIndex
    >>> index = ExactIndex().add(np.eye(2), ids=["a", "b"])
    >>> centroid(["a", "b"], index).tolist()
    [0.5, 0.5]
    """
    recommender = _recommender(index)
    mean = _points(group, recommender, "group").mean(axis=0, dtype=np.float64).astype(np.float32)
    if recommender.metric == "cosine" and not mean.any():
        raise InputError("group: its vectors cancel out, so the centroid is zero and has no direction to search")
    return mean


def direction(from_group: Any, to_group: Any, index: Any) -> np.ndarray:
    """``centroid(to_group) − centroid(from_group)``, for example chairs → couches."""
    return centroid(to_group, index) - centroid(from_group, index)


def _step(found: Neighbors, scale: float, previous: list | None) -> Step:
    ids = found.labels(0)
    scores = [s for _, s in found.pairs(0)]
    new = ids if previous is None else [i for i in ids if i not in previous]
    return Step(scale, ids, scores, new)


def walk(
    start: Any,
    along: Any,
    index: Any,
    scales: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    k: int = 10,
    exclude_start: bool = True,
) -> list[Step]:
    """Neighbours of ``start + s · along`` for each scale s (``start`` is an id or a vector).

    Examples
    --------
    >>> import numpy as np
    >>> from nnlift import ExactIndex
    >>> index = ExactIndex().add(np.array([[1, 0], [0.8, 0.6], [0, 1]]), ids=["a", "b", "c"])
    >>> [s.ids for s in walk("a", direction(["a"], ["c"], index), index, scales=(0.2, 1.5), k=1)]
    [['b'], ['c']]
    """
    recommender = _recommender(index)
    origin = _points(start, recommender, "start")[0]
    vector = check_array(np.asarray(along, dtype=np.float64), "along", ndim=1)
    if len(vector) != len(origin):
        raise InputError(f"along has {len(vector)} dimensions; the index has {len(origin)}")
    k = check_positive_int(k, "k")
    if not len(scales):
        raise InputError("scales is empty")
    exclude = [start] if exclude_start and isinstance(start, (str, int, np.integer)) else []
    steps: list[Step] = []
    for scale in scales:
        scale = check_finite_scalar(scale, "scale")
        found = recommender.similar_to(origin + scale * vector, k, exclude=exclude)
        steps.append(_step(found, scale, steps[-1].ids if steps else None))
    return steps


def analogy(a: Any, b: Any, c: Any, index: Any, k: int = 10) -> Step:
    """Neighbours of ``b − a + c`` ("a is to b as c is to ?"), leaving out a, b and c themselves.

    ``new`` lists the ids not among c's own neighbours.
    """
    recommender = _recommender(index)
    va, vb, vc = (_points(p, recommender, name)[0] for p, name in ((a, "a"), (b, "b"), (c, "c")))
    exclude = [p for p in (a, b, c) if isinstance(p, (str, int, np.integer))]
    k = check_positive_int(k, "k")
    found = recommender.similar_to(vb - va + vc, k, exclude=exclude)
    baseline = recommender.similar_to(vc, k, exclude=exclude)
    return _step(found, 1.0, baseline.labels(0))


def masked_query(
    embed_fn: Callable[[Any], Any], item: Any, mask_fn: Callable[[Any], Any], index: Any, k: int = 10
) -> Step:
    """Embed a masked version of ``item`` (the caller supplies both functions) and search.

    ``new`` lists the ids not among the unmasked item's neighbours, which shows
    what the mask changed.
    """
    recommender = _recommender(index)
    k = check_positive_int(k, "k")
    original = np.asarray(embed_fn(item), dtype=np.float32).reshape(-1)
    masked = np.asarray(embed_fn(mask_fn(item)), dtype=np.float32).reshape(-1)
    before = recommender.similar_to(original, k)
    after = recommender.similar_to(masked, k)
    return _step(after, 1.0, before.labels(0))
