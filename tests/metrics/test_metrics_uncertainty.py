"""Bootstrap interval of one model's fairness, and the Student-t interval over seeds."""

from __future__ import annotations

import doctest
import math
import warnings
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from scipy import stats

import multisteal.metrics.uncertainty
from multisteal.errors import InvalidInputError
from multisteal.metrics import (
    BOOTSTRAP_COLUMNS,
    FAIRNESS_METRICS,
    MEAN_INTERVAL_KEYS,
    bootstrap_fairness,
    fairness_metrics,
    mean_interval,
)

IntArray = npt.NDArray[np.int64]


def _data(
    seed: int, n: int, groups: tuple[str, ...] = ("a", "b", "c")
) -> tuple[IntArray, IntArray, npt.NDArray[np.object_]]:
    rng = np.random.default_rng(seed)
    weights = np.linspace(2.0, 1.0, len(groups))
    code = rng.choice(len(groups), n, p=weights / weights.sum())
    sensitive = np.asarray(groups, dtype=object)[code]
    y = (rng.random(n) < 0.3 + 0.15 * code).astype(np.int64)
    pred = np.where(rng.random(n) < 0.1 + 0.05 * code, 1 - y, y).astype(np.int64)
    return y, pred, sensitive


def _slow_bootstrap(
    y: IntArray,
    pred: IntArray,
    sensitive: npt.NDArray[np.object_],
    *,
    n_resamples: int,
    confidence: float,
    rng: np.random.Generator,
    min_cell_size: int,
) -> dict[str, tuple[float, float, int]]:
    """The obvious loop: same draws, fairlearn's fairness_metrics on each resampled data set."""
    rows_of = [np.flatnonzero(sensitive == g) for g in np.unique(sensitive)]
    draws = [rng.integers(0, rows.size, size=(n_resamples, rows.size)) for rows in rows_of]
    values: dict[str, list[float]] = {name: [] for name in FAIRNESS_METRICS}
    for b in range(n_resamples):
        index = np.concatenate([rows[draw[b]] for rows, draw in zip(rows_of, draws, strict=True)])
        result = fairness_metrics(
            y[index], pred[index], sensitive_features=sensitive[index], min_cell_size=min_cell_size
        )
        for name in FAIRNESS_METRICS:
            values[name].append(result[name])
    alpha = 1.0 - confidence
    out = {}
    for name, sample in values.items():
        finite = [v for v in sample if not math.isnan(v)]
        low, high = np.percentile(finite, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        out[name] = (float(low), float(high), len(finite))
    return out


def test_layout_and_estimate_equals_fairness_metrics() -> None:
    y, pred, sensitive = _data(0, 600)
    for k in (0, 60):
        frame = bootstrap_fairness(
            y,
            pred,
            sensitive_features=sensitive,
            n_resamples=50,
            rng=np.random.default_rng(1),
            min_cell_size=k,
        )
        assert list(frame.columns) == list(BOOTSTRAP_COLUMNS)
        assert list(frame.index) == list(FAIRNESS_METRICS)
        assert frame.index.name == "metric"
        expected = fairness_metrics(y, pred, sensitive_features=sensitive, min_cell_size=k)
        for name in FAIRNESS_METRICS:
            assert frame.loc[name, "estimate"] == pytest.approx(expected[name], abs=1e-12)
        np.testing.assert_allclose(frame["width"], frame["high"] - frame["low"])


def test_interval_contains_the_estimate() -> None:
    y, pred, sensitive = _data(2, 3000)
    frame = bootstrap_fairness(
        y, pred, sensitive_features=sensitive, n_resamples=400, rng=np.random.default_rng(3)
    )
    assert (frame["low"] <= frame["estimate"]).all()
    assert (frame["estimate"] <= frame["high"]).all()
    assert (frame["width"] > 0).all()
    assert (frame["n_valid"] == 400).all()


@pytest.mark.parametrize(("min_cell_size", "confidence"), [(0, 0.95), (14, 0.8)])
def test_vectorised_equals_the_slow_loop(min_cell_size: int, confidence: float) -> None:
    y, pred, sensitive = _data(4, 150)
    fast = bootstrap_fairness(
        y,
        pred,
        sensitive_features=sensitive,
        n_resamples=30,
        confidence=confidence,
        rng=np.random.default_rng(5),
        min_cell_size=min_cell_size,
    )
    slow = _slow_bootstrap(
        y,
        pred,
        sensitive,
        n_resamples=30,
        confidence=confidence,
        rng=np.random.default_rng(5),
        min_cell_size=min_cell_size,
    )
    for name, (low, high, n_valid) in slow.items():
        assert fast.loc[name, "low"] == pytest.approx(low, abs=1e-12), name
        assert fast.loc[name, "high"] == pytest.approx(high, abs=1e-12), name
        assert fast.loc[name, "n_valid"] == n_valid, name
    if min_cell_size:
        # The case is chosen so that some resamples leave a group out of a rate difference.
        assert (fast["n_valid"] < 30).any()


def test_width_shrinks_when_the_data_are_replicated() -> None:
    y, pred, sensitive = _data(6, 800)
    once = bootstrap_fairness(
        y, pred, sensitive_features=sensitive, n_resamples=500, rng=np.random.default_rng(7)
    )
    four = bootstrap_fairness(
        np.tile(y, 4),
        np.tile(pred, 4),
        sensitive_features=np.tile(sensitive, 4),
        n_resamples=500,
        rng=np.random.default_rng(7),
    )
    np.testing.assert_allclose(four["estimate"], once["estimate"], atol=1e-12)
    # The standard error halves with 4x the rows; allow for Monte-Carlo noise.
    assert (four["width"] < 0.75 * once["width"]).all()


def test_stratified_resamples_keep_group_sizes() -> None:
    # Selection within each group is constant, so group sizes fixed => DP never varies.
    sensitive = np.array(["a"] * 30 + ["b"] * 10, dtype=object)
    y = np.tile([0, 1], 20)
    pred = np.array([1] * 30 + [0] * 10)
    frame = bootstrap_fairness(
        y, pred, sensitive_features=sensitive, n_resamples=100, rng=np.random.default_rng(0)
    )
    row = frame.loc["demographic_parity_difference"]
    assert (row["estimate"], row["low"], row["high"], row["width"]) == (1.0, 1.0, 1.0, 0.0)


def test_nan_estimate_gives_nan_interval() -> None:
    y, pred, sensitive = _data(8, 200, groups=("a", "b"))
    frame = bootstrap_fairness(
        y,
        pred,
        sensitive_features=sensitive,
        n_resamples=20,
        rng=np.random.default_rng(0),
        min_cell_size=10_000,
    )
    assert frame[["estimate", "low", "high", "width"]].isna().all(axis=None)
    assert (frame["n_valid"] == 0).all()


def test_bootstrap_errors() -> None:
    y, pred, sensitive = _data(9, 50)

    def call(**kwargs: object) -> Callable[[], object]:
        options: dict[str, object] = {"rng": np.random.default_rng(0)} | kwargs
        return lambda: bootstrap_fairness(y, pred, sensitive_features=sensitive, **options)

    cases = [
        (call(n_resamples=0), "n_resamples must be an integer >= 1; got 0"),
        (call(n_resamples=2.5), "n_resamples must be an integer >= 1; got 2.5"),
        (call(confidence=1.0), "confidence must be a number strictly between 0 and 1; got 1.0"),
        (call(confidence=0), "confidence must be a number strictly between 0 and 1; got 0"),
        (
            call(confidence="high"),
            "confidence must be a number strictly between 0 and 1; got 'high'",
        ),
        (call(rng=0), "rng must be a numpy.random.Generator; got int"),
        (
            call(rng=np.random.RandomState(0)),
            "rng must be a numpy.random.Generator; got RandomState",
        ),
        (call(min_cell_size=-2), "min_cell_size must be an integer >= 0; got -2"),
    ]
    for function, message in cases:
        with pytest.raises(InvalidInputError) as info:
            function()
        assert str(info.value) == message


# --------------------------------------------------------------------------------------------
# mean_interval
# --------------------------------------------------------------------------------------------


def test_mean_interval_hand_computed() -> None:
    result = mean_interval([1, 2, 3, 4, 5])
    assert list(result) == list(MEAN_INTERVAL_KEYS)
    assert result["n"] == 5
    assert result["mean"] == 3.0
    assert result["std"] == pytest.approx(math.sqrt(2.5))
    half = 2.776445 * 0.707107  # t_{0.975, 4} * sqrt(2.5) / sqrt(5) = 1.963243
    assert result["high"] - result["mean"] == pytest.approx(half, abs=1e-5)
    assert result["low"] == pytest.approx(3.0 - 1.963243, abs=1e-6)
    assert result["high"] == pytest.approx(3.0 + 1.963243, abs=1e-6)


def test_mean_interval_matches_scipy() -> None:
    values = np.random.default_rng(0).normal(0.3, 0.05, 12)
    for confidence in (0.5, 0.9, 0.99):
        result = mean_interval(values, confidence=confidence)
        low, high = stats.t.interval(
            confidence, len(values) - 1, loc=values.mean(), scale=stats.sem(values)
        )
        assert result["low"] == pytest.approx(low, abs=1e-12)
        assert result["high"] == pytest.approx(high, abs=1e-12)


def test_mean_interval_drops_nan() -> None:
    with_nan = mean_interval(pd.Series([1.0, np.nan, 2.0, 3.0, 4.0, np.nan, 5.0]))
    assert with_nan == mean_interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert with_nan["n"] == 5


def test_mean_interval_one_or_no_value_without_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        one = mean_interval([0.25, np.nan])
        none = mean_interval([np.nan, np.nan])
        empty = mean_interval(np.array([], dtype=float))
    assert one["n"] == 1
    assert one["mean"] == 0.25
    assert all(math.isnan(one[key]) for key in ("std", "low", "high"))
    for result in (none, empty):
        assert result["n"] == 0
        assert all(math.isnan(result[key]) for key in ("mean", "std", "low", "high"))


def test_mean_interval_constant_values() -> None:
    assert mean_interval([0.5, 0.5, 0.5]) == {
        "n": 3,
        "mean": 0.5,
        "std": 0.0,
        "low": 0.5,
        "high": 0.5,
    }


def test_mean_interval_errors() -> None:
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: mean_interval([1.0, math.inf]),
            "values contain infinite values; the first is at index 1",
        ),
        (
            lambda: mean_interval([[1.0, 2.0]]),
            "values must be 1-dimensional; got shape (1, 2)",
        ),
        (
            lambda: mean_interval(["a", "b"]),
            "values must be a numeric array; got dtype <U1",
        ),
        (
            lambda: mean_interval([1.0, 2.0], confidence=95),
            "confidence must be a number strictly between 0 and 1; got 95",
        ),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert str(info.value) == message


def test_docstring_examples() -> None:
    result = doctest.testmod(
        multisteal.metrics.uncertainty,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.failed == 0
    assert result.attempted > 0
