"""Sinkhorn normalisation (DBSN): iterated inverted softmax in log space, against a dense reference."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import nnlift
from nnlift.correct import InvertedSoftmax, SinkhornNorm

from ..conftest import unit


def dense_sinkhorn(bank, database, beta, iterations):
    """The textbook form on the dense kernel K = exp(β·S): v = (1/n) / Kᵀu, u = (1/m) / Kv, alternately."""
    kernel = np.exp(beta * (bank.astype(np.float64) @ database.T.astype(np.float64)))
    m, n = kernel.shape
    u, v = np.ones(m), np.ones(n)
    for step in range(iterations):
        if step:
            u = (1.0 / m) / (kernel @ v)
        v = (1.0 / n) / (kernel.T @ u)
    return np.log(v) / beta, np.abs(m * u * (kernel @ v) - 1.0).max()  # G, and the rows' deviation


def test_by_hand_two_by_two():
    # S = [[1, 0], [0, 0]], beta 1: K = [[e, 1], [1, 1]]; one column step from u = 1: v = (1/2) / (e + 1, 2)
    bank = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    database = np.array([[1.0, 0.0], [0.0, 0.0]], dtype=np.float32)
    model = SinkhornNorm(beta=1.0, iterations=1, metric="ip").fit(database, bank)
    np.testing.assert_allclose(-model.bias_, np.log([0.5 / (np.e + 1), 0.25]), atol=1e-6)


def test_one_iteration_is_inverted_softmax(rng):
    database, bank, queries = unit(rng, 200, 8), unit(rng, 100, 8), unit(rng, 20, 8)
    one = SinkhornNorm(beta=20, iterations=1).fit(database, bank)
    inverted = InvertedSoftmax(beta=20).fit(database, bank)
    assert np.ptp(one.bias_ - inverted.bias_) < 1e-5  # the same bias up to a constant
    np.testing.assert_array_equal(one.search(queries, 5).ids, inverted.search(queries, 5).ids)


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from([5.0, 20.0]), st.integers(1, 12))
def test_equals_the_dense_reference(seed, beta, iterations):
    rng = np.random.default_rng(seed)
    database, bank, queries = unit(rng, 50, 6), unit(rng, 30, 6), unit(rng, 6, 6)
    model = SinkhornNorm(beta=beta, iterations=iterations).fit(database, bank)
    potential, deviation = dense_sinkhorn(bank, database, beta, iterations)
    np.testing.assert_allclose(-model.bias_, potential, atol=2e-4)
    assert model.row_error_ == pytest.approx(deviation, rel=1e-2, abs=1e-3)
    dense = queries.astype(np.float64) @ database.T.astype(np.float64) + potential
    found = model.search(queries, 3)
    np.testing.assert_allclose(found.scores, -np.sort(-dense, axis=1)[:, :3], atol=2e-4)


def test_iterations_balance_the_items_and_the_error_falls(rng):
    database, bank = unit(rng, 300, 8), unit(rng, 200, 8)
    errors = [SinkhornNorm(beta=20, iterations=i).fit(database, bank).row_error_ for i in (1, 3, 10, 30)]
    assert all(a > b for a, b in zip(errors, errors[1:])) and errors[-1] < 0.01
    gallery_bank = SinkhornNorm(beta=20, iterations=3).fit(database, bank, gallery_bank=unit(rng, 50, 8))
    assert gallery_bank.bias_.shape == (300,)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: SinkhornNorm(beta=0.0), "beta must be > 0"),
        (lambda: SinkhornNorm(beta=float("nan")), "beta must be finite"),
        (lambda: SinkhornNorm(iterations=0), "iterations must be >= 1"),
        (lambda: SinkhornNorm(iterations=2.5), "iterations must be an integer"),
    ],
)
def test_bad_parameters_are_named(make, message, rng):
    database, bank = unit(rng, 30, 4), unit(rng, 20, 4)
    before = bank.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        make().fit(database, bank)
    np.testing.assert_array_equal(bank, before)
    with pytest.raises(ValueError, match="needs a bank"):
        nnlift.SinkhornNorm().fit(database)
