"""Group fairness against fairlearn itself (MetricFrame and its fairness functions)."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    demographic_parity_difference,
    equal_opportunity_difference,
    equalized_odds_difference,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from multisteal.errors import InvalidInputError
from multisteal.metrics import (
    FAIRNESS_METRICS,
    GROUP_ACCURACY_COLUMN,
    GROUP_RATES,
    fairness_metrics,
    group_accuracy,
    group_rates,
    member_fairness,
)

N = 300


def _data(
    seed: int, groups: list[str] | list[int], n_members: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.object_]]:
    """Labels, member decisions that depend on the group, and group membership."""
    rng = np.random.default_rng(seed)
    sensitive = np.asarray(groups, dtype=object)[rng.integers(0, len(groups), N)]
    code = np.array([list(groups).index(g) for g in sensitive])
    y = (rng.random(N) < 0.3 + 0.1 * code).astype(np.int64)
    flip = rng.random((n_members, N)) < (0.1 + 0.05 * code)[np.newaxis, :]
    d = np.where(flip, 1 - y, y).astype(np.int64)
    return y, d, sensitive


def _fairlearn_reference(
    y: npt.NDArray[np.int64],
    d_m: npt.NDArray[np.int64],
    sensitive: npt.NDArray[np.object_],
    pos_label: int = 1,
) -> tuple[dict[str, float], dict[str, float]]:
    """Differences and per-group accuracy from fairlearn's MetricFrame."""
    frame = MetricFrame(
        metrics={
            "selection": functools.partial(selection_rate, pos_label=pos_label),
            "tpr": functools.partial(true_positive_rate, pos_label=pos_label),
            "fpr": functools.partial(false_positive_rate, pos_label=pos_label),
            "accuracy": accuracy_score,
        },
        y_true=y,
        y_pred=d_m,
        sensitive_features=sensitive,
    )
    diff = frame.difference()
    differences = {
        "demographic_parity_difference": diff["selection"],
        "equalized_odds_difference": max(diff["tpr"], diff["fpr"]),
        "true_positive_rate_difference": diff["tpr"],
        "false_positive_rate_difference": diff["fpr"],
        "accuracy_difference": diff["accuracy"],
    }
    accuracy = {str(g): v for g, v in frame.by_group["accuracy"].items()}
    return differences, accuracy


@pytest.mark.parametrize(
    "groups", [["female", "male"], ["a", "b", "c", "d"], [3, 1, 2, 0]], ids=str
)
def test_member_fairness_matches_fairlearn(groups: list[str] | list[int]) -> None:
    y, d, sensitive = _data(len(groups), groups, n_members=3)
    frame = member_fairness(y, d, sensitive_features=sensitive)
    names = sorted(str(g) for g in groups)
    assert list(frame.columns) == [
        *FAIRNESS_METRICS,
        *(GROUP_ACCURACY_COLUMN.format(group=g) for g in names),
    ]
    assert frame.index.name == "member"
    assert list(frame.index) == [0, 1, 2]
    for m in range(d.shape[0]):
        differences, accuracy = _fairlearn_reference(y, d[m], sensitive)
        row = frame.loc[m]
        for name, expected in differences.items():
            assert row[name] == pytest.approx(expected, abs=1e-12), name
        for group, expected in accuracy.items():
            assert row[GROUP_ACCURACY_COLUMN.format(group=group)] == pytest.approx(
                expected, abs=1e-12
            )
        # fairlearn's own fairness functions agree as well.
        assert row["demographic_parity_difference"] == pytest.approx(
            demographic_parity_difference(y, d[m], sensitive_features=sensitive), abs=1e-12
        )
        assert row["equalized_odds_difference"] == pytest.approx(
            equalized_odds_difference(y, d[m], sensitive_features=sensitive), abs=1e-12
        )
        assert row["true_positive_rate_difference"] == pytest.approx(
            equal_opportunity_difference(y, d[m], sensitive_features=sensitive), abs=1e-12
        )


@pytest.mark.parametrize("groups", [["x", "y"], ["a", "b", "c", "d"]])
def test_single_model_functions_match_fairlearn(groups: list[str]) -> None:
    y, d, sensitive = _data(10 + len(groups), groups, n_members=1)
    differences, accuracy = _fairlearn_reference(y, d[0], sensitive)
    result = fairness_metrics(y, d[0], sensitive_features=sensitive)
    assert list(result) == list(FAIRNESS_METRICS)
    for name, expected in differences.items():
        assert result[name] == pytest.approx(expected, abs=1e-12)
        assert isinstance(result[name], float)
    assert group_accuracy(y, d[0], sensitive_features=sensitive) == pytest.approx(
        accuracy, abs=1e-12
    )
    rates = group_rates(y, d[0], sensitive_features=sensitive)
    assert list(rates.columns) == list(GROUP_RATES)
    assert [str(g) for g in rates.index] == sorted(groups)
    # And the vectorised path gives the same row.
    row = member_fairness(y, d, sensitive_features=sensitive).loc[0]
    for name in FAIRNESS_METRICS:
        assert row[name] == pytest.approx(result[name], abs=1e-12)


def test_group_without_positives_and_other_pos_label() -> None:
    # Group "b" has no positive label: fairlearn's true-positive rate for it is 0.
    y, d, sensitive = _data(20, ["a", "b", "c"], n_members=2)
    y[sensitive == "b"] = 0
    for pos_label in (1, 0):
        frame = member_fairness(y, d, sensitive_features=sensitive, pos_label=pos_label)
        for m in range(2):
            differences, _ = _fairlearn_reference(y, d[m], sensitive, pos_label=pos_label)
            single = fairness_metrics(y, d[m], sensitive_features=sensitive, pos_label=pos_label)
            for name, expected in differences.items():
                assert frame.loc[m, name] == pytest.approx(expected, abs=1e-12)
                assert single[name] == pytest.approx(expected, abs=1e-12)


def test_parity_and_hand_computed_case() -> None:
    # Group a: y = [1, 0], pred = [1, 0]; group b: y = [1, 0], pred = [0, 0].
    y = np.array([1, 0, 1, 0])
    d = np.array([[1, 0, 0, 0], [1, 0, 1, 0]])
    frame = member_fairness(y, d, sensitive_features=pd.Series(["a", "a", "b", "b"]))
    expected_first = {
        "demographic_parity_difference": 0.5,  # selection 1/2 vs 0
        "equalized_odds_difference": 1.0,  # TPR 1 vs 0, FPR 0 vs 0
        "true_positive_rate_difference": 1.0,
        "false_positive_rate_difference": 0.0,
        "accuracy_difference": 0.5,  # 1 vs 1/2
        "accuracy[a]": 1.0,
        "accuracy[b]": 0.5,
    }
    assert frame.loc[0].to_dict() == expected_first
    # The second member is perfect in both groups: parity everywhere.
    assert frame[list(FAIRNESS_METRICS)].to_numpy()[1].tolist() == [0.0] * len(FAIRNESS_METRICS)


def test_single_group_has_no_differences() -> None:
    y, d, _ = _data(30, ["a"], n_members=2)
    frame = member_fairness(y, d, sensitive_features=np.full(N, "only"))
    assert frame[list(FAIRNESS_METRICS)].to_numpy().tolist() == [[0.0] * 5] * 2


@pytest.mark.parametrize("pos_label", [0, 1])
def test_member_fairness_methods_agree(pos_label: int) -> None:
    y, d, sensitive = _data(4, ["a", "b", "c", "d"], n_members=4)
    fast = member_fairness(y, d, sensitive_features=sensitive, pos_label=pos_label)
    slow = member_fairness(
        y, d, sensitive_features=sensitive, pos_label=pos_label, method="fairlearn"
    )
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, atol=1e-12, rtol=0)


def test_member_fairness_unknown_method() -> None:
    y, d, sensitive = _data(2, ["a", "b"], n_members=1)
    with pytest.raises(InvalidInputError) as info:
        member_fairness(y, d, sensitive_features=sensitive, method="torch")
    assert str(info.value) == "method must be 'vectorised' or 'fairlearn'; got 'torch'"
