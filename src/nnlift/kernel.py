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
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ._check import check_array, check_finite_scalar, check_k, check_pair
from ._progress import progress_bar
from ._threads import default_workers, single_threaded_blas
from .neighbors import Neighbors
from .errors import InputError, InputTypeError

__all__ = ["topk", "topk_mean", "logsumexp", "DEFAULT_WORKING_MEMORY"]

DEFAULT_WORKING_MEMORY = 256 * 2**20
KEY_PAD = np.uint64(np.iinfo(np.uint64).max)
LOW32 = np.uint64(0xFFFFFFFF)
_SIGN = np.uint32(0x80000000)
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


# --------------------------------------------------------------------------- keys
def encode_keys(values: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Pack (score, id) so that ascending keys are descending scores, then ascending ids."""
    bits = np.ascontiguousarray(values + np.float32(0.0), dtype=np.float32).view(np.uint32)  # -0.0 -> 0.0
    ordered = np.where(bits & _SIGN, ~bits, bits | _SIGN)
    return ((~ordered).astype(np.uint64) << np.uint64(32)) | ids.astype(np.uint64)


def decode_keys(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = (keys & LOW32).astype(np.int64)
    ordered = ~((keys >> np.uint64(32)).astype(np.uint32))
    bits = np.where(ordered & _SIGN, ordered & ~_SIGN, ~ordered)
    return bits.view(np.float32), ids


def smallest_keys(keys: np.ndarray, k: int) -> np.ndarray:
    """The k smallest keys of each row, sorted; ``keys`` is reordered in place (callers pass scratch arrays)."""
    if keys.shape[1] > k:
        keys.partition(k - 1, axis=1)  # in place: np.partition would first copy the whole buffer
        keys = keys[:, :k]
    return np.sort(keys, axis=1)


def run_positions(owners: np.ndarray) -> np.ndarray:
    """Each entry's position within its run of equal values in the sorted array ``owners``."""
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    return np.arange(len(owners)) - np.repeat(starts, np.diff(np.r_[starts, len(owners)]))


def _pack_rows(rows: np.ndarray, keys: np.ndarray, n_rows: int) -> np.ndarray:
    """Pack keys of ``rows`` (sorted ascending) into a (n_rows, width, ...) matrix padded with the pad key."""
    slot = run_positions(rows)
    dense = np.full((n_rows, int(slot.max(initial=-1)) + 1, *keys.shape[1:]), KEY_PAD, dtype=np.uint64)
    dense[rows, slot] = keys
    return dense.reshape(n_rows, -1)


def _group_size(n: int, k: int) -> int:
    # Enough groups that k of them are a small fraction, few enough that the
    # partition over group maxima stays cheap.
    return max(1, min(32, n // (16 * k)))


def tile_topk_keys(scores: np.ndarray, k: int, column_offset: int) -> np.ndarray:
    """Exact top-k keys (b, min(k, n)) of one score tile, sorted ascending."""
    b, n = scores.shape
    k = min(k, n)
    g = _group_size(n, k)
    n_groups = n // g
    main = n_groups * g
    grouped = scores[:, :main].reshape(b, g, n_groups)
    group_max = grouped.max(axis=1) if g > 1 else grouped[:, 0, :]
    kk = min(k, n_groups)
    bound = np.partition(group_max, n_groups - kk, axis=1)[:, n_groups - kk]
    rows, groups = np.nonzero(group_max >= bound[:, None])
    ids = groups[:, None] + np.arange(g, dtype=np.int64) * n_groups
    dense = _pack_rows(rows, encode_keys(grouped[rows, :, groups], ids + column_offset), b)
    if main < n:
        tail_ids = np.arange(main, n, dtype=np.int64) + column_offset
        tail = encode_keys(scores[:, main:], np.broadcast_to(tail_ids, (b, n - main)))
        dense = np.concatenate([dense, tail], axis=1)
    return smallest_keys(dense, k)


def tile_topk_keys_columns(scores: np.ndarray, k: int, row_offset: int) -> np.ndarray:
    """Exact top-k keys (c, min(k, r)) of every *column* of a (r, c) tile, without transposing it.

    Rows are grouped as (g, G, c): row ``j·G + i`` is member j of group i, and the
    maximum over the first axis is an elementwise max of contiguous slices.
    """
    r, c = scores.shape
    k = min(k, r)
    g = _group_size(r, k)
    n_groups = r // g
    main = n_groups * g
    grouped = scores[:main].reshape(g, n_groups, c)
    group_max = grouped.max(axis=0) if g > 1 else grouped[0]
    kk = min(k, n_groups)
    # Only the small group-max matrix is transposed, so the partition runs along rows
    # and nonzero returns the pairs already ordered by column.
    group_max = np.ascontiguousarray(group_max.T)
    bound = np.partition(group_max, n_groups - kk, axis=1)[:, n_groups - kk]
    columns, groups = np.nonzero(group_max >= bound[:, None])
    ids = groups[:, None] + np.arange(g, dtype=np.int64) * n_groups + row_offset
    dense = _pack_rows(columns, encode_keys(grouped[:, groups, columns].T, ids), c)
    if main < r:
        tail_ids = np.arange(main, r, dtype=np.int64) + row_offset
        tail = encode_keys(np.ascontiguousarray(scores[main:].T), np.broadcast_to(tail_ids, (c, r - main)))
        dense = np.concatenate([dense, tail], axis=1)
    return smallest_keys(dense, k)


# --------------------------------------------------------------------------- reductions
class _TopKReduction:
    """Running exact top-k of each row, merged tile by tile."""

    def __init__(self, k: int) -> None:
        self.k = k

    def start(self, n_rows: int) -> Any:
        return np.empty((n_rows, 0), dtype=np.uint64)

    def update(self, state: np.ndarray, scores: np.ndarray, column_offset: int) -> np.ndarray:
        keys = tile_topk_keys(scores, self.k, column_offset)
        if state.shape[1] == 0:
            return keys
        return smallest_keys(np.concatenate([state, keys], axis=1), self.k)

    def finish(self, state: np.ndarray) -> np.ndarray:
        return state


class _LogSumExpReduction:
    """Running ``max`` and ``Σ exp(β(s − max))`` per row, in float64."""

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def start(self, n_rows: int) -> Any:
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


def _plan(n_rows: int, n_cols: int, workers: int, working_memory: int) -> tuple[int, int]:
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


def _blocked(
    queries: np.ndarray,
    database: np.ndarray,
    make_reduction: Callable[[], Any],
    *,
    bias: np.ndarray | None = None,
    exclude_self: bool = False,
    working_memory: int | None = None,
    progress: bool = True,
    description: str = "scoring",
    workers: int | None = None,
) -> list[Any]:
    """Run a reduction over every tile of ``queries · databaseᵀ − bias``; one result per row block."""
    n_rows, n_cols = queries.shape[0], database.shape[0]
    working_memory = DEFAULT_WORKING_MEMORY if working_memory is None else working_memory
    workers = default_workers() if workers is None else workers
    row_block, col_block = _plan(n_rows, n_cols, workers, working_memory)
    starts = list(range(0, n_rows, row_block))
    parallel = workers > 1 and len(starts) > 1
    reduction = make_reduction()
    flops = 2.0 * n_rows * n_cols * queries.shape[1]

    local = threading.local()

    def run_block(r0: int) -> Any:
        r1 = min(r0 + row_block, n_rows)
        block = queries[r0:r1]
        state = reduction.start(r1 - r0)
        for c0 in range(0, n_cols, col_block):
            c1 = min(c0 + col_block, n_cols)
            scores = scratch_buffer(local, "tile", r1 - r0, c1 - c0)
            np.matmul(block, database[c0:c1].T, out=scores)
            if bias is not None:
                scores -= bias[c0:c1]
            if exclude_self:
                lo, hi = max(r0, c0), min(r1, c1)
                if lo < hi:
                    diagonal = np.arange(lo, hi)
                    scores[diagonal - r0, diagonal - c0] = -np.inf
            state = reduction.update(state, scores, c0)
        bar.advance(r1 - r0)
        return reduction.finish(state)

    expected = flops / (_GEMM_FLOPS_PER_WORKER * (workers if parallel else 1))
    with progress_bar(description, n_rows, enabled=progress, expected_seconds=expected) as bar:
        if not parallel:
            return [run_block(r0) for r0 in starts]
        with single_threaded_blas(), ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(run_block, starts))


def _check_working_memory(working_memory: Any) -> int | None:
    if working_memory is None:
        return None
    if isinstance(working_memory, bool) or not isinstance(working_memory, (int, np.integer)):
        raise InputTypeError(f"working_memory must be a number of bytes (int); got {working_memory!r}")
    if working_memory < 1024:
        raise InputError(f"working_memory must be at least 1024 bytes; got {working_memory}")
    return int(working_memory)


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
) -> Neighbors:
    """:func:`topk` on validated float32 arrays (internal callers trust their inputs).

    ``workers=1`` runs serially with the caller's BLAS threads (for callers that
    parallelise around the kernel themselves).
    """
    blocks = _blocked(
        queries,
        database,
        lambda: _TopKReduction(k),
        bias=bias,
        exclude_self=exclude_self,
        working_memory=working_memory,
        progress=progress,
        description=f"top-{k} search",
        workers=workers,
    )
    keys = np.concatenate(blocks, axis=0) if blocks else np.empty((0, k), np.uint64)
    return _keys_to_neighbors(keys, threshold)


def self_topk_arrays(
    database: np.ndarray,
    k: int,
    *,
    exclude_self: bool = False,
    threshold: float | None = None,
    working_memory: int | None = None,
    progress: bool = True,
) -> Neighbors:
    """Top-k of every row of ``database`` against itself, computing each symmetric pair once.

    ``X·Xᵀ`` is symmetric. Row block I is multiplied only with the columns from
    I onwards: each tile gives the rows of I their candidates (row-wise
    selection) and gives every later column its candidates among the rows of I
    (column-wise selection, no transpose). Each worker accumulates the column
    candidates in its own buffer, merged with the row results at the end, so
    about half the GEMM flops of a plain self-join are skipped.

    With a ``threshold`` only scores above it can be returned, and the set of
    such pairs is itself symmetric: a tile where they are few gives its pairs to
    both rows and columns from one scan (:func:`pairs_above`), with no top-k
    selection at all. Tiles with too many pairs use the selection above.
    """
    n = database.shape[0]
    working_memory = DEFAULT_WORKING_MEMORY if working_memory is None else working_memory
    workers = default_workers()
    rows, cols = _plan(n, n, workers, working_memory)
    starts = list(range(0, n, rows))
    row_keys: list[np.ndarray | None] = [None] * len(starts)
    local = threading.local()
    accumulators: list[np.ndarray] = []
    pending: list[_PendingPairs] = []
    lock = threading.Lock()

    def accumulator() -> tuple[np.ndarray, _PendingPairs]:
        acc = getattr(local, "acc", None)
        if acc is None:
            acc = local.acc = np.full((n, k), KEY_PAD, dtype=np.uint64)
            local.pairs = _PendingPairs(acc, k, limit=4 * k * n)
            with lock:
                accumulators.append(acc)
                pending.append(local.pairs)
        return acc, local.pairs

    def run(index: int) -> int:
        r0 = starts[index]
        r1 = min(r0 + rows, n)
        acc, pairs = accumulator()
        block = database[r0:r1]
        state = None
        for c0 in range(r0, n, cols):
            c1 = min(c0 + cols, n)
            scores = np.matmul(block, database[c0:c1].T, out=scratch_buffer(local, "tile", r1 - r0, c1 - c0))
            if exclude_self:
                lo, hi = max(r0, c0), min(r1, c1)
                if lo < hi:
                    diagonal = np.arange(lo, hi)
                    scores[diagonal - r0, diagonal - c0] = -np.inf
            first = max(c0, r1)  # columns past this row block also take candidates from it
            if threshold is not None:
                found = pairs_above(scores, threshold, budget=8 * k * (r1 - r0 + c1 - c0))
                if found is not None:
                    tile_rows, tile_columns, values = found
                    row_ids, column_ids = tile_rows + r0, tile_columns + c0
                    later = column_ids >= first
                    pairs.add(row_ids, encode_keys(values, column_ids))
                    pairs.add(column_ids[later], encode_keys(values[later], row_ids[later]))
                    continue
            keys = tile_topk_keys(scores, k, c0)
            state = keys if state is None else smallest_keys(np.concatenate([state, keys], axis=1), k)
            if first < c1:
                acc[first:c1] = _merge_column_candidates(acc[first:c1], scores[:, first - c0 :], k, r0)
        if state is None:
            state = np.full((r1 - r0, k), KEY_PAD, dtype=np.uint64)
        elif state.shape[1] < k:  # the last columns may number fewer than k
            state = np.pad(state, ((0, 0), (0, k - state.shape[1])), constant_values=KEY_PAD)
        row_keys[index] = state
        return r1 - r0

    flops = float(n) * n * database.shape[1]
    expected = flops / (_GEMM_FLOPS_PER_WORKER * workers)
    with progress_bar(f"top-{k} self-join", n, enabled=progress, expected_seconds=expected) as bar:
        with single_threaded_blas(workers > 1), ThreadPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(run, range(len(starts))):
                bar.advance(done)
    for pairs in pending:
        pairs.fold()
    keys = np.concatenate(row_keys, axis=0)
    for acc in accumulators:
        keys = smallest_keys(np.concatenate([keys, acc], axis=1), k)
    return _keys_to_neighbors(keys, threshold)


_PAIR_GROUP = 32  # rows whose column-wise maximum is tested against the threshold at once
# When the opened cells would hold more than 1/_DENSE_OPENING of the tile, one
# masked pass over it is cheaper than their scattered reads (each cell's scores
# lie n_groups rows apart): a 1,888×252 blending tile with 2,642 hits took
# 0.35 ms by cells and 0.10 ms by mask.
_DENSE_OPENING = 16
# Tiles of at most this many scores (2 MB, about one core's L2) skip the group
# maxima: the GEMM has just left the tile in cache, and in IVF tiles the hits
# are dense enough that the cells would be opened anyway.
_DIRECT_MASK = 2**19


def _masked_pairs(
    scores: np.ndarray, threshold: float, budget: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """:func:`pairs_above` by one masked pass over a C-contiguous tile."""
    flat = np.flatnonzero(scores > threshold)  # row-major already
    if len(flat) > budget:
        return None
    c = scores.shape[1]
    return flat // c, flat % c, np.take(scores, flat)


def pairs_above(scores: np.ndarray, threshold: float, budget: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Every entry of a tile strictly above ``threshold``; None when there are more than ``budget``.

    Rows are grouped as (g, G, c): row ``j·G + i`` is member j of group i. The
    maximum over the first axis is one streaming pass of elementwise maxima,
    and only the (group, column) cells whose maximum clears the threshold are
    opened: g scores each, gathered from the flat tile. Small tiles, and tiles
    with many such cells, are scanned whole by one masked pass instead.
    Returns tile-local rows, columns and scores, ordered by row then column.
    """
    r, c = scores.shape
    g = _PAIR_GROUP
    n_groups = r // g
    main = n_groups * g
    scores = scores if scores.flags.c_contiguous else np.ascontiguousarray(scores)
    if scores.size <= _DIRECT_MASK:
        return _masked_pairs(scores, threshold, budget)
    opened = []  # flat indices of the entries to compare, one block of cells at a time
    if n_groups:
        group_max = scores[:main].reshape(g, n_groups, c).max(axis=0)
        groups, columns = np.nonzero(group_max > threshold)
        if len(groups) * g > scores.size // _DENSE_OPENING:  # many cells: one masked pass reads less
            return _masked_pairs(scores, threshold, budget)
        opened.append(((groups[:, None] + np.arange(g) * n_groups) * c + columns[:, None]).ravel())
    if main < r:  # the last rows, too few for a group, are one more group of their own
        columns = np.flatnonzero(scores[main:].max(axis=0) > threshold)
        opened.append((columns[:, None] + np.arange(main, r) * c).ravel())
    flat = opened[0] if len(opened) == 1 else np.concatenate(opened)
    flat = flat[np.take(scores, flat) > threshold]
    if len(flat) > budget:
        return None
    flat.sort()  # the few hits in row-major order: callers need no sort by row
    return flat // c, flat % c, np.take(scores, flat)


class _PendingPairs:
    """(owner row, key) pairs waiting to be merged into one worker's accumulator.

    Merging a tile's few pairs at once would sort the accumulator's rows for
    every tile, so pairs are gathered and merged in bulk, once they exceed
    ``limit`` (which bounds their memory) and at the end.
    """

    def __init__(self, acc: np.ndarray, k: int, limit: int) -> None:
        self.acc, self.k, self.limit = acc, k, limit
        self.chunks: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, owners: np.ndarray, keys: np.ndarray) -> None:
        self.chunks.append((owners, keys))
        self.count += len(owners)
        if self.count > self.limit:
            self.fold()

    def fold(self) -> None:
        if self.chunks:
            owners, keys = (np.concatenate(part) for part in zip(*self.chunks))
            _merge_owner_keys(self.acc, owners, keys, self.k)
        self.chunks, self.count = [], 0


def _rank_by_owner(owners: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort (owner, key) pairs by owner then key; return the sorted owners, keys and each one's rank in its owner."""
    order = np.lexsort((keys, owners))
    owners, keys = owners[order], keys[order]
    return owners, keys, run_positions(owners)


def _merge_owner_keys(acc: np.ndarray, owners: np.ndarray, keys: np.ndarray, k: int) -> None:
    """Merge keys addressed to rows ``owners`` into the sorted per-row keys ``acc`` (n, k), in place."""
    if not len(owners):
        return
    owners, keys, rank = _rank_by_owner(owners, keys)
    first = rank == 0
    touched, where = owners[first], np.cumsum(first) - 1  # owners are sorted: no second sort
    keep = rank < k
    dense = np.full((len(touched), k), KEY_PAD, dtype=np.uint64)
    dense[where[keep], rank[keep]] = keys[keep]
    acc[touched] = smallest_keys(np.concatenate([acc[touched], dense], axis=1), k)


def _merge_column_candidates(current: np.ndarray, scores: np.ndarray, k: int, row_offset: int) -> np.ndarray:
    """Merge a tile's column-wise candidates into sorted per-column keys ``current`` (c, k).

    A column's current k-th best score is a lower bound on its final k-th best,
    so once a column has k candidates only entries at or above that bound can
    matter: one comparison pass finds them. Columns without k candidates yet
    use the grouped selection.
    """
    kth, _ = decode_keys(current[:, k - 1])
    fresh = current[:, k - 1] == KEY_PAD
    merged = current.copy()
    if fresh.any():
        columns = np.flatnonzero(fresh)
        block = scores if fresh.all() else np.ascontiguousarray(scores[:, columns])
        picked = tile_topk_keys_columns(block, k, row_offset)
        merged[columns] = smallest_keys(np.concatenate([current[columns], picked], axis=1), k)
        if fresh.all():
            return merged
    bound = np.where(fresh, np.float32(np.inf), kth)  # fresh columns were handled above
    r = scores.shape[0]
    g = 8 if r >= 64 else 1
    main = (r // g) * g
    # Compare the bound with maxima of g-row groups first: an 8× smaller scan; only the
    # groups that reach it are opened.
    grouped = scores[:main].reshape(g, main // g, scores.shape[1])
    group_max = grouped.max(axis=0) if g > 1 else grouped[0]
    groups, columns = np.nonzero(group_max >= bound[None, :])
    rows = (groups[:, None] + np.arange(g) * (main // g)).ravel()
    columns = np.repeat(columns, g)
    if main < r:  # the last rows that do not fill a group are compared directly
        tail_rows, tail_columns = np.nonzero(scores[main:] >= bound[None, :])
        rows = np.concatenate([rows, tail_rows + main])
        columns = np.concatenate([columns, tail_columns])
    values = scores[rows, columns]
    keep = values >= bound[columns]
    rows, columns, values = rows[keep], columns[keep], values[keep]
    _merge_owner_keys(merged, columns, encode_keys(values, rows.astype(np.int64) + row_offset), k)
    return merged


def _keys_to_neighbors(keys: np.ndarray, threshold: float | None) -> Neighbors:
    scores, ids = decode_keys(keys)
    scores = np.array(scores, dtype=np.float32)
    pad = ~np.isfinite(scores)
    if threshold is not None:
        pad |= scores <= threshold
    scores[pad] = -np.inf
    ids[pad] = -1
    return Neighbors(ids, scores)


def logsumexp_arrays(
    queries: np.ndarray,
    database: np.ndarray,
    beta: float,
    *,
    working_memory: int | None = None,
    progress: bool = True,
) -> np.ndarray:
    blocks = _blocked(
        queries,
        database,
        lambda: _LogSumExpReduction(beta),
        working_memory=working_memory,
        progress=progress,
        description="log-sum-exp",
    )
    return np.concatenate(blocks).astype(np.float32)


# --------------------------------------------------------------------------- public API
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

    Returns
    -------
    Neighbors
        Sorted by descending score, ties broken by the lower database id.

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
    if symmetric:
        return self_topk_arrays(
            database_array,
            k,
            exclude_self=bool(exclude_self),
            threshold=threshold,
            working_memory=_check_working_memory(working_memory),
            progress=progress,
        )
    return topk_arrays(
        queries_array,
        database_array,
        k,
        bias=bias_array,
        exclude_self=bool(exclude_self),
        threshold=threshold,
        working_memory=_check_working_memory(working_memory),
        progress=progress,
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
        working_memory=_check_working_memory(working_memory),
        progress=progress,
    )
