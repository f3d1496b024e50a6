"""Expected calibration error against a hand computation and an obviously correct loop."""

from __future__ import annotations

import numpy as np
import pytest

from multisteal.errors import InvalidInputError
from multisteal.metrics import expected_calibration_error


def _loop_ece(y: np.ndarray, P: np.ndarray, n_bins: int) -> float:
    total = 0.0
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    conf = P.max(axis=1)
    pred = P.argmax(axis=1)
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        rows = [i for i in range(len(y)) if (lo < conf[i] <= hi) or (b == 0 and conf[i] == 0)]
        if not rows:
            continue
        acc = np.mean([pred[i] == y[i] for i in rows])
        mean_conf = np.mean([conf[i] for i in rows])
        total += len(rows) / len(y) * abs(acc - mean_conf)
    return total


def test_hand_computed_case() -> None:
    P = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.55, 0.45]]
    # bins of width 1/15: 0.9 and 0.8 sit alone (right, gaps 0.1 and 0.2); 0.6 (wrong) and
    # 0.55 (right) share (8/15, 9/15]: accuracy 0.5, confidence 0.575
    expected = (0.1 + 0.2 + 2 * 0.075) / 4
    assert expected_calibration_error([0, 1, 1, 0], P) == pytest.approx(expected)


def test_matches_a_loop_on_random_scores() -> None:
    rng = np.random.default_rng(0)
    for c in (2, 5):
        P = rng.dirichlet(np.ones(c), size=500)
        y = rng.integers(0, c, size=500)
        for n_bins in (1, 10, 15):
            assert expected_calibration_error(y, P, n_bins=n_bins) == pytest.approx(
                _loop_ece(y, P, n_bins), abs=1e-12
            )


def test_perfectly_confident_and_right_is_zero_and_bad_input_is_named() -> None:
    assert expected_calibration_error([0, 1], [[1.0, 0.0], [0.0, 1.0]]) == 0.0
    assert expected_calibration_error([1, 0], [[1.0, 0.0], [0.0, 1.0]]) == 1.0
    with pytest.raises(InvalidInputError, match="number of samples"):
        expected_calibration_error([0, 1, 1], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(InvalidInputError, match="n_bins"):
        expected_calibration_error([0], [[1.0, 0.0]], n_bins=0)
