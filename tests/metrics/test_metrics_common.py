"""Common tests for every multiplicity metric, driven by the registry.

One loop over ``MULTIPLICITY_METRICS``: invariance to member order and to sample order, bounds,
no multiplicity for identical members; plus Rashomon Capacity = C for distinct one-hot members.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

import multisteal.metrics as msm
from multisteal.metrics import METRICS, MULTIPLICITY_METRICS, evaluate_multiplicity

MEMBERS, SAMPLES = 7, 40


def _random_set(seed: int, n_classes: int) -> npt.NDArray[np.float64]:
    """Members that disagree on many samples: a shared logit plus member noise."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 1.5, (1, SAMPLES, n_classes)) + rng.normal(
        0.0, 1.0, (MEMBERS, SAMPLES, n_classes)
    )
    exp = np.exp(logits - logits.max(axis=2, keepdims=True))
    probabilities: npt.NDArray[np.float64] = exp / exp.sum(axis=2, keepdims=True)
    return probabilities


def _inputs(
    seed: int, n_classes: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    rng = np.random.default_rng(seed + 1000)
    P = _random_set(seed, n_classes)
    labels = rng.integers(0, n_classes, SAMPLES)
    reference = rng.integers(0, n_classes, SAMPLES)
    return P, labels, reference


def _evaluate(
    name: str,
    P: npt.NDArray[np.float64],
    labels: npt.NDArray[np.int64],
    reference: npt.NDArray[np.int64],
) -> Any:
    info = METRICS[name]
    return evaluate_multiplicity(
        name,
        P,
        labels=labels if info.needs_labels else None,
        reference=reference if info.needs_reference else None,
    )


@pytest.mark.parametrize("name", MULTIPLICITY_METRICS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_invariant_to_member_order(name: str, n_classes: int) -> None:
    P, labels, reference = _inputs(1, n_classes)
    permutation = np.random.default_rng(2).permutation(MEMBERS)
    original = _evaluate(name, P, labels, reference)
    permuted = _evaluate(name, P[permutation], labels, reference)
    np.testing.assert_allclose(permuted, original, rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("name", MULTIPLICITY_METRICS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_invariant_to_sample_order(name: str, n_classes: int) -> None:
    P, labels, reference = _inputs(3, n_classes)
    permutation = np.random.default_rng(4).permutation(SAMPLES)
    original = _evaluate(name, P, labels, reference)
    permuted = _evaluate(name, P[:, permutation], labels[permutation], reference[permutation])
    if METRICS[name].per_sample:
        np.testing.assert_allclose(permuted, np.asarray(original)[permutation], atol=1e-12)
    else:
        assert permuted == pytest.approx(original, abs=1e-12)


@pytest.mark.parametrize("name", MULTIPLICITY_METRICS)
@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_values_within_bounds(name: str, n_classes: int) -> None:
    info = METRICS[name]
    P, labels, reference = _inputs(5, n_classes)
    values = np.atleast_1d(_evaluate(name, P, labels, reference))
    assert values.shape == ((SAMPLES,) if info.per_sample else (1,))
    assert np.all(values >= info.lower_bound)
    assert np.all(values <= info.upper(n_classes))
    # The random set has multiplicity: the metric is not stuck at its lower bound.
    assert np.any(values > info.lower_bound)


@pytest.mark.parametrize("name", MULTIPLICITY_METRICS)
@pytest.mark.parametrize("n_classes", [2, 3])
def test_identical_members_have_no_multiplicity(name: str, n_classes: int) -> None:
    P, labels, _ = _inputs(7, n_classes)
    identical = np.repeat(P[:1], MEMBERS, axis=0)
    reference = msm.decisions(P[0])  # the members' common decisions
    values = np.atleast_1d(_evaluate(name, identical, labels, reference))
    # Exactly the lower bound: 0, and 1 for Rashomon Capacity.
    assert np.all(values == METRICS[name].lower_bound)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
@pytest.mark.parametrize("extra_members", [0, 2])
def test_distinct_one_hot_members_give_capacity_c(n_classes: int, extra_members: int) -> None:
    eye = np.eye(n_classes)
    members = np.concatenate([eye, eye[:extra_members]], axis=0)  # every class, some twice
    P = np.repeat(members[:, np.newaxis, :], 3, axis=1)
    capacity = msm.rashomon_capacity(P)
    np.testing.assert_allclose(capacity, n_classes, rtol=0.0, atol=1e-9)
    assert np.all(capacity <= n_classes)


def test_evaluate_matches_the_metric_functions() -> None:
    P, labels, reference = _inputs(9, 3)
    d = msm.decisions(P)
    direct: dict[str, Any] = {
        "ambiguity": msm.ambiguity(d, reference),
        "discrepancy": msm.discrepancy(d, reference),
        "disagreement": msm.disagreement(d, n_classes=3),
        "viable_prediction_range": msm.viable_prediction_range(P, labels),
        "score_variance": msm.score_variance(P, labels),
        "rashomon_capacity": msm.rashomon_capacity(P),
    }
    assert set(direct) == set(MULTIPLICITY_METRICS)
    for name, expected in direct.items():
        np.testing.assert_array_equal(_evaluate(name, P, labels, reference), expected)


def test_registry_is_consistent() -> None:
    assert set(msm.FAIRNESS_METRICS) == {
        name for name, info in METRICS.items() if info.kind == "fairness"
    }
    for name, info in METRICS.items():
        assert info.name == name
        assert info.lower_bound < info.upper(2)
        if info.kind != "fairness":
            assert callable(getattr(msm, name)), name
        if info.summary_threshold is not None:
            assert info.per_sample
    assert METRICS["rashomon_capacity"].summary_threshold == msm.RC_THRESHOLD == 1.01
    assert METRICS["agreement"].higher_is_better
    assert not METRICS["ambiguity"].higher_is_better
    with pytest.raises(TypeError):
        METRICS["ambiguity"] = METRICS["discrepancy"]  # type: ignore[index]
