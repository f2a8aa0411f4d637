"""``FaissIndex``: any faiss factory string (Flat, HNSW, IVF) as an nnlift index."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._optional import require
from .._threads import default_workers
from ..neighbors import Neighbors, sort_neighbors
from .base import BaseIndex

__all__ = ["FaissIndex"]


class FaissIndex(BaseIndex):
    """A faiss index built from a factory string, scored by inner product.

    Parameters
    ----------
    factory : str
        A faiss factory string: ``"Flat"``, ``"HNSW32"``, ``"IVF1024,Flat"``...
    metric : {"cosine", "ip"}
    nprobe : int, optional
        IVF lists visited per query (IVF factories).
    ef_search : int, optional
        HNSW search breadth (HNSW factories).
    ef_construction : int, optional
        HNSW build breadth (HNSW factories), set before the first add.
    use_gpu : bool
        Move the index to the first GPU when faiss was built with GPU support.

    Examples
    --------
    >>> import numpy as np
    >>> index = FaissIndex("Flat").add(np.eye(4))
    >>> index.search([[0.0, 0.0, 1.0, 0.2]], k=2).ids.tolist()
    [[2, 3]]
    """

    def __init__(
        self,
        factory: str = "Flat",
        metric: str = "cosine",
        nprobe: int | None = None,
        ef_search: int | None = None,
        ef_construction: int | None = None,
        use_gpu: bool = False,
    ) -> None:
        super().__init__(metric)
        if not isinstance(factory, str) or not factory:
            raise ValueError(f"factory must be a faiss factory string such as 'Flat'; got {factory!r}")
        self.factory = factory
        self.nprobe = nprobe
        self.ef_search = ef_search
        self.ef_construction = ef_construction
        self.use_gpu = use_gpu
        self._faiss = require("faiss", "FaissIndex")
        self._index = None

    def _build(self, dim: int) -> Any:
        faiss = self._faiss
        try:
            index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise ValueError(f"faiss cannot build factory {self.factory!r}: {str(exc).splitlines()[-1]}") from None
        if self.ef_construction is not None and hasattr(index, "hnsw"):
            index.hnsw.efConstruction = int(self.ef_construction)
        if self.use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            self._gpu_resources = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
        return index

    def _tune(self) -> None:
        faiss = self._faiss
        faiss.omp_set_num_threads(default_workers())
        if self.nprobe is not None:
            faiss.ParameterSpace().set_index_parameter(self._index, "nprobe", int(self.nprobe))
        if self.ef_search is not None:
            faiss.ParameterSpace().set_index_parameter(self._index, "efSearch", int(self.ef_search))

    def _add(self, vectors: np.ndarray) -> None:
        if self._index is None:
            self._index = self._build(vectors.shape[1])
        if not self._index.is_trained:
            n_lists = getattr(self._faiss.extract_index_ivf(self._index), "nlist", 1) if "IVF" in self.factory else 1
            if vectors.shape[0] < n_lists:
                raise ValueError(
                    f"factory {self.factory!r} needs at least {n_lists} vectors to train; got {vectors.shape[0]}"
                )
            self._index.train(vectors)
        self._index.add(vectors)

    def _count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        self._tune()
        scores, ids = self._index.search(queries, k)
        return sort_neighbors(ids, scores)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        try:
            return self._index.reconstruct_batch(positions)
        except RuntimeError:
            ivf = self._faiss.extract_index_ivf(self._index)
            ivf.make_direct_map()
            return self._index.reconstruct_batch(positions)

    def _params(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "metric": self.metric,
            "nprobe": self.nprobe,
            "ef_search": self.ef_search,
            "ef_construction": self.ef_construction,
            "use_gpu": self.use_gpu,
        }

    def _state(self):
        index = self._index
        if index is not None and hasattr(self._faiss, "index_gpu_to_cpu") and self.use_gpu:
            try:
                index = self._faiss.index_gpu_to_cpu(index)
            except (RuntimeError, AttributeError):
                pass
        blob = np.empty(0, dtype=np.uint8) if index is None else self._faiss.serialize_index(index)
        return {}, {"faiss_index": np.asarray(blob, dtype=np.uint8)}

    def _restore(self, extra, arrays) -> None:
        blob = arrays["faiss_index"]
        self._index = None if blob.size == 0 else self._faiss.deserialize_index(blob)
