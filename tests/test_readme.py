"""The README's Python examples run as written (on smaller budgets where they are slow)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_the_setup_commands_first() -> None:
    head = README.read_text().splitlines()[:8]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)


@pytest.mark.parametrize("index", [0, 1])
def test_readme_python_examples_run(index: int, tmp_path, monkeypatch, capsys) -> None:
    blocks = _python_blocks()
    assert len(blocks) == 2
    monkeypatch.chdir(tmp_path)
    exec(compile(blocks[index], f"README.md[python {index}]", "exec"), {"__name__": "readme"})
    printed = capsys.readouterr().out
    assert printed.strip()
    if index == 0:
        assert (tmp_path / "runs/compas/summary.md").is_file()
