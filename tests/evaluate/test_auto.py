"""Choosing the method, not only its setting: --methods auto, and the warnings that say a choice is unsure."""

import warnings

import numpy as np
import pytest

import nnlift
from nnlift.evaluate import compare_methods, tune
from nnlift.evaluate.tune import TuneWarning, edge_warnings


def hubby(rng, n=600, d=16, hubs=30):
    """Clustered data with hubs near every query (queries and bank pushed towards them), where NNN helps."""
    centres = rng.standard_normal((20, d))
    database = (centres[rng.integers(0, 20, n)] + 0.7 * rng.standard_normal((n, d))).astype(np.float32)
    hub = centres.mean(axis=0)
    database[:hubs] = hub + 0.1 * rng.standard_normal((hubs, d))
    targets = rng.integers(hubs, n, 900)
    queries = database[targets] + 0.9 * rng.standard_normal((900, d)) + 2.0 * hub
    bank = database[rng.integers(hubs, n, 500)] + 0.9 * rng.standard_normal((500, d)) + 2.0 * hub
    return database, bank, queries.astype(np.float32), targets


def test_edge_warnings_by_hand():
    grid = {"k": [8, 16, 32], "alpha": [0.5, 0.75, 1.0], "mode": ["shift", "projection", "x"]}
    assert edge_warnings(grid, {"k": 16, "alpha": 0.75, "mode": "shift"}) == []
    lines = edge_warnings(grid, {"k": 8, "alpha": 1.0, "mode": "x"})
    assert lines == [
        "k=8 is the smallest value of its grid [8, 16, 32]: the best may lie beyond it; widen the grid",
        "alpha=1.0 is the largest value of its grid [0.5, 0.75, 1.0]: the best may lie beyond it; widen the grid",
    ]
    assert edge_warnings({"k": [4, 8]}, {"k": 8}) == []  # two values: every choice is an edge, nothing to say
    assert edge_warnings([{"k": 4}, {"k": 8}, {"k": 16}], {"k": 16}) == []  # a list of settings has no edges


def test_tune_warns_when_the_choice_is_on_the_edge(rng):
    database, bank, queries, targets = hubby(rng)
    grid = {"alpha": [0.05, 0.1, 0.25]}
    with pytest.warns(TuneWarning, match="alpha=0.25 is the largest value"):
        result = tune(nnlift.NNN(k=8), grid, database, bank, queries[:400], targets[:400], progress=False)
    assert not result.kept_baseline and result.params == {"alpha": 0.25}
    assert result.warnings == edge_warnings(grid, {"alpha": 0.25})


def test_auto_reports_the_method_best_on_validation(rng):
    database, bank, queries, targets = hubby(rng)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = compare_methods(["cosine", "nnn", "csls", "auto"], database, bank, queries[:400], targets[:400],
                                  queries[400:], targets[400:])  # fmt: skip
    auto = results[-1]
    assert auto.name == "auto" and len(results) == len(nnlift.evaluate.METHODS) + 1  # every method was tuned
    source = next(r for r in results[:-1] if auto.label.startswith(f"auto → {r.label}"))
    assert source.name != "cosine" and not source.kept_baseline
    np.testing.assert_array_equal(auto.per_query_hit1, source.per_query_hit1)
    # what it chose is the best on validation among the methods that beat cosine there
    val = {}
    for r in results[:-1]:
        if r.name != "cosine" and not r.kept_baseline:
            spec = nnlift.evaluate.METHODS[r.name]
            model = spec.make().set_params(**r.params).fit(database, bank)
            found = model.search(queries[:400], 10, progress=False)
            val[r.label] = nnlift.evaluate.hit_rate_at_k(found, targets[:400], 1)
    assert val[source.label] == max(val.values())


def test_auto_keeps_cosine_when_nothing_beats_it(rng):
    database = rng.standard_normal((300, 8)).astype(np.float32)
    queries = database[:200] + 0.01 * rng.standard_normal((200, 8)).astype(np.float32)  # cosine is already perfect
    bank = rng.standard_normal((100, 8)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = compare_methods(["cosine", "nnn", "auto"], database, bank, queries[:100], np.arange(100),
                                  queries[100:], np.arange(100, 200))  # fmt: skip
    auto = results[-1]
    assert auto.label == "auto → cosine" and auto.kept_baseline and auto.gain is None
    assert auto.metrics["hit_rate@1"] == results[0].metrics["hit_rate@1"]


def test_auto_on_the_command_line(monkeypatch, capsys, tmp_path, rng):
    from ..test_cli import run

    database, bank, queries, targets = hubby(rng)
    for name, array in (("database", database), ("queries", queries), ("bank", bank), ("targets", targets)):
        np.save(tmp_path / f"{name}.npy", array)
    code, out = run(monkeypatch, capsys, "eval", "--database", tmp_path / "database.npy", "--queries",
                    tmp_path / "queries.npy", "--targets", tmp_path / "targets.npy", "--bank", tmp_path / "bank.npy",
                    "--methods", "auto")  # fmt: skip
    assert code == 0, out
    assert "auto →" in out and "mean-bias" in out and "fusion" in out
