import warnings

import numpy as np
import pytest
from scipy.special import logsumexp as scipy_lse
from scipy.stats import norm

import nnlift
from nnlift import NotFittedError

from ..conftest import unit

ALL = [
    lambda: nnlift.Baseline(),
    lambda: nnlift.NNN(k=4),
    lambda: nnlift.CSLS(k=4),
    lambda: nnlift.InvertedSoftmax(beta=10),
    lambda: nnlift.QBNorm(beta=10),
    lambda: nnlift.DBNorm(beta=10),
    lambda: nnlift.WithDN(nnlift.NNN(k=4)),
    lambda: nnlift.LocalScaling(k=3),
    lambda: nnlift.LocalScaling(k=3, variant="nicdm"),
    lambda: nnlift.MutualProximity(k=3),
    lambda: nnlift.MutualProximity(k=3, method="empiric"),
    lambda: nnlift.MeanBias(),
    lambda: nnlift.InvGC(k=4),
    lambda: nnlift.SinkhornNorm(beta=10, iterations=4),
    lambda: nnlift.InvGC(k=4, bank_weight=0.0, weighting="similarity"),
    lambda: nnlift.MeanBias(nnlift.NNN(k=4), mode="projection"),
    lambda: nnlift.Fusion([nnlift.NNN(k=4), nnlift.CSLS(k=4)], depth=20),
    lambda: nnlift.Fusion([nnlift.NNN(k=4), nnlift.LocalScaling(k=3)], method="zscore", depth=20),
]


def fit(model, database, bank):
    return model.fit(database, bank)  # one shape: bank-free corrections ignore the bank


@pytest.mark.parametrize("make", ALL)
def test_shared_interface_search_agrees_with_score(rng, make):
    database, bank, queries = unit(rng, 120, 8), unit(rng, 60, 8), unit(rng, 9, 8)
    model = fit(make(), database, bank)
    found = model.search(queries, 6)
    assert found.ids.shape == (9, 6) and (np.diff(found.scores, axis=1) <= 1e-6).all()
    np.testing.assert_allclose(model.score(queries, found.ids), found.scores, atol=1e-5)
    # repr shows exactly the non-default parameters, and get_params round-trips through the constructor.
    params = model.get_params(deep=False)
    assert type(model)(**params).get_params(deep=False).keys() == params.keys()
    defaults = type(model)().get_params(deep=False)
    changed = [name for name in params if repr(params[name]) != repr(defaults[name])]
    assert repr(model) == f"{type(model).__name__}({', '.join(f'{n}={params[n]!r}' for n in changed)})"


@pytest.mark.parametrize("make", ALL)
def test_search_before_fit_and_bad_widths(rng, make):
    model = make()
    with pytest.raises(NotFittedError, match="not fitted"):
        model.search(unit(rng, 2, 8), 3)
    database, bank = unit(rng, 50, 8), unit(rng, 30, 8)
    fit(model, database, bank)
    with pytest.raises(ValueError, match="queries must have 8 columns"):
        model.search(unit(rng, 2, 5), 3)
    with pytest.raises(ValueError, match="larger than possible"):
        model.search(unit(rng, 2, 8), 51)


SAVED = ALL + [
    lambda: nnlift.NNN(k=4, index=nnlift.Checked(nnlift.IVFIndex(n_lists=4, n_probe=1), on_low="warn")),
    lambda: nnlift.NNN(k=4, approximate=True),
    lambda: nnlift.CSLS(k=4, index=nnlift.Checked(nnlift.IVFIndex(n_lists=4, n_probe=1), on_low="exact")),
    lambda: nnlift.QBNorm(index=nnlift.HnswIndex(M=8)),
    lambda: nnlift.InvertedSoftmax(index=nnlift.FaissIndex("Flat")),
    lambda: nnlift.WithDN(nnlift.NNN(k=4), index=nnlift.IVFIndex(n_lists=4, n_probe=1)),
    lambda: nnlift.WithDN(nnlift.CSLS(k=4)),
    lambda: nnlift.AugmentedDatabase(),
    lambda: nnlift.AugmentedDatabase(correction=nnlift.NNN(k=4)),
    lambda: nnlift.AugmentedDatabase(nnlift.NeighborhoodBlender(thresholds=(0.2,), k=4, progress=False)),
    lambda: nnlift.Fusion([nnlift.NNN(k=4), nnlift.CSLS(k=4)], index=nnlift.IVFIndex(n_lists=4, n_probe=1)),
]


@pytest.mark.parametrize("make", SAVED)
def test_save_load_round_trip(tmp_path, rng, make):
    # Every model tune can return, nested ones included, searches the same after a round trip.
    database, bank, queries = unit(rng, 80, 8), unit(rng, 40, 8), unit(rng, 60, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = fit(make(), database, bank)
        a = model.search(queries, 10)
        again = nnlift.load(model.save(tmp_path / "m"))
        b = again.search(queries, 10)
    assert type(again) is type(model) and repr(again) == repr(model)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_approximate_nnn_keeps_its_lists_and_checks(tmp_path, rng):
    database, bank, queries = unit(rng, 400, 8), unit(rng, 200, 8), unit(rng, 60, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        index = nnlift.Checked(nnlift.IVFIndex(n_lists=16, n_probe=1), on_low="warn")
        model = nnlift.NNN(k=4, index=index).fit(database, bank)
        before = model.search(queries, 10)
        again = nnlift.load(model.save(tmp_path / "m"))
        after = again.search(queries, 10)
    assert [c["on"] for c in model.checks_] == ["bank", "database"]
    assert again.checks_ == model.checks_  # a search of fewer rows than the sample, once measured, is not again
    # n_probe=1 over 16 lists misses neighbours, so fresh k-means lists would change rows: the saved lists do not.
    exact = nnlift.NNN(k=4).fit(database, bank).search(queries, 10)
    assert (before.ids != exact.ids).any(axis=1).sum() > 0
    np.testing.assert_array_equal(before.ids, after.ids)


def test_bad_inputs(rng):
    database, bank = unit(rng, 50, 8), unit(rng, 30, 8)
    with pytest.raises(ValueError, match="NNN.k=31 is larger than possible: only 30 bank rows"):
        nnlift.NNN(k=31).fit(database, bank)
    with pytest.raises(ValueError, match="needs a bank"):
        nnlift.NNN().fit(database)
    with pytest.raises(ValueError, match="bank is empty"):
        nnlift.NNN().fit(database, bank[:0])
    with pytest.raises(ValueError, match="bank must have 8 columns"):
        nnlift.NNN().fit(database, bank[:, :4])
    bad_bank = bank.copy()
    bad_bank[3, 2] = np.nan
    with pytest.raises(ValueError, match="bank has NaN"):
        nnlift.NNN().fit(database, bad_bank)
    with pytest.raises(ValueError, match="alpha must be finite"):
        nnlift.NNN(alpha=float("inf")).fit(database, bank)
    with pytest.raises(ValueError, match="beta must be finite"):
        nnlift.InvertedSoftmax(beta=float("nan")).fit(database, bank)
    with pytest.raises(ValueError, match="beta must be > 0"):
        nnlift.QBNorm(beta=0).fit(database, bank)
    with pytest.raises(ValueError, match="variant"):
        nnlift.LocalScaling(variant="x").fit(database)
    bad_queries = unit(rng, 3, 8)
    bad_queries[1, 1] = np.inf
    with pytest.raises(ValueError, match="queries has NaN or inf"):
        nnlift.NNN(k=4).fit(database, bank).search(bad_queries, 3)


def test_nnn_by_hand():
    database = np.array([[1.0, 0.0], [0.0, 1.0]])
    bank = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    model = nnlift.NNN(k=2, alpha=0.5).fit(database, bank)
    # x0: sims to bank 1, 0.8, 0 -> mean top2 0.9; x1: 0, 0.6, 1 -> 0.8
    np.testing.assert_allclose(model.bias_, [0.9, 0.8], atol=1e-6)
    q = np.array([[0.6, 0.8]])
    np.testing.assert_allclose(model.score(q, [0, 1]), [[0.6 - 0.45, 0.8 - 0.4]], atol=1e-6)
    folded = model.folded_database() @ model.fold_queries(q).T
    np.testing.assert_allclose(folded[:, 0], [0.15, 0.4], atol=1e-6)
    model.set_params(alpha=1.0)  # alpha applies at search time: no refit
    np.testing.assert_allclose(model.score(q, [0, 1]), [[-0.3, 0.0]], atol=1e-6)


def test_nnn_add_extends_without_refit(rng):
    database, bank = unit(rng, 40, 6), unit(rng, 30, 6)
    full = nnlift.NNN(k=5).fit(database, bank)
    grown = nnlift.NNN(k=5).fit(database[:30], bank).add(database[30:], bank)
    np.testing.assert_allclose(grown.bias_, full.bias_, atol=1e-6)
    with pytest.raises(ValueError, match="needs the bank"):
        grown.add(database[:2])


def test_nnn_remove_and_update_equal_a_fresh_fit(rng, tmp_path):
    database, bank, queries = unit(rng, 60, 6), unit(rng, 40, 6), unit(rng, 10, 6)
    model = nnlift.NNN(k=5).fit(database, bank)
    model.remove([3, 17, 59])
    kept = np.delete(database, [3, 17, 59], axis=0)
    fresh = nnlift.NNN(k=5).fit(kept, bank)
    np.testing.assert_array_equal(model.bias_, fresh.bias_)  # canonical scores: bit for bit
    np.testing.assert_array_equal(model.search(queries, 5).ids, fresh.search(queries, 5).ids)
    moved = unit(rng, 2, 6)
    model.update([10, 2], moved, bank)  # rows in any order, one vector each
    kept[[10, 2]] = moved
    fresh = nnlift.NNN(k=5).fit(kept, bank)
    np.testing.assert_array_equal(model.bias_, fresh.bias_)
    np.testing.assert_array_equal(model.search(queries, 5).ids, fresh.search(queries, 5).ids)
    model.save(tmp_path / "nnn")
    again = nnlift.load(tmp_path / "nnn")
    np.testing.assert_array_equal(again.search(queries, 5).ids, fresh.search(queries, 5).ids)
    with pytest.raises(ValueError, match="row numbers in \\[0, 57\\)"):
        model.remove([57])
    with pytest.raises(ValueError, match="repeats row 4"):
        model.update([4, 4], moved, bank)
    with pytest.raises(ValueError, match="needs the bank"):
        model.update([4], moved[:1])
    with pytest.raises(ValueError, match="2 rows but 1 vectors"):
        model.update([4, 5], moved[:1], bank)
    assert model.n_database == 57


def test_approximate_nnn_remove_keeps_its_index_and_saves(rng, tmp_path):
    database, bank = unit(rng, 400, 8), unit(rng, 200, 8)
    index = nnlift.Checked(nnlift.IVFIndex(n_lists=8, n_probe=8, progress=False))
    model = nnlift.NNN(k=5, index=index).fit(database, bank)
    model.search(database[:5], 3)
    model.remove([0, 1, 2])
    found = model.search(database[:5], 3).ids
    assert found[3, 0] == 0 and found[4, 0] == 1  # rows moved up: row 3 is now 0
    assert not (found < 0).any()
    model.save(tmp_path / "approx")
    again = nnlift.load(tmp_path / "approx")
    np.testing.assert_array_equal(again.search(database[:5], 3).ids, found)


def test_empirical_mutual_proximity_counts_the_items_farther_from_both(rng):
    database, queries = unit(rng, 70, 5), unit(rng, 4, 5)
    model = nnlift.MutualProximity(k=5, method="empiric").fit(database)
    found = model.search(queries, 6)
    distance = lambda a, b: np.sqrt(np.maximum(0.0, 2 - 2 * a.astype(np.float64) @ b.astype(np.float64).T))
    between_items = distance(database, database)
    for row, query in enumerate(queries):
        from_query = distance(query[None], database)[0]
        expected = np.array(
            [np.mean((from_query > from_query[x]) & (between_items[x] > from_query[x])) for x in range(70)]
        )
        order = np.lexsort((np.arange(70), -expected))[:6]
        np.testing.assert_array_equal(found.ids[row], order)
        np.testing.assert_allclose(found.scores[row], expected[order], rtol=1e-6)
    with pytest.raises(ValueError, match="method must be 'normal' or 'empiric'"):
        nnlift.MutualProximity(method="exact").fit(database)


def test_csls_by_hand():
    database = np.array([[1.0, 0.0], [0.0, 1.0]])
    bank = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    model = nnlift.CSLS(k=1, query_term=True).fit(database, bank)
    q = np.array([[0.6, 0.8]])
    # r_X = [1, 1] (each item has an identical bank query); r_Q(q) = 0.8
    np.testing.assert_allclose(model.score(q, [0, 1]), [[2 * 0.6 - 1 - 0.8, 2 * 0.8 - 1 - 0.8]], atol=1e-6)
    no_query_term = nnlift.CSLS(k=1, query_term=False).fit(database, bank)
    np.testing.assert_allclose(no_query_term.score(q, [0, 1]), [[0.2, 0.6]], atol=1e-6)


def test_inverted_softmax_and_dbnorm_by_hand(rng):
    database, bank, gallery = unit(rng, 7, 3), unit(rng, 5, 3), unit(rng, 4, 3)
    beta = 20.0
    model = nnlift.InvertedSoftmax(beta=beta).fit(database, bank)
    expected = scipy_lse(beta * (database @ bank.T).astype(np.float64), axis=1) / beta
    np.testing.assert_allclose(model.bias_, expected, atol=1e-5)
    q = unit(rng, 2, 3)
    np.testing.assert_allclose(model.score(q, np.arange(7)), q @ database.T - expected, atol=1e-5)
    dual = nnlift.DBNorm(beta=beta).fit(database, bank, gallery_bank=gallery)
    both = np.concatenate([database @ bank.T, database @ gallery.T], axis=1).astype(np.float64)
    np.testing.assert_allclose(dual.bias_, scipy_lse(beta * both, axis=1) / beta, atol=1e-5)


def test_qbnorm_activation_by_hand():
    database = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    bank = np.array([[0.9, 0.1], [0.95, -0.05]])  # both banks' top-1 is item 0
    model = nnlift.QBNorm(beta=5.0, k=1).fit(database, bank)
    assert model.activated_.tolist() == [True, False, False]
    q_active, q_raw = np.array([[1.0, 0.05]]), np.array([[0.05, 1.0]])
    assert model.is_activated(np.vstack([q_active, q_raw])).tolist() == [True, False]
    q_active_n = q_active / np.linalg.norm(q_active)
    q_raw_n = q_raw / np.linalg.norm(q_raw)
    np.testing.assert_allclose(model.score(q_raw, [0, 1, 2]), q_raw_n @ database.T, atol=1e-6)
    np.testing.assert_allclose(model.score(q_active, [0, 1, 2]), q_active_n @ database.T - model.bias_, atol=1e-6)


def test_local_scaling_nicdm_mutual_proximity_by_hand():
    angles = np.array([0.0, 0.5, 0.9, 2.0])
    database = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    q = np.array([[np.cos(0.6), np.sin(0.6)]])
    chord = lambda a, b: 2 * np.sin(np.abs(a - b) / 2)  # Euclidean distance on the unit circle
    d = chord(angles, 0.6)
    # neighbour distances of each item (itself excluded), sorted:
    # x0: .5,.9,2  x1: .4,.5,1.5  x2: .4,.9,1.1  x3: 1.1,1.5,2
    pair = chord(angles[:, None], angles[None, :])
    np.fill_diagonal(pair, np.inf)
    nearest = np.sort(pair, axis=1)
    query_nearest = np.sort(d)
    ls = nnlift.LocalScaling(k=2).fit(database)
    sigma, sigma_q = nearest[:, 1], query_nearest[1]
    np.testing.assert_allclose(ls.score(q, [0, 1, 2, 3])[0], np.exp(-(d**2) / (sigma * sigma_q)), atol=1e-5)
    nicdm = nnlift.LocalScaling(k=2, variant="nicdm").fit(database)
    mu, mu_q = nearest[:, :2].mean(axis=1), query_nearest[:2].mean()
    np.testing.assert_allclose(nicdm.score(q, [0, 1, 2, 3])[0], -d / np.sqrt(mu * mu_q), atol=1e-5)
    mp = nnlift.MutualProximity(k=3).fit(database)
    mu, std = nearest[:, :3].mean(axis=1), nearest[:, :3].std(axis=1)
    mu_q, std_q = query_nearest[:3].mean(), query_nearest[:3].std()
    expected = norm.sf(d, mu, std) * norm.sf(d, mu_q, std_q)
    np.testing.assert_allclose(mp.score(q, [0, 1, 2, 3])[0], expected, atol=1e-5)
    with pytest.raises(ValueError, match="cosine.* only"):
        nnlift.MutualProximity(metric="ip").fit(database)


def test_corrections_reduce_hubness_on_hubby_data(rng):
    # a hub: one item close to the centre of all queries
    database = unit(rng, 400, 16)
    database[0] = np.ones(16) / 4.0
    bank = unit(rng, 400, 16) + 0.3 * database[0]
    queries = unit(rng, 300, 16) + 0.3 * database[0]
    raw = nnlift.Baseline().fit(database).search(queries, 5)
    corrected = nnlift.NNN(k=8, alpha=1.0).fit(database, bank).search(queries, 5)
    assert (raw.ids == 0).sum() > 3 * (corrected.ids == 0).sum()


def test_fitted_model_does_not_alias_the_callers_array(rng):
    database, bank, queries = unit(rng, 100, 8), unit(rng, 50, 8), unit(rng, 3, 8)
    model = nnlift.NNN(k=4).fit(database, bank)
    before = model.search(queries, 5)
    database[:] = 0.5  # the caller reuses its buffer
    after = model.search(queries, 5)
    np.testing.assert_array_equal(before.ids, after.ids)
