import numpy as np
import pytest

import nnlift

pytest.importorskip("typer")

from nnlift.cli import main  # noqa: E402


def run(monkeypatch, capsys, *args):
    monkeypatch.setattr("sys.argv", ["nnlift", *map(str, args)])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def data(tmp_path, rng):
    centres = rng.standard_normal((20, 16))
    database = (centres[rng.integers(0, 20, 600)] + 0.7 * rng.standard_normal((600, 16))).astype(np.float32)
    hub = centres.mean(axis=0)
    database[:5] = hub + 0.1 * rng.standard_normal((5, 16))
    targets = rng.integers(5, 600, 300)
    queries = database[targets] + 0.6 * rng.standard_normal((300, 16)) + 0.5 * hub
    bank = database[rng.integers(5, 600, 400)] + 0.6 * rng.standard_normal((400, 16)) + 0.5 * hub
    for name, array in (("database", database), ("queries", queries), ("bank", bank), ("targets", targets)):
        np.save(tmp_path / f"{name}.npy", array)
    return tmp_path


def test_knn_and_make_data(monkeypatch, capsys, tmp_path):
    code, out = run(
        monkeypatch, capsys, "make-data", "--output", tmp_path / "d", "--n-database", 500, "--n-queries", 20, "--dim", 8
    )
    assert code == 0 and "database.npy" in out
    code, out = run(
        monkeypatch,
        capsys,
        "knn",
        "--database",
        tmp_path / "d/database.npy",
        "--queries",
        tmp_path / "d/queries.npy",
        "-k",
        3,
        "--output",
        tmp_path / "out.npz",
    )
    assert code == 0 and "queries/s" in out
    result = np.load(tmp_path / "out.npz")
    expected = nnlift.topk(np.load(tmp_path / "d/queries.npy"), np.load(tmp_path / "d/database.npy"), 3)
    np.testing.assert_array_equal(result["ids"], expected.ids)  # the values written, not only their shape
    np.testing.assert_array_equal(result["scores"], expected.scores)
    assert " ".join(map(str, expected.ids[0])) in out  # and the first row printed


def test_eval_end_to_end(monkeypatch, capsys, data):
    code, out = run(
        monkeypatch,
        capsys,
        "eval",
        "--database",
        data / "database.npy",
        "--queries",
        data / "queries.npy",
        "--targets",
        data / "targets.npy",
        "--bank",
        data / "bank.npy",
        "--methods",
        "cosine,nnn,csls",
        "--report",
        data / "report",
    )
    assert code == 0, out
    assert "NNN" in out and "CSLS" in out and "cosine" in out
    assert (data / "report" / "report.md").is_file()
    # The numbers reported are the ones a direct computation on the same test split gives.
    import json

    from nnlift.evaluate import hit_rate_at_k

    queries, targets = np.load(data / "queries.npy"), np.load(data / "targets.npy")
    is_val = np.zeros(len(queries), dtype=bool)
    is_val[np.random.default_rng(0).choice(len(queries), size=int(0.25 * len(queries)), replace=False)] = True
    cosine = nnlift.Baseline().fit(np.load(data / "database.npy")).search(queries[~is_val], 10)
    reported = json.loads((data / "report" / "results.json").read_text())["results"]
    assert reported["cosine"]["metrics"]["hit_rate@1"] == pytest.approx(hit_rate_at_k(cosine, targets[~is_val], 1))
    assert f"{100 * hit_rate_at_k(cosine, targets[~is_val], 1):.1f}" in out


def test_nnn_fit_search_and_blend(monkeypatch, capsys, data):
    code, out = run(
        monkeypatch,
        capsys,
        "nnn",
        "fit",
        "--database",
        data / "database.npy",
        "--bank",
        data / "bank.npy",
        "--output",
        data / "model",
        "-k",
        8,
    )
    assert code == 0, out
    code, out = run(
        monkeypatch,
        capsys,
        "nnn",
        "search",
        "--model",
        data / "model",
        "--queries",
        data / "queries.npy",
        "-k",
        5,
        "--output",
        data / "found.npz",
    )
    assert code == 0, out
    assert np.load(data / "found.npz")["ids"].shape == (300, 5)
    code, out = run(
        monkeypatch,
        capsys,
        "blend",
        "--input",
        data / "database.npy",
        "--output",
        data / "b.npy",
        "--thresholds",
        "0.9,0.8",
        "-k",
        5,
    )
    assert code == 0, out
    assert np.load(data / "b.npy").shape == (600, 16)
    code, out = run(
        monkeypatch,
        capsys,
        "blend",
        "--input",
        data / "database.npy",
        "--output",
        data / "a.npy",
        "--approximate",
        "--n-lists",
        12,
        "--n-probe",
        12,
        "--check-sample",
        100,
    )
    assert code == 0, out
    # 12 of 12 lists probed: exact, so the sampled recall is 1 with no error
    assert "100 sampled rows, ± standard error): 1.0000 ± 0.0000, 1.0000 ± 0.0000" in " ".join(out.split())
    exact = nnlift.NeighborhoodBlender(progress=False).fit_transform(np.load(data / "database.npy"))
    np.testing.assert_allclose(np.load(data / "a.npy"), exact, atol=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["knn", "--database", "missing.npy", "--queries", "missing.npy"], "no such file"),
        (["knn", "--database", "{d}/targets.npy", "--queries", "{d}/queries.npy"], "expected a 2-D (rows, dimensions) array; got shape (300,)"),
        (
            ["knn", "--database", "{d}/database.npy", "--queries", "{d}/queries.npy", "-k", "100000"],
            "larger than possible",
        ),
        (
            ["eval", "--database", "{d}/database.npy", "--queries", "{d}/bank.npy", "--targets", "{d}/targets.npy"],
            "300 targets for 400 queries",
        ),
        (
            [
                "eval",
                "--database",
                "{d}/database.npy",
                "--queries",
                "{d}/queries.npy",
                "--targets",
                "{d}/targets.npy",
                "--methods",
                "magic",
            ],
            "unknown",
        ),
        (["blend", "--input", "{d}/database.npy", "--output", "{d}/x.npy", "--thresholds", "1.5"], "must be < 1"),
        (["blend", "--input", "{d}/database.npy", "--output", "{d}/x.npy", "--thresholds", "a,b"], "numbers"),
        (["nnn", "search", "--model", "{d}", "--queries", "{d}/queries.npy"], "not an nnlift artifact"),
        (["knn", "--database", "{d}/bad.npy", "--queries", "{d}/queries.npy"], "cannot read"),
    ],
)
def test_errors_are_short_and_human(monkeypatch, capsys, data, args, message):
    (data / "bad.npy").write_text("not numpy")
    code, out = run(monkeypatch, capsys, *[a.format(d=data) for a in args])
    assert code != 0
    assert message in out
    assert "Traceback" not in out


def test_index_similar_walk(monkeypatch, capsys, tmp_path, rng):
    vectors = rng.standard_normal((300, 8)).astype(np.float32)
    ids = np.array([f"V_{i:03d}" for i in range(300)])
    np.savez(tmp_path / "items.npz", embeddings=vectors, ids=ids)
    code, out = run(monkeypatch, capsys, "index", "--vectors", tmp_path / "items.npz", "--output", tmp_path / "rec")
    assert code == 0, out
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "V_007", "-k", 3)
    assert code == 0 and "similar to V_007" in out, out
    expected = nnlift.Recommender(index=nnlift.ExactIndex()).fit(vectors, ids.tolist()).similar("V_007", k=3)
    assert all(label in out for label in expected.labels()) and "V_007 " not in out.split("similar to V_007")[1]
    code, out = run(
        monkeypatch,
        capsys,
        "walk",
        "--index",
        tmp_path / "rec",
        "--from-ids",
        "V_001,V_002",
        "--to-ids",
        "V_100,V_101",
        "--scales",
        "0.5,1.0",
        "-k",
        3,
    )
    assert code == 0 and "new at this step" in out, out
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "nope")
    assert code != 0 and "unknown id" in out and "Traceback" not in out
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path, "--id", "V_001")
    assert code != 0 and "nnlift index" in out


def test_every_command_reads_parquet_through_the_one_loader(monkeypatch, capsys, data):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    for name in ("database", "bank"):
        rows = np.load(data / f"{name}.npy")
        pq.write_table(pa.table({"embedding": rows.tolist()}), data / f"{name}.parquet")
    code, out = run(
        monkeypatch, capsys, "nnn", "fit", "--database", data / "database.parquet", "--bank", data / "bank.parquet",
        "--output", data / "model", "-k", 8,
    )  # fmt: skip
    assert code == 0, out
    expected = nnlift.NNN(k=8).fit(np.load(data / "database.npy"), np.load(data / "bank.npy"))
    np.testing.assert_allclose(nnlift.load(data / "model").bias_, expected.bias_, atol=1e-6)
    code, out = run(monkeypatch, capsys, "blend", "--input", data / "database.parquet", "--output", data / "b.npy", "--thresholds", "")
    assert code == 2 and "--thresholds is empty" in out


def test_eval_takes_short_method_names_and_lists_them(monkeypatch, capsys, data):
    code, out = run(monkeypatch, capsys, "eval", "--help")
    assert code == 0 and "local_scaling (ls)" in out and "mutual_proximity (mp)" in out
    args = ["eval", "--database", data / "database.npy", "--queries", data / "queries.npy"]
    args += ["--targets", data / "targets.npy", "--methods", "cosine,ls,mp,local_scaling"]
    code, out = run(monkeypatch, capsys, *args)
    assert code == 0, out
    import re

    rows = [line for line in out.splitlines() if re.match(r"\s*(local scaling|mutual proximity)\s+\d", line)]
    assert len(rows) == 2  # ls and local_scaling name one method: one row each for it and mp
    code, out = run(monkeypatch, capsys, *args[:-1], "cosine,xx")
    assert code == 2 and "unknown ['xx']" in out and "local_scaling (ls)" in out


def test_eval_takes_grids_and_reports_progress_per_method(monkeypatch, capsys, data):
    import json

    args = ["eval", "--database", data / "database.npy", "--queries", data / "queries.npy"]
    args += ["--targets", data / "targets.npy", "--bank", data / "bank.npy", "--methods", "cosine,nnn"]
    code, out = run(
        monkeypatch, capsys, *args, "--grid", "nnn.k=4,6", "--grid", "nnn.alpha=1.0", "--grid", "ls.k=3",
        "--report", data / "grid-report",
    )  # fmt: skip
    assert code == 0, out
    reported = json.loads((data / "grid-report" / "results.json").read_text())["results"]
    assert set(reported) == {"cosine", "nnn", "local_scaling"}  # ls came in through --grid
    for name, grid in (("nnn", {"k": [4, 6], "alpha": [1.0]}), ("local_scaling", {"k": [3]})):
        chosen = reported[name]["params"] or reported[name]["best_params"]
        assert all(chosen[key] in values for key, values in grid.items()), (name, chosen)
    # One progress line per method, in order, with the settings it tried and the time left.
    assert "[1/3] cosine: 1 setting in" in out
    assert "[2/3] NNN: 2 settings in" in out and "s left" in out
    assert "[3/3] local scaling: 1 setting in" in out and "s in all" in out
    for bad, message in (
        ("nnn.kk=4", "has no parameter 'kk'"),
        ("nnn.k", "expected METHOD.PARAMETER=V1,V2"),
        ("xx.k=1", "unknown method 'xx'"),
    ):
        code, out = run(monkeypatch, capsys, *args, "--grid", bad)
        assert code == 2 and message in out, out


def test_blend_inspect_and_auto_thresholds(monkeypatch, capsys, data):
    from nnlift.blend import NeighborhoodBlender, neighbor_profile

    database = np.load(data / "database.npy")
    code, out = run(monkeypatch, capsys, "blend", "--input", data / "database.npy", "--inspect", "-k", 6)
    assert code == 0, out
    profile = neighbor_profile(database, 6, (0.5, 0.9))
    assert f"{profile.quantiles[0.5]:.3f}" in out  # the median 6th-neighbour similarity, as computed directly
    row = next(line for line in out.splitlines() if line.strip().startswith("0.500"))
    assert f"{profile.kept[0.5]:.2f}" in row
    assert not (data / "x.npy").exists()
    code, out = run(monkeypatch, capsys, "blend", "--input", data / "database.npy", "--inspect", "-k", 6,
                    "--thresholds", "auto", "--keep", 3)  # fmt: skip
    first = NeighborhoodBlender(thresholds=("auto",), k=6, keep=3, progress=False).fit(database).thresholds_[0]
    assert f"keeping 3 per row on average uses threshold {first:.4f}" in " ".join(out.split())
    code, out = run(
        monkeypatch, capsys, "blend", "--input", data / "database.npy", "--output", data / "auto.npy",
        "--thresholds", "auto,0.5", "-k", 6, "--keep", 3,
    )  # fmt: skip
    assert code == 0, out
    expected = NeighborhoodBlender(thresholds=("auto", 0.5), k=6, keep=3, progress=False)
    np.testing.assert_array_equal(np.load(data / "auto.npy"), expected.fit_transform(database))
    assert f"thresholds {expected.thresholds_[0]:.4f}, 0.5000" in out
    code, out = run(monkeypatch, capsys, "blend", "--input", data / "database.npy", "--thresholds", "auto")
    assert code == 2 and "--output is required" in out
    code, out = run(
        monkeypatch, capsys, "blend", "--input", data / "database.npy", "--output", data / "a2.npy", "--keep", 20
    )
    assert code == 2 and "--keep 20.0 is more than -k 10" in out


def test_info_lists_the_engines_their_speed_and_the_choice(monkeypatch, capsys):
    pytest.importorskip("torch")
    code, out = run(monkeypatch, capsys, "info", "--dim", "32")
    assert code == 0
    for name in ("numpy", "torch", "torch-bf16"):
        assert name in out
    assert "chosen:" in out and "GFLOP/s" in out
    code, out = run(monkeypatch, capsys, "info", "--dim", "0")
    assert code == 2 and "--dim" in out


def test_similar_and_walk_read_ids_from_files_and_print_json(monkeypatch, capsys, tmp_path, rng):
    import json

    vectors = rng.standard_normal((200, 8)).astype(np.float32)
    ids = np.array([f"item, {i:03d}" for i in range(200)])  # ids with commas
    np.savez(tmp_path / "items.npz", embeddings=vectors, ids=ids)
    code, out = run(monkeypatch, capsys, "index", "--vectors", tmp_path / "items.npz", "--output", tmp_path / "rec")
    assert code == 0, out
    (tmp_path / "some.txt").write_text("item, 007\n\nitem, 042\n", encoding="utf-8")
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "@" + str(tmp_path / "some.txt"), "-k", 4, "--json")
    assert code == 0, out
    found = json.loads(out)
    recommender = nnlift.Recommender(index=nnlift.ExactIndex()).fit(vectors, ids.tolist())
    assert [entry["id"] for entry in found] == ["item, 007", "item, 042"]
    assert [hit["id"] for hit in found[1]["similar"]] == recommender.similar("item, 042", k=4).labels()
    (tmp_path / "from.txt").write_text("item, 001\nitem, 002\n", encoding="utf-8")
    code, out = run(
        monkeypatch, capsys, "walk", "--index", tmp_path / "rec",
        "--from-ids", "@" + str(tmp_path / "from.txt"), "--to-ids", "@" + str(tmp_path / "from.txt"),
        "--to-ids", "@" + str(tmp_path / "some.txt"), "--scales", "0.5,1.0", "-k", 3, "--json",
    )
    assert code == 0, out
    steps = json.loads(out)
    assert [step["scale"] for step in steps] == [0.5, 1.0] and all(len(step["ids"]) == 3 for step in steps)
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "@" + str(tmp_path / "missing.txt"))
    assert code == 2 and "cannot read" in out


@pytest.mark.parametrize(
    ("options", "kind", "setting"),
    [(["--index", "hnsw", "--ef-search", 200], "FaissIndex", ("ef_search", 200)), (["--approximate"], "IVFIndex", ("n_probe", 8))],
)
def test_nnn_fit_on_an_approximate_index_reports_its_checks(monkeypatch, capsys, data, options, kind, setting):
    code, out = run(
        monkeypatch, capsys, "nnn", "fit", "--database", data / "database.npy", "--bank", data / "bank.npy",
        "--output", data / "model", "-k", 8, *options,
    )
    assert code == 0, out
    model = nnlift.load(data / "model")
    inner = model.index.index
    assert type(inner).__name__ == kind and getattr(inner, setting[0]) == setting[1]
    check = model.checks_[0]
    assert f"bank topk_mean: error {check['error']:.2e}" in " ".join(out.split())
    exact = nnlift.NNN(k=8).fit(np.load(data / "database.npy"), np.load(data / "bank.npy"))
    assert np.abs(model.bias_ - exact.bias_).mean() <= max(check["error"] * 3, 1e-6)


def test_nnn_fit_refuses_a_setting_of_another_index(monkeypatch, capsys, data):
    code, out = run(
        monkeypatch, capsys, "nnn", "fit", "--database", data / "database.npy", "--bank", data / "bank.npy",
        "--output", data / "model", "--index", "ivf", "--ef-search", 64,
    )
    assert code != 0 and "--ef-search applies to --index hnsw" in out and not (data / "model").exists()


def test_similar_and_walk_draw_figures_of_what_they_print(monkeypatch, capsys, tmp_path, rng):
    pytest.importorskip("matplotlib")
    import json

    import matplotlib.image

    import nnlift.plot

    vectors = rng.standard_normal((150, 8)).astype(np.float32)
    ids = np.array([f"doc {i}" for i in range(150)])
    np.savez(tmp_path / "items.npz", embeddings=vectors, ids=ids)
    assert run(monkeypatch, capsys, "index", "--vectors", tmp_path / "items.npz", "--output", tmp_path / "rec")[0] == 0
    drawn = []
    real_grid = nnlift.plot._grid
    monkeypatch.setattr(nnlift.plot, "_grid", lambda rows, *a, **kw: (drawn.append(rows), real_grid(rows, *a, **kw))[1])
    figure = tmp_path / "similar.png"
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "doc 3", "--id", "doc 9",
                    "-k", 4, "--json", "--figure", figure)
    assert code == 0, out
    printed = json.loads(out)
    (rows,) = drawn
    assert [head for (head, _), _ in rows] == ["doc 3", "doc 9"]
    for (_, cells), entry in zip(rows, printed):
        assert [c[0] for c in cells] == [hit["id"] for hit in entry["similar"]]
        assert [c[1] for c in cells] == [f"{hit['score']:.3f}" for hit in entry["similar"]]
    assert matplotlib.image.imread(figure).shape[0] > 100  # a real PNG
    code, out = run(monkeypatch, capsys, "similar", "--index", tmp_path / "rec", "--id", "doc 3", "--figure", figure)
    assert code != 0 and "already exists" in out  # never replaced without --overwrite

    walk_figure = tmp_path / "walk.png"
    code, out = run(monkeypatch, capsys, "walk", "--index", tmp_path / "rec", "--from-ids", "doc 1,doc 2",
                    "--to-ids", "doc 5,doc 6", "--start", "doc 1", "--scales", "0.5,1.0", "-k", 3, "--json",
                    "--figure", walk_figure)
    assert code == 0, out
    steps = json.loads(out)
    rows = drawn[-1]
    assert rows[0][0] == (None, "start") and rows[0][1][0][0] == "doc 1"
    for ((_, title), cells), step in zip(rows[1:], steps):
        assert title == f"scale {step['scale']:g}\n{len(step['new'])} new"
        assert [c[0] for c in cells] == step["ids"]
        assert [c[3] for c in cells] == [i in step["new"] for i in step["ids"]]  # new items framed
    assert matplotlib.image.imread(walk_figure).shape[1] > 100
