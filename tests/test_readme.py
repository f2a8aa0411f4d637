"""The README's quick-start block runs as written (it shows the API a new user copies first)."""

import math
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_quick_start_runs(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    quick_start = next(block for block in blocks if "import nnlift" in block)
    monkeypatch.chdir(tmp_path)  # it saves "nnn-model" in the working folder
    namespace: dict = {}
    exec(compile(quick_start, str(README), "exec"), namespace)
    assert math.isfinite(namespace["gain"].mean)  # the last lines ran: a paired gain was computed
    assert [c["on"] for c in namespace["big"].checks_][:1] == ["bank"]
    assert (tmp_path / "nnn-model" / "manifest.json").is_file()


def test_the_readme_engines_block_runs():
    pytest.importorskip("torch")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    engines_block = next(block for block in blocks if 'engine="torch-bf16"' in block)
    namespace: dict = {}
    exec(compile(engines_block, str(README), "exec"), namespace)
    assert namespace["fast"].scores.tobytes() == namespace["exact"].scores.tobytes()
