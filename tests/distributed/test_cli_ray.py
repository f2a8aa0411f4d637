"""`nnlift nnn fit --ray`: the bias as a resumable Ray Data job from the command line."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ray")
pytest.importorskip("typer")

from nnlift import NNN  # noqa: E402
from nnlift import distributed as D  # noqa: E402
from nnlift.distributed import collect, read_output  # noqa: E402

from ..test_cli import run  # noqa: E402

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_nnn_fit_ray_writes_resumable_parts_equal_to_fit(monkeypatch, capsys, collection, tmp_path):
    bank = tmp_path / "bank.npy"
    np.save(bank, collection["bank"])
    output = tmp_path / "out"
    args = ["nnn", "fit", "--database", collection["glob"], "--bank", bank, "--output", output, "-k", "8", "--ray"]
    code, text = run(monkeypatch, capsys, *args, "--fold")
    assert code == 0, text
    assert "8 shard(s) written, 0 already done" in text and "rows/s" in text
    out = collect(read_output(output))
    model = NNN(k=8).fit(collection["database"], collection["bank"])
    assert np.array_equal(out["bias"], model.bias_) and np.array_equal(out["folded"], model.folded_database())
    code, text = run(monkeypatch, capsys, *args, "--fold")
    assert code == 0 and "0 shard(s) written, 8 already done" in text
    code, text = run(monkeypatch, capsys, *args)  # other parameters (no --fold) into the same folder
    assert code != 0 and "--overwrite" in text
    code, text = run(monkeypatch, capsys, "nnn", "fit", "--database", collection["glob"], "--bank", bank,
                     "--output", tmp_path / "m", "--fold")
    assert code != 0 and "apply to --ray" in text


def test_blend_ray_writes_the_blenders_vectors(monkeypatch, capsys, collection, tmp_path):
    from nnlift import NeighborhoodBlender

    out = tmp_path / "blended.npy"
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", out,
                     "--thresholds", "0.6", "-k", "6", "--ray")
    assert code == 0, text
    reference = NeighborhoodBlender((0.6,), k=6, progress=False).fit_transform(collection["database"])
    assert np.abs(np.load(out) - reference).max() <= 1e-6
    table = tmp_path / "blended.parquet"
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", table,
                     "--thresholds", "0.6", "-k", "6", "--ray")
    assert code == 0, text
    from nnlift.datasets import load_embeddings

    vectors, ids = load_embeddings(table)
    assert np.array_equal(ids, np.arange(6000)) and np.array_equal(vectors, np.load(out))
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", out,
                     "--thresholds", "auto", "--ray", "--overwrite")
    assert code != 0 and "numeric --thresholds" in text


def test_blend_ray_approximate_runs_the_partition_join_and_prints_its_recall(monkeypatch, capsys, collection, tmp_path):
    from nnlift import NeighborhoodBlender

    out = tmp_path / "parted.npy"
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", out, "--thresholds",
                     "0.6", "-k", "6", "--ray", "--approximate", "--n-lists", "8", "--n-probe", "8")
    assert code == 0, text
    assert "neighbour recall per pass (1000 sampled rows, ± standard error): 1.0000 ± 0.0000" in text
    reference = NeighborhoodBlender((0.6,), k=6, progress=False).fit_transform(collection["database"])
    assert np.abs(np.load(out) - reference).max() <= 1e-6  # every list probed: exact
    # A folder: the workers write parquet parts that nnlift's loader reads (fixed-size lists, ids kept).
    folder = tmp_path / "parts"
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", folder, "--thresholds",
                     "0.6", "-k", "6", "--ray", "--approximate", "--n-lists", "8", "--n-probe", "8")
    assert code == 0 and "wrote the parts into" in text, text
    from nnlift.datasets import load_embeddings

    parts = [load_embeddings(path) for path in sorted(folder.glob("*.parquet"))]
    ids = np.concatenate([part[1] for part in parts])
    vectors = np.concatenate([part[0] for part in parts])[np.argsort(ids)]
    assert np.array_equal(np.sort(ids), np.arange(6000)) and np.abs(vectors - reference).max() <= 1e-6
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", folder, "--thresholds",
                     "0.6", "--ray", "--overwrite")
    assert code != 0 and "not an empty folder" in text  # nothing of the user's is replaced, --overwrite or not
    code, text = run(monkeypatch, capsys, "blend", "--input", collection["glob"], "--output", out, "--thresholds",
                     "0.6", "--ray", "--approximate", "--n-lists", "4", "--n-probe", "5", "--overwrite")
    assert code != 0 and "n_probe=5 is more than the 4 lists" in text


def test_the_readme_ray_block_runs(collection, tmp_path, monkeypatch):
    from ..test_readme import run_block
    from .conftest import write_parquet_shards

    monkeypatch.chdir(tmp_path)
    write_parquet_shards(tmp_path / "shards", collection["database"][:3000], 3)
    namespace = run_block("distributed.blend(", {"bank": collection["bank"]})
    bias = collect(namespace["bias"])
    assert np.array_equal(bias["bias"], NNN(k=16).fit(collection["database"][:3000], collection["bank"]).bias_)
    assert (tmp_path / "nnn-out" / "_job.json").is_file()
    # The folder was given relative to the driver's working folder; workers run elsewhere, and read it back too.
    assert np.array_equal(collect(D.read_output("nnn-out"))["bias"], bias["bias"])
    assert len(collect(namespace["blended"])["id"]) == 3000
    assert [c["pass"] for c in namespace["checks"]] == [0, 1]
