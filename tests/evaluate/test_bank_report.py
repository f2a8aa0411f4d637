"""bank_report: a bank like the queries passes; a bank of another kind is flagged, with the reason."""

import numpy as np
import pytest

from nnlift.evaluate import BankWarning, bank_report

from ..conftest import unit


def clustered(rng, centres, n, spread=0.4, shift=None):
    rows = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, centres.shape[1]))
    return rows if shift is None else rows + shift


def test_a_bank_from_the_queries_distribution_passes(rng):
    centres = unit(rng, 15, 16) * 2
    database, bank, queries = clustered(rng, centres, 800), clustered(rng, centres, 400), clustered(rng, centres, 400)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = bank_report(bank, queries, database)
    assert not report.likely_to_hurt and report.warnings == []
    assert report.bias_agreement > 0.7 and report.mean_shift_p > 0.01
    assert abs(report.mean_similarity[0] - report.mean_similarity[1]) < 0.05
    assert "agreement of NNN's bias" in report.summary()


def test_a_bank_of_another_kind_is_flagged(rng):
    centres = unit(rng, 15, 16) * 2
    database, queries = clustered(rng, centres, 800), clustered(rng, centres[:5], 400)
    other = clustered(rng, centres[10:], 400, shift=1.5 * unit(rng, 1, 16))  # other clusters, pushed aside
    with pytest.warns(BankWarning, match="NNN or QB-Norm may hurt"):
        report = bank_report(other, queries, database)
    assert report.likely_to_hurt and report.mean_shift_p < 0.01
    assert report.bias_agreement < 0.5


def test_by_hand_mean_shift_and_similarity():
    database = np.array([[1.0, 0.0], [0.0, 1.0]])
    bank = np.array([[1.0, 0.0], [1.0, 0.0]])
    queries = np.array([[0.0, 1.0], [0.0, 1.0]])
    report = bank_report(bank, queries, database, k=1, permutations=20, warn=False)
    assert report.mean_similarity == (1.0, 1.0)
    assert report.mean_shift == pytest.approx(np.sqrt(2.0))
    # the observed split is the most extreme of all: few permutations reach it (p = (hits + 1) / 21)
    assert report.mean_shift_p <= 8 / 21


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda b, q, d: bank_report(b[:, :3], q, d), "bank must have 6 columns"),
        (lambda b, q, d: bank_report(b, q, d, k=0), "k must be >= 1"),
        (lambda b, q, d: bank_report(b[:5], q, d, k=10), "k=10 is more than"),
        (lambda b, q, d: bank_report(b, q, d, sample=1), "sample must be >= 2"),
    ],
)
def test_bad_input_is_named(call, message, rng):
    bank, queries, database = unit(rng, 30, 6), unit(rng, 30, 6), unit(rng, 50, 6)
    before = bank.copy()
    with pytest.raises(ValueError, match=message):
        call(bank, queries, database)
    np.testing.assert_array_equal(bank, before)


def test_the_command_line_reports_and_exits_1_on_a_bad_bank(monkeypatch, capsys, tmp_path, rng):
    from ..test_cli import run

    centres = unit(rng, 15, 16) * 2
    database, queries = clustered(rng, centres, 800), clustered(rng, centres[:5], 400)
    good, bad = clustered(rng, centres[:5], 400), clustered(rng, centres[10:], 400, shift=1.5 * unit(rng, 1, 16))
    for name, array in (("database", database), ("queries", queries), ("good", good), ("bad", bad)):
        np.save(tmp_path / f"{name}.npy", array)
    common = ["--queries", tmp_path / "queries.npy", "--database", tmp_path / "database.npy"]
    code, out = run(monkeypatch, capsys, "bank-report", "--bank", tmp_path / "good.npy", *common)
    assert code == 0 and "agreement of NNN's bias" in out and "warning" not in out
    code, out = run(monkeypatch, capsys, "bank-report", "--bank", tmp_path / "bad.npy", *common)
    assert code == 1 and "warning: " in out and "may hurt" in out
    code, out = run(monkeypatch, capsys, "bank-report", "--bank", tmp_path / "none.npy", *common)
    assert code != 0 and "--bank" in out
