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
