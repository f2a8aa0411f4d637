"""The online query bank: a reservoir of served queries that a bank correction is refitted on."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnlift
from nnlift.correct import CSLS, NNN, Baseline, OnlineBank

from ..conftest import unit


def test_cosine_until_the_bank_is_big_enough_then_nnn_on_the_seen_queries(rng):
    database, queries = unit(rng, 200, 8), unit(rng, 90, 8)
    model = OnlineBank(NNN(k=8), capacity=1000, refit_every=40).fit(database)
    first = model.search(queries[:30], k=5)
    cosine = Baseline().fit(database).search(queries[:30], k=5)
    np.testing.assert_array_equal(first.ids, cosine.ids)  # nothing seen yet: plain cosine
    assert model.correction_ is None and model.seen_ == 30 and model.pending_ == 30
    model.search(queries[30:60], k=5)  # 60 seen >= refit_every 40: refitted on all 60
    assert model.pending_ == 0 and model.correction_ is not None
    later = model.search(queries[60:], k=5)
    reference = NNN(k=8).fit(database, queries[:60]).search(queries[60:], k=5)
    np.testing.assert_array_equal(later.ids, reference.ids)
    np.testing.assert_allclose(later.scores, reference.scores, atol=1e-6)
    np.testing.assert_allclose(model.score(queries[60:], later.ids), later.scores, atol=1e-5)


def test_include_batch_searches_with_the_batch_in_the_bank(rng):
    database, bank, batch = unit(rng, 200, 8), unit(rng, 50, 8), unit(rng, 40, 8)
    model = OnlineBank(CSLS(k=5), include_batch=True, refit_every=10_000).fit(database, bank)
    found = model.search(batch, k=4, observe=False)
    reference = CSLS(k=5).fit(database, np.concatenate([bank, batch])).search(batch, k=4)
    np.testing.assert_array_equal(found.ids, reference.ids)
    assert model.seen_ == 50  # observe=False: the reservoir is unchanged


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 30), st.lists(st.integers(1, 40), min_size=1, max_size=6), st.integers(0, 100))
def test_the_reservoir_is_a_sample_of_what_was_seen_and_replays_exactly(capacity, batches, seed):
    rng = np.random.default_rng(seed)
    database = unit(rng, 20, 4)
    stream = [unit(rng, n, 4) for n in batches]
    runs = []
    for _ in range(2):
        model = OnlineBank(NNN(k=1), capacity=capacity, refit_every=7, seed=seed).fit(database)
        for batch in stream:
            model.observe(batch)
        runs.append(model.reservoir_)
    seen = np.concatenate(stream)
    assert len(runs[0]) == min(capacity, len(seen))
    np.testing.assert_array_equal(runs[0], runs[1])  # the same seed and batches: the same reservoir
    matches = (runs[0][:, None, :] == seen[None, :, :]).all(axis=2)
    assert matches.any(axis=1).all()  # every kept row is a seen query
    assert len({int(np.argmax(row)) for row in matches}) == len(runs[0])  # each at most once


def test_the_reservoir_is_uniform_over_the_stream():
    # 2,000 queries (row i is (i, 1)) into 100 slots, over 200 seeds: each tenth of the stream keeps a tenth
    kept = np.zeros(2000)
    ids = np.arange(2000, dtype=np.float32)
    for seed in range(200):
        model = OnlineBank(NNN(k=1), capacity=100, refit_every=10**9, seed=seed, metric="ip")
        model.fit(np.ones((3, 2), dtype=np.float32))
        model.observe(np.c_[ids, np.ones(2000, dtype=np.float32)])
        kept[model.reservoir_[:, 0].astype(int)] += 1
    share = kept.reshape(10, 200).sum(axis=1) / (200 * 100)  # ten blocks of the stream, early to late
    np.testing.assert_allclose(share, 0.1, atol=0.01)


def test_save_load_resumes_the_same_stream(tmp_path, rng):
    database, queries = unit(rng, 150, 8), unit(rng, 120, 8)
    model = OnlineBank(NNN(k=4), capacity=50, refit_every=25, seed=3).fit(database)
    model.search(queries[:70], k=3)
    model.save(tmp_path / "online")
    loaded = nnlift.load(tmp_path / "online")
    a, b = model.search(queries[70:], k=3), loaded.search(queries[70:], k=3)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(model.reservoir_, loaded.reservoir_)
    assert loaded.seen_ == model.seen_ == 120


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: OnlineBank(capacity=0), "capacity must be >= 1"),
        (lambda: OnlineBank(refit_every=0), "refit_every must be >= 1"),
        (lambda: OnlineBank(Baseline()), "needs a bank correction"),
    ],
)
def test_bad_parameters_are_named(make, message, rng):
    with pytest.raises(ValueError, match=message):
        make().fit(unit(rng, 20, 4))
    with pytest.raises(ValueError, match="queries must have 4 columns"):
        OnlineBank().fit(unit(rng, 20, 4)).observe(unit(rng, 3, 5))
