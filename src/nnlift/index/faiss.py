"""``FaissIndex``: a faiss factory string (Flat, HNSW, IVF, SQ, PQ) as an nnlift index.

faiss aborts or segfaults the whole process on some factory strings
(``"HNSW0"``, ``"HNSW1"``, ``"RR0,Flat"``, ``"IVF4,PQ8x0"``; ``"NSG…"`` hangs).
So the string is parsed here against the forms below, with every number
checked, before faiss sees it:

- ``Flat``;
- ``HNSW{M}`` with M ≥ 2, alone or with an encoding: ``HNSW32,Flat``, ``HNSW32_SQ8``;
- ``IVF{n}`` with n ≥ 1 and an encoding, optionally an HNSW coarse quantizer:
  ``IVF1024,Flat``, ``IVF1024,SQ8``, ``IVF1024,PQ16``, ``IVF1024_HNSW32,Flat``;
- an encoding alone: ``SQ4``, ``SQ6``, ``SQ8``, ``SQfp16``, ``SQbf16``, ``PQ{m}`` or
  ``PQ{m}x{nbits}`` (1 ≤ nbits ≤ 16).
"""

from __future__ import annotations

import re
import warnings
from typing import Any

import numpy as np

from .._optional import require
from .._threads import default_workers
from ..neighbors import Neighbors, sort_neighbors
from .._artifact import ArtifactError, require_arrays
from .._check import check_positive_int
from .base import BaseIndex
from .labels import LabelMap
from ..errors import InputError, InputTypeError

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
        self.factory = check_factory(factory)
        self.nprobe = None if nprobe is None else check_positive_int(nprobe, "nprobe")
        self.ef_search = None if ef_search is None else check_positive_int(ef_search, "ef_search")
        self.ef_construction = None if ef_construction is None else check_positive_int(ef_construction, "ef_construction")
        if not isinstance(use_gpu, bool):
            raise InputTypeError(f"use_gpu must be True or False; got {use_gpu!r}")
        self.use_gpu = use_gpu
        self._faiss = require("faiss", "FaissIndex")
        self._index = None
        self._labels = LabelMap()  # positions ↔ faiss ids, for IVF indexes (their remove_ids does not renumber)

    def _build(self, dim: int) -> Any:
        faiss = self._faiss
        try:
            index = faiss.index_factory(dim, self.factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise InputError(f"faiss cannot build factory {self.factory!r}: {str(exc).splitlines()[-1]}") from None
        if self.ef_construction is not None and hasattr(index, "hnsw"):
            index.hnsw.efConstruction = int(self.ef_construction)
        if self.use_gpu and hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
            self._gpu_resources = faiss.StandardGpuResources()
            index = faiss.index_cpu_to_gpu(self._gpu_resources, 0, index)
        elif self.use_gpu:
            why = "this faiss build has no GPU support" if not hasattr(faiss, "StandardGpuResources") else "no GPU is visible"
            warnings.warn(f"FaissIndex(use_gpu=True): {why}; the index runs on the CPU", stacklevel=4)
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
                raise InputError(
                    f"factory {self.factory!r} needs at least {n_lists} vectors to train; got {vectors.shape[0]}"
                )
            try:
                self._index.train(vectors)
            except RuntimeError as exc:  # e.g. too few points for PQ's 2^nbits centroids
                raise InputError(f"faiss cannot train factory {self.factory!r}: {str(exc).splitlines()[-1]}") from None
        if self._ivf() is not None:
            if self._ivf().direct_map.type == self._faiss.DirectMap.Array:  # saved by an older nnlift
                self._direct_map()
            self._index.add_with_ids(vectors, self._labels.extend(len(vectors)))
        else:
            self._index.add(vectors)
            self._labels = LabelMap(int(self._index.ntotal))

    def _ivf(self) -> Any:
        """The IVF layer of an IVF index (ids kept per list, so removal leaves holes), else None."""
        if self._index is None or "IVF" not in self.factory:
            return None
        return self._faiss.extract_index_ivf(self._index)

    def _remove(self, positions: np.ndarray) -> None:
        # Each family by the means faiss has: flat codes (Flat, SQ, PQ) renumber on remove_ids, so
        # positions stay faiss ids; IVF keeps its ids, mapped to positions by self._labels; an HNSW
        # graph cannot remove at all, so it is rebuilt from the rows that stay (its training kept).
        faiss = self._faiss
        if self._ivf() is not None:
            self._direct_map()
            self._index.remove_ids(self._labels.remove(positions))
        elif isinstance(self._index, faiss.IndexFlatCodes):
            self._index.remove_ids(np.asarray(positions, dtype=np.int64))
            self._labels = LabelMap(int(self._index.ntotal))
        else:
            keep = np.delete(np.arange(self._count(), dtype=np.int64), positions)
            rows = self._get(keep) if len(keep) else None
            self._index.reset()
            if rows is not None:
                self._index.add(rows)
            self._labels = LabelMap(int(self._index.ntotal))

    def _count(self) -> int:
        return 0 if self._index is None else int(self._index.ntotal)

    def accuracy_hint(self) -> str:
        hints = []
        if "IVF" in self.factory:
            hints.append(f"raise nprobe (now {self.nprobe if self.nprobe is not None else 'faiss default 1'})")
        if "HNSW" in self.factory:
            hints.append(f"raise ef_search (now {self.ef_search if self.ef_search is not None else 'faiss default 16'})")
        if re.search(r"SQ|PQ", self.factory):
            hints.append(f"use a finer encoding than {self.factory!r} (its compression loses neighbours)")
        return ", ".join(hints) if hints else "use ExactIndex()"

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        self._tune()
        scores, ids = self._index.search(queries, k)
        return sort_neighbors(self._labels.positions(ids), scores)

    def _direct_map(self) -> None:
        """Give an IVF index the id → entry map that reconstruction needs (a hash table: it survives removals)."""
        ivf = self._ivf()
        if ivf.direct_map.type != self._faiss.DirectMap.Hashtable:
            ivf.set_direct_map_type(self._faiss.DirectMap.Hashtable)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        if self._ivf() is not None:
            self._direct_map()
        return self._index.reconstruct_batch(self._labels.of(positions))


    def _state(self):
        index = self._index
        if index is not None and hasattr(self._faiss, "index_gpu_to_cpu") and self.use_gpu:
            try:
                index = self._faiss.index_gpu_to_cpu(index)
            except (RuntimeError, AttributeError):
                pass
        blob = np.empty(0, dtype=np.uint8) if index is None else self._faiss.serialize_index(index)
        arrays = {"faiss_index": np.asarray(blob, dtype=np.uint8)}
        if not self._labels.identity:
            arrays["faiss_ids"] = self._labels.live
        return {"next_label": self._labels.next_label} if not self._labels.identity else {}, arrays

    def _restore(self, extra, arrays) -> None:
        # faiss's reader checks its own structures (HNSW links, entry point, levels) and throws on a bad one;
        # what it cannot know (the dimension, the metric) is checked here, before any search.
        require_arrays(arrays, ("faiss_index",), ("faiss_ids",), owner="FaissIndex")
        blob = arrays["faiss_index"]
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise ArtifactError("FaissIndex artifact: faiss_index must be a 1-D uint8 array")
        if blob.size == 0:
            self._index = None
            return
        try:
            index = self._faiss.deserialize_index(blob)
        except RuntimeError as exc:
            raise ArtifactError(f"FaissIndex artifact: faiss refuses the saved index ({str(exc).splitlines()[-1]})") from None
        if index.d != self.dim or index.metric_type != self._faiss.METRIC_INNER_PRODUCT:
            raise ArtifactError(
                f"FaissIndex artifact: the saved index has dimension {index.d} and {index.ntotal} vectors; "
                f"expected dimension {self.dim} and inner-product scores"
            )
        self._index = index
        self._labels = self._restored_labels(extra, arrays.get("faiss_ids"), int(index.ntotal))

    def _ivf_ids(self) -> np.ndarray:
        """Every id the IVF lists hold, ascending."""
        lists = self._ivf().invlists
        parts = [
            self._faiss.rev_swig_ptr(lists.get_ids(number), lists.list_size(number)).copy()
            for number in range(lists.nlist)
            if lists.list_size(number)
        ]
        return np.sort(np.concatenate(parts)).astype(np.int64) if parts else np.empty(0, dtype=np.int64)

    def _restored_labels(self, extra: dict, ids: np.ndarray | None, count: int) -> LabelMap:
        """The position ↔ faiss id map of an IVF index that had removals, checked against the index."""
        if ids is None:
            if extra:
                raise ArtifactError(f"FaissIndex artifact: unexpected extra fields {sorted(extra)}")
            if self._ivf() is not None and not np.array_equal(self._ivf_ids(), np.arange(count)):
                raise ArtifactError("FaissIndex artifact: the IVF lists hold ids other than 0..n-1 and no faiss_ids")
            return LabelMap(count)
        next_label = extra.get("next_label")
        if self._ivf() is not None and not np.array_equal(ids, self._ivf_ids()):
            raise ArtifactError("FaissIndex artifact: faiss_ids are not the ids the IVF lists hold")
        if (
            self._ivf() is None
            or set(extra) != {"next_label"}
            or ids.ndim != 1
            or ids.dtype.kind != "i"
            or len(ids) != count
            or isinstance(next_label, bool)
            or not isinstance(next_label, int)
            or (count and (ids[0] < 0 or (np.diff(ids) <= 0).any() or next_label <= ids[-1]))
        ):
            raise ArtifactError(
                "FaissIndex artifact: faiss_ids must be the IVF index's ids, ascending, one per vector, "
                "with extra.next_label above them"
            )
        return LabelMap(live=ids.astype(np.int64), next_label=next_label)


_ENCODING = r"(?:Flat|SQ(?:4|6|8|fp16|bf16)|PQ(?P<pq_m>\d+)(?:x(?P<pq_bits>\d+))?)"
_FACTORIES = (
    re.compile(r"^Flat$"),
    re.compile(rf"^HNSW(?P<hnsw>\d+)(?:[,_]{_ENCODING})?$"),
    re.compile(rf"^IVF(?P<lists>\d+)(?:_HNSW(?P<hnsw>\d+))?,{_ENCODING}$"),
    re.compile(rf"^{_ENCODING}$"),
)
_LIMITS = {"hnsw": (2, 1024), "lists": (1, 1 << 24), "pq_m": (1, 4096), "pq_bits": (1, 16)}
_WHAT = {"hnsw": "HNSW's M", "lists": "the IVF list count", "pq_m": "PQ's sub-quantizers", "pq_bits": "PQ's bits"}


def check_factory(factory: Any) -> str:
    """Validate a faiss factory string against the forms faiss handles safely (module docstring)."""
    if not isinstance(factory, str) or not factory:
        raise InputTypeError(f"factory must be a faiss factory string such as 'Flat' or 'HNSW32'; got {factory!r}")
    for pattern in _FACTORIES:
        match = pattern.match(factory)
        if match is None:
            continue
        for name, value in match.groupdict().items():
            if value is None:
                continue
            low, high = _LIMITS[name]
            if not low <= int(value) <= high:
                raise InputError(
                    f"factory={factory!r}: {_WHAT[name]} must be in [{low}, {high}]; got {int(value)}"
                )
        return factory
    raise InputError(
        f"factory={factory!r} is not a supported faiss factory string; use Flat, HNSW{{M}}[,Flat|_SQ8], "
        "IVF{n}[_HNSW{M}],{Flat|SQ8|PQ{m}}, SQ8 or PQ{m}[x{bits}] (see nnlift.index.faiss)"
    )
