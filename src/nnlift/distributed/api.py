"""NNN, the bank statistics of its relatives, search and blending as Ray Data jobs.

Each function takes ``dataset``: a ``ray.data.Dataset`` with an id column and
an embedding column, or paths/globs/folders of ``.parquet``, ``.npy`` or
``.npz`` shards (see :mod:`nnlift.distributed.sources`). The bank (or model,
or pass matrix) is prepared once on the driver, its index built there, and put
once into Ray's object store; every worker fetches it once.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .._check import check_array, check_k, check_metric, check_positive_int, normalize_rows
from ..blend.graph import check_thresholds
from ..correct.base import Correction
from ..correct.softmax import _check_beta
from ..errors import InputError, InputTypeError
from ..index.base import BaseIndex, build_index, quiet
from ..index.exact import ExactIndex
from ..neighbors import Neighbors
from ._ray import start, worker_errors
from .jobs import MANIFEST, JobReport, map_dataset, run_shards, write_folder
from .sources import Columns, as_dataset, digest, find_shards, is_dataset, read_tables, table_columns
from .sources import batch_rows as read_batch
from .tasks import (
    Bank,
    BankLogSumExp,
    BankMean,
    BlendPass,
    DBNormBias,
    PassState,
    SearchModel,
    TopKOfHeld,
    merge_topk,
)

__all__ = [
    "nnn_bias",
    "csls_bias",
    "softmax_bias",
    "dbnorm_bias",
    "qbnorm_activation",
    "search",
    "blend",
    "collect",
    "last_report",
    "read_output",
    "write_folder",
]
logger = logging.getLogger("nnlift.distributed")

BATCH_ROWS = 8192  # rows a worker reduces at once: 8192 × 768 float32 is 25 MB
_reports: list[JobReport] = []


def last_report() -> JobReport | None:
    """What the last job with ``output=`` did in this process: shards written and skipped, rows/s per worker."""
    return _reports[-1] if _reports else None


def read_output(output: str | os.PathLike) -> Any:
    """A finished job's ``output=`` folder, read back as a Dataset of its rows (one reading task per part file)."""
    folder = Path(output)
    if not (folder / MANIFEST).is_file():
        raise InputError(f"output={str(folder)!r} holds no nnlift job ({MANIFEST} is missing)")
    start()
    return read_tables([str(path) for path in sorted(folder.glob("part-*.parquet"))])


def _prepare_bank(bank: Any, metric: str, name: str = "bank") -> np.ndarray:
    array = check_array(bank, name)
    return normalize_rows(array, name) if metric == "cosine" else array


def _bank_index(template: BaseIndex | None, bank: np.ndarray) -> BaseIndex:
    if template is not None and not isinstance(template, BaseIndex):
        raise InputTypeError(
            f"index must be an nnlift index such as ExactIndex() or Checked(IVFIndex()); got {template!r}"
        )
    return build_index(ExactIndex(progress=False) if template is None else template, bank)


def _sample(source: Any, columns: Columns, rows: int, width: int) -> np.ndarray:
    """The first ``rows`` rows of the source, for a ``Checked`` index's measurement on the driver."""
    with worker_errors():
        found = as_dataset(source, columns, width).limit(rows).take_batch(rows, batch_format="numpy")
    return read_batch(found, columns, width)[1]


def _measure(index: BaseIndex, source: Any, columns: Columns, metric: str, checks: list | None, run) -> None:
    """A ``Checked`` index measures itself once, here on the driver, on the source's first rows.

    Workers then hold the measured index: they do not measure again, and an
    index that fell short (``on_low="exact"``) reaches them answering exactly.
    """
    if not hasattr(index, "checks_"):
        return
    sample = _sample(source, columns, index.sample, index.dim)
    before = len(index.checks_)
    with quiet(index):
        run(index, normalize_rows(sample, "dataset rows") if metric == "cosine" else sample)
    for record in index.checks_[before:]:
        logger.info("approximate bank index measured on %d rows: %s", len(sample), record)
        if checks is not None:
            checks.append({"on": "bank", **record})


def _job(
    dataset: Any,
    state: Any,
    task: Any,
    *,
    job: dict[str, Any],
    columns: Columns,
    width: int | None,
    batch_rows: int,
    workers: int | None,
    output: str | os.PathLike | None,
    overwrite: bool,
) -> Any:
    """Run ``task`` over the dataset: lazily as a Dataset, or shard by shard into ``output`` (resumable)."""
    ray = start()
    batch_rows = check_positive_int(batch_rows, "batch_rows")
    ref = ray.put(state)
    if output is None:
        dataset = as_dataset(dataset, columns, width)
        return map_dataset(dataset, ref, task, columns=columns, width=width, batch=batch_rows, workers=workers)
    report = run_shards(
        dataset,
        output,
        ref,
        task,
        job=job,
        columns=columns,
        width=width,
        chunk=batch_rows,
        workers=workers,
        overwrite=overwrite,
    )
    _reports.append(report)
    return read_tables([str(path) for path in report.files])


def _bank_job(
    dataset: Any,
    bank: Any,
    task: Any,
    statistic: str,
    *,
    metric: str = "cosine",
    index: BaseIndex | None = None,
    checks: list | None = None,
    gallery: Any = None,
    measure: Any = None,
    id_column: str | None = None,
    embedding_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Any:
    """A per-row statistic of the bank (``task``) over the dataset; the options are :func:`nnn_bias`'s."""
    metric = check_metric(metric)
    start()
    bank_array = _prepare_bank(bank, metric)
    columns = Columns(id_column, embedding_column)
    built = _bank_index(index, bank_array)
    if measure is not None:
        _measure(built, dataset, columns, metric, checks, measure)
    gallery_index = None
    if gallery is not None:
        gallery_array = _prepare_bank(gallery, metric, "gallery_bank")
        if gallery_array.shape[1] != bank_array.shape[1]:
            raise InputError(
                f"gallery_bank has {gallery_array.shape[1]} dimensions; the bank has {bank_array.shape[1]}"
            )
        gallery_index = _bank_index(index, gallery_array)
    job = {
        "statistic": statistic,
        "task": repr(task),
        "metric": metric,
        "index": repr(index),
        "bank": digest(bank_array),
        "gallery": None if gallery is None else digest(gallery_array),
    }
    return _job(
        dataset,
        Bank(built, metric, gallery_index),
        task,
        job=job,
        columns=columns,
        width=bank_array.shape[1],
        batch_rows=batch_rows,
        workers=workers,
        output=output,
        overwrite=overwrite,
    )


def nnn_bias(
    dataset: Any,
    bank: Any,
    k: int = 16,
    *,
    fold: bool = False,
    metric: str = "cosine",
    index: BaseIndex | None = None,
    checks: list | None = None,
    id_column: str | None = None,
    embedding_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Any:
    """NNN's bias ``b(x)`` (the mean of the k largest bank similarities) for every row of ``dataset``.

    Parameters
    ----------
    dataset : ray.data.Dataset, path, glob or list of them
        The database: an id column and an embedding column (``id_column``,
        ``embedding_column``; files default to the loader's names, and rows of
        a shard without ids are numbered globally).
    bank : array-like of shape (n_bank, d)
        Reference queries, held once in the object store.
    k : int
        Bank neighbours averaged, as :class:`~nnlift.NNN`'s ``k``.
    fold : bool
        Also output ``folded = [x, b(x)]`` (the normalised row and its bias), for an inner-product index or Qdrant.
    index : BaseIndex, optional
        Index template over the bank (default ``ExactIndex()``). A ``Checked``
        one (``Checked(IVFIndex())``) is measured once on the driver, on the
        dataset's first rows, and its records go to ``checks``.
    checks : list, optional
        Receives what a ``Checked`` index measured (``recall``/``error``, ``action``).
    batch_rows : int
        Rows each worker reduces at once.
    workers : int, optional
        Actors (default one per CPU of the cluster).
    output : path, optional
        A folder: the job runs shard by shard and writes ``part-NNNNN.parquet``
        per input shard, resuming an earlier run of the same job (shard files only).
    overwrite : bool
        With ``output``, replace an earlier job with other parameters there.

    Returns
    -------
    ray.data.Dataset
        Rows ``(id, bias)`` and, with ``fold``, ``folded``. Its bias equals
        ``NNN(k=k).fit(database, bank).bias_`` bit for bit on the exact index.

    Examples
    --------
    >>> import numpy as np, ray  # doctest: +SKIP
    >>> from nnlift import distributed  # doctest: +SKIP
    >>> rows = [{"id": i, "embedding": v} for i, v in enumerate(np.eye(4, dtype=np.float32))]  # doctest: +SKIP
    >>> out = distributed.nnn_bias(ray.data.from_items(rows), np.eye(4), k=1)  # doctest: +SKIP
    >>> distributed.collect(out)["bias"]  # doctest: +SKIP
    array([1., 1., 1., 1.], dtype=float32)
    """
    k = check_positive_int(k, "k")
    check_k(k, len(np.asarray(bank)) if hasattr(bank, "__len__") else k, name="k", what="bank rows")
    return _bank_job(
        dataset,
        bank,
        BankMean(k, bool(fold)),
        "nnn",
        metric=metric,
        index=index,
        checks=checks,
        measure=lambda built, rows: built.topk_mean(rows, k),
        id_column=id_column,
        embedding_column=embedding_column,
        batch_rows=batch_rows,
        workers=workers,
        output=output,
        overwrite=overwrite,
    )


def csls_bias(dataset: Any, bank: Any, k: int = 10, **options: Any) -> Any:
    """CSLS's ``r_X(x)``, the mean of each row's k largest bank similarities (:class:`~nnlift.CSLS`'s ``bias_``).

    The same reduction as NNN's bias; the options are :func:`nnn_bias`'s.
    """
    return nnn_bias(dataset, bank, k, **options)


def softmax_bias(dataset: Any, bank: Any, beta: float = 20.0, **options: Any) -> Any:
    """The inverted softmax's normaliser ``(1/β)·log Σ_r exp(β·s(r, x))`` per row (:class:`~nnlift.InvertedSoftmax`).

    A log-sum-exp is a sum, not a selection, so it is a float32 reduction:
    it equals the single-machine ``bias_`` within a few units in the last place
    (the bank's blocks are summed in an order that follows the batch's size).
    Returns a Dataset of ``(id, bias)``; the options (``metric``, ``id_column``,
    ``embedding_column``, ``batch_rows``, ``workers``, ``output``,
    ``overwrite``) are :func:`nnn_bias`'s.
    """
    _exact_only(options)
    return _bank_job(dataset, bank, BankLogSumExp(_check_beta(beta)), "softmax", **options)


def _exact_only(options: dict[str, Any]) -> None:
    """A log-sum-exp sums over the whole bank: an approximate index has nothing to prune."""
    for name in ("index", "checks", "gallery", "measure"):
        if name in options:
            raise InputTypeError(f"{name}= does not apply here: the statistic sums over every bank row")


def dbnorm_bias(
    dataset: Any, bank: Any, gallery_bank: Any, beta: float = 20.0, gallery_beta: float | None = None, **options: Any
) -> Any:
    """DBNorm's bias from a query bank and a gallery bank (:class:`~nnlift.DBNorm` with ``gallery_bank``).

    At scale the gallery bank is a sample of the database, held like the bank;
    the database itself is never held whole. Returns a Dataset of ``(id, bias)``;
    the options are :func:`softmax_bias`'s.
    """
    if gallery_bank is None:
        raise InputError(
            "gallery_bank is required: a distributed job holds a sample of database-like items, never the whole "
            "database (DBNorm's default); pass a sample of the database as gallery_bank"
        )
    beta = _check_beta(beta)
    gallery_beta = beta if gallery_beta is None else _check_beta(gallery_beta)
    _exact_only(options)
    return _bank_job(dataset, bank, DBNormBias(beta, gallery_beta), "dbnorm", gallery=gallery_bank, **options)


def _held_topk(dataset: Any, held: np.ndarray, k: int, metric: str, columns: Columns, batch: int, workers) -> Neighbors:
    """Each held row's exact top-k over the whole dataset: per-batch top-k on the workers, merged on the driver."""
    ray = start()
    ref = ray.put(Bank(build_index(ExactIndex(progress=False), held), metric))
    source = as_dataset(dataset, columns, held.shape[1])
    triples = map_dataset(
        source, ref, TopKOfHeld(k), columns=columns, width=held.shape[1], batch=batch, workers=workers
    )

    def batches():
        for part in triples.iter_batches(batch_format="numpy", batch_size=None):
            if part["item"].dtype.kind not in "iu":
                raise InputError(
                    f"this job merges top-k lists by id and needs integer ids; column {columns.id_name!r} holds "
                    f"{part['item'].dtype}"
                )
            yield part

    with worker_errors():
        return merge_topk(batches(), len(held), k)


def qbnorm_activation(
    dataset: Any,
    bank: Any,
    k: int = 1,
    *,
    metric: str = "cosine",
    id_column: str | None = None,
    embedding_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
) -> np.ndarray:
    """QB-Norm's activation set: the sorted ids of the items among some bank query's top-k (integer ids).

    Every bank query's exact top-k over the dataset (ties to the lower id) is
    merged from the batches' own top-k, as :class:`~nnlift.QBNorm`'s
    ``activated_`` marks them.
    """
    k = check_positive_int(k, "k")
    metric = check_metric(metric)
    found = _held_topk(
        dataset, _prepare_bank(bank, metric), k, metric, Columns(id_column, embedding_column), batch_rows, workers
    )
    return np.unique(found.ids[found.ids >= 0])


class FixedBias(Correction):
    """A correction whose bias is given: ``s(q, x) − bias(x)`` (what :func:`search` runs for a bias array)."""

    needs_bank = False

    def __init__(self, bias: Any = None, metric: str = "cosine") -> None:
        self.bias = bias
        self.metric = metric

    def _fit(self, database: np.ndarray, bank: Any, **kwargs: Any) -> None:
        bias = check_array(self.bias, "bias", ndim=1)
        if bias.shape[0] != database.shape[0]:
            raise InputError(f"bias has {bias.shape[0]} values for {database.shape[0]} database rows")
        self.bias_ = bias


def search(
    queries: Any,
    model_or_bias: Any = None,
    k: int = 10,
    *,
    database: Any = None,
    metric: str = "cosine",
    id_column: str | None = None,
    embedding_column: str | None = None,
    batch_rows: int = BATCH_ROWS,
    workers: int | None = None,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Any:
    """Batch retrieval: the database held once per worker, or streamed in blocks past held queries.

    - **Held** (``queries`` a Dataset or shards): ``model_or_bias`` is a fitted
      correction (``NNN``, ``CSLS``, ...) or a bias array with ``database``
      an array. Each worker holds the model; each query batch gets
      ``model.search(batch, k)``. Returns a Dataset of ``(id, neighbors,
      scores)`` whose ``neighbors`` are database row numbers, equal to
      ``model.search(queries, k)`` row for row.
    - **Streamed** (``queries`` an array, ``database`` a Dataset or shards
      with integer ids, ``model_or_bias`` None): exact raw top-k of each query
      over the whole database, merged from each block's top-k. Returns
      :class:`~nnlift.Neighbors` whose ids are the database's ids. Search a
      folded NNN database (``embedding_column="folded"``) with
      ``[q, −alpha]`` queries and ``metric="ip"`` for corrected scores.
    """
    k = check_positive_int(k, "k")
    metric = check_metric(metric)
    columns = Columns(id_column, embedding_column)
    if database is not None and (is_dataset(database) or isinstance(database, (str, os.PathLike, list, tuple))):
        if model_or_bias is not None:
            raise InputError(
                "a streamed database (a Dataset or shards) is searched by raw score; fold the bias into the "
                "vectors (nnn_bias(..., fold=True)) and pass model_or_bias=None"
            )
        held = check_array(queries, "queries")
        held = normalize_rows(held, "queries") if metric == "cosine" else held
        return _held_topk(database, held, k, metric, columns, batch_rows, workers)
    if isinstance(model_or_bias, Correction):
        if database is not None:
            raise InputError("a fitted model holds its database; pass database= only with a bias array")
        model = model_or_bias
        if not hasattr(model, "database_"):
            raise InputError(f"{type(model).__name__} is not fitted; fit it before searching")
    elif model_or_bias is not None and database is not None:
        model = FixedBias(model_or_bias, metric=metric).fit(database)
    else:
        raise InputTypeError(
            "model_or_bias must be a fitted correction (NNN, CSLS, ...), or a bias array with database= an array"
        )
    check_k(k, model.n_database)
    job = {"statistic": "search", "k": k, "model": digest(model.database_), "bias": digest(model._search_bias())}
    return _job(
        queries,
        model,
        SearchModel(k),
        job=job,
        columns=columns,
        width=model.database_.shape[1],
        batch_rows=batch_rows,
        workers=workers,
        output=output,
        overwrite=overwrite,
    )


def collect(dataset: Any, *, order_by: str | None = "id") -> dict[str, np.ndarray]:
    """A (small) Dataset's columns as numpy arrays, ordered by ``order_by`` (Ray Data does not keep row order)."""
    ray = start()
    from .._optional import require

    pa = require("pyarrow", "collecting a Dataset")
    with worker_errors():
        tables = ray.get(dataset.to_arrow_refs())
    # A shuffle's empty partitions come back as tables without columns: they hold nothing to join.
    tables = [table for table in tables if table.num_rows] or tables[:1]
    out = table_columns(pa.concat_tables(tables)) if tables else {}
    if order_by is not None and order_by in out:
        order = np.argsort(out[order_by], kind="stable")
        out = {name: values[order] for name, values in out.items()}
    return out


def blend(
    dataset: Any,
    thresholds: Any = (0.9, 0.8),
    k: int = 10,
    *,
    id_column: str | None = None,
    embedding_column: str | None = None,
    batch_rows: int = 4096,
    workers: int | None = None,
    lists: int | str | None = None,
    n_probe: int = 8,
    check_sample: int = 1000,
    min_recall: float = 0.99,
    on_low: str = "warn",
    checks: list | None = None,
    seed: int = 0,
    graph: bool = False,
    output: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Any:
    """Iterative blending on Ray Data, exact or on an IVF partition join: :class:`~nnlift.NeighborhoodBlender`'s passes.

    **Exact** (``lists=None``): per pass the pass's matrix is held once in
    the object store; workers get row positions, find each row's exact
    neighbours among all rows and write ``normalize(W·X)``. The driver gathers
    each pass (the next pass needs all of it), so this mode is bounded by one
    machine's memory while its work runs on every worker. The result equals
    ``NeighborhoodBlender(thresholds, k).fit_transform`` within 1e-6.

    **Partitioned** (``lists=`` a number, or ``"auto"`` for ``2√n``): no pass
    is gathered. k-means on a sample gives the lists, each row joins its
    nearest list and is a candidate of its ``n_probe`` nearest, and each
    list's members are blended over its candidates on a worker (see
    :mod:`nnlift.distributed.partition`). Integer ids are needed. Each pass's
    recall against exact search is measured on ``check_sample`` rows (drawn
    by a hash of their ids, disjoint from the k-means sample) and appended to
    ``checks`` as ``{"pass", "recall", "standard_error", "rows", "action"}``;
    below ``min_recall`` it warns (``on_low="warn"``) or raises
    :class:`~nnlift.LowRecallError` (``"raise"``), naming ``n_probe``. With
    ``n_probe`` equal to ``lists`` it is exact blending. ``graph=True`` keeps
    a ``neighbors`` column: each row's last-pass graph row as ids (itself
    included, padded with -1).

    ``output=FOLDER`` (partitioned, from shard files) makes the job
    resumable by pass: each finished pass is written there (``pass-NN/``
    parquet parts, its recall record and centroids), and a rerun of the same
    job reads those passes back and computes only the rest, to the same
    result. The folder is refused if it holds anything else, or another
    job's passes unless ``overwrite=True``.

    Numeric thresholds only (``"auto"`` needs every row's similarities at
    once). Returns a Dataset of ``(id, embedding)``; ids keep the input's.

    Examples
    --------
    >>> import numpy as np, nnlift.distributed as nd  # doctest: +SKIP
    >>> rows = {"id": np.arange(5000), "embedding": np.random.default_rng(0).normal(size=(5000, 32))}  # doctest: +SKIP
    >>> checks = []  # doctest: +SKIP
    >>> out = nd.blend(nd.start().data.from_numpy(rows), (0.5,), lists=64, n_probe=8, checks=checks)  # doctest: +SKIP
    >>> checks[0]["recall"] > 0.9  # doctest: +SKIP
    True
    """
    values = check_thresholds(thresholds)
    k = check_positive_int(k, "k")
    ray = start()
    columns = Columns(id_column, embedding_column)
    if lists is None and (graph or checks is not None or output is not None):
        raise InputError(
            "graph=, checks= and output= apply to partitioned blending (lists=); exact blending gathers each pass "
            "here and has no recall to report"
        )
    if lists is not None:
        from .jobs import _prepare_output, job_manifest
        from .partition import PassStore, partition_blend

        store = PassStore(None)
        if output is not None:
            if is_dataset(dataset):
                raise InputError(
                    "output= resumes a job over shard files (paths or globs); for a Dataset, leave it unset"
                )
            job = {"kind": "blend", "thresholds": values, "k": k, "lists": lists, "n_probe": n_probe,
                   "check_sample": check_sample, "min_recall": min_recall, "seed": seed}  # fmt: skip
            manifest = job_manifest(job, columns, find_shards(dataset, columns))
            store = PassStore(Path(output).absolute())
            _prepare_output(store.output, manifest, overwrite)

        with worker_errors():
            out = partition_blend(
                as_dataset(dataset, columns),
                values,
                k,
                columns=columns,
                lists=lists,
                n_probe=n_probe,
                check_sample=check_sample,
                min_recall=min_recall,
                on_low=on_low,
                checks=checks,
                seed=check_positive_int(seed, "seed", minimum=0),
                batch_rows=check_positive_int(batch_rows, "batch_rows"),
                workers=workers,
                graph=bool(graph),
                store=store,
            )
        if columns.id_name != "id" or columns.embedding_name != "embedding":
            out = out.rename_columns({"id": columns.id_name, "embedding": columns.embedding_name})
        return out
    gathered = collect(as_dataset(dataset, columns), order_by=None)
    ids, rows = read_batch(gathered, columns, None)
    current = normalize_rows(rows, "dataset rows")
    check_k(k, len(current), name="k", what="rows")
    from .._optional import require

    pa = require("pyarrow", "blending a Dataset")
    rows_per_block = check_positive_int(batch_rows, "batch_rows")
    # Positions, in memory (no reading tasks), one block per batch so that every actor gets work.
    positions = ray.data.from_arrow(
        [
            pa.table({"position": np.arange(lo, min(lo + rows_per_block, len(current)), dtype=np.int64)})
            for lo in range(0, len(current), rows_per_block)
        ]
    )
    pass_columns = Columns("position", None)
    for threshold in values:
        state = ray.put(PassState(current, build_index(ExactIndex(progress=False), current)))
        blended = map_dataset(
            positions,
            state,
            BlendPass(k, threshold),
            columns=pass_columns,
            width=None,
            batch=rows_per_block,
            workers=workers,
        )
        out = np.empty_like(current)
        with worker_errors():
            for part in blended.iter_batches(batch_format="numpy", batch_size=None):
                out[np.asarray(part["position"], np.int64)] = np.asarray(part["embedding"], np.float32)
        current = out
    flat = pa.FixedSizeListArray.from_arrays(pa.array(current.ravel()), current.shape[1])
    return ray.data.from_arrow(pa.table({columns.id_name: pa.array(ids), columns.embedding_name: flat}))
