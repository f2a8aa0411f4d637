"""Index upkeep: ``remove(ids)`` and ``update(ids, vectors)`` on every index, kept through save and load."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nnlift
from nnlift import Checked, ExactIndex, InputError, IVFIndex, UnknownIdError

from ..conftest import unit

pytest.importorskip("faiss")
pytest.importorskip("hnswlib")

BACKENDS = {
    "exact": lambda: ExactIndex(progress=False),
    "ivf": lambda: IVFIndex(n_lists=6, n_probe=6, progress=False),
    "checked-ivf": lambda: Checked(IVFIndex(n_lists=6, n_probe=2, progress=False)),
    "hnswlib": lambda: nnlift.HnswIndex(M=8, ef_search=200),
    "faiss-flat": lambda: nnlift.FaissIndex("Flat"),
    "faiss-sq8": lambda: nnlift.FaissIndex("SQ8"),
    "faiss-ivf": lambda: nnlift.FaissIndex("IVF6,Flat", nprobe=6),
    "faiss-hnsw": lambda: nnlift.FaissIndex("HNSW16", ef_search=200),
}


def every_id(index, queries):
    """The ids a search over the whole index returns (each query asks for every item)."""
    found = index.search(queries, len(index))
    return found.ids if found.keys is None else found.keys


@pytest.mark.parametrize("name", list(BACKENDS))
def test_removed_items_never_come_back_and_survive_save_and_load(tmp_path, rng, name):
    vectors = unit(rng, 300, 16)
    index = BACKENDS[name]().add(vectors)
    removed = [0, 7, 8, 150, 299]
    index.remove(removed)
    assert len(index) == 295
    kept = sorted(set(range(300)) - set(removed))
    assert index.ids.tolist() == kept  # the other items keep their ids
    # A removed item's own vector finds the nearest remaining item, never itself.
    found = index.search(vectors[removed], 3)
    assert not set(found.ids.ravel().tolist()) & set(removed)
    listing = every_id(index, vectors[:4])
    assert not set(listing.ravel().tolist()) & set(removed)
    assert set(listing[0].tolist()) == set(kept)
    # Others are found at their ids, with their vectors.
    assert index.search(vectors[[9, 200]], 1).ids[:, 0].tolist() == [9, 200]
    np.testing.assert_allclose(index.get([9, 298]), vectors[[9, 298]], atol=2e-2 if "sq8" in name else 1e-6)
    with pytest.raises(UnknownIdError, match="7"):
        index.get([7])
    index.save(tmp_path / "ix")
    again = nnlift.load(tmp_path / "ix")
    assert again.ids.tolist() == kept
    before, after = index.search(vectors[:20], 5), again.search(vectors[:20], 5)
    np.testing.assert_array_equal(after.ids, before.ids)
    np.testing.assert_array_equal(after.scores, before.scores)
    # Vectors added without ids continue the numbering, also after loading: no id is given twice.
    again.add(vectors[:2])
    assert again.ids[-2:].tolist() == [300, 301]
    assert again.search(vectors[[0]], 1).ids[0, 0] == 300


@pytest.mark.parametrize("name", list(BACKENDS))
def test_update_replaces_vectors_and_keeps_ids(tmp_path, rng, name):
    vectors = unit(rng, 200, 16)
    index = BACKENDS[name]().add(vectors, ids=[f"doc-{i}" for i in range(200)])
    fresh = unit(rng, 2, 16)
    index.update(["doc-5", "doc-40"], fresh)
    assert len(index) == 200
    found = index.search(fresh, 1)
    assert found.keys[:, 0].tolist() == ["doc-5", "doc-40"]
    if "sq8" not in name:  # SQ8 clips new values to the ranges it was trained on
        np.testing.assert_allclose(index.get(["doc-40", "doc-5"]), fresh[::-1], atol=1e-6)
    # The old vector of doc-5 no longer finds it.
    assert index.search(vectors[[5]], 1).keys[0, 0] != "doc-5"
    index.save(tmp_path / "ix")
    again = nnlift.load(tmp_path / "ix")
    assert again.search(fresh, 1).keys[:, 0].tolist() == ["doc-5", "doc-40"]
    assert sorted(again.ids.tolist()) == sorted(f"doc-{i}" for i in range(200))


@pytest.mark.parametrize("name", ["exact", "hnswlib", "faiss-ivf"])
def test_bad_removals_change_nothing(rng, name):
    vectors = unit(rng, 50, 8)
    index = BACKENDS[name]().add(vectors, ids=list(range(100, 150)))
    before = index.search(vectors[:5], 4)
    with pytest.raises(UnknownIdError, match="7"):
        index.remove([100, 7])
    with pytest.raises(InputError, match="repeats id"):
        index.remove([101, 101])
    with pytest.raises(InputError, match="2 ids but 1 vectors"):
        index.update([101, 102], vectors[:1])
    with pytest.raises(InputError, match="3 dimensions|width 8|8 columns"):
        index.update([101], np.ones((1, 3)))
    assert len(index) == 50
    after = index.search(vectors[:5], 4)
    np.testing.assert_array_equal(after.ids, before.ids)
    assert index.remove([]).ids.tolist() == list(range(100, 150))


def test_removing_everything_leaves_an_empty_index_that_grows_again(rng, tmp_path):
    vectors = unit(rng, 5, 4)
    index = ExactIndex().add(vectors)
    index.remove(range(5))
    assert len(index) == 0
    with pytest.raises(InputError, match="empty"):
        index.search(vectors, 1)
    index.save(tmp_path / "empty")
    again = nnlift.load(tmp_path / "empty").add(vectors[:1])
    assert again.ids.tolist() == [5]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["remove", "update", "add"]), st.lists(st.integers(0, 59), max_size=6)),
        min_size=1,
        max_size=6,
    ),
    backend=st.sampled_from(["exact", "hnswlib", "faiss-ivf", "faiss-hnsw"]),
)
def test_upkeep_matches_a_rebuilt_index(steps, backend):
    """Any sequence of removes, updates and adds gives what an index built afresh from the result gives."""
    rng = np.random.default_rng(len(steps))
    index = BACKENDS[backend]().add(unit(rng, 40, 8), ids=list(range(40)))
    truth = dict(zip(range(40), index.get(range(40))))
    for kind, picks in steps:
        live = sorted(truth)
        chosen = sorted({live[p % len(live)] for p in picks}) if live else []
        if kind == "remove" and chosen and len(chosen) < len(live):
            index.remove(chosen)
            for key in chosen:
                del truth[key]
        elif kind == "update" and chosen:
            rows = unit(rng, len(chosen), 8)
            index.update(chosen, rows)
            truth.update(zip(chosen, rows))
        elif kind == "add":
            rows = unit(rng, len(picks) + 1, 8)
            first = index.ids.max() + 1 if len(index.ids) else 0
            index.add(rows, ids=list(range(first, first + len(rows))))
            truth.update(zip(range(first, first + len(rows)), rows))
    keys = sorted(truth)
    rebuilt = ExactIndex().add(np.stack([truth[key] for key in keys]), ids=keys)
    queries = unit(rng, 8, 8)
    assert sorted(index.ids.tolist()) == keys
    found, expected = index.search(queries, 3), rebuilt.search(queries, 3)
    assert not set(found.ids.ravel().tolist()) - set(keys)  # never a removed id
    np.testing.assert_allclose(found.scores, expected.scores, atol=1e-5)  # small graphs search exhaustively


def test_qdrant_remove_update_and_positions(rng):
    pytest.importorskip("qdrant_client")
    vectors = unit(rng, 40, 8)
    index = nnlift.QdrantIndex("upkeep", progress=False).add(vectors)
    index.remove([3, 5])
    assert len(index) == 38 and 3 not in index.ids.tolist()
    assert not {3, 5} & set(index.search(vectors, 38).ids.ravel().tolist())
    index.update([4], vectors[[7]])
    assert sorted(index.search(vectors[[7]], 2).ids[0].tolist()) == [4, 7]
    with pytest.raises(InputError, match="already in collection"):
        index.add(vectors[:1], ids=[7])  # add never overwrites a point
    index.add(vectors[:1])
    assert index.ids[-1] == 40  # new points continue the numbering
    # Methods read positions: the rank among live points, matching stored_vectors().
    rows = index.stored_vectors()
    found = index.search_arrays(rows[[10]], 1)
    assert found.ids[0, 0] == 10
    with pytest.raises(UnknownIdError, match="3"):
        index.remove([3])


def test_recommender_remove_and_update_survive_save_and_load(tmp_path, rng):
    vectors = unit(rng, 30, 8)
    names = [f"item-{i}" for i in range(30)]
    recommender = nnlift.Recommender().fit(vectors, names)
    neighbour = recommender.similar("item-0", k=1).labels()[0]
    recommender.remove([neighbour])
    assert neighbour not in recommender.similar("item-0", k=29).labels()
    recommender.update(["item-1"], vectors[[0]] * 2)
    assert recommender.similar("item-0", k=1).labels() == ["item-1"]
    recommender.save(tmp_path / "rec")
    again = nnlift.load(tmp_path / "rec")
    assert len(again) == 29 and again.similar("item-0", k=1).labels() == ["item-1"]
    assert neighbour not in again.similar("item-0", k=28).labels()


@pytest.mark.parametrize("backend", ["exact", "ivf", "hnswlib", "faiss-ivf", "faiss-hnsw"])
def test_update_keeps_each_vector_with_its_own_id_whatever_the_positions(backend):
    # Hypothesis found it: after update([0]) id 0 sits last, so update([0, 1]) met its positions in the other
    # order and stored each new vector under the other id.
    rng = np.random.default_rng(3)
    index = BACKENDS[backend]().add(unit(rng, 40, 8), ids=list(range(40)))
    index.update([0], unit(rng, 1, 8))
    rows = unit(rng, 3, 8)
    index.update([0, 1, 20], rows)
    np.testing.assert_allclose(index.get([0, 1, 20]), rows, atol=1e-6)
    found = index.search(rows, 1)
    assert found.ids[:, 0].tolist() == [0, 1, 20]
    index.update(np.array([20, 0]), rows[[0, 2]])  # an array of ids, in another order again
    np.testing.assert_allclose(index.get([20, 0]), rows[[0, 2]], atol=1e-6)
