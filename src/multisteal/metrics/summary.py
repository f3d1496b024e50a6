"""Summaries: of a per-sample metric over samples, and of a per-member metric over a set."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import WRONG_NDIM, _first_index, _format_index

__all__ = [
    "RC_THRESHOLD",
    "SAMPLE_SUMMARY_KEYS",
    "SET_SUMMARY_KEYS",
    "TARGET_MISSING",
    "TARGET_NOT_FINITE",
    "THRESHOLD_NOT_FINITE",
    "VALUES_NOT_FINITE",
    "VALUES_NOT_NUMERIC",
    "summarize",
    "summarize_columns",
    "summarize_set",
]

#: Conventional threshold for Rashomon Capacity: a sample counts as multiplicitous when its
#: RC exceeds 1.01 (``summarize(rc, threshold=RC_THRESHOLD)["frac_above"]``).
RC_THRESHOLD: Final = 1.01

#: Keys of :func:`summarize`, in order.
SAMPLE_SUMMARY_KEYS: Final = ("count", "mean", "median", "p90", "max", "frac_above")
#: Keys of :func:`summarize_set`, in order (also the columns of :func:`summarize_columns`).
SET_SUMMARY_KEYS: Final = ("count", "min", "max", "range", "std", "target", "max_gap")

VALUES_NOT_NUMERIC = "{name} must be a numeric array; got dtype {dtype}"
VALUES_NOT_FINITE = "{name} contain NaN or infinite values; the first is at index {index}"
TARGET_NOT_FINITE = "target must be a finite number; got {value!r}"
THRESHOLD_NOT_FINITE = "threshold must be a finite number or None; got {value!r}"
TARGET_MISSING = "target has no value for column {column!r}"


def summarize(values: npt.ArrayLike, *, threshold: float | None = None) -> dict[str, float]:
    """Summarise a per-sample metric over the samples.

    Parameters
    ----------
    values : array-like of shape (N,)
        One value per sample (booleans count as 0/1).
    threshold : float, optional
        If given, ``frac_above`` is the share of samples **strictly** above it. By convention
        Rashomon Capacity uses :data:`RC_THRESHOLD` (1.01).

    Returns
    -------
    dict of str to float
        The keys of :data:`SAMPLE_SUMMARY_KEYS`: ``count`` (N), ``mean``, ``median``, ``p90``
        (90th percentile, linear interpolation), ``max`` and ``frac_above``. ``frac_above``
        is NaN when no threshold is given (the keys never change). With N = 0 every value
        but ``count`` is NaN.

    Examples
    --------
    >>> summarize([1.0, 1.0, 1.5, 2.0], threshold=1.01)
    {'count': 4, 'mean': 1.375, 'median': 1.25, 'p90': 1.85, 'max': 2.0, 'frac_above': 0.5}
    """
    array = _check_values(values, name="values")
    limit = _check_threshold(threshold)
    return _summarize(array, limit)


def summarize_set(values: npt.ArrayLike, *, target: float) -> dict[str, float]:
    """Summarise a per-member metric across a set, next to the target's value.

    Parameters
    ----------
    values : array-like of shape (M,)
        The metric ``f(m)`` of every member of the set (may be empty).
    target : float
        The target's value ``f(target)``.

    Returns
    -------
    dict of str to float
        The keys of :data:`SET_SUMMARY_KEYS`: ``count`` (M), ``min``, ``max``, ``range``
        (max − min), ``std`` (ddof 0), ``target`` and ``max_gap`` = ``max_m |f(m) − f(target)|``.
        An empty set gives ``count`` 0, ``target`` as given and NaN for the others (no warning).

    Examples
    --------
    >>> summarize_set([0.25, 0.75], target=0.5)  # doctest: +NORMALIZE_WHITESPACE
    {'count': 2, 'min': 0.25, 'max': 0.75, 'range': 0.5, 'std': 0.25, 'target': 0.5,
     'max_gap': 0.25}
    """
    array = _check_values(values, name="values")
    reference = _check_target(target)
    return _summarize_set(array, reference)


def summarize_columns(members: pd.DataFrame, *, target: Mapping[str, float]) -> pd.DataFrame:
    """Apply :func:`summarize_set` to every column of a per-member table.

    Parameters
    ----------
    members : pandas.DataFrame
        One row per member, one numeric column per metric, e.g. from
        :func:`~multisteal.metrics.member_fairness`.
    target : mapping of str to float
        The target's value of every column, e.g. ``fairness_metrics(...)`` of the target.

    Returns
    -------
    pandas.DataFrame
        One row per column of ``members`` (index ``metric``), columns :data:`SET_SUMMARY_KEYS`.
        A metric whose ``range`` is wide while fidelity's is narrow is the finding to look for.
    """
    rows: dict[str, dict[str, float]] = {}
    for column in members.columns:
        name = str(column)
        if name not in target:
            raise InvalidInputError(TARGET_MISSING.format(column=name))
        array = _check_values(members[column].to_numpy(), name=f"column {name!r}")
        rows[name] = _summarize_set(array, _check_target(target[name]))
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(SET_SUMMARY_KEYS))
    frame.index.name = "metric"
    return frame


def _check_values(values: npt.ArrayLike, *, name: str) -> npt.NDArray[np.float64]:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(WRONG_NDIM.format(name=name, expected=1, shape=arr.shape))
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(VALUES_NOT_NUMERIC.format(name=name, dtype=arr.dtype))
    array = arr.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        index = _format_index(_first_index(~finite))
        raise InvalidInputError(VALUES_NOT_FINITE.format(name=name, index=index))
    return array


def _check_target(target: object) -> float:
    if isinstance(target, bool | np.bool_) or not isinstance(target, int | float | np.number):
        raise InvalidInputError(TARGET_NOT_FINITE.format(value=target))
    value = float(target)
    if not math.isfinite(value):
        raise InvalidInputError(TARGET_NOT_FINITE.format(value=target))
    return value


def _check_threshold(threshold: object) -> float | None:
    if threshold is None:
        return None
    if isinstance(threshold, bool | np.bool_) or not isinstance(threshold, int | float | np.number):
        raise InvalidInputError(THRESHOLD_NOT_FINITE.format(value=threshold))
    value = float(threshold)
    if not math.isfinite(value):
        raise InvalidInputError(THRESHOLD_NOT_FINITE.format(value=threshold))
    return value


def _summarize(array: npt.NDArray[np.float64], threshold: float | None) -> dict[str, float]:
    nan = float("nan")
    if array.size == 0:
        return {"count": 0, "mean": nan, "median": nan, "p90": nan, "max": nan, "frac_above": nan}
    return {
        "count": int(array.size),
        "mean": float(np.mean(array)),
        "median": float(np.median(array)),
        "p90": float(np.percentile(array, 90)),
        "max": float(np.max(array)),
        "frac_above": nan if threshold is None else float(np.mean(array > threshold)),
    }


def _summarize_set(array: npt.NDArray[np.float64], target: float) -> dict[str, float]:
    nan = float("nan")
    if array.size == 0:
        return {
            "count": 0,
            "min": nan,
            "max": nan,
            "range": nan,
            "std": nan,
            "target": target,
            "max_gap": nan,
        }
    low, high = float(np.min(array)), float(np.max(array))
    return {
        "count": int(array.size),
        "min": low,
        "max": high,
        "range": high - low,
        "std": float(np.std(array)),
        "target": target,
        "max_gap": float(np.max(np.abs(array - target))),
    }
