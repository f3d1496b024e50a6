"""Rashomon Capacity: the vectorised Blahut–Arimoto against a slow per-sample loop."""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
import pytest

from multisteal.metrics import capacity_bits, rashomon_capacity
from multisteal.metrics.capacity import _auto_chunk_size


def slow_capacity_bits(
    channel: list[list[float]], tol: float = 1e-12, max_iter: int = 1000
) -> float:
    """Blahut–Arimoto for one channel, plain Python, step for step like the reference code.

    Start from the uniform input distribution; each step computes the posterior ``q``, the new
    input distribution ``r ∝ Π_c q[m][c] ** P[m][c]``, and stops once the mean squared change
    ``Σ_m (r[m] − pw[m])² / M`` is below ``tol`` or after ``max_iter`` steps. The capacity is
    ``Σ r[m] P[m][c] log(q[m][c] / r[m])`` over positive terms. All-zero columns are skipped.
    """
    M = len(channel)
    used = [c for c in range(len(channel[0])) if any(row[c] > 0.0 for row in channel)]
    pw = [1.0 / M] * M
    q: list[list[float]] = []
    r: list[float] = []
    for _ in range(max_iter):
        column = {c: sum(pw[m] * channel[m][c] for m in range(M)) for c in used}
        q = [[pw[m] * channel[m][c] / column[c] for c in used] for m in range(M)]
        r = []
        for m in range(M):
            product = 1.0
            for j, c in enumerate(used):
                product *= q[m][j] ** channel[m][c]
            r.append(product)
        total = sum(r)
        r = [value / total for value in r]
        change = sum((r[m] - pw[m]) ** 2 for m in range(M)) / M
        if change < tol:
            break
        pw = r
    capacity = 0.0
    for m in range(M):
        for j, c in enumerate(used):
            if r[m] > 0.0 and q[m][j] > 0.0:
                capacity += r[m] * channel[m][c] * math.log(q[m][j] / r[m])
    return capacity / math.log(2.0)


def random_set(
    seed: int, n_members: int, n_samples: int, n_classes: int
) -> npt.NDArray[np.float64]:
    """Dirichlet members of mixed sharpness, with zero columns and near-one-hot rows."""
    rng = np.random.default_rng(seed)
    alphas = rng.choice([0.03, 0.3, 1.0, 10.0], size=n_samples)
    P = np.stack(
        [rng.dirichlet(np.full(n_classes, alpha), size=n_members) for alpha in alphas], axis=1
    )
    # Some samples: one class column all zero (no member gives it any probability).
    zero = rng.random(n_samples) < 0.3
    P[:, zero, -1] = 0.0
    # Some samples: members close to one another (the stop rule ends them early).
    close = rng.random(n_samples) < 0.2
    P[:, close] = 0.9 * P[:1, close] + 0.1 * P[:, close]
    P /= P.sum(axis=2, keepdims=True)
    return P


def slow_rashomon_capacity(
    P: npt.NDArray[np.float64], tol: float = 1e-12, max_iter: int = 1000
) -> npt.NDArray[np.float64]:
    return np.array(
        [2.0 ** slow_capacity_bits(P[:, n, :].tolist(), tol, max_iter) for n in range(P.shape[1])]
    )


@pytest.mark.parametrize(
    ("seed", "n_members", "n_classes"),
    [(0, 2, 2), (1, 5, 2), (2, 4, 3), (3, 9, 3), (4, 3, 5), (5, 12, 4)],
)
def test_vectorised_equals_the_slow_loop(seed: int, n_members: int, n_classes: int) -> None:
    P = random_set(seed, n_members, 12, n_classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero columns: no division or log warning
        fast = rashomon_capacity(P)
    np.testing.assert_allclose(fast, slow_rashomon_capacity(P), rtol=0.0, atol=1e-9)


@pytest.mark.parametrize(("tol", "max_iter"), [(1e-12, 1), (1e-12, 3), (1e-4, 1000), (1e-7, 40)])
def test_stop_rule_matches_the_slow_loop_step_for_step(tol: float, max_iter: int) -> None:
    # Few iterations or a loose tolerance: results still moving, so any difference in the number
    # of steps a sample takes would show.
    P = random_set(11, 6, 16, 3)
    fast = rashomon_capacity(P, tol=tol, max_iter=max_iter)
    slow = slow_rashomon_capacity(P, tol=tol, max_iter=max_iter)
    np.testing.assert_allclose(fast, slow, rtol=0.0, atol=1e-12)
    one = capacity_bits(P[:, 0, :], tol=tol, max_iter=max_iter)
    assert one == pytest.approx(slow_capacity_bits(P[:, 0, :].tolist(), tol, max_iter), abs=1e-12)


@pytest.mark.parametrize("p", [0.0, 0.01, 0.1, 0.25, 0.4, 0.5])
def test_binary_symmetric_channel(p: float) -> None:
    # Capacity 1 − H(p) bits, reached by the uniform input: BA stops after one step.
    entropy = 0.0 if p in (0.0, 1.0) else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
    channel = [[1 - p, p], [p, 1 - p]]
    assert capacity_bits(channel) == pytest.approx(1.0 - entropy, abs=1e-12)
    P = np.array(channel)[:, np.newaxis, :]
    np.testing.assert_allclose(rashomon_capacity(P), [2.0 ** (1.0 - entropy)], atol=1e-12)


def test_z_channel() -> None:
    # Z channel: input 0 always gives class 0, input 1 gives class 0 with probability p.
    # Capacity log2(1 + (1 − p) p^(p / (1 − p))) bits, reached at a non-uniform input.
    p = 0.3
    expected = math.log2(1.0 + (1.0 - p) * p ** (p / (1.0 - p)))
    assert capacity_bits([[1.0, 0.0], [p, 1.0 - p]]) == pytest.approx(expected, abs=1e-6)


def test_chunking_does_not_change_the_result() -> None:
    P = random_set(21, 5, 30, 3)
    whole = rashomon_capacity(P)
    for chunk_size in (1, 7, 30, 1000):
        np.testing.assert_allclose(rashomon_capacity(P, chunk_size=chunk_size), whole, atol=1e-13)


def test_identical_members_give_exactly_one_and_bounds_hold() -> None:
    P = random_set(31, 6, 20, 4)
    P[:, :5] = P[:1, :5]  # identical members on the first five samples
    capacity = rashomon_capacity(P)
    assert np.all(capacity[:5] == 1.0)
    assert np.all((capacity >= 1.0) & (capacity <= 4.0))
    assert capacity_bits(np.repeat(P[:1, 0, :], 6, axis=0)) == 0.0


def test_near_deterministic_members_do_not_warn() -> None:
    # Members that are one-hot up to 1e-300: underflow territory for the iteration.
    P = np.array([[[1.0, 1e-300], [1e-300, 1.0], [1.0, 0.0]]]).repeat(4, axis=0)
    P[1:, 0] = [[0.0, 1.0], [0.5, 0.5], [1e-200, 1.0]]
    P /= P.sum(axis=2, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fast = rashomon_capacity(P)
    np.testing.assert_allclose(fast, slow_rashomon_capacity(P), atol=1e-9)


def test_automatic_chunks_keep_memory_bounded() -> None:
    # N = 50,000 samples with M = 500 members (C = 2) would be 400 MB per chunk if unchunked;
    # a chunk holds (C + 2) · M · chunk_size <= 65,536 values.
    assert (2 + 2) * 500 * _auto_chunk_size(500, 2) <= 1 << 16
    assert _auto_chunk_size(100_000, 10) == 1
