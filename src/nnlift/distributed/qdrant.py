"""Writing a distributed job's output into Qdrant from the workers, through nnlift's one idempotent writer.

Each worker opens its own client and writes its batches with the writer
:func:`nnlift.qdrant.write_nnn` and :func:`~nnlift.qdrant.write_vectors` use,
so the points carry the same markers: a rerun (or a single-machine write of
the same values) skips what is already there, and a write killed halfway
resumes where it stopped.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from .._check import check_positive_int
from ..errors import InputError
from ..index.qdrant import QdrantIndex
from ..qdrant import Destination, _destination, _refuse_source, _write
from ._ray import pool, start, worker_errors
from .jobs import _limit_threads
from .sources import Columns, as_dataset
from .sources import batch_rows as read_batch

__all__ = ["write_qdrant"]

KINDS = {"nnn": ("nnn", "dot"), "vectors": ("vectors", None)}


class QdrantWriter:
    """An actor: its own client, then each batch written through ``nnlift.qdrant._write``."""

    def __init__(self, connection: dict[str, Any], destination: Destination, kind: str, columns: Columns, vector: str):
        _limit_threads(1)
        self.index = QdrantIndex(**connection, progress=False)
        self.destination, self.kind, self.columns, self.vector = destination, kind, columns, vector

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, vectors = read_batch(batch, Columns(self.columns.id, self.vector), None)
        ids = [i.item() if hasattr(i, "item") else i for i in ids]
        if self.destination.companion and not all(isinstance(i, int) for i in ids):
            raise InputError(
                "a companion collection numbers its points by the source's positions, which a distributed "
                "write knows only for integer ids; give the collection a named vector for this write, or integer ids"
            )
        writer, _ = KINDS[self.kind]
        bias = np.asarray(batch["bias"], np.float64) if self.kind == "nnn" else None
        report = _write(
            self.index,
            self.destination,
            writer=writer,
            ids=ids,
            seqs=list(ids) if self.destination.companion else [None] * len(ids),
            vector=lambda r: vectors[r],
            payload=(lambda r: {"nnn_bias": float(bias[r])}) if bias is not None else (lambda r: {}),
            description=f"writing {self.destination.using}",
        )
        return {key: np.asarray([report[key]]) for key in ("points", "written", "skipped")}


def write_qdrant(
    dataset: Any,
    collection: str,
    *,
    kind: str = "nnn",
    name: str | None = None,
    vector_column: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    path: str | os.PathLike | None = None,
    using: str | None = None,
    id_column: str | None = None,
    distance: str = "cosine",
    batch_rows: int = 1024,
    workers: int | None = None,
) -> dict[str, Any]:
    """Write a job's output into a Qdrant collection from the workers, in parallel, idempotently.

    Parameters
    ----------
    dataset : ray.data.Dataset or shard paths
        Rows with an id column (the collection's point ids) and a vector column.
    collection : str
        The collection; the write goes to its named vector ``name``, or to the
        companion collection ``{collection}_{name}`` when it has none (as
        :func:`nnlift.qdrant.write_nnn`).
    kind : {"nnn", "vectors"}
        ``"nnn"``: the folded ``[x, b(x)]`` vectors (column ``folded``, Dot
        distance) and ``nnn_bias`` in the payload, from :func:`nnn_bias` with
        ``fold=True``. ``"vectors"``: blended or other vectors (column ``embedding``).
    url, api_key, path :
        How each worker connects. A local-mode ``path`` is opened by one
        process at a time, so it is written by one worker (close your own
        client on that path first).
    using : str, optional
        The collection's vector that was read (writing into it is refused).

    Returns
    -------
    dict
        ``points``, ``written`` and ``skipped`` summed over the workers, and the ``destination``.
    """
    if kind not in KINDS:
        raise InputError(f"kind must be one of {sorted(KINDS)}; got {kind!r}")
    if (url is None) == (path is None) and not os.environ.get("QDRANT_URL"):
        raise InputError("give url= (a Qdrant server) or path= (local mode), one of them")
    writer, fixed_distance = KINDS[kind]
    name = name or ("nnn" if kind == "nnn" else "blended")
    vector = vector_column or ("folded" if kind == "nnn" else "embedding")
    distance = fixed_distance or distance
    if distance not in ("cosine", "dot"):
        raise InputError(f"distance must be 'cosine' or 'dot'; got {distance!r}")
    start()
    columns = Columns(id_column, vector)
    source = as_dataset(dataset, columns)
    with worker_errors():
        first = source.take_batch(1, batch_format="numpy")
    width = read_batch(first, columns, None)[1].shape[1]
    # Workers run in their own folders: a relative local-mode path is made absolute here, on the driver.
    path = None if path is None else os.path.abspath(path)
    connection = {"collection": collection, "url": url, "api_key": api_key, "path": path, "using": using}
    driver = QdrantIndex(**connection, progress=False)
    _refuse_source(driver, name)
    destination = _destination(driver, name, width, distance, sparse=False)  # created once, here, before any worker
    driver.client.close()  # a local-mode folder admits one client at a time
    size = 1 if path is not None else workers
    layout = pool(size)
    counts = source.map_batches(
        QdrantWriter,
        fn_constructor_args=(connection, destination, kind, Columns(id_column, None), vector),
        batch_size=check_positive_int(batch_rows, "batch_rows"),
        batch_format="numpy",
        **layout.map_args(),
    )
    totals = {"points": 0, "written": 0, "skipped": 0}
    with worker_errors():
        for part in counts.iter_batches(batch_format="numpy", batch_size=None):
            for key in totals:
                totals[key] += int(np.sum(part[key]))
    return {**totals, "destination": destination}
