"""Working on Qdrant collections: sampling their neighbour structure and writing corrections back.

Every write is idempotent (running it twice gives the same state) and
resumable, and reports progress. Each written point carries a marker in its
payload, one per writer and vector name (``nnlift_written__nnn__nnn``): a
digest of exactly what was written to that point (its id, every index and
value of its vector, its payload). A re-run skips a point only when its marker
equals the digest of what it would write now, so any change to any id, index
or value is rewritten, an unchanged run writes nothing, and writers sharing a
collection never invalidate each other's markers.

Writes into the collection itself only add the named vector, the marker and
the writer's own payload (``nnn_bias``): they never touch ``nnlift_seq`` or
``nnlift_id``, which string-id search depends on. Writing into the vector that
is being read is refused.

A collection cannot gain a named vector after it is created (on a server or
in local mode), so a write goes to the named vector ``name`` when the
collection already has it, and otherwise to a companion collection
``{collection}_{name}`` holding the same point ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._check import check_array, check_finite_scalar, check_positive_int, normalize_rows
from ._optional import require
from ._progress import progress_bar
from .correct.nnn import NNN
from .index.qdrant import KEY, SEQ, QdrantIndex, point_id, with_retries
from .sampling import SampledMatrix, sample_neighbors
from .neighbors import Neighbors
from .errors import InputError

__all__ = [
    "SampledMatrix",
    "sample_similarity_matrix",
    "read_collection",
    "read_records",
    "marker_key",
    "write_nnn",
    "nnn_search",
    "write_vectors",
    "write_sparse",
    "Destination",
]
logger = logging.getLogger("nnlift")
MARKER = "nnlift_written"


def marker_key(writer: str, name: str) -> str:
    """The payload key holding ``writer``'s marker for the vector ``name``."""
    return f"{MARKER}__{writer}__{name}"


def _metric(index: QdrantIndex) -> str:
    distance = str(index._vector_params().distance).lower()
    return "cosine" if "cosine" in distance else "ip"


def read_collection(index: QdrantIndex) -> tuple[list, np.ndarray]:
    """All ids (originals for string ids; ints and UUID strings as Qdrant holds them) and vectors of ``index.using``."""
    ids, _, vectors = read_records(index)
    return ids, vectors


def read_records(index: QdrantIndex) -> tuple[list, list, np.ndarray]:
    """All ids, ``nnlift_seq`` payloads (None where absent) and vectors; pass ``seqs`` on to the writers."""
    ids, seqs, blocks = [], [], []
    for batch_ids, batch_seqs, vectors in index.scroll_records():
        ids += batch_ids
        seqs += batch_seqs
        blocks.append(vectors)
    if not blocks:
        raise InputError(f"collection {index.collection!r} is empty")
    return ids, seqs, np.concatenate(blocks)


def sample_similarity_matrix(
    index: QdrantIndex, sample: int = 20_000, limit: int = 100, *, seed: int = 0, method: str = "auto"
) -> SampledMatrix:
    """A sparse similarity matrix over a random sample of a collection.

    ``method="kernel"`` fetches the sampled vectors (the named vector ``index.using``)
    and runs nnlift's exact self-join; ``"server"`` asks Qdrant's search-matrix
    API (the server draws the sample); ``"auto"`` uses the server API on a
    server and the kernel in local mode (where the API is brute-force Python).
    """
    sample = check_positive_int(sample, "sample")
    limit = check_positive_int(limit, "limit")
    if method not in ("auto", "kernel", "server"):
        raise InputError(f"method must be 'auto', 'kernel' or 'server'; got {method!r}")
    metric = _metric(index)
    if method == "server" or (method == "auto" and index.url is not None):
        return _sample_server(index, sample, limit)
    ids, vectors = read_collection(index)
    return sample_neighbors(vectors, ids, sample=sample, limit=limit, seed=seed, metric=metric, progress=index.progress)


def _sample_server(index: QdrantIndex, sample: int, limit: int) -> SampledMatrix:
    result = with_retries(
        lambda: index.client.search_matrix_offsets(index.collection, sample=sample, limit=limit, using=index.using),
        retries=index.retries,
    )
    point_ids = list(result.ids)
    points = with_retries(
        lambda: index.client.retrieve(
            index.collection, ids=point_ids, with_payload=[KEY], with_vectors=[index.using] if index.using else True
        ),
        retries=index.retries,
    )
    by_id = {str(p.id): p for p in points}
    ordered = [by_id[str(i)] for i in point_ids]
    vectors = np.asarray([p.vector[index.using] if index.using else p.vector for p in ordered], dtype=np.float32)
    ids = [(p.payload or {}).get(KEY, p.id) for p in ordered]
    matrix = sp.csr_matrix(
        (np.asarray(result.scores, dtype=np.float32), (np.asarray(result.offsets_row), np.asarray(result.offsets_col))),
        shape=(len(ids), len(ids)),
    )
    return SampledMatrix(matrix, ids, vectors)


@dataclass(frozen=True)
class Destination:
    """Where a write goes: a named vector of the collection itself, or a companion collection."""

    collection: str
    using: str
    companion: bool


def _destination(index: QdrantIndex, name: str, size: int | None, distance: str | None, sparse: bool) -> Destination:
    models = require("qdrant_client.models", "the Qdrant integration")
    client = index.client
    config = client.get_collection(index.collection).config.params
    existing = (config.sparse_vectors or {}) if sparse else (config.vectors if isinstance(config.vectors, dict) else {})
    if name in existing:
        _check_params(existing[name], index.collection, name, size, distance, sparse)
        return Destination(index.collection, name, companion=False)
    companion = f"{index.collection}_{name}"
    if client.collection_exists(companion):
        params = client.get_collection(companion).config.params
        found = (
            (params.sparse_vectors or {}) if sparse else (params.vectors if isinstance(params.vectors, dict) else {})
        )
        if name not in found:
            raise InputError(
                f"companion collection {companion!r} exists but has no {'sparse ' if sparse else ''}vector {name!r}"
            )
        _check_params(found[name], companion, name, size, distance, sparse)
    else:
        logger.info(
            "collection %r has no vector %r; writing to companion collection %r", index.collection, name, companion
        )
        if sparse:
            client.create_collection(
                companion, vectors_config={}, sparse_vectors_config={name: models.SparseVectorParams()}
            )
        else:
            kind = models.Distance.DOT if distance == "dot" else models.Distance.COSINE
            client.create_collection(companion, vectors_config={name: models.VectorParams(size=size, distance=kind)})
    return Destination(companion, name, companion=True)


def _check_params(
    params: Any, collection: str, name: str, size: int | None, distance: str | None, sparse: bool
) -> None:
    if sparse:
        return
    if size is not None and params.size != size:
        raise InputError(f"vector {name!r} of {collection!r} has size {params.size}; this write needs {size}")
    actual = str(params.distance).lower()
    if distance == "dot" and "dot" not in actual:
        raise InputError(
            f"vector {name!r} of {collection!r} uses {params.distance} distance; a folded NNN vector needs Dot, "
            "because Cosine would renormalise [x, b(x)] and change the corrected scores"
        )


def _digest(point: int | str, vector: Any, payload: dict) -> str:
    """What a write puts on one point: its id, every index and value, and its payload."""
    digest = hashlib.sha256(repr(point).encode())
    if isinstance(vector, tuple):  # sparse: (indices, values)
        digest.update(b"sparse")
        for part in vector:
            digest.update(np.ascontiguousarray(part).tobytes())
            digest.update(b"|")
    else:
        digest.update(np.ascontiguousarray(vector, dtype=np.float32).tobytes())
    digest.update(json.dumps(payload, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _written(index: QdrantIndex, destination: Destination, key: str, points: list) -> dict[str, str]:
    """The current marker under ``key`` of each of ``points`` that exists (point id as a string -> digest).

    Only these points are fetched, so a writer working on one batch of a
    large collection (a distributed worker) reads that batch, not the collection.
    """
    done: dict[str, str] = {}
    for lo in range(0, len(points), 1024):
        chunk = points[lo : lo + 1024]
        found = with_retries(
            lambda: index.client.retrieve(destination.collection, ids=chunk, with_payload=[key], with_vectors=False),
            retries=index.retries,
        )
        done.update({str(p.id): (p.payload or {}).get(key) for p in found})
    return done


def _refuse_source(index: QdrantIndex, name: str) -> None:
    if not isinstance(name, str) or not name:
        raise InputError(f"name must be a non-empty vector name; got {name!r}")
    if name == index.using:
        raise InputError(
            f"name={name!r} is the vector being read (using={index.using!r}); writing into it would replace "
            "the input: choose another name"
        )


def _write(
    index: QdrantIndex,
    destination: Destination,
    *,
    writer: str,
    ids: list,
    seqs: list,
    vector,
    payload,
    description: str,
) -> dict[str, int]:
    """Write ``vector(r)`` and ``payload(r)`` for every row whose marker differs from what it would write now."""
    models = require("qdrant_client.models", "the Qdrant integration")
    key = marker_key(writer, destination.using)
    points = [point_id(i) for i in ids]
    if len({str(p) for p in points}) != len(points):
        raise InputError("ids has duplicates (after mapping to Qdrant point ids)")

    def full_payload(r: int) -> dict:
        # Companion points carry the source's ids; points of the collection itself keep theirs untouched.
        own = payload(r)
        if destination.companion:
            seq = seqs[r] if seqs[r] is not None else r
            own = {SEQ: seq, **({KEY: ids[r]} if isinstance(ids[r], str) and ids[r] != points[r] else {}), **own}
        return own

    done = _written(index, destination, key, points)
    payloads = [full_payload(r) for r in range(len(ids))]
    digests = [_digest(points[r], vector(r), payloads[r]) for r in range(len(ids))]
    todo = [r for r in range(len(ids)) if done.get(str(points[r])) != digests[r]]
    logger.info(
        "%s: %d of %d points already written; writing %d", description, len(ids) - len(todo), len(ids), len(todo)
    )

    def as_vector(r: int):
        value = vector(r)
        if isinstance(value, tuple):
            return models.SparseVector(indices=[int(i) for i in value[0]], values=[float(v) for v in value[1]])
        return np.asarray(value, dtype=np.float32).tolist()

    with progress_bar(description, len(todo), enabled=index.progress, expected_seconds=len(todo) / 1000) as bar:
        for lo in range(0, len(todo), index.batch_size):
            rows = todo[lo : lo + index.batch_size]
            if destination.companion:
                batch = [
                    models.PointStruct(
                        id=points[r],
                        vector={destination.using: as_vector(r)},
                        payload={**payloads[r], key: digests[r]},
                    )
                    for r in rows
                ]
                with_retries(
                    lambda: index.client.upsert(destination.collection, points=batch, wait=True), retries=index.retries
                )
            else:
                # One request a batch: the vectors, then each point's payload with the marker, so the
                # marker only appears once the vector is in place.
                operations = [
                    models.UpdateVectorsOperation(
                        update_vectors=models.UpdateVectors(
                            points=[
                                models.PointVectors(id=points[r], vector={destination.using: as_vector(r)})
                                for r in rows
                            ]
                        )
                    )
                ]
                operations += [
                    models.SetPayloadOperation(
                        set_payload=models.SetPayload(payload={**payloads[r], key: digests[r]}, points=[points[r]])
                    )
                    for r in rows
                ]
                with_retries(
                    lambda: index.client.batch_update_points(destination.collection, operations, wait=True),
                    retries=index.retries,
                )
            bar.advance(len(rows))
    return {"points": len(ids), "written": len(todo), "skipped": len(ids) - len(todo)}


def write_nnn(index: QdrantIndex, bank: Any, *, k: int = 16, name: str = "nnn", approximate: bool = False) -> dict:
    """Fit NNN on the collection's vectors and write ``[x, b(x)]`` (Dot distance) plus ``nnn_bias`` in the payload.

    Serve it with :func:`nnn_search` (query ``[q, −alpha]``). Returns counts of
    points written and skipped, the destination and the fitted model.
    """
    _refuse_source(index, name)
    ids, seqs, vectors = read_records(index)
    metric = _metric(index)
    model = NNN(k=k, metric=metric, approximate=approximate).fit(vectors, bank)
    folded = model.folded_database()
    destination = _destination(index, name, folded.shape[1], "dot", sparse=False)
    report = _write(
        index,
        destination,
        writer="nnn",
        ids=ids,
        seqs=seqs,
        vector=lambda r: folded[r],
        payload=lambda r: {"nnn_bias": float(model.bias_[r])},
        description=f"writing NNN to {name}",
    )
    return {**report, "destination": destination, "model": model}


def nnn_search(index: QdrantIndex, queries: Any, k: int = 10, *, alpha: float = 0.75, name: str = "nnn") -> Neighbors:
    """NNN-corrected top-k served by Qdrant: ``[q, −alpha]`` against the written ``[x, b(x)]`` vectors."""
    alpha = check_finite_scalar(alpha, "alpha")
    width = index.dim
    array = check_array(queries, "queries", width=width)
    if _metric(index) == "cosine":
        array = normalize_rows(array, "queries")
    config = index.client.get_collection(index.collection).config.params.vectors
    has_named = isinstance(config, dict) and name in config
    target = index.collection if has_named else f"{index.collection}_{name}"
    if not has_named and not index.client.collection_exists(target):
        raise InputError(f"no NNN vector {name!r} in {index.collection!r} or {target!r}; run write_nnn first")
    params = (config if has_named else index.client.get_collection(target).config.params.vectors)[name]
    _check_params(params, target, name, width + 1, "dot", sparse=False)
    folded = np.hstack([array, np.full((len(array), 1), -alpha, dtype=np.float32)])
    served = QdrantIndex(target, client=index.client, using=name, metric="ip", progress=False)
    return served.search(folded, k)


def write_vectors(
    index: QdrantIndex, vectors: Any, ids: list, *, name: str, distance: str = "cosine", seqs: list | None = None
) -> dict:
    """Write blended or DBA vectors for the given ids into the named vector ``name`` (or its companion)."""
    _refuse_source(index, name)
    array = check_array(vectors, "vectors")
    ids = list(ids)
    if len(ids) != len(array):
        raise InputError(f"ids has {len(ids)} entries for {len(array)} vectors")
    if distance not in ("cosine", "dot"):
        raise InputError(f"distance must be 'cosine' or 'dot'; got {distance!r}")
    destination = _destination(index, name, array.shape[1], distance, sparse=False)
    report = _write(
        index,
        destination,
        writer="vectors",
        ids=ids,
        seqs=seqs or [None] * len(ids),
        vector=lambda r: array[r],
        payload=lambda r: {},
        description=f"writing {name}",
    )
    return {**report, "destination": destination}


def write_sparse(
    index: QdrantIndex, indices: list, values: list, ids: list, *, name: str = "blocks", seqs: list | None = None
) -> dict:
    """Write sparse vectors (per-row ``indices`` and ``values``, e.g. block embeddings) as a named sparse vector."""
    _refuse_source(index, name)
    if not (len(indices) == len(values) == len(ids)):
        raise InputError(
            f"indices, values and ids must have equal lengths; got {len(indices)}, {len(values)}, {len(ids)}"
        )
    rows = []
    for r, (row_indices, row_values) in enumerate(zip(indices, values)):
        row_indices, row_values = np.asarray(row_indices), np.asarray(row_values)
        if row_indices.ndim != 1 or row_indices.shape != row_values.shape:
            raise InputError(f"indices[{r}] and values[{r}] must be 1-D of one length")
        if row_indices.size and (row_indices.dtype.kind not in "iu" or row_indices.min() < 0):
            raise InputError(f"indices[{r}] must be non-negative integers")
        if row_values.size and (row_values.dtype.kind not in "iuf" or not np.isfinite(row_values).all()):
            raise InputError(f"values[{r}] must be finite numbers")
        rows.append((row_indices.astype(np.uint32), row_values.astype(np.float32)))
    destination = _destination(index, name, None, None, sparse=True)
    report = _write(
        index,
        destination,
        writer="sparse",
        ids=list(ids),
        seqs=seqs or [None] * len(ids),
        vector=lambda r: rows[r],
        payload=lambda r: {},
        description=f"writing sparse {name}",
    )
    return {**report, "destination": destination}
