"""Recommendations by id over an exact or approximate index (seed 002).

``Recommender`` keeps items under their own ids (ints or strings such as
``"V_126H754"``) and returns the most similar items of an item, leaving the
item itself out.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._artifact import ArtifactError, Contents, load_artifact
from ._artifact import save as save_object
from ._check import check_positive_int
from .index.base import BaseIndex
from .index.exact import ExactIndex
from .neighbors import Neighbors
from .errors import InputError

__all__ = ["Recommender", "default_index", "seed_hnsw"]

# The seed's HNSW: M=30, efConstruction=100, cosine.
SEED_HNSW = {"M": 30, "ef_construction": 100}


def default_index(n_items: int, metric: str = "cosine", exact_below: int = 20_000) -> BaseIndex:
    """Exact search for small sets; HNSW (faiss, else hnswlib, else nnlift's IVF) with the seed's parameters above."""
    if n_items < exact_below:
        return ExactIndex(metric)
    try:
        importlib.import_module("faiss")
    except ImportError:
        pass
    else:
        return seed_hnsw(metric)
    try:
        importlib.import_module("hnswlib")
    except ImportError:
        from .index.ivf import IVFIndex

        return IVFIndex(metric, n_probe=16)
    from .index.hnsw import HnswIndex

    return HnswIndex(metric, M=SEED_HNSW["M"], ef_construction=SEED_HNSW["ef_construction"], ef_search=128)


def seed_hnsw(metric: str = "cosine", ef_search: int = 128) -> BaseIndex:
    """The seed's graph in faiss: HNSW with M=30 and efConstruction=100 (needs the ``faiss`` extra)."""
    from .index.faiss import FaissIndex

    return FaissIndex(
        f"HNSW{SEED_HNSW['M']}", metric=metric, ef_construction=SEED_HNSW["ef_construction"], ef_search=ef_search
    )


class Recommender:
    """Similar items by id.

    Parameters
    ----------
    index : Index, optional
        Where the vectors live; by default :func:`default_index` chooses exact
        search below 20,000 items and an HNSW graph (M=30, efConstruction=100)
        above.
    metric : {"cosine", "ip"}

    Examples
    --------
    >>> import numpy as np
    >>> items = {"V_1": [1.0, 0.0], "V_2": [0.9, 0.1], "V_3": [0.0, 1.0]}
    >>> Recommender.from_mapping(items).similar("V_1", k=1).labels()
    ['V_2']
    """

    def __init__(self, index: BaseIndex | None = None, metric: str = "cosine") -> None:
        self.index = index
        self.metric = metric

    @classmethod
    def from_mapping(cls, items: Mapping[Any, Any], **kwargs: Any) -> Recommender:
        """Build from ``{id: vector}``."""
        if not isinstance(items, Mapping) or not items:
            raise InputError("items must be a non-empty mapping of id -> vector")
        ids = list(items)
        rows = []
        for key in ids:
            row = np.asarray(items[key])
            if row.ndim != 1 or row.dtype.kind not in "iuf":
                raise InputError(f"items[{key!r}] must be a 1-D vector of numbers; got shape {row.shape} {row.dtype}")
            if rows and len(row) != len(rows[0]):
                raise InputError(f"items[{key!r}] has {len(row)} dimensions; the first item has {len(rows[0])}")
            rows.append(row)
        return cls(**kwargs).fit(np.asarray(rows), ids)

    def fit(self, vectors: Any, ids: Any = None) -> Recommender:
        """Index ``vectors`` under ``ids`` (positions when omitted)."""
        n = len(vectors)
        if self.index is None:
            self.index = default_index(n, self.metric)
        elif len(self.index) and hasattr(self.index, "clone"):
            self.index = self.index.clone()  # a second fit starts afresh; it never appends to the old items
        self.index.add(vectors, ids=ids)
        return self

    def add(self, vectors: Any, ids: Any = None) -> Recommender:
        """Add more items without rebuilding."""
        self._index().add(vectors, ids=ids)
        return self

    def remove(self, ids: Any) -> Recommender:
        """Remove items by id; they are never recommended again (kept through save and load)."""
        self._index().remove(ids)
        return self

    def update(self, ids: Any, vectors: Any) -> Recommender:
        """Replace the vectors of existing items, keeping their ids."""
        self._index().update(ids, vectors)
        return self

    def _index(self) -> BaseIndex:
        if self.index is None or len(self.index) == 0:
            raise InputError("the recommender is empty; call fit(vectors, ids) first")
        return self.index

    def __len__(self) -> int:
        return 0 if self.index is None else len(self.index)

    def vectors(self, ids: Any) -> np.ndarray:
        """Stored vectors of items; an unknown id raises ``KeyError`` naming it."""
        return self._index().get(ids)

    def similar(self, item: Any, k: int = 10) -> Neighbors:
        """The k items most similar to ``item`` (an id), the item itself left out.

        Returns a one-row :class:`Neighbors`; ``.pairs()`` gives ``(id, score)``.
        """
        index = self._index()
        k = check_positive_int(k, "k")
        vector = index.get([item])
        found = index.search(vector, min(k + 1, len(index)))
        return self._drop(found, [item], k)

    def similar_to(self, vector: Any, k: int = 10, exclude: Any = ()) -> Neighbors:
        """The k items most similar to a vector, optionally leaving out some ids."""
        index = self._index()
        k = check_positive_int(k, "k")
        exclude = list(exclude) if not isinstance(exclude, (str, int, np.integer)) else [exclude]
        query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        found = index.search(query, min(k + len(exclude), len(index)))
        return self._drop(found, exclude, k)

    def _drop(self, found: Neighbors, excluded: list, k: int) -> Neighbors:
        labels = found.keys[0] if found.keys is not None else found.ids[0]
        keep = np.array([found.ids[0, j] >= 0 and labels[j] not in excluded for j in range(found.k)])
        ids = found.ids[0][keep][:k]
        scores = found.scores[0][keep][:k]
        keys = None if found.keys is None else found.keys[0][keep][:k]
        if len(ids) < k:  # pad as every Neighbors does
            pad = k - len(ids)
            ids = np.concatenate([ids, np.full(pad, -1)])
            scores = np.concatenate([scores, np.full(pad, -np.inf, dtype=np.float32)])
            keys = None if keys is None else np.concatenate([keys, np.full(pad, None, dtype=object)])
        return Neighbors(ids[None], scores[None], None if keys is None else keys[None])

    def _artifact(self) -> Contents:
        return Contents({"index": None, "metric": self.metric}, parts={"index": self._index()})

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the recommender and its index as one nnlift artifact folder, atomically.

        An existing artifact is replaced only with ``overwrite=True``; anything else never.
        """
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict, parts: dict) -> Recommender:
        index = parts.get("index")
        if not isinstance(index, BaseIndex) or arrays or set(parts) != {"index"}:
            raise ArtifactError("Recommender artifact: it must hold exactly one part, 'index', an nnlift index")
        return cls(index=index, metric=manifest["params"]["metric"])

    @classmethod
    def load(cls, path: str | os.PathLike) -> Recommender:
        """Load a recommender saved by :meth:`save` (``nnlift.load`` works too)."""
        return load_artifact(path, expected_class=cls)

    def __repr__(self) -> str:
        return f"Recommender(index={self.index!r})"
