"""Fusion of corrections (reciprocal-rank, z-score) and mean-bias renormalisation: by hand, against dense
references, saved and loaded, and with bad input named."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnlift
from nnlift.correct import CSLS, NNN, Baseline, Fusion, InvertedSoftmax, MeanBias
from nnlift.correct.fusion import _reciprocal_ranks

from ..conftest import unit


def test_reciprocal_ranks_by_hand():
    ranked = np.array([[7, 3, 9], [2, -1, -1]])
    ids = np.array([[3, 9, 4, -1], [2, 7, -1, -1]])
    got = _reciprocal_ranks(ranked, ids, 1.0)
    np.testing.assert_allclose(got, [[1 / 3, 1 / 4, 0, 0], [1 / 2, 0, 0, 0]])


def test_rrf_fusion_by_hand():
    # One query, four items; cosine ranks 0, 1, 2, 3; a "reversed" member (cosine of -q) ranks 3, 2, 1, 0.
    database = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]], dtype=np.float32)
    query = np.array([[1.0, 0.1]], dtype=np.float32)
    fused = Fusion([Baseline(), Baseline(), MeanBias(lambda_=0.0)], depth=2, rrf_k=0.0).fit(database, query)
    # three cosine rankings (MeanBias with lambda 0 is cosine), depth 2: item 0 gets 3/1, item 1 gets 3/2
    found = fused.search(query, k=2)
    assert found.ids.tolist() == [[0, 1]]
    np.testing.assert_allclose(found.scores, [[3.0, 1.5]])
    np.testing.assert_allclose(fused.score(query, [[1, 0, 3]]), [[1.5, 3.0, 0.0]])  # 3 is in no list
    wider = fused.search(query, k=3)  # each list widens to k: item 2 comes third in all three
    assert wider.ids.tolist() == [[0, 1, 2]] and wider.scores[0, 2] == pytest.approx(1.0)
    weighted = Fusion([Baseline(), Baseline()], depth=1, rrf_k=1.0, weights=[2.0, 0.5]).fit(database)
    np.testing.assert_allclose(weighted.search(query, k=1).scores, [[2.0 / 2 + 0.5 / 2]])


def dense_rankings(model, queries, n):
    """Each member's full ranking from its dense score matrix (ties to the lower id)."""
    scores = model.score(queries, np.arange(n))
    return np.lexsort((np.broadcast_to(np.arange(n), scores.shape), -scores), axis=1)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["rrf", "zscore"]), st.integers(3, 25))
def test_fusion_equals_a_dense_reference(seed, method, depth):
    rng = np.random.default_rng(seed)
    database, bank, queries = unit(rng, 60, 6), unit(rng, 40, 6), unit(rng, 7, 6)
    members = [NNN(k=5), CSLS(k=5), InvertedSoftmax(beta=10.0)]
    fused = Fusion(members, method=method, depth=depth, rrf_k=60.0).fit(database, bank)
    fitted = [m.fit(database, bank) for m in [NNN(k=5), CSLS(k=5), InvertedSoftmax(beta=10.0)]]
    reference = np.zeros((len(queries), 60))
    covered = np.zeros((len(queries), 60), dtype=bool)
    for member in fitted:
        order = dense_rankings(member, queries, 60)[:, :depth]
        scores = member.score(queries, np.arange(60)).astype(np.float64)
        for row in range(len(queries)):
            covered[row, order[row]] = True
            if method == "rrf":
                reference[row, order[row]] += 1.0 / (60.0 + np.arange(1, depth + 1))
            else:
                own = scores[row, order[row]]
                reference[row] += (scores[row] - own.mean()) / (own.std() or 1.0)
    reference = np.where(covered, reference, -np.inf)
    k = min(5, depth)
    found = fused.search(queries, k)
    expected = np.lexsort((np.broadcast_to(np.arange(60), reference.shape), -reference), axis=1)[:, :k]
    np.testing.assert_allclose(found.scores, np.take_along_axis(reference, expected, axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fused.score(queries, found.ids), found.scores, rtol=1e-6, atol=1e-6)
    # the same ids, except where two fused scores tie within float error
    gaps = np.abs(np.diff(np.sort(reference, axis=1)[:, ::-1][:, : k + 1], axis=1)).min(axis=1)
    clear = gaps > 1e-5
    assert (found.ids[clear] == expected[clear]).all()


def test_fusion_saves_loads_and_runs_on_an_approximate_index(tmp_path, rng):
    pytest.importorskip("faiss")
    database, bank, queries = unit(rng, 400, 8), unit(rng, 200, 8), unit(rng, 20, 8)
    fused = Fusion([NNN(k=8), CSLS(k=8)], method="zscore", depth=20, weights=[1.0, 0.5]).fit(database, bank)
    fused.save(tmp_path / "fused")
    loaded = nnlift.load(tmp_path / "fused")
    assert isinstance(loaded, Fusion) and loaded.weights == [1.0, 0.5]
    np.testing.assert_array_equal(loaded.search(queries, 5).ids, fused.search(queries, 5).ids)
    approx = Fusion([NNN(k=8), CSLS(k=8)], index=nnlift.FaissIndex("HNSW32", ef_search=256)).fit(database, bank)
    assert all(isinstance(m._database_index(), nnlift.FaissIndex) for m in approx.corrections_)
    exact = Fusion([NNN(k=8), CSLS(k=8)]).fit(database, bank)
    assert (approx.search(queries, 5).ids == exact.search(queries, 5).ids).mean() > 0.95
    assert not Fusion([Baseline()]).needs_bank and Fusion([Baseline(), NNN()]).needs_bank


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Fusion([]), "non-empty list of corrections"),
        (lambda: Fusion([NNN(), "csls"]), "non-empty list of corrections"),
        (lambda: Fusion([NNN()], method="borda"), "one of rrf, zscore"),
        (lambda: Fusion([NNN()], depth=0), "depth must be >= 1"),
        (lambda: Fusion([NNN()], rrf_k=-1.0), "rrf_k must be >= 0"),
        (lambda: Fusion([NNN(), CSLS()], weights=[1.0]), "2 finite weights"),
        (lambda: Fusion([NNN(), CSLS()], weights=[0.0, 0.0]), "not all 0"),
        (lambda: MeanBias(mode="centre"), "one of shift, projection"),
        (lambda: MeanBias(lambda_=float("nan")), "lambda_"),
    ],
)
def test_bad_parameters_are_named(make, message, rng):
    database, bank = unit(rng, 30, 4), unit(rng, 20, 4)
    before = database.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        make().fit(database, bank)
    np.testing.assert_array_equal(database, before)


def test_mean_bias_by_hand():
    # a common component along e0 in both sides; removing it leaves the directions that tell items apart
    database = np.array([[3.0, 1.0, 0.0], [3.0, 0.0, 1.0]], dtype=np.float32)
    bank = np.array([[3.0, 1.0, 0.2], [3.0, 0.2, 1.0]], dtype=np.float32)
    model = MeanBias(metric="ip").fit(database, bank)
    # database mean (3, .5, .5): rows become (0, .5, -.5)/|.|; query (3, .6, .4) minus bank mean (3, .6, .6) = (0, 0, -.2)
    np.testing.assert_allclose(model.correction_.database_, [[0, 0.7071068, -0.7071068], [0, -0.7071068, 0.7071068]])
    found = model.search([[3.0, 0.6, 0.4]], k=2)
    assert found.ids.tolist() == [[0, 1]]
    np.testing.assert_allclose(found.scores, [[0.7071068, -0.7071068]], atol=1e-6)
    projected = MeanBias(mode="projection", metric="ip").fit(database, bank)
    direction = np.array([3.0, 0.5, 0.5]) / np.linalg.norm([3.0, 0.5, 0.5])
    row = database[0] - (database[0] @ direction) * direction
    np.testing.assert_allclose(projected.correction_.database_[0], row / np.linalg.norm(row), atol=1e-6)


def test_mean_bias_equals_a_dense_reference_and_wraps_nnn(tmp_path, rng):
    common = 2.0 * unit(rng, 1, 16)
    database, bank, queries = unit(rng, 300, 16) + common, unit(rng, 150, 16) + common, unit(rng, 10, 16) + common
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731
    for lam in (0.5, 1.0):
        model = MeanBias(lambda_=lam).fit(database, bank)
        x = norm(norm(database) - lam * norm(database).mean(0))
        q = norm(norm(queries) - lam * norm(bank).mean(0))
        dense = q @ x.T
        found = model.search(queries, 5)
        np.testing.assert_allclose(found.scores, -np.sort(-dense, axis=1)[:, :5], atol=2e-6)
    wrapped = MeanBias(NNN(k=8)).fit(database, bank)
    assert isinstance(wrapped.correction_, NNN) and wrapped.correction_.bias_.shape == (300,)
    wrapped.save(tmp_path / "mb")
    np.testing.assert_array_equal(nnlift.load(tmp_path / "mb").search(queries, 5).ids, wrapped.search(queries, 5).ids)
    tuned = MeanBias().set_params(correction__metric="cosine", mode="projection")
    assert isinstance(tuned.correction, Baseline) and tuned.mode == "projection"
    with pytest.raises(ValueError, match="needs a bank or queries_dev"):
        MeanBias().fit(database)


def test_withdn_models_saved_before_mean_bias_still_load():
    # an artifact's parameters must match its class's exactly: DN's own stay (lambda_, metric), and MeanBias
    # keeps its mode in a subclass
    from nnlift._artifact import init_parameters
    from nnlift.correct.dn import DistributionNormalization, MeanRemoval

    assert list(init_parameters(DistributionNormalization)) == ["lambda_", "metric"]
    rng = np.random.default_rng(0)
    model = MeanBias(mode="projection").fit(rng.normal(size=(20, 4)), rng.normal(size=(10, 4)))
    assert type(model.dn_) is MeanRemoval and model.dn_.mode == "projection"
