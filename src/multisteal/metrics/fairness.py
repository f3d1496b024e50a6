"""Group fairness of one model, or of every member of a set (binary classification).

For one model, :func:`group_rates`, :func:`fairness_metrics` and :func:`group_accuracy` call
fairlearn's ``MetricFrame`` (one call each). For a whole set, :func:`member_fairness` computes
the same group rates for all members at once with numpy group masks: fairlearn takes about
0.2 s per member (one ``MetricFrame`` with four metrics, N = 10,000), far too slow for hundreds
of members, so it serves as the reference in the tests instead (agreement to 1e-12).

Conventions, as in fairlearn: differences are ``max − min`` over groups ("between groups");
the equalized-odds difference is the larger of the true- and false-positive-rate differences;
a group without positives (negatives) has true- (false-) positive rate 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Sequence
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import (
    WRONG_NDIM,
    check_decisions,
    check_same_axis,
    check_same_shape,
)

__all__ = [
    "FAIRNESS_METRICS",
    "GROUP_ACCURACY_COLUMN",
    "GROUP_NAMES_COLLIDE",
    "GROUP_RATES",
    "LABELS_NOT_BINARY",
    "SENSITIVE_FEATURES_MISSING",
    "fairness_metrics",
    "group_accuracy",
    "group_rates",
    "member_fairness",
]

#: One sensitive attribute: an array, a pandas Series or a list of group values.
SensitiveFeatures: TypeAlias = npt.ArrayLike | Sequence[Hashable | None]

#: Names of the between-group differences, in the order of :func:`member_fairness` columns.
FAIRNESS_METRICS: Final = (
    "demographic_parity_difference",
    "equalized_odds_difference",
    "true_positive_rate_difference",
    "false_positive_rate_difference",
    "accuracy_difference",
)
#: Per-group rates, the columns of :func:`group_rates`.
GROUP_RATES: Final = ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
#: Column of :func:`member_fairness` holding one group's accuracy.
GROUP_ACCURACY_COLUMN: Final = "accuracy[{group}]"
UNKNOWN_FAIRNESS_METHOD = "method must be 'vectorised' or 'fairlearn'; got {method!r}"

LABELS_NOT_BINARY = (
    "y_true and y_pred must hold at most two labels, one of them pos_label={pos_label}; "
    "found labels {labels}"
)
SENSITIVE_FEATURES_MISSING = (
    "sensitive_features contain missing values; the first is at index {index}"
)
GROUP_NAMES_COLLIDE = "sensitive_features groups {groups} have the same name as text"


def group_rates(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
    pos_label: int = 1,
) -> pd.DataFrame:
    """Selection rate, true/false-positive rate and accuracy of every group, via fairlearn.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels (at most two distinct labels across ``y_true`` and ``y_pred``).
    y_pred : array-like of int of shape (N,)
        Decisions of one model.
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute (any hashable values, no missing ones).
    pos_label : int, default=1
        The positive (favourable) label.

    Returns
    -------
    pandas.DataFrame
        One row per group (index: the group values, sorted), columns :data:`GROUP_RATES`.
    """
    truth, pred, groups = _check_single(y_true, y_pred, sensitive_features, pos_label)
    frame = _metric_frame(truth, pred, groups, pos_label)
    by_group: pd.DataFrame = frame.by_group
    return by_group


def fairness_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
    pos_label: int = 1,
) -> dict[str, float]:
    """Between-group fairness differences of one model, via one fairlearn ``MetricFrame``.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels (at most two distinct labels across ``y_true`` and ``y_pred``).
    y_pred : array-like of int of shape (N,)
        Decisions of one model.
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute.
    pos_label : int, default=1
        The positive (favourable) label.

    Returns
    -------
    dict of str to float
        The keys of :data:`FAIRNESS_METRICS`, each a ``max − min`` over groups, in [0, 1]:
        demographic parity (selection rate), equalized odds (the larger of the true- and
        false-positive-rate differences), true-positive rate (equal opportunity),
        false-positive rate and accuracy. Per-group accuracy: :func:`group_accuracy`.

    Examples
    --------
    >>> fairness_metrics([1, 0, 1, 0], [1, 0, 0, 0], sensitive_features=["a", "a", "b", "b"])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'demographic_parity_difference': 0.5, 'equalized_odds_difference': 1.0,
     'true_positive_rate_difference': 1.0, 'false_positive_rate_difference': 0.0,
     'accuracy_difference': 0.5}
    """
    truth, pred, groups = _check_single(y_true, y_pred, sensitive_features, pos_label)
    frame = _metric_frame(truth, pred, groups, pos_label)
    difference = frame.difference(method="between_groups")
    tpr = float(difference["true_positive_rate"])
    fpr = float(difference["false_positive_rate"])
    return {
        "demographic_parity_difference": float(difference["selection_rate"]),
        "equalized_odds_difference": max(tpr, fpr),
        "true_positive_rate_difference": tpr,
        "false_positive_rate_difference": fpr,
        "accuracy_difference": float(difference["accuracy"]),
    }


def group_accuracy(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
) -> dict[str, float]:
    """Accuracy of one model within every group, via fairlearn.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels.
    y_pred : array-like of int of shape (N,)
        Decisions of one model.
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute.

    Returns
    -------
    dict of str to float
        ``str(group) -> accuracy``, groups in sorted order.

    Examples
    --------
    >>> group_accuracy([1, 0, 1, 0], [1, 0, 0, 0], sensitive_features=["a", "a", "b", "b"])
    {'a': 1.0, 'b': 0.5}
    """
    truth = check_decisions(y_true, name="y_true", ndim=1)
    pred = check_decisions(y_pred, name="y_pred", ndim=1)
    check_same_shape(truth, "y_true", pred, "y_pred")
    groups = _check_sensitive_features(sensitive_features, truth)
    frame = MetricFrame(
        metrics=accuracy_score, y_true=truth, y_pred=pred, sensitive_features=groups
    )
    by_group: pd.Series[float] = frame.by_group
    return {str(group): float(value) for group, value in by_group.items()}


def member_fairness(
    y_true: npt.ArrayLike,
    d: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
    pos_label: int = 1,
    method: str = "vectorised",
) -> pd.DataFrame:
    """Fairness differences and per-group accuracy of every member, vectorised.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels (at most two distinct labels across ``y_true`` and ``d``).
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members.
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute.
    pos_label : int, default=1
        The positive (favourable) label.
    method : {"vectorised", "fairlearn"}, default="vectorised"
        ``vectorised`` computes all members with numpy group masks; ``fairlearn`` calls
        :func:`fairness_metrics` and :func:`group_accuracy` (one fairlearn ``MetricFrame``
        each) per member — identical numbers, about three orders of magnitude slower.

    Returns
    -------
    pandas.DataFrame
        Wide: one row per member (index ``member``, 0 … M−1); the columns of
        :data:`FAIRNESS_METRICS`, then ``accuracy[<group>]`` for every group in sorted order.
        Row ``m`` equals :func:`fairness_metrics` and :func:`group_accuracy` of ``d[m]``.

    Notes
    -----
    Computed with numpy group masks (one matrix product for all members and groups), not
    with fairlearn, which is too slow per member; the tests check it against fairlearn's
    ``MetricFrame``, ``demographic_parity_difference`` and ``equalized_odds_difference``.
    About 30 ms for M = 300, N = 10,000.
    """
    truth = check_decisions(y_true, name="y_true", ndim=1)
    members = check_decisions(d, name="decisions", ndim=2)
    check_same_axis(truth, "y_true", 0, members, "decisions", 1)
    _check_binary(truth, members, pos_label)
    groups = _check_sensitive_features(sensitive_features, truth)
    if method == "fairlearn":
        rows = []
        for member in members:
            row: dict[str, float] = fairness_metrics(
                truth, member, sensitive_features=groups, pos_label=pos_label
            )
            for group, value in group_accuracy(truth, member, sensitive_features=groups).items():
                row[GROUP_ACCURACY_COLUMN.format(group=group)] = value
            rows.append(row)
        frame = pd.DataFrame(rows)
        frame.index.name = "member"
        return frame
    if method != "vectorised":
        raise InvalidInputError(UNKNOWN_FAIRNESS_METHOD.format(method=method))
    codes, names = _factorize(groups)
    return _member_fairness(truth, members, codes, names, pos_label)


def _check_single(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    sensitive_features: SensitiveFeatures,
    pos_label: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[Any]]:
    truth = check_decisions(y_true, name="y_true", ndim=1)
    pred = check_decisions(y_pred, name="y_pred", ndim=1)
    check_same_shape(truth, "y_true", pred, "y_pred")
    _check_binary(truth, pred, pos_label)
    groups = _check_sensitive_features(sensitive_features, truth)
    return truth, pred, groups


def _check_binary(
    truth: npt.NDArray[np.int64], pred: npt.NDArray[np.int64], pos_label: int
) -> None:
    """Raise unless the labels of ``truth`` and ``pred`` are ``pos_label`` and one other."""
    low = min(int(truth.min()), int(pred.min()))
    high = max(int(truth.max()), int(pred.max()))
    if high - low <= 1 and (low == high or pos_label in (low, high)):
        return  # fast path: at most two consecutive labels, one of them pos_label
    labels = np.union1d(np.unique(truth), np.unique(pred))
    others = [int(label) for label in labels if label != pos_label]
    if len(others) > 1:
        raise InvalidInputError(
            LABELS_NOT_BINARY.format(pos_label=pos_label, labels=[int(v) for v in labels])
        )


def _check_sensitive_features(
    sensitive_features: SensitiveFeatures, truth: npt.NDArray[np.int64]
) -> npt.NDArray[Any]:
    groups = np.asarray(sensitive_features)
    if groups.ndim != 1:
        raise InvalidInputError(
            WRONG_NDIM.format(name="sensitive_features", expected=1, shape=groups.shape)
        )
    check_same_shape(truth, "y_true", groups, "sensitive_features")
    missing = np.asarray(pd.isna(groups))
    if missing.any():
        raise InvalidInputError(SENSITIVE_FEATURES_MISSING.format(index=int(np.argmax(missing))))
    return groups


def _factorize(groups: npt.NDArray[Any]) -> tuple[npt.NDArray[np.intp], list[str]]:
    """Group code of every sample (0 … G−1, groups sorted) and the groups' names."""
    codes, uniques = pd.factorize(groups, sort=True)
    names = [str(value) for value in uniques]
    if len(set(names)) < len(names):
        clashing = sorted({name for name in names if names.count(name) > 1})
        raise InvalidInputError(GROUP_NAMES_COLLIDE.format(groups=clashing))
    return np.asarray(codes, dtype=np.intp), names


def _metric_frame(
    truth: npt.NDArray[np.int64],
    pred: npt.NDArray[np.int64],
    groups: npt.NDArray[Any],
    pos_label: int,
) -> MetricFrame:
    metrics: dict[str, Callable[..., float]] = {
        "selection_rate": functools.partial(selection_rate, pos_label=pos_label),
        "true_positive_rate": functools.partial(true_positive_rate, pos_label=pos_label),
        "false_positive_rate": functools.partial(false_positive_rate, pos_label=pos_label),
        "accuracy": accuracy_score,
    }
    return MetricFrame(metrics=metrics, y_true=truth, y_pred=pred, sensitive_features=groups)


def _rates(
    counts: npt.NDArray[np.float64], totals: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``counts / totals`` per group, 0 where a group has no sample to divide by."""
    safe = np.where(totals > 0, totals, 1.0)
    result: npt.NDArray[np.float64] = np.where(totals > 0, counts / safe, 0.0)
    return result


def _member_fairness(
    truth: npt.NDArray[np.int64],
    members: npt.NDArray[np.int64],
    codes: npt.NDArray[np.intp],
    names: list[str],
    pos_label: int,
) -> pd.DataFrame:
    n_groups = len(names)
    N = truth.shape[0]
    in_group = np.zeros((N, n_groups), dtype=np.float64)
    in_group[np.arange(N), codes] = 1.0
    positive = (truth == pos_label).astype(np.float64)
    # Columns: group membership, positives in the group, negatives in the group.
    masks = np.concatenate(
        [in_group, in_group * positive[:, None], in_group * (1.0 - positive)[:, None]], axis=1
    )
    totals = masks.sum(axis=0)  # samples, positives, negatives per group
    selected = (members == pos_label).astype(np.float64)
    counts = selected @ masks  # (M, 3G): selected, true positives, false positives
    correct = (members == truth[np.newaxis, :]).astype(np.float64) @ in_group  # (M, G)

    size, n_pos, n_neg = np.split(totals, 3)
    sel_count, tp_count, fp_count = np.split(counts, 3, axis=1)
    selection = sel_count / size
    tpr = _rates(tp_count, n_pos)
    fpr = _rates(fp_count, n_neg)
    accuracy = correct / size

    def spread(rates: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        result: npt.NDArray[np.float64] = rates.max(axis=1) - rates.min(axis=1)
        return result

    tpr_difference = spread(tpr)
    fpr_difference = spread(fpr)
    data: dict[str, npt.NDArray[np.float64]] = {
        "demographic_parity_difference": spread(selection),
        "equalized_odds_difference": np.maximum(tpr_difference, fpr_difference),
        "true_positive_rate_difference": tpr_difference,
        "false_positive_rate_difference": fpr_difference,
        "accuracy_difference": spread(accuracy),
    }
    for index, name in enumerate(names):
        data[GROUP_ACCURACY_COLUMN.format(group=name)] = accuracy[:, index]
    frame = pd.DataFrame(data)
    frame.index.name = "member"
    return frame
