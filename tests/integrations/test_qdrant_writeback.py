"""Write-backs to Qdrant (local mode) are exact: what changed is rewritten, what did not is skipped."""

import uuid

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from qdrant_client import QdrantClient, models  # noqa: E402

from nnlift.index.qdrant import KEY, SEQ, QdrantIndex, point_id  # noqa: E402
from nnlift.qdrant import marker_key, read_records, write_nnn, write_sparse, write_vectors  # noqa: E402

from ..conftest import unit  # noqa: E402


def collection(rng, n=30, ids=None, sparse=False, extra_dense=()):
    """A collection with named vector "dense" (plus others) filled through QdrantIndex."""
    client = QdrantClient(":memory:")
    vectors = {"dense": models.VectorParams(size=8, distance=models.Distance.COSINE)}
    vectors.update({name: models.VectorParams(size=8, distance=models.Distance.COSINE) for name in extra_dense})
    client.create_collection(
        "c",
        vectors_config=vectors,
        sparse_vectors_config={"blocks": models.SparseVectorParams()} if sparse else None,
    )
    index = QdrantIndex("c", client=client, using="dense", progress=False, batch_size=7)
    data = unit(rng, n, 8)
    index.add(data, ids=ids if ids is not None else [f"s{i}" for i in range(n)])
    return index, data


def payloads(index, collection_name="c"):
    points, _ = index.client.scroll(collection_name, limit=10_000, with_payload=True)
    return {str(p.id): p.payload for p in points}


def test_changed_dense_values_rows_and_swapped_ids_are_rewritten(rng):
    index, data = collection(rng, 30, extra_dense=("blended",))
    ids, seqs, _ = read_records(index)
    vectors = unit(rng, 30, 8)
    assert write_vectors(index, vectors, ids, name="blended", seqs=seqs)["written"] == 30
    assert write_vectors(index, vectors, ids, name="blended", seqs=seqs)["written"] == 0
    assert write_vectors(index, vectors * 0.5, ids, name="blended", seqs=seqs)["written"] == 30  # every value halved
    changed = vectors * 0.5
    changed[15, 3] += 0.25
    assert write_vectors(index, changed, ids, name="blended", seqs=seqs)["written"] == 1  # one row
    swapped = list(ids)
    swapped[2], swapped[9] = swapped[9], swapped[2]
    assert write_vectors(index, changed, swapped, name="blended", seqs=seqs)["written"] == 2  # two ids swapped
    stored = index.client.retrieve("c", ids=[point_id(swapped[2])], with_vectors=["blended"])[0].vector["blended"]
    np.testing.assert_allclose(stored, changed[2] / np.linalg.norm(changed[2]), atol=1e-6)


def test_sparse_marker_covers_every_row_index_and_value(rng):
    index, _ = collection(rng, 40, sparse=True)
    ids, seqs, _ = read_records(index)
    indices = [np.array([i % 7, 10 + i % 5]) for i in range(40)]
    values = [np.array([0.5, 0.25], dtype=np.float32) for _ in range(40)]
    assert write_sparse(index, indices, values, ids, seqs=seqs)["written"] == 40
    assert write_sparse(index, indices, values, ids, seqs=seqs)["written"] == 0
    halved = [v / 2 for v in values]
    assert write_sparse(index, indices, halved, ids, seqs=seqs)["written"] == 40
    late = list(indices)
    late[35] = np.array([1, 2])  # beyond the first rows that the old marker hashed
    assert write_sparse(index, late, halved, ids, seqs=seqs)["written"] == 1


def test_each_writer_and_name_has_its_own_marker(rng):
    index, data = collection(rng, 30)
    bank = unit(rng, 20, 8)
    ids, seqs, _ = read_records(index)
    assert write_nnn(index, bank, k=4)["written"] == 30
    assert write_vectors(index, data, ids, name="blended", seqs=seqs)["written"] == 30
    again = write_nnn(index, bank, k=4)
    assert again["written"] == 0 and again["skipped"] == 30
    companion = payloads(index, "c_nnn")
    assert all(marker_key("nnn", "nnn") in p for p in companion.values())


def test_in_collection_writes_keep_the_seq_payload(rng):
    index, data = collection(rng, 30, extra_dense=("blended",))
    before = {pid: (p[SEQ], p[KEY]) for pid, p in payloads(index).items()}
    ids, seqs, _ = read_records(index)
    shuffled = np.random.default_rng(5).permutation(30)  # another order than the collection's scroll order
    write_vectors(index, unit(rng, 30, 8)[shuffled], [ids[i] for i in shuffled], name="blended")
    after = {pid: (p[SEQ], p[KEY]) for pid, p in payloads(index).items()}
    assert after == before
    found = index.search(data[:5], 1)
    assert [row[0] for row in found.keys.tolist()] == [f"s{i}" for i in range(5)]


def test_writing_into_the_vector_being_read_is_refused(rng):
    index, data = collection(rng, 10)
    ids, _, _ = read_records(index)
    with pytest.raises(ValueError, match="name='dense' is the vector being read"):
        write_vectors(index, data, ids, name="dense")
    with pytest.raises(ValueError, match="name='dense' is the vector being read"):
        write_nnn(index, data, k=2, name="dense")


@pytest.mark.parametrize("kind", ["int", "uuid", "string"])
def test_in_place_sparse_write_then_prefetch_and_rescore_on_the_same_points(rng, kind):
    n = 25
    ids = {
        "int": list(range(1000, 1000 + n)),
        "uuid": [str(uuid.UUID(int=int(i) * 7919 + 1)) for i in range(n)],
        "string": [f"V_{i}" for i in range(n)],
    }[kind]
    index, data = collection(rng, n, ids=ids, sparse=True)
    read_ids, seqs, vectors = read_records(index)
    assert sorted(map(str, read_ids)) == sorted(map(str, ids))  # UUIDs come back as themselves
    indices = [np.array([i]) for i in range(n)]
    values = [np.array([1.0], dtype=np.float32) for _ in range(n)]
    report = write_sparse(index, indices, values, read_ids, seqs=seqs)
    assert report["written"] == n and not report["destination"].companion
    assert index.client.count("c").count == n  # no point was created beside the originals
    row = 4
    target = read_ids[row]
    result = index.client.query_points(
        "c",
        prefetch=models.Prefetch(query=models.SparseVector(indices=[row], values=[1.0]), using="blocks", limit=3),
        query=vectors[row].tolist(),
        using="dense",
        limit=1,
        with_payload=True,
    )
    assert str(result.points[0].id) == str(point_id(target))
    assert result.points[0].score == pytest.approx(1.0, abs=1e-5)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.lists(
        st.tuples(st.integers(0, 11), st.sampled_from(["value", "index", "id"])), min_size=0, max_size=4
    ),
    seed=st.integers(0, 2**16),
)
def test_property_any_change_is_rewritten_and_nothing_else(changes, seed):
    rng = np.random.default_rng(seed)
    index, _ = collection(rng, 12, sparse=True)
    ids, seqs, _ = read_records(index)
    indices = [np.array([i, 20 + i]) for i in range(12)]
    values = [rng.random(2).astype(np.float32) + 0.1 for _ in range(12)]
    write_sparse(index, indices, values, ids, seqs=seqs)
    new_ids, new_indices, new_values = list(ids), [i.copy() for i in indices], [v.copy() for v in values]
    for row, what in changes:
        if what == "value":
            new_values[row][0] += 1.0
        elif what == "index":
            new_indices[row][1] += 100
        else:  # swap this row's id with the next row's
            other = (row + 1) % 12
            new_ids[row], new_ids[other] = new_ids[other], new_ids[row]
    # A swapped pair writes both points unless their contents match; compare contents per point id.
    def content(id_list, ind, val):
        return {str(point_id(i)): (ind[r].tolist(), val[r].tolist()) for r, i in enumerate(id_list)}

    old, new = content(ids, indices, values), content(new_ids, new_indices, new_values)
    expected = sum(old[p] != new[p] for p in new)
    report = write_sparse(index, new_indices, new_values, new_ids, seqs=seqs)
    assert report["written"] == expected
    assert write_sparse(index, new_indices, new_values, new_ids, seqs=seqs)["written"] == 0


def test_cli_blocks_convert_writes_in_place_on_a_uuid_collection(tmp_path, monkeypatch, capsys, rng):
    torch = pytest.importorskip("torch")
    from nnlift.blocks import BlocksEncoder

    from ..test_cli import run

    client = QdrantClient(path=str(tmp_path / "q"))
    client.create_collection(
        "docs",
        vectors_config={"text": models.VectorParams(size=16, distance=models.Distance.COSINE)},
        sparse_vectors_config={"blocks": models.SparseVectorParams()},
    )
    ids = [str(uuid.uuid4()) for _ in range(40)]  # a user's own UUID ids, no nnlift payload
    vectors = unit(rng, 40, 16)
    client.upsert("docs", [models.PointStruct(id=i, vector={"text": v.tolist()}) for i, v in zip(ids, vectors)])
    client.close()
    torch.manual_seed(0)
    BlocksEncoder(16, num_blocks=2, block_size=4).save(tmp_path / "encoder")
    args = ["blocks", "convert", "--model", tmp_path / "encoder", "--collection", "docs", "--path", tmp_path / "q"]
    code, out = run(monkeypatch, capsys, *args, "--using", "text", "--threshold", 0.05)
    out = " ".join(out.split())  # rich wraps long lines
    assert code == 0 and "wrote 40 sparse vectors" in out and "'docs' sparse vector 'blocks'" in out, out
    client = QdrantClient(path=str(tmp_path / "q"))
    points, _ = client.scroll("docs", limit=100, with_vectors=True)
    assert sorted(str(p.id) for p in points) == sorted(ids)  # the same points, no new ones
    assert all(len(p.vector["blocks"].indices) > 0 for p in points)
    client.close()
    code, out = run(monkeypatch, capsys, *args, "--using", "text", "--threshold", 0.05)
    assert code == 0 and "skipped 40" in out, out


@pytest.mark.parametrize("string_ids", [False, True])
def test_qdrant_search_breaks_ties_by_insertion_position(rng, string_ids):
    # Three copies of each of four vectors: the tie groups fit in the margin Qdrant is asked for, so the shared
    # rule decides among them. The reference is a float64 sort with ties to the lower insertion position (a
    # float32 GEMM can round copies differently: that is the engines issue's canonical scores).
    vectors = np.repeat(unit(rng, 4, 8), 3, axis=0)
    ids = np.array([f"s{i}" for i in range(12)] if string_ids else list(range(100, 112)), dtype=object)
    order = np.random.default_rng(1).permutation(12)  # inserted in a shuffled order
    stored = vectors[order]
    index = QdrantIndex("ties", using="dense", progress=False, batch_size=5)
    index.add(stored, ids=ids[order].tolist())
    found = index.search(vectors[::3], 2)
    scores = vectors[::3].astype(np.float64) @ stored.astype(np.float64).T
    positions = np.argsort(-np.round(scores, 6), axis=1, kind="stable")[:, :2]  # ties to the lower position
    expected = ids[order][positions]
    assert (found.keys if string_ids else found.ids).tolist() == expected.tolist()
    np.testing.assert_allclose(found.scores, np.take_along_axis(scores, positions, axis=1), atol=1e-5)
