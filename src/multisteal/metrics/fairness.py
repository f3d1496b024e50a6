"""Group fairness of one model, or of every member of a set (binary classification).

For one model, :func:`group_rates`, :func:`fairness_metrics` and :func:`group_accuracy` call
fairlearn's ``MetricFrame`` (one call each). For a whole set, :func:`member_fairness` computes
the same group rates for all members at once with numpy group masks: fairlearn takes about
0.2 s per member (one ``MetricFrame`` with four metrics, N = 10,000), far too slow for hundreds
of members, so it serves as the reference in the tests instead (agreement to 1e-12).

Conventions, as in fairlearn: differences are ``max − min`` over groups ("between groups");
the equalized-odds difference is the larger of the true- and false-positive-rate differences;
a group without positives (negatives) has true- (false-) positive rate 0.

Small cells. Each difference divides by a *cell* of every group (:data:`METRIC_CELLS`):
demographic parity and accuracy by the group's size (``"group"``), the true-positive rate by
the group's positives (``label == pos_label``, ``"positives"``) and the false-positive rate by
its negatives (``"negatives"``). With ``min_cell_size = k > 0`` a group whose cell has fewer
than ``k`` rows is left out of *that* difference only (a group with 13 negatives and ``k = 20``
is left out of the false-positive-rate difference, hence of that part of equalized odds, but
stays in the others); a difference over fewer than two kept groups is NaN, and equalized odds
is NaN when either of its parts is. :func:`small_cells` names the groups left out. The default
``k = 0`` keeps every group and reproduces fairlearn exactly (no NaN, one group gives 0).

Positive-rate-matched control: :func:`rate_matched_decisions` re-thresholds every member so that
it decides ``pos_label`` for a given share of rows (e.g. the target's), to separate fairness
differences that come from a different positive rate from those that come from which rows get
it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
from fairlearn.metrics import (
    MetricFrame,
    count,
    false_positive_rate,
    selection_rate,
    true_positive_rate,
)
from sklearn.metrics import accuracy_score

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import (
    WRONG_NDIM,
    check_decisions,
    check_probabilities,
    check_same_axis,
    check_same_shape,
    integer_at_least,
)

__all__ = [
    "CELL_FAMILIES",
    "FAIRNESS_METRICS",
    "GROUP_ACCURACY_COLUMN",
    "GROUP_NAMES_COLLIDE",
    "GROUP_RATES",
    "LABELS_NOT_BINARY",
    "METRIC_CELLS",
    "MIN_CELL_SIZE_INVALID",
    "POSITIVE_RATE_INVALID",
    "POSITIVE_RATE_SHAPE",
    "POS_LABEL_OUT_OF_RANGE",
    "SENSITIVE_FEATURES_MISSING",
    "fairness_metrics",
    "group_accuracy",
    "group_rates",
    "member_fairness",
    "rate_matched_decisions",
    "small_cells",
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
#: The cells a rate divides by, the keys of :func:`small_cells`: a group's rows (selection rate,
#: accuracy), its positives (true-positive rate) and its negatives (false-positive rate).
CELL_FAMILIES: Final = ("group", "positives", "negatives")
#: The cells each difference of :data:`FAIRNESS_METRICS` divides by.
METRIC_CELLS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "demographic_parity_difference": ("group",),
        "equalized_odds_difference": ("positives", "negatives"),
        "true_positive_rate_difference": ("positives",),
        "false_positive_rate_difference": ("negatives",),
        "accuracy_difference": ("group",),
    }
)
UNKNOWN_FAIRNESS_METHOD = "method must be 'vectorised' or 'fairlearn'; got {method!r}"

LABELS_NOT_BINARY = (
    "y_true and y_pred must hold at most two labels, one of them pos_label={pos_label}; "
    "found labels {labels}"
)
SENSITIVE_FEATURES_MISSING = (
    "sensitive_features contain missing values; the first is at index {index}"
)
GROUP_NAMES_COLLIDE = "sensitive_features groups {groups} have the same name as text"
MIN_CELL_SIZE_INVALID = "min_cell_size must be an integer >= 0; got {value!r}"
POS_LABEL_OUT_OF_RANGE = "pos_label must be a class index in [0, {n_classes}); got {value!r}"
POSITIVE_RATE_SHAPE = (
    "positive_rate must be a number or an array of shape ({members},) (one per member); "
    "got shape {shape}"
)
POSITIVE_RATE_INVALID = (
    "positive_rate must hold numbers in [0, 1]; found {value!r} at index {index}"
)


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
    min_cell_size: int = 0,
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
    min_cell_size : int, default=0
        A group whose cell for a difference (:data:`METRIC_CELLS`: its rows, its positives or
        its negatives) has fewer rows is left out of that difference; see the module notes.

    Returns
    -------
    dict of str to float
        The keys of :data:`FAIRNESS_METRICS`, each a ``max − min`` over groups, in [0, 1]:
        demographic parity (selection rate), equalized odds (the larger of the true- and
        false-positive-rate differences), true-positive rate (equal opportunity),
        false-positive rate and accuracy. Per-group accuracy: :func:`group_accuracy`.
        With ``min_cell_size > 0`` a difference over fewer than two kept groups is NaN.

    Examples
    --------
    >>> fairness_metrics([1, 0, 1, 0], [1, 0, 0, 0], sensitive_features=["a", "a", "b", "b"])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'demographic_parity_difference': 0.5, 'equalized_odds_difference': 1.0,
     'true_positive_rate_difference': 1.0, 'false_positive_rate_difference': 0.0,
     'accuracy_difference': 0.5}
    """
    truth, pred, groups = _check_single(y_true, y_pred, sensitive_features, pos_label)
    min_cell = _check_min_cell_size(min_cell_size)
    if min_cell > 0:
        return _fairness_metrics_kept(truth, pred, groups, pos_label, min_cell)
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
    min_cell_size: int = 0,
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
    min_cell_size : int, default=0
        A group whose cell for a difference (:data:`METRIC_CELLS`: its rows, its positives or
        its negatives) has fewer rows is left out of that difference (the cells depend on
        ``y_true`` only, so the same groups are left out for every member; :func:`small_cells`
        names them). A difference over fewer than two kept groups is NaN; equalized odds is NaN
        when either part is. The default 0 keeps every group, as fairlearn does.

    Returns
    -------
    pandas.DataFrame
        Wide: one row per member (index ``member``, 0 … M−1); the columns of
        :data:`FAIRNESS_METRICS`, then ``accuracy[<group>]`` for every group in sorted order.
        Row ``m`` equals :func:`fairness_metrics` and :func:`group_accuracy` of ``d[m]``.
        The per-group accuracy columns are reported for every group, whatever its size.

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
    min_cell = _check_min_cell_size(min_cell_size)
    if method == "fairlearn":
        rows = []
        for member in members:
            row: dict[str, float] = fairness_metrics(
                truth,
                member,
                sensitive_features=groups,
                pos_label=pos_label,
                min_cell_size=min_cell,
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
    return _member_fairness(truth, members, codes, names, pos_label, min_cell)


def small_cells(
    y_true: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
    pos_label: int = 1,
    min_cell_size: int,
) -> dict[str, dict[str, int]]:
    """Groups whose cells are too small for ``min_cell_size``, per cell family.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels (at most two distinct labels, one of them ``pos_label``).
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute.
    pos_label : int, default=1
        The positive (favourable) label.
    min_cell_size : int
        The minimum number of rows a cell needs (as in :func:`member_fairness`).

    Returns
    -------
    dict of str to dict of str to int
        Always the three keys of :data:`CELL_FAMILIES`, in order: ``"group"`` (rows of the
        group: left out of the demographic-parity and accuracy differences), ``"positives"``
        (rows with ``label == pos_label``: left out of the true-positive-rate difference and
        that part of equalized odds) and ``"negatives"`` (the other rows: left out of the
        false-positive-rate difference and that part of equalized odds). Each maps
        ``str(group)`` to its count, for the groups with fewer than ``min_cell_size`` rows in
        that cell, in sorted group order; empty when none is.

    Examples
    --------
    >>> small_cells([1, 0, 0, 1, 1, 1], sensitive_features=["a", "a", "a", "b", "b", "b"],
    ...             min_cell_size=2)
    {'group': {}, 'positives': {'a': 1}, 'negatives': {'b': 0}}
    """
    truth = check_decisions(y_true, name="y_true", ndim=1)
    _check_binary(truth, truth, pos_label)
    groups = _check_sensitive_features(sensitive_features, truth)
    min_cell = _check_min_cell_size(min_cell_size)
    codes, names = _factorize(groups)
    size, n_pos, n_neg = _cell_totals(truth, codes, len(names), pos_label)
    return {
        family: {name: int(n) for name, n in zip(names, totals, strict=True) if n < min_cell}
        for family, totals in zip(CELL_FAMILIES, (size, n_pos, n_neg), strict=True)
    }


def rate_matched_decisions(
    P: npt.ArrayLike,
    *,
    positive_rate: float | npt.ArrayLike,
    pos_label: int = 1,
) -> npt.NDArray[np.int64]:
    """Decisions of every member re-thresholded to a given positive rate (a control).

    Parameters
    ----------
    P : array-like of shape (M, N, C)
        Probabilities of ``M`` members on ``N`` rows, ``C >= 2`` classes.
    positive_rate : float or array-like of shape (M,)
        The share of rows each member should decide ``pos_label`` (one for all members, or
        one per member), in [0, 1]; e.g. the target's positive rate on the same rows.
    pos_label : int, default=1
        The positive (favourable) class index.

    Returns
    -------
    ndarray of int64 of shape (M, N)
        For each member, the rows are ranked by the score ``P[m, :, pos_label]`` (descending,
        ties broken by row index, lowest first); the top ``k = round(positive_rate * N)`` rows
        (rounded half to even, as Python's ``round``) get ``pos_label``, every other row the
        most probable of the other classes (lowest index on ties; for ``C = 2`` simply the
        other class). Every member's positive rate is therefore exactly ``k / N``, and its
        decisions are monotone in its score. For ``C = 2`` a member already at that rate whose
        scores have no ties keeps its :func:`~multisteal.metrics.decisions`; for ``C > 2`` the
        ranking is by ``pos_label`` against the rest, which can differ from the argmax even then.

    Examples
    --------
    >>> P = [[[0.9, 0.1], [0.4, 0.6], [0.2, 0.8], [0.7, 0.3]]]
    >>> rate_matched_decisions(P, positive_rate=0.75)
    array([[0, 1, 1, 1]])
    """
    values = check_probabilities(P, name="P", ndim=3)
    n_members, n_rows, n_classes = values.shape
    label = integer_at_least(pos_label, 0)
    if label is None or label >= n_classes:
        raise InvalidInputError(POS_LABEL_OUT_OF_RANGE.format(n_classes=n_classes, value=pos_label))
    rates = _check_positive_rate(positive_rate, n_members)
    k = np.rint(rates * n_rows).astype(np.int64)  # half to even, as Python's round
    scores = values[:, :, label]
    # Stable sort of the negated scores: descending score, ties by ascending row index.
    order = np.argsort(-scores, axis=1, kind="stable")
    in_top = np.arange(n_rows)[np.newaxis, :] < k[:, np.newaxis]
    positive = np.empty_like(in_top)
    np.put_along_axis(positive, order, in_top, axis=1)
    others = values.copy()
    others[:, :, label] = -np.inf
    fallback = np.argmax(others, axis=2)  # first maximum: lowest class index on ties
    result: npt.NDArray[np.int64] = np.where(positive, label, fallback).astype(np.int64)
    return result


def _check_min_cell_size(min_cell_size: object) -> int:
    value = integer_at_least(min_cell_size, 0)
    if value is None:
        raise InvalidInputError(MIN_CELL_SIZE_INVALID.format(value=min_cell_size))
    return value


def _check_positive_rate(positive_rate: object, n_members: int) -> npt.NDArray[np.float64]:
    """The positive rate of every member as a float64 array of shape (M,)."""
    arr = np.asarray(positive_rate)
    if arr.ndim == 0:
        arr = np.full(n_members, arr)
    if arr.shape != (n_members,):
        raise InvalidInputError(POSITIVE_RATE_SHAPE.format(members=n_members, shape=arr.shape))
    if arr.dtype.kind not in "iuf":
        raise InvalidInputError(
            POSITIVE_RATE_INVALID.format(value=arr.ravel().tolist()[0], index=0)
        )
    rates = arr.astype(np.float64)
    bad = ~((rates >= 0.0) & (rates <= 1.0))  # NaN fails both comparisons
    if bad.any():
        index = int(np.argmax(bad))
        raise InvalidInputError(
            POSITIVE_RATE_INVALID.format(value=float(rates[index]), index=index)
        )
    return rates


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


def _fairness_metrics_kept(
    truth: npt.NDArray[np.int64],
    pred: npt.NDArray[np.int64],
    groups: npt.NDArray[Any],
    pos_label: int,
    min_cell: int,
) -> dict[str, float]:
    """:func:`fairness_metrics` over the groups whose cells hold ``min_cell`` rows, via fairlearn."""

    def positives(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> int:
        return int(np.count_nonzero(np.asarray(y_true) == pos_label))

    def negatives(y_true: npt.NDArray[Any], y_pred: npt.NDArray[Any]) -> int:
        return int(np.count_nonzero(np.asarray(y_true) != pos_label))

    frame = MetricFrame(
        metrics={
            "group": count,
            "positives": positives,
            "negatives": negatives,
            "selection_rate": functools.partial(selection_rate, pos_label=pos_label),
            "true_positive_rate": functools.partial(true_positive_rate, pos_label=pos_label),
            "false_positive_rate": functools.partial(false_positive_rate, pos_label=pos_label),
            "accuracy": accuracy_score,
        },
        y_true=truth,
        y_pred=pred,
        sensitive_features=groups,
    )
    by_group: pd.DataFrame = frame.by_group

    def kept_spread(rate: str, cell: str) -> float:
        kept = by_group.loc[by_group[cell].to_numpy() >= min_cell, rate].to_numpy(np.float64)
        if kept.size < 2:
            return float("nan")
        return float(kept.max() - kept.min())

    tpr = kept_spread("true_positive_rate", "positives")
    fpr = kept_spread("false_positive_rate", "negatives")
    return {
        "demographic_parity_difference": kept_spread("selection_rate", "group"),
        "equalized_odds_difference": float(np.maximum(tpr, fpr)),  # NaN if either is
        "true_positive_rate_difference": tpr,
        "false_positive_rate_difference": fpr,
        "accuracy_difference": kept_spread("accuracy", "group"),
    }


def _cell_totals(
    truth: npt.NDArray[np.int64], codes: npt.NDArray[np.intp], n_groups: int, pos_label: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Rows, positives and negatives of every group (arrays of shape (G,))."""
    size = np.bincount(codes, minlength=n_groups).astype(np.int64)
    n_pos = np.bincount(codes[truth == pos_label], minlength=n_groups).astype(np.int64)
    return size, n_pos, size - n_pos


def _rates(
    counts: npt.NDArray[np.float64], totals: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """``counts / totals`` per group, 0 where a group has no sample to divide by."""
    safe = np.where(totals > 0, totals, 1.0)
    result: npt.NDArray[np.float64] = np.where(totals > 0, counts / safe, 0.0)
    return result


def _spread(
    rates: npt.NDArray[np.float64], cell: npt.NDArray[np.float64], min_cell: int
) -> npt.NDArray[np.float64]:
    """``max − min`` over the last axis (groups), over the groups whose cell holds ``min_cell``.

    ``cell`` broadcasts against ``rates``. With ``min_cell = 0`` every group is kept; otherwise
    fewer than two kept groups give NaN.
    """
    if min_cell == 0:
        plain: npt.NDArray[np.float64] = rates.max(axis=-1) - rates.min(axis=-1)
        return plain
    kept = np.broadcast_to(cell >= min_cell, rates.shape)
    high = np.where(kept, rates, -np.inf).max(axis=-1)
    low = np.where(kept, rates, np.inf).min(axis=-1)
    enough = kept.sum(axis=-1) >= 2
    result: npt.NDArray[np.float64] = np.where(enough, high - np.where(enough, low, 0.0), np.nan)
    return result


def _differences(
    size: npt.NDArray[np.float64],
    n_pos: npt.NDArray[np.float64],
    n_neg: npt.NDArray[np.float64],
    selected: npt.NDArray[np.float64],
    true_pos: npt.NDArray[np.float64],
    false_pos: npt.NDArray[np.float64],
    correct: npt.NDArray[np.float64],
    min_cell: int,
) -> dict[str, npt.NDArray[np.float64]]:
    """The differences of :data:`FAIRNESS_METRICS` from per-group counts.

    Every argument has groups on its last axis and broadcasts against the others (e.g. cells
    of shape (G,) with counts of shape (M, G) for members, or everything (B, G) for resamples);
    the results have the leading shape. Every group must have at least one row.
    """
    selection = selected / size
    tpr = _rates(true_pos, n_pos)
    fpr = _rates(false_pos, n_neg)
    accuracy = correct / size
    tpr_difference = _spread(tpr, n_pos, min_cell)
    fpr_difference = _spread(fpr, n_neg, min_cell)
    return {
        "demographic_parity_difference": _spread(selection, size, min_cell),
        # np.maximum propagates NaN: equalized odds needs both of its parts.
        "equalized_odds_difference": np.maximum(tpr_difference, fpr_difference),
        "true_positive_rate_difference": tpr_difference,
        "false_positive_rate_difference": fpr_difference,
        "accuracy_difference": _spread(accuracy, size, min_cell),
    }


def _member_fairness(
    truth: npt.NDArray[np.int64],
    members: npt.NDArray[np.int64],
    codes: npt.NDArray[np.intp],
    names: list[str],
    pos_label: int,
    min_cell: int = 0,
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
    data = _differences(size, n_pos, n_neg, sel_count, tp_count, fp_count, correct, min_cell)
    accuracy = correct / size
    for index, name in enumerate(names):
        data[GROUP_ACCURACY_COLUMN.format(group=name)] = accuracy[:, index]
    frame = pd.DataFrame(data)
    frame.index.name = "member"
    return frame
