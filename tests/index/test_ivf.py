import warnings
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlift
from nnlift.index.base import build_index
from nnlift.index import routing
from nnlift.index.ivf import kmeans, nearest_centroid, nearest_lists

from ..conftest import unit


def mixture(rng, n, d=24, clusters=12, spread=0.8, centres=None):
    if centres is None:
        centres = unit(np.random.default_rng(99), clusters, d)
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_ivf_recall_and_round_trip(tmp_path, rng):
    database, queries = mixture(rng, 4000), mixture(rng, 200)
    exact = nnlift.ExactIndex().add(database).search(queries, 10)
    index = nnlift.IVFIndex(n_probe=8).add(database)
    found = index.search(queries, 10)
    assert nnlift.neighbor_recall(found, exact) >= 0.95
    again = nnlift.load(index.save(tmp_path / "ivf"))
    np.testing.assert_array_equal(again.search(queries, 10).ids, found.ids)


def test_ivf_probing_everything_is_exact(rng):
    database, queries = mixture(rng, 1000), mixture(rng, 50)
    exact = nnlift.ExactIndex().add(database).search(queries, 5)
    index = nnlift.IVFIndex(n_lists=10, n_probe=10).add(database)
    found = index.search(queries, 5)
    np.testing.assert_array_equal(found.ids, exact.ids)


def test_ivf_self_join_excludes_self_and_bias(rng):
    database = mixture(rng, 1500)
    bias = rng.uniform(0, 0.1, 1500).astype(np.float32)
    index = nnlift.IVFIndex(n_lists=8, n_probe=8).add(database)
    found = index.search_arrays(database, 5, bias=bias, exclude_self=True)
    exact = nnlift.topk(database, database, 5, bias=bias, exclude_self=True)
    np.testing.assert_array_equal(found.ids, exact.ids)
    assert not (found.ids == np.arange(1500)[:, None]).any()


@pytest.mark.parametrize("threshold", [-2.0, 0.6, 0.8, 0.85])
@pytest.mark.parametrize("self_join", [True, False])
def test_ivf_threshold_equals_masking_the_plain_search(rng, threshold, self_join):
    """The threshold path (entries above it, no top-k selection) returns what masking the plain search does."""
    database = mixture(rng, 1200)
    database[5] = database[6]  # an exact tie
    queries = database if self_join else mixture(rng, 300)
    index = nnlift.IVFIndex(n_lists=12, n_probe=3).add(database)
    plain = index.search_arrays(queries, 6, exclude_self=self_join)
    found = index.search_arrays(queries, 6, exclude_self=self_join, threshold=threshold)
    drop = plain.scores <= threshold
    np.testing.assert_array_equal(found.ids, np.where(drop, -1, plain.ids))
    np.testing.assert_array_equal(found.scores, np.where(drop, -np.inf, plain.scores))
    if threshold >= 0.8:
        assert (found.ids >= 0).any() and (found.ids < 0).any()  # the threshold binds in this data


def test_tiny_lists_widen_the_probe(rng):
    database = unit(rng, 40, 8)
    index = nnlift.IVFIndex(n_lists=20, n_probe=1).add(database)
    found = index.search(database[:3], 10)
    assert (found.ids >= 0).all()  # k=10 even though one list holds ~2 vectors


def test_kmeans_gives_unit_centroids_that_separate_clusters(rng):
    centres = unit(np.random.default_rng(5), 4, 16)
    data = mixture(rng, 800, d=16, spread=0.2, centres=centres)
    found = kmeans(data, 4, n_iter=10, seed=0)
    np.testing.assert_allclose(np.linalg.norm(found, axis=1), 1.0, atol=1e-5)
    # every true centre has a learned centroid very close to it
    assert (found @ centres.T).max(axis=0).min() > 0.95
    assign = nearest_centroid(data, found)
    assert len(np.unique(assign)) == 4


def test_nnn_approximate_matches_exact_on_clustered_data(rng):
    centres = unit(np.random.default_rng(3), 10, 32)
    database, bank, queries = (mixture(rng, n, d=32, centres=centres) for n in (3000, 1500, 200))
    exact = nnlift.NNN(k=16, alpha=0.75).fit(database, bank)
    approx = nnlift.NNN(k=16, alpha=0.75, index=nnlift.Checked(nnlift.IVFIndex(n_probe=12))).fit(database, bank)
    (bias_check,) = approx.checks_
    assert bias_check["on"] == "bank" and bias_check["error"] < 1e-3 and bias_check["action"] == "none"
    error = np.abs(approx.bias_ - exact.bias_)
    assert error.mean() <= 1e-3 and np.quantile(error, 0.99) <= 5e-3
    found, reference = approx.search(queries, 10), exact.search(queries, 10)
    assert np.mean(found.ids[:, 0] == reference.ids[:, 0]) >= 0.99
    assert approx.checks_[1]["on"] == "database" and approx.checks_[1]["recall"] >= 0.99
    # the search index listed the database by the bank's centroids from the fit: no second k-means
    assert approx._db_index.index._centroids.shape == (round(np.sqrt(1500)), 32)


def test_ivf_use_lists_refuses_a_piled_up_partition(rng):
    """Borrowed lists are used only when the vectors spread over them; otherwise the index builds its own."""
    centres = unit(np.random.default_rng(3), 10, 32)
    bank = mixture(rng, 1500, d=32, centres=centres)
    source = nnlift.IVFIndex(metric="ip", n_lists=20, n_probe=4).add(bank)
    source._build()
    spread = mixture(rng, 1000, d=32, centres=centres)
    index = nnlift.IVFIndex(metric="ip", n_probe=4).add(spread)
    probes = nnlift.topk(spread, source._centroids, 4, metric="ip").ids
    assert index.use_lists(source._centroids, probes)
    assert index._centroids is source._centroids and index._offsets[-1] == 1000
    piled = mixture(rng, 1000, d=32, centres=centres[:1], spread=0.05)  # one tight region: one list holds all
    other = nnlift.IVFIndex(metric="ip", n_probe=4).add(piled)
    assert not other.use_lists(source._centroids, nnlift.topk(piled, source._centroids, 4, metric="ip").ids)
    assert other._centroids is None  # untouched: it will run its own k-means
    assert other.search(piled[:3], 2).ids.shape == (3, 2)


def test_nnn_on_a_checked_index_warns_once_per_batch_and_not_per_online_search(rng):
    database, bank, queries = unit(rng, 3000, 64), unit(rng, 500, 64), unit(rng, 300, 64)
    index = nnlift.Checked(nnlift.IVFIndex(n_lists=20, n_probe=1), on_low="warn")
    with pytest.warns(UserWarning, match="topk_mean: mean absolute error"):
        # 20 lists of ~25 bank rows: one probe holds k=8 candidates, but on random data not the best ones
        model = nnlift.NNN(k=8, index=index).fit(database, bank)
    with pytest.warns(UserWarning, match="search: recall"):
        model.search(queries[:5], 5)  # the first search is measured, however small
    assert model.checks_[-1]["recall"] < 0.99 and model.checks_[-1]["rows"] == 5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for row in range(5, 10):
            model.search(queries[row : row + 1], 5)  # online: not measured again
    assert len(model.checks_) == 2
    with pytest.warns(UserWarning, match="search: recall"):
        model.search(queries, 5)  # the first batch of at least `sample` rows is: a full-size measurement
    assert len(model.checks_) == 3 and model.checks_[-1]["rows"] == 256
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.search(queries, 5)  # and then no batch either: once per fit
    assert len(model.checks_) == 3
    model._database_index().recheck()  # a new batch job asks for a new measurement
    with pytest.warns(UserWarning, match="search: recall"):
        model.search(queries, 5)
    assert len(model.checks_) == 4


def test_nnn_approximate_through_faiss(rng):
    pytest.importorskip("faiss")
    centres = unit(np.random.default_rng(3), 10, 32)
    database, bank, queries = (mixture(rng, n, d=32, centres=centres) for n in (2000, 1000, 100))
    exact = nnlift.NNN(k=8).fit(database, bank)
    approx = nnlift.NNN(k=8, index=nnlift.Checked(nnlift.FaissIndex("HNSW32"), max_error=1e-2)).fit(database, bank)
    assert approx.checks_[0]["error"] < 1e-2
    found = approx.search(queries, 5)
    assert np.mean(found.ids[:, 0] == exact.search(queries, 5).ids[:, 0]) >= 0.95


def test_every_query_gets_k_candidates_even_from_tiny_lists(rng):
    database = unit(rng, 500, 16)
    index = nnlift.IVFIndex(n_lists=60, n_probe=1).add(database)
    found = index.search_arrays(database, 8, exclude_self=True)
    assert (found.ids >= 0).all() and np.isfinite(found.scores).all()
    index = nnlift.Checked(nnlift.IVFIndex(n_lists=60, n_probe=1), on_low="warn")
    with pytest.warns(UserWarning, match="topk_mean: mean absolute error"):  # one probe on random data
        model = nnlift.NNN(k=8, index=index).fit(unit(rng, 300, 16), database)
    assert np.isfinite(model.bias_).all()


def test_nnn_on_a_checked_index_falls_back_to_exact_or_raises_when_the_bias_is_poor(rng):
    database, bank = unit(rng, 2000, 64), unit(rng, 1500, 64)
    exact = nnlift.NNN(k=8).fit(database, bank)
    model = nnlift.NNN(k=8, index=nnlift.Checked(nnlift.IVFIndex(n_lists=100, n_probe=1))).fit(database, bank)
    assert model.checks_[0]["error"] > 1e-3 and model.checks_[0]["action"] == "exact"
    np.testing.assert_allclose(model.bias_, exact.bias_, atol=1e-6)  # the bias was computed again, exactly
    with pytest.raises(nnlift.LowRecallError, match="topk_mean: mean absolute error"):
        nnlift.NNN(k=8, index=nnlift.Checked(nnlift.IVFIndex(n_lists=100, n_probe=1), on_low="raise")).fit(database, bank)


def test_topk_mean_equals_mean_of_topk_search(rng):
    database, queries = mixture(rng, 3000), mixture(rng, 400)
    index = nnlift.IVFIndex(metric="ip", n_lists=20, n_probe=6).add(database)
    np.testing.assert_allclose(
        index.topk_mean(queries, 16), index.search_arrays(queries, 16).scores.mean(axis=1), atol=1e-6
    )
    full = nnlift.IVFIndex(metric="ip", n_lists=20, n_probe=20).add(database)  # probing everything is exact
    np.testing.assert_allclose(
        full.topk_mean(queries, 16), nnlift.topk_mean(queries, database, 16, metric="ip"), atol=1e-5
    )


def test_topk_mean_widens_the_probe_only_for_queries_whose_lists_are_too_small(rng):
    """A query whose probed lists hold fewer than k vectors probes as many lists as the smallest ones need."""
    database, queries = unit(rng, 60, 8), unit(rng, 60, 8)
    index = nnlift.IVFIndex(metric="ip", n_lists=10, n_probe=1).add(database)
    found = index.topk_mean(queries, 6)
    sizes = np.diff(index._offsets)
    probes = nnlift.topk(queries, index._centroids, 1, metric="ip").ids
    short = sizes[probes].sum(axis=1) < 6
    assert short.any() and (~short).any() and np.isfinite(found).all()
    wide = nnlift.IVFIndex(metric="ip", n_lists=10, n_probe=index._probe_count(6)).add(database)
    np.testing.assert_allclose(found[short], wide.topk_mean(queries, 6)[short], atol=1e-6)
    narrow, _ = index._topk_mean(queries, 6, probes)
    np.testing.assert_allclose(found[~short], narrow[~short], atol=1e-6)


def test_recall_counts_by_hand_and_vacuous_recall():
    from nnlift.index.ivf import recall_counts

    exact = nnlift.Neighbors(np.array([[3, 1, -1], [2, -1, -1], [-1, -1, -1]]), np.zeros((3, 3), np.float32))
    found = nnlift.Neighbors(np.array([[1, 7, -1], [2, 2, 5], [4, -1, -1]]), np.zeros((3, 3), np.float32))
    hits, totals = recall_counts(found, exact)
    assert hits.tolist() == [1, 1, 0] and totals.tolist() == [2, 1, 0]  # a repeated id counts once; -1 never
    assert nnlift.neighbor_recall(found, exact) == pytest.approx(2 / 3)
    empty = nnlift.Neighbors(np.full((2, 3), -1), np.zeros((2, 3), np.float32))
    assert nnlift.neighbor_recall(found[:2], empty) == 1.0  # nothing to find: nothing missed
    with pytest.raises(ValueError, match="same rows"):
        recall_counts(found, exact[:2])


def test_recall_standard_error_matches_the_spread_of_sampled_recalls():
    from nnlift.index.ivf import recall_standard_error

    rng = np.random.default_rng(5)
    totals = rng.integers(0, 10, 20_000)
    hits = np.minimum(totals, rng.binomial(totals, 0.97) + (rng.random(20_000) < 0.01))
    estimates, errors = [], []
    for _ in range(400):
        rows = rng.choice(20_000, 256, replace=False)
        estimates.append(hits[rows].sum() / totals[rows].sum())
        errors.append(recall_standard_error(hits[rows], totals[rows]))
    assert np.mean(errors) == pytest.approx(np.std(estimates), rel=0.15)
    assert recall_standard_error(np.array([3, 0]), np.array([3, 0])) == 0.0  # one row with neighbours: no spread


@pytest.mark.parametrize("n, size", [(50_000, 2_000), (50_000, 4_000), (3_000, 1_000)])
def test_check_rows_are_independent_of_the_kmeans_sample(n, size):
    """Rows drawn with the k-means seed can be the k-means training rows, which flatter recall."""
    from nnlift.index.ivf import check_rows

    rows = check_rows(n, size)
    assert len(np.unique(rows)) == size and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, check_rows(n, size))  # deterministic
    for seed in range(3):  # kmeans draws its training rows like this
        train = np.random.default_rng(seed).choice(n, size=7168 if n > 7168 else n // 2, replace=False)
        expected = len(train) / n
        assert abs(np.isin(rows, train).mean() - expected) < 0.05


def test_kmeans_from_given_centroids(rng):
    centres = unit(np.random.default_rng(99), 12, 24)
    data = mixture(rng, 3000, centres=centres, spread=0.3)
    np.testing.assert_array_equal(kmeans(data, 12, n_iter=0, init=centres), centres)
    refined = kmeans(data, 12, n_iter=2, init=centres)
    assert (np.einsum("ij,ij->i", refined, centres) > 0.95).all()  # each centre stays with its cluster
    # an index told the previous centroids starts from them (two iterations instead of a fresh k-means)
    previous = nnlift.IVFIndex(n_lists=12, progress=False)
    previous._centroids = centres
    index = build_index(nnlift.IVFIndex(n_lists=12, n_probe=2, progress=False), data, like=previous)
    index.search_arrays(data[:5], 3)
    np.testing.assert_allclose(index._centroids, refined, atol=1e-6)


def test_kmeans_init_must_match_the_rows(rng):
    data = mixture(rng, 200)
    with pytest.raises(ValueError, match=r"init must be \(n_clusters, 24\)"):
        kmeans(data, 4, init=np.ones((4, 5), np.float32))


@settings(max_examples=50, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    rows=st.integers(1, 40),
    k_found=st.integers(1, 6),
    k_exact=st.integers(1, 6),
)
def test_recall_counts_match_a_set_per_row(seed, rows, k_found, k_exact):
    """Hits are the distinct exact ids (never -1) that appear anywhere in the row's approximate ids."""
    from nnlift.index.ivf import recall_counts

    rng = np.random.default_rng(seed)
    found = rng.integers(-1, 8, (rows, k_found))
    exact = rng.integers(-1, 8, (rows, k_exact))
    hits, totals = recall_counts(
        nnlift.Neighbors(found, np.zeros(found.shape, np.float32)),
        nnlift.Neighbors(exact, np.zeros(exact.shape, np.float32)),
    )
    for row in range(rows):
        wanted = [i for i in exact[row] if i >= 0]  # an id listed twice is wanted twice, as the old loop did
        assert totals[row] == len(wanted)
        assert hits[row] == sum(i in set(found[row].tolist()) for i in wanted)


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 300),
    n_lists=st.integers(1, 40),
    probe_frac=st.floats(0.0, 1.0),
    levels=st.sampled_from([3, 1000]),  # few score levels make many ties
    serial=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_nearest_lists_equal_a_stable_sort(rows, n_lists, probe_frac, levels, serial, seed):
    """Rounds of argmax give each row's best lists in sorted order, ties to the lower index, on either path."""
    rng = np.random.default_rng(seed)
    n = max(1, round(probe_frac * n_lists))
    vectors = rng.integers(-levels, levels, size=(rows, 4)).astype(np.float32)
    centroids = np.eye(4, dtype=np.float32)[rng.integers(0, 4, n_lists)]
    scores = vectors @ centroids.T
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :n]
    old = routing._ROUTING_SERIAL_ROWS, routing._ROUTING_SCORES
    try:  # 128-row blocks, so that a few hundred rows take the worker pool's path too
        routing._ROUTING_SERIAL_ROWS, routing._ROUTING_SCORES = (10**6, 1) if serial else (0, 1)
        found = nearest_lists(vectors, centroids, n)
    finally:
        routing._ROUTING_SERIAL_ROWS, routing._ROUTING_SCORES = old
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_array_equal(nearest_centroid(vectors, centroids), expected[:, 0])


def test_nearest_lists_beyond_argmax_rounds_use_the_kernel(rng):
    vectors, centroids = unit(rng, 500, 16), unit(rng, 64, 16)
    n = routing._ARGMAX_ROUNDS + 4
    expected = np.argsort(-(vectors @ centroids.T), axis=1, kind="stable")[:, :n]
    np.testing.assert_array_equal(nearest_lists(vectors, centroids, n), expected)


def _crowded_rows(index, queries, k, threshold):
    """Rows with more than k entries above the threshold in one probed list (they take the threshold path's sort)."""
    probes = routing.nearest_lists(queries, index._centroids, index._probe_count(k + 1))
    crowded = 0
    for row, row_probes in enumerate(probes):
        for lst in row_probes:
            members = index._order[index._offsets[lst] : index._offsets[lst + 1]]
            crowded += int((queries[row] @ index._vectors[members].T > threshold).sum() - (row in members) > k)
    return crowded


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    n_lists=st.integers(2, 10),
    n_probe=st.integers(1, 4),
    k=st.integers(1, 8),
    threshold=st.sampled_from([0.5, 0.75, 0.9]),
)
def test_ivf_self_join_threshold_path_equals_masked_plain_search(seed, n_lists, n_probe, k, threshold):
    """Tight clusters of ~30 give rows more hits in one list than they keep, and members hits from many rows."""
    rng = np.random.default_rng(seed)
    database = mixture(rng, 600, d=16, clusters=20, spread=0.4)
    database[10] = database[11]  # an exact tie
    index = nnlift.IVFIndex(n_lists=n_lists, n_probe=n_probe).add(database)
    plain = index.search_arrays(database, k, exclude_self=True)
    found = index.search_arrays(database, k, exclude_self=True, threshold=threshold)
    drop = plain.scores <= threshold
    np.testing.assert_array_equal(found.ids, np.where(drop, -1, plain.ids))
    np.testing.assert_array_equal(found.scores, np.where(drop, -np.inf, plain.scores))


def test_ivf_threshold_path_with_crowded_rows_is_exact_when_every_list_is_probed(rng):
    database = mixture(rng, 800, d=16, clusters=20, spread=0.4)
    index = nnlift.IVFIndex(n_lists=6, n_probe=6).add(database)
    index._build()
    assert _crowded_rows(index, database, 5, 0.75) > 100  # the case this test is about
    found = index.search_arrays(database, 5, exclude_self=True, threshold=0.75)
    exact = nnlift.topk(database, database, 5, exclude_self=True, threshold=0.75)
    np.testing.assert_array_equal(found.ids, exact.ids)
    np.testing.assert_allclose(found.scores, exact.scores, atol=1e-6)  # GEMMs of other shapes round differently


def test_logsumexp_probing_every_list_is_exact_and_gives_each_rows_best_query(rng):
    database, queries = mixture(rng, 2000), mixture(rng, 500)
    full = build_index(nnlift.IVFIndex(n_lists=10, n_probe=10, progress=False), database)
    values, best = full.logsumexp(queries, 20.0, column_best=True)
    exact_values, exact_best = build_index(nnlift.ExactIndex(progress=False), database).logsumexp(
        queries, 20.0, column_best=True
    )
    np.testing.assert_allclose(values, exact_values, atol=1e-5)
    np.testing.assert_array_equal(best, exact_best)
    # With one probe the unprobed lists are estimated from their size, mean and spread: close, not exact.
    narrow = build_index(nnlift.IVFIndex(n_lists=10, n_probe=1, progress=False), database)
    error = np.abs(narrow.logsumexp(queries, 20.0) - exact_values)
    assert 0 < error.mean() < 2e-3


def test_nearest_lists_serial_with_one_worker_and_no_serial_rows(monkeypatch, rng):
    """One worker takes the serial path whatever the row threshold; its block is never empty (was range step 0)."""
    vectors, centroids = unit(rng, 50, 8), unit(rng, 6, 8)
    monkeypatch.setattr(routing, "default_workers", lambda: 1)
    monkeypatch.setattr(routing, "_ROUTING_SERIAL_ROWS", 0)
    expected = np.argsort(-(vectors @ centroids.T), axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(nearest_lists(vectors, centroids, 3), expected)
