"""One table of bad inputs across the public API and the CLI.

Each row asserts the exception type, that the message names the argument (or
option) and what was expected, and that the caller's arrays are unchanged.
Nothing may crash the process, surface an error from inside numpy, or change
a file.
"""

import math

import numpy as np
import pytest

import nnlift
from nnlift import algebra
from nnlift.errors import InputError, InputTypeError, NnliftError, UnknownIdError
from nnlift.evaluate import hit_rate_at_k, hubness, recall_at_k, tune
from nnlift.evaluate.metrics import check_targets, mrr

faiss = pytest.importorskip("faiss")
hnswlib = pytest.importorskip("hnswlib")


def arrays():
    rng = np.random.default_rng(3)
    database = rng.standard_normal((50, 8)).astype(np.float32)
    return {
        "database": database,
        "bank": rng.standard_normal((30, 8)).astype(np.float32),
        "queries": rng.standard_normal((5, 8)).astype(np.float32),
        "database64": database.astype(np.float64),
        "nan": np.where(np.arange(8) == 2, np.nan, 1.0)[None].repeat(3, 0),
        "inf": np.full((2, 8), np.inf),
        "zero": np.vstack([np.zeros((1, 8)), np.ones((2, 8))]).astype(np.float32),
        "huge64": np.full((2, 8), 1e300),
        "ranked": np.arange(25).reshape(5, 5),
        "wide": rng.standard_normal((3, 5)).astype(np.float32),
    }


def fitted_nnn(a):
    return nnlift.NNN(k=4).fit(a["database"], a["bank"])


def recommender(a):
    return nnlift.Recommender().fit(a["database"][:6], list("abcdef"))


CASES = [
    # -- the kernel ---------------------------------------------------------------------------
    ("topk k=0", lambda a: nnlift.topk(a["queries"], a["database"], 0), InputError, "k must be >= 1; got 0"),
    ("topk k float", lambda a: nnlift.topk(a["queries"], a["database"], 1.5), InputTypeError, "k must be an integer"),
    ("topk k bool", lambda a: nnlift.topk(a["queries"], a["database"], True), InputTypeError, "k must be an integer"),
    ("topk k > n", lambda a: nnlift.topk(a["queries"], a["database"], 51), InputError, "k=51 is larger than possible"),
    ("topk NaN queries", lambda a: nnlift.topk(a["nan"], a["database"], 1), InputError, "queries has NaN or inf"),
    ("topk inf database", lambda a: nnlift.topk(a["queries"], a["inf"], 1), InputError, "database has NaN or inf"),
    ("topk width", lambda a: nnlift.topk(a["wide"], a["database"], 1), InputError, "queries must have 8 columns"),
    ("topk 1-D", lambda a: nnlift.topk(a["queries"][0], a["database"], 1), InputError, "queries must be 2-D"),
    ("topk 3-D", lambda a: nnlift.topk(a["queries"][None], a["database"], 1), InputError, "queries must be 2-D"),
    ("topk strings", lambda a: nnlift.topk([["a", "b"]], [["c", "d"]], 1), InputTypeError, "must hold real numbers"),
    ("topk ragged", lambda a: nnlift.topk([[1.0], [1.0, 2.0]], a["database"], 1), InputTypeError, "could not convert"),
    ("topk empty database", lambda a: nnlift.topk(a["queries"], a["database"][:0], 1), InputError, "database is empty"),
    ("topk zero columns", lambda a: nnlift.topk(a["queries"][:, :0], a["database"][:, :0], 1), InputError, "zero columns"),
    ("topk metric", lambda a: nnlift.topk(a["queries"], a["database"], 1, metric="l2"), InputError, "metric must be one of"),
    ("topk zero row", lambda a: nnlift.topk(a["queries"], a["zero"], 1), InputError, "database has 1 all-zero row"),
    ("topk beyond float32", lambda a: nnlift.topk(a["queries"], a["huge64"], 1), InputError, "outside float32's range"),
    ("topk complex", lambda a: nnlift.topk(a["queries"] * 1j, a["database"], 1), InputTypeError, "must hold real numbers"),
    ("topk_mean k=0", lambda a: nnlift.topk_mean(a["queries"], a["database"], 0), InputError, "k must be >= 1"),
    ("logsumexp beta", lambda a: nnlift.logsumexp(a["queries"], a["database"], beta=math.nan), InputError, "beta must be finite"),
    # -- indexes ------------------------------------------------------------------------------
    ("index metric", lambda a: nnlift.ExactIndex(metric="euclid"), InputError, "metric must be one of"),
    ("index empty search", lambda a: nnlift.ExactIndex().search(a["queries"], 1), InputError, "the index is empty"),
    ("ids mixed", lambda a: nnlift.ExactIndex().add(a["database"][:3], ids=[1, "a", 2]), InputTypeError, "ids must all be ints or all be strings"),
    ("ids beyond int64", lambda a: nnlift.ExactIndex().add(a["database"][:1], ids=np.array([2**63], dtype=np.uint64)), InputError, "ids must fit in int64"),
    ("ids huge int", lambda a: nnlift.ExactIndex().add(a["database"][:1], ids=[2**64 + 5]), InputError, "ids must fit in int64"),
    ("ids bool", lambda a: nnlift.ExactIndex().add(a["database"][:2], ids=[True, False]), InputTypeError, "ids must be ints or strings"),
    ("ids float", lambda a: nnlift.ExactIndex().add(a["database"][:2], ids=[1.0, 2.0]), InputTypeError, "ids must be ints or strings"),
    ("ids duplicates", lambda a: nnlift.ExactIndex().add(a["database"][:3], ids=[1, 1, 2]), InputError, "ids has duplicates"),
    ("ids length", lambda a: nnlift.ExactIndex().add(a["database"][:3], ids=[1, 2]), InputError, "ids has 2 entries"),
    ("ids one string", lambda a: nnlift.ExactIndex().add(a["database"][:3], ids="abc"), InputTypeError, "ids must be a sequence"),
    ("ids 2-D", lambda a: nnlift.ExactIndex().add(a["database"][:4], ids=np.arange(4).reshape(2, 2)), InputError, "ids must be 1-D"),
    ("get unknown", lambda a: nnlift.ExactIndex().add(a["database"][:3], ids=[1, 2, 3]).get([9]), UnknownIdError, "unknown id"),
    ("ids after none", lambda a: nnlift.ExactIndex().add(a["database"][:3]).add(a["database"][:1], ids=[7]), InputError, "built without ids"),
    ("hnsw M=0", lambda a: nnlift.HnswIndex(M=0), InputError, "M must be >= 2; got 0"),
    ("hnsw M=1", lambda a: nnlift.HnswIndex(M=1), InputError, "M must be >= 2; got 1"),
    ("hnsw M float", lambda a: nnlift.HnswIndex(M=2.5), InputTypeError, "M must be an integer"),
    ("hnsw ef_search", lambda a: nnlift.HnswIndex(ef_search=0), InputError, "ef_search must be >= 1"),
    ("hnsw ef_construction", lambda a: nnlift.HnswIndex(ef_construction=-5), InputError, "ef_construction must be >= 1"),
    ("hnsw seed", lambda a: nnlift.HnswIndex(seed=-1), InputError, "seed must be >= 0"),
    ("faiss HNSW0", lambda a: nnlift.FaissIndex("HNSW0"), InputError, "HNSW's M must be in \\[2, 1024\\]; got 0"),
    ("faiss HNSW1", lambda a: nnlift.FaissIndex("HNSW1"), InputError, "HNSW's M must be in"),
    ("faiss HNSW0_SQ8", lambda a: nnlift.FaissIndex("HNSW0_SQ8"), InputError, "HNSW's M must be in"),
    ("faiss IVF HNSW1", lambda a: nnlift.FaissIndex("IVF4_HNSW1,Flat"), InputError, "HNSW's M must be in"),
    ("faiss RR0", lambda a: nnlift.FaissIndex("RR0,Flat"), InputError, "factory='RR0,Flat' is not a supported"),
    ("faiss NSG", lambda a: nnlift.FaissIndex("NSG32"), InputError, "factory='NSG32' is not a supported"),
    ("faiss PQ bits", lambda a: nnlift.FaissIndex("IVF4,PQ8x0"), InputError, "PQ's bits must be in"),
    ("faiss IVF0", lambda a: nnlift.FaissIndex("IVF0,Flat"), InputError, "IVF list count must be in"),
    ("faiss ef_search", lambda a: nnlift.FaissIndex("HNSW16", ef_search=-1), InputError, "ef_search must be >= 1; got -1"),
    ("faiss nprobe", lambda a: nnlift.FaissIndex("IVF4,Flat", nprobe=0), InputError, "nprobe must be >= 1"),
    ("faiss factory type", lambda a: nnlift.FaissIndex(3), InputTypeError, "factory must be a faiss factory string"),
    ("faiss too few", lambda a: nnlift.FaissIndex("IVF64,Flat").add(a["database"][:5]), InputError, "needs at least 64 vectors"),
    ("faiss PQ divides", lambda a: nnlift.FaissIndex("PQ3").add(a["database"]), InputError, "faiss cannot build factory 'PQ3'"),
    ("faiss use_gpu", lambda a: nnlift.FaissIndex(use_gpu="yes"), InputTypeError, "use_gpu must be True or False"),
    ("ivf n_probe", lambda a: nnlift.IVFIndex(n_probe=0).add(a["database"]).search(a["queries"], 2), InputError, "n_probe must be >= 1"),
    ("ivf n_lists", lambda a: nnlift.IVFIndex(n_lists=0).add(a["database"]).search(a["queries"], 2), InputError, "n_lists must be >= 1"),
    # -- corrections --------------------------------------------------------------------------
    ("NNN k > bank", lambda a: nnlift.NNN(k=31).fit(a["database"], a["bank"]), InputError, "NNN.k=31 is larger than possible: only 30 bank rows"),
    ("NNN no bank", lambda a: nnlift.NNN().fit(a["database"]), InputError, "NNN needs a bank"),
    ("NNN alpha nan", lambda a: nnlift.NNN(k=2, alpha=math.nan).fit(a["database"], a["bank"]), InputError, "alpha must be finite"),
    ("NNN alpha str", lambda a: nnlift.NNN(k=2, alpha="x").fit(a["database"], a["bank"]), InputTypeError, "alpha must be a real number"),
    ("NNN k=0", lambda a: nnlift.NNN(k=0).fit(a["database"], a["bank"]), InputError, "NNN.k must be >= 1"),
    ("NNN bank width", lambda a: nnlift.NNN().fit(a["database"], a["wide"]), InputError, "bank must have 8 columns"),
    ("NNN bank NaN", lambda a: nnlift.NNN().fit(a["database"], a["nan"]), InputError, "bank has NaN"),
    ("NNN not fitted", lambda a: nnlift.NNN().search(a["queries"]), nnlift.NotFittedError, "NNN is not fitted"),
    ("NNN search k", lambda a: fitted_nnn(a).search(a["queries"], 51), InputError, "k=51 is larger than possible"),
    ("NNN score range", lambda a: fitted_nnn(a).score(a["queries"], [0, 50]), InputError, "database_ids must be integer row numbers in \\[0, 50\\)"),
    ("NNN score float", lambda a: fitted_nnn(a).score(a["queries"], [0.5]), InputError, "database_ids must be integer row numbers"),
    ("NNN score shape", lambda a: fitted_nnn(a).score(a["queries"], [[1, 2]]), InputError, "database_ids must have shape \\(n_queries=5"),
    ("NNN add no bank", lambda a: fitted_nnn(a).add(a["database"][:2]), InputError, "NNN.add needs the bank"),
    ("CSLS k=0", lambda a: nnlift.CSLS(k=0).fit(a["database"], a["bank"]), InputError, "CSLS.k must be >= 1"),
    ("IS beta", lambda a: nnlift.InvertedSoftmax(beta=-1).fit(a["database"], a["bank"]), InputError, "beta must be > 0"),
    ("QBNorm k > n", lambda a: nnlift.QBNorm(k=100).fit(a["database"], a["bank"]), InputError, "QBNorm.k=100 is larger than possible: only 50 database rows"),
    ("DBNorm beta", lambda a: nnlift.DBNorm(beta=math.nan).fit(a["database"], a["bank"]), InputError, "beta must be finite"),
    ("LocalScaling k", lambda a: nnlift.LocalScaling(k=0).fit(a["database"]), InputError, "LocalScaling.k must be >= 1"),
    ("MutualProximity k", lambda a: nnlift.MutualProximity(k=100).fit(a["database"]), InputError, "MutualProximity.k=100 is larger than possible"),
    ("WithDN no bank", lambda a: nnlift.WithDN().fit(a["database"]), InputError, "WithDN needs a bank"),
    ("DN lambda", lambda a: nnlift.DistributionNormalization(lambda_=math.nan).fit(a["database"], a["bank"]), InputError, "lambda_ must be finite"),
    # -- blending ------------------------------------------------------------------------------
    ("blend thresh 1", lambda a: nnlift.neighborhood_search(a["database"], 1.0, 5), InputError, "thresh=1.0 must be < 1"),
    ("blend thresh nan", lambda a: nnlift.neighborhood_search(a["database"], math.nan, 5), InputError, "thresh must be finite"),
    ("blend no thresholds", lambda a: nnlift.iterative_neighborhood_blending(a["database"], [], 5), InputError, "thresholds is empty"),
    ("blend float64 NaN", lambda a: nnlift.iterative_neighborhood_blending(a["nan"], [0.5], 2), InputError, "emb has NaN"),
    ("blender k", lambda a: nnlift.NeighborhoodBlender(k=0).fit(a["database"]), InputError, "k must be >= 1"),
    ("DBA alpha", lambda a: nnlift.DatabaseAugmentation(alpha=-1).fit(a["database"]), InputError, "alpha must be >= 0.0"),
    ("aQE index", lambda a: nnlift.alpha_query_expansion(a["queries"], "index"), InputTypeError, "index must be an nnlift index"),
    ("blend lists", lambda a: nnlift.blend_neighborhood(a["database"], [[0]], [[1.0]]), InputError, "match_index_lst and similarities_lst need one entry per row"),
    # -- evaluation ----------------------------------------------------------------------------
    ("hit@k beyond columns", lambda a: hit_rate_at_k(a["ranked"], np.arange(5), k=10), InputError, "k=10 is larger than the 5 ranked columns"),
    ("recall@k beyond columns", lambda a: recall_at_k(a["ranked"], np.arange(5), k=6), InputError, "k=6 is larger than the 5 ranked columns"),
    ("mrr beyond columns", lambda a: mrr(a["ranked"], np.arange(5), k=9), InputError, "k=9 is larger than the 5 ranked columns"),
    ("hubness k", lambda a: hubness(a["ranked"], 30, k=50), InputError, "k=50 is larger than the 5 ranked columns"),
    ("hubness n_items", lambda a: hubness(a["ranked"], 0), InputError, "n_items must be >= 1"),
    ("targets float", lambda a: hit_rate_at_k(a["ranked"], np.arange(5.0), k=1), InputTypeError, "targets must hold integer database rows"),
    ("targets NaN", lambda a: hit_rate_at_k(a["ranked"], [1, 2, math.nan, 3, 4], k=1), InputTypeError, "targets must hold integer database rows"),
    ("targets bool", lambda a: hit_rate_at_k(a["ranked"], [True] * 5, k=1), InputTypeError, "targets must hold integer database rows"),
    ("targets length", lambda a: hit_rate_at_k(a["ranked"], [1, 2, 3], k=1), InputError, "targets has 3 entries"),
    ("ranked float", lambda a: hit_rate_at_k(a["ranked"] * 1.0, np.arange(5), k=1), InputError, "ranked must be Neighbors or a 2-D integer array"),
    ("targets outside", lambda a: check_targets([1, 70], 2, 50), InputError, "targets of query 1 is row 70, outside the gallery of 50"),
    ("targets empty", lambda a: check_targets(np.array([1, -1]), 2, 50), InputError, "targets of query 1 is empty"),
    ("targets < -1", lambda a: check_targets(np.array([[1, -3]]), 1, 50), InputError, "targets holds -3"),
    ("tune outside", lambda a: tune(nnlift.NNN(), {"k": [2]}, a["database"], a["bank"], a["queries"], [0, 1, 2, 3, 99], progress=False), InputError, "val_targets of query 4 is row 99, outside the gallery of 50"),
    # -- recommendations and algebra ----------------------------------------------------------
    ("mapping ragged", lambda a: nnlift.Recommender.from_mapping({"a": [1.0, 0.0], "b": [1.0, 0.0, 2.0]}), InputError, "items\\['b'\\] has 3 dimensions"),
    ("mapping empty", lambda a: nnlift.Recommender.from_mapping({}), InputError, "items must be a non-empty mapping"),
    ("mapping strings", lambda a: nnlift.Recommender.from_mapping({"a": ["x", "y"]}), InputError, "items\\['a'\\] must be a 1-D vector of numbers"),
    ("similar unknown", lambda a: recommender(a).similar("zz"), UnknownIdError, "unknown id"),
    ("similar k", lambda a: recommender(a).similar("a", k=0), InputError, "k must be >= 1"),
    ("centroid cancels", lambda a: algebra.centroid(np.array([[1.0, 0.0], [-1.0, 0.0]]), nnlift.ExactIndex().add(np.eye(2))), InputError, "group: its vectors cancel out"),
    ("centroid int width", lambda a: algebra.centroid(np.array([[1, 0, 0]]), nnlift.ExactIndex().add(np.eye(2))), InputError, "group must have 2 columns"),
    ("centroid zero row", lambda a: algebra.centroid(np.array([[0, 0]]), nnlift.ExactIndex().add(np.eye(2))), InputError, "group has 1 all-zero row"),
    ("centroid empty", lambda a: algebra.centroid([], recommender(a)), InputError, "group is empty"),
    ("walk scales nan", lambda a: algebra.walk("a", algebra.direction(["b"], ["c"], recommender(a)), recommender(a), scales=(math.nan,)), InputError, "scale must be finite"),
    ("walk no scales", lambda a: algebra.walk("a", algebra.direction(["b"], ["c"], recommender(a)), recommender(a), scales=()), InputError, "scales is empty"),
    # -- artifacts -----------------------------------------------------------------------------
    ("load missing", lambda a: nnlift.load("/nonexistent/nnlift-model"), nnlift.ArtifactError, "is not an nnlift artifact"),
    ("save dot", lambda a: fitted_nnn(a).save("."), nnlift.ArtifactError, "path='.' names no folder of its own"),
]


@pytest.mark.parametrize("label, call, error, message", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_clear_error_and_changes_nothing(label, call, error, message):
    inputs = arrays()
    before = {name: value.copy() for name, value in inputs.items()}
    with pytest.raises(error, match=message) as caught:
        call(inputs)
    assert isinstance(caught.value, NnliftError)  # nnlift's own error, never one from inside numpy or native code
    for name, value in inputs.items():
        np.testing.assert_array_equal(value, before[name], err_msg=f"{label} changed the caller's {name}")


def test_the_table_is_large():
    assert len(CASES) + len(CLI_CASES) >= 80


# -- right answers for numeric edge cases ----------------------------------------------------------
def test_huge_and_tiny_rows_rank_by_their_direction():
    database = np.array([[1e20, 1e19, 0.0], [0.5, 0.5, 0.0], [1e-30, 0.0, 1e-31]], dtype=np.float32)
    found = nnlift.topk([[1.0, 0.1, 0.0]], database, k=3)
    np.testing.assert_array_equal(found.ids, [[0, 2, 1]])  # 1e20 ranks like [1, 0.1, 0]; 1e-30 like [1, 0, 0.1]
    np.testing.assert_allclose(found.scores[0, 0], 1.0, rtol=1e-6)
    tiny_query = nnlift.topk([[1e-30, 0.0, 1e-31]], database, k=1)  # not "all-zero": only exact zeros are
    assert tiny_query.ids[0, 0] == 2


def test_score_of_no_ids_is_an_empty_matrix(rng):
    model = nnlift.NNN(k=2).fit(rng.standard_normal((10, 4)), rng.standard_normal((5, 4)))
    assert model.score(rng.standard_normal((3, 4)), []).shape == (3, 0)


def test_centroid_of_a_2d_int_group_is_its_mean_direction():
    index = nnlift.ExactIndex().add(np.eye(2))
    np.testing.assert_allclose(algebra.centroid(np.array([[3, 0], [0, 4]]), index), [0.5, 0.5])


def test_similarity_match_cutpoint_nan_is_refused():
    torch = pytest.importorskip("torch")
    from nnlift.metric import SimilarityModel

    model = SimilarityModel(torch.nn.Linear(4, 4), 2)
    model.index(np.eye(4, dtype=np.float32), [0, 1, 2, 3])
    with pytest.raises(InputError, match="cutpoint must be finite"):
        model.match(np.eye(4, dtype=np.float32), cutpoint=math.nan)
    with pytest.raises(InputTypeError, match="backbone must be a torch.nn.Module"):
        SimilarityModel(3, 2)


def test_qdrant_point_ids_and_writes():
    pytest.importorskip("qdrant_client")
    from nnlift.index.qdrant import QdrantIndex, point_id
    from nnlift.qdrant import write_sparse, write_vectors

    with pytest.raises(InputError, match="Qdrant point ids must be integers in \\[0, 2\\*\\*64\\)"):
        point_id(-1)
    with pytest.raises(InputTypeError, match="Qdrant point ids must be integers or strings"):
        point_id(1.5)
    with pytest.raises(InputError, match="collection must be a non-empty name"):
        QdrantIndex("", progress=False)
    index = QdrantIndex("c", using="dense", progress=False).add(np.eye(3), ids=[1, 2, 3])
    with pytest.raises(InputError, match="name='dense' is the vector being read"):
        write_vectors(index, np.eye(3), [1, 2, 3], name="dense")
    with pytest.raises(InputError, match="indices\\[0\\] must be non-negative integers"):
        write_sparse(index, [np.array([-1])], [np.array([1.0])], [1])


# -- the command line ----------------------------------------------------------------------------
pytest.importorskip("typer")
from .test_cli import run  # noqa: E402


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "database.npy", rng.standard_normal((40, 8)).astype(np.float32))
    np.save(data / "queries.npy", rng.standard_normal((20, 8)).astype(np.float32))
    np.save(data / "targets.npy", rng.integers(0, 40, 20))
    np.save(data / "float_targets.npy", rng.random(20))
    np.save(data / "outside.npy", np.full(20, 99))
    np.savez(data / "old.npz", ids=np.zeros(1))
    return data


DB, Q = "data/database.npy", "data/queries.npy"
CLI_CASES = [
    ("fit over inputs", ["nnn", "fit", "--database", DB, "--bank", Q, "--output", "data"], "--output='data' is a folder with other content"),
    ("fit to dot", ["nnn", "fit", "--database", DB, "--bank", Q, "--output", "."], "--output='.' names no folder"),
    ("fit to file", ["nnn", "fit", "--database", DB, "--bank", Q, "--output", DB], "exists and is not an nnlift artifact"),
    ("fit unwritable", ["nnn", "fit", "--database", DB, "--bank", Q, "--output", "/proc/nnlift-model"], "cannot write in '/proc'"),
    ("blend no folder", ["blend", "--input", DB, "--output", "no/such/dir/x.npy"], "the folder 'no/such/dir' does not exist"),
    ("blend over input", ["blend", "--input", DB, "--output", DB], "--output='data/database.npy' already exists; pass overwrite=True"),
    ("blend to folder", ["blend", "--input", DB, "--output", "data"], "--output='data' is a folder"),
    ("blend thresholds", ["blend", "--input", DB, "--output", "b.npy", "--thresholds", "a,b"], "--thresholds must be numbers"),
    ("knn existing", ["knn", "--database", DB, "--queries", Q, "--output", "data/old.npz"], "already exists"),
    ("knn metric", ["knn", "--database", DB, "--queries", Q, "--metric", "l2"], "metric must be one of"),
    ("knn missing", ["knn", "--database", "nope.npy", "--queries", Q], "--database: no such file"),
    ("eval float targets", ["eval", "--database", DB, "--queries", Q, "--targets", "data/float_targets.npy"], "targets must be 1-D or 2-D integers"),
    ("eval outside", ["eval", "--database", DB, "--queries", Q, "--targets", "data/outside.npy"], "--targets of query 0 is row 99, outside the gallery of 40"),
    ("index backend", ["index", "--vectors", DB, "--output", "ix", "--backend", "nope"], "--backend must be one of"),
    ("search no model", ["nnn", "search", "--model", "nope", "--queries", Q], "--model"),
    ("make-data over file", ["make-data", "--output", DB], "is a file; give a folder"),
]


@pytest.mark.parametrize("label, args, message", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input_is_one_line_exit_2_and_no_file_changes(monkeypatch, capsys, files, label, args, message):
    monkeypatch.chdir(files.parent)
    before = {p.name: p.read_bytes() for p in files.iterdir()}
    code, out = run(monkeypatch, capsys, *args)
    assert code == 2, out
    assert message in out, out
    assert "Traceback" not in out and len(out.strip().splitlines()) == 1, out
    assert {p.name: p.read_bytes() for p in files.iterdir()} == before


def test_cli_a_bug_keeps_its_traceback(monkeypatch, capsys, files):
    import nnlift.kernel

    def bug(*args, **kwargs):
        raise ValueError("an internal bug, not bad input")

    monkeypatch.chdir(files.parent)
    monkeypatch.setattr(nnlift.kernel, "topk", bug)
    with pytest.raises(ValueError, match="an internal bug"):
        run(monkeypatch, capsys, "knn", "--database", DB, "--queries", Q)


def test_cli_user_text_is_not_markup(monkeypatch, capsys, tmp_path):
    pytest.importorskip("qdrant_client")
    from nnlift.index.qdrant import QdrantIndex

    rng = np.random.default_rng(0)
    QdrantIndex("c", path=tmp_path / "q", using="dense", progress=False).add(rng.standard_normal((30, 8))).client.close()
    np.save(tmp_path / "bank.npy", rng.standard_normal((20, 8)).astype(np.float32))
    code, out = run(
        monkeypatch, capsys, "qdrant", "nnn", "--collection", "c", "--path", tmp_path / "q", "--using", "dense",
        "--bank", tmp_path / "bank.npy", "-k", 4,
    )  # fmt: skip
    assert code == 0 and "query it with [q, -alpha] (Dot)" in out, out
    code, out = run(monkeypatch, capsys, "knn", "--database", tmp_path / "[red]x.npy", "--queries", tmp_path / "bank.npy")
    assert code == 2 and "[red]x.npy" in out
