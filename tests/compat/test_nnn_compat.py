"""nnlift.compat.nnn against nnn-retrieval 1.0.1 itself, on the same seeded data."""

import numpy as np
import pytest

from nnlift.compat.nnn import BaseRanker, DNRanker, NNNRanker, NNNRetriever
from nnlift.errors import InputError

nnn = pytest.importorskip("nnn")
pytest.importorskip("torch")


@pytest.fixture
def data():
    rng = np.random.default_rng(7)
    images = rng.standard_normal((600, 24)).astype(np.float32)
    references = rng.standard_normal((300, 24)).astype(np.float32)
    queries = rng.standard_normal((50, 24)).astype(np.float32)
    dev = rng.standard_normal((80, 24)).astype(np.float32)
    return images, references, queries, dev


def assert_same_ranking(ours, theirs, tolerance=1e-4):
    """Same scores; the same indices wherever the reference's scores are not tied within tolerance."""
    (our_scores, our_ids), (their_scores, their_ids) = ours, theirs
    np.testing.assert_allclose(our_scores, their_scores, rtol=0, atol=tolerance)
    gaps = np.abs(np.diff(their_scores, axis=1))
    untied = np.ones_like(their_ids, dtype=bool)
    untied[:, :-1] &= gaps > tolerance
    untied[:, 1:] &= gaps > tolerance
    np.testing.assert_array_equal(our_ids[untied], their_ids[untied])
    assert untied.mean() > 0.9  # the comparison is not vacuous


def test_the_nnn_ranker_returns_the_references_scores_and_indices(data):
    images, references, queries, _ = data
    theirs = nnn.NNNRanker(nnn.NNNRetriever(24), images, references, alternate_ks=32, alternate_weight=0.75)
    ours = NNNRanker(NNNRetriever(24), images, references, alternate_ks=32, alternate_weight=0.75)
    np.testing.assert_allclose(ours.alignment_means, theirs.alignment_means.numpy(), rtol=0, atol=1e-5)
    assert_same_ranking(ours.search(queries, 10), theirs.search(queries, 10))
    scores, indices = ours.search(queries, 10)  # the reference's unpacking works
    assert scores.shape == indices.shape == (50, 10)


def test_the_dn_ranker_returns_the_references_scores_and_indices(data):
    images, references, queries, dev = data
    options = dict(alternate_ks=16, alternate_weight=0.5, retrieval_dev_embeds=dev, query_dev_embeds=dev[::-1] * 0.5)
    theirs = nnn.DNRanker(nnn.NNNRetriever(24), images, references, **options)
    ours = DNRanker(NNNRetriever(24), images, references, **options)
    assert_same_ranking(ours.search(queries, 8), theirs.search(queries, 8))


def test_the_base_ranker_is_plain_inner_product_search(data):
    images, references, queries, _ = data
    theirs = nnn.BaseRanker(nnn.NNNRetriever(24), images, references)
    ours = BaseRanker(NNNRetriever(24), images, references)
    assert_same_ranking(ours.search(queries, 5), theirs.search(queries, 5))


def test_inputs_are_never_changed_and_bad_calls_say_what_is_wrong(data):
    images, references, queries, dev = data
    before = images.copy(), references.copy(), queries.copy()
    NNNRanker(NNNRetriever(24), images, references, alternate_ks=8).search(queries, 3)
    for array, kept in zip((images, references, queries), before):
        np.testing.assert_array_equal(array, kept)
    with pytest.raises(InputError, match="alternate_ks|k=500"):
        NNNRanker(NNNRetriever(24), images, references, alternate_ks=500)
    with pytest.raises(InputError, match="24"):
        NNNRanker(NNNRetriever(24), images[:, :10], references[:, :10])
    with pytest.raises(InputError, match="gpu_id"):
        NNNRetriever(24, use_gpu=True)
    with pytest.raises(InputError, match="same device"):
        NNNRanker(NNNRetriever(24), images, references, use_gpu=True, gpu_id=0)
    with pytest.raises(InputError, match="query_dev_embeds"):
        DNRanker(NNNRetriever(24), images, references, retrieval_dev_embeds=dev)
