"""The examples in the metrics docstrings run and are correct."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "multisteal.metrics._validation",
    "multisteal.metrics.capacity",
    "multisteal.metrics.decision_rule",
    "multisteal.metrics.fairness",
    "multisteal.metrics.fidelity",
    "multisteal.metrics.multiplicity",
    "multisteal.metrics.registry",
    "multisteal.metrics.summary",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0
    assert result.attempted > 0
