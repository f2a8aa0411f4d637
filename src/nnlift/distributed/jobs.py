"""The two ways a distributed job runs its per-batch work, with one worker class for each.

A job is a *task* (a small picklable object: ``task(state, ids, rows) -> columns``)
and a *state* built once on the driver (a bank's index, a fitted model, a
blending pass's matrix) and put once into Ray's object store, so each actor
fetches it once, not once per batch.

- :func:`map_dataset` runs the task over a Ray Dataset's batches and returns a
  Dataset: lazy, streamed, re-executed by Ray when a worker dies.
- :func:`run_shards` runs it shard file by shard file and writes
  ``part-NNNNN.parquet`` per input shard into an output folder, atomically, with a
  manifest (``_job.json``) of the job's parameters and inputs. A rerun of the
  same job skips every shard already written, so a killed worker (Ray retries
  it) or a killed driver (run again) ends with the same files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._ray import Pool, pool, ray_module, worker_errors
from .sources import READ_CPUS, Columns, Shard, batch_rows, find_shards, is_dataset

__all__ = ["map_dataset", "run_shards", "write_folder", "JobReport", "Task"]
logger = logging.getLogger("nnlift.distributed")

Task = Callable[[Any, np.ndarray, np.ndarray], dict[str, np.ndarray]]
MANIFEST, STATS = "_job.json", "_stats"


def _resolve(state: Any) -> Any:
    ray = ray_module()
    return ray.get(state) if isinstance(state, ray.ObjectRef) else state


def _limit_threads(threads: int) -> None:
    """Each actor's kernel threads: the actors together use the machine's cores, no more."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class BatchWorker:
    """An actor of :func:`map_dataset`: fetches the state once, then runs the task on each batch."""

    def __init__(self, state: Any, task: Task, columns: Columns, width: int | None, threads: int) -> None:
        _limit_threads(threads)
        self.state, self.task, self.columns, self.width = _resolve(state), task, columns, width

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if getattr(self.task, "positions_only", False):  # the rows are the held state's own
            ids, rows = np.asarray(batch[self.columns.id_name]), None
        else:
            ids, rows = batch_rows(batch, self.columns, self.width)
        out = self.task(self.state, ids, rows)
        return out if getattr(self.task, "own_ids", False) else {self.columns.id_name: ids, **out}


def map_dataset(
    dataset: Any, state: Any, task: Task, *, columns: Columns, width: int | None, batch: int, workers: int | None
) -> Any:
    """The task over every batch of ``dataset`` (a Dataset), by an actor pool sharing ``state`` (an ObjectRef)."""
    layout = pool(workers)
    return dataset.map_batches(
        BatchWorker,
        fn_constructor_args=(state, task, columns, width, layout.threads),
        batch_size=batch,
        batch_format="numpy",
        **layout.map_args(),
    )


@dataclass
class JobReport:
    """What :func:`run_shards` did: the output files, the shards written now and skipped, rows per second per worker."""

    output: Path
    files: list[Path]
    written: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    rows: int = 0
    seconds: float = 0.0
    workers: dict[str, dict[str, float]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short account for logs and the command line."""
        out = [
            f"{len(self.written)} shard(s) written, {len(self.skipped)} already done; "
            f"{self.rows:,} rows in {self.seconds:.1f} s"
        ]
        out += [
            f"  worker {name}: {w['shards']:.0f} shard(s), {w['rows']:,.0f} rows, {w['rows_per_second']:,.0f} rows/s"
            for name, w in sorted(self.workers.items())
        ]
        return out


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


class ShardWorker:
    """An actor of :func:`run_shards`: reads a shard, runs the task in chunks, writes its part file atomically."""

    def __init__(
        self, state: Any, task: Task, columns: Columns, width: int | None, threads: int, output: str, chunk: int
    ) -> None:
        _limit_threads(threads)
        self.state, self.task, self.columns, self.width = _resolve(state), task, columns, width
        self.output, self.chunk = Path(output), chunk

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        shard = Shard(str(batch["path"][0]), int(batch["number"][0]), int(batch["rows"][0]), int(batch["offset"][0]))
        ids, rows = shard.read(self.columns)
        if self.width is not None and rows.shape[1] != self.width and len(rows):
            raise InputError(f"{shard.path}: rows have {rows.shape[1]} dimensions; the job needs {self.width}")
        spans = range(0, max(len(rows), 1), self.chunk)
        parts = [self.task(self.state, ids[lo : lo + self.chunk], rows[lo : lo + self.chunk]) for lo in spans]
        columns = {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        write_parquet(self.output / part_name(shard.number), {self.columns.id_name: ids, **columns})
        seconds = time.perf_counter() - started
        stats = {"shard": shard.number, "rows": len(rows), "seconds": seconds, "worker": _worker_name()}
        _write_json(self.output / STATS / f"{shard.number:05d}.json", stats)
        return {key: np.asarray([value]) for key, value in stats.items()}


def arrow_table(columns: dict[str, np.ndarray]) -> Any:
    """Columns (1-D, or 2-D as fixed-size lists) as an arrow table."""
    from .._optional import require

    pa = require("pyarrow", "writing parquet shards")
    arrays = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.ndim == 2:
            flat = pa.array(np.ascontiguousarray(values).ravel())
            arrays[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
        else:
            arrays[name] = pa.array(values)
    return pa.table(arrays)


def write_parquet(path: Path, columns: dict[str, np.ndarray]) -> None:
    """Columns (1-D, or 2-D as fixed-size lists) to ``path``, through a temporary file and a rename."""
    from .._optional import require

    parquet = require("pyarrow.parquet", "writing parquet shards")
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    parquet.write_table(arrow_table(columns), temporary)
    os.replace(temporary, path)


def _as_table(batch: dict[str, np.ndarray]) -> Any:
    return arrow_table(batch)


def write_folder(dataset: Any, folder: str | os.PathLike) -> Path:
    """Write a Dataset's rows as parquet parts in ``folder``, by the workers: vectors as fixed-size lists.

    nnlift's loaders and jobs read the parts back (``"folder/*.parquet"``), and
    so does any parquet reader, without Ray's tensor extension type. The
    folder must be new or empty: nothing of the caller's is replaced.
    Returns the folder, absolute.
    """
    target = check_new_folder(folder)  # absolute: written by the workers, from their own working folders
    with worker_errors():
        dataset.map_batches(_as_table, batch_format="numpy", num_cpus=READ_CPUS).write_parquet(str(target))
    return target


def _write_json(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(temporary, path)


def job_manifest(job: dict[str, Any], columns: Columns, shards: list[Shard]) -> dict[str, Any]:
    """What identifies a job for a rerun: its parameters, its columns and each input's fingerprint."""
    return {"job": job, "columns": [columns.id, columns.embedding], "inputs": [s.fingerprint() for s in shards]}


def check_new_folder(folder: str | os.PathLike, option: str = "folder") -> Path:
    """``folder``, absolute, if it is new or empty: a write into it replaces nothing of the caller's."""
    target = Path(folder).absolute()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{option}={str(folder)!r} exists and is not an empty folder; give a new or empty one")
    return target


def _prepare_output(output: Path, manifest: dict[str, Any], overwrite: bool) -> None:
    """Start or resume the job in ``output``: refuse a folder holding anything but this job's own files."""
    target = output / MANIFEST
    if output.exists() and not output.is_dir():
        raise InputError(f"output={str(output)!r} is a file; give a folder for the job's parquet shards")
    if output.is_dir() and any(output.iterdir()) and not target.is_file():
        raise InputError(
            f"output={str(output)!r} is a folder that holds other files and no {MANIFEST}; a job writes only "
            "into an empty folder or one of its own earlier runs: choose another"
        )
    if target.is_file():
        try:
            before = json.loads(target.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"output={str(output)!r}: {MANIFEST} cannot be read ({exc})") from None
        if before == manifest:
            _remove_leftovers(output)
            return
        if not overwrite:
            raise InputError(
                f"output={str(output)!r} holds a job with other parameters or inputs; pass overwrite=True "
                "(--overwrite) to replace its shards, or choose another folder"
            )
        for path in output.glob("part-*.parquet"):
            path.unlink()
        shutil.rmtree(output / STATS, ignore_errors=True)
        for path in output.glob("pass-[0-9][0-9]*"):  # a blending job's passes (partition.PassStore)
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    output.mkdir(parents=True, exist_ok=True)
    _write_json(target, manifest)


def _remove_leftovers(output: Path) -> None:
    """Temporary files of writers killed before their rename (a resumed job writes those shards again)."""
    for path in [*output.glob(".part-*.tmp"), *(output / STATS).glob(".*.tmp")]:
        path.unlink(missing_ok=True)
    for path in output.glob(".pass-*.tmp"):  # a blending pass killed while its parts were written
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def finished(output: Path, number: int) -> bool:
    """Whether shard ``number`` was written in full (its statistics come after its part file)."""
    return (output / STATS / f"{number:05d}.json").is_file() and (output / part_name(number)).is_file()


def run_shards(
    source: Any,
    output: str | os.PathLike,
    state: Any,
    task: Task,
    *,
    job: dict[str, Any],
    columns: Columns,
    width: int | None,
    chunk: int,
    workers: int | None,
    overwrite: bool = False,
) -> JobReport:
    """The task over each shard file of ``source``, one part file per shard, resuming an earlier run of the same job."""
    if is_dataset(source):
        raise InputError(
            "output= writes one part file per input shard and resumes by shard, so it needs shard files "
            "(paths or globs); for a ray.data.Dataset, leave output unset and write the returned Dataset"
        )
    ray = ray_module()
    shards = find_shards(source, columns, width)
    output = Path(output).absolute()  # workers run in their own folders: a relative path would land there
    _prepare_output(output, job_manifest(job, columns, shards), overwrite)
    todo = [s for s in shards if not finished(output, s.number)]
    report = JobReport(output, [output / part_name(s.number) for s in shards])
    report.skipped = [s.number for s in shards if finished(output, s.number)]
    if report.skipped:
        logger.info("%s: %d of %d shards already written; running %d", output, len(report.skipped), len(shards), len(todo))
    started = time.perf_counter()
    if todo:
        layout: Pool = pool(min(workers or pool().size, len(todo)))  # no idle actors on a short job
        items = [{"path": s.path, "number": s.number, "rows": s.rows, "offset": s.offset} for s in todo]
        done = ray.data.from_items(items).map_batches(
            ShardWorker,
            fn_constructor_args=(state, task, columns, width, layout.threads, str(output), chunk),
            batch_size=1,
            batch_format="numpy",
            **layout.map_args(),
        )
        per_worker: dict[str, dict[str, float]] = defaultdict(lambda: {"shards": 0, "rows": 0, "seconds": 0.0})
        with worker_errors():
            for row in done.iter_rows():
                worker = per_worker[str(row["worker"])]
                worker["shards"] += 1
                worker["rows"] += int(row["rows"])
                worker["seconds"] += float(row["seconds"])
                report.written.append(int(row["shard"]))
                report.rows += int(row["rows"])
        for worker in per_worker.values():
            worker["rows_per_second"] = worker["rows"] / max(worker["seconds"], 1e-9)
        report.workers = dict(per_worker)
        report.written.sort()
    report.seconds = time.perf_counter() - started
    for line in report.lines():
        logger.info("%s", line)
    return report
