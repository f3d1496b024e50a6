"""Rashomon Capacity, reference method: the fast Blahut–Arimoto against slow per-sample loops."""

from __future__ import annotations

import math
import warnings

import numpy as np
import numpy.typing as npt
import pytest

from multisteal.metrics import capacity, capacity_bits, rashomon_capacity
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


def numpy_loop_capacity(
    P: npt.NDArray[np.float64], tol: float = 1e-12, max_iter: int = 1000
) -> npt.NDArray[np.float64]:
    """The published per-sample loop in numpy: ``q = Pw P / col``, ``r ∝ Π_c q ** P``."""
    M, N, _ = P.shape
    out = np.empty(N)
    for n in range(N):
        W = P[:, n, :]
        W = W[:, W.sum(axis=0) > 0]
        pw = np.full(M, 1.0 / M)
        for _ in range(max_iter):
            q = pw[:, None] * W / (pw @ W)[None, :]
            r = np.prod(np.power(q, W), axis=1)
            r /= r.sum()
            if np.sum((r - pw) ** 2) / M < tol:
                break
            pw = r
        positive = (r[:, None] > 0) & (q > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(positive, r[:, None] * W * np.log(q / r[:, None]), 0.0)
        out[n] = 2.0 ** (terms.sum() / math.log(2.0))
    return out


@pytest.mark.parametrize(
    ("seed", "n_members", "n_classes"),
    [(40, 30, 2), (41, 25, 7), (42, 20, 10), (43, 16, 13), (44, 12, 6)],
)
def test_wide_channels_equal_the_numpy_loop(seed: int, n_members: int, n_classes: int) -> None:
    # Many members and classes: every grouping of classes in the compiled kernel's passes
    # (2 or 4 first, then 8 or 4; odd C padded with a zero class).
    P = random_set(seed, n_members, 6, n_classes)
    np.testing.assert_allclose(rashomon_capacity(P), numpy_loop_capacity(P), rtol=0.0, atol=1e-9)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_duplicate_members_equal_the_slow_loop(n_classes: int) -> None:
    # Repeated members are merged into one input with a multiplicity: the same start (1/M per
    # member), the same steps and the same stop rule as the loop over all members. A wrong
    # multiplicity in the start or in the stop test changes the result or the stopping step.
    P = random_set(50 + n_classes, 5, 10, n_classes)
    P = np.concatenate([P, P[:1], P[:1], P[:1], P[2:4], P[4:5]], axis=0)  # M = 11
    P[:, 0] = P[:1, 0]  # one sample: all members identical
    P[1:, 1] = P[1, 1]  # one sample: all members but one identical
    for tol, max_iter in [(1e-12, 1000), (1e-5, 1000), (1e-12, 7)]:
        fast = rashomon_capacity(P, tol=tol, max_iter=max_iter)
        slow = slow_rashomon_capacity(P, tol=tol, max_iter=max_iter)
        np.testing.assert_allclose(fast, slow, rtol=0.0, atol=1e-9)
    assert rashomon_capacity(P)[0] == 1.0


def test_single_member_and_single_class() -> None:
    P = random_set(60, 1, 8, 3)  # M = 1
    np.testing.assert_array_equal(rashomon_capacity(P), np.ones(8))
    np.testing.assert_array_equal(rashomon_capacity(P, method="exact"), np.ones(8))
    assert rashomon_capacity(np.ones((4, 3, 1))).tolist() == [1.0, 1.0, 1.0]  # C = 1


def test_compiled_kernel_equals_the_vectorised_numpy_path() -> None:
    # The numpy path (used without numba) and the compiled kernel agree sample by sample.
    if capacity._NUMBA is None:  # pragma: no cover
        pytest.skip("numba is not installed")
    P = random_set(70, 9, 40, 4)
    P = np.concatenate([P, P[:2]], axis=0)
    compiled = rashomon_capacity(P)
    vectorised = np.clip(np.exp2(capacity._capacity_bits(P, 1e-12, 1000, None)), 1.0, 4.0)
    np.testing.assert_allclose(compiled, vectorised, rtol=0.0, atol=1e-12)
