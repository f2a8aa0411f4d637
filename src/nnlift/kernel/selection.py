"""Selection: the exact top-k of a score tile by rows or by columns, the entries above a threshold, and merges.

A tile of shape (b, n) is viewed as (b, g, G): column ``j`` of group ``c`` is
``c + j*G``. The maximum over ``g`` is a fully vectorised pass, and the k-th
largest group maximum is a lower bound for the row's k-th largest score, so
only the few groups whose maximum reaches it can hold a winner.
"""

from __future__ import annotations

import numpy as np

from .keys import KEY_PAD, decode_keys, encode_keys, pack_rows, run_positions, smallest_keys

__all__ = [
    "group_size",
    "tile_topk_keys",
    "tile_topk_keys_columns",
    "tile_topk_keys_native",
    "pairs_above",
    "PendingPairs",
    "merge_owner_keys",
    "merge_column_candidates",
]


def group_size(n: int, k: int) -> int:
    # Enough groups that k of them are a small fraction, few enough that the
    # partition over group maxima stays cheap.
    return max(1, min(32, n // (16 * k)))


def tile_topk_keys(scores: np.ndarray, k: int, column_offset: int, floor: np.ndarray | None = None) -> np.ndarray:
    """Exact top-k keys (b, min(k, n)) of one score tile, sorted ascending.

    ``floor`` (per row) is a score the row's final k-th can no longer fall
    below: the k-th of the tiles already merged. Only groups reaching it are
    opened, and where every row has one, no partition of the group maxima
    runs. After a row block's first tile few groups reach it (about k·n/seen
    entries), so later tiles cost little more than their group maxima.
    """
    b, n = scores.shape
    g = group_size(n, min(k, n))
    grouped = scores[:, : (n // g) * g].reshape(b, g, n // g)
    return _grouped_topk(
        b,
        n,
        k,
        column_offset,
        floor,
        group_max=lambda: grouped.max(axis=1) if g > 1 else grouped[:, 0, :],
        members=lambda rows, groups: grouped[rows, :, groups],
        tail=lambda main: scores[:, main:],
    )


def tile_topk_keys_native(tile, k: int, column_offset: int, floor: np.ndarray | None = None) -> np.ndarray:
    """:func:`tile_topk_keys` of an engine's own tile (a torch tensor, bfloat16 or on a GPU), never copied whole.

    The group maxima are taken where the tile lives (half the bytes of a
    float32 copy for bfloat16; on a GPU, only they and the opened groups cross
    to the host). The selected values are the tile's own, widened exactly to
    float32, so the candidates are the ones the float32 copy would give.
    """
    import torch

    b, n = tile.shape
    g = group_size(n, min(k, n))
    grouped = tile.as_strided((b, g, n // g), (tile.stride(0), n // g, 1))

    def members(rows: np.ndarray, groups: np.ndarray) -> np.ndarray:
        picked = grouped[torch.from_numpy(rows).to(tile.device), :, torch.from_numpy(groups).to(tile.device)]
        return picked.float().cpu().numpy()

    return _grouped_topk(
        b,
        n,
        k,
        column_offset,
        floor,
        group_max=lambda: (grouped.amax(dim=1) if g > 1 else grouped[:, 0, :]).float().cpu().numpy(),
        members=members,
        tail=lambda main: tile[:, main:].float().cpu().numpy(),
    )


def _grouped_topk(b, n, k, column_offset, floor, *, group_max, members, tail) -> np.ndarray:
    """The selection of :func:`tile_topk_keys`, given how to read the tile: its group maxima, members and tail.

    Columns are grouped as (b, g, G): column ``j`` of group ``c`` is ``c + j*G``.
    """
    k = min(k, n)
    g = group_size(n, k)
    n_groups = n // g
    main = n_groups * g
    maxima = group_max()
    kk = min(k, n_groups)
    if floor is not None and np.isfinite(floor).all():
        bound = floor
    else:
        bound = np.partition(maxima, n_groups - kk, axis=1)[:, n_groups - kk]
        if floor is not None:
            bound = np.maximum(bound, floor)
    rows, groups = np.nonzero(maxima >= bound[:, None])
    opened = members(rows, groups)
    # Only members reaching the bound can be in the top-k (at least k group maxima reach it), and
    # an opened group holds one or two: encoding them alone took a 512×32768 tile's selection
    # from 26 ms to about 14 (the other members' keys were built only to be discarded).
    hit, slot = np.nonzero(opened >= bound[rows, None])
    rows = rows[hit]
    ids = groups[hit] + slot.astype(np.int64) * n_groups
    dense = pack_rows(rows, encode_keys(opened[hit, slot], ids + column_offset), b)
    if main < n:
        tail_ids = np.arange(main, n, dtype=np.int64) + column_offset
        dense = np.concatenate([dense, encode_keys(tail(main), np.broadcast_to(tail_ids, (b, n - main)))], axis=1)
    return smallest_keys(dense, k)


def tile_topk_keys_columns(scores: np.ndarray, k: int, row_offset: int) -> np.ndarray:
    """Exact top-k keys (c, min(k, r)) of every *column* of a (r, c) tile, without transposing it.

    Rows are grouped as (g, G, c): row ``j·G + i`` is member j of group i, and the
    maximum over the first axis is an elementwise max of contiguous slices.
    """
    r, c = scores.shape
    k = min(k, r)
    g = group_size(r, k)
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
    members = grouped[:, groups, columns].T
    hit, slot = np.nonzero(members >= bound[columns, None])  # as in tile_topk_keys
    columns = columns[hit]
    ids = groups[hit] + slot.astype(np.int64) * n_groups + row_offset
    dense = pack_rows(columns, encode_keys(members[hit, slot], ids), c)
    if main < r:
        tail_ids = np.arange(main, r, dtype=np.int64) + row_offset
        tail = encode_keys(np.ascontiguousarray(scores[main:].T), np.broadcast_to(tail_ids, (c, r - main)))
        dense = np.concatenate([dense, tail], axis=1)
    return smallest_keys(dense, k)



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


class PendingPairs:
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
            merge_owner_keys(self.acc, owners, keys, self.k)
        self.chunks, self.count = [], 0


def _rank_by_owner(owners: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort (owner, key) pairs by owner then key; return the sorted owners, keys and each one's rank in its owner."""
    order = np.lexsort((keys, owners))
    owners, keys = owners[order], keys[order]
    return owners, keys, run_positions(owners)


def merge_owner_keys(acc: np.ndarray, owners: np.ndarray, keys: np.ndarray, k: int) -> None:
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


def merge_column_candidates(current: np.ndarray, scores: np.ndarray, k: int, row_offset: int) -> np.ndarray:
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
    merge_owner_keys(merged, columns, encode_keys(values, rows.astype(np.int64) + row_offset), k)
    return merged
