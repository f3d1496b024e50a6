"""Input validation shared by every public metric.

Each public function validates its arguments once, through the helpers below, and then computes
on one canonical form: probabilities as a float64 array whose last axis holds the classes,
decisions and labels as int64 arrays of class indices. Error messages are the module constants
below, so tests compare them exactly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multisteal.errors import InvalidInputError, InvalidProbabilitiesError

__all__ = [
    "ARRAY_EMPTY",
    "LABELS_NEGATIVE",
    "LABELS_NOT_INTEGER",
    "LABELS_OUT_OF_RANGE",
    "N_CLASSES_INVALID",
    "PROBABILITIES_NOT_FINITE",
    "PROBABILITIES_NOT_NUMERIC",
    "PROBABILITIES_OUT_OF_RANGE",
    "PROBABILITIES_ROWS_NOT_NORMALISED",
    "PROBABILITIES_TOO_FEW_DIMENSIONS",
    "PROBABILITY_RANGE_TOLERANCE",
    "ROW_SUM_TOLERANCE",
    "SHAPE_MISMATCH",
    "WRONG_NDIM",
    "check_decisions",
    "check_probabilities",
]

#: Values in ``[-1e-9, 0)`` or ``(1, 1 + 1e-9]`` are accepted as rounding noise and clipped.
PROBABILITY_RANGE_TOLERANCE = 1e-9
#: Every row of a probability array must sum to 1 within this tolerance.
ROW_SUM_TOLERANCE = 1e-6

PROBABILITIES_NOT_NUMERIC = "{name} must be a numeric array; got dtype {dtype}"
PROBABILITIES_TOO_FEW_DIMENSIONS = (
    "{name} must have at least 2 dimensions (..., classes); got shape {shape}"
)
PROBABILITIES_NOT_FINITE = "{name} contain NaN or infinite values; the first is at index {index}"
PROBABILITIES_OUT_OF_RANGE = "{name} must lie in [0, 1]; found {value:.10g} at index {index}"
PROBABILITIES_ROWS_NOT_NORMALISED = (
    "{name} rows must sum to 1 (tolerance 1e-6); row {row} sums to {total:.10g}"
)
ARRAY_EMPTY = "{name} must not be empty; got shape {shape}"
WRONG_NDIM = "{name} must be {expected}-dimensional; got shape {shape}"
SHAPE_MISMATCH = (
    "{first} with shape {first_shape} and {second} with shape {second_shape} "
    "must have the same {what}"
)
LABELS_NOT_INTEGER = "{name} must hold integer class indices; got dtype {dtype}"
LABELS_NEGATIVE = "{name} must hold class indices >= 0; found {value}"
LABELS_OUT_OF_RANGE = "{name} must hold class indices in [0, {n_classes}); found {value}"
N_CLASSES_INVALID = "n_classes must be an integer >= {minimum}; got {value!r}"


def _format_index(index: tuple[int, ...]) -> str:
    """Write a multi-index as ``3`` (one axis) or ``(1, 3)`` (several axes)."""
    if len(index) == 1:
        return str(index[0])
    return "(" + ", ".join(str(i) for i in index) + ")"


def _first_index(mask: npt.NDArray[np.bool_]) -> tuple[int, ...]:
    """Return the multi-index of the first ``True`` entry of ``mask`` (C order)."""
    flat = int(np.argmax(mask.reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(flat, mask.shape))


def check_probabilities(
    P: npt.ArrayLike, *, name: str = "probabilities", ndim: int | None = None
) -> npt.NDArray[np.float64]:
    """Validate an array of class probabilities and return it as float64.

    Parameters
    ----------
    P : array-like of shape (..., C)
        Probabilities; the last axis holds the ``C`` classes. At least two dimensions.
    name : str, default="probabilities"
        Name used in error messages.
    ndim : int, optional
        If given, the exact number of dimensions required (e.g. 3 for ``(M, N, C)``).

    Returns
    -------
    ndarray of float64, same shape as ``P``
        The validated probabilities. Values within ``1e-9`` outside ``[0, 1]`` are clipped
        (into a copy; the input is never modified). When nothing needs clipping and ``P`` is
        already a float64 array, ``P`` itself is returned.

    Raises
    ------
    InvalidProbabilitiesError
        If ``P`` is not numeric, contains NaN or infinite values, has values outside
        ``[0, 1]`` (beyond the tolerance), or a row that does not sum to 1 within ``1e-6``.
    InvalidInputError
        If ``P`` has the wrong number of dimensions or is empty.

    Examples
    --------
    >>> check_probabilities([[0.25, 0.75], [1.0, 0.0]]).dtype
    dtype('float64')
    """
    arr = np.asarray(P)
    if arr.dtype.kind not in "biuf":
        raise InvalidProbabilitiesError(
            PROBABILITIES_NOT_NUMERIC.format(name=name, dtype=arr.dtype)
        )
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInputError(WRONG_NDIM.format(name=name, expected=ndim, shape=arr.shape))
    if arr.ndim < 2:
        raise InvalidInputError(PROBABILITIES_TOO_FEW_DIMENSIONS.format(name=name, shape=arr.shape))
    if arr.size == 0:
        raise InvalidInputError(ARRAY_EMPTY.format(name=name, shape=arr.shape))
    values = np.asarray(arr, dtype=np.float64)

    finite = np.isfinite(values)
    if not finite.all():
        index = _format_index(_first_index(~finite))
        raise InvalidProbabilitiesError(PROBABILITIES_NOT_FINITE.format(name=name, index=index))

    low, high = float(values.min()), float(values.max())
    if low < -PROBABILITY_RANGE_TOLERANCE or high > 1.0 + PROBABILITY_RANGE_TOLERANCE:
        outside = (values < -PROBABILITY_RANGE_TOLERANCE) | (
            values > 1.0 + PROBABILITY_RANGE_TOLERANCE
        )
        first = _first_index(outside)
        raise InvalidProbabilitiesError(
            PROBABILITIES_OUT_OF_RANGE.format(
                name=name, value=float(values[first]), index=_format_index(first)
            )
        )
    if low < 0.0 or high > 1.0:
        values = np.clip(values, 0.0, 1.0)

    # A product with ones is several times faster than ``sum(axis=-1)`` over a short last axis.
    totals = values @ np.ones(values.shape[-1])
    deviation = totals - 1.0
    np.abs(deviation, out=deviation)
    bad = deviation > ROW_SUM_TOLERANCE
    if bad.any():
        row = _first_index(bad)
        raise InvalidProbabilitiesError(
            PROBABILITIES_ROWS_NOT_NORMALISED.format(
                name=name, row=_format_index(row), total=float(totals[row])
            )
        )
    return values


def check_decisions(
    d: npt.ArrayLike,
    *,
    n_classes: int | None = None,
    name: str = "decisions",
    ndim: int | None = None,
) -> npt.NDArray[np.int64]:
    """Validate an array of class indices (decisions or labels) and return it as int64.

    Parameters
    ----------
    d : array-like of int
        Class indices, e.g. decisions of shape ``(M, N)`` or labels of shape ``(N,)``. Integer
        or boolean arrays are accepted, and float arrays whose values are all whole numbers.
    n_classes : int, optional
        If given, every value must lie in ``[0, n_classes)``.
    name : str, default="decisions"
        Name used in error messages.
    ndim : int, optional
        If given, the exact number of dimensions required.

    Returns
    -------
    ndarray of int64, same shape as ``d``

    Raises
    ------
    InvalidInputError
        If ``d`` is empty, has the wrong number of dimensions, is not made of whole numbers,
        holds a negative index or an index ``>= n_classes``.

    Examples
    --------
    >>> check_decisions([0, 2, 1], n_classes=3)
    array([0, 2, 1])
    """
    arr = np.asarray(d)
    if ndim is not None and arr.ndim != ndim:
        raise InvalidInputError(WRONG_NDIM.format(name=name, expected=ndim, shape=arr.shape))
    if arr.size == 0:
        raise InvalidInputError(ARRAY_EMPTY.format(name=name, shape=arr.shape))
    if arr.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = np.isfinite(arr) & (arr == np.round(arr))
        if not whole.all():
            raise InvalidInputError(LABELS_NOT_INTEGER.format(name=name, dtype=arr.dtype))
    elif arr.dtype.kind not in "biu":
        raise InvalidInputError(LABELS_NOT_INTEGER.format(name=name, dtype=arr.dtype))
    labels = arr.astype(np.int64)
    low = int(labels.min())
    if low < 0:
        raise InvalidInputError(LABELS_NEGATIVE.format(name=name, value=low))
    if n_classes is not None:
        n_classes = check_n_classes(n_classes, minimum=1)
        high = int(labels.max())
        if high >= n_classes:
            raise InvalidInputError(
                LABELS_OUT_OF_RANGE.format(name=name, n_classes=n_classes, value=high)
            )
    return labels


def integer_at_least(value: object, minimum: int) -> int | None:
    """Return ``value`` as an int if it is an integer (not a bool) >= ``minimum``, else None."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        return None
    number = int(value)
    return number if number >= minimum else None


def check_n_classes(n_classes: object, *, minimum: int = 2) -> int:
    """Return ``n_classes`` as an int after checking it is an integer >= ``minimum``."""
    value = integer_at_least(n_classes, minimum)
    if value is None:
        raise InvalidInputError(N_CLASSES_INVALID.format(minimum=minimum, value=n_classes))
    return value


def check_same_axis(
    first: npt.NDArray[np.generic],
    first_name: str,
    first_axis: int,
    second: npt.NDArray[np.generic],
    second_name: str,
    second_axis: int,
    *,
    what: str = "number of samples",
) -> None:
    """Raise if ``first.shape[first_axis] != second.shape[second_axis]``, naming both shapes."""
    if first.shape[first_axis] != second.shape[second_axis]:
        raise InvalidInputError(
            SHAPE_MISMATCH.format(
                first=first_name,
                first_shape=first.shape,
                second=second_name,
                second_shape=second.shape,
                what=what,
            )
        )


def check_same_shape(
    first: npt.NDArray[np.generic],
    first_name: str,
    second: npt.NDArray[np.generic],
    second_name: str,
) -> None:
    """Raise if the two arrays do not have the same shape, naming both shapes."""
    if first.shape != second.shape:
        raise InvalidInputError(
            SHAPE_MISMATCH.format(
                first=first_name,
                first_shape=first.shape,
                second=second_name,
                second_shape=second.shape,
                what="shape",
            )
        )
