"""Canonical scores and the certificate: what makes every engine give the same answer, bit for bit.

An engine proposes candidates in whatever precision it multiplies, with a
rigorous bound ε on each score's error (``nnlift.engines``). Then:

1. **Canonical scores.** Each candidate pair is scored in one fixed way: the
   float32 inputs are widened to float64 (each product is then exact), the d
   products are summed by a fixed pairwise tree of elementwise additions
   (:func:`fixed_sum`, independent of BLAS, SIMD width, batch or thread), the
   bias is subtracted in float64, and the result is rounded to float32 once.
   The ranking uses these scores, ties to the lower id.
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

import numpy as np

from .keys import KEY_PAD, decode_keys, encode_keys, smallest_keys

__all__ = ["fixed_sum", "canonical_scores", "canonical_margin", "certify", "certified"]

_UNIT32 = 2.0**-24
_UNIT64 = 2.0**-53
# Pairs scored at once: their float64 products (pairs × d × 8 bytes) stay about 2 MiB.
_PAIR_BYTES = 2 * 2**20


def fixed_sum(products: np.ndarray) -> np.ndarray:
    """Row sums of a (m, d) float64 array by a fixed pairwise tree: the order depends on d alone.

    Each level adds the second half of the columns to the first (an odd last
    column joins the last sum of its level), with plain elementwise additions,
    which IEEE arithmetic makes exact functions of their inputs.
    """
    level = products
    width = level.shape[1]
    while width > 1:
        half = width // 2
        head = level[:, :half] + level[:, half : 2 * half]
        if width % 2:
            head[:, half - 1] += level[:, 2 * half]
        level, width = head, half
    return level[:, 0].copy() if width == 1 else np.zeros(level.shape[0])


def canonical_scores(
    queries: np.ndarray,
    database: np.ndarray,
    rows: np.ndarray,
    columns: np.ndarray,
    bias: np.ndarray | None = None,
) -> np.ndarray:
    """float32(Σ_k float64(q_k)·float64(x_k) − float64(bias)) for each pair (queries[rows[i]], database[columns[i]])."""
    out = np.empty(len(rows), dtype=np.float32)
    d = queries.shape[1]
    step = max(1, _PAIR_BYTES // (8 * max(d, 1)))
    for start in range(0, len(rows), step):
        stop = min(start + step, len(rows))
        products = database[columns[start:stop]].astype(np.float64)
        products *= queries[rows[start:stop]]
        total = fixed_sum(products)
        if bias is not None:
            total -= bias[columns[start:stop]].astype(np.float64)
        out[start:stop] = total  # the one rounding to float32
    return out


def canonical_margin(query_norms: np.ndarray, database_norm_max: float, bias_max: float, d: int) -> np.ndarray:
    """What the canonical rounding (and a float32 bias subtraction in the tile) add to the engine's ε."""
    scale = query_norms * database_norm_max * 1.01 + bias_max  # 1.01: hi(x) norms may undercount ‖x‖ by 2⁻⁸
    float64_sum = (d + 2) * _UNIT64 * scale
    return 2 * _UNIT32 * scale * (1 + 1e-6) + float64_sum


def certify(
    queries: np.ndarray,
    database: np.ndarray,
    wide: np.ndarray,
    k: int,
    width: int,
    epsilon: np.ndarray,
    *,
    bias: np.ndarray | None = None,
    query_rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The canonical top-k keys of each row from its approximate candidate keys, and the certificate's inputs.

    ``wide`` holds each row's approximate candidate keys, ascending (best
    first): ``width`` candidates and, in column ``width`` where the engine
    left anything out, the best item left out. ``query_rows`` maps the rows of
    ``wide`` to rows of ``queries`` (default: the same). Returns the (n, k)
    canonical keys, the left-out score L per row (−inf when nothing was left
    out) and the k-th canonical score c_k.
    """
    n = wide.shape[0]
    query_rows = np.arange(n) if query_rows is None else query_rows
    approx, ids = decode_keys(wide)
    approx = np.where(wide == KEY_PAD, -np.inf, approx)
    left = approx[:, width] if wide.shape[1] > width else np.full(n, -np.inf, np.float32)
    width = min(width, wide.shape[1])
    kept, kept_ids = approx[:, :width], ids[:, :width]
    t = kept[:, k - 1].astype(np.float64)
    in_s = np.isfinite(kept) & (kept >= (t - 2 * epsilon)[:, None])
    pair_rows, pair_slots = np.nonzero(in_s)
    scores = canonical_scores(queries, database, query_rows[pair_rows], kept_ids[pair_rows, pair_slots], bias)
    keys = np.full(kept.shape, KEY_PAD, dtype=np.uint64)
    keys[pair_rows, pair_slots] = encode_keys(scores, kept_ids[pair_rows, pair_slots])
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
