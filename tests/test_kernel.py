import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import nnlift
from nnlift.kernel.driver import _MIN_COLUMNS, _MIN_TILES_PER_WORKER, plan
from nnlift.kernel.keys import decode_keys, encode_keys

from .conftest import assert_same_neighbors, reference_topk, unit


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    m=st.integers(1, 300),
    d=st.integers(1, 12),
    k_frac=st.floats(0.0, 1.0),
    wm=st.sampled_from([None, 1024, 5000, 60000]),
    dtype=st.sampled_from([np.float32, np.float64, np.int32]),
    seed=st.integers(0, 2**16),
)
def test_topk_equals_full_sort_with_tie_rule(n, m, d, k_frac, wm, dtype, seed):
    rng = np.random.default_rng(seed)
    # small integers give many exact ties, which exercise the lower-id rule
    queries = rng.integers(-3, 4, size=(n, d)).astype(dtype)
    database = rng.integers(-3, 4, size=(m, d)).astype(dtype)
    k = max(1, int(round(k_frac * m)))
    found = nnlift.topk(queries, database, k, metric="ip", working_memory=wm)
    ref_ids, ref_scores = reference_topk(queries.astype(np.float64) @ database.T.astype(np.float64), k)
    np.testing.assert_array_equal(found.ids, ref_ids)
    np.testing.assert_allclose(found.scores, ref_scores, atol=1e-4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), wm=st.sampled_from([1024, 4096, 30000, None]))
def test_result_does_not_depend_on_working_memory(seed, wm):
    rng = np.random.default_rng(seed)
    queries, database = unit(rng, 37, 16), unit(rng, 500, 16)
    base = nnlift.topk(queries, database, 7)
    other = nnlift.topk(queries, database, 7, working_memory=wm)
    assert_same_neighbors(other.ids, other.scores, base.ids, base.scores, tol=1e-6)


def test_large_tile_grouped_path_matches_sort(rng):
    # wide enough that the grouped selection (g > 1) and a column tail are used
    queries, database = unit(rng, 64, 24), unit(rng, 20011, 24)
    database[100] = database[7]  # an exact tie
    found = nnlift.topk(queries, database, 12, metric="ip")
    ref_ids, ref_scores = reference_topk(queries @ database.T, 12)
    assert_same_neighbors(found.ids, found.scores, ref_ids, ref_scores, tol=1e-5)


def test_bias_exclude_self_threshold(rng):
    database = unit(rng, 200, 8)
    bias = rng.uniform(-0.2, 0.2, 200).astype(np.float32)
    found = nnlift.topk(database, database, 5, bias=bias, exclude_self=True, metric="ip")
    scores = database @ database.T - bias
    np.fill_diagonal(scores, -np.inf)
    ref_ids, ref_scores = reference_topk(scores, 5)
    assert_same_neighbors(found.ids, found.scores, ref_ids, ref_scores)
    assert not (found.ids == np.arange(200)[:, None]).any()

    thresholded = nnlift.topk(database, database, 10, threshold=0.5)
    raw = nnlift.topk(database, database, 10)
    keep = raw.scores > 0.5
    np.testing.assert_array_equal(thresholded.ids[keep], raw.ids[keep])
    assert (thresholded.ids[~keep] == -1).all() and np.isneginf(thresholded.scores[~keep]).all()
    # self is the first hit of a self-join without exclude_self
    assert (raw.ids[:, 0] == np.arange(200)).all()


def test_known_small_answer():
    database = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float64)
    found = nnlift.topk([[2.0, 1.0]], database, 3, metric="ip")
    assert found.ids.tolist() == [[2, 0, 1]]
    assert found.scores.tolist() == [[3.0, 2.0, 1.0]]
    cosine = nnlift.topk([[2.0, 1.0]], database, 1)
    assert cosine.ids.tolist() == [[2]]
    assert cosine.scores[0, 0] == pytest.approx(3 / np.sqrt(5) / np.sqrt(2), abs=1e-6)


def test_inputs_never_mutated(rng):
    queries, database = rng.standard_normal((5, 4)), rng.standard_normal((50, 4))
    queries.flags.writeable = False
    database.flags.writeable = False
    copy_q, copy_d = queries.copy(), database.copy()
    nnlift.topk(queries, database, 3)
    nnlift.logsumexp(queries, database, 5.0)
    np.testing.assert_array_equal(queries, copy_q)
    np.testing.assert_array_equal(database, copy_d)


def test_non_contiguous_and_torch_inputs(rng):
    torch = pytest.importorskip("torch")
    database = rng.standard_normal((60, 8))
    queries = rng.standard_normal((8, 5)).T  # Fortran-ordered view
    a = nnlift.topk(queries, database, 4)
    b = nnlift.topk(torch.from_numpy(np.ascontiguousarray(queries)), torch.from_numpy(database), 4)
    np.testing.assert_array_equal(a.ids, b.ids)


def test_topk_mean_and_logsumexp(rng):
    queries, database = unit(rng, 30, 6), unit(rng, 400, 6)
    scores = queries @ database.T
    expected_mean = np.sort(scores, axis=1)[:, -9:].mean(axis=1)
    np.testing.assert_allclose(nnlift.topk_mean(queries, database, 9), expected_mean, atol=1e-5)
    beta = 20.0
    expected = np.log(np.exp(beta * scores.astype(np.float64)).sum(axis=1)) / beta
    for wm in (None, 2048):
        np.testing.assert_allclose(nnlift.logsumexp(queries, database, beta, working_memory=wm), expected, atol=1e-5)
    # stable for large beta, where exp overflows float32
    big = nnlift.logsumexp(queries, database, 5000.0)
    np.testing.assert_allclose(big, scores.max(axis=1), atol=1e-3)
    assert np.isfinite(big).all()


def test_keys_roundtrip_order():
    values = np.array([-np.inf, -3.5, -0.0, 0.0, 1e-30, 2.5, np.inf], dtype=np.float32)
    ids = np.arange(7)
    decoded, back = decode_keys(encode_keys(values, ids))
    np.testing.assert_array_equal(back, ids)
    np.testing.assert_array_equal(decoded, values + 0.0)
    keys = encode_keys(values, ids)
    # Ascending keys are descending scores, ties (-0.0 and 0.0) to the lower id; compared as exact uint64
    # (a float64 cast would merge close keys).
    assert keys.dtype == np.uint64
    assert sorted(range(7), key=lambda i: int(keys[i])) == [6, 5, 4, 2, 3, 1, 0]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda q, x: nnlift.topk(q, x, 0), "k must be >= 1"),
        (lambda q, x: nnlift.topk(q, x, 11), "larger than possible"),
        (lambda q, x: nnlift.topk(q, x, 10, exclude_self=True), "larger than possible"),
        (lambda q, x: nnlift.topk(q, x, 2.5), "k must be an integer"),
        (lambda q, x: nnlift.topk(q[:, :3], x, 2), "queries must have 4 columns"),
        (lambda q, x: nnlift.topk(q[0], x, 2), "queries must be 2-D"),
        (lambda q, x: nnlift.topk(q[:0], x, 2), "queries is empty"),
        (lambda q, x: nnlift.topk(q, np.where(np.arange(4) == 1, np.nan, x), 2), "database has NaN"),
        (lambda q, x: nnlift.topk(q, x, 2, bias=np.ones(3)), "bias must have one value per database row"),
        (lambda q, x: nnlift.topk(q, x, 2, threshold=np.inf), "threshold must be finite"),
        (lambda q, x: nnlift.topk(q, x, 2, metric="l2"), "metric must be one of"),
        (lambda q, x: nnlift.topk(q, np.zeros_like(x), 2), "all-zero row"),
        (lambda q, x: nnlift.topk([["a", "b", "c", "d"]], x, 2), "must hold real numbers"),
        (lambda q, x: nnlift.topk(q, x, 2, working_memory=10), "working_memory"),
        (lambda q, x: nnlift.logsumexp(q, x, beta=float("nan")), "beta must be finite"),
    ],
)
def test_bad_input_errors(rng, call, match):
    queries, database = rng.standard_normal((3, 4)), rng.standard_normal((10, 4))
    with pytest.raises((ValueError, TypeError), match=match):
        call(queries, database)


@pytest.mark.parametrize("wm", [None, 4096, 50_000])
@pytest.mark.parametrize("exclude_self", [False, True])
def test_symmetric_self_join_matches_plain(rng, wm, exclude_self):
    data = unit(rng, 333, 12)
    data[10] = data[200]  # exact duplicate: a tie the rule must break by id
    sym = nnlift.topk(data, data, 7, exclude_self=exclude_self, working_memory=wm, threshold=0.1)
    plain = nnlift.topk(data, data.copy(), 7, exclude_self=exclude_self, working_memory=wm, threshold=0.1)
    assert_same_neighbors(sym.ids, sym.scores, plain.ids, plain.scores, tol=1e-6)
    if not exclude_self:
        assert set(sym.ids[10, :2]) == {10, 200}


@settings(max_examples=30, deadline=None)
@given(r=st.integers(1, 300), c=st.integers(1, 40), k=st.integers(1, 30), seed=st.integers(0, 9999))
def test_column_selection_equals_row_selection_of_transpose(r, c, k, seed):
    from nnlift.kernel.selection import tile_topk_keys, tile_topk_keys_columns

    rng = np.random.default_rng(seed)
    scores = rng.integers(-4, 5, size=(r, c)).astype(np.float32)  # many ties
    np.testing.assert_array_equal(
        tile_topk_keys_columns(scores, k, 7), tile_topk_keys(np.ascontiguousarray(scores.T), k, 7)
    )


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 400),
    k_frac=st.floats(0.0, 1.0),
    threshold=st.sampled_from([-10.0, -1.0, 0.0, 2.0, 5.0, 100.0]),
    wm=st.sampled_from([1024, 6000, 40000, None]),
    exclude_self=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_thresholded_self_join_equals_sorted_reference(n, k_frac, threshold, wm, exclude_self, seed):
    """The self-join's threshold path (pairs above it, no selection) against a full sort, ties included.

    Small integer vectors give many exact ties and many scores equal to the
    threshold; low thresholds make tiles fall back to the top-k selection.
    """
    rng = np.random.default_rng(seed)
    data = rng.integers(-2, 3, size=(n, 6)).astype(np.float32)
    limit = n - 1 if exclude_self else n
    k = max(1, int(round(k_frac * limit)))
    found = nnlift.topk(data, data, k, metric="ip", exclude_self=exclude_self, threshold=threshold, working_memory=wm)
    scores = data.astype(np.float64) @ data.T.astype(np.float64)
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    ref_ids, ref_scores = reference_topk(scores, k)
    drop = ref_scores <= threshold
    np.testing.assert_array_equal(found.ids, np.where(drop, -1, ref_ids))
    np.testing.assert_array_equal(found.scores, np.where(drop, -np.inf, ref_scores).astype(np.float32))


@pytest.mark.parametrize(
    "shape, threshold",
    [
        ((77, 130), 2.0),  # a small tile: one masked pass
        ((1000, 601), 4.0),  # a large tile with a few hits: only their group cells are opened
        ((1000, 601), 1.5),  # a large tile with many hit cells: one masked pass again
        ((1001, 600), 4.0),  # a large tile whose last row is a group of its own
    ],
)
def test_pairs_above_finds_every_entry_in_row_order_and_refuses_too_many(rng, shape, threshold):
    from nnlift.kernel.selection import _DIRECT_MASK, pairs_above

    scores = rng.normal(size=shape).astype(np.float32)
    assert (scores.size <= _DIRECT_MASK) == (shape == (77, 130))
    rows, columns, values = pairs_above(scores, threshold, budget=10**6)
    want_rows, want_columns = np.nonzero(scores > threshold)  # row-major, as callers rely on
    assert len(want_rows) > 0
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_array_equal(columns, want_columns)
    np.testing.assert_array_equal(values, scores[want_rows, want_columns])
    assert pairs_above(scores, threshold, budget=len(want_rows) - 1) is None  # one more than the budget
    assert pairs_above(scores, -5.0, budget=100) is None  # every entry clears it
    transposed = np.asfortranarray(scores)  # a non-contiguous view gives the same pairs
    np.testing.assert_array_equal(pairs_above(transposed, threshold, budget=10**6)[0], want_rows)


def test_merge_owner_keys_keeps_each_rows_best(rng):
    from nnlift.kernel.keys import KEY_PAD
    from nnlift.kernel.selection import merge_owner_keys

    acc = np.full((5, 3), KEY_PAD, dtype=np.uint64)
    acc[2] = encode_keys(np.array([0.9, 0.5, 0.1], np.float32), np.array([7, 8, 9]))
    owners = np.array([2, 2, 4, 2, 4])
    keys = encode_keys(np.array([0.7, 0.95, 0.3, 0.05, 0.3], np.float32), np.array([1, 2, 3, 4, 0]))
    merge_owner_keys(acc, owners, keys, 3)
    scores, ids = decode_keys(acc)
    assert ids[2].tolist() == [2, 7, 1] and scores[2].tolist() == pytest.approx([0.95, 0.9, 0.7])
    assert ids[4, :2].tolist() == [0, 3]  # a tie: the lower id first
    assert (acc[[0, 1, 3]] == KEY_PAD).all() and acc[4, 2] == KEY_PAD


@settings(max_examples=200, deadline=None)
@given(
    n_rows=st.integers(1, 200_000),
    n_cols=st.integers(1, 2_000_000),
    workers=st.integers(1, 8),
    wm_mb=st.integers(1, 1024),
)
@example(n_rows=1000, n_cols=50_000, workers=2, wm_mb=256)
def test_plan_fits_memory_and_reuses_each_workers_tile(n_rows, n_cols, workers, wm_mb):
    """Tiles fit the working memory, and each worker gets several tiles whenever columns allow narrower ones."""
    working_memory = wm_mb * 2**20
    rows, cols = plan(n_rows, n_cols, workers, working_memory)
    assert 1 <= rows <= n_rows and 1 <= cols <= n_cols
    per_worker = max(working_memory // workers, 8 * _MIN_COLUMNS)
    assert rows * cols * 8 <= per_worker
    tiles = -(-n_rows // rows) * -(-n_cols // cols)
    if tiles < _MIN_TILES_PER_WORKER * workers:  # only when the columns cannot be split further
        assert cols <= _MIN_COLUMNS
    if (n_rows, n_cols, workers, wm_mb) == (1000, 50_000, 2, 256):  # a recall check: 4 tiles per worker, not 2
        assert tiles == 8


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_rows=st.integers(1, 300),
    n_cols=st.integers(1, 200),
    wm=st.sampled_from([1024, 8192, 1 << 20]),
    duplicates=st.integers(0, 4),
)
def test_logsumexp_column_best_is_each_columns_argmax_ties_to_the_lower_row(seed, n_rows, n_cols, wm, duplicates):
    from nnlift.kernel.driver import logsumexp_arrays

    rng = np.random.default_rng(seed)
    queries = rng.standard_normal((n_rows, 8)).astype(np.float32)
    queries[n_rows - min(duplicates, n_rows - 1) :] = queries[0]  # exact ties with row 0, in later rows
    database = rng.standard_normal((n_cols, 8)).astype(np.float32)
    values, best = logsumexp_arrays(queries, database, 3.0, column_best=True, working_memory=wm, progress=False)
    scores = queries @ database.T  # the kernel's tiles are the same GEMM, row by row
    np.testing.assert_allclose(values, logsumexp_arrays(queries, database, 3.0, progress=False), atol=1e-5)
    got = scores[best, np.arange(n_cols)]
    np.testing.assert_allclose(got, scores.max(axis=0), atol=1e-5)
    top = scores.max(axis=0)
    # Copies of row 0 tie with it up to the GEMM's rounding, which may order them either way: any of them is right.
    tied = [j for j in range(n_cols) if (scores[:, j] >= top[j] - 1e-5).sum() > 1]
    clear = [j for j in range(n_cols) if j not in tied]
    np.testing.assert_array_equal(best[clear], scores[:, clear].argmax(axis=0))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n_rows=st.integers(1, 300), n_cols=st.integers(1, 120), wm=st.sampled_from([1024, 8192]))
def test_logsumexp_column_best_breaks_exact_ties_to_the_lower_row(seed, n_rows, n_cols, wm):
    """Small integers multiply exactly in float32, so ties are real ties: the lowest row of each column's maximum wins."""
    from nnlift.kernel.driver import logsumexp_arrays

    rng = np.random.default_rng(seed)
    queries = rng.integers(-2, 3, (n_rows, 4)).astype(np.float32)
    database = rng.integers(-2, 3, (n_cols, 4)).astype(np.float32)
    _, best = logsumexp_arrays(queries, database, 0.5, column_best=True, working_memory=wm, progress=False)
    scores = queries @ database.T
    np.testing.assert_array_equal(best, scores.argmax(axis=0))  # numpy's argmax: the first (lowest) maximum
