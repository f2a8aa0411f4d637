"""Every method on every index: one search contract, one check.

Each method is run with ``index=`` set to each backend. With settings that
probe everything the results equal the exact path's; with approximate
settings a ``Checked`` index records what it measured in ``checks_`` and its
``on_low`` policy does what it says.
"""

import warnings
import re

import numpy as np
import pytest

import nnlift
from nnlift.sampling import sample_neighbors

from .conftest import assert_same_neighbors, unit

pytest.importorskip("faiss")
pytest.importorskip("hnswlib")
pytest.importorskip("qdrant_client")


def searched(make):
    def run(index, data):
        model = make(index).fit(data["database"], data["bank"])
        found = model.search(data["queries"], 10, progress=False)
        return model, ("neighbors", found.ids, found.scores)

    return run


def transformed(make):
    def run(index, data):
        model = make(index)
        return model, ("array", model.fit_transform(data["database"]))

    return run


def sampled(index, data):
    matrix = sample_neighbors(data["database"], sample=250, limit=5, index=index, progress=False).matrix
    return None, ("array", matrix.toarray())


METHODS = {
    "NNN": searched(lambda index: nnlift.NNN(k=8, index=index)),
    "WithDN": searched(lambda index: nnlift.WithDN(nnlift.NNN(k=8), index=index)),
    "CSLS": searched(lambda index: nnlift.CSLS(k=8, index=index)),
    "InvertedSoftmax": searched(lambda index: nnlift.InvertedSoftmax(beta=20, index=index)),
    "QBNorm": searched(lambda index: nnlift.QBNorm(beta=20, index=index)),
    "DBNorm": searched(lambda index: nnlift.DBNorm(beta=20, index=index)),
    "LocalScaling": searched(lambda index: nnlift.LocalScaling(k=5, candidates=30, index=index)),
    "MutualProximity": searched(lambda index: nnlift.MutualProximity(k=5, candidates=30, index=index)),
    "SinkhornNorm": searched(lambda index: nnlift.SinkhornNorm(beta=20, iterations=3, index=index)),
    "InvGC": searched(lambda index: nnlift.InvGC(k=6, index=index)),
    "MeanBias": searched(lambda index: nnlift.MeanBias(nnlift.NNN(k=8), index=index)),
    "Fusion": searched(lambda index: nnlift.Fusion([nnlift.NNN(k=8), nnlift.CSLS(k=8)], depth=20, index=index)),
    "NeighborhoodBlender": transformed(
        lambda index: nnlift.NeighborhoodBlender(thresholds=(0.3, 0.2), k=5, index=index, progress=False)
    ),
    "DatabaseAugmentation": transformed(lambda index: nnlift.DatabaseAugmentation(n=4, index=index, progress=False)),
    "sample_neighbors": sampled,
}

# Each backend set to search everything: IVF probes all its lists, faiss is flat, HNSW's beam covers the graph.
EVERYTHING = {
    "ExactIndex": lambda: nnlift.ExactIndex(progress=False),
    "IVFIndex": lambda: nnlift.IVFIndex(n_lists=6, n_probe=6, progress=False),
    "FaissIndex": lambda: nnlift.FaissIndex("Flat"),
    "HnswIndex": lambda: nnlift.HnswIndex(M=32, ef_construction=400, ef_search=600),
    "Checked(IVFIndex)": lambda: nnlift.Checked(nnlift.IVFIndex(n_lists=6, n_probe=6, progress=False), sample=64),
    # qdrant-client's local mode (the server's API, searched exhaustively); clones are scratch collections
    "QdrantIndex": lambda: nnlift.QdrantIndex("contract", progress=False),
}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    return {"database": unit(rng, 300, 12), "bank": unit(rng, 200, 12), "queries": unit(rng, 40, 12)}


def same(result, reference):
    kind = result[0]
    if kind == "neighbors":
        assert_same_neighbors(result[1], result[2], reference[1], reference[2], tol=2e-5)
    else:
        np.testing.assert_allclose(result[1], reference[1], atol=2e-5)


@pytest.fixture(scope="module")
def exact_results(data):
    return {name: run(None, data)[1] for name, run in METHODS.items()}


@pytest.mark.parametrize("backend", list(EVERYTHING))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_on_every_index_equals_the_exact_path(method, backend, data, exact_results):
    model, result = METHODS[method](EVERYTHING[backend](), data)
    same(result, exact_results[method])
    if model is not None and backend.startswith("Checked"):
        checks = model.checks_
        assert checks and all(c["action"] == "none" for c in checks)
        assert all(c.get("recall", 1.0) == 1.0 and c.get("error", 0.0) < 1e-5 for c in checks)


def poor(on_low):
    """One probe of 16 lists on structureless data: recall and means fall far short."""
    return nnlift.Checked(nnlift.IVFIndex(n_lists=16, n_probe=1, progress=False), sample=64, on_low=on_low)


@pytest.mark.parametrize("method", [m for m in METHODS if m != "sample_neighbors"])
def test_on_low_exact_falls_back_and_records_the_measurement(method, data, exact_results):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "exact" acts without warning
        model, result = METHODS[method](poor("exact"), data)
    assert model.checks_ and model.checks_[0]["action"] == "exact"
    for check in model.checks_:  # each measurement acted by the bar: exact below it, nothing above
        low = check["recall"] < 0.99 if "recall" in check else check["error"] > 1e-3
        assert check["action"] == ("exact" if low else "none")
    if all(check["action"] == "exact" for check in model.checks_):
        same(result, exact_results[method])
    else:  # DBNorm: the database against itself has its own row's term, which the IVF sum gets right
        assert method == "DBNorm" and model.checks_[1]["on"] == "gallery"


@pytest.mark.parametrize("method", [m for m in METHODS if m != "sample_neighbors"])
def test_on_low_warn_keeps_the_approximate_answer_and_raise_raises(method, data, exact_results):
    with pytest.warns(UserWarning, match="sampled rows"):
        model, result = METHODS[method](poor("warn"), data)
    assert model.checks_ and all(c["action"] in ("warn", "none") for c in model.checks_)
    assert any(c["action"] == "warn" for c in model.checks_)
    with pytest.raises(AssertionError):
        same(result, exact_results[method])  # the approximate answer was kept, and it differs
    with pytest.raises(nnlift.LowRecallError, match="sampled rows"):
        METHODS[method](poor("raise"), data)


def test_sample_neighbors_on_a_poor_checked_index(data):
    with pytest.raises(nnlift.LowRecallError, match="self_join: recall"):
        sampled(poor("raise"), data)


def test_checked_measures_a_lossy_index_against_the_methods_own_rows(data):
    """Exact search runs over the rows the method gave, not what a compressed index reconstructs."""
    model = nnlift.NNN(k=8, index=nnlift.Checked(nnlift.FaissIndex("SQ8"), on_low="warn", max_error=1.0))
    model.fit(data["database"], data["bank"])
    exact = nnlift.NNN(k=8).fit(data["database"], data["bank"])
    (bias_check,) = model.checks_
    sample_error = bias_check["error"]
    assert sample_error > 1e-5  # SQ8's rounding shows: compared with its own reconstructions it would be ~1e-7
    assert sample_error == pytest.approx(np.abs(model.bias_ - exact.bias_).mean(), rel=0.5)


@pytest.mark.parametrize(
    ("make", "names", "absent"),
    [
        (lambda: nnlift.HnswIndex(M=4, ef_construction=8, ef_search=1), r"raise ef_search \(now 1\) or M \(now 4\)", "n_probe"),
        (lambda: nnlift.IVFIndex(n_lists=40, n_probe=1), r"raise n_probe \(now 1", "ef_search"),
        (lambda: nnlift.FaissIndex("HNSW4", metric="ip", ef_search=1), r"raise ef_search \(now 1\)", "n_probe"),
        (lambda: nnlift.FaissIndex("IVF40,Flat", metric="ip"), r"raise nprobe \(now faiss default 1\)", "ef_search"),
    ],
)
def test_low_recall_warning_names_the_parameter_of_the_index_in_use(make, names, absent):
    rng = np.random.default_rng(3)
    database = rng.standard_normal((2000, 16)).astype(np.float32)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    with pytest.warns(UserWarning) as caught:
        nnlift.NNN(k=8, index=nnlift.Checked(make(), sample=64, on_low="warn")).fit(database, database[:500])
    message = str(caught[0].message)
    assert re.search(names, message), message
    assert absent not in message and "or use ExactIndex()" in message
