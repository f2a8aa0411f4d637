"""Canonical scores and the certificate: what makes every engine give the same answer, bit for bit.

An engine proposes candidates in whatever precision it multiplies, with a
rigorous bound ε on each score's error (``nnlift.engines``). Then:

1. **Canonical scores.** Each candidate pair gets one score, defined without
   reference to any order of operations: the exact real value of q·x − bias
   of its float32 inputs, correctly rounded to float32 (ties to even). It is
   computed in float64 (each float32 product is exact there) and proven
   against the float64 error bound; the few pairs within that bound of a
   rounding boundary are settled in exact rational arithmetic
   (:func:`canonical_scores`). This is stronger than a fixed summation order
   (it equals an exact reference, not just itself) and cheaper (any BLAS or
   SIMD order may compute it). The ranking uses these scores, ties to the
   lower id.
2. **The certificate.** Let t be a row's k-th largest approximate score, S the
   candidates with approximate score ≥ t − 2ε, c_k the k-th canonical score in
   S and L the largest approximate score of any item the engine left out.
   Every item j outside S has canonical score c_j ≤ approx_j + ε, where ε
   bounds the engine's error plus the canonical rounding, so

   - a candidate outside S has c_j < t − ε ≤ c_k, because the k candidates at
     or above t all have canonical scores ≥ t − ε;
   - a left-out item has c_j ≤ L + ε, which is below c_k when L < c_k − ε
     (with a ``threshold``, also when L + ε ≤ threshold: it could not pass).

   A row that passes is exactly the canonical top-k of the whole database.
   ε here already includes both errors; in the "minus 2ε" form of
   ARCHITECTURE.md §1 each ε is one of the two. A row that fails is widened
   (more candidates, :func:`nnlift.kernel.driver.topk_arrays`) until it
   passes or every item is a candidate.

The result is therefore a function of the float32 inputs alone: identical
whatever the engine, batch, block size or worker count.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..engines.base import row_norms64
from .keys import KEY_PAD, decode_keys, encode_keys, smallest_keys

__all__ = ["canonical_scores", "canonical_rows", "canonical_margin", "certify", "certified"]

_UNIT32 = 2.0**-24
_UNIT64 = 2.0**-53
# Pairs scored at once: their float64 products (pairs × d × 8 bytes) stay about 2 MiB.
_PAIR_BYTES = 2 * 2**20
# Bytes of grouped candidates gathered at once (float32): larger, as each chunk costs a few calls.
_ROW_BYTES = 8 * 2**20


def canonical_scores(
    queries: np.ndarray,
    database: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """The exact q·x − bias of each pair (queries[rows[i]], database[columns[i]]), correctly rounded to float32.

    Computed in float64 in any order, then proven: the float64 value v is
    within e = (d + 2)·2⁻⁵³·(‖q‖‖x‖ + |bias| + |v|) of the exact value, so
    where [v − e, v + e] lies inside the interval of reals that round to
    float32(v), that is the correctly rounded exact score. The rare pairs that
    straddle a rounding boundary are settled in exact rational arithmetic
    (:func:`_exact_round`). The result is a function of the float32 inputs
    alone, whatever the order, batch or machine.
    """
    out = np.empty(len(rows), dtype=np.float32)
    d = queries.shape[1]
    step = max(1, _PAIR_BYTES // (8 * max(d, 1)))
    query_norms, column_norm = _norms(queries, rows, database, columns)
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        q = queries[rows[start:stop]].astype(np.float64)
        x = database[columns[start:stop]].astype(np.float64)
        total = np.einsum("ij,ij->i", q, x)  # float32 products are exact in float64
        out[start:stop] = _proven_round(
            total, query_norms[rows[start:stop]] * column_norm, queries, database, rows[start:stop], columns[start:stop], bias, d
        )
    return out


def canonical_rows(
    queries: np.ndarray,
    database: np.ndarray,
    ids: np.ndarray,
    valid: np.ndarray,
    bias: np.ndarray | None = None,
    database_norm: float | None = None,
) -> np.ndarray:
    """:func:`canonical_scores` of each row of ``queries`` against its own candidates ``ids`` (n, w), where ``valid``.

    Candidates grouped by row are scored by one batched float64 matrix-vector
    product per chunk of rows: each query row is widened once, not once per
    pair. Invalid slots get −inf. ``database_norm`` is a bound on every
    database row's norm when the caller knows one (an engine's prepared copy).
    """
    n, width = ids.shape
    d = queries.shape[1]
    out = np.full((n, width), -np.inf, dtype=np.float32)
    if not valid.any():
        return out
    safe_ids = np.where(valid, ids, 0)
    rows_used = np.flatnonzero(valid.any(axis=1))
    query_norms, column_norm = _norms(queries, rows_used, database, safe_ids[valid], database_norm)
    step = max(1, _ROW_BYTES // (4 * d * max(width, 1)))
    for start in range(0, n, step):
        stop = min(start + step, n)
        block_ids = safe_ids[start:stop]
        gathered = np.take(database, block_ids.ravel(), axis=0).reshape(stop - start, width, d)
        # float32 products are exact in float64; einsum widens as it goes (353 ns a pair at d=384,
        # against 567 for a widened copy and a batched matmul; the gather alone takes about 200)
        total = np.einsum("rwd,rd->rw", gathered, queries[start:stop], dtype=np.float64)
        keep = valid[start:stop]
        row_index = np.broadcast_to(np.arange(start, stop)[:, None], keep.shape)[keep]
        out[start:stop][keep] = _proven_round(
            total[keep], query_norms[row_index] * column_norm, queries, database, row_index, block_ids[keep], bias, d
        )
    return out


def _norms(queries, rows, database, columns, database_norm: float | None = None) -> tuple[np.ndarray, float]:
    """Norm bounds: per query row used, and the largest over the database rows used (Σ|q_k x_k| ≤ ‖q‖‖x‖)."""
    query_norms = np.zeros(queries.shape[0])
    used = np.unique(rows)
    query_norms[used] = row_norms64(queries[used])
    if database_norm is not None:
        return query_norms, database_norm
    return query_norms, float(row_norms64(database[np.unique(columns)]).max(initial=0.0))


def _proven_round(total, scale, queries, database, rows, columns, bias, d) -> np.ndarray:
    """float32(total − bias) where provably the correctly rounded exact value; exact arithmetic elsewhere."""
    if bias is not None:
        column_bias = bias[columns].astype(np.float64)
        total = total - column_bias
        scale = scale + np.abs(column_bias)
    error = (d + 2) * _UNIT64 * (scale * (1 + 1e-6) + np.abs(total))
    rounded = total.astype(np.float32)
    below = np.nextafter(rounded, np.float32(-np.inf)).astype(np.float64)
    above = np.nextafter(rounded, np.float32(np.inf)).astype(np.float64)
    centre = rounded.astype(np.float64)
    safe = (total - error > (centre + below) / 2) & (total + error < (centre + above) / 2)
    for i in np.flatnonzero(~safe):
        rounded[i] = _exact_round(queries[rows[i]], database[columns[i]], None if bias is None else bias[columns[i]])
    return rounded


def _exact_round(query: np.ndarray, row: np.ndarray, bias) -> np.float32:
    """q·x − bias in exact rational arithmetic, rounded to the nearest float32 (ties to even)."""
    exact = sum((Fraction(float(a)) * Fraction(float(b)) for a, b in zip(query, row)), Fraction(0))
    if bias is not None:
        exact -= Fraction(float(bias))
    guess = np.float32(float(exact))
    choices = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    choices = [c for c in choices if np.isfinite(c)]

    def distance(c: np.float32) -> tuple[Fraction, int]:
        # nearest first; on an exact tie the even significand (ties to even)
        return abs(Fraction(float(c)) - exact), int(np.array(c, np.float32).view(np.uint32)) & 1

    return min(choices, key=distance)


def canonical_margin(query_norms: np.ndarray, database_norm_max: float, bias_max: float, d: int) -> np.ndarray:
    """What the canonical rounding (half an ulp) and a float32 bias subtraction in the tile add to the engine's ε."""
    scale = query_norms * database_norm_max * 1.01 + bias_max  # 1.01: hi(x) norms may undercount ‖x‖ by 2⁻⁸
    return 2 * _UNIT32 * scale * (1 + 1e-6)


def certify(
    queries: np.ndarray,
    database: np.ndarray,
    wide: np.ndarray,
    k: int,
    width: int,
    epsilon: np.ndarray,
    *,
    bias: np.ndarray | None = None,
    database_norm: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical top-k keys of each row from its approximate candidate keys, and the certificate's inputs.

    ``wide`` holds each row's approximate candidate keys, ascending (best
    first): ``width`` candidates and, in column ``width`` where the engine
    left anything out, the best item left out; row i of ``wide`` is row i of
    ``queries``. Returns the (n, k)
    canonical keys, the left-out score L per row (−inf when nothing was left
    out) and the k-th canonical score c_k.
    """
    n = wide.shape[0]
    approx, ids = decode_keys(wide)
    approx = np.where(wide == KEY_PAD, -np.inf, approx)
    left = approx[:, width] if wide.shape[1] > width else np.full(n, -np.inf, np.float32)
    width = min(width, wide.shape[1])
    kept, kept_ids = approx[:, :width], ids[:, :width]
    t = kept[:, k - 1].astype(np.float64)
    in_s = np.isfinite(kept) & (kept >= (t - 2 * epsilon)[:, None])
    scores = canonical_rows(queries, database, kept_ids, in_s, bias, database_norm)
    keys = np.where(in_s, encode_keys(scores, np.where(in_s, kept_ids, 0)), KEY_PAD)
    final = smallest_keys(keys, k)
    kth, _ = decode_keys(final[:, k - 1])
    kth = np.where(final[:, k - 1] == KEY_PAD, -np.inf, kth)
    return final, left, kth


def certified(left: np.ndarray, kth: np.ndarray, epsilon: np.ndarray, threshold: float | None) -> np.ndarray:
    """Rows whose left-out items provably cannot enter the canonical top-k (see the module doc)."""
    bound = left.astype(np.float64) + epsilon
    ok = ~np.isfinite(left) | (bound < kth)
    if threshold is not None:
        ok |= bound <= threshold
    return ok
