"""multisteal.metrics is a leaf: numpy, pandas, scipy, scikit-learn, fairlearn, multisteal.errors."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import multisteal.metrics

PACKAGE = Path(multisteal.metrics.__file__).parent
ALLOWED = {"numpy", "pandas", "scipy", "sklearn", "fairlearn", "numba"}


def _sources() -> list[Path]:
    files = sorted(PACKAGE.glob("*.py"))
    assert files
    return files


def test_imports_only_allowed_packages() -> None:
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: relative import"
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top == "multisteal":
                    assert name == "multisteal.errors" or name.startswith("multisteal.metrics"), (
                        f"{path.name} imports {name}"
                    )
                else:
                    assert top in ALLOWED or top in sys.stdlib_module_names, (
                        f"{path.name} imports {name}"
                    )


def test_no_printing_or_file_io() -> None:
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in {"print", "open", "input"}, path.name
