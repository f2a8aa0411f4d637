import numpy as np
import pytest

import nnlift
from nnlift import Recommender
from nnlift.algebra import analogy, centroid, direction, masked_query, walk
from nnlift.datasets import load_digits_split

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    split = load_digits_split(seed=0)
    x = np.vstack([split.x_train, split.x_val, split.x_test])
    y = np.concatenate([split.y_train, split.y_val, split.y_test])
    ids = np.array([f"V_{i:04d}H{label}" for i, label in enumerate(y)])
    return x, y, ids


def test_similar_returns_same_class_items(digits):
    x, y, ids = digits
    rec = Recommender().fit(x, ids)
    label_of = dict(zip(ids.tolist(), y.tolist()))
    rng = np.random.default_rng(0)
    precisions = []
    for item in rng.choice(ids, 200, replace=False):
        found = rec.similar(item, k=10).labels()
        assert item not in found and len(found) == 10
        precisions.append(np.mean([label_of[i] == label_of[item] for i in found]))
    assert np.mean(precisions) > 0.9  # measured precision@10 on digits pixels


def test_walk_towards_another_class_raises_its_share(digits):
    x, y, ids = digits
    rec = Recommender().fit(x, ids)
    rng = np.random.default_rng(1)
    scales = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    curves = []
    for _ in range(60):
        a, b = rng.choice(10, 2, replace=False)
        start = rng.choice(ids[y == a])
        along = centroid(ids[y == b].tolist(), rec) - rec.vectors([start])[0]
        steps = walk(start, along, rec, scales=scales, k=10)
        label = {i: l for i, l in zip(ids.tolist(), y.tolist())}
        curves.append([np.mean([label[i] == b for i in s.ids]) for s in steps])
        assert steps[0].new == steps[0].ids and all(set(s.new) <= set(s.ids) for s in steps)
    mean_curve = np.mean(curves, axis=0)
    assert np.all(np.diff(mean_curve) >= -0.02), mean_curve  # non-decreasing in expectation
    assert mean_curve[-1] > 0.8 > 0.1 > mean_curve[0]


def test_string_ids_save_load_and_errors(tmp_path, digits):
    x, y, ids = digits
    rec = Recommender.from_mapping({"V_126H754": x[0], **{str(i): v for i, v in zip(ids[1:200], x[1:200])}})
    assert rec.similar("V_126H754", k=3).labels()[0] != "V_126H754"
    again = nnlift.load(rec.save(tmp_path / "rec"))
    assert again.similar("V_126H754", k=5).pairs() == rec.similar("V_126H754", k=5).pairs()
    with pytest.raises(KeyError, match="unknown id"):
        rec.similar("V_nope")
    with pytest.raises(ValueError, match="empty"):
        Recommender().similar("x")
    with pytest.raises(ValueError, match="non-empty mapping"):
        Recommender.from_mapping({})
    small = rec.similar("V_126H754", k=500)  # more than exist: padded, never itself
    assert small.ids.shape == (1, 500) and "V_126H754" not in small.labels()


def test_approximate_and_exact_recommenders_agree(digits):
    pytest.importorskip("faiss")
    x, y, ids = digits
    exact = Recommender(index=nnlift.ExactIndex()).fit(x, ids)
    approx = Recommender(index=nnlift.FaissIndex("HNSW30", ef_construction=100, ef_search=128)).fit(x, ids)
    overlap = [len(set(exact.similar(i, 10).labels()) & set(approx.similar(i, 10).labels())) / 10 for i in ids[:300]]
    assert np.mean(overlap) >= 0.95


def test_default_index_is_hnsw_for_large_sets():
    pytest.importorskip("faiss")
    from nnlift.recommend import default_index

    assert type(default_index(10)).__name__ == "ExactIndex"
    big = default_index(50_000)
    assert type(big).__name__ == "FaissIndex" and big.factory == "HNSW30" and big.ef_construction == 100


def test_analogy_and_masked_query_by_hand():
    vectors = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 1.0], [0, 1.0, 1.0], [0, 0, 1.0]])
    index = nnlift.ExactIndex().add(vectors, ids=["man", "king", "woman", "queen", "x"])
    step = analogy("man", "king", "woman", index, k=1)
    assert step.ids == ["queen"]
    np.testing.assert_allclose(direction(["man"], ["king"], index), [-1, 1, 0])
    texts = {"full": [1.0, 0, 1.0], "masked": [0, 0, 1.0]}
    changed = masked_query(lambda t: texts[t], "full", lambda t: "masked", index, k=1)
    assert changed.ids == ["x"] and changed.new == ["x"]
    with pytest.raises(ValueError, match="along has 2 dimensions"):
        walk("man", [1.0, 0.0], index)
    with pytest.raises(TypeError, match="Recommender or an nnlift index"):
        centroid(["man"], object())
