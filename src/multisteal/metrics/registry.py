"""Every metric's direction, bounds and inputs, declared once.

The common tests loop over :data:`METRICS`; reports can use it to label directions and bounds,
and :func:`evaluate_multiplicity` to compute every multiplicity metric from one set of member
probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import (
    check_decisions,
    check_n_classes,
    check_probabilities,
    check_same_axis,
)
from multisteal.metrics.capacity import (
    DEFAULT_MAX_ITER,
    DEFAULT_TOL,
    _check_options,
    _rashomon_capacity,
)
from multisteal.metrics.decision_rule import _decisions
from multisteal.metrics.multiplicity import (
    _ambiguity,
    _disagreement,
    _discrepancy,
    _score_variance,
    _viable_prediction_range,
)
from multisteal.metrics.summary import RC_THRESHOLD

__all__ = [
    "METRICS",
    "MULTIPLICITY_METRICS",
    "NOT_A_MULTIPLICITY_METRIC",
    "REQUIRED_INPUT_MISSING",
    "UNKNOWN_METRIC",
    "MetricInfo",
    "evaluate_multiplicity",
]

UNKNOWN_METRIC = "unknown metric {name!r}; known metrics: {known}"
NOT_A_MULTIPLICITY_METRIC = "{name!r} is a {kind} metric, not a multiplicity metric"
REQUIRED_INPUT_MISSING = "{name} needs {argument}"


@dataclass(frozen=True)
class MetricInfo:
    """What a metric measures, which way is better, and its bounds.

    Attributes
    ----------
    name : str
        The metric's name (its function's name).
    kind : {"fidelity", "multiplicity", "fairness"}
        Family of the metric.
    higher_is_better : bool
        True for fidelity and accuracy. False for multiplicity (less multiplicity: the members
        are better determined) and for fairness differences (0 is parity).
    lower_bound : float
        Smallest possible value.
    upper_bound : float or "C"
        Largest possible value; ``"C"`` means the number of classes (Rashomon Capacity). Use
        :meth:`upper` to resolve it.
    per_sample : bool
        True if the metric returns one value per sample (shape ``(N,)``), False for a float.
    needs_reference : bool
        True if the metric compares with reference decisions ``r`` (the target's or the
        reference surrogate's) or, for probability fidelity, the target's probabilities.
    needs_labels : bool
        True if the metric needs the true labels ``y``.
    summary_threshold : float or None
        Conventional threshold for :func:`~multisteal.metrics.summarize` (``frac_above``) of a
        per-sample metric: 1.01 for Rashomon Capacity, 0 for disagreement (any disagreement).
    """

    name: str
    kind: Literal["fidelity", "multiplicity", "fairness"]
    higher_is_better: bool
    lower_bound: float
    upper_bound: float | Literal["C"]
    per_sample: bool
    needs_reference: bool
    needs_labels: bool
    summary_threshold: float | None = None

    def upper(self, n_classes: int) -> float:
        """The upper bound for ``n_classes`` classes.

        Examples
        --------
        >>> METRICS["rashomon_capacity"].upper(3), METRICS["ambiguity"].upper(3)
        (3.0, 1.0)
        """
        if self.upper_bound == "C":
            return float(n_classes)
        return float(self.upper_bound)


def _multiplicity(
    name: str,
    *,
    per_sample: bool,
    needs_reference: bool = False,
    needs_labels: bool = False,
    upper_bound: float | Literal["C"] = 1.0,
    lower_bound: float = 0.0,
    summary_threshold: float | None = None,
) -> MetricInfo:
    return MetricInfo(
        name=name,
        kind="multiplicity",
        higher_is_better=False,
        lower_bound=lower_bound,
        upper_bound=upper_bound,
        per_sample=per_sample,
        needs_reference=needs_reference,
        needs_labels=needs_labels,
        summary_threshold=summary_threshold,
    )


def _fidelity(name: str, *, needs_reference: bool, needs_labels: bool) -> MetricInfo:
    return MetricInfo(
        name=name,
        kind="fidelity",
        higher_is_better=True,
        lower_bound=0.0,
        upper_bound=1.0,
        per_sample=False,
        needs_reference=needs_reference,
        needs_labels=needs_labels,
    )


def _fairness(name: str, *, needs_labels: bool = True) -> MetricInfo:
    return MetricInfo(
        name=name,
        kind="fairness",
        higher_is_better=False,
        lower_bound=0.0,
        upper_bound=1.0,
        per_sample=False,
        needs_reference=False,
        needs_labels=needs_labels,
    )


_ALL: Final = (
    _fidelity("agreement", needs_reference=True, needs_labels=False),
    _fidelity("accuracy", needs_reference=False, needs_labels=True),
    _fidelity("probability_fidelity", needs_reference=True, needs_labels=False),
    _multiplicity("ambiguity", per_sample=False, needs_reference=True),
    _multiplicity("discrepancy", per_sample=False, needs_reference=True),
    _multiplicity("disagreement", per_sample=True, summary_threshold=0.0),
    _multiplicity("viable_prediction_range", per_sample=True, needs_labels=True),
    _multiplicity("score_variance", per_sample=True, needs_labels=True, upper_bound=0.25),
    _multiplicity(
        "rashomon_capacity",
        per_sample=True,
        lower_bound=1.0,
        upper_bound="C",
        summary_threshold=RC_THRESHOLD,
    ),
    _fairness("demographic_parity_difference", needs_labels=False),
    _fairness("equalized_odds_difference"),
    _fairness("true_positive_rate_difference"),
    _fairness("false_positive_rate_difference"),
    _fairness("accuracy_difference"),
)

#: Every metric by name (read-only).
METRICS: Final = MappingProxyType({info.name: info for info in _ALL})
#: Names of the multiplicity metrics, the ones :func:`evaluate_multiplicity` computes.
MULTIPLICITY_METRICS: Final = tuple(info.name for info in _ALL if info.kind == "multiplicity")


def evaluate_multiplicity(
    name: str,
    probabilities: npt.ArrayLike,
    *,
    labels: npt.ArrayLike | None = None,
    reference: npt.ArrayLike | None = None,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> float | npt.NDArray[np.float64]:
    """Compute one multiplicity metric from the members' probabilities.

    Parameters
    ----------
    name : str
        One of :data:`MULTIPLICITY_METRICS`.
    probabilities : array-like of shape (M, N, C)
        Probabilities of ``M`` members on ``N`` samples; decisions are their argmax.
    labels : array-like of int of shape (N,), optional
        True labels; required when ``METRICS[name].needs_labels``.
    reference : array-like of int of shape (N,), optional
        Reference decisions; required when ``METRICS[name].needs_reference``.
    tol, max_iter
        Passed to Rashomon Capacity.

    Returns
    -------
    float or ndarray of float64 of shape (N,)
        A float when ``METRICS[name].per_sample`` is False, else one value per sample.

    Examples
    --------
    >>> P = [[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]]]
    >>> evaluate_multiplicity("ambiguity", P, reference=[0, 1])
    0.5
    """
    info = METRICS.get(name)
    if info is None:
        raise InvalidInputError(UNKNOWN_METRIC.format(name=name, known=", ".join(METRICS)))
    if info.kind != "multiplicity":
        raise InvalidInputError(NOT_A_MULTIPLICITY_METRIC.format(name=name, kind=info.kind))
    members = check_probabilities(probabilities, name="probabilities", ndim=3)
    C = members.shape[2]
    if info.needs_reference:
        if reference is None:
            raise InvalidInputError(
                REQUIRED_INPUT_MISSING.format(name=name, argument="reference decisions")
            )
        ref = check_decisions(reference, name="reference", ndim=1, n_classes=C)
        check_same_axis(members, "probabilities", 1, ref, "reference", 0)
        if name == "ambiguity":
            return _ambiguity(_decisions(members), ref)
        return _discrepancy(_decisions(members), ref)
    if info.needs_labels:
        if labels is None:
            raise InvalidInputError(REQUIRED_INPUT_MISSING.format(name=name, argument="labels"))
        y = check_decisions(labels, name="labels", ndim=1, n_classes=C)
        check_same_axis(members, "probabilities", 1, y, "labels", 0)
        if name == "viable_prediction_range":
            return _viable_prediction_range(members, y)
        return _score_variance(members, y)
    if name == "disagreement":
        return _disagreement(_decisions(members), check_n_classes(C))
    tolerance, iterations = _check_options(tol, max_iter)
    return _rashomon_capacity(members, tolerance, iterations, None)
