"""Predictive multiplicity of a set of members, per sample and overall.

Definitions follow ``docs/METRICS.md``, section "Multiplicity". Decision-based metrics compare
the members' decisions ``d`` of shape ``(M, N)`` with a reference decision vector ``r`` of shape
``(N,)`` (the target's, or the reference surrogate's). Score-based metrics read the members'
probabilities ``P`` of shape ``(M, N, C)`` for the true label ``y``. Rashomon Capacity lives in
:mod:`multisteal.metrics.capacity`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multisteal.metrics._validation import (
    check_decisions,
    check_n_classes,
    check_probabilities,
    check_same_axis,
)

__all__ = [
    "ambiguity",
    "ambiguous_samples",
    "disagreement",
    "discrepancy",
    "score_variance",
    "viable_prediction_range",
]


def _check_decisions_and_reference(
    d: npt.ArrayLike, r: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    members = check_decisions(d, name="decisions", ndim=2)
    reference = check_decisions(r, name="reference", ndim=1)
    check_same_axis(members, "decisions", 1, reference, "reference", 0)
    return members, reference


def _check_probabilities_and_labels(
    P: npt.ArrayLike, y: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    members = check_probabilities(P, name="probabilities", ndim=3)
    labels = check_decisions(y, name="labels", ndim=1, n_classes=members.shape[2])
    check_same_axis(members, "probabilities", 1, labels, "labels", 0)
    return members, labels


def ambiguous_samples(d: npt.ArrayLike, r: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Flag the samples on which some member decides differently from the reference.

    Parameters
    ----------
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members on ``N`` samples.
    r : array-like of int of shape (N,)
        Reference decisions.

    Returns
    -------
    ndarray of bool of shape (N,)
        ``any_m (d[m, n] != r[n])``. Its mean is :func:`ambiguity`.

    Examples
    --------
    >>> ambiguous_samples([[0, 1, 1], [0, 0, 1]], [0, 1, 1])
    array([False,  True, False])
    """
    members, reference = _check_decisions_and_reference(d, r)
    return _ambiguous_samples(members, reference)


def ambiguity(d: npt.ArrayLike, r: npt.ArrayLike) -> float:
    """Ambiguity: the share of samples on which **some** member flips the reference decision.

    Parameters
    ----------
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members on ``N`` samples.
    r : array-like of int of shape (N,)
        Reference decisions.

    Returns
    -------
    float
        ``mean_n any_m (d[m, n] != r[n])``, in [0, 1].

    Examples
    --------
    >>> ambiguity([[0, 1, 1, 0], [0, 0, 1, 1]], [0, 1, 1, 0])
    0.5
    """
    members, reference = _check_decisions_and_reference(d, r)
    return _ambiguity(members, reference)


def discrepancy(d: npt.ArrayLike, r: npt.ArrayLike) -> float:
    """Discrepancy: the **largest** disagreement rate of a single member with the reference.

    Parameters
    ----------
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members on ``N`` samples.
    r : array-like of int of shape (N,)
        Reference decisions.

    Returns
    -------
    float
        ``max_m mean_n (d[m, n] != r[n])``, in [0, 1].

    Examples
    --------
    >>> discrepancy([[0, 1, 1, 0], [0, 0, 1, 1]], [0, 1, 1, 0])
    0.5
    """
    members, reference = _check_decisions_and_reference(d, r)
    return _discrepancy(members, reference)


def disagreement(d: npt.ArrayLike, *, n_classes: int) -> npt.NDArray[np.float64]:
    """Per-sample disagreement of the members' decisions (normalised Gini impurity).

    Parameters
    ----------
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members on ``N`` samples, in ``[0, n_classes)``.
    n_classes : int
        Number of classes ``C >= 2``.

    Returns
    -------
    ndarray of float64 of shape (N,)
        ``C / (C − 1) · (1 − Σ_c μ[n, c]²)`` where ``μ[n, c]`` is the share of members deciding
        ``c``; in [0, 1]. For ``C = 2`` this is ``4 μ (1 − μ)``.

    Examples
    --------
    >>> disagreement([[0, 1], [0, 1], [0, 0], [0, 0]], n_classes=2)
    array([0., 1.])
    """
    C = check_n_classes(n_classes)
    members = check_decisions(d, name="decisions", ndim=2, n_classes=C)
    return _disagreement(members, C)


def viable_prediction_range(P: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Viable prediction range: spread of the members' scores for the true label.

    Parameters
    ----------
    P : array-like of shape (M, N, C)
        Probabilities of ``M`` members on ``N`` samples.
    y : array-like of int of shape (N,)
        True labels in ``[0, C)``.

    Returns
    -------
    ndarray of float64 of shape (N,)
        ``max_m P[m, n, y[n]] − min_m P[m, n, y[n]]``, in [0, 1].

    Examples
    --------
    >>> viable_prediction_range([[[0.9, 0.1]], [[0.6, 0.4]]], [1])
    array([0.3])
    """
    members, labels = _check_probabilities_and_labels(P, y)
    return _viable_prediction_range(members, labels)


def score_variance(P: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Score variance: variance over members of the score for the true label (ddof 0).

    Parameters
    ----------
    P : array-like of shape (M, N, C)
        Probabilities of ``M`` members on ``N`` samples.
    y : array-like of int of shape (N,)
        True labels in ``[0, C)``.

    Returns
    -------
    ndarray of float64 of shape (N,)
        ``var_m P[m, n, y[n]]`` (population variance), in [0, 0.25]. Exactly 0 on samples where
        all members give the same score.

    Examples
    --------
    >>> score_variance([[[0.9, 0.1]], [[0.5, 0.5]]], [0])
    array([0.04])
    """
    members, labels = _check_probabilities_and_labels(P, y)
    return _score_variance(members, labels)


def _ambiguous_samples(
    members: npt.NDArray[np.int64], reference: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    flips: npt.NDArray[np.bool_] = np.any(members != reference[np.newaxis, :], axis=0)
    return flips


def _ambiguity(members: npt.NDArray[np.int64], reference: npt.NDArray[np.int64]) -> float:
    return float(np.mean(_ambiguous_samples(members, reference)))


def _discrepancy(members: npt.NDArray[np.int64], reference: npt.NDArray[np.int64]) -> float:
    return float(np.max(np.mean(members != reference[np.newaxis, :], axis=1)))


def _viable_prediction_range(
    members: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    scores = _scores_of_label(members, labels)
    result: npt.NDArray[np.float64] = scores.max(axis=0) - scores.min(axis=0)
    return result


def _score_variance(
    members: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    scores = _scores_of_label(members, labels)
    variance: npt.NDArray[np.float64] = np.var(scores, axis=0)
    # Rounding in the mean can leave ~1e-34 where all members agree exactly; report exact 0.
    variance[scores.max(axis=0) == scores.min(axis=0)] = 0.0
    return variance


def _class_shares(members: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float64]:
    """Share ``μ[n, c]`` of members deciding class ``c`` on sample ``n``, shape (N, C)."""
    M, N = members.shape
    flat = (members + n_classes * np.arange(N, dtype=np.int64)[np.newaxis, :]).reshape(-1)
    counts = np.bincount(flat, minlength=N * n_classes).reshape(N, n_classes)
    shares: npt.NDArray[np.float64] = counts / M
    return shares


def _disagreement(members: npt.NDArray[np.int64], n_classes: int) -> npt.NDArray[np.float64]:
    shares = _class_shares(members, n_classes)
    impurity = 1.0 - np.square(shares).sum(axis=1)
    # Clip: an even split can round to 1 + 2e-16 (e.g. C = 7).
    result: npt.NDArray[np.float64] = np.clip(n_classes / (n_classes - 1) * impurity, 0.0, 1.0)
    return result


def _scores_of_label(
    members: npt.NDArray[np.float64], labels: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """``P[m, n, y[n]]`` for every member and sample, shape (M, N)."""
    N = members.shape[1]
    scores: npt.NDArray[np.float64] = members[:, np.arange(N), labels]
    return scores
