"""Blending past one machine's memory: each pass's neighbour graph from an IVF partition join.

Per pass, on a Dataset that is never gathered on the driver:

1. **Sample.** Rows whose hashed id falls lowest are read on the driver: the
   k-means rows, and a disjoint set that measures recall. A hash of the id,
   not Ray's block order, picks them, so a rerun draws the same rows.
2. **Lists.** Spherical k-means (:func:`~nnlift.index.kmeans.kmeans`) on the
   sample gives the lists; a later pass starts from the last pass's
   centroids, since blending moves rows little.
3. **Route.** Each row is a *member* of its nearest list and a *candidate* of
   its ``n_probe`` nearest lists (its own first), as an IVF index probes for
   a query: ``n_probe`` copies of each row cross the shuffle.
4. **Join.** Grouped by list, a worker holds a list's candidates, finds each
   member's exact top-(k−1) other candidates above the threshold (canonical
   scores, ties to the lower id) and blends it, as the exact pass does.
5. **Measure.** The check rows' exact neighbours over the whole pass input
   (a streamed top-k of held rows) are compared with what the join found:
   the pass's recall and its standard error, recorded as ``Checked`` does.

With ``n_probe`` equal to the number of lists every row meets every other and
the result is exact blending's. A row's true neighbour is missed only when it
routes to none of the row's home list's candidates, which is what recall counts.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._check import check_finite_scalar, check_k, check_positive_int, normalize_rows
from ..errors import InputError
from ..index.base import build_index
from ..index.checked import LowRecallError
from ..index.exact import ExactIndex
from ..index.kmeans import kmeans
from ..index.recall import pooled_recall, recall_counts, recall_standard_error
from ..index.routing import nearest_lists
from ..neighbors import Neighbors
from ._ray import pool, ray_module, worker_errors
from .api import _held_topk, collect  # the streamed exact top-k of held rows, shared with search and QB-Norm
from .jobs import _limit_threads, _write_json, map_dataset, write_folder
from .sources import READ_CPUS, Columns, read_tables
from .sources import batch_rows as read_batch
from .tasks import blend_members

__all__ = ["PassStore", "hashed_rank", "partition_blend"]
logger = logging.getLogger("nnlift.distributed")

ROWS = Columns("id", "embedding")  # the columns between passes
_ON_LOW = ("warn", "raise")
# Every step here but the routing runs as tasks of a quarter CPU (as reading does), not actors
# and not whole CPUs: a task frees its share when done, while one needing a whole CPU, or an actor
# pool, beside the routing actors' shares never starts (seen: hangs on 2 CPUs). The join's tasks
# run at most one per actor slot (``concurrency``), so they use the cores and no more.


def hashed_rank(ids: np.ndarray, seed: int) -> np.ndarray:
    """A fixed pseudo-random uint64 per integer id (splitmix64 of ``id + seed``): ids ordered by it are a sample."""
    with np.errstate(over="ignore"):
        z = np.asarray(ids).astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class _HashedRows:
    """A batch's rows whose hashed id is below the cutoff (with the hash, to order them on the driver)."""

    cutoff: int
    seed: int
    columns: Columns

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids, rows = read_batch(batch, self.columns, None)
        _integer_ids(ids, self.columns)
        rank = hashed_rank(ids, self.seed)
        keep = rank < np.uint64(self.cutoff)
        return {"id": ids[keep], "embedding": rows[keep], "rank": rank[keep]}


def _integer_ids(ids: np.ndarray, columns: Columns) -> None:
    if ids.dtype.kind not in "iu":
        raise InputError(
            f"partitioned blending orders rows by id and needs integer ids; column {columns.id_name!r} holds {ids.dtype}"
        )


def hashed_sample(dataset: Any, columns: Columns, rows: int, total: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``rows`` rows of lowest hashed id (fewer if the dataset is smaller), in that order: ids and vectors."""
    # Keep about twice the rows wanted, then the lowest: a short draw is all but impossible.
    share = min(1.0, 2.0 * rows / max(total, 1) + 1e-9)
    cutoff = 2**64 - 1 if share >= 1.0 else int(share * 2**64)
    with worker_errors():
        found = collect(
            dataset.map_batches(_HashedRows(cutoff, seed, columns), batch_format="numpy", num_cpus=READ_CPUS),
            order_by=None,
        )
    if not len(found.get("id", ())):
        raise InputError("dataset has no rows")
    order = np.lexsort((found["id"], found["rank"]))[:rows]
    return found["id"][order], np.asarray(found["embedding"], dtype=np.float32)[order]


@dataclass(frozen=True)
class Route:
    """Each row of a batch as a member of its nearest list and a candidate of its ``n_probe`` nearest ones."""

    n_probe: int
    normalize: bool
    own_ids = True  # n_probe output rows per input row

    def __call__(self, centroids: np.ndarray, ids: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
        unit = normalize_rows(rows, "dataset rows") if self.normalize else np.ascontiguousarray(rows, np.float32)
        probes = nearest_lists(unit, centroids, self.n_probe) if len(unit) else np.empty((0, self.n_probe), np.int64)
        home = np.zeros(probes.shape, dtype=bool)
        home[:, 0] = True
        return {
            "list": probes.ravel(),
            "id": np.repeat(ids, self.n_probe),
            "embedding": np.repeat(unit, self.n_probe, axis=0),
            "member": home.ravel(),
        }


@dataclass(frozen=True)
class JoinList:
    """One list's members blended over its candidates: ids, blended rows, and the neighbours' ids (self included)."""

    k: int
    threshold: float

    def __call__(self, group: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        order = np.argsort(group["id"], kind="stable")  # positions in id order: ties go to the lower id
        ids = np.asarray(group["id"])[order]
        unit = np.ascontiguousarray(np.asarray(group["embedding"], dtype=np.float32)[order])
        members = np.flatnonzero(np.asarray(group["member"])[order])
        found, blended = blend_members(
            unit, build_index(ExactIndex(progress=False), unit), members, self.k, self.threshold
        )
        return {"id": ids[members], "embedding": blended, "neighbors": np.where(found.ids >= 0, ids[found.ids], -1)}


PARTITION_BYTES = 2**28  # routed rows per shuffle partition: 256 MB, a few lists each at scale


def _partitions(total: int, width: int, n_probe: int, lists: int, workers: int) -> int:
    """Shuffle partitions for the join: one per 256 MB of routed rows, at least one per worker, at most one per list.

    Ray Data's default (200) costs a task each, which on a small job is most of its time.
    """
    wanted = -(-total * n_probe * (width * 4 + 24) // PARTITION_BYTES)
    return int(min(lists, max(workers, wanted)))


def join_group(group: dict[str, np.ndarray], join: JoinList, threads: int) -> dict[str, np.ndarray]:
    """A task of the join (``map_groups`` takes a function): its kernel threads held to its share of the cores."""
    _limit_threads(threads)
    return join(group)


@dataclass(frozen=True)
class _Pick:
    """The rows of a batch whose id is among ``wanted`` (the check rows), with what the join found for them."""

    wanted: np.ndarray

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = np.isin(batch["id"], self.wanted)
        return {"id": batch["id"][keep], "neighbors": batch["neighbors"][keep]}


def _exact_others(held: Neighbors, ids: np.ndarray, k: int, threshold: float) -> Neighbors:
    """Each check row's top-(k−1) other rows above the threshold, from its exact top-k over every row (self included)."""
    ok = (held.ids >= 0) & (held.ids != ids[:, None]) & (held.scores > threshold)
    order = np.argsort(~ok, axis=1, kind="stable")[:, : k - 1]  # the kept ones, in rank order
    kept = np.take_along_axis(ok, order, axis=1)
    picked = np.take_along_axis(held.ids, order, axis=1)
    return Neighbors(
        np.where(kept, picked, -1), np.where(kept, np.take_along_axis(held.scores, order, axis=1), -np.inf)
    )


def _measure_pass(
    source: Any,
    joined: Any,
    check_ids: np.ndarray,
    check_rows: np.ndarray,
    k: int,
    threshold: float,
    step: int,
    options,
) -> dict[str, Any]:
    width = min(k, options["total"])
    exact = _held_topk(
        source, check_rows, width, options["metric"], options["columns"], options["batch_rows"], options["workers"]
    )
    want = _exact_others(exact, check_ids, k, threshold)
    with worker_errors():
        picked = collect(joined.map_batches(_Pick(check_ids), batch_format="numpy", num_cpus=READ_CPUS), order_by=None)
    got = picked.get("id", np.empty(0, np.int64))
    if len(got) != len(check_ids) or len(np.unique(got)) != len(got):
        raise InputError(f"the pass returned {len(got)} rows for {len(check_ids)} sampled ids: ids must be unique")
    by_id = np.argsort(got, kind="stable")
    rows = by_id[np.searchsorted(got, check_ids, sorter=by_id)]
    found = Neighbors(np.asarray(picked["neighbors"], np.int64)[rows], np.zeros((len(check_ids), k), np.float32))
    hits, totals = recall_counts(found, want)
    return {
        "pass": step,
        "reduction": "self_join",
        "rows": len(check_ids),
        "recall": pooled_recall(hits, totals),
        "standard_error": recall_standard_error(hits, totals),
    }


class PassStore:
    """A resumable blending job's finished passes in ``output``: ``pass-NN/`` parts, ``pass-NN.json`` and centroids.

    A pass is written into a temporary folder, renamed, and only then marked
    done by its record; a rerun reads every marked pass back instead of
    computing it (with its recall record and centroids, so the next pass
    starts from the same lists) and computes the rest. Without ``output``
    passes stay in Ray's object store.
    """

    def __init__(self, output: Path | None) -> None:
        self.output = output

    def _names(self, step: int) -> tuple[Path, Path, Path]:
        base = self.output / f"pass-{step:02d}"
        return base, base.with_name(base.name + ".json"), base.with_name(base.name + ".centroids.npy")

    def done(self, step: int) -> tuple[Any, dict[str, Any], np.ndarray] | None:
        if self.output is None:
            return None
        folder, marker, centroids = self._names(step)
        if not marker.is_file():
            return None
        record = {**json.loads(marker.read_text()), "resumed": True}
        return _parts(folder), record, np.load(centroids)

    def keep(self, step: int, joined: Any, record: dict[str, Any], centroids: np.ndarray) -> Any:
        if self.output is None:
            return joined
        folder, marker, saved = self._names(step)
        temporary = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)  # parts of a pass killed after its rename, before its record
        write_folder(joined, temporary)
        os.replace(temporary, folder)
        np.save(saved, centroids)
        _write_json(marker, record)
        return _parts(folder)


def _parts(folder: Path) -> Any:
    """A written pass read back: one reading task per part file."""
    return read_tables(sorted(str(p) for p in folder.glob("*.parquet")))


def partition_blend(
    dataset: Any,
    values: list[float],
    k: int,
    *,
    columns: Columns,
    lists: int | str,
    n_probe: int,
    check_sample: int,
    min_recall: float,
    on_low: str,
    checks: list | None,
    seed: int,
    batch_rows: int,
    workers: int | None,
    graph: bool,
    store: PassStore,
) -> Any:
    """Blending passes on an IVF partition join (module docstring); returns a Dataset of ``(id, embedding)``.

    With ``graph`` a ``neighbors`` column is kept: the ids of each row's last-pass graph row, itself included.
    """
    ray = ray_module()
    n_probe = check_positive_int(n_probe, "n_probe")
    check_sample = check_positive_int(check_sample, "check_sample")
    min_recall = check_finite_scalar(min_recall, "min_recall", low=0.0, high=1.0)
    if on_low not in _ON_LOW:
        raise InputError(
            f"on_low must be one of {_ON_LOW} (a partitioned job cannot fall back to exact); got {on_low!r}"
        )
    with worker_errors():
        total = dataset.count()
    if total == 0:
        raise InputError("dataset has no rows")
    if lists == "auto":
        from ..blend.graph import default_lists

        lists = default_lists(total)
    check_k(k, total, name="k", what="rows")
    lists = min(check_positive_int(lists, "lists"), total)
    if n_probe > lists:
        raise InputError(f"n_probe={n_probe} is more than the {lists} lists")
    train_rows = max(32 * lists, 5_000)
    layout = pool(workers)
    current, current_columns, centroids = dataset, columns, None
    for step, threshold in enumerate(values):
        first = step == 0
        kept = store.done(step)
        if kept is not None:  # a rerun: this pass was written in full
            current, record, centroids = kept
            current_columns = ROWS
            logger.info("partitioned blending pass %d: read back from %s", step, store.output)
            if checks is not None:
                checks.append(record)
            continue
        ids, rows = hashed_sample(current, current_columns, train_rows + check_sample, total, seed + step)
        unit = normalize_rows(rows, "dataset rows") if first else rows
        train, check = unit[:train_rows], unit[train_rows:]
        if len(check) == 0:  # a dataset smaller than the k-means sample: measure on rows k-means saw too
            check, check_ids = unit[:check_sample], ids[:check_sample]
        else:
            check_ids = ids[train_rows:]
        centroids = kmeans(train, lists, sample=len(train), seed=seed, init=centroids)
        routed = map_dataset(
            current,
            ray.put(centroids),
            Route(n_probe, normalize=first),
            columns=current_columns,
            width=unit.shape[1],
            batch=batch_rows,
            workers=workers,
        )
        with worker_errors():
            joined = (
                routed.groupby("list", num_partitions=_partitions(total, unit.shape[1], n_probe, lists, layout.size))
                .map_groups(
                    join_group,
                    fn_args=(JoinList(k, threshold), layout.threads),
                    batch_format="numpy",
                    num_cpus=READ_CPUS,
                    concurrency=layout.size,
                )
                .materialize()
            )
        record = _measure_pass(
            current,
            joined,
            check_ids,
            check,
            k,
            threshold,
            step,
            {
                "total": total,
                "batch_rows": batch_rows,
                "workers": workers,
                "columns": current_columns,
                "metric": "cosine" if first else "ip",  # the first pass's rows are normalised as the join's were
            },
        )
        _act(record, min_recall, on_low, lists, n_probe, checks)
        joined = store.keep(step, joined, record, centroids)
        # The next pass reads only id and embedding; the neighbours go at the end. Not select_columns:
        # its whole-CPU tasks beside the next pass's routing actors never start (a hang on 2 CPUs).
        current, current_columns = joined, ROWS
    return current if graph else current.map_batches(_drop_neighbors, batch_format="numpy", num_cpus=READ_CPUS)


def _drop_neighbors(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"id": batch["id"], "embedding": batch["embedding"]}


def _act(record: dict[str, Any], min_recall: float, on_low: str, lists: int, n_probe: int, checks: list | None) -> None:
    low = record["recall"] < min_recall
    record["action"] = on_low if low else "none"
    if checks is not None:
        checks.append(record)
    logger.info("partitioned blending pass %d: %s", record["pass"], record)
    if not low:
        return
    message = (
        f"partitioned blending pass {record['pass']}: recall {record['recall']:.4f} < {min_recall} on "
        f"{record['rows']} sampled rows; raise n_probe (now {n_probe} of {lists} lists)"
    )
    if on_low == "raise":
        raise LowRecallError(message)
    warnings.warn(message, stacklevel=4)  # the caller of distributed.blend
