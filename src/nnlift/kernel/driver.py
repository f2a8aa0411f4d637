"""The driver: row blocks of ``A`` times ``Bᵀ``, minus a per-column bias, reduced per row by worker threads.

The full score matrix never exists: tiles are sized from ``working_memory``
and reduced as they are produced (top-k keys, a streaming log-sum-exp), by
worker threads that each run single-threaded BLAS. The symmetric self-join
multiplies each pair of row blocks once and serves both sides.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from .._progress import progress_bar
from .._threads import default_workers, single_threaded_blas
from ..errors import InputError, InputTypeError
from ..engines import Engine, Prepared, prepare, resolve
from ..engines.base import NumpyEngine, row_norms64
from ..neighbors import Neighbors
from .canonical import canonical_margin, certified, certify
from .keys import KEY_PAD, decode_keys, encode_keys, keys_to_neighbors, smallest_keys
from .selection import PendingPairs, merge_column_candidates, pairs_above, tile_topk_keys, tile_topk_keys_native

__all__ = [
    "DEFAULT_WORKING_MEMORY",
    "TopKReduction",
    "LogSumExpReduction",
    "ColumnBest",
    "SelfJoinReduction",
    "scratch_buffer",
    "plan",
    "blocked",
    "check_working_memory",
    "topk_arrays",
    "self_topk_arrays",
    "logsumexp_arrays",
    "certificate_counts",
    "certify_rows",
]

DEFAULT_WORKING_MEMORY = 256 * 2**20
# Bytes of working memory one score takes: the float32 tile plus a same-sized temporary.
_BYTES_PER_SCORE = 8
_MIN_ROWS = 32
_TARGET_ROWS = 512
_MIN_COLUMNS = 1024
# Tiles each worker computes at least, where columns allow: a worker's scratch is
# fresh memory, whose first touch costs about as much as a GEMM over it on these
# VMs, so a tile used once or twice is slow (1,000 × 50,000 queries: median
# 0.40 s with 2 tiles per worker, 0.27 s with 4).
_MIN_TILES_PER_WORKER = 4
_GEMM_FLOPS_PER_WORKER = 40e9  # conservative, only used to decide whether to show a bar



# --------------------------------------------------------------------------- reductions
class TopKReduction:
    """Running exact top-k of each row, merged tile by tile.

    It takes an engine's own tiles (``native_tiles``: bfloat16 or GPU tensors)
    as they are, without a float32 copy (:func:`tile_topk_keys_native`).
    """

    native_tiles = True

    def __init__(self, k: int) -> None:
        self.k = k

    def start(self, n_rows: int, row_offset: int) -> Any:
        return np.empty((n_rows, 0), dtype=np.uint64)

    def update(self, state: np.ndarray, scores: np.ndarray, column_offset: int) -> np.ndarray:
        floor = None
        if state.shape[1] == self.k:  # the k-th so far: a later tile's entry below it cannot enter
            floor = np.where(state[:, -1] == KEY_PAD, -np.inf, decode_keys(state[:, -1])[0])
        select = tile_topk_keys if isinstance(scores, np.ndarray) else tile_topk_keys_native
        keys = select(scores, self.k, column_offset, floor)
        if state.shape[1] == 0:
            return keys
        return smallest_keys(np.concatenate([state, keys], axis=1), self.k)

    def finish(self, state: np.ndarray) -> np.ndarray:
        return state


class CertifiedTopK(TopKReduction):
    """The engine's top-(width + 1) of each row, then canonical rescoring and the certificate, in the worker.

    Each row block is certified by the worker that searched it, so the
    rescoring runs in parallel with the other workers' tiles. ``finish``
    returns the block's canonical keys and which of its rows are certified.
    """

    def __init__(self, k: int, width: int, queries: np.ndarray, database: np.ndarray, prepared, bias, threshold) -> None:
        super().__init__(width + 1)
        self.final_k, self.width = k, width
        self.queries, self.database, self.prepared = queries, database, prepared
        self.bias, self.threshold = bias, threshold

    def start(self, n_rows: int, row_offset: int) -> Any:
        return super().start(n_rows, row_offset), row_offset

    def update(self, state, scores: np.ndarray, column_offset: int):
        keys, row_offset = state
        return super().update(keys, scores, column_offset), row_offset

    def finish(self, state) -> tuple[np.ndarray, np.ndarray]:
        wide, row_offset = state
        block = self.queries[row_offset : row_offset + wide.shape[0]]
        epsilon = _epsilon(block, self.prepared, self.bias)
        final, left, kth = certify(block, self.database, wide, self.final_k, self.width, epsilon, bias=self.bias, database_norm=_norm_bound(self.prepared))
        return final, certified(left, kth, epsilon, self.threshold)


class LogSumExpReduction:
    """Running ``max`` and ``Σ exp(β(s − max))`` per row, in float64."""

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def start(self, n_rows: int, row_offset: int) -> Any:
        return (np.full(n_rows, -np.inf), np.zeros(n_rows))

    def update(self, state, scores: np.ndarray, column_offset: int):
        running_max, running_sum = state
        tile_max = scores.max(axis=1).astype(np.float64)
        new_max = np.maximum(running_max, tile_max)
        scores -= new_max.astype(np.float32)[:, None]
        scores *= np.float32(self.beta)
        np.exp(scores, out=scores)
        with np.errstate(invalid="ignore"):
            rescale = np.exp(self.beta * (running_max - new_max))
        rescale[~np.isfinite(running_max)] = 0.0
        return new_max, running_sum * rescale + scores.sum(axis=1, dtype=np.float64)

    def finish(self, state) -> np.ndarray:
        running_max, running_sum = state
        return running_max + np.log(running_sum) / self.beta


class ColumnBest:
    """Wraps a reduction: also each column's best row (highest score, ties to the lower row), from the same tiles.

    Each worker keeps its own (score, row) per column, read before the wrapped
    reduction may change the tile in place; :meth:`merged` combines them.
    """

    def __init__(self, inner: Any, n_columns: int) -> None:
        self.inner, self.n_columns = inner, n_columns
        self.local = threading.local()
        self.accumulators: list[tuple[np.ndarray, np.ndarray]] = []
        self.lock = threading.Lock()

    def start(self, n_rows: int, row_offset: int) -> Any:
        return self.inner.start(n_rows, row_offset), row_offset

    def update(self, state, scores: np.ndarray, column_offset: int):
        inner, row_offset = state
        best = getattr(self.local, "best", None)
        if best is None:
            best = (np.full(self.n_columns, -np.inf, np.float32), np.full(self.n_columns, -1, np.int64))
            self.local.best = best
            with self.lock:
                self.accumulators.append(best)
        rows = scores.argmax(axis=0)  # the first maximum: the lower row on ties
        values = scores[rows, np.arange(scores.shape[1])]
        window = slice(column_offset, column_offset + scores.shape[1])
        held_values, held_rows = best[0][window], best[1][window]  # views: written in place
        better = values > held_values  # row blocks come in order per worker: a tie keeps the lower row
        held_values[better] = values[better]
        held_rows[better] = rows[better] + row_offset
        return self.inner.update(inner, scores, column_offset), row_offset

    def finish(self, state) -> Any:
        return self.inner.finish(state[0])

    def merged(self) -> np.ndarray:
        """Each column's best row over every worker (-1 where no row was seen)."""
        values = np.full(self.n_columns, -np.inf, np.float32)
        rows = np.full(self.n_columns, -1, np.int64)
        for worker_values, worker_rows in self.accumulators:
            tie = (worker_values == values) & (worker_rows >= 0) & ((rows < 0) | (worker_rows < rows))
            take = (worker_values > values) | tie
            values[take], rows[take] = worker_values[take], worker_rows[take]
        return rows



class SelfJoinReduction:
    """Each row's top-k among all rows, from the tiles of the upper triangle of ``X·Xᵀ`` only.

    A tile of row block I and columns J (J from I's first row on) gives the
    rows of I their candidates (row-wise selection) and gives every column of
    J past I its candidates among the rows of I (column-wise selection, no
    transpose), which the transposed tile would have given. Each worker
    accumulates the column candidates in its own buffer, merged with the row
    results at the end (:meth:`merged`).

    With a ``threshold`` only scores above it can be returned, and the set of
    such pairs is itself symmetric: a tile where they are few gives its pairs to
    both rows and columns from one scan (:func:`pairs_above`), with no top-k
    selection at all. Tiles with too many pairs use the selection above.
    """

    def __init__(self, k: int, n: int, threshold: float | None) -> None:
        self.k, self.n, self.threshold = k, n, threshold
        self.local = threading.local()
        self.accumulators: list[np.ndarray] = []
        self.pending: list[PendingPairs] = []
        self.lock = threading.Lock()

    def _accumulator(self) -> tuple[np.ndarray, PendingPairs]:
        acc = getattr(self.local, "acc", None)
        if acc is None:
            acc = self.local.acc = np.full((self.n, self.k), KEY_PAD, dtype=np.uint64)
            self.local.pairs = PendingPairs(acc, self.k, limit=4 * self.k * self.n)
            with self.lock:
                self.accumulators.append(acc)
                self.pending.append(self.local.pairs)
        return acc, self.local.pairs

    def start(self, n_rows: int, row_offset: int) -> Any:
        return None, row_offset, row_offset + n_rows

    def update(self, state, scores: np.ndarray, column_offset: int):
        keys, r0, r1 = state
        k, c0 = self.k, column_offset
        c1 = c0 + scores.shape[1]
        acc, pairs = self._accumulator()
        first = max(c0, r1)  # columns past this row block also take candidates from it
        if self.threshold is not None:
            found = pairs_above(scores, self.threshold, budget=8 * k * (r1 - r0 + c1 - c0))
            if found is not None:
                tile_rows, tile_columns, values = found
                row_ids, column_ids = tile_rows + r0, tile_columns + c0
                later = column_ids >= first
                pairs.add(row_ids, encode_keys(values, column_ids))
                pairs.add(column_ids[later], encode_keys(values[later], row_ids[later]))
                return keys, r0, r1
        tile_keys = tile_topk_keys(scores, k, c0)
        keys = tile_keys if keys is None else smallest_keys(np.concatenate([keys, tile_keys], axis=1), k)
        if first < c1:
            acc[first:c1] = merge_column_candidates(acc[first:c1], scores[:, first - c0 :], k, r0)
        return keys, r0, r1

    def finish(self, state) -> np.ndarray:
        keys, r0, r1 = state
        if keys is None:
            return np.full((r1 - r0, self.k), KEY_PAD, dtype=np.uint64)
        if keys.shape[1] < self.k:  # the last columns may number fewer than k
            keys = np.pad(keys, ((0, 0), (0, self.k - keys.shape[1])), constant_values=KEY_PAD)
        return keys

    def merged(self, blocks: list[np.ndarray]) -> np.ndarray:
        """The row blocks' keys merged with every worker's column candidates and pending pairs."""
        for pairs in self.pending:
            pairs.fold()
        keys = np.concatenate(blocks, axis=0) if blocks else np.empty((0, self.k), np.uint64)
        for acc in self.accumulators:
            keys = smallest_keys(np.concatenate([keys, acc], axis=1), self.k)
        return keys


# --------------------------------------------------------------------------- driver
def scratch_buffer(local: threading.local, name: str, rows: int, columns: int) -> np.ndarray:
    """A C-contiguous float32 (rows, columns) view of this thread's reusable buffer ``name``.

    Fresh tiles would page-fault on every touch, so each worker keeps one
    buffer per use, grown (to exactly the size asked) only when too small.
    """
    buffer = getattr(local, name, None)
    if buffer is None or buffer.size < rows * columns:
        buffer = np.empty(rows * columns, dtype=np.float32)
        setattr(local, name, buffer)
    return buffer[: rows * columns].reshape(rows, columns)


def plan(n_rows: int, n_cols: int, workers: int, working_memory: int) -> tuple[int, int]:
    """Tile shape (rows, columns) so that ``workers`` tiles fit in ``working_memory``.

    Tiles are tall rather than wide: every GEMM call packs its slice of the
    database, so a few hundred query rows per call amortise that packing
    (measured: 167-row full-width tiles ran at 0.85× of the GEMM floor, 512-row
    tiles at 1.0×).
    """
    per_worker = max(working_memory // workers, _BYTES_PER_SCORE * _MIN_COLUMNS)
    rows = min(n_rows, _TARGET_ROWS, max(_MIN_ROWS, math.ceil(n_rows / (2 * workers))))
    rows = max(1, min(rows, per_worker // (_BYTES_PER_SCORE * min(n_cols, _MIN_COLUMNS))))
    cols = min(n_cols, max(1, per_worker // (_BYTES_PER_SCORE * rows)))
    row_blocks = math.ceil(n_rows / rows)
    col_blocks = math.ceil(_MIN_TILES_PER_WORKER * workers / row_blocks)
    if col_blocks > math.ceil(n_cols / cols):  # too few tiles to reuse the scratch: narrow them
        cols = min(cols, max(_MIN_COLUMNS, math.ceil(n_cols / col_blocks)))
    return rows, cols


def blocked(
    queries: np.ndarray,
    database: np.ndarray,
    make_reduction: Callable[[], Any],
    *,
    bias: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
    working_memory: int | None = None,
    progress: bool = True,
    description: str = "scoring",
    workers: int | None = None,
    triangle: bool = False,
    prepared: Prepared | None = None,
) -> list[Any]:
    """Run a reduction over every tile of ``queries · databaseᵀ − bias``; one result per row block.

    The tiles come from ``prepared``'s engine (numpy float32 by default), so
    their scores are approximate within that engine's ε. ``exclude`` gives,
    per query row, one database row to leave out (score −inf; −1 for none).
    With ``triangle`` (a self-join: ``queries`` is ``database``) a row block
    meets only the columns from its own first row on: the upper triangle and
    the diagonal blocks, about half the multiply; the reduction serves the
    symmetric half from the same tiles.
    """
    n_rows, n_cols = queries.shape[0], database.shape[0]
    working_memory = DEFAULT_WORKING_MEMORY if working_memory is None else working_memory
    workers = default_workers() if workers is None else workers
    prepared = NumpyEngine().prepare(database) if prepared is None else prepared
    engine = prepared.engine
    reduction = make_reduction()
    # Tiles stay the engine's own (no float32 copy) when both sides allow it; a bias is
    # subtracted in float32, so it takes the copy.
    native = bias is None and getattr(reduction, "native_tiles", False) and engine.native_tiles
    row_block, col_block = plan(n_rows, n_cols, workers, working_memory)
    starts = list(range(0, n_rows, row_block))
    parallel = workers > 1 and len(starts) > 1
    flops = (1.0 if triangle else 2.0) * n_rows * n_cols * queries.shape[1]

    local = threading.local()

    def run_block(r0: int) -> Any:
        if parallel and not getattr(local, "ready", False):
            engine.thread_setup()
            local.ready = True
        r1 = min(r0 + row_block, n_rows)
        block = prepared.queries(queries[r0:r1])
        left_out = None if exclude is None else exclude[r0:r1]
        state = reduction.start(r1 - r0, r0)
        for c0 in range(r0 if triangle else 0, n_cols, col_block):
            c1 = min(c0 + col_block, n_cols)
            if native:  # the engine's own tile: no float32 copy (no bias here, see above)
                scores = prepared.multiply_native(block, c0, c1)
            else:
                scores = scratch_buffer(local, "tile", r1 - r0, c1 - c0)
                prepared.multiply(block, c0, c1, scores)
                if bias is not None:
                    scores -= bias[c0:c1]
            if left_out is not None:
                inside = np.flatnonzero((left_out >= c0) & (left_out < c1))
                if len(inside):
                    engine.fill(scores, inside, left_out[inside] - c0, -np.inf)
            state = reduction.update(state, scores, c0)
        bar.advance(r1 - r0)
        return reduction.finish(state)

    expected = flops / (_GEMM_FLOPS_PER_WORKER * (workers if parallel else 1))
    with progress_bar(description, n_rows, enabled=progress, expected_seconds=expected) as bar:
        if not parallel:
            return [run_block(r0) for r0 in starts]
        with single_threaded_blas(), ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run_block, starts))


def check_working_memory(working_memory: Any) -> int | None:
    if working_memory is None:
        return None
    if isinstance(working_memory, bool) or not isinstance(working_memory, (int, np.integer)):
        raise InputTypeError(f"working_memory must be a number of bytes (int); got {working_memory!r}")
    if working_memory < 1024:
        raise InputError(f"working_memory must be at least 1024 bytes; got {working_memory}")
    return int(working_memory)


def initial_width(engine: Engine, k: int, limit: int) -> int:
    """Candidates per row the engine keeps before the certificate: a float32 engine's ε is
    about 10⁻⁵, so a few spare slots absorb near-ties; a bfloat16 engine's ε (about 0.008)
    spans more items (ARCHITECTURE.md §5: 13 at the median within 2ε of the 10th score)."""
    spare = k + 24 if engine.precision == "bfloat16" else 8
    return min(limit, k + spare)


def choose_engine(
    engine: Engine | str | None,
    n_rows: int,
    n_cols: int,
    d: int,
    device: str | None = None,
    k: int | None = None,
    reduced: bool = True,
) -> Engine:
    if isinstance(engine, Engine):
        return engine
    return resolve(engine, device, flops=2.0 * n_rows * n_cols * d, d=d, k=k, reduced=reduced)


def topk_arrays(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    *,
    bias: np.ndarray | None = None,
    exclude_self: bool = False,
    threshold: float | None = None,
    working_memory: int | None = None,
    progress: bool = True,
    workers: int | None = None,
    engine: Engine | str | None = None,
    device: str | None = None,
    exclude: np.ndarray | None = None,
) -> Neighbors:
    """:func:`topk` on validated float32 arrays (internal callers trust their inputs).

    Candidates come from the engine, scores from the canonical rescoring, and
    rows whose certificate fails are searched again with four times the
    candidates (``kernel.canonical``). ``workers=1`` runs serially with the
    caller's BLAS threads (for callers that parallelise around the kernel
    themselves). ``exclude`` (per query row, one database row to leave out)
    generalises ``exclude_self``.
    """
    if exclude_self and exclude is None:
        exclude = np.arange(queries.shape[0])
    limit = database.shape[0] - (0 if exclude is None else 1)
    engine = choose_engine(engine, queries.shape[0], database.shape[0], queries.shape[1], device, k)
    prepared = prepare(engine, database)
    keys = np.empty((queries.shape[0], k), dtype=np.uint64)
    pending = np.arange(queries.shape[0])
    width = initial_width(engine, k, limit)
    while len(pending):
        subset = queries if len(pending) == queries.shape[0] else queries[pending]
        blocks = blocked(
            subset,
            database,
            lambda: CertifiedTopK(k, width, subset, database, prepared, bias, threshold),
            bias=bias,
            exclude=None if exclude is None else exclude[pending],
            working_memory=working_memory,
            progress=progress,
            description=f"top-{k} search",
            workers=workers,
            prepared=prepared,
        )
        if not blocks:
            break
        final = np.concatenate([block[0] for block in blocks], axis=0)
        done = np.concatenate([block[1] for block in blocks])
        keys[pending[done]] = final[done]
        if len(pending) == queries.shape[0]:
            _count(len(pending), int((~done).sum()))
        pending = pending[~done]
        width = min(limit, 4 * width)
        progress = False
    return keys_to_neighbors(keys, threshold)


_COUNTS = {"rows": 0, "widened": 0}
_COUNTS_LOCK = threading.Lock()


def certificate_counts(reset: bool = False) -> dict[str, int]:
    """Rows certified by the kernel in this process, and how many of them needed a second pass (widening)."""
    with _COUNTS_LOCK:
        counts = dict(_COUNTS)
        if reset:
            _COUNTS.update(rows=0, widened=0)
    return counts


def _count(rows: int, widened: int) -> None:
    with _COUNTS_LOCK:
        _COUNTS["rows"] += rows
        _COUNTS["widened"] += widened


def _norm_bound(prepared: Prepared) -> float:
    """A bound on every database row's norm from the engine's copy (‖hi(x)‖ undercounts ‖x‖ by at most 2⁻⁸)."""
    return prepared.norm_max * (1 + 2.0**-7) + prepared.residual_max


def _epsilon(queries: np.ndarray, prepared: Prepared, bias: np.ndarray | None) -> np.ndarray:
    """ε per query row: the engine's bound plus the canonical rounding's."""
    bias_max = 0.0 if bias is None else float(np.abs(bias).max(initial=0.0))
    margin = canonical_margin(row_norms64(queries), prepared.norm_max, bias_max, queries.shape[1])
    return prepared.error(queries) + margin


_CERTIFY_ROWS = 2048  # rows certified per task: a few MiB of gathered candidates each


def certify_rows(
    queries: np.ndarray,
    database: np.ndarray,
    wide: np.ndarray,
    k: int,
    width: int,
    prepared: Prepared,
    bias: np.ndarray | None,
    threshold: float | None,
    epsilon: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Canonical keys of every row of ``queries`` from its candidates ``wide``, and which rows are certified.

    Rows are certified in chunks by the worker threads (the canonical
    rescoring gathers each candidate's row: memory-bound, so two cores halve
    it). Callers whose reduction already ran in the workers certify there
    instead (:class:`CertifiedTopK`).
    """
    n = queries.shape[0]
    epsilon = _epsilon(queries, prepared, bias) if epsilon is None else epsilon
    norm = _norm_bound(prepared)

    def run(start: int) -> tuple[np.ndarray, np.ndarray]:
        stop = min(start + _CERTIFY_ROWS, n)
        final, left, kth = certify(
            queries[start:stop], database, wide[start:stop], k, width, epsilon[start:stop], bias=bias, database_norm=norm
        )
        return final, certified(left, kth, epsilon[start:stop], threshold)

    starts = range(0, n, _CERTIFY_ROWS)
    workers = default_workers()
    if workers > 1 and n > _CERTIFY_ROWS:
        with single_threaded_blas(), ThreadPoolExecutor(workers) as pool:
            parts = list(pool.map(run, starts))
    else:
        parts = [run(start) for start in starts]
    if not parts:
        return np.empty((0, k), np.uint64), np.empty(0, bool)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def self_topk_arrays(
    database: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    threshold: float | None = None,
    working_memory: int | None = None,
    progress: bool = True,
    engine: Engine | str | None = None,
    device: str | None = None,
) -> Neighbors:
    """Top-k of every row of ``database`` against itself, computing each symmetric pair once.

    One more reduction of the driver, over the upper triangle of ``X·Xᵀ``
    (:class:`SelfJoinReduction`): about half the GEMM flops of a plain
    self-join are skipped. The candidates are certified as in
    :func:`topk_arrays`; rows that fail are searched again by it.
    """
    n = database.shape[0]
    limit = n - (1 if exclude_self else 0)
    # bf16 pays here with a threshold (blending 50k × 384: 5.7 s against 7.6 s in float32), not
    # without one (WordNet gallery 51k × 256, top-10: 8.3 s against 6.7 s), where every tile also
    # gives its columns candidates at the wider bf16 width.
    engine = choose_engine(engine, n // 2, n, database.shape[1], device, k, reduced=threshold is not None)
    prepared = prepare(engine, database)
    width = initial_width(engine, k, limit)
    epsilon = _epsilon(database, prepared, None)
    # Pairs at or below threshold − ε' cannot pass the threshold canonically (ε' ≥ every row's ε).
    lowered = None if threshold is None else threshold - 2 * float(epsilon.max(initial=0.0))
    reduction = SelfJoinReduction(width + 1, n, lowered)
    blocks = blocked(
        database,
        database,
        lambda: reduction,
        exclude=np.arange(n) if exclude_self else None,
        working_memory=working_memory,
        progress=progress,
        description=f"top-{k} self-join",
        triangle=True,
        prepared=prepared,
    )
    wide = reduction.merged(blocks)
    if lowered is not None:
        drop_below(wide, lowered)
    keys, done = certify_rows(database, database, wide, k, width, prepared, None, threshold, epsilon)
    failed = np.flatnonzero(~done)
    _count(n, len(failed))
    if len(failed):
        rest = topk_arrays(
            database[failed],
            database,
            k,
            exclude=failed if exclude_self else None,
            threshold=threshold,
            working_memory=working_memory,
            progress=False,
            engine=engine,
        )
        return _merge_rows(keys_to_neighbors(keys, threshold), failed, rest)
    return keys_to_neighbors(keys, threshold)


def drop_below(wide: np.ndarray, lowered: float) -> None:
    """Pad, in place, candidate keys scored at or below ``lowered``: they cannot pass the threshold.

    Tiles that took the pairs above the threshold kept nothing below it, so
    every row is treated alike: nothing there is a candidate or a left-out item.
    """
    low = (decode_keys(wide)[0] <= lowered) & (wide != KEY_PAD)
    wide[low] = KEY_PAD


def _merge_rows(neighbors: Neighbors, rows: np.ndarray, replacement: Neighbors) -> Neighbors:
    ids, scores = neighbors.ids.copy(), neighbors.scores.copy()
    ids[rows], scores[rows] = replacement.ids, replacement.scores
    return Neighbors(ids, scores)


def float32_engine(engine: Engine, d: int = 0) -> Engine:
    """The fastest float32 engine on the same device: sums of exponentials need float32 scores."""
    if engine.precision == "float32":
        return engine
    if engine.device.startswith("cuda"):
        return resolve("cuda", engine.device)
    return resolve("auto", flops=float("inf"), d=d, reduced=False)


def logsumexp_arrays(
    queries: np.ndarray,
    database: np.ndarray,
    beta: float,
    *,
    column_best: bool = False,
    working_memory: int | None = None,
    progress: bool = True,
    engine: Engine | str | None = None,
    device: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """``(1/β)·log Σ_x exp(β·s(q, x))`` per query row; with ``column_best``, also each database row's best query.

    A log-sum-exp is a sum, not a selection, so no certificate applies: it runs
    on a float32 engine (bfloat16 scores would move it by up to exp(β·ε)).
    """
    columns: list[ColumnBest] = []
    chosen = choose_engine(engine, queries.shape[0], database.shape[0], queries.shape[1], device)
    engine = float32_engine(chosen, queries.shape[1])

    def make() -> Any:
        reduction = LogSumExpReduction(beta)
        if column_best:
            columns.append(ColumnBest(reduction, database.shape[0]))
            return columns[-1]
        return reduction

    blocks = blocked(
        queries,
        database,
        make,
        working_memory=working_memory,
        progress=progress,
        description="log-sum-exp",
        prepared=prepare(engine, database),
    )
    out = np.concatenate(blocks).astype(np.float32)
    return (out, columns[0].merged()) if column_best else out
