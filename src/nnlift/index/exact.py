"""``ExactIndex``: exact search on nnlift's blocked kernel (the default index)."""

from __future__ import annotations


import numpy as np

from ..kernel.driver import logsumexp_arrays, self_topk_arrays, topk_arrays
from ..neighbors import Neighbors
from .._artifact import require_arrays
from .base import BaseIndex
from ..engines import check_engine

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

    def __init__(
        self,
        metric: str = "cosine",
        working_memory: int | None = None,
        progress: bool = True,
        engine: str | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(metric)
        check_engine(engine, device)
        self.working_memory = working_memory
        self.progress = progress
        self.engine, self.device = engine, device
        self._vectors = np.empty((0, 0), dtype=np.float32)

    @property
    def _vectors(self) -> np.ndarray:
        return self._frozen

    @_vectors.setter
    def _vectors(self, vectors: np.ndarray) -> None:
        # A read-only view of the rows: engines may keep their copy of them between searches
        # (engines.prepare), which only read-only arrays allow.
        self._frozen = vectors.view()
        self._frozen.flags.writeable = False

    def _run(self) -> dict:
        return {"working_memory": self.working_memory, "progress": self.progress, "engine": self.engine, "device": self.device}

    @property
    def vectors(self) -> np.ndarray:
        """The stored (normalised for cosine) vectors, read-only."""
        return self._frozen

    def _add(self, vectors: np.ndarray) -> None:
        self._vectors = vectors.copy() if len(self._vectors) == 0 else np.concatenate([self._vectors, vectors])

    def _remove(self, positions: np.ndarray) -> None:
        self._vectors = np.delete(self._vectors, positions, axis=0)

    def _count(self) -> int:
        return self._vectors.shape[0]

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        return topk_arrays(queries, self._vectors, k, **self._run())

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return self._vectors[positions].copy()

    # -- the reductions, all native on the kernel ---------------------------
    def _adopt(self, vectors: np.ndarray, like=None) -> None:
        self.dim = vectors.shape[1]
        self._vectors = vectors  # the method owns these rows and never changes them: no copy

    def stored_vectors(self) -> np.ndarray:
        return self._vectors

    def search_arrays(self, queries, k, *, bias=None, threshold=None) -> Neighbors:
        return topk_arrays(
            queries,
            self._vectors,
            k,
            bias=bias,
            threshold=threshold,
            **self._run(),
        )

    def self_join(self, k, *, threshold=None) -> Neighbors:
        return self_topk_arrays(
            self._vectors,
            k,
            exclude_self=True,
            threshold=threshold,
            **self._run(),
        )

    def topk_mean(self, queries, k) -> np.ndarray:
        found = self.search_arrays(queries, k)
        return found.scores.mean(axis=1, dtype=np.float64).astype(np.float32)

    def logsumexp(self, queries, beta, *, column_best=False):
        return logsumexp_arrays(
            queries,
            self._vectors,
            beta,
            column_best=column_best,
            **self._run(),
        )

    def _state(self):
        return {}, {"vectors": self._vectors}

    def _restore(self, extra, arrays) -> None:
        require_arrays(arrays, ("vectors",), owner="ExactIndex")
        self._vectors = self._restored_vectors(arrays)
