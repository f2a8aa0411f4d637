"""``nnlift.sklearn.CorrectedKNeighborsTransformer`` under scikit-learn's own contract and estimators."""

import numpy as np
import pytest

pytest.importorskip("sklearn")

from sklearn.cluster import DBSCAN
from scipy.stats import spearmanr
from sklearn.datasets import load_digits, make_s_curve
from sklearn.manifold import Isomap
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier, KNeighborsTransformer
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

import nnlift
from nnlift.sklearn import CorrectedKNeighborsTransformer

# What check_estimator's generic data does that a cosine correction cannot take, and why.
EXPECTED_FAILED_CHECKS = {
    "check_estimators_dtypes": "its integer data has all-zero rows, whose cosine is undefined: nnlift refuses them "
    "with an InputError naming the row rather than scoring them as sklearn's cosine does (distance 1 to all)",
}


def test_passes_scikit_learns_estimator_checks():
    results = check_estimator(
        CorrectedKNeighborsTransformer(), expected_failed_checks=EXPECTED_FAILED_CHECKS, on_fail=None
    )
    failed = {r["check_name"] for r in results if r["status"] == "failed"}
    assert not failed - set(EXPECTED_FAILED_CHECKS), failed
    assert sum(r["status"] == "passed" for r in results) >= 40


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X, y, test_size=0.5, random_state=0, stratify=y)


def test_raw_cosine_equals_scikit_learns_own_transformer(digits):
    X_train, X_test, _, _ = digits
    ours = CorrectedKNeighborsTransformer(nnlift.Baseline(), n_neighbors=5).fit(X_train).transform(X_test)
    theirs = KNeighborsTransformer(n_neighbors=5, metric="cosine").fit(X_train).transform(X_test)
    assert ours.shape == theirs.shape == (len(X_test), len(X_train))
    assert (np.diff(ours.indptr) == 6).all()  # n_neighbors + 1 per row, as sklearn's distance mode
    np.testing.assert_array_equal(np.sort(ours.indices.reshape(-1, 6), 1), np.sort(theirs.indices.reshape(-1, 6), 1))
    np.testing.assert_allclose(np.sort(ours.data), np.sort(theirs.data), atol=1e-5)  # 1 − cosine


@pytest.mark.parametrize(
    "correction, bank_from_train",
    [
        (nnlift.Baseline(), False),
        (nnlift.LocalScaling(k=10), False),
        (nnlift.MutualProximity(k=10), False),
        (nnlift.NNN(k=10, alpha=0.75), True),
    ],
    ids=["cosine", "local-scaling", "mutual-proximity", "nnn"],
)
def test_a_pipeline_with_knn_classification_on_digits(digits, correction, bank_from_train):
    """Digits (sklearn's own copy), half for training: measured accuracy at k=5 (commit 2026-12-02):
    cosine 0.9811, local scaling 0.9867, mutual proximity 0.9844, NNN 0.9844."""
    X_train, X_test, y_train, y_test = digits
    transformer = CorrectedKNeighborsTransformer(correction, n_neighbors=5, bank=X_train if bank_from_train else None)
    pipeline = make_pipeline(transformer, KNeighborsClassifier(n_neighbors=5, metric="precomputed"))
    accuracy = pipeline.fit(X_train, y_train).score(X_test, y_test)
    expected = {"Baseline": 0.9811, "LocalScaling": 0.9867, "MutualProximity": 0.9844, "NNN": 0.9844}
    assert accuracy == pytest.approx(expected[type(correction).__name__], abs=1e-3)


def test_graph_modes_and_distances(rng):
    X = rng.normal(size=(40, 6))
    graph = CorrectedKNeighborsTransformer(nnlift.LocalScaling(k=5), n_neighbors=3).fit_transform(X)
    rows = graph.toarray()
    assert (np.diff(graph.indptr) == 4).all()
    np.testing.assert_array_equal(graph.indices.reshape(40, 4)[:, 0], np.arange(40))  # itself first, at 0
    assert np.all(graph.data.reshape(40, 4)[:, 0] < 1e-6) and np.all(rows >= 0)  # float32 self-cosine: 1 − 1e-7
    assert np.all(np.diff(graph.data.reshape(40, 4), axis=1) >= 0)  # ascending distances within a row
    connectivity = CorrectedKNeighborsTransformer(n_neighbors=3, mode="connectivity").fit_transform(X)
    assert (np.diff(connectivity.indptr) == 3).all() and set(connectivity.data.tolist()) == {1.0}
    with pytest.raises(ValueError, match="needs a bank"):
        CorrectedKNeighborsTransformer(nnlift.NNN()).fit(X)
    with pytest.raises(ValueError, match="mode must be"):
        CorrectedKNeighborsTransformer(mode="knn").fit(X)
    with pytest.raises(TypeError, match="nnlift correction"):
        CorrectedKNeighborsTransformer(correction="ls").fit(X)
    with pytest.raises(ValueError, match="n_neighbors=50 needs 51"):
        CorrectedKNeighborsTransformer(n_neighbors=50).fit(X).transform(X)


def test_feeds_dbscan_and_isomap(rng):
    centres = np.eye(8)[:3] * 4
    X = np.concatenate([c + 0.3 * rng.normal(size=(30, 8)) for c in centres])
    graph = CorrectedKNeighborsTransformer(nnlift.MutualProximity(k=8), n_neighbors=8).fit_transform(X)
    labels = DBSCAN(eps=0.95, min_samples=5, metric="precomputed").fit_predict(graph)  # MP distance: 1 − probability
    assert len(set(labels) - {-1}) == 3
    assert all(len(set(labels[30 * i : 30 * i + 30]) - {-1}) == 1 for i in range(3))  # one cluster per blob
    # Isomap on an S-curve unrolls it: the first coordinate follows the curve's own parameter.
    curve, position = make_s_curve(400, noise=0.02, random_state=0)
    pipeline = make_pipeline(
        CorrectedKNeighborsTransformer(nnlift.LocalScaling(k=8), n_neighbors=10),
        Isomap(n_neighbors=10, n_components=1, metric="precomputed"),
    )
    unrolled = pipeline.fit_transform(curve)[:, 0]
    assert abs(spearmanr(unrolled, position).statistic) > 0.95
