"""InvGC / LocalAdj: the gallery pushed away from its gallery and bank neighbourhoods, by hand and densely."""

import numpy as np
import pytest

import nnlift
from nnlift.correct import NNN, InvGC

from ..conftest import unit


def test_by_hand_on_three_points():
    # angles 0, 10, 90 degrees; k=1: the first two are each other's nearest, the third's nearest is the second
    a = np.radians([0.0, 10.0, 90.0])
    database = np.c_[np.cos(a), np.sin(a)].astype(np.float32)
    model = InvGC(k=1, gallery_weight=0.5, bank_weight=0.0, metric="ip").fit(database)
    expected = database - 0.5 * database[[1, 0, 1]]
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(model.database_, expected, atol=1e-6)
    bank = np.array([[1.0, 0.0], [0.0, 1.0]])
    with_bank = InvGC(k=1, gallery_weight=0.0, bank_weight=0.5, metric="ip").fit(database, bank)
    moved = database - 0.5 * bank[[0, 0, 1]]  # nearest bank query: (1, 0) for the first two, (0, 1) for the third
    np.testing.assert_allclose(with_bank.database_, moved / np.linalg.norm(moved, axis=1, keepdims=True), atol=1e-6)
    with pytest.raises(ValueError, match="the convolved database has 1 all-zero row"):
        InvGC(k=1, gallery_weight=0.0, bank_weight=1.0, metric="ip").fit(database, bank)  # (0, 1) − (0, 1)


def test_equals_a_dense_reference(rng):
    database, bank, queries = unit(rng, 120, 8), unit(rng, 60, 8), unit(rng, 10, 8)
    for weighting in ("uniform", "similarity"):
        model = InvGC(k=5, gallery_weight=0.3, bank_weight=0.2, weighting=weighting).fit(database, bank)
        sims = database @ database.T
        np.fill_diagonal(sims, -np.inf)
        shifted = database.astype(np.float64).copy()
        for rows, s, weight in ((database, sims, 0.3), (bank, database @ bank.T, 0.2)):
            top = np.argsort(-s, axis=1, kind="stable")[:, :5]
            w = np.take_along_axis(s, top, axis=1) if weighting == "similarity" else np.ones(top.shape)
            w = np.maximum(w, 0) / np.maximum(w, 0).sum(axis=1, keepdims=True)
            shifted -= weight * np.einsum("nk,nkd->nd", w, rows[top])
        shifted /= np.linalg.norm(shifted, axis=1, keepdims=True)
        np.testing.assert_allclose(model.database_, shifted, atol=1e-5)
        dense = queries @ shifted.T
        found = model.search(queries, 3)
        np.testing.assert_allclose(found.scores, -np.sort(-dense, axis=1)[:, :3], atol=1e-5)


def test_wraps_nnn_saves_and_loads(tmp_path, rng):
    database, bank, queries = unit(rng, 150, 8), unit(rng, 80, 8), unit(rng, 10, 8)
    model = InvGC(k=4, correction=NNN(k=5)).fit(database, bank)
    assert isinstance(model.correction_, NNN)
    model.save(tmp_path / "invgc")
    np.testing.assert_array_equal(nnlift.load(tmp_path / "invgc").search(queries, 4).ids, model.search(queries, 4).ids)
    assert not InvGC(bank_weight=0.0).needs_bank and InvGC().needs_bank


@pytest.mark.parametrize(
    ("make", "bank", "message"),
    [
        (lambda: InvGC(k=0), True, "InvGC.k must be >= 1"),
        (lambda: InvGC(k=40), True, "InvGC.k=40 is larger than possible"),
        (lambda: InvGC(gallery_weight=-0.1), True, "gallery_weight must be >= 0"),
        (lambda: InvGC(bank_weight=float("inf")), True, "bank_weight must be finite"),
        (lambda: InvGC(weighting="gauss"), True, "one of uniform, similarity"),
        (lambda: InvGC(), False, "needs a bank"),
    ],
)
def test_bad_input_is_named(make, bank, message, rng):
    database, bank_rows = unit(rng, 30, 4), unit(rng, 20, 4)
    before = database.copy()
    with pytest.raises((ValueError, TypeError), match=message):
        make().fit(database, bank_rows if bank else None)
    np.testing.assert_array_equal(database, before)
