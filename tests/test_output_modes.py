"""The output mode an API announces (what attacks are checked against before any query) is the
mode of every answer it sends, for every chain of defences and every output policy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.tree import DecisionTreeClassifier

from multisteal.errors import InvalidInputError
from multisteal.query import OUTPUT_MODES, LocalQueryAPI
from multisteal.query.defences import make_defence

CHAIN_PARTS = [
    ("rounding", {"decimals": 1}),
    ("top-k", {"k": 1}),
    ("label-only", {}),
    ("gaussian-noise", {"sigma": 0.05}),
    ("reverse-sigmoid", {"beta": 0.5}),
    ("high-confidence", {"cutoff": 0.6}),
    ("mad", {"epsilon": 0.3}),
]


@pytest.fixture(scope="module")
def tree() -> DecisionTreeClassifier:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int) + (X[:, 2] > 1).astype(int)
    return DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y)


CHAINS = [()] + [
    chain for n in (1, 2) for chain in itertools.permutations(range(len(CHAIN_PARTS)), n)
]


@pytest.mark.parametrize("chain", CHAINS)
def test_announced_mode_is_the_answers_mode(tree, chain) -> None:
    X = np.random.default_rng(1).normal(size=(64, 4))
    for output in OUTPUT_MODES:
        defences = [
            make_defence(CHAIN_PARTS[i][0], CHAIN_PARTS[i][1], seed=3, model=tree) for i in chain
        ]
        names = [CHAIN_PARTS[i][0] for i in chain]
        hides = {"top-k", "high-confidence"}  # (label-only answers pass MAD unchanged)
        if "mad" in names and hides & set(names[: names.index("mad")]):
            # MAD cannot follow a defence that hides scores: refused when the service is built
            with pytest.raises(InvalidInputError, match="mad"):
                LocalQueryAPI(tree, output=output, budget=None, defences=defences)
            continue
        api = LocalQueryAPI(tree, output=output, budget=None, defences=defences)
        answer = api.query(X)
        assert answer.mode == api.output_mode, (output, names)
        if api.output_mode == "label":
            assert answer.scores is None
            assert answer.leaves is None
        if api.output_mode == "leaf":
            np.testing.assert_array_equal(answer.leaves, tree.apply(X))
            assert answer.scores is None
        if api.output_mode in ("probabilities", "rounded", "top-k"):
            assert answer.scores is not None
            assert answer.leaves is None
