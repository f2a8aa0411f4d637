"""``HnswIndex``: an hnswlib graph as an nnlift index.

A saved graph is a binary blob that hnswlib reads with no checks of its own:
a neighbour id past the end, or a link to a node on a lower level, makes its
search read outside its buffers and crash the process. So :func:`check_graph`
walks the whole blob (header, level-0 links, labels, the upper levels' links)
against the index's parameters before hnswlib sees it.
"""

from __future__ import annotations

import math
import os
import struct
import tempfile
from typing import Any

import numpy as np

from .._optional import require
from .._threads import default_workers
from ..neighbors import Neighbors, sort_neighbors
from .._artifact import ArtifactError, require_arrays
from .._check import check_positive_int
from .base import BaseIndex
from .labels import LabelMap

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
        # hnswlib crashes (segfaults) on M < 2 and misbehaves on non-positive breadths: check first.
        self.M = check_positive_int(M, "M", minimum=2)
        self.ef_construction = check_positive_int(ef_construction, "ef_construction")
        self.ef_search = check_positive_int(ef_search, "ef_search")
        self.seed = check_positive_int(seed, "seed", minimum=0)
        self._hnswlib = require("hnswlib", "HnswIndex")
        self._index = None
        self._labels = LabelMap()  # positions ↔ hnswlib labels; removed items stay in the graph, marked deleted

    def _new(self, dim: int, capacity: int) -> Any:
        index = self._hnswlib.Index(space="ip", dim=dim)
        index.init_index(max_elements=capacity, ef_construction=self.ef_construction, M=self.M, random_seed=self.seed)
        return index

    def _add(self, vectors: np.ndarray) -> None:
        nodes = 0 if self._index is None else self._index.get_current_count()  # deleted nodes included
        if self._index is None:
            self._index = self._new(vectors.shape[1], max(vectors.shape[0], 1))
        elif nodes + vectors.shape[0] > self._index.get_max_elements():
            self._index.resize_index(max(2 * nodes, nodes + vectors.shape[0]))
        labels = self._labels.extend(vectors.shape[0])
        self._index.add_items(vectors, labels, num_threads=default_workers())

    def _remove(self, positions: np.ndarray) -> None:
        for label in self._labels.remove(positions).tolist():
            self._index.mark_deleted(label)  # hnswlib skips it in every search from now on

    def _count(self) -> int:
        return len(self._labels)

    def accuracy_hint(self) -> str:
        return f"raise ef_search (now {self.ef_search}) or M (now {self.M})"

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        self._index.set_ef(max(self.ef_search, k))
        labels, distances = self._index.knn_query(queries, k=k, num_threads=default_workers())
        # hnswlib's "ip" space reports 1 - inner product.
        return sort_neighbors(self._labels.positions(labels.astype(np.int64)), 1.0 - distances)

    def _get(self, positions: np.ndarray) -> np.ndarray:
        labels = self._labels.of(positions)
        return np.asarray(self._index.get_items(labels), dtype=np.float32).reshape(len(positions), self.dim)


    def _state(self):
        if self._index is None:
            return {}, {"hnsw_graph": np.empty(0, dtype=np.uint8)}
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "graph.bin")
            self._index.save_index(file)
            blob = np.fromfile(file, dtype=np.uint8)
        return {"capacity": int(self._index.get_max_elements())}, {"hnsw_graph": blob}

    def _restore(self, extra, arrays) -> None:
        require_arrays(arrays, ("hnsw_graph",), owner="HnswIndex")
        blob = arrays["hnsw_graph"]
        if blob.dtype != np.uint8 or blob.ndim != 1:
            raise ArtifactError("HnswIndex artifact: hnsw_graph must be a 1-D uint8 array")
        if blob.size == 0:
            if extra or self.dim is not None:
                raise ArtifactError("HnswIndex artifact: an empty graph cannot have a dimension or capacity")
            return
        if set(extra) != {"capacity"}:
            raise ArtifactError(f"HnswIndex artifact: extra must hold exactly 'capacity' and 'dim'; got {sorted(extra)}")
        live = check_graph(blob, dim=self.dim or 0, M=self.M, ef_construction=self.ef_construction, capacity=extra["capacity"])
        nodes = int(_HEADER.unpack_from(blob.tobytes(), 0)[2])
        self._labels = LabelMap(nodes) if len(live) == nodes else LabelMap(live=live, next_label=nodes)
        with tempfile.TemporaryDirectory() as folder:
            file = os.path.join(folder, "graph.bin")
            blob.tofile(file)
            self._index = self._hnswlib.Index(space="ip", dim=self.dim)
            self._index.load_index(file, max_elements=extra.get("capacity", 0))


_HEADER = struct.Struct("<QQQQQQiIQQQdQ")  # hnswlib 0.8 HierarchicalNSW::saveIndex, in order
_MAX_LEVEL = 255


def check_graph(blob: np.ndarray, *, dim: int, M: int, ef_construction: int, capacity: Any) -> np.ndarray:
    """Raise ``ArtifactError`` unless ``blob`` is a well-formed hnswlib 0.8 graph of these parameters.

    Checks every field hnswlib trusts when it loads and searches: the header
    against ``dim``/``M``/``ef_construction``/``capacity``, each node's link
    counts and neighbour ids, that labels are the labels 0..n-1 (in any order), that the
    stored vectors are finite, and that each upper-level link points to a node
    that lives on that level. The blob's size must match to the byte.

    Returns the live labels (nodes not marked deleted by a removal), ascending.
    """

    def fail(message: str) -> ArtifactError:
        return ArtifactError(f"HnswIndex artifact: the graph is malformed ({message})")

    if len(blob) < _HEADER.size:
        raise fail("shorter than its header")
    raw = blob.tobytes()
    (offset0, max_elements, count, size_element, label_offset, offset_data, max_level, entry, max_m, max_m0, m,
     mult, efc) = _HEADER.unpack_from(raw, 0)  # fmt: skip
    links0 = 4 + 4 * 2 * M
    expected = {
        "offsetLevel0": (offset0, 0),
        "maxM": (max_m, M),
        "maxM0": (max_m0, 2 * M),
        "M": (m, M),
        "ef_construction": (efc, ef_construction),
        "offsetData": (offset_data, links0),
        "label_offset": (label_offset, links0 + 4 * dim),
        "size_data_per_element": (size_element, links0 + 4 * dim + 8),
    }
    for name, (found, wanted) in expected.items():
        if found != wanted:
            raise fail(f"{name} is {found}, expected {wanted}")
    if isinstance(capacity, bool) or not isinstance(capacity, int) or not 1 <= count <= capacity <= 2 * count + 1:
        raise fail(f"{count} nodes with capacity {capacity!r}")
    if max_elements != capacity:
        raise fail(f"max_elements is {max_elements}, the artifact says {capacity}")
    if not (0 <= entry < count and 0 <= max_level <= _MAX_LEVEL and math.isfinite(mult) and mult > 0):
        raise fail(f"entry point {entry}, top level {max_level}, level multiplier {mult}")
    end0 = _HEADER.size + count * size_element
    if len(raw) < end0:
        raise fail("shorter than its level-0 data")
    level0 = np.frombuffer(raw, dtype=np.uint8, count=count * size_element, offset=_HEADER.size).reshape(count, -1)
    deleted = _check_links(level0[:, :links0], 2 * M, count, np.zeros(count, dtype=np.int64), 0, fail, level0=True)
    labels = np.ascontiguousarray(level0[:, label_offset:]).view("<u8").ravel()
    if not np.array_equal(np.sort(labels), np.arange(count, dtype=np.uint64)):  # threads add in any order
        raise fail("labels are not the positions 0..n-1")
    if not np.isfinite(np.ascontiguousarray(level0[:, offset_data:label_offset]).view("<f4")).all():
        raise fail("stored vectors have NaN or inf values")
    # Upper levels: per node a uint32 byte size, then `level` blocks of (4 + 4·maxM) bytes.
    block = 4 + 4 * M
    levels = np.zeros(count, dtype=np.int64)
    starts = np.zeros(count, dtype=np.int64)
    position = end0
    for node in range(count):
        if position + 4 > len(raw):
            raise fail("its link lists are cut short")
        (size,) = struct.unpack_from("<I", raw, position)
        position += 4
        if size:
            if size % block or size // block > max_level:
                raise fail(f"node {node} has an upper-level list of {size} bytes")
            levels[node], starts[node] = size // block, position
            position += size
    if position != len(raw):
        raise fail(f"{len(raw) - position} bytes past its last link list")
    if levels.max() != max_level or levels[entry] != max_level:
        raise fail("the top level does not match the nodes' levels")
    upper = np.flatnonzero(levels)
    if len(upper):
        # One row per (node, level >= 1) block, gathered in a single fancy index.
        node_of = np.repeat(upper, levels[upper])
        level_of = np.concatenate([np.arange(1, levels[i] + 1) for i in upper])
        offsets = starts[node_of] + (level_of - 1) * block
        blocks = np.frombuffer(raw, dtype=np.uint8)[offsets[:, None] + np.arange(block)]
        _check_links(blocks, M, count, levels, level_of, fail)
    return np.sort(labels[~deleted].astype(np.int64))


_DELETE_MARK = 1  # hnswlib's mark_deleted sets this bit in the third byte of a node's level-0 link header


def _check_links(rows, width: int, count: int, levels: np.ndarray, level: Any, fail, level0: bool = False) -> np.ndarray:
    """Rows of (uint16 count, flags, zero byte, ``width`` uint32 ids): counts ≤ width, ids < count, on ``level``.

    Only level 0 may carry a flag, hnswlib's delete mark; returns which rows carry it.
    """
    header = np.ascontiguousarray(rows[:, :4])
    sizes = header[:, :2].copy().view("<u2").ravel()
    flags_allowed = _DELETE_MARK if level0 else 0
    if (header[:, 3] != 0).any() or (header[:, 2] & ~np.uint8(flags_allowed)).any():
        raise fail("a node has flags hnswlib does not write here")
    if (sizes > width).any():
        raise fail(f"a node has more than {width} links")
    ids = np.ascontiguousarray(rows[:, 4:]).view("<u4").reshape(len(rows), width)
    used = np.arange(width) < sizes[:, None]
    if (ids[used] >= count).any():
        raise fail("a link points past the last node")
    if np.ndim(level):
        deep_enough = levels[np.where(used, ids, 0).astype(np.int64)] >= np.asarray(level)[:, None]
        if not deep_enough[used].all():
            raise fail("an upper-level link points to a node below that level")
    return header[:, 2] == _DELETE_MARK
