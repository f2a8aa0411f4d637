"""``QdrantIndex``: a Qdrant collection as an nnlift index, through qdrant-client.

The same code talks to a Qdrant server (``url=``/``api_key=`` or the
``QDRANT_URL``/``QDRANT_API_KEY`` environment variables) and to qdrant-client's
local mode (``path=`` or ``":memory:"``), which is a pure-Python stand-in that
suits tests, not speed.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .._artifact import ArtifactError, Contents, load_artifact
from .._artifact import save as save_object
from .._check import check_array, check_ids, check_metric, check_positive_int
from .._optional import require
from .._progress import progress_bar
from ..neighbors import Neighbors, sort_neighbors
from ..errors import InputError, InputTypeError, UnknownIdError
from .base import BaseIndex

__all__ = ["QdrantIndex", "connect", "point_id", "with_retries"]
logger = logging.getLogger("nnlift")
_NAMESPACE = uuid.UUID("6f1c2a4e-6c1b-4f4e-9a51-6e6e6c69667e")  # nnlift's namespace for string ids
SEQ, KEY = "nnlift_seq", "nnlift_id"


def connect(
    url: str | None = None,
    api_key: str | None = None,
    path: str | os.PathLike | None = None,
    location: str | None = None,
) -> Any:
    """A ``QdrantClient``: server by ``url`` (or ``$QDRANT_URL``), local files by ``path``, else ``":memory:"``."""
    qdrant_client = require("qdrant_client", "the Qdrant integration")
    url = url or os.environ.get("QDRANT_URL")
    if url:
        return qdrant_client.QdrantClient(url=url, api_key=api_key or os.environ.get("QDRANT_API_KEY"))
    if path is not None:
        return qdrant_client.QdrantClient(path=str(path))
    return qdrant_client.QdrantClient(location or ":memory:")


def point_id(external: Any) -> int | str:
    """The Qdrant point id of an external id.

    Ids that already are Qdrant point ids are used as they are: unsigned
    integers, and UUID strings (in Qdrant's canonical lower-case form). Any
    other string becomes a stable UUID (uuid5 in nnlift's namespace), with the
    original kept in the payload. So ids read back from a collection map to
    the same points, whatever kind of ids it was built with.

    Examples
    --------
    >>> point_id(7), point_id("6F1C2A4E-6C1B-4F4E-9A51-6E6E6C69667E")
    (7, '6f1c2a4e-6c1b-4f4e-9a51-6e6e6c69667e')
    >>> point_id("V_126H754") == point_id("V_126H754") != "V_126H754"
    True
    """
    if isinstance(external, (bool, np.bool_)):
        raise InputTypeError(f"Qdrant point ids must be integers or strings; got {external!r}")
    if isinstance(external, (int, np.integer)):
        if not 0 <= external < 2**64:
            raise InputError(f"Qdrant point ids must be integers in [0, 2**64); got {external}")
        return int(external)
    if not isinstance(external, (str, np.str_)):
        raise InputTypeError(f"Qdrant point ids must be integers or strings; got {type(external).__name__}")
    try:
        return str(uuid.UUID(str(external)))
    except ValueError:
        return str(uuid.uuid5(_NAMESPACE, str(external)))


def _transient(exc: BaseException) -> bool:
    status = getattr(exc, "status_code", None)
    if status is not None:
        return status in (408, 429, 500, 502, 503, 504)
    return isinstance(exc, (ConnectionError, TimeoutError)) or type(exc).__name__ in (
        "ResponseHandlingException",
        "ConnectError",
        "ReadTimeout",
        "ConnectTimeout",
        "RemoteProtocolError",
    )


def with_retries(call: Callable[[], Any], *, retries: int = 5, backoff: float = 0.5) -> Any:
    """Run ``call``, retrying transient errors (timeouts, 429/5xx) with exponential backoff."""
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - filtered by _transient
            if attempt == retries or not _transient(exc):
                raise
            delay = backoff * 2**attempt
            logger.warning("Qdrant call failed (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
    return None


class QdrantIndex(BaseIndex):
    """An nnlift index over a Qdrant collection.

    A :class:`~nnlift.index.BaseIndex` with the shared rules: a point's
    position is its insertion order (the ``nnlift_seq`` payload), ties go to
    the lower position, rows pad with -1/-inf; string ids come back as
    ``keys`` with ``ids`` holding positions, int ids as ``ids``. As an
    ``index=`` template it clones into a scratch collection on the same
    client (``<collection>-nnlift-<8 hex>``), and answers every reduction by
    the candidate route (``nnlift.index.candidates``).

    Parameters
    ----------
    collection : str
    url, api_key : str, optional
        A server (or ``$QDRANT_URL``/``$QDRANT_API_KEY``).
    path : path, optional
        qdrant-client local mode on disk; with neither ``url`` nor ``path``, ``":memory:"``.
    using : str, optional
        The named vector to read and search; ``None`` for a collection's single unnamed vector.
    metric : {"cosine", "ip"}
        Distance of a collection this index creates: Cosine or Dot.
    client : QdrantClient, optional
        An existing client (its connection wins over url/path).
    batch_size : int
        Points per upsert.

    Examples
    --------
    >>> import numpy as np
    >>> index = QdrantIndex("demo", using="dense").add(np.eye(3), ids=["a", "b", "c"])  # doctest: +SKIP
    >>> index.search([[0.0, 1.0, 0.1]], k=1).keys.tolist()  # doctest: +SKIP
    [['b']]
    """

    def __init__(
        self,
        collection: str,
        *,
        url: str | None = None,
        api_key: str | None = None,
        path: str | os.PathLike | None = None,
        using: str | None = None,
        metric: str = "cosine",
        client: Any = None,
        batch_size: int = 256,
        retries: int = 5,
        progress: bool = True,
    ) -> None:
        if not isinstance(collection, str) or not collection:
            raise InputError(f"collection must be a non-empty name; got {collection!r}")
        super().__init__(metric)
        self.collection = collection
        self.url = url or os.environ.get("QDRANT_URL")
        self.path = None if path is None else str(path)
        self.using = using
        self.metric = check_metric(metric)
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.retries = retries
        self.progress = progress
        self.client = client if client is not None else connect(url, api_key, path)
        self.api_key = api_key
        self._models = require("qdrant_client.models", "the Qdrant integration")

    def clone(self, **overrides: Any) -> QdrantIndex:
        """A new, empty index over a scratch collection of the same client (``<collection>-nnlift-<8 hex>``)."""
        name = f"{self.collection}-nnlift-{uuid.uuid4().hex[:8]}"
        params = {"using": self.using, "metric": self.metric, "batch_size": self.batch_size, "retries": self.retries}
        params.update(progress=self.progress, **overrides)
        return QdrantIndex(name, client=self.client, url=self.url, path=self.path, **params)

    # -- collection --------------------------------------------------------
    def exists(self) -> bool:
        return bool(with_retries(lambda: self.client.collection_exists(self.collection), retries=self.retries))

    def _vector_params(self) -> Any:
        if not self.exists():
            raise InputError(f"Qdrant collection {self.collection!r} does not exist")
        vectors = self.client.get_collection(self.collection).config.params.vectors
        if isinstance(vectors, dict):
            if self.using is None:
                raise InputError(f"collection {self.collection!r} has named vectors {sorted(vectors)}; pass using=")
            if self.using not in vectors:
                raise InputError(
                    f"collection {self.collection!r} has no named vector {self.using!r}; it has {sorted(vectors)}"
                )
            return vectors[self.using]
        if self.using is not None:
            raise InputError(
                f"collection {self.collection!r} has one unnamed vector; using={self.using!r} does not exist"
            )
        return vectors

    @property
    def dim(self) -> int | None:
        return int(self._vector_params().size) if self.exists() else None

    @dim.setter
    def dim(self, value: int | None) -> None:
        pass  # the collection holds its width (BaseIndex's own bookkeeping is not needed)

    def _create(self, dim: int) -> None:
        models = self._models
        distance = models.Distance.COSINE if self.metric == "cosine" else models.Distance.DOT
        params = models.VectorParams(size=dim, distance=distance)
        config = {self.using: params} if self.using is not None else params
        with_retries(
            lambda: self.client.create_collection(self.collection, vectors_config=config), retries=self.retries
        )
        if self.url is not None:  # local mode has no payload indexes (and warns about them)
            with_retries(
                lambda: self.client.create_payload_index(self.collection, SEQ, models.PayloadSchemaType.INTEGER),
                retries=self.retries,
            )

    def accuracy_hint(self) -> str:
        return f"raise collection {self.collection!r}'s HNSW settings (hnsw_config m, ef_construct) on the server"

    def __len__(self) -> int:
        if not self.exists():
            return 0
        return int(with_retries(lambda: self.client.count(self.collection, exact=True).count, retries=self.retries))

    # -- protocol ------------------------------------------------------------
    def _vector(self, row: np.ndarray) -> Any:
        values = row.tolist()
        return {self.using: values} if self.using is not None else values

    def add(self, vectors: Any, ids: Any = None) -> QdrantIndex:
        """Upsert vectors in batches (with retries); string ids become UUIDs, the original kept in the payload."""
        array = check_array(vectors, "vectors")
        if self.exists():
            dim = self.dim
            if array.shape[1] != dim:
                raise InputError(f"vectors have {array.shape[1]} dimensions; collection {self.collection!r} has {dim}")
        else:
            self._create(array.shape[1])
        start = self._next_seq()
        external = np.arange(start, start + len(array)) if ids is None else check_ids(ids, len(array))
        taken = self._existing(external.tolist())
        if taken:
            raise InputError(f"ids already in collection {self.collection!r}: {taken[:3]}; use update(ids, vectors)")
        self._upsert(array, external, np.arange(start, start + len(array)))
        return self

    def _upsert(self, array: np.ndarray, external: np.ndarray, seqs: np.ndarray) -> None:
        """Write points in batches (with retries): each keeps its id, its position (``nnlift_seq``) and string key."""
        models = self._models
        self._sequence_cache = None
        with progress_bar(
            f"upserting into {self.collection}", len(array), enabled=self.progress, expected_seconds=len(array) / 2000
        ) as bar:
            for lo in range(0, len(array), self.batch_size):
                hi = min(lo + self.batch_size, len(array))
                points = []
                for row in range(lo, hi):
                    key = external[row].item()
                    payload = {SEQ: int(seqs[row])}
                    if isinstance(key, str):
                        payload[KEY] = key
                    points.append(
                        models.PointStruct(id=point_id(key), vector=self._vector(array[row]), payload=payload)
                    )
                with_retries(
                    lambda: self.client.upsert(self.collection, points=points, wait=True), retries=self.retries
                )
                bar.advance(hi - lo)

    def _existing(self, values: list) -> list:
        """Those of ``values`` (external ids) that are points of the collection."""
        if not values:
            return []
        wanted = [point_id(v) for v in values]
        found = with_retries(
            lambda: self.client.retrieve(self.collection, ids=wanted, with_payload=False, with_vectors=False),
            retries=self.retries,
        )
        present = {str(p.id) for p in found}
        return [v for v, w in zip(values, wanted) if str(w) in present]

    def _seqs_of(self, values: list) -> list:
        """The ``nnlift_seq`` of each external id; an unknown id raises ``UnknownIdError``, a repeated one ``InputError``."""
        if len(set(values)) != len(values):
            raise InputError("ids repeats an id; give each id once")
        wanted = [point_id(v) for v in values]
        found = with_retries(
            lambda: self.client.retrieve(self.collection, ids=wanted, with_payload=[SEQ], with_vectors=False),
            retries=self.retries,
        )
        by_id = {str(p.id): (p.payload or {}).get(SEQ) for p in found}
        missing = [v for v, w in zip(values, wanted) if str(w) not in by_id]
        if missing:
            raise UnknownIdError(f"unknown id(s): {missing[:5]} (collection {self.collection!r})")
        return [by_id[str(w)] for w in wanted]

    def _sequence(self) -> np.ndarray:
        """Every point's ``nnlift_seq``, ascending (cached until this index writes or removes)."""
        count = len(self)
        cached = getattr(self, "_sequence_cache", None)
        if cached is None or len(cached) != count:
            seqs = [seq for _, found, _ in self.scroll_records(vectors=False) for seq in found if seq is not None]
            cached = np.sort(np.asarray(seqs, dtype=np.int64))
            self._sequence_cache = cached
        return cached

    def _next_seq(self) -> int:
        if not self.exists():
            return 0
        seqs = self._sequence()
        return int(seqs[-1]) + 1 if len(seqs) else 0

    def remove(self, ids: Any) -> QdrantIndex:
        """Delete points by id (with retries); unknown or repeated ids raise before anything is deleted."""
        values = [ids] if isinstance(ids, (str, int, np.integer)) else list(np.asarray(ids).tolist())
        self._vector_params()
        self._seqs_of(values)
        if values:
            selector = self._models.PointIdsList(points=[point_id(v) for v in values])
            with_retries(
                lambda: self.client.delete(self.collection, points_selector=selector, wait=True), retries=self.retries
            )
            self._sequence_cache = None
        return self

    def _remove(self, positions: np.ndarray) -> None:
        seqs = self._sequence()[positions].tolist()
        models = self._models
        condition = models.FieldCondition(key=SEQ, match=models.MatchAny(any=seqs))
        selector = models.FilterSelector(filter=models.Filter(must=[condition]))
        with_retries(
            lambda: self.client.delete(self.collection, points_selector=selector, wait=True), retries=self.retries
        )
        self._sequence_cache = None

    def remove_positions(self, positions: np.ndarray) -> None:
        self._remove(positions)

    def update(self, ids: Any, vectors: Any) -> QdrantIndex:
        """Replace the vectors of existing points; each keeps its id, payload key and position."""
        values = [ids] if isinstance(ids, (str, int, np.integer)) else list(np.asarray(ids).tolist())
        array = check_array(vectors, "vectors", width=int(self._vector_params().size))
        if len(array) != len(values):
            raise InputError(f"update got {len(values)} ids but {len(array)} vectors; give one vector per id")
        seqs = self._seqs_of(values)
        if None in seqs:
            raise InputError("update needs points nnlift wrote (with an nnlift_seq payload)")
        self._upsert(array, check_ids(values, len(values)), np.asarray(seqs, dtype=np.int64))
        return self

    def search(self, queries: Any, k: int) -> Neighbors:
        """Top-k per query from the collection; ``keys`` hold string ids (UUID-backed), ``ids`` int ids.

        Rows follow nnlift's shared order: descending score, ties to the lower
        insertion position (as ``ExactIndex`` with ids), padding last. Qdrant
        breaks ties its own way, so each query asks for ``k`` plus a margin
        (``min(k, 16)`` more) and the tie rule picks the ``k`` among them: exact
        whenever the tie group at the k-th score fits in that margin.
        """
        dim = int(self._vector_params().size)
        array = check_array(queries, "queries", width=dim)
        k = check_positive_int(k, "k")
        ids, _, scores, keys, any_keys = self._query(array, k)
        return Neighbors(ids, scores, keys if any_keys else None)

    def _query(self, array: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, bool]:
        """Per query its top-k by the shared rule: ids, positions (``nnlift_seq``), scores, keys, and whether keys are strings."""
        wide = k + min(k, 16)
        ids = np.full((len(array), wide), -1, dtype=np.int64)
        ranks = np.full((len(array), wide), -1, dtype=np.int64)  # the insertion position: what ties go by
        scores = np.full((len(array), wide), -np.inf, dtype=np.float32)
        keys = np.full((len(array), wide), None, dtype=object)
        any_keys = False
        for row, query in enumerate(array):
            result = with_retries(
                lambda: self.client.query_points(
                    self.collection, query=query.tolist(), using=self.using, limit=wide, with_payload=[SEQ, KEY]
                ),
                retries=self.retries,
            )
            for col, point in enumerate(result.points):
                payload = point.payload or {}
                scores[row, col] = point.score
                if isinstance(point.id, int):
                    ids[row, col] = point.id
                    keys[row, col] = point.id
                else:
                    any_keys = True
                    ids[row, col] = payload.get(SEQ, uuid.UUID(str(point.id)).int & 0x7FFFFFFFFFFFFFFF)
                    keys[row, col] = payload.get(KEY, str(point.id))
                ranks[row, col] = payload.get(SEQ, ids[row, col])
        # Sort by (score desc, insertion position asc), as ExactIndex does, and carry ids and keys along.
        positions = np.broadcast_to(np.arange(wide), ids.shape)
        ordered = sort_neighbors(ranks, scores, positions)
        take = ordered.keys[:, :k].astype(np.int64)
        found = ordered.ids[:, :k] >= 0
        found_ids = np.where(found, np.take_along_axis(ids, take, axis=1), -1)
        found_keys = np.take_along_axis(keys, take, axis=1)
        found_keys[~found] = None
        return found_ids, np.where(found, ordered.ids[:, :k], -1), ordered.scores[:, :k], found_keys, any_keys

    # -- BaseIndex hooks: positions are insertion order (nnlift_seq) ----------
    def _count(self) -> int:
        return len(self)

    def _add(self, vectors: np.ndarray) -> None:
        self.add(vectors)

    def _search(self, queries: np.ndarray, k: int) -> Neighbors:
        _, seqs, scores, _, _ = self._query(queries, k)
        # Positions are ranks of nnlift_seq: after a removal, seqs have gaps that positions do not.
        sequence = self._sequence()
        positions = np.where(seqs >= 0, np.searchsorted(sequence, np.maximum(seqs, 0)), -1)
        return Neighbors(positions, scores)

    def stored_vectors(self) -> np.ndarray:
        """Every point's vector in position order (points nnlift did not write, without ``nnlift_seq``, last)."""
        parts, orders = [], []
        for _, seqs, vectors in self.scroll_records():
            parts.append(vectors)
            orders.extend(len(self) + 1 if seq is None else seq for seq in seqs)
        if not parts:
            return np.empty((0, self.dim or 0), dtype=np.float32)
        return np.ascontiguousarray(np.concatenate(parts)[np.argsort(orders, kind="stable")])

    def _get(self, positions: np.ndarray) -> np.ndarray:
        return self.stored_vectors()[positions]

    @property
    def ids(self) -> np.ndarray:
        """External ids in insertion order (read from the collection)."""
        pairs = [(seq, key) for keys, seqs, _ in self.scroll_records() for key, seq in zip(keys, seqs)]
        pairs.sort(key=lambda pair: (pair[0] is None, pair[0] if pair[0] is not None else 0))
        values = [key for _, key in pairs]
        return np.array(values) if values and isinstance(values[0], str) else np.array(values, dtype=np.int64)

    def get(self, ids: Any) -> np.ndarray:
        """Stored vectors of external ids; unknown ids raise ``KeyError`` naming them."""
        self._vector_params()  # a clear error for a missing collection or vector name
        values = [ids] if isinstance(ids, (str, int, np.integer)) else list(np.asarray(ids).tolist())
        wanted = [point_id(v) for v in values]
        found = with_retries(
            lambda: self.client.retrieve(
                self.collection, ids=wanted, with_vectors=[self.using] if self.using else True
            ),
            retries=self.retries,
        )
        by_id = {str(p.id): p.vector for p in found}
        missing = [v for v, w in zip(values, wanted) if str(w) not in by_id]
        if missing:
            raise UnknownIdError(f"unknown id(s): {missing[:5]} (collection {self.collection!r})")
        rows = [by_id[str(w)][self.using] if self.using else by_id[str(w)] for w in wanted]
        return np.asarray(rows, dtype=np.float32)

    def scroll_vectors(self, batch: int = 1024) -> Iterator[tuple[list, np.ndarray]]:
        """Every point's id (the original for string ids) and vector, in batches."""
        for ids, _, vectors in self.scroll_records(batch):
            yield ids, vectors

    def scroll_records(self, batch: int = 1024, *, vectors: bool = True) -> Iterator[tuple[list, list, np.ndarray | None]]:
        """Every point's id, its ``nnlift_seq`` payload (None where absent) and vector (None without ``vectors``), in batches."""
        offset = None
        wanted = ([self.using] if self.using else True) if vectors else False
        while True:
            points, offset = with_retries(
                lambda: self.client.scroll(
                    self.collection, limit=batch, offset=offset, with_payload=[KEY, SEQ], with_vectors=wanted
                ),
                retries=self.retries,
            )
            if points:
                ids = [(p.payload or {}).get(KEY, p.id) for p in points]
                seqs = [(p.payload or {}).get(SEQ) for p in points]
                rows = None
                if vectors:
                    rows = np.asarray([p.vector[self.using] if self.using else p.vector for p in points], dtype=np.float32)
                yield ids, seqs, rows
            if offset is None:
                return

    # -- persistence ---------------------------------------------------------
    _saved_params = ("collection", "url", "path", "using", "metric", "batch_size", "retries")

    # The points live in the collection: the artifact holds how to reach it, no arrays.
    def _state(self):
        return {}, {}

    def _restore(self, extra, arrays) -> None:
        if extra or arrays:
            raise ArtifactError("QdrantIndex artifact: it holds a connection description only")

    def _artifact(self) -> Contents:
        if self.url is None and self.path is None:
            raise InputError("an in-memory Qdrant collection cannot be reopened; use path= or a server url to save it")
        extra, arrays = self._state()
        return Contents({name: getattr(self, name) for name in self._saved_params}, arrays, extra)

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Save the connection description (collection, url or path, using), never the data or the API key."""
        self._artifact()  # refuse an in-memory collection before touching the path
        return save_object(self, path, overwrite=overwrite)

    @classmethod
    def _from_artifact(cls, manifest: dict, arrays: dict, parts: dict) -> QdrantIndex:
        if parts:
            raise ArtifactError("QdrantIndex artifact: it holds a connection description only")
        index = cls(**manifest["params"])
        index._restore(manifest["extra"], arrays)
        return index

    @classmethod
    def load(cls, path: str | os.PathLike) -> QdrantIndex:
        """Reconnect to the collection described by a saved artifact."""
        return load_artifact(path, expected_class=cls)

    def __repr__(self) -> str:
        where = self.url or self.path or ":memory:"
        return f"QdrantIndex(collection={self.collection!r}, using={self.using!r}, at={where!r})"
