"""Fidelity, predictive multiplicity and group fairness of a set of surrogates.

Definitions follow ``docs/METRICS.md`` exactly. Everything after the Rashomon explorer works on
stacked arrays: member probabilities ``P`` of shape ``(M, N, C)`` (members, samples, classes),
decisions ``d`` of shape ``(M, N)`` (:func:`decisions`), and a reference decision vector ``r``
of shape ``(N,)`` (the target's or the reference surrogate's).

This package is a leaf: it depends on numpy, pandas, scikit-learn, fairlearn, numba (compiled
Rashomon Capacity kernels; numba caches their machine code beside the module) and
:mod:`multisteal.errors` only, and does no printing or file I/O.
"""

from __future__ import annotations

from multisteal.metrics._validation import check_decisions, check_probabilities
from multisteal.metrics.calibration import expected_calibration_error
from multisteal.metrics.capacity import (
    binary_capacity_bits,
    capacity_bits,
    hull_vertices,
    rashomon_capacity,
    rashomon_capacity_from_extremes,
)
from multisteal.metrics.decision_rule import decisions
from multisteal.metrics.fairness import (
    CELL_FAMILIES,
    FAIRNESS_METRICS,
    GROUP_ACCURACY_COLUMN,
    GROUP_RATES,
    METRIC_CELLS,
    fairness_metrics,
    group_accuracy,
    group_rates,
    member_fairness,
    rate_matched_decisions,
    small_cells,
)
from multisteal.metrics.fidelity import (
    accuracy,
    agreement,
    member_accuracy,
    member_agreement,
    member_probability_fidelity,
    probability_fidelity,
)
from multisteal.metrics.multiplicity import (
    ambiguity,
    ambiguous_samples,
    disagreement,
    discrepancy,
    score_variance,
    viable_prediction_range,
)
from multisteal.metrics.registry import (
    METRICS,
    MULTIPLICITY_METRICS,
    MetricInfo,
    evaluate_multiplicity,
)
from multisteal.metrics.summary import (
    RC_THRESHOLD,
    SAMPLE_SUMMARY_KEYS,
    SET_SUMMARY_KEYS,
    summarize,
    summarize_columns,
    summarize_set,
)
from multisteal.metrics.uncertainty import (
    BOOTSTRAP_COLUMNS,
    MEAN_INTERVAL_KEYS,
    bootstrap_fairness,
    mean_interval,
)

__all__ = [
    "BOOTSTRAP_COLUMNS",
    "CELL_FAMILIES",
    "FAIRNESS_METRICS",
    "GROUP_ACCURACY_COLUMN",
    "GROUP_RATES",
    "MEAN_INTERVAL_KEYS",
    "METRICS",
    "METRIC_CELLS",
    "MULTIPLICITY_METRICS",
    "RC_THRESHOLD",
    "SAMPLE_SUMMARY_KEYS",
    "SET_SUMMARY_KEYS",
    "MetricInfo",
    "accuracy",
    "agreement",
    "ambiguity",
    "ambiguous_samples",
    "binary_capacity_bits",
    "bootstrap_fairness",
    "capacity_bits",
    "check_decisions",
    "check_probabilities",
    "decisions",
    "disagreement",
    "discrepancy",
    "evaluate_multiplicity",
    "expected_calibration_error",
    "fairness_metrics",
    "group_accuracy",
    "group_rates",
    "hull_vertices",
    "mean_interval",
    "member_accuracy",
    "member_agreement",
    "member_fairness",
    "member_probability_fidelity",
    "probability_fidelity",
    "rashomon_capacity",
    "rashomon_capacity_from_extremes",
    "rate_matched_decisions",
    "score_variance",
    "small_cells",
    "summarize",
    "summarize_columns",
    "summarize_set",
    "viable_prediction_range",
]
