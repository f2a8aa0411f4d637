"""``HnswIndex``: an hnswlib graph as an nnlift index."""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from .._optional import require
from .._threads import default_workers
from ..neighbors import Neighbors, sort_neighbors
from .base import BaseIndex

__all__ = ["HnswIndex"]


class HnswIndex(BaseIndex):
    """Approximate search on an hnswlib HNSW graph (inner product of normalised rows).

    Parameters
    ----------
    M : int
        Graph degree.
    ef_construction : int
        Build-time search breadth.
    ef_search : int
        Query-time search breadth (raised to ``k`` when smaller).
    seed : int
        hnswlib's random seed, for reproducible graphs.

    Examples
    --------
    >>> import numpy as np
    >>> index = HnswIndex(M=8).add(np.eye(4))
    >>> index.search([[0.0, 1.0, 0.0, 0.0]], k=1).ids.tolist()
    [[1]]
    """

    def __init__(
        self,
        metric: str = "cosine",
        M: int = 16,
        ef_construction: int = 200,
        ef_search: int = 100,
        seed: int = 100,
    ) -> None:
        super().__init__(metric)
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.seed = seed
        self._hnswlib = require("hnswlib", "HnswIndex")
        self._index = None

    def _new(self, dim: int, capacity: int) -> Any:
        index = self._hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.M, random_seed=self.seed)
        return index

    def _add(self, vectors: np.ndarray) -> None:
        n_old = self._count()
        if self._index is None:
            self._index = self._new(vectors.shape[1], max(vectors.shape[0], 1))
        elif n_old + vectors.shape[0] > self._index.get_max_elements():
            self._index.resize_index(max(2 * n_old, n_old + vectors.shape[0]))
        labels = np.arange(n_old, n_old + vectors.shape[0])
        self._index.add_items(vectors, labels, num_threads=default_workers())

    def _count(self) -> int:
        return 0 if self._index is None else self._index.get_current_count()

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        self._index.set_ef(max(self.ef_search, k))
        labels, distances = self._index.knn_query(queries, k=k, num_threads=default_workers())
        # hnswlib's "ip" space reports 1 - inner product.
        return sort_neighbors(labels.astype(np.int64), 1.0 - distances)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return np.asarray(self._index.get_items(positions), dtype=np.float32).reshape(len(positions), self.dim)

    def _params(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "M": self.M,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "seed": self.seed,
        }

    def _state(self):
        if self._index is None:
            return {}, {"hnsw_graph": np.empty(0, dtype=np.uint8)}
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "graph.bin")
            self._index.save_index(file)
            blob = np.fromfile(file, dtype=np.uint8)
        return {"capacity": int(self._index.get_max_elements())}, {"hnsw_graph": blob}

    def _restore(self, extra, arrays) -> None:
        blob = arrays["hnsw_graph"]
        if blob.size == 0:
            return
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "graph.bin")
            blob.tofile(file)
            self._index = self._hnswlib.Index(space="ip", dim=self.dim)
            self._index.load_index(file, max_elements=extra.get("capacity", 0))
