"""Engines and the certificate: every engine, batch, block size and worker count gives the same bits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlift
from nnlift import engines
from nnlift.engines.base import NumpyEngine, gamma
from nnlift.errors import InputError
from nnlift.index import ExactIndex, IVFIndex
from nnlift.kernel.canonical import canonical_scores
from nnlift.kernel.driver import self_topk_arrays, topk_arrays

torch = pytest.importorskip("torch")
ENGINES = ["numpy", "torch", "torch-bf16"]


def quantised(rng, n, d, levels=3):
    """Tie-heavy rows: small integers, so many pairs share a score exactly."""
    return rng.integers(-levels, levels + 1, size=(n, d)).astype(np.float32)


def reference(queries, database, k, bias=None, exclude_self=False, threshold=None):
    """float64 brute force, rounded to float32 once, ranked by (score desc, id asc), as the canonical rule says."""
    exact = queries.astype(np.float64) @ database.astype(np.float64).T
    if bias is not None:
        exact -= bias.astype(np.float64)
    scores = exact.astype(np.float32)
    if exclude_self:
        np.fill_diagonal(scores, -np.inf)
    ids = np.tile(np.arange(database.shape[0]), (queries.shape[0], 1))
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    top_ids = np.take_along_axis(ids, order, axis=1)
    top = np.take_along_axis(scores, order, axis=1)
    pad = ~np.isfinite(top) if threshold is None else (~np.isfinite(top) | (top <= threshold))
    return np.where(pad, -1, top_ids), np.where(pad, -np.inf, top).astype(np.float32)


def run(queries, database, k, engine, **options):
    found = topk_arrays(queries, database, k, engine=engine, progress=False, **options)
    return found.ids, found.scores


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(3, 60),
    m=st.integers(2, 400),
    d=st.integers(1, 24),
    k=st.integers(1, 12),
    variant=st.sampled_from(["plain", "bias", "exclude", "threshold"]),
    seed=st.integers(0, 2**16),
)
def test_every_engine_gives_the_float64_reference_bit_for_bit(n, m, d, k, variant, seed):
    rng = np.random.default_rng(seed)
    database = quantised(rng, m, d)
    queries = database[: min(n, m)] if variant == "exclude" else quantised(rng, n, d)
    limit = m - (1 if variant == "exclude" else 0)
    if limit < 1:
        return
    k = min(k, limit)
    options, ref_options = {}, {}
    if variant == "bias":
        bias = rng.integers(-4, 5, size=m).astype(np.float32) / 4
        options = ref_options = {"bias": bias}
    elif variant == "threshold":
        options = ref_options = {"threshold": 1.0}
    elif variant == "exclude":
        options, ref_options = {"exclude": np.arange(len(queries))}, {"exclude_self": True}
    ref_ids, ref_scores = reference(queries, database, k, **ref_options)
    for engine in ENGINES:
        ids, scores = run(queries, database, k, engine, **options)
        np.testing.assert_array_equal(ids, ref_ids, err_msg=engine)
        assert scores.tobytes() == ref_scores.astype(np.float32).tobytes(), engine


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), split=st.integers(1, 40), wm=st.sampled_from([2**12, 2**16, None]))
def test_a_query_gets_the_same_bits_alone_in_any_batch_block_size_and_worker_count(seed, split, wm):
    rng = np.random.default_rng(seed)
    database = rng.standard_normal((700, 16)).astype(np.float32)
    database[::7] = database[0]  # exact duplicates: ties at every cut
    queries = rng.standard_normal((41, 16)).astype(np.float32)
    queries[::5] = database[0]
    base_ids, base_scores = run(queries, database, 9, "numpy")
    for engine in ENGINES:
        for workers in (1, 2):
            ids, scores = run(queries, database, 9, engine, working_memory=wm, workers=workers)
            np.testing.assert_array_equal(ids, base_ids)
            assert scores.tobytes() == base_scores.tobytes()
        alone_ids, alone_scores = run(queries[split : split + 1], database, 9, engine)
        np.testing.assert_array_equal(alone_ids, base_ids[split : split + 1])
        assert alone_scores.tobytes() == base_scores[split : split + 1].tobytes()
        head_ids, _ = run(queries[:split], database, 9, engine, working_memory=wm)
        np.testing.assert_array_equal(head_ids, base_ids[:split])


@pytest.mark.parametrize("threshold", [None, 0.2])
def test_the_self_join_gives_the_plain_searchs_bits_on_every_engine(rng, threshold):
    database = rng.standard_normal((900, 12)).astype(np.float32)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    database[1::9] = database[0]
    plain = topk_arrays(database, database, 7, exclude_self=True, threshold=threshold, engine="numpy", progress=False)
    for engine in ENGINES:
        for wm in (2**14, None):
            joined = self_topk_arrays(
                database, 7, exclude_self=True, threshold=threshold, engine=engine, working_memory=wm, progress=False
            )
            np.testing.assert_array_equal(joined.ids, plain.ids)
            assert joined.scores.tobytes() == plain.scores.tobytes()


def test_ivf_tiles_give_the_same_bits_on_every_engine_and_batch(rng):
    database = rng.standard_normal((3000, 16)).astype(np.float32)
    database[::11] = database[3]
    queries = rng.standard_normal((120, 16)).astype(np.float32)
    results = []
    for engine in ENGINES:
        index = IVFIndex(n_lists=20, n_probe=4, engine=engine, progress=False).add(database)
        found = index.search(queries, 8)
        alone = index.search(queries[17:18], 8)
        np.testing.assert_array_equal(alone.ids, found.ids[17:18])
        assert alone.scores.tobytes() == found.scores[17:18].tobytes()
        joined = index.self_join(6, threshold=0.1)
        results.append((found.ids, found.scores.tobytes(), joined.ids, joined.scores.tobytes()))
    for other in results[1:]:
        np.testing.assert_array_equal(other[0], results[0][0])
        assert other[1] == results[0][1]
        np.testing.assert_array_equal(other[2], results[0][2])
        assert other[3] == results[0][3]


def test_canonical_scores_do_not_depend_on_which_pairs_are_scored_together(rng):
    queries = rng.standard_normal((30, 384)).astype(np.float32)
    database = rng.standard_normal((50, 384)).astype(np.float32)
    rows, columns = np.divmod(np.arange(30 * 50), 50)
    together = canonical_scores(queries, database, rows, columns)
    one_by_one = np.array([canonical_scores(queries, database, rows[i : i + 1], columns[i : i + 1])[0] for i in range(0, 1500, 37)])
    assert together[::37].tobytes() == one_by_one.tobytes()
    exact = (queries.astype(np.float64) @ database.astype(np.float64).T).ravel()
    np.testing.assert_allclose(together, exact, rtol=1e-6, atol=1e-6)


def test_canonical_scores_are_the_exact_value_correctly_rounded_even_at_a_rounding_boundary():
    rows = np.zeros(4, dtype=np.int64)
    database = np.ones((4, 3), dtype=np.float32)
    cases = np.array(
        [
            [1.0, 2.0**-24, 0.0],  # exactly halfway between 1 and 1 + 2⁻²³: ties to even, 1
            [1.0, 2.0**-24, 2.0**-60],  # a hair above halfway: 1 + 2⁻²³ (float64 alone loses the 2⁻⁶⁰)
            [1.0, 2.0**-24, -(2.0**-60)],  # a hair below: 1
            [1.0 + 2.0**-23, 2.0**-24, 0.0],  # halfway above an odd significand: up to the even one
        ],
        dtype=np.float32,
    )
    got = [canonical_scores(cases[i : i + 1], database, rows[:1], np.array([i]))[0] for i in range(4)]
    expected = [np.float32(1.0), np.float32(1 + 2.0**-23), np.float32(1.0), np.float32(1 + 2.0**-22)]
    assert [float(g) for g in got] == [float(e) for e in expected]


def adversarial(rng, n, d):
    """Large components, mixed scales and near-cancelling pairs: where rounding errors are largest."""
    rows = rng.standard_normal((n, d)) * rng.choice([1e-3, 1.0, 300.0], size=(n, 1))
    rows[: n // 4, : d // 2] = 1000.0 + rng.random((n // 4, d // 2))  # large, nearly equal components
    rows[n // 4 : n // 2, d // 2 :] = -rows[n // 4 : n // 2, : d - d // 2]  # cancellations within a row
    rows[n // 2 : n // 2 + 4] = (1 + 2.0**-9) * np.sign(rng.standard_normal((4, d)))  # halfway between bf16 values
    return rows.astype(np.float32)


@pytest.mark.parametrize("engine_name", ENGINES)
@pytest.mark.parametrize("d", [3, 64, 384])
def test_each_engines_error_stays_within_its_bound(engine_name, d):
    rng = np.random.default_rng(d)
    database = adversarial(rng, 300, d)
    queries = np.concatenate([adversarial(rng, 40, d), -database[:20] * 0.5, database[:20]])
    engine = engines.resolve(engine_name)
    prepared = engine.prepare(database)
    tile = np.empty((len(queries), len(database)), dtype=np.float32)
    prepared.multiply(prepared.queries(queries), 0, len(database), tile)
    exact = queries.astype(np.float64) @ database.astype(np.float64).T
    error = np.abs(tile.astype(np.float64) - exact)
    bound = prepared.error(queries)
    assert (error <= bound[:, None]).all()
    # Rigorous but not vacuous: within 100x of the worst case. How close a BLAS comes depends on its summation
    # order, measured at d=384: OpenBLAS's SkylakeX kernel reached 5% of the bound, its Haswell kernel (AMD
    # hosts without AVX-512) 2.6%. A bound off by a factor of d (384x) fails here.
    assert error.max() > 0.01 * bound.max()
    if engine_name == "torch-bf16":
        assert bound.max() > 10 * (gamma(d) * np.linalg.norm(queries, axis=1) * np.linalg.norm(database, axis=1).max()).max()


def test_the_bf16_bound_holds_on_real_like_unit_vectors():
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((16, 128))
    database = (rng.standard_normal((2000, 16)) @ basis + 0.3 * rng.standard_normal((2000, 128))).astype(np.float32)
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    engine = engines.resolve("torch-bf16")
    prepared = engine.prepare(database)
    tile = np.empty((200, 2000), dtype=np.float32)
    prepared.multiply(prepared.queries(database[:200]), 0, 2000, tile)
    error = np.abs(tile - database[:200].astype(np.float64) @ database.T.astype(np.float64))
    bound = prepared.error(database[:200])
    assert (error <= bound[:, None]).all()
    assert 0.002 < float(np.median(bound)) < 0.02  # about 0.008 on unit vectors (engines.torch)


def test_engine_choice_by_keyword_process_and_environment(monkeypatch):
    monkeypatch.delenv("NNLIFT_ENGINE", raising=False)
    try:
        nnlift.set_engine("torch")
        assert engines.resolve().name == "torch"
        assert engines.resolve("numpy").name == "numpy"  # the keyword wins
        nnlift.set_engine(None)
        monkeypatch.setenv("NNLIFT_ENGINE", "torch-bf16")
        assert engines.resolve().name == "torch-bf16"
        monkeypatch.setenv("NNLIFT_ENGINE", "fast")
        with pytest.raises(InputError, match="NNLIFT_ENGINE='fast'"):
            engines.resolve()
        monkeypatch.delenv("NNLIFT_ENGINE")
        assert engines.resolve(flops=1.0).name == "numpy"  # small work: no calibration, no torch
        assert engines.resolve(flops=float("inf"), d=32).name in {"numpy", "torch", "torch-bf16"}
    finally:
        nnlift.set_engine(None)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: nnlift.set_engine("gpu"), "engine must be one of"),
        (lambda: nnlift.set_engine("torch", "cuda"), "runs on the CPU"),
        (lambda: nnlift.set_engine("cuda", "cpu"), "runs on a GPU"),
        (lambda: ExactIndex(device="tpu"), "device must be"),
        (lambda: nnlift.topk(np.eye(3), np.eye(3), 1, engine=3), "engine must be one of"),
    ],
)
def test_bad_engine_choices_name_the_argument(call, match):
    with pytest.raises(InputError, match=match):
        call()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on machines without a GPU")
def test_cuda_without_a_gpu_is_a_clear_error():
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        nnlift.topk(np.eye(3), np.eye(3), 1, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("engine", ["cuda", "cuda-bf16"])
def test_cuda_engines_give_the_cpu_bits(rng, engine):
    database = quantised(rng, 5000, 64)
    queries = quantised(rng, 300, 64)
    ids, scores = run(queries, database, 10, "numpy")
    cuda_ids, cuda_scores = run(queries, database, 10, engine)
    np.testing.assert_array_equal(cuda_ids, ids)
    assert cuda_scores.tobytes() == scores.tobytes()


def test_an_index_keeps_its_engine_copy_between_searches_and_drops_stale_ones(rng):
    database = rng.standard_normal((500, 8)).astype(np.float32)
    index = ExactIndex(engine="torch-bf16").add(database)
    first = index.search(database[:5], 3)
    again = index.search(database[:5], 3)
    np.testing.assert_array_equal(first.ids, again.ids)
    writeable = database.copy()
    before = topk_arrays(writeable[:5], writeable, 3, engine="torch-bf16", progress=False)
    writeable[:] = writeable[::-1]  # a caller's array changed in place: no stale copy is used
    after = topk_arrays(writeable[:5], writeable, 3, engine="torch-bf16", progress=False)
    assert not np.array_equal(before.ids, after.ids)
    assert isinstance(engines.resolve("numpy"), NumpyEngine)


def test_a_log_sum_exp_never_runs_on_bfloat16(rng):
    database = rng.standard_normal((3000, 32)).astype(np.float32)
    queries = rng.standard_normal((40, 32)).astype(np.float32)
    exact = nnlift.logsumexp(queries, database, beta=20.0, engine="numpy")
    try:
        nnlift.set_engine("torch-bf16")
        on_bf16 = nnlift.logsumexp(queries, database, beta=20.0)
    finally:
        nnlift.set_engine(None)
    np.testing.assert_allclose(on_bf16, exact, rtol=1e-5, atol=1e-5)  # bf16 scores would move it by ~exp(20·0.008)
