"""Sampling noise: a bootstrap interval for one model's fairness, a t interval over seeds.

A set's fairness range means little until it is read against the noise of a single model's
value. :func:`bootstrap_fairness` gives that noise for the target (or any one model): a
percentile bootstrap over the evaluation rows, stratified by group. :func:`mean_interval`
summarises a metric repeated over seeds with a Student-t interval.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import WRONG_NDIM, _first_index, _format_index, integer_at_least
from multisteal.metrics.fairness import (
    FAIRNESS_METRICS,
    SensitiveFeatures,
    _check_min_cell_size,
    _check_single,
    _differences,
    _factorize,
)
from multisteal.metrics.summary import VALUES_NOT_NUMERIC

__all__ = [
    "BOOTSTRAP_COLUMNS",
    "CONFIDENCE_INVALID",
    "MEAN_INTERVAL_KEYS",
    "N_RESAMPLES_INVALID",
    "RNG_NOT_GENERATOR",
    "VALUES_INFINITE",
    "bootstrap_fairness",
    "mean_interval",
]

#: Columns of :func:`bootstrap_fairness`, in order.
BOOTSTRAP_COLUMNS: Final = ("estimate", "low", "high", "width", "n_valid")
#: Keys of :func:`mean_interval`, in order.
MEAN_INTERVAL_KEYS: Final = ("n", "mean", "std", "low", "high")

CONFIDENCE_INVALID = "confidence must be a number strictly between 0 and 1; got {value!r}"
N_RESAMPLES_INVALID = "n_resamples must be an integer >= 1; got {value!r}"
RNG_NOT_GENERATOR = "rng must be a numpy.random.Generator; got {type}"
VALUES_INFINITE = "{name} contain infinite values; the first is at index {index}"

# Cell of a row within its group: 2 * (label == pos_label) + (decision == pos_label).
_TN, _FP, _FN, _TP = 0, 1, 2, 3


def bootstrap_fairness(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    sensitive_features: SensitiveFeatures,
    pos_label: int = 1,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    rng: np.random.Generator,
    min_cell_size: int = 0,
) -> pd.DataFrame:
    """Percentile-bootstrap interval of one model's fairness differences over evaluation rows.

    Parameters
    ----------
    y_true : array-like of int of shape (N,)
        True labels (at most two distinct labels across ``y_true`` and ``y_pred``).
    y_pred : array-like of int of shape (N,)
        Decisions of one model (e.g. the target).
    sensitive_features : array-like of shape (N,)
        Group membership for one sensitive attribute.
    pos_label : int, default=1
        The positive (favourable) label.
    n_resamples : int, default=1000
        Number of bootstrap resamples.
    confidence : float, default=0.95
        Coverage of the interval, strictly between 0 and 1.
    rng : numpy.random.Generator
        Source of the resamples (required: the caller owns the seed stream).
    min_cell_size : int, default=0
        As in :func:`~multisteal.metrics.fairness_metrics`, applied to the full data and to
        every resample (the whole procedure is bootstrapped).

    Returns
    -------
    pandas.DataFrame
        One row per metric of :data:`~multisteal.metrics.FAIRNESS_METRICS` (index ``metric``),
        columns :data:`BOOTSTRAP_COLUMNS`: ``estimate`` (the difference on the full data, equal
        to :func:`~multisteal.metrics.fairness_metrics`), ``low`` and ``high`` (the
        ``(1 − confidence) / 2`` and ``(1 + confidence) / 2`` percentiles of the resampled
        differences, numpy's linear interpolation), ``width`` (``high − low``) and
        ``n_valid`` (resamples where the difference is defined, i.e. not NaN; the percentiles
        use those only). A NaN estimate gives NaN ``low``, ``high`` and ``width``.

    Notes
    -----
    Stratified by group: every group keeps its size, and within each group rows are drawn with
    replacement. The draws are, for every group in sorted order, one call
    ``rng.integers(0, n_g, size=(n_resamples, n_g))`` (``n_g`` the group's rows, in their
    order in the data). Group sizes are fixed, so the demographic-parity and accuracy cells
    never change; a group's positives and negatives do, so with ``min_cell_size > 0`` a group
    can be left out of the rate differences in some resamples.

    Vectorised: each resample is reduced to its 4 counts per group (true/false positives and
    negatives), from which every difference follows. About 0.05 s for N = 10,000 and 1000
    resamples; memory about ``8 · n_resamples · max n_g`` bytes.
    """
    truth, pred, groups = _check_single(y_true, y_pred, sensitive_features, pos_label)
    min_cell = _check_min_cell_size(min_cell_size)
    resamples = integer_at_least(n_resamples, 1)
    if resamples is None:
        raise InvalidInputError(N_RESAMPLES_INVALID.format(value=n_resamples))
    level = _check_confidence(confidence)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(RNG_NOT_GENERATOR.format(type=type(rng).__name__))
    codes, names = _factorize(groups)
    n_groups = len(names)
    cell = (2 * (truth == pos_label) + (pred == pos_label)).astype(np.uint8)

    full = np.bincount(codes * 4 + cell, minlength=4 * n_groups).reshape(1, n_groups, 4)
    counts = np.empty((resamples, n_groups, 4), dtype=np.int64)
    for group in range(n_groups):
        local = cell[codes == group]
        draws = rng.integers(0, local.size, size=(resamples, local.size))
        drawn = local[draws]
        for kind in range(4):
            counts[:, group, kind] = np.count_nonzero(drawn == kind, axis=1)

    estimate = _differences_from_cells(full, min_cell)
    boot = _differences_from_cells(counts, min_cell)
    alpha = 1.0 - level
    rows: dict[str, dict[str, float]] = {}
    for name in FAIRNESS_METRICS:
        value = float(estimate[name][0])
        sample = boot[name][~np.isnan(boot[name])]
        low = high = float("nan")
        if sample.size and not math.isnan(value):
            low, high = (
                float(q) for q in np.percentile(sample, [50.0 * alpha, 100.0 * (1.0 - alpha / 2)])
            )
        rows[name] = {
            "estimate": value,
            "low": low,
            "high": high,
            "width": high - low,
            "n_valid": int(sample.size),
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(BOOTSTRAP_COLUMNS))
    frame.index.name = "metric"
    return frame


def mean_interval(values: npt.ArrayLike, *, confidence: float = 0.95) -> dict[str, float]:
    """Mean of a metric over seeds with a Student-t confidence interval.

    Parameters
    ----------
    values : array-like of shape (S,)
        One value per seed (or other repetition). NaN values are dropped (a seed where the
        metric is undefined); infinite values are an error.
    confidence : float, default=0.95
        Coverage of the interval, strictly between 0 and 1.

    Returns
    -------
    dict of str to float
        The keys of :data:`MEAN_INTERVAL_KEYS`: ``n`` (the number of non-NaN values),
        ``mean``, ``std`` (sample standard deviation, ddof 1) and ``low``/``high`` =
        ``mean ∓ t · std / sqrt(n)`` with ``t`` the ``(1 + confidence) / 2`` quantile of
        Student's t with ``n − 1`` degrees of freedom. With ``n = 1`` the mean is the value
        and ``std``, ``low``, ``high`` are NaN; with ``n = 0`` every value but ``n`` is NaN
        (no warning either way).

    Examples
    --------
    >>> result = mean_interval([1.0, 2.0, 3.0, 4.0, 5.0, float("nan")])
    >>> {key: round(value, 6) for key, value in result.items()}
    {'n': 5, 'mean': 3.0, 'std': 1.581139, 'low': 1.036757, 'high': 4.963243}
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise InvalidInputError(WRONG_NDIM.format(name="values", expected=1, shape=arr.shape))
    if arr.dtype.kind not in "biuf":
        raise InvalidInputError(VALUES_NOT_NUMERIC.format(name="values", dtype=arr.dtype))
    level = _check_confidence(confidence)
    array = arr.astype(np.float64)
    infinite = np.isinf(array)
    if infinite.any():
        index = _format_index(_first_index(infinite))
        raise InvalidInputError(VALUES_INFINITE.format(name="values", index=index))
    finite = array[~np.isnan(array)]
    n = int(finite.size)
    nan = float("nan")
    if n == 0:
        return {"n": 0, "mean": nan, "std": nan, "low": nan, "high": nan}
    mean = float(np.mean(finite))
    if n == 1:
        return {"n": 1, "mean": mean, "std": nan, "low": nan, "high": nan}
    std = float(np.std(finite, ddof=1))
    quantile = float(stats.t.ppf(0.5 + level / 2.0, n - 1))
    half = quantile * std / math.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "low": mean - half, "high": mean + half}


def _check_confidence(confidence: object) -> float:
    if isinstance(confidence, bool | np.bool_) or not isinstance(
        confidence, int | float | np.number
    ):
        raise InvalidInputError(CONFIDENCE_INVALID.format(value=confidence))
    value = float(confidence)
    if not 0.0 < value < 1.0:  # also rejects NaN
        raise InvalidInputError(CONFIDENCE_INVALID.format(value=confidence))
    return value


def _differences_from_cells(
    cells: npt.NDArray[np.int64], min_cell: int
) -> dict[str, npt.NDArray[np.float64]]:
    """The differences from counts of shape (B, G, 4) (cells ``_TN, _FP, _FN, _TP``)."""
    c = cells.astype(np.float64)
    tn, fp, fn, tp = c[..., _TN], c[..., _FP], c[..., _FN], c[..., _TP]
    return _differences(
        size=tn + fp + fn + tp,
        n_pos=fn + tp,
        n_neg=tn + fp,
        selected=fp + tp,
        true_pos=tp,
        false_pos=fp,
        correct=tn + tp,
        min_cell=min_cell,
    )
