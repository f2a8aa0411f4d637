"""``ExactIndex``: exact search on nnlift's blocked kernel (the default index)."""

from __future__ import annotations


import numpy as np

from ..kernel import topk_arrays
from ..neighbors import Neighbors
from .._artifact import require_arrays
from .base import BaseIndex

__all__ = ["ExactIndex"]


class ExactIndex(BaseIndex):
    """Exact inner-product/cosine search, memory-bounded by ``working_memory``.

    Examples
    --------
    >>> import numpy as np
    >>> index = ExactIndex().add(np.eye(3), ids=["a", "b", "c"])
    >>> index.search([[0.1, 1.0, 0.0]], k=1).keys.tolist()
    [['b']]
    """

    def __init__(self, metric: str = "cosine", working_memory: int | None = None, progress: bool = True) -> None:
        super().__init__(metric)
        self.working_memory = working_memory
        self.progress = progress
        self._vectors = np.empty((0, 0), dtype=np.float32)

    @property
    def vectors(self) -> np.ndarray:
        """The stored (normalised for cosine) vectors, read-only."""
        view = self._vectors.view()
        view.flags.writeable = False
        return view

    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = vectors.copy() if len(self._vectors) == 0 else np.concatenate([self._vectors, vectors])

    def _count(self) -> int:
        return self._vectors.shape[0]

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        return topk_arrays(queries, self._vectors, k, working_memory=self.working_memory, progress=self.progress)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return self._vectors[positions].copy()

    def _state(self):
        return {}, {"vectors": self._vectors}

    def _restore(self, extra, arrays) -> None:
        require_arrays(arrays, ("vectors",), owner="ExactIndex")
        self._vectors = self._restored_vectors(arrays)
