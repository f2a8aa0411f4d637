"""Working on Qdrant collections: sampling their neighbour structure and writing corrections back.

Every write is idempotent (running it twice gives the same state) and
resumable (each written point carries a marker of the run's inputs, and a
re-run skips the points that already have it), and reports progress.

A collection cannot gain a named vector after it is created (on a server or
in local mode), so a write goes to the named vector ``name`` when the
collection already has it, and otherwise to a companion collection
``{collection}_{name}`` holding the same point ids.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ._check import check_array, check_finite_scalar, check_positive_int
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
    "write_nnn",
    "nnn_search",
    "write_vectors",
    "write_sparse",
    "Destination",
]
logger = logging.getLogger("nnlift")
MARKER = "nnlift_written"


def _metric(index: QdrantIndex) -> str:
    distance = str(index._vector_params().distance).lower()
    return "cosine" if "cosine" in distance else "ip"


def read_collection(index: QdrantIndex) -> tuple[list, np.ndarray]:
    """All ids (originals for string ids) and vectors of ``index.using``."""
    ids, blocks = [], []
    for batch_ids, vectors in index.scroll_vectors():
        ids += batch_ids
        blocks.append(vectors)
    if not blocks:
        raise InputError(f"collection {index.collection!r} is empty")
    return ids, np.concatenate(blocks)


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


def _token(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.tobytes() if isinstance(part, np.ndarray) else repr(part).encode())
    return digest.hexdigest()[:16]


def _written(index: QdrantIndex, destination: Destination, token: str) -> set[str]:
    """Point ids (as strings) that already carry this run's marker."""
    models = require("qdrant_client.models", "the Qdrant integration")
    done, offset = set(), None
    marker = models.Filter(must=[models.FieldCondition(key=MARKER, match=models.MatchValue(value=token))])
    while True:
        points, offset = with_retries(
            lambda: index.client.scroll(
                destination.collection,
                scroll_filter=marker,
                limit=1024,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            ),
            retries=index.retries,
        )
        done.update(str(p.id) for p in points)
        if offset is None:
            return done


def _write(
    index: QdrantIndex,
    destination: Destination,
    ids: list,
    make_vector,
    payloads: list[dict],
    token: str,
    description: str,
) -> dict[str, int]:
    models = require("qdrant_client.models", "the Qdrant integration")
    done = _written(index, destination, token)
    todo = [row for row, key in enumerate(ids) if str(point_id(key)) not in done]
    logger.info(
        "%s: %d of %d points already written; writing %d", description, len(ids) - len(todo), len(ids), len(todo)
    )
    with progress_bar(description, len(todo), enabled=index.progress, expected_seconds=len(todo) / 1000) as bar:
        for lo in range(0, len(todo), index.batch_size):
            rows = todo[lo : lo + index.batch_size]
            if destination.companion:
                points = [
                    models.PointStruct(
                        id=point_id(ids[r]),
                        vector={destination.using: make_vector(r)},
                        payload={**payloads[r], MARKER: token},
                    )
                    for r in rows
                ]
                with_retries(
                    lambda: index.client.upsert(destination.collection, points=points, wait=True), retries=index.retries
                )
            else:
                # One request a batch: the vectors, then each point's payload with the marker, so the
                # marker only appears once the vector is in place.
                operations = [
                    models.UpdateVectorsOperation(
                        update_vectors=models.UpdateVectors(
                            points=[
                                models.PointVectors(id=point_id(ids[r]), vector={destination.using: make_vector(r)})
                                for r in rows
                            ]
                        )
                    )
                ]
                operations += [
                    models.SetPayloadOperation(
                        set_payload=models.SetPayload(payload={**payloads[r], MARKER: token}, points=[point_id(ids[r])])
                    )
                    for r in rows
                ]
                with_retries(
                    lambda: index.client.batch_update_points(destination.collection, operations, wait=True),
                    retries=index.retries,
                )
            bar.advance(len(rows))
    return {"points": len(ids), "written": len(todo), "skipped": len(ids) - len(todo)}


def _keys(key: Any, seq: int) -> dict:
    return {SEQ: seq, KEY: key} if isinstance(key, str) else {SEQ: seq}


def write_nnn(index: QdrantIndex, bank: Any, *, k: int = 16, name: str = "nnn", approximate: bool = False) -> dict:
    """Fit NNN on the collection's vectors and write ``[x, b(x)]`` (Dot distance) plus ``nnn_bias`` in the payload.

    Serve it with :func:`nnn_search` (query ``[q, −alpha]``). Returns counts of
    points written and skipped, the destination and the fitted model.
    """
    ids, vectors = read_collection(index)
    metric = _metric(index)
    model = NNN(k=k, metric=metric, approximate=approximate).fit(vectors, bank)
    folded = model.folded_database()
    destination = _destination(index, name, folded.shape[1], "dot", sparse=False)
    token = _token("nnn", folded)
    payloads = [{**_keys(key, seq), "nnn_bias": float(b)} for seq, (key, b) in enumerate(zip(ids, model.bias_))]
    report = _write(index, destination, ids, lambda r: folded[r].tolist(), payloads, token, f"writing NNN to {name}")
    return {**report, "destination": destination, "model": model}


def nnn_search(index: QdrantIndex, queries: Any, k: int = 10, *, alpha: float = 0.75, name: str = "nnn") -> Neighbors:
    """NNN-corrected top-k served by Qdrant: ``[q, −alpha]`` against the written ``[x, b(x)]`` vectors."""
    alpha = check_finite_scalar(alpha, "alpha")
    width = index.dim
    array = check_array(queries, "queries", width=width)
    if _metric(index) == "cosine":
        array = array / np.linalg.norm(array, axis=1, keepdims=True)
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


def write_vectors(index: QdrantIndex, vectors: Any, ids: list, *, name: str, distance: str = "cosine") -> dict:
    """Write blended or DBA vectors for the given ids into the named vector ``name`` (or its companion)."""
    array = check_array(vectors, "vectors")
    if len(ids) != len(array):
        raise InputError(f"ids has {len(ids)} entries for {len(array)} vectors")
    if distance not in ("cosine", "dot"):
        raise InputError(f"distance must be 'cosine' or 'dot'; got {distance!r}")
    destination = _destination(index, name, array.shape[1], distance, sparse=False)
    token = _token(name, array)
    payloads = [_keys(key, seq) for seq, key in enumerate(ids)]
    report = _write(index, destination, list(ids), lambda r: array[r].tolist(), payloads, token, f"writing {name}")
    return {**report, "destination": destination}


def write_sparse(index: QdrantIndex, indices: list, values: list, ids: list, *, name: str = "blocks") -> dict:
    """Write sparse vectors (per-row ``indices`` and ``values``, e.g. block embeddings) as a named sparse vector."""
    models = require("qdrant_client.models", "the Qdrant integration")
    if not (len(indices) == len(values) == len(ids)):
        raise InputError(
            f"indices, values and ids must have equal lengths; got {len(indices)}, {len(values)}, {len(ids)}"
        )
    destination = _destination(index, name, None, None, sparse=True)
    token = _token(name, *[np.asarray(i) for i in indices[:1000]], len(indices))
    payloads = [_keys(key, seq) for seq, key in enumerate(ids)]

    def vector(r: int):
        return models.SparseVector(indices=[int(i) for i in indices[r]], values=[float(v) for v in values[r]])

    report = _write(index, destination, list(ids), vector, payloads, token, f"writing sparse {name}")
    return {**report, "destination": destination}
