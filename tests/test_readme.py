"""The README's quick-start block runs as written (it shows the API a new user copies first)."""

import math
import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def run_block(marker: str, given: dict | None = None) -> dict:
    """Run the README's python block that contains ``marker`` (with the names ``given`` defined); its namespace."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    block = next(b for b in blocks if marker in b)
    namespace: dict = dict(given or {})
    exec(compile(block, str(README), "exec"), namespace)
    return namespace


def test_the_readme_quick_start_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # it saves "nnn-model" in the working folder
    namespace = run_block("import nnlift")  # the first block that imports nnlift: the quick start
    assert math.isfinite(namespace["gain"].mean)  # the last lines ran: a paired gain was computed
    assert [c["on"] for c in namespace["big"].checks_][:1] == ["bank"]
    assert (tmp_path / "nnn-model" / "manifest.json").is_file()
    folded, corrected = namespace["folded"], namespace["corrected"]
    assert (folded.ids[:, 0] == corrected.ids[:, 0]).mean() == 1.0  # the served top-1 is NNN's
    assert np.mean([len(set(a) & set(b)) for a, b in zip(folded.ids, corrected.ids)]) / 10 >= 0.99


def test_the_readme_engines_block_runs():
    pytest.importorskip("torch")
    namespace = run_block('engine="torch-bf16"')
    assert namespace["fast"].scores.tobytes() == namespace["exact"].scores.tobytes()


def test_the_readme_upkeep_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("hnswlib")
    monkeypatch.chdir(tmp_path)
    namespace = run_block("index.remove(")
    index, plain, model = namespace["index"], namespace["plain"], namespace["model"]
    assert len(index) == 998 and "doc-3" not in index.ids.tolist()
    assert plain.ids[:2].tolist() == [1, 2] and plain.ids[-1] == 1000
    assert model.n_database == 998


def test_the_readme_sklearn_block_runs():
    pytest.importorskip("sklearn")
    namespace = run_block("CorrectedKNeighborsTransformer")
    accuracy = namespace["pipeline"].score(namespace["X_test"], namespace["y_test"])
    assert accuracy == pytest.approx(0.9844, abs=1e-3)  # the value the README prints


def test_the_readme_pictures_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    import matplotlib.image

    monkeypatch.chdir(tmp_path)
    namespace = run_block("plot_walk(")
    assert [step.new for step in namespace["steps"]] == [["bay", "lake"], [], ["hill", "plain"]]
    for name in ("neighbors.png", "walk.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 200
    for image in re.findall(r"\]\((docs/img/[^)]+\.png)\)", README.read_text(encoding="utf-8")):
        assert (README.parent / image).is_file(), image


def test_the_readme_blocks_block_runs():
    pytest.importorskip("torch")
    namespace = run_block("ConfidenceScorer(")
    assert namespace["typical"].min() > namespace["strange"].max()
    curve = namespace["prefetch"].recall_curve(namespace["docs"][:100], [30, 150, 600])
    assert curve[30] <= curve[150] <= curve[600]
    assert namespace["nudged"].ids.shape == (1, 5)


def test_the_readme_combining_block_runs():
    namespace = run_block("nnlift.Fusion(")
    assert namespace["top"].ids.shape == (5, 10)
    assert namespace["online"].seen_ == 600 and len(namespace["online"].reservoir_) == 600
    assert namespace["online"].correction_ is not None
    assert isinstance(namespace["mean_bias"].correction_, namespace["nnlift"].NNN)
