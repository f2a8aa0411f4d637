"""Keys: a (score, id) pair packed into one uint64, so that ascending keys are descending scores, then ascending ids.

One ``np.partition`` over keys then gives an exact top-k with the shared tie
rule (the lower id first), and the sentinel ``KEY_PAD`` (the largest key) pads.
"""

from __future__ import annotations

import numpy as np

from ..neighbors import Neighbors

__all__ = ["KEY_PAD", "LOW32", "encode_keys", "decode_keys", "smallest_keys", "run_positions", "pack_rows", "keys_to_neighbors"]

KEY_PAD = np.uint64(np.iinfo(np.uint64).max)
LOW32 = np.uint64(0xFFFFFFFF)
_SIGN = np.uint32(0x80000000)


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


def pack_rows(rows: np.ndarray, keys: np.ndarray, n_rows: int) -> np.ndarray:
    """Pack keys of ``rows`` (sorted ascending) into a (n_rows, width, ...) matrix padded with the pad key."""
    slot = run_positions(rows)
    dense = np.full((n_rows, int(slot.max(initial=-1)) + 1, *keys.shape[1:]), KEY_PAD, dtype=np.uint64)
    dense[rows, slot] = keys
    return dense.reshape(n_rows, -1)


def keys_to_neighbors(keys: np.ndarray, threshold: float | None) -> Neighbors:
    scores, ids = decode_keys(keys)
    scores = np.array(scores, dtype=np.float32)
    pad = ~np.isfinite(scores)
    if threshold is not None:
        pad |= scores <= threshold
    scores[pad] = -np.inf
    ids[pad] = -1
    return Neighbors(ids, scores)
