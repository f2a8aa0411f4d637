"""The blocked kernel: row blocks of ``A`` times ``Bᵀ``, minus a per-column bias, reduced per row.

Every method in nnlift reduces to this primitive (ARCHITECTURE.md §1). The full
score matrix never exists: tiles are sized from ``working_memory`` and reduced
as they are produced, by worker threads that each run single-threaded BLAS.

Top-k selection is the cost to engineer, not the multiply. A tile of shape
(b, n) is viewed as (b, g, G): column ``j`` of group ``c`` is ``c + j*G``. The
maximum over ``g`` is a fully vectorised pass, and the k-th largest group
maximum is a lower bound for the row's k-th largest score, so only the few
groups whose maximum reaches it can hold a winner. The candidates are packed
into uint64 keys (descending score in the high word, id in the low word), so
one ``np.partition`` gives the exact top-k with ties broken by the lower id.

The kernel is three modules: ``keys`` (the packed (score, id) keys),
``selection`` (top-k of a tile, entries above a threshold, merges) and
``driver`` (tiling, threads, the reductions). This module holds the public API.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._check import check_array, check_finite_scalar, check_k, check_pair
from ..errors import InputError, InputTypeError
from ..engines import check_engine
from ..neighbors import Neighbors
from .driver import DEFAULT_WORKING_MEMORY, check_working_memory, logsumexp_arrays, self_topk_arrays, topk_arrays

__all__ = ["topk", "topk_mean", "logsumexp", "DEFAULT_WORKING_MEMORY"]


def topk(
    queries: Any,
    database: Any,
    k: int,
    *,
    bias: Any = None,
    exclude_self: bool = False,
    threshold: float | None = None,
    metric: str = "cosine",
    working_memory: int | None = None,
    progress: bool = True,
    engine: str | None = None,
    device: str | None = None,
) -> Neighbors:
    """Exact top-k of ``s(q, x) − bias(x)`` for every query, block by block.

    Parameters
    ----------
    queries : array-like of shape (n_queries, d)
    database : array-like of shape (n_database, d)
    k : int
        Neighbours per query; at most ``n_database`` (``n_database − 1`` with
        ``exclude_self``).
    bias : array-like of shape (n_database,), optional
        Subtracted from every score of the matching database row.
    exclude_self : bool
        Skip database row ``i`` for query row ``i`` (self-joins). Passing the
        same array as ``queries`` and ``database`` (without ``bias``) runs the
        symmetric self-join, which multiplies each pair of row blocks once.
    threshold : float, optional
        Keep only scores strictly greater than it; other slots are padded with
        id ``-1`` and score ``-inf``.
    metric : {"cosine", "ip"}
        ``"cosine"`` scores unit-norm copies; ``"ip"`` is the raw inner product.
    working_memory : int, optional
        Bytes of score tiles held at once (default 256 MiB).
    progress : bool
        Show a progress bar for long searches.
    engine : {"auto", "numpy", "torch", "torch-bf16", "cuda", "cuda-bf16"}, optional
        Who multiplies (default: :func:`nnlift.set_engine`, ``NNLIFT_ENGINE``
        or ``"auto"``). The answer is the same on every engine.
    device : {"cpu", "cuda", "cuda:N"}, optional
        Where; ``device="cuda"`` alone picks the faster CUDA engine.

    Returns
    -------
    Neighbors
        Sorted by descending score, ties broken by the lower database id. The
        scores are canonical (float32 inputs, float64 sums in a fixed order,
        rounded once): identical, bit for bit, whatever the engine, batch,
        ``working_memory`` or worker count (see ``nnlift.kernel.canonical``).

    Examples
    --------
    >>> import numpy as np
    >>> database = np.eye(3, dtype=np.float32)
    >>> topk([[1.0, 0.5, 0.0]], database, k=2).ids.tolist()
    [[0, 1]]
    """
    symmetric = queries is database and bias is None
    queries_array, database_array = check_pair(queries, database, metric)
    if symmetric:
        queries_array = database_array
    if not isinstance(exclude_self, (bool, np.bool_)):
        raise InputTypeError(f"exclude_self must be True or False; got {exclude_self!r}")
    limit = database_array.shape[0] - (1 if exclude_self else 0)
    if limit < 1:
        raise InputError("exclude_self=True needs a database of at least 2 rows")
    k = check_k(k, limit, what="database rows" + (" besides the query itself" if exclude_self else ""))
    bias_array = None
    if bias is not None:
        bias_array = check_array(bias, "bias", ndim=1)
        if bias_array.shape[0] != database_array.shape[0]:
            raise InputError(
                f"bias must have one value per database row ({database_array.shape[0]}); got {bias_array.shape[0]}"
            )
    if threshold is not None:
        threshold = check_finite_scalar(threshold, "threshold")
    engines = dict(zip(("engine", "device"), check_engine(engine, device)))
    if symmetric:
        return self_topk_arrays(
            database_array,
            k,
            exclude_self=bool(exclude_self),
            threshold=threshold,
            working_memory=check_working_memory(working_memory),
            progress=progress,
            **engines,
        )
    return topk_arrays(
        queries_array,
        database_array,
        k,
        bias=bias_array,
        exclude_self=bool(exclude_self),
        threshold=threshold,
        working_memory=check_working_memory(working_memory),
        progress=progress,
        **engines,
    )


def topk_mean(
    queries: Any,
    database: Any,
    k: int,
    *,
    metric: str = "cosine",
    exclude_self: bool = False,
    working_memory: int | None = None,
    progress: bool = True,
    engine: str | None = None,
    device: str | None = None,
) -> np.ndarray:
    """Mean of the k largest scores of each query row (NNN's bias, CSLS's neighbourhood term).

    Examples
    --------
    >>> topk_mean([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], k=2).tolist()
    [0.5]
    """
    neighbors = topk(
        queries,
        database,
        k,
        exclude_self=exclude_self,
        metric=metric,
        working_memory=working_memory,
        progress=progress,
        engine=engine,
        device=device,
    )
    return neighbors.scores.mean(axis=1, dtype=np.float64).astype(np.float32)


def logsumexp(
    queries: Any,
    database: Any,
    beta: float,
    *,
    metric: str = "cosine",
    working_memory: int | None = None,
    progress: bool = True,
    engine: str | None = None,
    device: str | None = None,
) -> np.ndarray:
    """``(1/β)·log Σ_j exp(β·s(q, x_j))`` for every query row, stably and without the full matrix.

    Examples
    --------
    >>> import numpy as np
    >>> value = logsumexp([[1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]], beta=1.0)
    >>> bool(np.isclose(value[0], np.log(np.e + 1.0)))
    True
    """
    queries_array, database_array = check_pair(queries, database, metric)
    beta = check_finite_scalar(beta, "beta")
    if beta <= 0:
        raise InputError(f"beta must be > 0; got {beta}")
    return logsumexp_arrays(
        queries_array,
        database_array,
        beta,
        working_memory=check_working_memory(working_memory),
        progress=progress,
        engine=check_engine(engine, device)[0],
        device=device,
    )
