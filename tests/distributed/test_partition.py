"""Blending on an IVF partition join: exact when every list is probed, and its measured recall is the graph's."""

from __future__ import annotations

import numpy as np
import pytest

from nnlift import NeighborhoodBlender
from nnlift.errors import InputError
from nnlift.index.checked import LowRecallError
from nnlift.index.recall import pooled_recall, recall_counts
from nnlift.neighbors import Neighbors

ray = pytest.importorskip("ray")
D = pytest.importorskip("nnlift.distributed")
from nnlift.distributed.partition import hashed_rank, hashed_sample
from nnlift.distributed.sources import Columns

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_probing_every_list_is_exact_blending(collection):
    checks: list = []
    out = D.collect(D.blend(collection["glob"], (0.6, 0.5), k=6, lists=8, n_probe=8, checks=checks))
    reference = NeighborhoodBlender((0.6, 0.5), k=6, progress=False).fit_transform(collection["database"])
    assert np.array_equal(out["id"], np.arange(6000)) and set(out) == {"id", "embedding"}
    assert np.abs(out["embedding"] - reference).max() <= 1e-6
    assert [(c["pass"], c["recall"], c["action"]) for c in checks] == [(0, 1.0, "none"), (1, 1.0, "none")]


def test_the_reported_recall_is_the_graphs_on_the_check_rows(collection):
    database, threshold, k = collection["database"], 0.5, 6
    checks: list = []
    with pytest.warns(UserWarning, match=r"recall 0\.\d+ < 1.0 on 1000 sampled rows; raise n_probe \(now 3 of 16"):
        out = D.collect(
            D.blend(
                collection["glob"], (threshold,), k=k, lists=16, n_probe=3, checks=checks, graph=True, min_recall=1.0
            )
        )
    exact = NeighborhoodBlender((threshold,), k=k, progress=False).fit(database).neighbors_
    # The exact graph's other neighbours (itself left out), and what the partition join found.
    others = np.where(exact.ids == np.arange(6000)[:, None], -1, exact.ids)
    wanted, found = Neighbors(others, exact.scores), Neighbors(out["neighbors"], np.zeros(out["neighbors"].shape))
    assert np.array_equal(out["neighbors"][:, 0], np.arange(6000))  # itself first: no exact duplicates here
    # The check rows: after the 5,000 k-means rows in hashed order (pass 0's seed is 0).
    check = np.argsort(hashed_rank(np.arange(6000), 0), kind="stable")[5000:]
    hits, totals = recall_counts(found[check], wanted[check])
    [record] = checks
    assert record["rows"] == 1000 and record["action"] == "warn"
    assert record["recall"] == pytest.approx(pooled_recall(hits, totals), abs=1e-12)
    overall = pooled_recall(*recall_counts(found, wanted))
    assert 0.3 < overall < 0.999 and abs(record["recall"] - overall) < 4 * record["standard_error"] + 0.01
    # A row the join found all of is blended as the exact blender blends it.
    reference = NeighborhoodBlender((threshold,), k=k, progress=False).fit_transform(database)
    complete = recall_counts(found, wanted)[0] == recall_counts(found, wanted)[1]
    assert complete.mean() > 0.2
    assert np.abs(out["embedding"][complete] - reference[complete]).max() <= 1e-6
    with pytest.raises(LowRecallError, match="raise n_probe"):
        D.blend(collection["glob"], (threshold,), k=k, lists=16, n_probe=1, min_recall=1.0, on_low="raise")


def test_the_sample_is_fixed_by_the_ids_not_the_blocks(collection):
    database = collection["database"]
    ids = np.arange(6000)
    ranks = hashed_rank(ids, 3)
    assert len(np.unique(ranks)) == 6000 and np.array_equal(hashed_rank(ids[::-1], 3), ranks[::-1])
    assert not np.array_equal(hashed_rank(ids, 4), ranks)
    from nnlift.distributed.jobs import arrow_table

    table = arrow_table({"id": ids, "embedding": database})
    few = ray.data.from_arrow(table).repartition(2)
    many = ray.data.from_arrow(table).repartition(13)
    first = hashed_sample(few, Columns(), 700, 6000, seed=3)
    second = hashed_sample(many, Columns(), 700, 6000, seed=3)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    assert np.array_equal(first[0], np.argsort(ranks, kind="stable")[:700])
    assert np.array_equal(first[1], database[first[0]])


def test_bad_input_names_the_argument(collection):
    path = collection["glob"]
    with pytest.raises(InputError, match="n_probe=9 is more than the 8 lists"):
        D.blend(path, (0.5,), lists=8, n_probe=9)
    with pytest.raises(InputError, match="lists must be"):
        D.blend(path, (0.5,), lists=0)
    with pytest.raises(InputError, match="on_low must be one of"):
        D.blend(path, (0.5,), lists=8, on_low="exact")
    with pytest.raises(InputError, match="apply to partitioned blending"):
        D.blend(path, (0.5,), graph=True)
    with pytest.raises(InputError, match="needs integer ids"):
        rows = [{"id": f"row{i}", "embedding": collection["bank"][i]} for i in range(50)]
        D.blend(ray.data.from_items(rows), (0.5,), k=3, lists=2, n_probe=1)


def test_a_job_with_output_resumes_by_pass_to_the_same_result(collection, tmp_path):
    folder, options = tmp_path / "job", {"k": 6, "lists": 8, "n_probe": 2}
    first: list = []
    with pytest.warns(UserWarning, match="raise n_probe") as caught:  # 2 of 8 lists: recall about 0.7
        out = D.collect(D.blend(collection["glob"], (0.6, 0.5), checks=first, output=folder, **options))
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert sorted(p.name for p in folder.iterdir() if p.name.startswith("pass")) == [
        "pass-00", "pass-00.centroids.npy", "pass-00.json", "pass-01", "pass-01.centroids.npy", "pass-01.json",
    ]  # fmt: skip
    # As if the driver died while writing pass 1: its parts half written, its record missing.
    (folder / "pass-01.json").unlink()
    (folder / ".pass-01.tmp").mkdir()
    (folder / ".pass-01.tmp" / "half.parquet").write_bytes(b"PAR1")
    again: list = []
    with pytest.warns(UserWarning, match="pass 1: recall") as caught:  # pass 0 is read back, not measured again
        resumed = D.collect(D.blend(collection["glob"], (0.6, 0.5), checks=again, output=folder, **options))
    assert [str(w.message)[:29] for w in caught] == ["partitioned blending pass 1: "]
    assert again[0] == {**first[0], "resumed": True} and "resumed" not in again[1]
    assert again[1]["recall"] == first[1]["recall"]
    assert np.array_equal(resumed["id"], out["id"]) and np.array_equal(resumed["embedding"], out["embedding"])
    assert not (folder / ".pass-01.tmp").exists() and (folder / "pass-01.json").is_file()
    with pytest.raises(InputError, match="other parameters"):
        D.blend(collection["glob"], (0.6, 0.5), output=folder, **{**options, "n_probe": 3})
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="holds other files"):
        D.blend(collection["glob"], (0.6,), output=tmp_path / "mine", **options)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="apply to partitioned blending"):
        D.blend(collection["glob"], (0.6,), output=tmp_path / "exact")
