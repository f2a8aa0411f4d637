"""The artifact format: saves never lose data, loads never trust the files."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlift
from nnlift import ArtifactError, ExactIndex
from nnlift._artifact import MANIFEST, _manifest_digest, _sha256

from .conftest import unit


def rewrite(path: Path, change) -> None:
    """Edit a manifest as an attacker would: change it, then recompute its own checksum."""
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    manifest["manifest_sha256"] = _manifest_digest(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


def edit_raw(path: Path, change) -> None:
    manifest = json.loads((path / MANIFEST).read_text())
    change(manifest)
    (path / MANIFEST).write_text(json.dumps(manifest))


# -- saving never destroys what is not ours ------------------------------------------------
def test_save_refuses_a_folder_with_user_files(tmp_path, rng):
    folder = tmp_path / "my_data"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    model = nnlift.NNN(k=2).fit(unit(rng, 10, 4), unit(rng, 5, 4))
    for overwrite in (False, True):
        with pytest.raises(ArtifactError, match="folder with other content, not an nnlift artifact"):
            model.save(folder, overwrite=overwrite)
    assert (folder / "notes.txt").read_text() == "mine"


def test_save_refuses_a_regular_file(tmp_path, rng):
    report = tmp_path / "report.txt"
    report.write_text("keep me")
    with pytest.raises(ArtifactError, match="exists and is not an nnlift artifact"):
        ExactIndex().add(unit(rng, 3, 4)).save(report, overwrite=True)
    assert report.read_text() == "keep me"


def test_save_into_an_empty_folder_and_replace_only_with_overwrite(tmp_path, rng):
    target = tmp_path / "empty"
    target.mkdir()
    ExactIndex().add(unit(rng, 3, 4)).save(target)
    with pytest.raises(ArtifactError, match="pass overwrite=True"):
        ExactIndex().add(unit(rng, 5, 4)).save(target)
    ExactIndex().add(unit(rng, 5, 4)).save(target, overwrite=True)
    assert len(nnlift.load(target)) == 5


def test_artifact_folders_get_the_umask_permissions(tmp_path, rng):
    old = os.umask(0o022)
    try:
        path = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 4, 3), ["a", "b", "c", "d"]).save(tmp_path / "r")
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o755  # mkdtemp would give 0700
    assert ((path / "index").stat().st_mode & 0o777) == 0o755


def test_leftovers_of_killed_saves_are_removed_by_the_next_save(tmp_path, rng):
    target = tmp_path / "ix"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    stale = tmp_path / f".ix.nnlift-tmp-{pid}-0123abcd"
    stale.mkdir()
    (stale / "vectors.npy").write_bytes(b"x" * 1000)
    alive = tmp_path / f".ix.nnlift-tmp-{os.getpid()}-0123abcd"  # a save of a running process: left alone
    alive.mkdir()
    unrelated = tmp_path / ".ix.backup"
    unrelated.mkdir()
    ExactIndex().add(unit(rng, 3, 4)).save(target)
    assert not stale.exists() and alive.exists() and unrelated.exists()
    # A file write killed half-way leaves a temporary file; the next write of that file removes it.
    from nnlift._artifact import publish_file

    half = tmp_path / f".out.npy.nnlift-tmp-{pid}-0123abcd"
    half.write_bytes(b"half")
    publish_file(tmp_path / "out.npy", lambda handle: np.save(handle, np.arange(3)))
    assert not half.exists() and np.load(tmp_path / "out.npy").tolist() == [0, 1, 2]


def test_a_save_killed_between_the_fallback_renames_is_restored(tmp_path, rng):
    # Without renameat2 the old artifact is renamed aside first; a kill right then leaves it there.
    dead = int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True).stdout)
    target = tmp_path / "ix"
    ExactIndex().add(unit(rng, 6, 4)).save(target)
    target.rename(tmp_path / f".ix.nnlift-old-{dead}-0123abcd")
    assert len(nnlift.load(target)) == 6  # loading puts it back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ix"]


KILLED_SAVER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import nnlift
    target = sys.argv[1]
    database = np.random.default_rng(0).standard_normal((150_000, 64)).astype(np.float32)
    print("ready", flush=True)
    version = 1
    while True:
        database[0, 0] = version  # each version's first entry names it
        nnlift.ExactIndex(metric="ip").add(database).save(target, overwrite=True)
        print(version, flush=True)
        version += 1
    """
)


def test_kill_at_random_moments_leaves_the_old_or_the_new_artifact(tmp_path):
    target = tmp_path / "big"
    rng = np.random.default_rng(7)
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVER, str(target)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "ready"
    assert process.stdout.readline().strip() == "1"  # one complete save, about 40 MB
    seen = set()
    try:
        for _ in range(12):
            time.sleep(float(rng.uniform(0.0, 0.4)))
            process.send_signal(signal.SIGSTOP)  # freeze it at a random point, check, then let it go on
            index = nnlift.load(target)  # never half an artifact, never nothing
            seen.add(int(index.get([0])[0, 0]))
            process.send_signal(signal.SIGCONT)
        time.sleep(float(rng.uniform(0.0, 0.4)))
    finally:
        process.kill()
        process.wait()
    assert len(nnlift.load(target)) == 150_000
    assert len(seen) > 1  # the checks did land on different saves
    # A kill leaves a temporary folder of the dead process; the next save removes it.
    ExactIndex().add(np.eye(3)).save(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_repeated_sigkill_mid_save(tmp_path):
    target = tmp_path / "big"
    rng = np.random.default_rng(11)
    for trial in range(10):
        process = subprocess.Popen(
            [sys.executable, "-c", KILLED_SAVER, str(target)], stdout=subprocess.PIPE, text=True
        )
        assert process.stdout.readline().strip() == "ready"
        if trial == 0:
            assert process.stdout.readline().strip() == "1"
        time.sleep(float(rng.uniform(0.0, 0.5)))
        process.kill()
        process.wait()
        assert len(nnlift.load(target)) == 150_000  # the old or the new artifact, loadable
    ExactIndex().add(np.eye(3)).save(target, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big"]


def test_composite_save_appears_whole(tmp_path, rng, monkeypatch):
    # A failure while the index part is being written leaves the old artifact whole.
    path = tmp_path / "rec"
    nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 5, 3), list("abcde")).save(path)
    new = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 7, 3), list("abcdefg"))

    def broken(self):
        raise OSError("disk full")

    monkeypatch.setattr(ExactIndex, "_state", broken)
    with pytest.raises(OSError, match="disk full"):
        new.save(path, overwrite=True)
    monkeypatch.undo()
    assert len(nnlift.load(path)) == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec"]


# -- loading never trusts the files ---------------------------------------------------------
@pytest.fixture
def saved(tmp_path, rng):
    model = nnlift.NNN(k=3, alpha=0.5).fit(unit(rng, 30, 4), unit(rng, 10, 4))
    return model.save(tmp_path / "nnn")


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["params"].update(alpha=0.9),
        lambda m: m["params"].update(metric="ip"),
        lambda m: m.update({"class": "nnlift.correct.softmax:DBNorm"}),
        lambda m: m["arrays"].pop("bias_"),
    ],
    ids=["alpha", "metric", "relabelled", "dropped-array"],
)
def test_an_edited_manifest_fails_its_own_checksum(saved, change):
    edit_raw(saved, change)
    with pytest.raises(ArtifactError, match="fails its own checksum"):
        nnlift.load(saved)


def test_dropped_external_ids_are_caught(tmp_path, rng):
    path = ExactIndex().add(unit(rng, 4, 3), ids=["a", "b", "c", "d"]).save(tmp_path / "ix")
    edit_raw(path, lambda m: m["arrays"].pop("external_ids"))
    with pytest.raises(ArtifactError, match="fails its own checksum"):
        nnlift.load(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: m["params"].update(alpha="high"), "parameter alpha='high' is not valid"),
        (lambda m: m["params"].update(k=2.5), "parameter k=2.5 is not valid"),
        (lambda m: m["params"].update(metric="l2"), "metric='l2'"),
        (lambda m: m["params"].update(surprise=1), "do not match NNN"),
        (lambda m: m["params"].pop("k"), "do not match NNN"),
        (lambda m: m["arrays"].pop("bias_"), "missing arrays \\['bias_'\\]"),
        (lambda m: m["arrays"]["bias_"].pop("sha256"), "must have exactly"),
        (lambda m: m["arrays"]["bias_"].update(file="../../x.npy"), "names the file"),
        (lambda m: m.update(parts={"x": {"folder": "../X", "manifest_sha256": "0"}}), "subfolder of the same name"),
        (lambda m: m.update({"class": "os:system"}), "not an nnlift class"),
        (lambda m: m.update({"class": "nnlift.correct.nnn:np"}), "not a saveable nnlift class"),
        (lambda m: m.update(params=[1, 2]), "must be a dict"),
        (lambda m: m.update(extra={"fitted": "yes"}), "extra.fitted must be true or false"),
    ],
)
def test_a_crafted_manifest_is_refused(saved, change, message):
    rewrite(saved, change)
    with pytest.raises(ArtifactError, match=message):
        nnlift.load(saved)


def test_a_part_outside_the_folder_is_never_read(tmp_path, rng):
    outside = ExactIndex().add(unit(rng, 9, 3), ids=list("abcdefghi")).save(tmp_path / "X")
    path = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 3, 3), list("abc")).save(tmp_path / "inner" / "r")
    rewrite(path, lambda m: m["parts"].update(index={"folder": "../../X", "manifest_sha256": "0"}))
    with pytest.raises(ArtifactError, match="subfolder of the same name"):
        nnlift.load(path)
    assert outside.exists()


def test_a_swapped_part_is_caught(tmp_path, rng):
    first = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 3, 3), list("abc")).save(tmp_path / "a")
    second = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 4, 3), list("abcd")).save(tmp_path / "b")
    import shutil

    shutil.rmtree(first / "index")
    shutil.copytree(second / "index", first / "index")
    with pytest.raises(ArtifactError, match="not the one this artifact was saved with"):
        nnlift.load(first)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"[1, 2, 3]", "not an nnlift manifest"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"{not json", "is corrupted"),
        (b'"a string"', "not an nnlift manifest"),
    ],
)
def test_malformed_manifests_raise_artifact_error(saved, content, message):
    (saved / MANIFEST).write_bytes(content)
    with pytest.raises(ArtifactError, match=message):
        nnlift.load(saved)


def test_another_class_through_its_own_load(saved):
    with pytest.raises(ArtifactError, match="holds a NNN, not a CSLS"):
        nnlift.CSLS.load(saved)
    with pytest.raises(ArtifactError, match="not a ExactIndex"):
        ExactIndex.load(saved)


def test_array_shapes_are_checked_against_the_class(tmp_path, rng):
    path = nnlift.NNN(k=2).fit(unit(rng, 10, 4), unit(rng, 5, 4)).save(tmp_path / "m")
    np.save(path / "bias_.npy", np.zeros(7, dtype=np.float32))  # wrong length, checksum recomputed

    def fix(m):
        m["arrays"]["bias_"].update(shape=[7], sha256=_sha256(path / "bias_.npy"))

    rewrite(path, fix)
    with pytest.raises(ArtifactError, match="bias_ must have shape \\(10,\\)"):
        nnlift.load(path)


# -- hnswlib graphs are checked before hnswlib reads them --------------------------------------
CRAFTED_GRAPHS = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import nnlift
    from nnlift._artifact import MANIFEST, _manifest_digest, _sha256
    from nnlift.index import HnswIndex
    from pathlib import Path
    root = Path(sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    data = rng.standard_normal((400, 8)).astype(np.float32)
    original = HnswIndex(M=4, ef_construction=20).add(data).save(root / "base")
    refused = loaded = 0
    for trial in range(int(sys.argv[3])):
        path = root / f"t{trial}"
        import shutil
        shutil.copytree(original, path)
        blob = np.load(path / "hnsw_graph.npy")
        positions = rng.integers(96, len(blob), size=int(rng.integers(1, 6)))
        blob[positions] = rng.integers(0, 256, size=len(positions), dtype=np.uint8)
        np.save(path / "hnsw_graph.npy", blob)
        manifest = json.loads((path / MANIFEST).read_text())
        manifest["arrays"]["hnsw_graph"]["sha256"] = _sha256(path / "hnsw_graph.npy")
        manifest["manifest_sha256"] = _manifest_digest(manifest)
        (path / MANIFEST).write_text(json.dumps(manifest))
        try:
            index = nnlift.load(path)
        except nnlift.ArtifactError:
            refused += 1
            continue
        index.search(data[:50], 10)  # a graph that passed the check must search without a crash
        loaded += 1
    print(refused, loaded)
    """
)


def test_crafted_hnsw_graphs_never_crash_the_process(tmp_path):
    pytest.importorskip("hnswlib")
    result = subprocess.run(
        [sys.executable, "-c", CRAFTED_GRAPHS, str(tmp_path), "3", "40"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    refused, loaded = map(int, result.stdout.split())
    assert refused + loaded == 40 and refused > 20  # most flips land in links, labels or vectors


def test_hnsw_graph_checker_refuses_each_kind_of_defect(tmp_path, rng):
    pytest.importorskip("hnswlib")
    from nnlift.index.hnsw import HnswIndex, check_graph

    index = HnswIndex(M=4, ef_construction=20).add(unit(rng, 300, 8))
    blob = index._state()[1]["hnsw_graph"]
    capacity = index._state()[0]["capacity"]
    check_graph(blob, dim=8, M=4, ef_construction=20, capacity=capacity)  # the real graph passes

    def broken(offset, value, dtype="<u4"):
        copy = blob.copy()
        copy[offset : offset + np.dtype(dtype).itemsize] = np.frombuffer(np.array(value, dtype=dtype).tobytes(), np.uint8)
        return copy

    size = 4 + 4 * 8 + 8 * 4 + 8
    first_link = 96 + 4  # node 0's first level-0 neighbour
    cases = {
        "past the last node": broken(first_link, 10_000),
        "more than 8 links": broken(96, 9, "<u2"),
        "entry point": broken(52, 5000),
        "maxM is": broken(56, 5, "<u8"),
        "labels": broken(96 + size - 8, 299_999, "<u8"),
        "bytes past": np.concatenate([blob, np.zeros(4, np.uint8)]),
        "shorter": blob[:500],
    }
    for message, bad in cases.items():
        with pytest.raises(ArtifactError, match=message):
            check_graph(bad, dim=8, M=4, ef_construction=20, capacity=capacity)
    with pytest.raises(ArtifactError, match="capacity"):
        check_graph(blob, dim=8, M=4, ef_construction=20, capacity=10**12)


# -- round trips ---------------------------------------------------------------------------
@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 30),
    d=st.integers(1, 6),
    string_ids=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_property_index_save_load_round_trips_exactly(tmp_path_factory, n, d, string_ids, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d)).astype(np.float32) + 0.01
    ids = [f"id{i}" for i in rng.permutation(n)] if string_ids else rng.permutation(n).tolist()
    index = ExactIndex().add(vectors, ids=ids)
    again = nnlift.load(index.save(tmp_path_factory.mktemp("ix") / "ix"))
    a, b = index.search(vectors, min(n, 5)), again.search(vectors, min(n, 5))
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert again.ids.tolist() == index.ids.tolist()


@pytest.mark.parametrize(
    "make",
    [
        lambda: nnlift.IVFIndex(n_lists=4, n_probe=1),
        lambda: nnlift.FaissIndex("HNSW8"),
        lambda: nnlift.FaissIndex("IVF4,Flat", nprobe=1),
        lambda: nnlift.HnswIndex(M=4, ef_search=8),
    ],
    ids=["ivf", "faiss-hnsw", "faiss-ivf", "hnswlib"],
)
def test_approximate_indexes_search_the_same_after_loading(tmp_path, rng, make):
    pytest.importorskip("faiss")
    pytest.importorskip("hnswlib")
    vectors, queries = unit(rng, 500, 8), unit(rng, 60, 8)
    index = make().add(vectors)
    before = index.search(queries, 10)
    after = nnlift.load(index.save(tmp_path / "ix")).search(queries, 10)
    np.testing.assert_array_equal(before.ids, after.ids)


def test_sampled_matrix_is_an_artifact_and_reads_the_old_npz(tmp_path, rng):
    from nnlift.sampling import SampledMatrix, sample_neighbors

    for ids in (None, [f"p{i}" for i in range(40)]):
        sampled = sample_neighbors(unit(rng, 40, 6), ids, sample=30, limit=4, progress=False)
        again = nnlift.load(sampled.save(tmp_path / f"s{ids is None}"))
        assert again.ids == sampled.ids and (again.matrix != sampled.matrix).nnz == 0
        np.testing.assert_array_equal(again.vectors, sampled.vectors)
    m = sampled.matrix
    np.savez(tmp_path / "old.npz", data=m.data, indices=m.indices, indptr=m.indptr, shape=np.array(m.shape),
             ids=np.asarray(sampled.ids), vectors=sampled.vectors)  # fmt: skip
    old = SampledMatrix.load(tmp_path / "old.npz")
    assert old.ids == sampled.ids and (old.matrix != m).nnz == 0
    path = sampled.save(tmp_path / "bad")
    rewrite(path, lambda manifest: manifest["extra"].update(n=31))
    with pytest.raises(ArtifactError, match="do not fit together"):
        nnlift.load(path)


def test_a_crafted_faiss_graph_is_refused_before_any_search(tmp_path, rng):
    faiss = pytest.importorskip("faiss")
    index = nnlift.FaissIndex("HNSW8").add(unit(rng, 300, 8))
    neighbors = faiss.vector_to_array(index._index.hnsw.neighbors)
    neighbors[:50] = 10**8  # links past the last node: a search would read outside the graph
    faiss.copy_array_to_vector(neighbors, index._index.hnsw.neighbors)
    path = index.save(tmp_path / "ix")  # a well-formed artifact around a crafted blob
    with pytest.raises(ArtifactError, match="faiss refuses the saved index"):
        nnlift.load(path)
    other = nnlift.FaissIndex("Flat").add(unit(rng, 30, 6)).save(tmp_path / "six")
    rewrite(other, lambda m: m["extra"].update(dim=8))
    with pytest.raises(ArtifactError, match="dimension 6"):
        nnlift.load(other)


def test_every_file_and_folder_is_on_disk_before_the_rename(tmp_path, rng, monkeypatch):
    import nnlift._artifact as artifact

    events = []
    real_fsync, real_exchange, real_replace = os.fsync, artifact._exchange, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"))), real_fsync(fd)))
    monkeypatch.setattr(artifact, "_exchange", lambda a, b: (events.append(("publish", str(b))), real_exchange(a, b))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(("publish", str(b))), real_replace(a, b))[1])
    model = nnlift.Recommender(index=ExactIndex()).fit(unit(rng, 5, 3), list("abcde"))
    for overwrite in (False, True):
        events.clear()
        path = model.save(tmp_path / "r", overwrite=overwrite)
        publish = events.index(("publish", str(path)))
        synced = {Path(name).name for kind, name in events[:publish] if kind == "fsync"}
        # every array and manifest, both folders of the tree, before it appears; the parent after it appears
        assert {"manifest.json", "vectors.npy", "external_ids.npy", "index"} <= synced
        assert ("fsync", str(tmp_path)) in events[publish:]
