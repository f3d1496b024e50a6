"""The decision rule: probabilities to class decisions."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multisteal.metrics._validation import check_probabilities

__all__ = ["decisions"]


def decisions(P: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Decide the most probable class, ties going to the lowest class index.

    Parameters
    ----------
    P : array-like of shape (..., C)
        Probabilities; the last axis holds the classes, e.g. ``(M, N, C)`` for a set of members
        or ``(N, C)`` for one model. Validated with :func:`check_probabilities`.

    Returns
    -------
    ndarray of int64 of shape (...)
        ``argmax`` over the last axis. An exact tie (e.g. 0.5 / 0.5) goes to the lowest index.

    Examples
    --------
    >>> decisions([[0.5, 0.5], [0.2, 0.8], [0.6, 0.4]])
    array([0, 1, 0])
    """
    values = check_probabilities(P)
    return _decisions(values)


def _decisions(values: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    # np.argmax returns the first maximum, i.e. the lowest class index on ties.
    result: npt.NDArray[np.int64] = np.argmax(values, axis=-1).astype(np.int64)
    return result
