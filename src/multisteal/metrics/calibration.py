"""Calibration of a classifier's scores: the expected calibration error (top-label).

``ECE = Σ_b (n_b / n) · |acc_b − conf_b|`` over ``n_bins`` equal-width bins of the top-label
confidence ``max_k P[i, k]`` (Guo, Pleiss, Sun & Weinberger, ICML 2017): ``acc_b`` is the
accuracy of the rows in bin ``b`` (their argmax against ``y``), ``conf_b`` their mean
confidence. Bins are ``(lo, hi]``, the first one ``[0, hi]``.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import check_decisions, check_probabilities, check_same_axis

__all__ = ["expected_calibration_error"]


def expected_calibration_error(y: npt.ArrayLike, P: npt.ArrayLike, *, n_bins: int = 15) -> float:
    """Top-label expected calibration error of scores ``P`` (n, C) against labels ``y`` (n,)."""
    scores = check_probabilities(P, name="P", ndim=2)
    labels = check_decisions(y, name="y", ndim=1, n_classes=scores.shape[1])
    check_same_axis(labels, "y", 0, scores, "P", 0)
    if n_bins < 1:
        raise InvalidInputError(f"n_bins must be at least 1, got {n_bins}.")
    confidence = scores.max(axis=1)
    correct = (np.argmax(scores, axis=1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(confidence * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    accuracy = np.bincount(bins, weights=correct, minlength=n_bins)
    mean_conf = np.bincount(bins, weights=confidence, minlength=n_bins)
    return float(np.abs(accuracy - mean_conf).sum() / len(labels))
