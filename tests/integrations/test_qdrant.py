"""Qdrant integration on qdrant-client's local mode: the same client API as a server."""

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

import nnlift  # noqa: E402
from nnlift.index.qdrant import QdrantIndex  # noqa: E402
from nnlift.qdrant import nnn_search, sample_similarity_matrix, write_nnn, write_sparse, write_vectors  # noqa: E402

from ..conftest import assert_same_neighbors, unit  # noqa: E402


@pytest.fixture
def items(rng):
    vectors = unit(rng, 300, 16)
    ids = [f"V_{i:03d}H" for i in range(300)]
    return vectors, ids


def make_index(vectors, ids, using="dense", metric="cosine", **kwargs):
    return QdrantIndex("items", using=using, metric=metric, progress=False, batch_size=64, **kwargs).add(vectors, ids)


def test_round_trip_named_vectors_and_string_ids(items):
    vectors, ids = items
    index = make_index(vectors, ids)
    assert len(index) == 300 and index.dim == 16
    np.testing.assert_allclose(index.get(["V_007H", "V_123H"]), vectors[[7, 123]], atol=1e-6)
    found = index.search(vectors[:5], 3)
    assert [row[0] for row in found.keys.tolist()] == ids[:5]
    exact = nnlift.ExactIndex().add(vectors).search(vectors[:5], 3)
    np.testing.assert_allclose(found.scores, exact.scores, atol=1e-5)
    with pytest.raises(KeyError, match="unknown id"):
        index.get(["nope"])


def test_int_ids_dot_distance_and_save_load(tmp_path, rng):
    vectors = rng.standard_normal((50, 8)).astype(np.float32)
    index = QdrantIndex("raw", path=tmp_path / "q", using=None, metric="ip", progress=False).add(
        vectors, ids=list(range(100, 150))
    )
    found = index.search(vectors[:3], 2)
    exact = nnlift.ExactIndex(metric="ip").add(vectors, ids=list(range(100, 150))).search(vectors[:3], 2)
    np.testing.assert_array_equal(found.ids, exact.ids)
    saved = index.save(tmp_path / "conn")
    assert "api_key" not in (saved / "manifest.json").read_text()
    index.client.close()
    again = nnlift.load(saved)
    assert len(again) == 50
    with pytest.raises(ValueError, match="cannot be reopened"):
        QdrantIndex("mem", progress=False).save(tmp_path / "x")


def test_clear_errors(items):
    vectors, ids = items
    index = make_index(vectors, ids)
    with pytest.raises(ValueError, match="does not exist"):
        QdrantIndex("missing", client=index.client).search(vectors[:1], 1)
    with pytest.raises(ValueError, match="no named vector 'other'"):
        QdrantIndex("items", client=index.client, using="other").search(vectors[:1], 1)
    with pytest.raises(ValueError, match="vectors have 8 dimensions"):
        index.add(vectors[:2, :8], ["x", "y"])


def test_sampled_matrix_equals_exact_self_join_on_the_sample(items):
    vectors, ids = items
    index = make_index(vectors, ids)
    sampled = sample_similarity_matrix(index, sample=120, limit=10, seed=1, method="kernel")
    assert sampled.matrix.shape == (120, 120) and sampled.vectors.dtype == np.float32
    positions = [ids.index(i) for i in sampled.ids]
    np.testing.assert_allclose(sampled.vectors, vectors[positions], atol=1e-6)
    sample = vectors[positions]
    exact = nnlift.topk(sample, sample.copy(), 10, exclude_self=True)
    for row in range(120):
        got = sampled.matrix[row]
        order = np.argsort(-got.data, kind="stable")
        assert_same_neighbors(got.indices[order][None], got.data[order][None], exact.ids[[row]], exact.scores[[row]])
    # the server's search-matrix API (here local mode's) agrees with the kernel on its own sample
    served = sample_similarity_matrix(index, sample=60, limit=5, method="server")
    sample = served.vectors / np.linalg.norm(served.vectors, axis=1, keepdims=True)
    exact = nnlift.topk(sample, sample.copy(), 5, exclude_self=True)
    np.testing.assert_allclose(
        np.sort(served.matrix.toarray(), axis=1)[:, -5:], np.sort(exact.to_csr(60).toarray(), axis=1)[:, -5:], atol=1e-5
    )


def test_nnn_served_by_qdrant_matches_in_memory_and_is_idempotent(items, rng):
    vectors, ids = items
    bank = unit(rng, 200, 16)
    queries = unit(rng, 10, 16)
    index = make_index(vectors, ids)
    report = write_nnn(index, bank, k=8)
    assert report["written"] == 300 and report["destination"].companion
    served = nnn_search(index, queries, 5, alpha=0.75)
    memory = nnlift.NNN(k=8, alpha=0.75).fit(vectors, bank).search(queries, 5)
    assert [[ids[i] for i in row] for row in memory.ids] == served.keys.tolist()
    np.testing.assert_allclose(served.scores, memory.scores, atol=1e-5)
    state = index.client.scroll("items_nnn", limit=1000, with_vectors=True)[0]
    again = write_nnn(index, bank, k=8)
    assert again["written"] == 0 and again["skipped"] == 300
    after = index.client.scroll("items_nnn", limit=1000, with_vectors=True)[0]
    assert [(p.id, p.payload, p.vector) for p in state] == [(p.id, p.payload, p.vector) for p in after]


def test_resume_after_interruption(items, rng, monkeypatch):
    vectors, ids = items
    bank = unit(rng, 200, 16)
    index = make_index(vectors, ids)
    original = index.client.upsert
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return original(*args, **kwargs)

    monkeypatch.setattr(index.client, "upsert", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_nnn(index, bank, k=8)
    monkeypatch.setattr(index.client, "upsert", original)
    resumed = write_nnn(index, bank, k=8)
    assert resumed["skipped"] == 128 and resumed["written"] == 172
    reference = make_index(vectors, ids, client=None)
    write_nnn(reference, bank, k=8)
    a = {p.id: (p.payload, p.vector) for p in index.client.scroll("items_nnn", limit=1000, with_vectors=True)[0]}
    b = {p.id: (p.payload, p.vector) for p in reference.client.scroll("items_nnn", limit=1000, with_vectors=True)[0]}
    assert a == b


def collection_with_nnn_vector(distance):
    """An in-memory client holding "items" with a dense vector and a 17-d "nnn" vector of ``distance``."""
    from qdrant_client import QdrantClient, models

    client = QdrantClient(":memory:")
    client.create_collection(
        "items",
        vectors_config={
            "dense": models.VectorParams(size=16, distance=models.Distance.COSINE),
            "nnn": models.VectorParams(size=17, distance=distance),
        },
    )
    return client


def test_cosine_vector_refused_for_folded_bias(items, rng):
    from qdrant_client import models

    vectors, ids = items
    client = collection_with_nnn_vector(models.Distance.COSINE)
    index = make_index(vectors, ids, client=client)
    with pytest.raises(ValueError, match="needs Dot"):
        write_nnn(index, unit(rng, 50, 16), k=4)


def test_named_vector_in_place_and_blended_and_sparse(items, rng):
    from qdrant_client import models

    vectors, ids = items
    client = collection_with_nnn_vector(models.Distance.DOT)
    index = make_index(vectors, ids, client=client)
    report = write_nnn(index, unit(rng, 80, 16), k=4)
    assert not report["destination"].companion
    point = client.retrieve("items", ids=[index_point(ids[0])], with_vectors=True, with_payload=True)[0]
    assert len(point.vector["nnn"]) == 17 and "nnn_bias" in point.payload and "dense" in point.vector
    blended = nnlift.NeighborhoodBlender(thresholds=(0.5,), k=5, progress=False).fit_transform(vectors)
    out = write_vectors(index, blended, ids, name="blended")
    assert out["written"] == 300
    got = QdrantIndex("items_blended", client=client, using="blended").get(ids[:3])
    np.testing.assert_allclose(got, blended[:3], atol=1e-5)
    indices = [np.array([i % 10, 10 + i % 7]) for i in range(300)]
    values = [np.array([0.6, 0.4]) for _ in range(300)]
    write_sparse(index, indices, values, ids, name="blocks")
    hits = client.query_points(
        "items_blocks",
        query=models.SparseVector(indices=[3, 13], values=[1.0, 1.0]),
        using="blocks",
        limit=3,
        with_payload=True,
    ).points
    assert all(int(p.payload["nnlift_id"][2:5]) % 10 == 3 for p in hits)


def index_point(key):
    from nnlift.index.qdrant import point_id

    return point_id(key)


def test_cli_qdrant_commands(tmp_path, monkeypatch, capsys, items, rng):
    from ..test_cli import run

    vectors, ids = items
    index = QdrantIndex("items", path=tmp_path / "q", using="dense", progress=False).add(vectors, ids)
    index.client.close()
    np.save(tmp_path / "bank.npy", unit(rng, 100, 16))
    common = ["--collection", "items", "--path", tmp_path / "q", "--using", "dense"]
    code, out = run(
        monkeypatch, capsys, "qdrant", "sample", *common, "--sample", 50, "--limit", 5, "--output", tmp_path / "s"
    )
    assert code == 0, out
    assert nnlift.load(tmp_path / "s").vectors.shape == (50, 16)
    code, out = run(monkeypatch, capsys, "qdrant", "nnn", *common, "--bank", tmp_path / "bank.npy", "-k", 4)
    assert code == 0 and "wrote 300" in out, out
    code, out = run(monkeypatch, capsys, "qdrant", "nnn", *common, "--bank", tmp_path / "bank.npy", "-k", 4)
    assert code == 0 and "wrote 0" in out and "skipped 300" in out, out
    code, out = run(monkeypatch, capsys, "qdrant", "blend", *common, "--thresholds", "0.5", "-k", 4)
    assert code == 0 and "wrote 300" in out, out
    code, out = run(
        monkeypatch,
        capsys,
        "qdrant",
        "nnn",
        "--collection",
        "nope",
        "--path",
        tmp_path / "q",
        "--bank",
        tmp_path / "bank.npy",
    )
    assert code != 0 and "no collection 'nope'" in out
    code, out = run(
        monkeypatch,
        capsys,
        "qdrant",
        "sample",
        "--collection",
        "items",
        "--path",
        tmp_path / "q",
        "--using",
        "wrong",
        "--output",
        tmp_path / "x.npz",
    )
    assert code != 0 and "no named vector 'wrong'" in out


def test_retries_transient_errors_with_backoff_and_not_others(monkeypatch):
    from nnlift.index import qdrant as q

    sleeps = []
    monkeypatch.setattr(q.time, "sleep", sleeps.append)
    calls = {"n": 0}

    class Unavailable(Exception):
        status_code = 503

    def flaky():
        calls["n"] += 1
        if calls["n"] < 3:
            raise Unavailable("try later")
        return "ok"

    assert q.with_retries(flaky, retries=5, backoff=0.5) == "ok"
    assert calls["n"] == 3 and sleeps == [0.5, 1.0]  # exponential backoff

    def broken():
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        q.with_retries(broken, retries=5)
    assert len(sleeps) == 2  # a non-transient error is not retried

    def always_down():
        raise TimeoutError("timeout")

    with pytest.raises(TimeoutError):
        q.with_retries(always_down, retries=2, backoff=0.1)
    assert sleeps[2:] == [0.1, 0.2]


def test_qdrant_index_is_a_base_index_with_positions_and_the_shared_ids(rng):
    from nnlift.index.base import BaseIndex

    vectors = unit(rng, 30, 8)
    keys = [f"V_{i:03d}" for i in range(30)]
    index = QdrantIndex("positions", using="dense", progress=False).add(vectors, ids=keys)
    assert isinstance(index, BaseIndex) and index.ids.tolist() == keys
    found = index.search(vectors[:3], 2)
    np.testing.assert_array_equal(found.ids[:, 0], [0, 1, 2])  # string ids: ids hold positions, keys the ids
    assert found.keys[:, 0].tolist() == keys[:3]
    np.testing.assert_allclose(index.stored_vectors(), vectors, atol=1e-6)
    # as a template: a scratch collection on the same client, answering the reductions by the candidate route
    clone = index.clone(metric="ip")
    assert clone.collection.startswith("positions-nnlift-") and clone.client is index.client and len(clone) == 0
    clone._adopt(vectors)
    exact = nnlift.ExactIndex("ip", progress=False)
    exact._adopt(vectors)
    np.testing.assert_allclose(clone.topk_mean(vectors[:5], 4), exact.topk_mean(vectors[:5], 4), atol=1e-6)
    np.testing.assert_array_equal(clone.self_join(3).ids, exact.self_join(3).ids)
