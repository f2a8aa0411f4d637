"""Every python block of docs/migrating.md runs as written."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "migrating.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_the_migration_snippet_runs(number):
    pytest.importorskip("torch")
    exec(compile(BLOCKS[number], f"{PAGE}#block{number}", "exec"), {})


def test_the_page_has_its_snippets():
    assert len(BLOCKS) >= 2
