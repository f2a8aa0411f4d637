"""Parity with the reference implementation, nnn-retrieval 1.0.1 (torch path)."""

import contextlib
import io

import numpy as np
import pytest

import nnlift

from ..conftest import assert_same_neighbors, unit

pytest.importorskip("torch")
with contextlib.redirect_stdout(io.StringIO()):  # it prints about optional faiss-gpu on import
    nnn = pytest.importorskip("nnn")


@pytest.fixture
def data(rng):
    return unit(rng, 2000, 32), unit(rng, 700, 32), unit(rng, 150, 32)


def test_nnn_matches_reference(data):
    database, bank, queries = data
    retriever = nnn.NNNRetriever(database.shape[1])
    ranker = nnn.NNNRanker(retriever, database, bank, alternate_ks=16, batch_size=256, alternate_weight=0.75)
    ref_scores, ref_ids = ranker.search(queries, 10)
    model = nnlift.NNN(k=16, alpha=0.75).fit(database, bank)
    np.testing.assert_allclose(model.bias_, ranker.alignment_means.numpy()[:, 0], atol=1e-5)
    found = model.search(queries, 10)
    assert_same_neighbors(found.ids, found.scores, ref_ids, ref_scores, tol=1e-5)
    np.testing.assert_allclose(model.score(queries, ref_ids), ref_scores, atol=1e-5)


def test_dn_nnn_matches_reference(data, rng):
    database, bank, queries = data
    database_dev, queries_dev = unit(rng, 300, 32), unit(rng, 300, 32)
    retriever = nnn.NNNRetriever(database.shape[1])
    ranker = nnn.DNRanker(
        retriever,
        database,
        bank,
        alternate_ks=16,
        batch_size=256,
        alternate_weight=0.75,
        retrieval_dev_embeds=database_dev,
        query_dev_embeds=queries_dev,
        dn_lambda=0.5,
    )
    ref_scores, ref_ids = ranker.search(queries, 10)
    inner = nnlift.NNN(k=16, alpha=0.75)
    model = nnlift.WithDN(inner, lambda_=0.5).fit(database, bank, database_dev=database_dev, queries_dev=queries_dev)
    assert inner.metric == "cosine"  # the caller's estimator is untouched
    np.testing.assert_allclose(model.correction_.bias_, ranker.alignment_means.numpy()[:, 0], atol=1e-5)
    found = model.search(queries, 10)
    assert_same_neighbors(found.ids, found.scores, ref_ids, ref_scores, tol=1e-5)


def test_reference_ranks_nan_rows_first_nnlift_refuses(data):
    database, bank, queries = data
    poisoned = database.copy()
    poisoned[7] = np.nan
    retriever = nnn.NNNRetriever(database.shape[1])
    ranker = nnn.NNNRanker(retriever, poisoned, bank, alternate_ks=16, batch_size=256, alternate_weight=0.75)
    _, ids = ranker.search(queries[:5], 3)
    assert (ids[:, 0] == 7).all()  # the defect we guard against
    with pytest.raises(ValueError, match="database has NaN"):
        nnlift.NNN().fit(poisoned, bank)
