import numpy as np
import pytest
from scipy.stats import lognorm

import nnlift
from nnlift.evaluate import (
    hit_rate_at_k,
    hubness,
    k_occurrence,
    map_at_r,
    mrr,
    ndcg_at_k,
    paired_bootstrap,
    precision_at_k,
    recall_at_k,
    retrieval_metrics,
    tune,
)

from ..conftest import unit

RANKED = np.array([[3, 1, 4, 1, 5], [9, 2, 6, 5, 3], [5, 8, 9, 7, -1]])


def test_single_targets_by_hand():
    targets = np.array([4, 9, 0])
    assert hit_rate_at_k(RANKED, targets, 1) == pytest.approx(1 / 3)
    assert hit_rate_at_k(RANKED, targets, 3) == pytest.approx(2 / 3)
    assert recall_at_k(RANKED, targets, 3) == pytest.approx(2 / 3)  # equals hit rate with one target
    assert precision_at_k(RANKED, targets, 5) == pytest.approx((1 + 1 + 0) / 15)
    assert mrr(RANKED, targets) == pytest.approx((1 / 3 + 1 + 0) / 3)
    assert mrr(RANKED, targets, k=2) == pytest.approx((0 + 1 + 0) / 3)
    np.testing.assert_allclose(ndcg_at_k(RANKED, targets, 5, per_query=True), [1 / np.log2(4), 1.0, 0.0])


def test_multiple_targets_repeats_and_padding():
    targets = [[1, 5], [2, 3, 7], []]
    # query 0: 1 at rank 2, repeated at rank 4 (counts once), 5 at rank 5
    np.testing.assert_allclose(recall_at_k(RANKED, targets, 5, per_query=True), [1.0, 2 / 3, 0.0])
    np.testing.assert_allclose(hit_rate_at_k(RANKED, targets, 1, per_query=True), [0, 0, 0])
    np.testing.assert_allclose(precision_at_k(RANKED, targets, 5, per_query=True), [2 / 5, 2 / 5, 0])
    # mAP@R: q0 R=2, ranks 1-2 hold [3, 1] -> (0 + 1/2)/2; q1 R=3: ranks 1-3 [9, 2, 6] -> (1/2)/3
    np.testing.assert_allclose(map_at_r(RANKED, targets, per_query=True), [0.25, 1 / 6, 0.0])
    ideal0 = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(
        ndcg_at_k(RANKED, targets, 5, per_query=True)[0], (1 / np.log2(3) + 1 / np.log2(6)) / ideal0
    )
    metrics = retrieval_metrics(RANKED, targets, ks=(1, 5))
    assert "recall@5" in metrics and "hit_rate@1" in metrics


def test_metrics_accept_neighbors_and_reject_bad_shapes():
    nb = nnlift.Neighbors(RANKED.clip(min=0), np.zeros(RANKED.shape, np.float32))
    assert hit_rate_at_k(nb, np.array([3, 9, 5]), 1) == 1.0
    with pytest.raises(ValueError, match="targets has 2 entries but there are 3"):
        hit_rate_at_k(RANKED, np.array([1, 2]), 1)
    with pytest.raises(ValueError, match="2-D integer array"):
        hit_rate_at_k(np.zeros((2, 2)), np.array([1, 2]), 1)
    with pytest.raises(ValueError, match="k must be >= 1"):
        hit_rate_at_k(RANKED, np.array([1, 2, 3]), 0)


def test_hubness_on_known_distributions():
    uniform = np.arange(100).reshape(50, 2)  # every item exactly once
    stats = hubness(uniform, 100)
    assert stats["skewness"] == 0 and stats["robin_hood"] == 0 and stats["antihub_share"] == 0
    # one hub in every list
    hubby = np.stack([np.zeros(50, int), np.arange(1, 51)], axis=1)
    stats = hubness(hubby, 51)
    assert stats["max"] == 50 and stats["skewness"] > 5
    assert stats["robin_hood"] == pytest.approx(np.abs(k_occurrence(hubby, 51) - 100 / 51).sum() / 200)
    # a right-skewed (log-normal) occurrence distribution has positive skewness
    rng = np.random.default_rng(0)
    counts = lognorm(s=1.0).rvs(size=2000, random_state=rng).round().astype(int)
    ids = np.repeat(np.arange(2000), counts)
    assert hubness(ids[:, None], 2000)["skewness"] > 2


def test_gini_and_hub_occurrence_by_hand_and_against_their_definitions():
    from nnlift.evaluate import gini_index, hub_occurrence

    uniform = np.arange(100).reshape(50, 2)
    assert hubness(uniform, 100)["gini"] == 0 and hubness(uniform, 100)["hub_occurrence"] == 0
    # item 0 in all 50 lists of 2: N_0 = 50 >= 2k = 4, so a hub taking 50 of the 100 slots
    hubby = np.stack([np.zeros(50, int), np.arange(1, 51)], axis=1)
    assert hub_occurrence(hubby, 51) == 0.5
    assert hub_occurrence(hubby, 51, hub_size=26) == 0.0  # 50 < 26·2
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 9, size=40)
    mean_difference = np.abs(counts[:, None] - counts[None]).sum() / (2 * 40 * 40 * counts.mean())
    assert gini_index(counts) == pytest.approx(mean_difference)  # Gini's own definition
    assert gini_index(np.zeros(5)) == 0.0
    with pytest.raises(ValueError, match="hub_size"):
        hub_occurrence(hubby, 51, hub_size=-1)


def test_bootstrap_coverage_on_a_synthetic_case():
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(200):
        a = rng.binomial(1, 0.3, 300).astype(float)
        b = np.where(rng.random(300) < 0.1, 1 - a, a)  # true mean difference: 0.1 * (0.7 - 0.3) = 0.04
        result = paired_bootstrap(a, b, n_resamples=500, seed=trial)
        covered += result.low <= 0.04 <= result.high
    assert 0.90 <= covered / 200 <= 0.99  # nominal 95%
    with pytest.raises(ValueError, match="baseline and treatment must be paired"):
        paired_bootstrap(np.zeros(3), np.zeros(4))
    # arguments by role: the gain is treatment − baseline, so a better treatment gives a positive mean
    better = paired_bootstrap(baseline=np.zeros(100), treatment=np.r_[np.ones(30), np.zeros(70)])
    assert better.mean == pytest.approx(0.3) and better.low > 0
    worse = paired_bootstrap(treatment=np.zeros(100), baseline=np.r_[np.ones(30), np.zeros(70)])
    assert worse.mean == pytest.approx(-0.3) and worse.high < 0


def hubby_problem(rng, n=600, d=16):
    database = unit(rng, n, d)
    hub_direction = unit(rng, 1, d)[0]
    database[:10] = unit(rng, 10, d) * 0.3 + hub_direction  # hubs near the query distribution's centre
    queries_target = rng.integers(10, n, 400)
    queries = database[queries_target] + 0.9 * unit(rng, 400, d) + 0.6 * hub_direction
    bank = unit(rng, 500, d) + 0.6 * hub_direction
    return database, bank, queries, queries_target


def test_tune_picks_a_gain_on_validation_and_reuses_fits(rng):
    database, bank, queries, targets = hubby_problem(rng)
    result = tune(
        nnlift.NNN(), {"k": [4, 16], "alpha": [0.5, 1.0]}, database, bank, queries[:200], targets[:200], progress=False
    )
    assert not result.kept_baseline and result.params is not None
    assert result.gain.low > 0 and len(result.scores) == 4
    test = result.estimator.search(queries[200:], 10)
    raw = nnlift.Baseline().fit(database).search(queries[200:], 10)
    assert hit_rate_at_k(test, targets[200:], 1) > hit_rate_at_k(raw, targets[200:], 1)


def test_tune_composition_reaches_inner_parameters(rng):
    database, bank, queries, targets = hubby_problem(rng)
    result = tune(
        nnlift.WithDN(nnlift.NNN()),
        {"correction__k": [8], "correction__alpha": [0.25, 1.0]},
        database,
        bank,
        queries[:200],
        targets[:200],
        progress=False,
    )
    scores = dict((s["correction__alpha"], v) for s, v in result.scores)
    # The search-time alpha really reached the fitted inner NNN: each score is that alpha's own, fitted directly.
    for alpha in (0.25, 1.0):
        direct = nnlift.WithDN(nnlift.NNN(k=8, alpha=alpha)).fit(database, bank).search(queries[:200], 10)
        assert scores[alpha] == pytest.approx(hit_rate_at_k(direct, targets[:200], 1))
    assert scores[0.25] != scores[1.0]


def test_tune_do_no_harm_keeps_the_baseline(rng):
    database = unit(rng, 300, 16)
    targets = rng.integers(0, 300, 150)
    queries = database[targets] + 0.05 * unit(rng, 150, 16)  # raw cosine is already perfect
    bank = unit(rng, 200, 16)
    result = tune(nnlift.NNN(), {"k": [4], "alpha": [0.01, 0.02]}, database, bank, queries, targets, progress=False)
    assert result.kept_baseline and result.params is None
    assert isinstance(result.estimator, nnlift.Baseline) and "kept the baseline" in result.message
    with pytest.raises(ValueError, match="unknown metric"):
        tune(nnlift.NNN(), {"k": [4]}, database, bank, queries, targets, metric="accuracy", progress=False)
    with pytest.raises(ValueError, match="non-empty list"):
        tune(nnlift.NNN(), {"k": []}, database, bank, queries, targets, progress=False)
