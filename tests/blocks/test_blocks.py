import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

import nnlift  # noqa: E402
from nnlift.blocks import BlocksEncoder, block_entropy, confidence, mine_triplets, to_sparse, train_blocks  # noqa: E402
from nnlift.sampling import sample_neighbors, split_neighbors  # noqa: E402
from hypothesis import given, settings, strategies as st  # noqa: E402

from ..conftest import unit  # noqa: E402


def clustered(rng, n=2000, d=24, clusters=40, labels=False):
    centres = unit(np.random.default_rng(5), clusters, d)
    which = rng.integers(0, clusters, n)
    x = centres[which] + 0.5 * rng.standard_normal((n, d)).astype(np.float32) / np.sqrt(d)
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return (x, which) if labels else x


def test_encoder_shape_blocks_sum_to_one_and_input_size_from_data():
    encoder = BlocksEncoder(input_dim=37, num_blocks=3, block_size=5)
    y = encoder(torch.randn(6, 37))
    assert tuple(y.shape) == (6, 15)
    torch.testing.assert_close(y.view(6, 3, 5).sum(-1), torch.ones(6, 3))
    with pytest.raises(ValueError, match="vectors must have 37 columns"):
        encoder.encode(np.zeros((2, 512), np.float32))


def test_triplet_mining_follows_the_rules(rng):
    rows = [0, 0, 1, 1, 2, 2, 3]
    cols = [1, 2, 0, 3, 0, 1, 2]
    vals = [0.9, 0.5, 0.9, 0.3, 0.5, 0.2, 0.3]
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(5, 5))
    triplets = mine_triplets(matrix, 500, rng)
    dense = matrix.toarray()
    row_min = {r: min(v for rr, v in zip(rows, vals) if rr == r) for r in set(rows)}
    for a, p, n, m in zip(triplets.anchors, triplets.positives, triplets.negatives, triplets.margins):
        assert a != n and a != p  # z != x, and y is a stored neighbour (never x itself)
        s = {z: (dense[a, z] if dense[a, z] else row_min[a]) for z in (p, n)}
        assert s[p] >= s[n]  # the positive is the more similar
        assert m == pytest.approx(abs(s[p] - s[n]), abs=1e-6) and m > 0.1
        assert dense[a, p] > 0 or dense[a, n] > 0  # one of them is x's stored neighbour
    assert 4 not in set(triplets.anchors)  # row 4 has no stored neighbours
    with pytest.raises(ValueError, match="too uniform"):
        mine_triplets(sp.csr_matrix(np.ones((4, 4)) - np.eye(4)), 10, rng)


def test_entropy_with_zeros_is_finite_and_confidence_in_range():
    embeddings = np.array([[1.0, 0.0, 0.5, 0.5], [0.25, 0.75, 0.0, 1.0]])
    entropy = block_entropy(embeddings, 2)
    assert np.isfinite(entropy).all()
    np.testing.assert_allclose(entropy, [[0.0, 1.0], [-(0.25 * np.log(0.25) + 0.75 * np.log(0.75)) / np.log(2), 0.0]])
    encoder = BlocksEncoder(8, 2, 4)
    scores, largest = confidence(encoder, np.eye(8, dtype=np.float32))
    assert ((scores >= 0) & (scores <= 1)).all() and largest.shape == (8, 2)


def test_sparse_conversion_by_hand():
    indices, values = to_sparse([[0.05, 0.6, 0.35, 0.0, 0.1, 0.9]], threshold=0.1)
    assert indices[0].tolist() == [1, 2, 5]  # 0.1 is not above the threshold
    np.testing.assert_allclose(values[0], [0.6, 0.35, 0.9])


def test_training_lowers_validation_loss_and_round_trips(tmp_path, rng):
    target = sample_neighbors(clustered(rng), sample=1500, limit=30, progress=False)
    encoder = train_blocks(
        target,
        num_blocks=4,
        block_size=16,
        epochs=6,
        triplets_per_epoch=1600,
        checkpoint=tmp_path / "enc",
        progress=False,
    )
    history = encoder.history_
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert all(h["seconds"] > 0 for h in history)
    again = nnlift.load(tmp_path / "enc")
    np.testing.assert_allclose(again.encode(target.vectors[:20]), encoder.encode(target.vectors[:20]), atol=1e-6)
    assert len(again.history_) == 6


def test_training_stops_on_a_plateau_and_says_why(tmp_path, rng):
    train, val = split_neighbors(clustered(rng, n=1200), sample=800, validation=300, limit=20, progress=False)
    frozen = train_blocks(  # a learning rate too small to move: the validation loss is flat from epoch 1
        train, val_target=val, block_size=8, epochs=50, stop_patience=3, lr=1e-9, triplets_per_epoch=320,
        progress=False, checkpoint=tmp_path / "enc",
    )  # fmt: skip
    assert frozen.stop_["epochs_run"] == 4 and frozen.stop_["best_epoch"] == 1
    assert "stopped improving" in frozen.stop_["reason"] and len(frozen.history_) == 4
    assert nnlift.load(tmp_path / "enc").stop_ == frozen.stop_  # saved with the encoder
    learning = train_blocks(train, val_target=val, block_size=8, epochs=3, triplets_per_epoch=960, progress=False)
    assert learning.stop_["epochs_run"] == 3 and "still falling: raise epochs" in learning.stop_["reason"]


def test_validation_triplets_come_from_the_held_out_sample(rng, monkeypatch):
    import nnlift.blocks.train as train_module

    train, val = split_neighbors(clustered(rng, n=900), sample=600, validation=200, limit=15, progress=False)
    mined = []
    real = train_module.mine_triplets
    monkeypatch.setattr(train_module, "mine_triplets", lambda m, *a, **k: (mined.append(m.shape), real(m, *a, **k))[1])
    train_blocks(train, val_target=val, block_size=8, epochs=1, triplets_per_epoch=320, progress=False)
    assert mined[0] == (200, 200) and mined[1] == (600, 600)  # validation first, once; then each epoch's training
    with pytest.raises(ValueError, match="val_target has vectors of width"):
        train_blocks(train, val_target=sample_neighbors(np.eye(8, dtype=np.float32) + 0.1, sample=8, limit=3, progress=False))


@settings(max_examples=25, deadline=None)
@given(n=st.integers(8, 60), sample=st.integers(3, 80), validation=st.integers(2, 20), seed=st.integers(0, 5))
def test_the_validation_sample_is_disjoint_and_neighbours_stay_within_each(n, sample, validation, seed):
    vectors = np.random.default_rng(seed).standard_normal((n, 5)).astype(np.float32)
    ids = [f"p{i}" for i in range(n)]
    if n < validation + 3:
        with pytest.raises(ValueError, match="fewer than 3"):
            split_neighbors(vectors, ids, sample=sample, validation=validation, limit=4, progress=False)
        return
    train, val = split_neighbors(vectors, ids, sample=sample, validation=validation, limit=4, seed=seed, progress=False)
    assert not set(train.ids) & set(val.ids)
    assert len(val.ids) == validation and len(train.ids) == min(sample, n - validation)
    for part in (train, val):
        assert part.matrix.shape == (len(part.ids),) * 2
        rows = [ids.index(i) for i in part.ids]
        np.testing.assert_array_equal(part.vectors, vectors[rows])  # each row's own vector, in the order of its ids


def test_confidence_flags_a_clear_outlier_set(rng):
    data = clustered(rng, n=3000)
    target = sample_neighbors(data[:2500], sample=2500, limit=30, progress=False)
    encoder = train_blocks(target, num_blocks=4, block_size=16, epochs=10, progress=False)
    inside, _ = confidence(encoder, data[2500:])
    outside, _ = confidence(encoder, unit(rng, 500, 24))  # directions the collection never covers
    auroc = (inside[:, None] > outside[None, :]).mean()
    assert auroc > 0.9


def test_end_to_end_on_qdrant_local_mode(tmp_path, monkeypatch, capsys, rng):
    pytest.importorskip("qdrant_client")
    from nnlift.index.qdrant import QdrantIndex

    from ..test_cli import run

    data, cluster = clustered(rng, n=800, d=16, clusters=20, labels=True)
    labels = [f"item-{i}" for i in range(800)]
    index = QdrantIndex("food", path=tmp_path / "q", using="dense", progress=False).add(data, labels)
    index.client.close()
    where = ["--collection", "food", "--path", tmp_path / "q", "--using", "dense"]
    code, out = run(
        monkeypatch,
        capsys,
        "blocks",
        "prepare",
        *where,
        "--sample",
        600,
        "--limit",
        20,
        "--output",
        tmp_path / "target",
        "--val-output",
        tmp_path / "val",
        "--val-sample",
        150,
    )
    assert code == 0, out
    assert "validation: 150 other points" in out
    code, out = run(
        monkeypatch,
        capsys,
        "blocks",
        "train",
        "--target",
        tmp_path / "target",
        "--output",
        tmp_path / "enc",
        "--epochs",
        4,
        "--block-size",
        16,
        "--val-target",
        tmp_path / "val",
    )
    assert code == 0 and "best encoder saved" in out, out
    stop = nnlift.load(tmp_path / "enc").stop_
    assert f"stopped after {stop['epochs_run']} epochs" in " ".join(out.split()) and "held out" in out
    code, out = run(monkeypatch, capsys, "blocks", "train", "--target", tmp_path / "target", "--output",
                    tmp_path / "enc2", "--val-target", tmp_path / "target")  # fmt: skip
    assert code != 0 and "--val-target shares points with --target" in out
    code, out = run(
        monkeypatch,
        capsys,
        "blocks",
        "convert",
        "--model",
        tmp_path / "enc",
        *where,
        "--output",
        tmp_path / "sparse.npz",
    )
    assert code == 0 and "wrote 800 sparse vectors" in out, out
    np.save(tmp_path / "data.npy", data)
    code, out = run(
        monkeypatch,
        capsys,
        "blocks",
        "confidence",
        "--model",
        tmp_path / "enc",
        "--input",
        tmp_path / "data.npy",
        "--histogram",
        tmp_path / "confidence.png",
    )
    assert code == 0 and "median" in out, out
    assert (tmp_path / "confidence.png").stat().st_size > 1000
    # sparse search on the written sparse vector returns sensible neighbours: mostly the query's own cluster
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=str(tmp_path / "q"))
    stored = np.load(tmp_path / "sparse.npz")
    row_of = {name: row for row, name in enumerate(stored["ids"].tolist())}  # collection order is not insertion order
    same_cluster = []
    for item in range(30):
        row = row_of[f"item-{item}"]
        lo, hi = stored["indptr"][row], stored["indptr"][row + 1]
        hits = client.query_points(
            "food_blocks",
            query=models.SparseVector(
                indices=stored["indices"][lo:hi].tolist(), values=stored["values"][lo:hi].tolist()
            ),
            using="blocks",
            limit=6,
            with_payload=True,
        ).points
        found = [int(p.payload["nnlift_id"].split("-")[1]) for p in hits if p.payload["nnlift_id"] != f"item-{item}"]
        same_cluster += [cluster[f] == cluster[item] for f in found]
    client.close()
    assert np.mean(same_cluster) > 0.8  # sensible: mostly the query's own cluster (chance: 1/20)
    code, out = run(
        monkeypatch, capsys, "blocks", "train", "--target", tmp_path / "data.npy", "--output", tmp_path / "x"
    )
    assert code != 0 and "not a sampled similarity matrix" in out


def test_confidence_methods_share_one_call(rng):
    data = clustered(rng, n=1200)
    encoder = BlocksEncoder(24, 2, 8)
    scores, largest = confidence(encoder, data[:5], method="knn", index=data[100:])
    np.testing.assert_allclose(scores, nnlift.outliers.knn_confidence(data[:5], data[100:]), rtol=1e-6)
    assert largest.shape == (5, 2)
    assert confidence(None, data[:5], method="knn", index=data[100:])[1] is None
    combined, _ = confidence(encoder, data[:5], method="combined", index=data[100:])
    assert ((combined >= 0) & (combined <= 1)).all()
    with pytest.raises(ValueError, match="needs index="):
        confidence(encoder, data[:5], method="combined")
    with pytest.raises(ValueError, match="needs the trained encoder"):
        confidence(None, data[:5], method="blocks")


def test_cli_confidence_methods_report_auroc_against_a_reference(tmp_path, monkeypatch, capsys, rng):
    pytest.importorskip("matplotlib")
    from nnlift.outliers import ConfidenceScorer, auroc, fpr_at_tpr

    from ..test_cli import run

    data = clustered(rng, n=1500)
    outsiders = unit(rng, 200, 24)
    encoder = BlocksEncoder(24, 2, 8)
    encoder.save(tmp_path / "enc")
    for name, array in (("collection", data[:1200]), ("held", data[1200:]), ("out", outsiders)):
        np.save(tmp_path / f"{name}.npy", array)
    base = ["blocks", "confidence", "--input", tmp_path / "out.npy", "--reference", tmp_path / "held.npy"]
    code, out = run(monkeypatch, capsys, *base, "--method", "combined", "--model", tmp_path / "enc",
                    "--against", tmp_path / "collection.npy", "--histogram", tmp_path / "h.png")  # fmt: skip
    assert code == 0, out
    scorer = ConfidenceScorer("combined", encoder=nnlift.load(tmp_path / "enc")).fit(data[:1200])
    inside, outside = scorer.score(data[1200:]), scorer.score(outsiders)
    text = " ".join(out.split())
    assert f"AUROC {auroc(inside, outside):.3f}, FPR at 95% TPR {fpr_at_tpr(inside, outside):.3f}" in text
    assert (tmp_path / "h.png").stat().st_size > 1000
    code, out = run(monkeypatch, capsys, *base, "--method", "knn", "--against", tmp_path / "collection.npy")
    assert code == 0 and "knn confidence of 200 items" in " ".join(out.split()), out
    code, out = run(monkeypatch, capsys, *base, "--method", "knn")
    assert code != 0 and "needs --against" in out


def test_auroc_and_fpr_by_hand():
    from nnlift.outliers import auroc, fpr_at_tpr

    assert auroc([1, 2], [0, 0]) == 1.0 and auroc([0], [0]) == 0.5 and auroc([0, 0], [1, 1]) == 0.0
    assert fpr_at_tpr(np.arange(100), [94.5, 5.0, 3.0], tpr=0.95) == pytest.approx(2 / 3)  # 95 accepted: 5..99


def test_sparse_prefetch_by_hand_and_with_every_item_as_candidate(rng):
    from nnlift.blocks import SparsePrefetch

    data = clustered(rng, n=600)
    encoder = BlocksEncoder(24, 4, 8)
    torch.manual_seed(0)
    prefetch = SparsePrefetch(encoder, threshold=0.1, candidates=600).fit(data, ids=[f"d{i}" for i in range(600)])
    exact = nnlift.topk(data[:20], data, 5)
    found = prefetch.search(data[:20], k=5)
    np.testing.assert_array_equal(found.ids, exact.ids)  # every item a candidate: exact dense search
    np.testing.assert_allclose(found.scores, exact.scores, atol=1e-6)
    assert found.keys[0, 0] == "d0"
    # the candidates are the best sparse dot products, computed by hand
    blocks = encoder.encode(data)
    sparse = np.where(blocks > 0.1, blocks, 0.0)
    by_hand = np.argsort(-(blocks[:3] @ sparse.T), axis=1, kind="stable")[:, :40]
    np.testing.assert_array_equal(prefetch.candidates_for(data[:3], 40), by_hand)
    curve = prefetch.recall_curve(data[:50], [10, 100, 600], k=5)
    assert curve[600] == 1.0 and curve[10] <= curve[100] <= curve[600]
    with pytest.raises(ValueError, match="not fitted"):
        SparsePrefetch(encoder).search(data[:2])
    with pytest.raises(ValueError, match="queries must have 24 columns"):
        prefetch.search(np.zeros((2, 5), np.float32))


def test_qdrant_prefetch_gives_the_local_list(tmp_path, rng):
    pytest.importorskip("qdrant_client")
    from qdrant_client import models

    from nnlift.blocks import SparsePrefetch, qdrant_prefetch_search
    from nnlift.index.qdrant import QdrantIndex
    from nnlift.qdrant import write_sparse

    data = clustered(rng, n=500)
    labels = [f"item-{i}" for i in range(500)]
    torch.manual_seed(1)
    encoder = BlocksEncoder(24, 4, 8)
    indices, values = to_sparse(encoder.encode(data), 0.1)
    local = SparsePrefetch(encoder, threshold=0.1, candidates=60).fit(data, ids=labels)
    expected = local.search(data[:15], k=5)
    inside = QdrantIndex("inside", path=tmp_path / "q", using="dense", progress=False)
    inside.client.create_collection(
        "inside",
        vectors_config={"dense": models.VectorParams(size=24, distance=models.Distance.COSINE)},
        sparse_vectors_config={"blocks": models.SparseVectorParams()},
    )
    inside.add(data, labels)
    write_sparse(inside, indices, values, labels, name="blocks")
    companion = QdrantIndex("apart", client=inside.client, using="dense", progress=False).add(data, labels)
    write_sparse(companion, indices, values, labels, name="blocks")
    assert inside.client.collection_exists("apart_blocks")  # this one's block vectors live in a companion
    for index in (inside, companion):
        found = qdrant_prefetch_search(index, encoder, data[:15], k=5, candidates=60)
        assert found.keys.tolist() == expected.keys.tolist()
        np.testing.assert_allclose(found.scores, expected.scores, atol=1e-5)


def test_cli_blocks_search_prints_the_curve_and_writes_the_results(tmp_path, monkeypatch, capsys, rng):
    pytest.importorskip("matplotlib")
    from nnlift.blocks import SparsePrefetch

    from ..test_cli import run

    data = clustered(rng, n=800)
    torch.manual_seed(2)
    BlocksEncoder(24, 4, 8).save(tmp_path / "enc")
    np.save(tmp_path / "data.npy", data)
    np.save(tmp_path / "q.npy", data[:30])
    code, out = run(monkeypatch, capsys, "blocks", "search", "--model", tmp_path / "enc", "--queries", tmp_path / "q.npy",
                    "--input", tmp_path / "data.npy", "-k", 5, "--candidates", 80, "--curve", "40,80,800",
                    "--figure", tmp_path / "curve.png", "--output", tmp_path / "found.npz")  # fmt: skip
    assert code == 0, out
    prefetch = SparsePrefetch(nnlift.load(tmp_path / "enc"), candidates=80).fit(data)
    expected = prefetch.search(data[:30], 5)
    np.testing.assert_array_equal(np.load(tmp_path / "found.npz")["ids"], expected.ids)
    curve = prefetch.recall_curve(data[:30], [40, 80, 800], 5)
    text = " ".join(out.split())
    for budget, recall in curve.items():
        assert f"{recall:.4f}" in text
    assert curve[800] == 1.0 and (tmp_path / "curve.png").stat().st_size > 1000
    code, out = run(monkeypatch, capsys, "blocks", "search", "--model", tmp_path / "enc", "--queries", tmp_path / "q.npy",
                    "--collection", "c", "--path", tmp_path / "q", "--curve", "10")  # fmt: skip
    assert code != 0 and "--curve measures against exact search over --input" in out


def hand_encoder():
    """Two blocks of two cells: block 0 reads x0 against x1, block 1 reads x2 against x3 (no dropout, steep)."""
    encoder = BlocksEncoder(4, 2, 2, dropout=0.0)
    with torch.no_grad():
        encoder.linear.weight.copy_(torch.tensor([[9.0, 0, 0, 0], [0, 9.0, 0, 0], [0, 0, 9.0, 0], [0, 0, 0, 9.0]]))
        encoder.linear.bias.zero_()
    return encoder


def test_describe_features_by_hand():
    from nnlift.blocks import describe_features

    collection = np.array([[1, 0, 1, 0], [1, 0, 0, 1], [0.9, 0.1, 0, 1], [0, 1, 1, 0]], dtype=np.float32)
    labels = ["red apple", "red cherry", "red plum", "green pear"]
    features = describe_features(hand_encoder(), collection, labels, top=2, words=2)
    by_id = {f.feature: f for f in features}
    assert sorted(by_id) == [0, 1, 2, 3]
    assert by_id[0].share == 0.75 and [label for label, _ in by_id[0].items] == ["red apple", "red cherry"]
    assert by_id[0].words[0][0] == "red"  # in all three winners: lift (3/3)/(3/4)
    assert by_id[1].share == 0.25 and by_id[1].items[0][0] == "green pear"
    assert by_id[3].items[0][0] == "red cherry" and "feature 3 (block 1, cell 1" in str(by_id[3])
    with pytest.raises(ValueError, match=r"features must be in \[0, 4\)"):
        describe_features(hand_encoder(), collection, labels, features=[7])
    with pytest.raises(ValueError, match="labels has 3 entries for 4"):
        describe_features(hand_encoder(), collection, labels[:3])


def test_steer_by_hand_and_weight_zero_changes_nothing(rng):
    from nnlift.blocks import SparsePrefetch, steer

    encoder = hand_encoder()
    query = np.array([[1.0, 0.0, 0.5, 0.5]], dtype=np.float32)
    plain = encoder.encode(query)
    np.testing.assert_array_equal(steer(encoder, query, 3, 0.0), plain)
    pushed = steer(encoder, query, 3, 1.0)
    np.testing.assert_allclose(pushed[0, 2:], [0.5 / 2.0, 1.5 / 2.0], atol=1e-6)  # (0.5, 0.5 + 1) renormalised
    np.testing.assert_array_equal(pushed[0, :2], plain[0, :2])  # the other block untouched
    data = clustered(rng, n=400, d=24)
    torch.manual_seed(3)
    wide = BlocksEncoder(24, 4, 8)
    prefetch = SparsePrefetch(wide, candidates=20).fit(data)
    same = prefetch.search(data[:10], 5, blocks=steer(wide, data[:10], 5, 0.0))
    base = prefetch.search(data[:10], 5)
    np.testing.assert_array_equal(same.ids, base.ids)
    np.testing.assert_array_equal(same.scores, base.scores)
    towards = prefetch.candidates_for(data[:10], 20, blocks=steer(wide, data[:10], 5, 5.0))
    feature_5 = wide.encode(data)[:, 5]
    assert feature_5[towards].mean() > feature_5[prefetch.candidates_for(data[:10], 20)].mean()
    with pytest.raises(ValueError, match=r"feature must be an int in \[0, 32\)"):
        steer(wide, data[:1], 32, 1.0)
    with pytest.raises(ValueError, match="removes every probability"):  # block 0 is exactly (1, 0) here
        steer(encoder, np.array([[30.0, 0.0, 0.5, 0.5]], dtype=np.float32), 0, -5.0)
