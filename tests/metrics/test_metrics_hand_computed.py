"""Tiny cases whose answers are computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

import multisteal.metrics as msm

# Three members, four samples, reference r. Member flips (d != r):
#   member 0: none; member 1: samples 1 and 3; member 2: sample 3.
D = np.array([[0, 1, 1, 0], [0, 0, 1, 1], [0, 1, 1, 1]])
R = np.array([0, 1, 1, 0])


def test_decisions_break_ties_towards_the_lowest_class() -> None:
    P = np.array(
        [
            [0.5, 0.5, 0.0],  # exact tie 0/1 -> 0
            [0.2, 0.4, 0.4],  # tie 1/2 -> 1
            [0.1, 0.2, 0.7],
            [1 / 3, 1 / 3, 1 / 3],  # three-way tie -> 0
        ]
    )
    np.testing.assert_array_equal(msm.decisions(P), [0, 1, 2, 0])
    assert msm.decisions(P).dtype == np.int64
    stacked = msm.decisions(np.stack([P, P[::-1]]))
    np.testing.assert_array_equal(stacked, [[0, 1, 2, 0], [0, 2, 1, 0]])
    assert msm.decisions([[0.5, 0.5]])[0] == 0


def test_ambiguity_counts_samples_with_any_flip() -> None:
    # Samples 1 and 3 are flipped by some member: 2 of 4.
    assert msm.ambiguity(D, R) == 0.5
    np.testing.assert_array_equal(msm.ambiguous_samples(D, R), [False, True, False, True])
    assert msm.ambiguity(D[:1], R) == 0.0


def test_discrepancy_is_the_worst_single_member() -> None:
    # Member flip rates: 0, 2/4, 1/4 -> 0.5.
    assert msm.discrepancy(D, R) == 0.5
    assert msm.discrepancy(D[[0, 2]], R) == 0.25


def test_disagreement_binary_is_4_mu_one_minus_mu() -> None:
    # Shares of class 1 on each sample with 4 members: 0, 1/4, 1/2, 1.
    d = np.array([[0, 1, 1, 1], [0, 0, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])
    mu = np.array([0.0, 0.25, 0.5, 1.0])
    expected = 4 * mu * (1 - mu)  # 0, 0.75, 1, 0
    np.testing.assert_allclose(msm.disagreement(d, n_classes=2), expected, atol=1e-15)
    np.testing.assert_allclose(expected, [0.0, 0.75, 1.0, 0.0])


def test_disagreement_three_classes() -> None:
    # Six members. Sample 0: shares (1/3, 1/3, 1/3) -> 3/2 (1 - 1/3) = 1.
    # Sample 1: (1/2, 1/2, 0) -> 3/2 (1 - 1/2) = 3/4. Sample 2: (5/6, 0, 1/6) -> 3/2 (1 - 26/36)
    # = 5/12. Sample 3: unanimous -> 0.
    d = np.array(
        [
            [0, 0, 0, 2],
            [0, 0, 0, 2],
            [1, 0, 0, 2],
            [1, 1, 0, 2],
            [2, 1, 0, 2],
            [2, 1, 2, 2],
        ]
    )
    np.testing.assert_allclose(
        msm.disagreement(d, n_classes=3), [1.0, 0.75, 5 / 12, 0.0], rtol=0.0, atol=1e-15
    )
    # An even split over seven classes is exactly 1 (unclipped it rounds to 1 + 2e-16).
    assert msm.disagreement(np.arange(7)[:, np.newaxis], n_classes=7)[0] == 1.0
    # Declaring more classes than present changes the normalisation: C/(C-1).
    np.testing.assert_allclose(
        msm.disagreement(d[:, :2], n_classes=4), [8 / 9, 2 / 3], rtol=0.0, atol=1e-15
    )


def test_viable_prediction_range_and_score_variance() -> None:
    # Three members, two samples, C = 2; true labels y = [1, 0].
    P = np.array(
        [
            [[0.2, 0.8], [0.6, 0.4]],
            [[0.5, 0.5], [0.6, 0.4]],
            [[0.1, 0.9], [0.9, 0.1]],
        ]
    )
    y = np.array([1, 0])
    # Sample 0, class 1 scores 0.8, 0.5, 0.9: range 0.4, mean 0.7333.., variance
    # ((0.8-m)^2 + (0.5-m)^2 + (0.9-m)^2) / 3 = 0.0288888...
    # Sample 1, class 0 scores 0.6, 0.6, 0.9: range 0.3, mean 0.7, variance 0.02.
    np.testing.assert_allclose(msm.viable_prediction_range(P, y), [0.4, 0.3], atol=1e-15)
    np.testing.assert_allclose(msm.score_variance(P, y), [0.026 / 0.9, 0.02], atol=1e-15)


def test_agreement_and_accuracy() -> None:
    t = np.array([0, 1, 1, 0, 2])
    d_m = np.array([0, 1, 0, 0, 1])
    assert msm.agreement(t, d_m) == 0.6
    assert msm.accuracy(t, d_m) == 0.6
    np.testing.assert_allclose(msm.member_agreement(D, R), [1.0, 0.5, 0.75])
    np.testing.assert_allclose(msm.member_accuracy(R, D), [1.0, 0.5, 0.75])


def test_probability_fidelity() -> None:
    target = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    member = np.array([[0.5, 0.25, 0.25], [0.2, 0.5, 0.3]])
    # TV distances: 0.5 * (0.5 + 0.25 + 0.25) = 0.5 and 0.5 * (0 + 0.2 + 0.2) = 0.2.
    assert msm.probability_fidelity(target, member) == pytest.approx(1 - 0.35, abs=1e-15)
    assert msm.probability_fidelity(target, target) == 1.0
    assert msm.probability_fidelity([[1.0, 0.0]], [[0.0, 1.0]]) == 0.0
    stacked = np.stack([member, target, member[::-1]])
    # Third member: TV 0.5 * (0.8 + 0.5 + 0.3) = 0.8 and 0.5 * (0.3 + 0.05 + 0.25) = 0.3.
    np.testing.assert_allclose(
        msm.member_probability_fidelity(stacked, target), [0.65, 1.0, 0.45], atol=1e-15
    )


def test_capacity_of_small_channels() -> None:
    # Two one-hot members: a noiseless binary channel, 1 bit.
    assert msm.capacity_bits([[1.0, 0.0], [0.0, 1.0]]) == 1.0
    # A member that is the average of two others adds no capacity (BA stops once the input
    # distribution moves by ~1e-6 per step, short of the exact optimum).
    assert msm.capacity_bits([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]) == pytest.approx(1.0, abs=1e-5)
    # A single member: no choice, capacity 0.
    assert msm.capacity_bits([[0.3, 0.7]]) == 0.0
    # Two one-hot members out of three classes: 1 bit, RC 2 (not 3).
    np.testing.assert_allclose(
        msm.rashomon_capacity([[[1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0]]]), [2.0], atol=1e-12
    )
