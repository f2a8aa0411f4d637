import numpy as np
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

import nnlift  # noqa: E402
from nnlift.blocks import BlocksEncoder, block_entropy, confidence, mine_triplets, to_sparse, train_blocks  # noqa: E402
from nnlift.sampling import sample_neighbors  # noqa: E402

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
    )
    assert code == 0, out
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
    )
    assert code == 0 and "best encoder saved" in out, out
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
