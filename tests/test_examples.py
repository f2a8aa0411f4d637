"""The similarity example runs end to end (short training) and reports what it measured."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_similarity_digits_example_runs(monkeypatch, capsys, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("pytorch_metric_learning")
    pytest.importorskip("matplotlib")
    figure = tmp_path / "grid.png"
    monkeypatch.setattr(sys, "argv", ["similarity_digits.py", "--epochs", "2", "--figure", str(figure)])
    runpy.run_path(str(EXAMPLES / "similarity_digits.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "'classes': 10" in out and "match k=5" in out and "precision@1" in out
    assert figure.stat().st_size > 1000


def test_figures_example_draws_every_figure(monkeypatch, capsys, tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import matplotlib.image

    from nnlift.datasets import WordNetNotFound, find_wordnet

    try:
        find_wordnet()
        expected = 4  # a 2,000-document gallery lacks the walk's sea and land words: that walk says it was skipped
    except WordNetNotFound:
        expected = 2  # the digits figures; the WordNet ones say they were skipped
    monkeypatch.setattr(sys, "argv", ["figures.py", "--output", str(tmp_path), "--n-gallery", "2000"])
    runpy.run_path(str(EXAMPLES / "figures.py"), run_name="__main__")
    out = capsys.readouterr().out
    written = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("wrote ")]
    assert len(written) == expected and out.count("skipped") == 1
    for path in written:
        assert matplotlib.image.imread(path).shape[0] > 200
