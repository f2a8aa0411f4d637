"""Confidence from the collection's own neighbours: the kNN baseline, relative density and their calibration."""

import numpy as np
import pytest
from hypothesis import example, given, settings, strategies as st

import nnlift
from nnlift.outliers import ConfidenceScorer, _fit_support, _log_p, _support_score, knn_confidence

from .conftest import unit


def test_knn_confidence_by_hand():
    collection = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    # [0.6, 0.8]: cosines 0.6, 0.96, 0.8 -> the two largest average to 0.88
    assert knn_confidence([[0.6, 0.8]], collection, k=2)[0] == pytest.approx(0.88, abs=1e-6)
    index = nnlift.ExactIndex().add(collection, ids=["a", "b", "c"])
    assert knn_confidence([[0.6, 0.8]], index, k=2)[0] == pytest.approx(0.88, abs=1e-6)


def test_density_leaves_each_item_out_by_hand():
    # Three points on a line of angles 0, 10, 30 degrees; query at 20 degrees, k=1.
    angles = np.radians([0.0, 10.0, 30.0])
    collection = np.c_[np.cos(angles), np.sin(angles)].astype(np.float32)
    scorer = ConfidenceScorer("density", k=1, sample=3).fit(collection)
    raw = scorer._raw(np.array([[np.cos(np.radians(20)), np.sin(np.radians(20))]], dtype=np.float32))
    # nearest is the 10-degree point (tied with 30 at cos 10°; ties go to the lower id): its own nearest, itself
    # left out, is the 0-degree point at cos 10°, so density = cos10° - cos10° = 0
    assert raw["density"][0] == pytest.approx(0.0, abs=1e-6)
    own = scorer._own_knn(np.arange(3))
    np.testing.assert_allclose(own[:, 0], np.cos(np.radians([10.0, 10.0, 20.0])), atol=1e-6)


def test_combined_scores_knn_at_two_scales_density_and_support_by_hand():
    # Angles 0, 10, 30, 60 degrees; query at 20, k=2, scales (2, 1).
    angles = np.radians([0.0, 10.0, 30.0, 60.0])
    collection = np.c_[np.cos(angles), np.sin(angles)].astype(np.float32)
    scorer = ConfidenceScorer("combined", k=2, scales=(1, 2), sample=4).fit(collection)
    assert scorer._parts() == ("knn", "density", "knn@1", "support")
    raw = scorer._raw(np.array([[np.cos(np.radians(20)), np.sin(np.radians(20))]], dtype=np.float32))
    cos = lambda degrees: np.cos(np.radians(degrees))
    # nearest two: 10 and 30 degrees (both 10 away); 10's own nearest two (itself out): 0 and 30 (10, 20 away);
    # 30's: 10 and 60 (20, 30 away)
    assert raw["knn"][0] == pytest.approx(cos(10), abs=1e-6)
    assert raw["density"][0] == pytest.approx(
        cos(10) - ((cos(10) + cos(20)) / 2 + (cos(20) + cos(30)) / 2) / 2, abs=1e-6
    )
    # scale 1: nearest is 10 degrees (the tie goes to the lower id), whose own nearest is 0 degrees
    assert raw["knn@1"][0] == pytest.approx(cos(10), abs=1e-6)
    assert "density@1" not in raw  # density at the small scale is noise (module docstring)
    assert ConfidenceScorer(k=10).scales == (10, 3)
    assert ConfidenceScorer(k=2).scales == (2, 1) and ConfidenceScorer(k=1).scales == (1,)
    assert ConfidenceScorer("knn", k=10).scales == (10,)


def test_support_is_a_shrunk_mahalanobis_distance_from_rows_outside_the_calibration_sample_by_hand():
    stored = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0], [5.0, 5.0]])
    support = _fit_support(stored, np.array([4]), seed=0)  # row 4 calibrates: the others fit
    # rows 0-3: mean 0, variances 2/3 and 8/3 (n - 1 = 3), no covariance; 1% of their mean 5/3 on the diagonal
    variances = np.array([2 / 3, 8 / 3]) + 0.01 * 5 / 3
    expected = -np.sqrt(np.sum(np.array([1.0, 1.0]) ** 2 / variances))
    assert _support_score(support, np.array([[1.0, 1.0]]))[0] == pytest.approx(expected, rel=1e-12)
    # identical rows have no variance: the shrinkage alone keeps the map finite
    flat = _fit_support(np.ones((4, 3)), np.array([0]), seed=0)
    assert np.isfinite(_support_score(flat, np.zeros((1, 3)))).all()


def test_support_counts_only_in_the_outer_tail_of_the_joined_statistic():
    scorer = ConfidenceScorer()
    # p = 0.5 lies inside the collection's bulk: the support term adds nothing
    assert scorer._joined({"knn": np.array([-1.0]), "support": np.log([0.5])})[0] == pytest.approx(-1.0)
    # p = 0.001, ten times below the 1% tail: it adds ln 0.1
    assert scorer._joined({"knn": np.array([-1.0]), "support": np.log([0.001])})[0] == pytest.approx(-1.0 + np.log(0.1))


def test_support_ranks_noise_off_the_collections_subspace_below_its_items(rng):
    # A collection on an 8-dimensional subspace of 64 dimensions; outsiders: isotropic noise scaled to unit length.
    basis = np.linalg.qr(rng.standard_normal((64, 8)))[0].T
    collection = rng.standard_normal((3000, 8)) @ basis + 0.05 * rng.standard_normal((3000, 64))
    held = rng.standard_normal((300, 8)) @ basis + 0.05 * rng.standard_normal((300, 64))
    noise = unit(rng, 300, 64)
    support = ConfidenceScorer("support", sample=500).fit(collection)
    assert (support.score(held)[:, None] > support.score(noise)[None, :]).mean() > 0.99
    # cosine: a vector's length does not move its support score
    np.testing.assert_allclose(support._raw(held[:5] * 10.0)["support"], support._raw(held[:5])["support"], rtol=1e-5)
    ip = ConfidenceScorer("support", sample=500).fit(nnlift.ExactIndex(metric="ip").add(collection))
    assert (ip._raw(held[:5] * 10.0)["support"] < ip._raw(held[:5])["support"]).all()  # ip: it does
    combined = ConfidenceScorer(sample=500).fit(collection)
    assert (combined.score(held)[:, None] > combined.score(noise)[None, :]).mean() > 0.99


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=3, max_size=40, unique=True),
    st.lists(st.floats(-20, 20), min_size=1, max_size=30),
)
@example([1.0, 2.225e-309, -2.225e-309], [0.0])  # a subnormal gap: np.interp's slope overflowed to inf
@example([0.0, 1.0, 1.0 + 1e-15], [1.0 + 5e-16, 3.0])
def test_calibrated_p_values_are_monotone_continuous_and_below_one(reference, values):
    reference = np.sort(np.asarray(reference))
    values = np.sort(np.asarray(values))
    log_p = _log_p(reference, values)
    assert (log_p <= 0).all() and np.isfinite(log_p).all()
    assert (np.diff(log_p) >= -1e-12).all()  # a higher score never gets a lower p-value
    at_min = _log_p(reference, reference[:1] - np.array([1e-9 * reference.std(), 0.0]))
    assert abs(at_min[0] - at_min[1]) < 1e-6  # the tail meets the empirical part at the lowest reference
    assert _log_p(reference, reference[-1:])[0] == pytest.approx(np.log(len(reference) / (len(reference) + 1)))


def test_combined_confidence_ranks_outsiders_below_the_collection(rng):
    centres = unit(np.random.default_rng(4), 12, 16)
    collection = centres[rng.integers(0, 12, 1500)] + 0.1 * rng.standard_normal((1500, 16))
    held = centres[rng.integers(0, 12, 200)] + 0.1 * rng.standard_normal((200, 16))
    outsiders = unit(rng, 200, 16)
    for method in ("knn", "density", "combined"):
        scorer = ConfidenceScorer(method, k=10, sample=500).fit(collection)
        inside, outside = scorer.score(held), scorer.score(outsiders)
        assert ((inside[:, None] > outside[None, :]).mean()) > 0.95, method
        assert ((inside >= 0) & (inside <= 1)).all()
    # a calibrated p-value: about 5% of the collection's own (held-out) items fall below its 5% point
    assert np.mean(scorer.score(held) < 0.05) == pytest.approx(0.05, abs=0.05)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: ConfidenceScorer("entropy"), "method must be one of"),
        (lambda c: ConfidenceScorer("blocks"), "needs encoder="),
        (lambda c: ConfidenceScorer(k=0), "k must be"),
        (lambda c: ConfidenceScorer(k=5, scales=(3, 2)), "must include k=5 as the largest"),
        (lambda c: ConfidenceScorer(k=5, scales=(5, 0)), "scales must be >= 1"),
        (lambda c: ConfidenceScorer(k=5, scales=5), "non-empty tuple"),
        (lambda c: ConfidenceScorer().score(c), "not fitted"),
        (lambda c: ConfidenceScorer("support").fit(c).score(np.zeros((1, 6))), "vectors has 1 all-zero row"),
        (lambda c: ConfidenceScorer(k=50).fit(c), "needs more than 51"),
        (lambda c: ConfidenceScorer().fit(c).score(c[:, :3]), "3 columns|columns"),
        (lambda c: knn_confidence(c[:2], c, k=100), "k=100 is more than the 40"),
        (lambda c: knn_confidence(c[:2], "collection.npy"), "must be an nnlift index or a 2-D array"),
    ],
)
def test_bad_input_is_named(call, message, rng):
    collection = rng.standard_normal((40, 6)).astype(np.float32)
    before = collection.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        call(collection)
    np.testing.assert_array_equal(collection, before)
