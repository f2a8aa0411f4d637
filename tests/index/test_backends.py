import json

import numpy as np
import pytest

import nnlift
from nnlift import ArtifactError, ExactIndex
from nnlift._artifact import FORMAT_VERSION, _manifest_digest

from ..conftest import assert_same_neighbors, unit

pytest.importorskip("faiss")
pytest.importorskip("hnswlib")

BACKENDS = [
    ("exact", lambda: ExactIndex(), 1.0),
    ("faiss-flat", lambda: nnlift.FaissIndex("Flat"), 1.0),
    ("faiss-hnsw", lambda: nnlift.FaissIndex("HNSW32", ef_search=128), 0.95),
    ("faiss-ivf", lambda: nnlift.FaissIndex("IVF16,Flat", nprobe=12), 0.95),
    ("hnswlib", lambda: nnlift.HnswIndex(M=16, ef_search=100), 0.95),
]


def clustered(rng, n, d, centers=40):
    means = unit(rng, centers, d)
    x = means[rng.integers(0, centers, n)] + 0.15 * rng.standard_normal((n, d)).astype(np.float32)
    return x.astype(np.float32)


@pytest.mark.parametrize("name, make, min_recall", BACKENDS, ids=[b[0] for b in BACKENDS])
def test_backend_matches_exact_and_round_trips(tmp_path, rng, name, make, min_recall):
    database, queries = clustered(rng, 3000, 32), clustered(rng, 100, 32)
    exact = ExactIndex().add(database).search(queries, 10)
    index = make().add(database)
    found = index.search(queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found.ids, exact.ids)])
    assert recall >= min_recall, f"{name} recall {recall}"
    if min_recall == 1.0:
        assert_same_neighbors(found.ids, found.scores, exact.ids, exact.scores)
    # get returns the stored (normalised) vectors
    normed = database[[5, 17]] / np.linalg.norm(database[[5, 17]], axis=1, keepdims=True)
    np.testing.assert_allclose(index.get([5, 17]), normed, atol=1e-6)
    # save/load round-trip exactly, through nnlift.load
    index.save(tmp_path / "ix")
    again = nnlift.load(tmp_path / "ix")
    assert type(again) is type(index) and len(again) == len(index)
    reloaded = again.search(queries, 10)
    np.testing.assert_array_equal(reloaded.ids, found.ids)
    np.testing.assert_array_equal(reloaded.scores, found.scores)


@pytest.mark.parametrize("name, make, _", BACKENDS[:2] + BACKENDS[4:], ids=["exact", "faiss-flat", "hnswlib"])
def test_string_ids_small_index_padding_and_incremental_add(rng, name, make, _):
    vectors = unit(rng, 6, 8)
    ids = ["V_126H754", "V_1", "V_2", "V_3", "V_4", "V_5"]
    index = make().add(vectors[:4], ids=ids[:4]).add(vectors[4:], ids=ids[4:])
    found = index.search(vectors[[1]], 8)
    assert found.keys[0, 0] == "V_1"
    assert found.keys[0, 6] is None and found.ids[0, 6] == -1 and np.isneginf(found.scores[0, 7])
    np.testing.assert_allclose(index.get("V_126H754"), vectors[[0]], atol=1e-6)
    with pytest.raises(KeyError, match="unknown id"):
        index.get(["nope"])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(vectors[:1], ids=["V_1"])


def test_int_ids_returned_as_given(rng):
    vectors = unit(rng, 5, 4)
    index = ExactIndex().add(vectors, ids=[50, 40, 30, 20, 10])
    assert index.search(vectors[[2]], 1).ids.tolist() == [[30]]


def test_index_errors(rng):
    index = ExactIndex()
    with pytest.raises(ValueError, match="empty"):
        index.search(unit(rng, 1, 4), 1)
    index.add(unit(rng, 5, 4))
    with pytest.raises(ValueError, match="queries must have 4 columns"):
        index.search(unit(rng, 1, 3), 1)
    with pytest.raises(ValueError, match="ids= for the new vectors|without ids"):
        index.add(unit(rng, 2, 4), ids=["a", "b"])
    with pytest.raises(ValueError, match="factory='NotAFactory' is not a supported faiss factory"):
        nnlift.FaissIndex("NotAFactory")
    with pytest.raises(ValueError, match="faiss cannot build factory 'PQ3'"):
        nnlift.FaissIndex("PQ3").add(unit(rng, 5, 4))  # 3 sub-quantizers do not divide 4 dimensions
    with pytest.raises(ValueError, match="needs at least 64 vectors"):
        nnlift.FaissIndex("IVF64,Flat").add(unit(rng, 5, 4))


def test_corrupted_artifact_is_refused(tmp_path, rng):
    index = ExactIndex().add(unit(rng, 20, 4), ids=[f"s{i}" for i in range(20)])
    path = index.save(tmp_path / "ix")
    vectors_file = path / "vectors.npy"
    data = bytearray(vectors_file.read_bytes())
    data[-1] ^= 0xFF
    vectors_file.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        nnlift.load(path)


def test_artifact_version_and_class_checks(tmp_path, rng):
    path = ExactIndex().add(unit(rng, 3, 4)).save(tmp_path / "ix")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="format version 99"):
        nnlift.load(path)
    manifest["format_version"] = FORMAT_VERSION
    manifest["class"] = "os:system"
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="fails its own checksum"):
        nnlift.load(path)
    manifest["manifest_sha256"] = _manifest_digest(manifest)  # a crafted manifest, checksum recomputed
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="not an nnlift class"):
        nnlift.load(path)
    with pytest.raises(ArtifactError, match="not an nnlift artifact"):
        nnlift.load(tmp_path / "missing")


def test_save_replaces_atomically(tmp_path, rng):
    path = tmp_path / "ix"
    ExactIndex().add(unit(rng, 3, 4)).save(path)
    with pytest.raises(ArtifactError, match="already holds an nnlift artifact; pass overwrite=True"):
        ExactIndex().add(unit(rng, 7, 4)).save(path)
    assert len(nnlift.load(path)) == 3
    ExactIndex().add(unit(rng, 7, 4)).save(path, overwrite=True)
    assert len(nnlift.load(path)) == 7
    assert [p.name for p in tmp_path.iterdir()] == ["ix"]  # no temporary left behind


def test_faiss_use_gpu_without_a_gpu_warns_and_runs_on_the_cpu(rng):
    faiss = pytest.importorskip("faiss")
    if hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is visible: the index really runs there")
    vectors = unit(rng, 50, 8)
    with pytest.warns(UserWarning, match=r"use_gpu=True\): (this faiss build has no GPU support|no GPU is visible)"):
        index = nnlift.FaissIndex("Flat", use_gpu=True).add(vectors)
    np.testing.assert_array_equal(index.search(vectors[:3], 1).ids[:, 0], [0, 1, 2])
