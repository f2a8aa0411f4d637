"""The nmslib recipe (seed 002) against nnlift's Recommender, with nmslib itself."""

import numpy as np
import pytest

import nnlift

nmslib = pytest.importorskip("nmslib")


@pytest.fixture(scope="module")
def products():
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((30, 32))
    vectors = (centres[rng.integers(0, 30, 3000)] + 0.9 * rng.standard_normal((3000, 32))).astype(np.float32)
    return vectors, [f"V_{i:06d}" for i in range(len(vectors))]


def recipe(vectors):
    index = nmslib.init(method="hnsw", space="cosinesimil")
    index.addDataPointBatch(vectors)
    index.createIndex({"M": 30, "efConstruction": 100}, print_progress=False)
    return index


def test_the_recommender_answers_what_the_recipe_answers_without_the_item_itself(products):
    vectors, ids = products
    graph = recipe(vectors)
    recommender = nnlift.Recommender().fit(vectors, ids=ids)
    rows = np.random.default_rng(0).choice(len(vectors), 100, replace=False)
    overlap, distance_error = [], []
    for row in rows:
        positions, distances = graph.knnQuery(vectors[row], k=11)
        theirs = [ids[p] for p in positions if p != row][:10]
        found = recommender.similar(ids[row], k=10)
        assert ids[row] not in found.labels(0)
        overlap.append(len(set(theirs) & set(found.labels(0))) / 10)
        by_id = dict(zip((ids[p] for p in positions), distances))
        distance_error += [abs((1 - s) - by_id[i]) for i, s in found.pairs(0) if i in by_id]
    assert np.mean(overlap) >= 0.99  # nmslib's graph is approximate; nnlift is exact at this size
    assert max(distance_error) < 1e-5  # the recipe's cosinesimil distance is 1 - nnlift's score


def test_removed_items_leave_the_recommender_but_not_the_recipe(products):
    vectors, ids = products
    recommender = nnlift.Recommender().fit(vectors, ids=ids)
    neighbour = recommender.similar(ids[0], k=1).labels(0)[0]
    recommender.remove([neighbour])
    assert neighbour not in recommender.similar(ids[0], k=50).labels(0)
    positions, _ = recipe(vectors).knnQuery(vectors[0], k=2)  # the recipe cannot delete: it must rebuild
    assert ids[positions[1]] == neighbour
