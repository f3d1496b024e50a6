"""Summaries over samples and over a set of members."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from multisteal.metrics import (
    RC_THRESHOLD,
    SAMPLE_SUMMARY_KEYS,
    SET_SUMMARY_KEYS,
    summarize,
    summarize_columns,
    summarize_set,
)


def test_summarize_per_sample_values() -> None:
    values = np.arange(1, 11, dtype=float)  # 1 … 10
    summary = summarize(values, threshold=7.0)
    assert tuple(summary) == SAMPLE_SUMMARY_KEYS
    assert summary == {
        "count": 10,
        "mean": 5.5,
        "median": 5.5,
        "p90": 9.1,  # linear interpolation between 9 and 10
        "max": 10.0,
        "frac_above": 0.3,  # 8, 9, 10: strictly above 7
    }


def test_frac_above_is_strict_and_nan_without_threshold() -> None:
    rc = np.array([1.0, 1.01, 1.0100001, 2.0])
    assert summarize(rc, threshold=RC_THRESHOLD)["frac_above"] == 0.5
    summary = summarize(rc)
    assert tuple(summary) == SAMPLE_SUMMARY_KEYS  # the keys never change
    assert math.isnan(summary["frac_above"])
    # Booleans (e.g. ambiguous_samples) count as 0 / 1.
    assert summarize(np.array([True, False, False, True]), threshold=0.5)["mean"] == 0.5


def test_summarize_set() -> None:
    summary = summarize_set(np.array([0.1, 0.4, 0.2]), target=0.5)
    assert tuple(summary) == SET_SUMMARY_KEYS
    assert summary["count"] == 3
    assert summary["min"] == 0.1
    assert summary["max"] == 0.4
    assert summary["range"] == pytest.approx(0.3)
    assert summary["std"] == pytest.approx(
        np.sqrt(((0.1 - 0.7 / 3) ** 2 + (0.4 - 0.7 / 3) ** 2 + (0.2 - 0.7 / 3) ** 2) / 3)
    )
    assert summary["target"] == 0.5
    assert summary["max_gap"] == pytest.approx(0.4)  # |0.1 − 0.5|


def test_empty_inputs_give_nan_without_warning() -> None:
    summary = summarize_set(np.array([]), target=0.25)
    assert summary["count"] == 0
    assert summary["target"] == 0.25
    for key in ("min", "max", "range", "std", "max_gap"):
        assert math.isnan(summary[key])
    sample_summary = summarize(np.array([]), threshold=1.0)
    assert sample_summary["count"] == 0
    assert all(math.isnan(v) for k, v in sample_summary.items() if k != "count")


def test_summarize_columns() -> None:
    members = pd.DataFrame({"dp": [0.1, 0.3], "acc": [0.8, 0.8]})
    table = summarize_columns(members, target={"dp": 0.2, "acc": 0.9, "unused": 1.0})
    assert list(table.columns) == list(SET_SUMMARY_KEYS)
    assert list(table.index) == ["dp", "acc"]
    assert table.loc["dp", "range"] == pytest.approx(0.2)
    assert table.loc["acc", "range"] == 0.0
    assert table.loc["acc", "max_gap"] == pytest.approx(0.1)
    assert table.loc["dp", "count"] == 2
