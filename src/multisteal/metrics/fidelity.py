"""Fidelity: how well a surrogate copies the target (and how accurate it is).

See ``docs/METRICS.md``, section "Fidelity".
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multisteal.metrics._validation import (
    check_decisions,
    check_probabilities,
    check_same_axis,
    check_same_shape,
)

__all__ = [
    "accuracy",
    "agreement",
    "member_accuracy",
    "member_agreement",
    "member_probability_fidelity",
    "probability_fidelity",
]


def agreement(t: npt.ArrayLike, d_m: npt.ArrayLike) -> float:
    """Label fidelity: the share of samples on which two decision vectors agree.

    Parameters
    ----------
    t : array-like of int of shape (N,)
        Reference decisions, usually the target's.
    d_m : array-like of int of shape (N,)
        A member's decisions on the same samples.

    Returns
    -------
    float
        ``mean_n (t[n] == d_m[n])``, in [0, 1].

    Examples
    --------
    >>> agreement([0, 1, 1, 0], [0, 1, 0, 0])
    0.75
    """
    target = check_decisions(t, name="t", ndim=1)
    member = check_decisions(d_m, name="d_m", ndim=1)
    check_same_shape(target, "t", member, "d_m")
    return float(_member_agreement(member[np.newaxis, :], target)[0])


def accuracy(y: npt.ArrayLike, d_m: npt.ArrayLike) -> float:
    """Accuracy: agreement of decisions with the true labels.

    Parameters
    ----------
    y : array-like of int of shape (N,)
        True labels.
    d_m : array-like of int of shape (N,)
        Decisions.

    Returns
    -------
    float
        ``mean_n (y[n] == d_m[n])``, in [0, 1].

    Examples
    --------
    >>> accuracy([1, 1, 0, 0], [1, 0, 0, 0])
    0.75
    """
    labels = check_decisions(y, name="y", ndim=1)
    member = check_decisions(d_m, name="d_m", ndim=1)
    check_same_shape(labels, "y", member, "d_m")
    return float(_member_agreement(member[np.newaxis, :], labels)[0])


def probability_fidelity(P_target: npt.ArrayLike, P_member: npt.ArrayLike) -> float:
    """Probability fidelity: one minus the mean total-variation distance.

    Parameters
    ----------
    P_target : array-like of shape (N, C)
        The target's probabilities.
    P_member : array-like of shape (N, C)
        A member's probabilities on the same samples.

    Returns
    -------
    float
        ``1 - mean_n ½ ‖P_member[n] − P_target[n]‖₁``, in [0, 1].

    Examples
    --------
    >>> probability_fidelity([[1.0, 0.0], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])
    0.75
    """
    target = check_probabilities(P_target, name="P_target", ndim=2)
    member = check_probabilities(P_member, name="P_member", ndim=2)
    check_same_shape(target, "P_target", member, "P_member")
    return float(_member_probability_fidelity(member[np.newaxis], target)[0])


def member_agreement(d: npt.ArrayLike, r: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Agreement of every member with a reference decision vector.

    Parameters
    ----------
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members on ``N`` samples.
    r : array-like of int of shape (N,)
        Reference decisions (the target's, or the reference surrogate's).

    Returns
    -------
    ndarray of float64 of shape (M,)
        ``mean_n (d[m, n] == r[n])`` for each member.
    """
    members = check_decisions(d, name="decisions", ndim=2)
    reference = check_decisions(r, name="reference", ndim=1)
    check_same_axis(members, "decisions", 1, reference, "reference", 0)
    return _member_agreement(members, reference)


def member_accuracy(y: npt.ArrayLike, d: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Accuracy of every member.

    Parameters
    ----------
    y : array-like of int of shape (N,)
        True labels.
    d : array-like of int of shape (M, N)
        Decisions of ``M`` members.

    Returns
    -------
    ndarray of float64 of shape (M,)
        ``mean_n (d[m, n] == y[n])`` for each member.
    """
    labels = check_decisions(y, name="y", ndim=1)
    members = check_decisions(d, name="decisions", ndim=2)
    check_same_axis(labels, "y", 0, members, "decisions", 1)
    return _member_agreement(members, labels)


def member_probability_fidelity(P: npt.ArrayLike, P_t: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Probability fidelity of every member to the target.

    Parameters
    ----------
    P : array-like of shape (M, N, C)
        Probabilities of ``M`` members.
    P_t : array-like of shape (N, C)
        The target's probabilities.

    Returns
    -------
    ndarray of float64 of shape (M,)
        ``1 - mean_n ½ ‖P[m, n] − P_t[n]‖₁`` for each member.
    """
    members = check_probabilities(P, name="probabilities", ndim=3)
    target = check_probabilities(P_t, name="P_t", ndim=2)
    check_same_axis(members, "probabilities", 1, target, "P_t", 0)
    check_same_axis(members, "probabilities", 2, target, "P_t", 1, what="number of classes")
    return _member_probability_fidelity(members, target)


def _member_agreement(
    members: npt.NDArray[np.int64], reference: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = np.mean(members == reference[np.newaxis, :], axis=1)
    return result


def _member_probability_fidelity(
    members: npt.NDArray[np.float64], target: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    total_variation = 0.5 * np.abs(members - target[np.newaxis]).sum(axis=2)
    # Rows sum to 1 only within 1e-6, so a distance may exceed 1 by that much: clip.
    result: npt.NDArray[np.float64] = np.clip(1.0 - total_variation.mean(axis=1), 0.0, 1.0)
    return result
