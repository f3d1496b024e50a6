"""Bad inputs raise multisteal's errors with exactly the documented messages."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import multisteal.metrics as msm
from multisteal.errors import InvalidInputError, InvalidProbabilitiesError
from multisteal.metrics._validation import (
    ARRAY_EMPTY,
    LABELS_NEGATIVE,
    LABELS_NOT_INTEGER,
    LABELS_OUT_OF_RANGE,
    N_CLASSES_INVALID,
    PROBABILITIES_NOT_FINITE,
    PROBABILITIES_NOT_NUMERIC,
    PROBABILITIES_OUT_OF_RANGE,
    PROBABILITIES_ROWS_NOT_NORMALISED,
    PROBABILITIES_TOO_FEW_DIMENSIONS,
    SHAPE_MISMATCH,
    WRONG_NDIM,
)
from multisteal.metrics.capacity import CHUNK_SIZE_INVALID, MAX_ITER_INVALID, TOL_INVALID
from multisteal.metrics.fairness import (
    GROUP_NAMES_COLLIDE,
    LABELS_NOT_BINARY,
    SENSITIVE_FEATURES_MISSING,
)
from multisteal.metrics.registry import (
    NOT_A_MULTIPLICITY_METRIC,
    REQUIRED_INPUT_MISSING,
    UNKNOWN_METRIC,
)
from multisteal.metrics.summary import (
    TARGET_MISSING,
    TARGET_NOT_FINITE,
    THRESHOLD_NOT_FINITE,
    VALUES_NOT_FINITE,
)

P3 = np.array([[[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]], [[0.6, 0.4], [0.5, 0.5], [0.0, 1.0]]])


def _message(error: type[Exception], call: Callable[[], Any]) -> str:
    with pytest.raises(error) as excinfo:
        call()
    return str(excinfo.value)


# --- probabilities -------------------------------------------------------------------------


def test_nan_in_probabilities() -> None:
    P = P3.copy()
    P[1, 2, 0] = np.nan
    expected = PROBABILITIES_NOT_FINITE.format(name="probabilities", index="(1, 2, 0)")
    assert (
        expected == "probabilities contain NaN or infinite values; the first is at index (1, 2, 0)"
    )
    assert _message(InvalidProbabilitiesError, lambda: msm.rashomon_capacity(P)) == expected
    assert _message(InvalidProbabilitiesError, lambda: msm.decisions(P)) == expected
    P_t = np.array([[0.5, 0.5], [np.inf, 0.0]])
    assert _message(
        InvalidProbabilitiesError, lambda: msm.probability_fidelity(P_t, P3[0])
    ) == PROBABILITIES_NOT_FINITE.format(name="P_target", index="(1, 0)")


def test_rows_not_summing_to_one() -> None:
    P = P3.copy()
    P[0, 1] = [0.3, 0.6]
    expected = PROBABILITIES_ROWS_NOT_NORMALISED.format(
        name="probabilities", row="(0, 1)", total=0.9
    )
    assert expected == ("probabilities rows must sum to 1 (tolerance 1e-6); row (0, 1) sums to 0.9")
    assert _message(InvalidProbabilitiesError, lambda: msm.score_variance(P, [0, 1, 0])) == (
        expected
    )
    # 2-D: the row is a plain index. Within 1e-6 is accepted.
    assert _message(
        InvalidProbabilitiesError, lambda: msm.check_probabilities([[0.5, 0.5], [0.5, 0.51]])
    ) == PROBABILITIES_ROWS_NOT_NORMALISED.format(name="probabilities", row="1", total=1.01)
    msm.check_probabilities([[0.5, 0.5 + 5e-7]])


def test_values_outside_zero_one() -> None:
    expected = PROBABILITIES_OUT_OF_RANGE.format(name="probabilities", value=1.2, index="(0, 1)")
    assert expected == "probabilities must lie in [0, 1]; found 1.2 at index (0, 1)"
    assert _message(
        InvalidProbabilitiesError, lambda: msm.check_probabilities([[0.5, 0.5], [1.2, -0.2]][::-1])
    ) == PROBABILITIES_OUT_OF_RANGE.format(name="probabilities", value=1.2, index="(0, 0)")
    P = np.array([[-0.25, 1.25]])
    assert _message(
        InvalidProbabilitiesError, lambda: msm.check_probabilities(P, name="channel")
    ) == PROBABILITIES_OUT_OF_RANGE.format(name="channel", value=-0.25, index="(0, 0)")


def test_rounding_noise_outside_zero_one_is_clipped() -> None:
    P = np.array([[1.0 + 5e-10, -5e-10], [0.25, 0.75]])
    checked = msm.check_probabilities(P)
    np.testing.assert_array_equal(checked, [[1.0, 0.0], [0.25, 0.75]])
    assert P[0, 0] > 1.0  # the input is not modified
    assert checked.dtype == np.float64


def test_probability_array_types_and_dimensions() -> None:
    assert _message(
        InvalidProbabilitiesError, lambda: msm.check_probabilities([["a", "b"]])
    ) == PROBABILITIES_NOT_NUMERIC.format(name="probabilities", dtype="<U1")
    assert _message(
        InvalidInputError, lambda: msm.check_probabilities([0.5, 0.5])
    ) == PROBABILITIES_TOO_FEW_DIMENSIONS.format(name="probabilities", shape=(2,))
    assert _message(
        InvalidInputError, lambda: msm.check_probabilities(np.zeros((0, 2)))
    ) == ARRAY_EMPTY.format(name="probabilities", shape=(0, 2))
    assert _message(InvalidInputError, lambda: msm.rashomon_capacity(P3[0])) == (
        WRONG_NDIM.format(name="probabilities", expected=3, shape=(3, 2))
    )
    assert msm.check_probabilities([[True, False]]).dtype == np.float64


# --- decisions, labels, shapes ---------------------------------------------------------------


def test_wrong_ndim() -> None:
    expected = WRONG_NDIM.format(name="decisions", expected=2, shape=(3,))
    assert expected == "decisions must be 2-dimensional; got shape (3,)"
    assert _message(InvalidInputError, lambda: msm.ambiguity([0, 1, 1], [0, 1, 1])) == expected
    assert _message(InvalidInputError, lambda: msm.disagreement([0, 1], n_classes=2)) == (
        WRONG_NDIM.format(name="decisions", expected=2, shape=(2,))
    )
    assert _message(InvalidInputError, lambda: msm.discrepancy([[0, 1]], [[0, 1]])) == (
        WRONG_NDIM.format(name="reference", expected=1, shape=(1, 2))
    )
    assert _message(InvalidInputError, lambda: msm.viable_prediction_range(P3, [[0, 1, 0]])) == (
        WRONG_NDIM.format(name="labels", expected=1, shape=(1, 3))
    )


def test_mismatched_number_of_samples() -> None:
    expected = SHAPE_MISMATCH.format(
        first="decisions",
        first_shape=(2, 3),
        second="reference",
        second_shape=(4,),
        what="number of samples",
    )
    assert expected == (
        "decisions with shape (2, 3) and reference with shape (4,) "
        "must have the same number of samples"
    )
    d = [[0, 1, 1], [1, 1, 0]]
    assert _message(InvalidInputError, lambda: msm.ambiguity(d, [0, 1, 1, 0])) == expected
    assert _message(InvalidInputError, lambda: msm.ambiguous_samples(d, [0, 1, 1, 0])) == expected
    assert _message(InvalidInputError, lambda: msm.member_agreement(d, [0, 1, 1, 0])) == expected
    assert _message(InvalidInputError, lambda: msm.score_variance(P3, [0, 1])) == (
        SHAPE_MISMATCH.format(
            first="probabilities",
            first_shape=(2, 3, 2),
            second="labels",
            second_shape=(2,),
            what="number of samples",
        )
    )
    assert _message(InvalidInputError, lambda: msm.agreement([0, 1], [0, 1, 1])) == (
        SHAPE_MISMATCH.format(
            first="t", first_shape=(2,), second="d_m", second_shape=(3,), what="shape"
        )
    )
    assert _message(
        InvalidInputError, lambda: msm.member_probability_fidelity(P3, [[0.5, 0.5]] * 2)
    ) == SHAPE_MISMATCH.format(
        first="probabilities",
        first_shape=(2, 3, 2),
        second="P_t",
        second_shape=(2, 2),
        what="number of samples",
    )
    assert _message(
        InvalidInputError,
        lambda: msm.member_fairness([0, 1, 1], [[0, 1]], sensitive_features=["a", "b", "a"]),
    ) == SHAPE_MISMATCH.format(
        first="y_true",
        first_shape=(3,),
        second="decisions",
        second_shape=(1, 2),
        what="number of samples",
    )


def test_bad_labels() -> None:
    assert _message(InvalidInputError, lambda: msm.viable_prediction_range(P3, [0, 2, 1])) == (
        LABELS_OUT_OF_RANGE.format(name="labels", n_classes=2, value=2)
    )
    assert _message(InvalidInputError, lambda: msm.ambiguity([[0, -1]], [0, 0])) == (
        LABELS_NEGATIVE.format(name="decisions", value=-1)
    )
    assert _message(InvalidInputError, lambda: msm.accuracy([0.5, 1.0], [0, 1])) == (
        LABELS_NOT_INTEGER.format(name="y", dtype="float64")
    )
    assert _message(InvalidInputError, lambda: msm.accuracy(["a", "b"], [0, 1])) == (
        LABELS_NOT_INTEGER.format(name="y", dtype="<U1")
    )
    assert _message(InvalidInputError, lambda: msm.disagreement([[0, 3]], n_classes=3)) == (
        LABELS_OUT_OF_RANGE.format(name="decisions", n_classes=3, value=3)
    )
    assert _message(InvalidInputError, lambda: msm.ambiguity(np.zeros((2, 0), int), [])) == (
        ARRAY_EMPTY.format(name="decisions", shape=(2, 0))
    )
    # Whole-number floats and booleans are fine.
    assert msm.accuracy([0.0, 1.0], [False, True]) == 1.0


@pytest.mark.parametrize("n_classes", [1, 0, True, 2.0, "2"])
def test_bad_n_classes(n_classes: Any) -> None:
    assert _message(InvalidInputError, lambda: msm.disagreement([[0, 1]], n_classes=n_classes)) == (
        N_CLASSES_INVALID.format(minimum=2, value=n_classes)
    )


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"tol": 0.0}, TOL_INVALID.format(value=0.0)),
        ({"tol": float("nan")}, TOL_INVALID.format(value=float("nan"))),
        ({"tol": "1e-6"}, TOL_INVALID.format(value="1e-6")),
        ({"max_iter": 0}, MAX_ITER_INVALID.format(value=0)),
        ({"max_iter": 2.5}, MAX_ITER_INVALID.format(value=2.5)),
        ({"chunk_size": 0}, CHUNK_SIZE_INVALID.format(value=0)),
    ],
)
def test_bad_capacity_options(options: dict[str, Any], expected: str) -> None:
    assert _message(InvalidInputError, lambda: msm.rashomon_capacity(P3, **options)) == expected


# --- fairness ----------------------------------------------------------------------------------


def test_bad_fairness_inputs() -> None:
    y = np.array([0, 1, 2, 1])
    d = np.array([0, 1, 1, 1])
    groups = ["a", "b", "a", "b"]
    expected = LABELS_NOT_BINARY.format(pos_label=1, labels=[0, 1, 2])
    assert expected == (
        "y_true and y_pred must hold at most two labels, one of them pos_label=1; "
        "found labels [0, 1, 2]"
    )
    assert (
        _message(InvalidInputError, lambda: msm.fairness_metrics(y, d, sensitive_features=groups))
        == expected
    )
    assert (
        _message(
            InvalidInputError, lambda: msm.member_fairness(y, d[None], sensitive_features=groups)
        )
        == expected
    )
    assert _message(
        InvalidInputError,
        lambda: msm.member_fairness([0, 2], [[0, 2]], sensitive_features=["a", "b"]),
    ) == LABELS_NOT_BINARY.format(pos_label=1, labels=[0, 2])
    y = np.array([0, 1, 0, 1])
    assert _message(
        InvalidInputError,
        lambda: msm.member_fairness(y, d[None], sensitive_features=[["a"], ["b"], ["a"], ["b"]]),
    ) == WRONG_NDIM.format(name="sensitive_features", expected=1, shape=(4, 1))
    assert _message(
        InvalidInputError,
        lambda: msm.member_fairness(y, d[None], sensitive_features=["a", None, "a", "b"]),
    ) == SENSITIVE_FEATURES_MISSING.format(index=1)
    assert _message(
        InvalidInputError, lambda: msm.fairness_metrics(y, d, sensitive_features=["a", "b"])
    ) == SHAPE_MISMATCH.format(
        first="y_true",
        first_shape=(4,),
        second="sensitive_features",
        second_shape=(2,),
        what="shape",
    )
    mixed = np.array([1, "1", 1, "1"], dtype=object)  # two groups, both named "1"
    assert _message(
        InvalidInputError, lambda: msm.member_fairness(y, d[None], sensitive_features=mixed)
    ) == GROUP_NAMES_COLLIDE.format(groups=["1"])


# --- summaries and registry -------------------------------------------------------------------


def test_bad_summary_inputs() -> None:
    assert _message(InvalidInputError, lambda: msm.summarize([1.0, np.nan])) == (
        VALUES_NOT_FINITE.format(name="values", index="1")
    )
    assert _message(InvalidInputError, lambda: msm.summarize_set([[1.0]], target=0.0)) == (
        WRONG_NDIM.format(name="values", expected=1, shape=(1, 1))
    )
    assert _message(InvalidInputError, lambda: msm.summarize_set([1.0], target=np.nan)) == (
        TARGET_NOT_FINITE.format(value=np.nan)
    )
    assert _message(InvalidInputError, lambda: msm.summarize([1.0], threshold=np.inf)) == (
        THRESHOLD_NOT_FINITE.format(value=np.inf)
    )
    frame = msm.member_fairness([0, 1], [[0, 1]], sensitive_features=["a", "b"])
    assert _message(InvalidInputError, lambda: msm.summarize_columns(frame, target={})) == (
        TARGET_MISSING.format(column="demographic_parity_difference")
    )


def test_bad_registry_requests() -> None:
    assert _message(InvalidInputError, lambda: msm.evaluate_multiplicity("entropy", P3)) == (
        UNKNOWN_METRIC.format(name="entropy", known=", ".join(msm.METRICS))
    )
    assert _message(InvalidInputError, lambda: msm.evaluate_multiplicity("agreement", P3)) == (
        NOT_A_MULTIPLICITY_METRIC.format(name="agreement", kind="fidelity")
    )
    assert _message(InvalidInputError, lambda: msm.evaluate_multiplicity("ambiguity", P3)) == (
        REQUIRED_INPUT_MISSING.format(name="ambiguity", argument="reference decisions")
    )
    assert _message(InvalidInputError, lambda: msm.evaluate_multiplicity("score_variance", P3)) == (
        REQUIRED_INPUT_MISSING.format(name="score_variance", argument="labels")
    )
