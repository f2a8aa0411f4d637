"""nnlift.distributed against the single-machine methods: equal results, resumable jobs, faults, bad input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from nnlift import NNN, CSLS, DBNorm, ExactIndex, InvertedSoftmax, NeighborhoodBlender, QBNorm
from nnlift.errors import InputError, MissingExtraError
from nnlift.index import Checked, IVFIndex

ray = pytest.importorskip("ray")
D = pytest.importorskip("nnlift.distributed")

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_nnn_bias_equals_fit_bit_for_bit_with_fold(collection):
    model = NNN(k=8).fit(collection["database"], collection["bank"])
    out = D.collect(D.nnn_bias(collection["glob"], collection["bank"], 8, fold=True, batch_rows=700))
    assert np.array_equal(out["id"], np.arange(6000))
    assert np.array_equal(out["bias"], model.bias_)
    assert np.array_equal(out["folded"], model.folded_database())


def test_dataset_input_and_npy_shards_number_rows_globally(collection, tmp_path):
    database, bank = collection["database"], collection["bank"]
    for number, part in enumerate(np.array_split(database, 3)):
        np.save(tmp_path / f"part-{number}.npy", part)
    from_files = D.collect(D.nnn_bias(str(tmp_path / "*.npy"), bank, 4))
    rows = [{"key": int(i) + 100, "vector": v} for i, v in enumerate(database[:500])]
    from_dataset = D.collect(
        D.nnn_bias(ray.data.from_items(rows), bank, 4, id_column="key", embedding_column="vector"), order_by="key"
    )
    reference = NNN(k=4).fit(database, bank).bias_
    assert np.array_equal(from_files["id"], np.arange(6000)) and np.array_equal(from_files["bias"], reference)
    assert np.array_equal(from_dataset["key"], np.arange(100, 600))
    assert np.array_equal(from_dataset["bias"], reference[:500])


def test_bank_statistics_match_the_corrections(collection):
    database, bank, path = collection["database"], collection["bank"], collection["glob"]
    gallery = database[::7]
    csls = D.collect(D.csls_bias(path, bank, 5))["bias"]
    assert np.array_equal(csls, CSLS(k=5).fit(database, bank).bias_)
    # Log-sum-exps are float32 sums, not selections: equal within a few units in the last place.
    softmax = D.collect(D.softmax_bias(path, bank, 20.0))["bias"]
    np.testing.assert_allclose(softmax, InvertedSoftmax(beta=20.0).fit(database, bank).bias_, rtol=1e-6, atol=1e-7)
    dbnorm = D.collect(D.dbnorm_bias(path, bank, gallery, 20.0, 15.0))["bias"]
    expected = DBNorm(beta=20.0, gallery_beta=15.0).fit(database, bank, gallery_bank=gallery).bias_
    np.testing.assert_allclose(dbnorm, expected, rtol=1e-6, atol=1e-7)
    for k in (1, 3):
        active = D.qbnorm_activation(path, bank, k, batch_rows=900)
        assert np.array_equal(active, np.flatnonzero(QBNorm(k=k).fit(database, bank).activated_))


def test_search_held_and_streamed(collection):
    model = NNN(k=8, alpha=0.8).fit(collection["database"], collection["bank"])
    held = D.collect(D.search(collection["query_glob"], model, 7, batch_rows=64))
    found = model.search(collection["queries"], 7)
    assert np.array_equal(held["neighbors"], found.ids) and np.array_equal(held["scores"], found.scores)
    streamed = D.search(collection["queries"], None, 7, database=collection["glob"], batch_rows=500)
    exact = ExactIndex(progress=False).add(collection["database"]).search(collection["queries"], 7)
    assert np.array_equal(streamed.ids, exact.ids) and np.array_equal(streamed.scores, exact.scores)
    bias = model.bias_ * np.float32(0.8)
    by_bias = D.collect(D.search(collection["query_glob"], bias, 7, database=collection["database"]))
    assert np.array_equal(by_bias["neighbors"], found.ids)


def test_exact_blending_equals_the_blender(collection):
    blended = D.collect(D.blend(collection["glob"], (0.6, 0.5), k=6, batch_rows=1000))
    reference = NeighborhoodBlender((0.6, 0.5), k=6, progress=False).fit_transform(collection["database"])
    assert np.array_equal(blended["id"], np.arange(6000))
    assert np.abs(blended["embedding"] - reference).max() <= 1e-6


def test_approximate_bank_index_reports_its_measured_error_and_acts_on_it(collection):
    exact = NNN(k=8).fit(collection["database"], collection["bank"]).bias_
    for probes in (1, 16):  # one list of 16 falls short and is answered exactly; all 16 lists are exact anyway
        checks: list = []
        index = Checked(IVFIndex(n_lists=16, n_probe=probes), sample=256)
        out = D.collect(D.nnn_bias(collection["glob"], collection["bank"], 8, index=index, checks=checks))
        assert len(checks) == 1 and checks[0]["on"] == "bank" and checks[0]["reduction"] == "topk_mean"
        record = checks[0]
        if record["action"] == "exact":
            assert probes == 1 and record["error"] > index.max_error
            assert np.array_equal(out["bias"], exact)
        else:
            assert probes == 16 and record["error"] <= index.max_error
            assert np.abs(out["bias"] - exact).max() <= 1e-6


def test_output_is_resumable_and_guarded(collection, tmp_path):
    output = tmp_path / "bias"
    first = D.collect(D.nnn_bias(collection["glob"], collection["bank"], 8, output=output))
    report = D.last_report()
    assert report.written == list(range(8)) and report.skipped == [] and report.rows == 6000
    assert sum(w["rows"] for w in report.workers.values()) == 6000
    assert all(w["rows_per_second"] > 0 for w in report.workers.values())
    before = {p.name: p.read_bytes() for p in output.glob("part-*.parquet")}
    again = D.collect(D.nnn_bias(collection["glob"], collection["bank"], 8, output=output))
    assert D.last_report().written == [] and D.last_report().skipped == list(range(8))
    assert {p.name: p.read_bytes() for p in output.glob("part-*.parquet")} == before
    assert np.array_equal(again["bias"], first["bias"])
    with pytest.raises(InputError, match="other parameters"):
        D.nnn_bias(collection["glob"], collection["bank"], 5, output=output)
    changed = D.collect(D.nnn_bias(collection["glob"], collection["bank"], 5, output=output, overwrite=True))
    assert np.array_equal(changed["bias"], NNN(k=5).fit(collection["database"], collection["bank"]).bias_)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds other files"):
        D.nnn_bias(collection["glob"], collection["bank"], 5, output=foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_killed_worker_is_retried_and_the_output_is_complete(collection, tmp_path):
    flag = tmp_path / "kill-once"
    flag.touch()
    path = str(flag)

    def dies_once(batch):
        try:
            os.unlink(path)
        except FileNotFoundError:
            return batch
        os._exit(1)  # the worker process dies in the middle of the job

    rows = [{"id": i, "embedding": v} for i, v in enumerate(collection["database"][:3000])]
    # A 1-CPU map beside the actor pool (0.7 CPU per actor) would leave it no room on two CPUs: ask for a share.
    source = ray.data.from_items(rows).map_batches(dies_once, batch_size=500, batch_format="numpy", num_cpus=0.25)
    out = D.collect(D.nnn_bias(source, collection["bank"], 8, batch_rows=500))
    assert not flag.exists()
    reference = NNN(k=8).fit(collection["database"][:3000], collection["bank"]).bias_
    assert np.array_equal(out["id"], np.arange(3000)) and np.array_equal(out["bias"], reference)


def test_bad_input_names_the_argument(collection, tmp_path):
    bank = collection["bank"]
    with pytest.raises(InputError, match="no column 'vec'"):
        D.collect(D.nnn_bias(collection["glob"], bank, 4, embedding_column="vec"))
    with pytest.raises(InputError, match="matches no"):
        D.nnn_bias(str(tmp_path / "nothing-*.parquet"), bank, 4)
    with pytest.raises(InputError, match="k="):
        D.nnn_bias(collection["glob"], bank[:3], 4)
    with pytest.raises(InputError, match="dimensions|columns"):
        D.collect(D.nnn_bias(collection["glob"], bank[:, :16], 4))
    # A Dataset's columns are known only on the workers: their error is raised again as itself, with its message.
    with pytest.raises(InputError, match="on a Ray worker: dataset has no column 'id'"):
        D.collect(D.nnn_bias(ray.data.from_items([{"key": 0, "embedding": bank[0]}]), bank, 4))
    with pytest.raises(InputError, match="on a Ray worker: column .embedding. must have 16 columns"):
        D.collect(D.nnn_bias(ray.data.from_items([{"id": 0, "embedding": bank[0]}]), bank[:, :16], 4))
    with pytest.raises(TypeError, match="index= does not apply"):
        D.softmax_bias(collection["glob"], bank, 20.0, index=IVFIndex())
    with pytest.raises(InputError, match="gallery_bank is required"):
        D.dbnorm_bias(collection["glob"], bank, None)
    with pytest.raises(InputError, match="shard files"):
        D.nnn_bias(ray.data.from_items([{"id": 0, "embedding": bank[0]}]), bank, 4, output=tmp_path / "o")
    with pytest.raises(InputError, match="must be < 1"):
        D.blend(collection["glob"], (1.0,), 4)
    with pytest.raises(TypeError, match="fitted correction"):
        D.search(collection["query_glob"], "nnn", 4)


def test_missing_extra_names_the_install(monkeypatch):
    from nnlift.distributed._ray import ray_module

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingExtraError, match=r"nnlift\[ray\]"):
        ray_module()


DRIVER = """
import sys
import numpy as np
from nnlift import distributed
distributed.nnn_bias(sys.argv[1], np.load(sys.argv[2]), 16, output=sys.argv[3], workers=1, batch_rows=2048)
"""


def test_a_killed_driver_resumes_and_the_rerun_is_identical(ray_cluster, tmp_path):
    """The driver dies mid-job (SIGKILL to its process group); a rerun skips the finished shards only."""
    rng = np.random.default_rng(3)
    database = rng.standard_normal((12 * 6000, 64)).astype(np.float32)
    bank = rng.standard_normal((6000, 64)).astype(np.float32)
    from .conftest import write_parquet_shards

    write_parquet_shards(tmp_path / "in", database, 12)
    np.save(tmp_path / "bank.npy", bank)
    output = tmp_path / "out"
    environment = {**os.environ, "RAY_ADDRESS": ray_cluster.get_runtime_context().gcs_address}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(tmp_path / "in" / "*.parquet"), str(tmp_path / "bank.npy"), str(output)],
        env=environment,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list((output / "_stats").glob("*.json"))) < 3:
            assert driver.poll() is None, "the driver ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was finished in 120 s"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    done_at_kill = sorted(int(p.stem) for p in (output / "_stats").glob("*.json"))
    assert 3 <= len(done_at_kill) < 12
    before = {n: (output / f"part-{n:05d}.parquet").read_bytes() for n in done_at_kill}
    resumed = D.collect(D.nnn_bias(str(tmp_path / "in" / "*.parquet"), bank, 16, output=output, batch_rows=2048))
    report = D.last_report()
    assert set(done_at_kill) <= set(report.skipped) and sorted(report.skipped + report.written) == list(range(12))
    assert all((output / f"part-{n:05d}.parquet").read_bytes() == before[n] for n in done_at_kill)
    assert not list(output.glob(".*.tmp")), "a killed writer's temporary file is left behind"
    assert np.array_equal(resumed["id"], np.arange(len(database)))
    assert np.array_equal(resumed["bias"], NNN(k=16).fit(database, bank).bias_)


def test_qdrant_write_back_from_workers_matches_the_single_machine_writer(collection, tmp_path):
    pytest.importorskip("qdrant_client")
    from qdrant_client import QdrantClient, models

    from nnlift.index.qdrant import QdrantIndex
    from nnlift.qdrant import write_nnn

    from .conftest import write_parquet_shards

    database, bank = collection["database"][:2000], collection["bank"]
    shards = write_parquet_shards(tmp_path / "in", database, 2)
    store = str(tmp_path / "qdrant")
    client = QdrantClient(path=store)
    client.create_collection("c", vectors_config={"dense": models.VectorParams(size=32, distance=models.Distance.COSINE)})
    QdrantIndex("c", client=client, using="dense", progress=False).add(database, ids=list(range(2000)))
    client.close()

    folded = D.nnn_bias([str(p) for p in shards], bank, 8, fold=True)
    first = D.write_qdrant(folded, "c", path=store, using="dense")
    assert (first["points"], first["written"], first["skipped"]) == (2000, 2000, 0)
    again = D.write_qdrant(folded, "c", path=store, using="dense")
    assert (again["written"], again["skipped"]) == (0, 2000)

    client = QdrantClient(path=store)
    try:
        index = QdrantIndex("c", client=client, using="dense", progress=False)
        single = write_nnn(index, bank, k=8)  # the single-machine writer finds every point already written
        assert (single["written"], single["skipped"]) == (0, 2000)
        stored = client.retrieve(first["destination"].collection, ids=[0, 1999], with_vectors=True, with_payload=True)
        expected = single["model"].folded_database()
        for point in stored:
            vector = point.vector if isinstance(point.vector, list) else next(iter(point.vector.values()))
            row = int(point.id)  # integer ids are the point ids, in the companion collection too
            np.testing.assert_allclose(vector, expected[row], rtol=1e-6, atol=1e-6)
            assert point.payload["nnn_bias"] == pytest.approx(float(single["model"].bias_[row]), abs=1e-7)
    finally:
        client.close()
