import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlift
from nnlift import NeighborhoodBlender, blend_neighborhood, iterative_neighborhood_blending, neighborhood_search
from nnlift.blend import default_lists

from .conftest import unit


def clustered(seed, n_clusters=200, per_cluster=10, d=32, spread=0.25):
    rng = np.random.default_rng(seed)
    centres = unit(rng, n_clusters, d)
    x = np.repeat(centres, per_cluster, axis=0) + spread * rng.standard_normal((n_clusters * per_cluster, d)) / np.sqrt(
        d
    )
    return x.astype(np.float32)


def tie_rows(emb, k, tol=1e-6):
    """Rows whose k-th and (k+1)-th similarities tie within tol: the reference cuts them arbitrarily."""
    unit_emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    sims = np.sort(unit_emb @ unit_emb.T, axis=1)[:, ::-1]
    return np.flatnonzero(np.abs(sims[:, k - 1] - sims[:, k]) <= tol)


def test_parity_with_neighborblend():
    reference = pytest.importorskip("NeighborBlend")
    emb = clustered(0)
    assert len(tie_rows(emb, 10)) == 0  # no tie at the k cut in this seeded set, so every row must match
    ref_out, ref_ids, ref_sims = reference.iterative_neighborhood_blending(emb.copy(), [0.9, 0.8], 10)
    out, ids, sims = iterative_neighborhood_blending(emb, [0.9, 0.8], 10)
    kept = np.array([len(i) for i in ids])
    assert kept.mean() > 3  # the thresholds keep real neighbours
    np.testing.assert_allclose(out, ref_out, atol=1e-5)
    for a, b, sa, sb in zip(ids, ref_ids, sims, ref_sims):
        assert set(a.tolist()) == set(b.tolist())
        np.testing.assert_allclose(np.sort(sa), np.sort(sb), atol=1e-5)


def test_reference_defects_are_not_copied():
    reference = pytest.importorskip("NeighborBlend")
    emb = clustered(1, n_clusters=20)
    mine = emb.copy()
    reference.neighborhood_search(mine, 0.9, 5)
    assert not np.allclose(mine, emb)  # the reference normalises the caller's array in place
    before = emb.copy()
    neighborhood_search(emb, 0.9, 5)
    np.testing.assert_array_equal(emb, before)
    with pytest.raises(TypeError, match="float"):  # the reference cannot take float64
        reference.neighborhood_search(emb.astype(np.float64), 0.9, 5)
    ids, _ = neighborhood_search(emb.astype(np.float64)[:, ::-1], 0.9, 5)  # float64, non-contiguous: fine
    assert len(ids) == len(emb)


def test_duplicates_tie_rule_and_padding_never_used():
    emb = np.tile(np.array([[1.0, 0.0, 0.0]]), (6, 1))
    emb = np.vstack([emb, [[0.0, 1.0, 0.0]]])
    ids, sims = neighborhood_search(emb, 0.5, 3)
    # six identical rows: row 5 keeps itself plus the two lowest-id duplicates (ties go to the lower id)
    assert set(ids[5].tolist()) == {0, 1, 5}
    assert set(ids[0].tolist()) == {0, 1, 2}
    assert ids[6].tolist() == [6]  # the lone row keeps only itself, never a -1 pad
    assert all((i >= 0).all() for i in ids)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), thresh=st.floats(-0.5, 0.99), k=st.integers(1, 12))
def test_properties_self_kept_unit_rows_inputs_unchanged(seed, thresh, k):
    rng = np.random.default_rng(seed)
    emb = rng.standard_normal((40, 6))
    emb.flags.writeable = False
    ids, sims = neighborhood_search(emb, thresh, k)
    assert all(i in row.tolist() for i, row in enumerate(ids))
    assert all((np.diff(s) <= 1e-6).all() and (s[1:] > thresh).all() for s in sims)
    out = blend_neighborhood(emb, ids, sims)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), thresh=st.floats(-0.5, 0.99), k=st.integers(1, 12), dups=st.integers(0, 5))
def test_graph_rows_are_in_the_canonical_order(seed, thresh, k, dups):
    """Self first unless a duplicate with a lower id ties it; descending score, ties by lower id, padding last."""
    from nnlift.blend import neighbor_graph
    from nnlift.neighbors import sort_neighbors

    emb = nnlift._check.normalize_rows(np.random.default_rng(seed).standard_normal((40, 6)).astype(np.float32), "e")
    emb[35 : 35 + dups] = emb[0]  # exact duplicates, after the row they copy
    for index in (None, nnlift.IVFIndex(n_lists=4)):
        graph, _ = neighbor_graph(emb, k, thresh, index=index, progress=False)
        canonical = sort_neighbors(graph.ids, graph.scores)
        np.testing.assert_array_equal(graph.ids, canonical.ids)
        np.testing.assert_array_equal(graph.scores, canonical.scores)


@pytest.mark.parametrize("wm", [None, 8192, 100_000])
def test_exact_symmetric_equals_plain_search_and_working_memory(wm):
    emb = clustered(2, n_clusters=50)
    unit_emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    blender = NeighborhoodBlender(thresholds=(0.85,), k=6, index=nnlift.ExactIndex(working_memory=wm)).fit(emb)
    plain = nnlift.topk(unit_emb, unit_emb.copy(), 6, threshold=0.85)
    for row in range(len(emb)):
        mine = set(blender.neighbors_.ids[row][blender.neighbors_.ids[row] >= 0].tolist())
        assert mine == set(plain.ids[row][plain.ids[row] >= 0].tolist())


def test_approximate_path_recall_and_close_output():
    emb = clustered(3, n_clusters=100, per_cluster=20)
    exact = NeighborhoodBlender(thresholds=(0.9, 0.8), k=10).fit_transform(emb)
    index = nnlift.Checked(nnlift.IVFIndex(n_lists=default_lists(len(emb)), n_probe=8), sample=1000)
    blender = NeighborhoodBlender(thresholds=(0.9, 0.8), k=10, index=index)
    approx = blender.fit_transform(emb)
    assert [c["pass"] for c in blender.checks_] == [0, 1] and min(c["recall"] for c in blender.checks_) >= 0.99
    assert all(c["rows"] == 1000 and c["standard_error"] < 0.01 and c["action"] == "none" for c in blender.checks_)
    assert np.mean(np.abs(approx - exact).max(axis=1) < 1e-4) >= 0.99
    # the sampled estimate agrees with the recall over every row, within a few standard errors
    found, _ = nnlift.blend.neighbor_graph(blender.stages_[0], 10, 0.9, index=index.index, progress=False)
    truth, _ = nnlift.blend.neighbor_graph(blender.stages_[0], 10, 0.9, progress=False)
    rows = np.arange(len(emb))[:, None]  # the sampled recall counts edges to other rows only
    everywhere = nnlift.neighbor_recall(
        *(nnlift.Neighbors(np.where(g.ids == rows, -1, g.ids), g.scores) for g in (found, truth))
    )
    first = blender.checks_[0]
    assert abs(first["recall"] - everywhere) <= max(4 * first["standard_error"], 2e-3)
    dba = nnlift.DatabaseAugmentation(n=5, index=nnlift.Checked(nnlift.IVFIndex(), sample=100), progress=False).fit(emb)
    assert len(dba.checks_) == 1 and 0.99 <= dba.checks_[0]["recall"] <= 1.0
    assert nnlift.DatabaseAugmentation(n=5, progress=False).fit(emb).checks_ == []


def test_approximate_blending_lists_default_to_twice_root_n(caplog):
    assert default_lists(1000) == 63 and default_lists(50_000) == 447 and default_lists(1) == 1
    emb = clustered(4, n_clusters=100, per_cluster=10)
    default = NeighborhoodBlender(thresholds=(0.9,), k=5, approximate=True, progress=False)
    with caplog.at_level(logging.INFO, logger="nnlift"):
        out = default.fit_transform(emb)
    assert "IVF: 63 lists" in caplog.text
    explicit = NeighborhoodBlender(thresholds=(0.9,), k=5, index=nnlift.Checked(nnlift.IVFIndex(n_lists=63)), progress=False)
    np.testing.assert_array_equal(out, explicit.fit_transform(emb))
    assert explicit.checks_ == default.checks_ and len(default.checks_) == 1


def test_graph_and_transform_of_new_rows():
    emb = clustered(4, n_clusters=30)
    blender = NeighborhoodBlender(thresholds=(0.9, 0.8), k=5)
    out = blender.fit_transform(emb)
    assert blender.graph_.shape == (len(emb), len(emb))
    # a fitted row passed again to transform gets (almost) its own blended vector:
    # its neighbours among the fitted rows include itself (weight ~1 twice), so compare direction only
    again = blender.transform(emb[:20])
    assert (np.einsum("ij,ij->i", again, out[:20]) > 0.99).all()


def test_database_augmentation_and_alpha_qe_by_hand():
    database = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    dba = nnlift.DatabaseAugmentation(n=1, alpha=1.0).fit_transform(database)
    # row 0: itself (1) + row 1 (0.8): [1 + 0.64, 0.48] normalised
    expected0 = np.array([1.64, 0.48]) / np.linalg.norm([1.64, 0.48])
    np.testing.assert_allclose(dba[0], expected0, atol=1e-6)
    index = nnlift.ExactIndex().add(database, ids=["a", "b", "c"])
    expanded = nnlift.alpha_query_expansion([[0.0, 1.0]], index, n=1, alpha=3.0)
    np.testing.assert_allclose(expanded[0], [0.0, 1.0], atol=1e-6)  # q + 1^3 · c, renormalised
    negative = nnlift.alpha_query_expansion([[-1.0, 0.0]], nnlift.ExactIndex().add(database), n=1)
    np.testing.assert_allclose(negative[0], [-1.0, 0.0], atol=1e-6)  # negative similarity gets weight 0


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda e: neighborhood_search(e, 1.0, 3), ValueError, "must be < 1"),
        (lambda e: neighborhood_search(e, float("nan"), 3), ValueError, "finite"),
        (lambda e: neighborhood_search(e, 0.5, 0), ValueError, "k_neighbors must be >= 1"),
        (lambda e: neighborhood_search(e, 0.5, 99), ValueError, "larger than possible"),
        (lambda e: iterative_neighborhood_blending(e, [], 3), ValueError, "thresholds is empty"),
        (lambda e: iterative_neighborhood_blending(e, [0.9, 1.2], 3), ValueError, r"thresholds\[1\]=1.2 must be < 1"),
        (lambda e: iterative_neighborhood_blending(e, 0.9, 3), TypeError, "sequence"),
        (lambda e: neighborhood_search(np.where(np.arange(4) == 2, np.nan, e), 0.5, 3), ValueError, "NaN"),
        (lambda e: blend_neighborhood(e, [np.array([-1])] * 10, [np.array([1.0])] * 10), ValueError, "padding"),
        (lambda e: blend_neighborhood(e, [np.array([0])] * 3, [np.array([1.0])] * 3), ValueError, "one entry per row"),
        (lambda e: NeighborhoodBlender(k=0).fit(e), ValueError, "k must be >= 1"),
        (lambda e: NeighborhoodBlender(index=nnlift.Checked(nnlift.IVFIndex(), sample=0)).fit(e), ValueError, "sample"),
        (lambda e: NeighborhoodBlender(approximate=True, index=nnlift.IVFIndex()).fit(e), ValueError, "not both"),
        (lambda e: NeighborhoodBlender(index="ivf").fit(e), TypeError, "index must be an nnlift index"),
        (lambda e: NeighborhoodBlender().transform(e), nnlift.NotFittedError, "not fitted"),
    ],
)
def test_bad_input(call, error, match):
    emb = np.random.default_rng(0).standard_normal((10, 4))
    with pytest.raises(error, match=match):
        call(emb)


def test_save_load_round_trip(tmp_path):
    emb = clustered(5, n_clusters=20)
    blender = NeighborhoodBlender(thresholds=(0.9,), k=4).fit(emb)
    again = nnlift.load(blender.save(tmp_path / "b"))
    np.testing.assert_array_equal(again.transform(emb[:5]), blender.transform(emb[:5]))
    index = nnlift.Checked(nnlift.IVFIndex(n_probe=2), sample=50, on_low="warn")
    approx = NeighborhoodBlender(thresholds=(0.9,), k=4, index=index).fit(emb)
    again = nnlift.load(approx.save(tmp_path / "a"))
    assert again.checks_ == approx.checks_ and len(again.checks_) == 1
    assert again.index.sample == 50 and again.index.on_low == "warn" and type(again.index.index) is nnlift.IVFIndex
    dba = nnlift.DatabaseAugmentation(n=3, index=nnlift.Checked(nnlift.IVFIndex()), progress=False).fit(emb)
    assert nnlift.load(dba.save(tmp_path / "d")).checks_ == dba.checks_


def test_low_recall_falls_back_to_exact_warns_or_raises(caplog):
    rng = np.random.default_rng(7)
    emb = rng.standard_normal((3000, 16)).astype(np.float32)  # no structure: one probe misses neighbours
    exact = NeighborhoodBlender(thresholds=(0.5,), k=6).fit_transform(emb)

    def blender(on_low):
        return NeighborhoodBlender(thresholds=(0.5,), k=6, index=nnlift.Checked(nnlift.IVFIndex(n_probe=1), on_low=on_low))

    fallback = blender("exact")
    with caplog.at_level("WARNING", logger="nnlift"):
        out = fallback.fit_transform(emb)
    assert "answering by exact search" in caplog.text
    assert fallback.checks_[0]["action"] == "exact" and fallback.checks_[0]["recall"] < 0.99
    np.testing.assert_allclose(out, exact, atol=1e-6)
    warned = blender("warn")
    with pytest.warns(UserWarning, match="recall"):
        approximate = warned.fit_transform(emb)
    assert warned.checks_[0]["action"] == "warn" and np.abs(approximate - exact).max() > 1e-3
    with pytest.raises(nnlift.LowRecallError, match="self_join: recall"):
        blender("raise").fit_transform(emb)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30),
    width=st.integers(1, 6),
    keep=st.floats(1.0, 7.0),
    seed=st.integers(0, 2**16),
)
def test_auto_threshold_keeps_the_target_number_of_pairs(n, width, keep, seed):
    from nnlift.blend import auto_threshold
    from nnlift.blend.thresholds import kept_per_row

    values = np.random.default_rng(seed).permutation(n * width).reshape(n, width) / (n * width + 1.0)
    others = -np.sort(-values, axis=1)  # distinct similarities, each row descending
    threshold = auto_threshold(others, keep)
    assert threshold < 1.0
    wanted = min(int(round((keep - 1.0) * n)), n * width)
    assert (kept_per_row(others, threshold) - 1).sum() == wanted


def test_auto_passes_keep_what_they_promise_and_transform_reuses_them(rng):
    from nnlift.blend import neighbor_profile

    emb = rng.normal(size=(400, 12))
    blender = nnlift.NeighborhoodBlender(thresholds=("auto", "auto"), k=8, keep=4, progress=False)
    blender.fit_transform(emb)
    kept = (blender.neighbors_.ids >= 0).sum(axis=1)
    assert kept.mean() == pytest.approx(4.0, abs=0.01)
    assert blender.thresholds_[1] > blender.thresholds_[0]  # blended rows are closer: the second pass needs more
    fixed = nnlift.NeighborhoodBlender(thresholds=tuple(blender.thresholds_), k=8, progress=False)
    np.testing.assert_array_equal(fixed.fit_transform(emb), blender.fit_transform(emb))
    np.testing.assert_array_equal(fixed.transform(emb[:7]), blender.transform(emb[:7]))
    profile = neighbor_profile(emb, 8, (blender.thresholds_[0],))
    assert profile.kept[blender.thresholds_[0]] == pytest.approx(4.0, abs=0.01)
    planned = neighbor_profile(emb, 8, (0.5,), keep=4)
    assert planned.auto == (4.0, blender.thresholds_[0])  # what --inspect announces is what the first pass uses
    assert any(line.endswith("<- auto") and line.split()[0] == f"{blender.thresholds_[0]:.3f}" for line in planned.lines())
    with pytest.raises(ValueError, match="keep"):
        nnlift.NeighborhoodBlender(thresholds=("auto",), k=8, keep=9).fit_transform(emb)
    with pytest.raises(ValueError, match="a number below 1 or 'auto'; got 'automatic'"):
        nnlift.NeighborhoodBlender(thresholds=("automatic",), k=8).fit_transform(emb)
