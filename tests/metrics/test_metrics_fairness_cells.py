"""Label-conditioned cell sizes (min_cell_size, small_cells) and the rate-matched control."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from multisteal.errors import InvalidInputError
from multisteal.metrics import (
    CELL_FAMILIES,
    FAIRNESS_METRICS,
    METRIC_CELLS,
    decisions,
    fairness_metrics,
    member_fairness,
    rate_matched_decisions,
    small_cells,
)

IntArray = npt.NDArray[np.int64]

# --------------------------------------------------------------------------------------------
# Reference: fairlearn's MetricFrame on the rows of the kept groups only.
# --------------------------------------------------------------------------------------------

RATE_OF_FAMILY: dict[str, Callable[[int], Callable[..., float]]] = {
    "selection": lambda pos: functools.partial(selection_rate, pos_label=pos),
    "tpr": lambda pos: functools.partial(true_positive_rate, pos_label=pos),
    "fpr": lambda pos: functools.partial(false_positive_rate, pos_label=pos),
    "accuracy": lambda pos: accuracy_score,
}


def _kept_groups(
    y: IntArray, sensitive: npt.NDArray[np.object_], cell: str, k: int, pos_label: int
) -> list[object]:
    kept = []
    for group in np.unique(sensitive):
        rows = sensitive == group
        n = {
            "group": int(rows.sum()),
            "positives": int((rows & (y == pos_label)).sum()),
            "negatives": int((rows & (y != pos_label)).sum()),
        }[cell]
        if n >= k:
            kept.append(group)
    return kept


def _reference_difference(
    y: IntArray,
    pred: IntArray,
    sensitive: npt.NDArray[np.object_],
    rate: str,
    cell: str,
    k: int,
    pos_label: int,
) -> float:
    kept = _kept_groups(y, sensitive, cell, k, pos_label)
    if len(kept) < 2:
        return math.nan
    rows = np.isin(sensitive, kept)
    frame = MetricFrame(
        metrics={rate: RATE_OF_FAMILY[rate](pos_label)},
        y_true=y[rows],
        y_pred=pred[rows],
        sensitive_features=sensitive[rows],
    )
    return float(frame.difference(method="between_groups")[rate])


def _reference(
    y: IntArray, pred: IntArray, sensitive: npt.NDArray[np.object_], k: int, pos_label: int = 1
) -> dict[str, float]:
    tpr = _reference_difference(y, pred, sensitive, "tpr", "positives", k, pos_label)
    fpr = _reference_difference(y, pred, sensitive, "fpr", "negatives", k, pos_label)
    return {
        "demographic_parity_difference": _reference_difference(
            y, pred, sensitive, "selection", "group", k, pos_label
        ),
        "equalized_odds_difference": math.nan
        if math.isnan(tpr) or math.isnan(fpr)
        else max(tpr, fpr),
        "true_positive_rate_difference": tpr,
        "false_positive_rate_difference": fpr,
        "accuracy_difference": _reference_difference(
            y, pred, sensitive, "accuracy", "group", k, pos_label
        ),
    }


def _assert_same(actual: float, expected: float, name: str) -> None:
    if math.isnan(expected):
        assert math.isnan(actual), name
    else:
        assert actual == pytest.approx(expected, abs=1e-12), name


def _check_all_paths(
    y: IntArray,
    d: IntArray,
    sensitive: npt.NDArray[np.object_],
    k: int,
    pos_label: int = 1,
) -> None:
    """member_fairness (both methods) and fairness_metrics against the kept-groups reference."""
    fast = member_fairness(y, d, sensitive_features=sensitive, pos_label=pos_label, min_cell_size=k)
    slow = member_fairness(
        y,
        d,
        sensitive_features=sensitive,
        pos_label=pos_label,
        min_cell_size=k,
        method="fairlearn",
    )
    pd.testing.assert_frame_equal(fast, slow, check_exact=False, atol=1e-12, rtol=0)
    for m in range(d.shape[0]):
        expected = _reference(y, d[m], sensitive, k, pos_label)
        single = fairness_metrics(
            y, d[m], sensitive_features=sensitive, pos_label=pos_label, min_cell_size=k
        )
        assert list(single) == list(FAIRNESS_METRICS)
        for name in FAIRNESS_METRICS:
            _assert_same(float(fast.loc[m, name]), expected[name], name)
            _assert_same(single[name], expected[name], name)


# --------------------------------------------------------------------------------------------
# min_cell_size
# --------------------------------------------------------------------------------------------


def test_tiny_hand_built_case_against_fairlearn() -> None:
    # Group a: 3 positives, 1 negative; b: 2 and 2; c: 0 positives, 2 negatives.
    # With k = 2: a is out of the FPR difference, c out of the TPR difference, all in DP/accuracy.
    sensitive = np.array(list("aaaabbbbcc"), dtype=object)
    y = np.array([1, 1, 1, 0, 1, 1, 0, 0, 0, 0])
    d = np.array(
        [
            [1, 0, 1, 1, 1, 0, 0, 1, 1, 0],
            [1, 1, 1, 0, 0, 0, 1, 1, 0, 0],
        ]
    )
    _check_all_paths(y, d, sensitive, k=2)
    frame = member_fairness(y, d, sensitive_features=sensitive, min_cell_size=2)
    # Member 0 by hand. TPR: a 2/3, b 1/2 -> 1/6 (c, TPR 0 by convention, is left out).
    # FPR: b 1/2, c 1/2 -> 0 (a, FPR 1, is left out). Selection: a 3/4, b 2/4, c 1/2 -> 1/4.
    # Accuracy: a 2/4, b 2/4, c 1/2 -> 0.
    assert frame.loc[0, "true_positive_rate_difference"] == pytest.approx(1 / 6)
    assert frame.loc[0, "false_positive_rate_difference"] == 0.0
    assert frame.loc[0, "equalized_odds_difference"] == pytest.approx(1 / 6)
    assert frame.loc[0, "demographic_parity_difference"] == pytest.approx(1 / 4)
    assert frame.loc[0, "accuracy_difference"] == 0.0
    # Without the minimum, c's TPR of 0 and a's FPR of 1 dominate.
    every = member_fairness(y, d, sensitive_features=sensitive)
    assert every.loc[0, "true_positive_rate_difference"] == pytest.approx(2 / 3)
    assert every.loc[0, "false_positive_rate_difference"] == pytest.approx(1 / 2)
    assert small_cells(y, sensitive_features=sensitive, min_cell_size=2) == {
        "group": {},
        "positives": {"c": 0},
        "negatives": {"a": 1},
    }


@pytest.mark.parametrize("seed", range(4))
def test_randomized_against_fairlearn_on_kept_groups(seed: int) -> None:
    rng = np.random.default_rng(seed)
    names = ["g0", "g1", "g2", "g3", "g4"]
    n_groups = int(rng.integers(2, 6))
    weights = rng.dirichlet(np.ones(n_groups) * 0.7)
    n = 250
    sensitive = np.asarray(names[:n_groups], dtype=object)[rng.choice(n_groups, n, p=weights)]
    base = rng.uniform(0.05, 0.95, n_groups)
    code = np.array([names.index(g) for g in sensitive])
    y = (rng.random(n) < base[code]).astype(np.int64)
    flip = rng.random((2, n)) < 0.2
    d = np.where(flip, 1 - y, y).astype(np.int64)
    pos_label = int(rng.integers(0, 2))
    for k in (1, 10, 30, 80):
        _check_all_paths(y, d, sensitive, k, pos_label)


def _german_like() -> tuple[IntArray, IntArray, npt.NDArray[np.object_]]:
    """Three groups; 'female' has 27 positives (good credit) and only 13 negatives.

    Decisions per group (TP of positives, FP of negatives):
    female 18/27, 10/13; male_single 63/70, 6/30; male_married 30/40, 8/20.
    """
    spec = {
        "female": (27, 13, 18, 10),
        "male_single": (70, 30, 63, 6),
        "male_married": (40, 20, 30, 8),
    }
    ys, ds, gs = [], [], []
    for group, (n_pos, n_neg, tp, fp) in spec.items():
        ys += [1] * n_pos + [0] * n_neg
        ds += [1] * tp + [0] * (n_pos - tp) + [1] * fp + [0] * (n_neg - fp)
        gs += [group] * (n_pos + n_neg)
    order = np.random.default_rng(7).permutation(len(ys))
    return (
        np.asarray(ys, dtype=np.int64)[order],
        np.asarray(ds, dtype=np.int64)[order],
        np.asarray(gs, dtype=object)[order],
    )


def test_german_credit_like_group_with_13_negatives() -> None:
    y, pred, sensitive = _german_like()
    expected = {
        # selection: female 28/40 = 0.7, single 69/100, married 38/60 -> 0.7 - 38/60
        "demographic_parity_difference": 0.7 - 38 / 60,
        # TPR: female 2/3, single 0.9, married 0.75 -> 0.9 - 2/3 (female stays in)
        "true_positive_rate_difference": 0.9 - 2 / 3,
        # FPR: female (10/13) is left out; single 0.2, married 0.4 -> 0.2
        "false_positive_rate_difference": 0.2,
        # equalized odds: max(7/30, 0.2), not female's 10/13 - 0.2
        "equalized_odds_difference": 0.9 - 2 / 3,
        # accuracy: female 21/40, single 87/100, married 42/60 -> 0.87 - 0.525
        "accuracy_difference": 0.87 - 0.525,
    }
    single = fairness_metrics(y, pred, sensitive_features=sensitive, min_cell_size=20)
    frame = member_fairness(y, pred[None, :], sensitive_features=sensitive, min_cell_size=20)
    for name, value in expected.items():
        assert single[name] == pytest.approx(value, abs=1e-12), name
        assert frame.loc[0, name] == pytest.approx(value, abs=1e-12), name
    # Without the minimum, female's FPR of 10/13 drives FPR and equalized odds.
    plain = fairness_metrics(y, pred, sensitive_features=sensitive)
    assert plain["false_positive_rate_difference"] == pytest.approx(10 / 13 - 0.2)
    assert plain["equalized_odds_difference"] == pytest.approx(10 / 13 - 0.2)
    assert small_cells(y, sensitive_features=sensitive, min_cell_size=20) == {
        "group": {},
        "positives": {},
        "negatives": {"female": 13},
    }
    # Two groups only: the FPR difference, hence equalized odds, has one group left -> NaN.
    two = sensitive != "male_married"
    result = fairness_metrics(
        y[two], pred[two], sensitive_features=sensitive[two], min_cell_size=20
    )
    assert math.isnan(result["false_positive_rate_difference"])
    assert math.isnan(result["equalized_odds_difference"])
    assert result["demographic_parity_difference"] == pytest.approx(0.7 - 0.69)
    assert result["true_positive_rate_difference"] == pytest.approx(0.9 - 2 / 3)


def test_min_cell_size_zero_is_the_default() -> None:
    y, pred, sensitive = _german_like()
    d = np.stack([pred, 1 - pred, y])
    pd.testing.assert_frame_equal(
        member_fairness(y, d, sensitive_features=sensitive, min_cell_size=0),
        member_fairness(y, d, sensitive_features=sensitive),
    )
    assert fairness_metrics(y, pred, sensitive_features=sensitive, min_cell_size=0) == (
        fairness_metrics(y, pred, sensitive_features=sensitive)
    )


def test_per_group_accuracy_is_kept_for_small_groups() -> None:
    y, pred, sensitive = _german_like()
    frame = member_fairness(y, pred[None, :], sensitive_features=sensitive, min_cell_size=1000)
    assert frame.loc[0, "accuracy[female]"] == pytest.approx(21 / 40)
    assert frame[list(FAIRNESS_METRICS)].isna().all(axis=None)


def test_single_group_is_nan_only_with_a_minimum() -> None:
    y = np.array([1, 0, 1, 0])
    d = np.array([[1, 1, 0, 0]])
    one = np.full(4, "only")
    assert (
        member_fairness(y, d, sensitive_features=one)[list(FAIRNESS_METRICS)].eq(0.0).all(axis=None)
    )
    frame = member_fairness(y, d, sensitive_features=one, min_cell_size=1)
    assert frame[list(FAIRNESS_METRICS)].isna().all(axis=None)
    assert all(
        math.isnan(v)
        for v in fairness_metrics(y, d[0], sensitive_features=one, min_cell_size=1).values()
    )


@pytest.mark.parametrize("bad", [-1, 1.5, True, "3", None])
def test_min_cell_size_must_be_a_non_negative_integer(bad: object) -> None:
    y, pred, sensitive = _german_like()
    message = f"min_cell_size must be an integer >= 0; got {bad!r}"
    calls: list[Callable[[], object]] = [
        lambda: member_fairness(y, pred[None, :], sensitive_features=sensitive, min_cell_size=bad),
        lambda: fairness_metrics(y, pred, sensitive_features=sensitive, min_cell_size=bad),
        lambda: small_cells(y, sensitive_features=sensitive, min_cell_size=bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert str(info.value) == message


def test_small_cells_shape_and_order() -> None:
    sensitive = np.array([3, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    y = np.array([0, 1, 0, 0, 0, 1, 1, 1, 0, 1])
    assert small_cells(y, sensitive_features=sensitive, min_cell_size=0) == {
        "group": {},
        "positives": {},
        "negatives": {},
    }
    result = small_cells(y, sensitive_features=sensitive, min_cell_size=3)
    assert list(result) == list(CELL_FAMILIES)
    assert result == {
        "group": {"1": 2},
        "positives": {"1": 1, "2": 1},
        "negatives": {"1": 1, "2": 2, "3": 2},
    }
    # pos_label swaps the positive and negative cells.
    swapped = small_cells(y, sensitive_features=sensitive, min_cell_size=3, pos_label=0)
    assert swapped["positives"] == result["negatives"]
    assert swapped["negatives"] == result["positives"]
    with pytest.raises(InvalidInputError):
        small_cells([0, 1, 2], sensitive_features=["a", "b", "c"], min_cell_size=1)


def test_metric_cells_cover_every_metric() -> None:
    assert list(METRIC_CELLS) == list(FAIRNESS_METRICS)
    assert {cell for cells in METRIC_CELLS.values() for cell in cells} == set(CELL_FAMILIES)


# --------------------------------------------------------------------------------------------
# rate_matched_decisions
# --------------------------------------------------------------------------------------------


def _softmax_set(seed: int, members: int, rows: int, classes: int) -> npt.NDArray[np.float64]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (members, rows, classes))
    exp = np.exp(logits - logits.max(axis=2, keepdims=True))
    probabilities: npt.NDArray[np.float64] = exp / exp.sum(axis=2, keepdims=True)
    return probabilities


@pytest.mark.parametrize("classes", [2, 3, 4])
@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5, 0.77, 1.0])
def test_rate_is_matched_exactly(classes: int, rate: float) -> None:
    P = _softmax_set(classes, members=5, rows=37, classes=classes)
    for pos_label in (0, classes - 1):
        d = rate_matched_decisions(P, positive_rate=rate, pos_label=pos_label)
        assert d.shape == (5, 37)
        assert d.dtype == np.int64
        expected = round(rate * 37)
        assert ((d == pos_label).sum(axis=1) == expected).all()
        assert ((d == pos_label).mean(axis=1) == expected / 37).all()


def test_rate_per_member() -> None:
    P = _softmax_set(1, members=3, rows=20, classes=2)
    d = rate_matched_decisions(P, positive_rate=np.array([0.1, 0.5, 0.95]))
    assert (d == 1).sum(axis=1).tolist() == [2, 10, 19]


def test_member_at_target_rate_is_unchanged_without_ties() -> None:
    P = _softmax_set(2, members=6, rows=50, classes=2)
    for pos_label in (0, 1):
        original = decisions(P)
        rates = (original == pos_label).mean(axis=1)
        matched = rate_matched_decisions(P, positive_rate=rates, pos_label=pos_label)
        np.testing.assert_array_equal(matched, original)


def test_decisions_are_monotone_in_the_score() -> None:
    rng = np.random.default_rng(3)
    # Coarse scores: many ties.
    score = rng.integers(0, 5, (4, 40)) / 4.0
    P = np.stack([1.0 - score, score], axis=2)
    d = rate_matched_decisions(P, positive_rate=0.45)
    for m in range(4):
        chosen = d[m] == 1
        assert score[m, chosen].min() >= score[m, ~chosen].max()
        # Among tied rows at the threshold, the lower row indices are chosen first.
        threshold = score[m, chosen].min()
        tied = np.flatnonzero(score[m] == threshold)
        picked = chosen[tied]
        assert (np.diff(picked.astype(int)) <= 0).all()


def test_hand_computed_five_rows() -> None:
    score = np.array([0.2, 0.9, 0.5, 0.5, 0.1])
    P = np.stack([1.0 - score, score], axis=1)[None]
    # Ranking: row 1, then rows 2 and 3 (tie, lower index first), then row 0, then row 4.
    assert rate_matched_decisions(P, positive_rate=0.6).tolist() == [[0, 1, 1, 1, 0]]
    assert rate_matched_decisions(P, positive_rate=0.4).tolist() == [[0, 1, 1, 0, 0]]
    # 0.5 * 5 = 2.5 rounds half to even, to 2.
    assert rate_matched_decisions(P, positive_rate=0.5).tolist() == [[0, 1, 1, 0, 0]]
    assert rate_matched_decisions(P, positive_rate=0.0).tolist() == [[0, 0, 0, 0, 0]]
    # pos_label 0: the score is P[:, 0] = 1 - score.
    assert rate_matched_decisions(P, positive_rate=0.4, pos_label=0).tolist() == [[0, 1, 1, 1, 0]]
    # Three classes, pos_label 2: the others get the more probable of classes 0 and 1.
    P3 = np.array(
        [[[0.5, 0.3, 0.2], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.6, 0.1, 0.3], [0.2, 0.5, 0.3]]]
    )
    assert rate_matched_decisions(P3, positive_rate=0.4, pos_label=2).tolist() == [[0, 2, 2, 0, 1]]
    assert rate_matched_decisions(P3, positive_rate=0.6, pos_label=2).tolist() == [[0, 2, 2, 2, 1]]


def test_rate_matched_errors() -> None:
    P = _softmax_set(4, members=2, rows=5, classes=2)
    cases: list[tuple[Callable[[], object], str]] = [
        (
            lambda: rate_matched_decisions(P, positive_rate=0.5, pos_label=2),
            "pos_label must be a class index in [0, 2); got 2",
        ),
        (
            lambda: rate_matched_decisions(P, positive_rate=0.5, pos_label=-1),
            "pos_label must be a class index in [0, 2); got -1",
        ),
        (
            lambda: rate_matched_decisions(P, positive_rate=1.5),
            "positive_rate must hold numbers in [0, 1]; found 1.5 at index 0",
        ),
        (
            lambda: rate_matched_decisions(P, positive_rate=[0.5, float("nan")]),
            "positive_rate must hold numbers in [0, 1]; found nan at index 1",
        ),
        (
            lambda: rate_matched_decisions(P, positive_rate="a"),
            "positive_rate must hold numbers in [0, 1]; found 'a' at index 0",
        ),
        (
            lambda: rate_matched_decisions(P, positive_rate=[0.1, 0.2, 0.3]),
            "positive_rate must be a number or an array of shape (2,) (one per member); "
            "got shape (3,)",
        ),
        (
            lambda: rate_matched_decisions(P[0], positive_rate=0.5),
            "P must be 3-dimensional; got shape (5, 2)",
        ),
    ]
    for call, message in cases:
        with pytest.raises(InvalidInputError) as info:
            call()
        assert str(info.value) == message
