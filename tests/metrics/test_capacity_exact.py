"""Rashomon Capacity, ``method="exact"``: the converged capacity, against a long Blahut–Arimoto.

The slow Blahut–Arimoto below is the textbook iteration on the full member set, batched over
channels of one shape (each channel stops on its own); its ``log Z`` is a lower bound of the
capacity at every step and ``max_m D(P_m || q)`` an upper bound, so an exact answer must lie
between them, and close to them once they meet.
"""

from __future__ import annotations

import importlib
import math
import sys

import numpy as np
import numpy.typing as npt
import pytest

from multisteal.errors import InvalidInputError
from multisteal.metrics import capacity
from multisteal.metrics.capacity import (
    METHOD_INVALID,
    binary_capacity_bits,
    capacity_bits,
    hull_vertices,
    rashomon_capacity,
    rashomon_capacity_from_extremes,
)

Array = npt.NDArray[np.float64]


def long_blahut_arimoto(
    channels: Array, tol: float = 1e-14, max_iter: int = 100_000
) -> tuple[Array, Array]:
    """Blahut–Arimoto on channels of shape (B, M, C): (lower, upper) bounds in bits.

    Start uniform; each step ``col = Σ_m pw[m] P[m]``, ``D[m] = Σ_c P log(P / col)``,
    ``r = pw · exp(D) / Z`` (the same as ``r ∝ Π_c q ** P`` with ``q = pw P / col``), stop a
    channel once ``Σ_m (r − pw)² / M < tol``. Lower bound ``log Z``, upper ``max_m D[m]``.
    """
    W = np.asarray(channels, dtype=np.float64)
    B, M, _ = W.shape
    log_w = np.log(np.where(W > 0.0, W, 1.0))
    pw = np.full((B, M), 1.0 / M)
    running = np.ones(B, dtype=np.bool_)
    lower, upper = np.zeros(B), np.zeros(B)
    for _ in range(max_iter):
        idx = np.flatnonzero(running)
        if idx.size == 0:
            break
        Wi, pi = W[idx], pw[idx]
        col = np.einsum("bm,bmc->bc", pi, Wi)
        log_col = np.log(np.where(col > 0.0, col, 1.0))
        D = np.sum(Wi * (log_w[idx] - log_col[:, np.newaxis, :]), axis=2)
        r = pi * np.exp(D)
        z = r.sum(axis=1)
        r /= z[:, np.newaxis]
        lower[idx], upper[idx] = np.log(z), D.max(axis=1)
        done = np.sum((r - pi) ** 2, axis=1) / M < tol
        pw[idx] = r
        running[idx[done]] = False
    return lower / math.log(2.0), upper / math.log(2.0)


def exact_bits(channels: Array) -> Array:
    """``capacity_bits(channel, method="exact")`` of every channel of a (B, M, C) stack."""
    return np.array([capacity_bits(channel, method="exact") for channel in channels])


BINARY_KINDS = ("uniform", "near_zero", "near_one", "both_ends", "near_identical", "exact_zero")


def binary_channels(seed: int, kind: str, B: int = 8, M: int = 5) -> Array:
    """(B, M, 2) channels; ``kind`` picks the class-1 probabilities."""
    rng = np.random.default_rng(seed)
    u = rng.random((B, M))
    a = {
        "uniform": u,
        "near_zero": u**12,  # near one-hot on class 0
        "near_one": 1.0 - u**12,  # near one-hot on class 1
        "both_ends": np.where(u < 0.5, u**10, 1.0 - (1.0 - u) ** 10),
        "near_identical": 0.3 + 1e-4 * u,
        "exact_zero": np.concatenate([np.zeros((B, 1)), u[:, 1:]], axis=1),
    }[kind]
    return np.stack([1.0 - a, a], axis=2)


@pytest.mark.parametrize("seed", [0, 1])
def test_binary_exact_matches_a_long_blahut_arimoto(seed: int) -> None:
    # Catches a wrong closed form (log instead of log2, a sign error in the optimal output,
    # the largest class probability read instead of class 1's: members (0.3, 0.7) and (0.7, 0.3)
    # would then look identical) and an "exact" answer that is the 1000-step reference's.
    channels = np.concatenate([binary_channels(seed, kind) for kind in BINARY_KINDS])
    kinds = np.repeat(BINARY_KINDS, 8)
    lower, upper = long_blahut_arimoto(channels)
    exact = exact_bits(channels)
    # Blahut–Arimoto's log Z is a lower bound and max D an upper bound, at every step.
    assert np.all(exact >= lower - 1e-12)
    assert np.all(exact <= upper + 1e-12)
    # Equal to 1e-6 bits where the long run has converged that far (its bounds within 1e-6:
    # all but some near one-hot channels, whose bounds stay up to ~4e-6 apart after 10^5 steps).
    converged = upper - lower < 1e-6
    assert np.all(converged[np.isin(kinds, ["uniform", "near_identical", "exact_zero"])])
    assert np.all(np.abs(exact - lower)[converged] < 1e-6)
    assert np.all(np.abs(exact - lower) <= np.maximum(1e-6, upper - lower))
    reference = np.array([capacity_bits(channel) for channel in channels])
    assert np.any(reference < lower - 1e-9)  # the reference has not converged everywhere
    rc = rashomon_capacity(channels.transpose(1, 0, 2), method="exact")
    np.testing.assert_allclose(np.log2(rc), exact, rtol=0.0, atol=1e-12)


def test_binary_closed_form_known_values() -> None:
    for p in (0.0, 0.01, 0.1, 0.3, 0.5):
        entropy = 0.0 if p == 0.0 else -(p * math.log2(p) + (1 - p) * math.log2(1 - p))
        # binary symmetric channel: 1 − H(p), whichever argument is the smaller
        assert binary_capacity_bits(p, 1 - p) == pytest.approx(1.0 - entropy, abs=1e-15)
        assert binary_capacity_bits(1 - p, p) == pytest.approx(1.0 - entropy, abs=1e-15)
    for p in (0.1, 0.3, 0.5, 0.9, 1e-12):
        # Z channel (rows (1, 0) and (p, 1 − p)): log2(1 + (1 − p) p^(p / (1 − p)))
        expected = math.log2(1.0 + (1.0 - p) * p ** (p / (1.0 - p)))
        assert binary_capacity_bits(0.0, 1.0 - p) == pytest.approx(expected, abs=1e-15)
        assert binary_capacity_bits(p, 1.0) == pytest.approx(expected, abs=1e-15)
    assert binary_capacity_bits(0.0, 1.0) == 1.0  # exactly
    assert binary_capacity_bits(0.4, 0.4) == 0.0
    assert binary_capacity_bits(1e-300, 2e-300) >= 0.0
    values = binary_capacity_bits([[0.1], [0.2]], [0.1, 0.5, 0.9])  # broadcasts
    assert values.shape == (2, 3)
    assert values[0, 0] == 0.0
    for (i, j), value in np.ndenumerate(values):
        assert value == binary_capacity_bits([0.1, 0.2][i], [0.1, 0.5, 0.9][j])
    # Class 1's probability, not each member's largest: (0.3, 0.7) and (0.7, 0.3) differ.
    P = np.array([[[0.3, 0.7]], [[0.7, 0.3]], [[0.4, 0.6]]])
    h = -(0.3 * math.log2(0.3) + 0.7 * math.log2(0.7))
    assert rashomon_capacity(P, method="exact")[0] == pytest.approx(2.0 ** (1.0 - h), abs=1e-14)
    with pytest.raises(InvalidInputError, match=r"a must lie in \[0, 1\]"):
        binary_capacity_bits(-0.5, 0.5)
    with pytest.raises(InvalidInputError, match="b contains NaN"):
        binary_capacity_bits(0.5, math.nan)


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_exact_is_c_for_one_hot_members(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    one_hot = np.eye(n_classes)
    interior = rng.dirichlet(np.ones(n_classes), size=4)
    channel = np.vstack([interior[:2], one_hot, interior[2:], one_hot[:1]])
    P = channel[:, np.newaxis, :]
    assert rashomon_capacity(P, method="exact")[0] == n_classes  # exactly C
    assert capacity_bits(channel, method="exact") == pytest.approx(math.log2(n_classes), abs=1e-15)
    if n_classes > 2:
        # one-hot answers for only two of the classes, nothing else: exactly 2
        two = np.vstack([one_hot[:2], 0.5 * (one_hot[0] + one_hot[1])])[:, np.newaxis, :]
        assert rashomon_capacity(two, method="exact")[0] == 2.0


def test_exact_identical_members_and_single_member_give_one() -> None:
    rng = np.random.default_rng(0)
    for n_classes in (2, 4):
        row = rng.dirichlet(np.ones(n_classes))
        P = np.repeat(row[np.newaxis, np.newaxis, :], 5, axis=0)
        assert rashomon_capacity(P, method="exact")[0] == 1.0
        assert rashomon_capacity(P[:1], method="exact")[0] == 1.0
        assert capacity_bits(P[:, 0, :], method="exact") == 0.0


def softmax_channels(seed: int, B: int, M: int, C: int) -> Array:
    """Members = softmax(base logits + member noise of a per-channel scale)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(0.0, 1.5, size=(B, 1, C))
    scale = rng.choice([0.1, 0.3, 0.6], size=(B, 1, 1))
    logits = base + scale * rng.normal(size=(B, M, C))
    W = np.exp(logits - logits.max(axis=2, keepdims=True))
    return W / W.sum(axis=2, keepdims=True)


@pytest.mark.parametrize(("seed", "B", "M", "C"), [(3, 40, 6, 3), (4, 12, 5, 4)])
def test_multiclass_exact_is_closer_to_converged_blahut_arimoto_than_reference(
    seed: int, B: int, M: int, C: int
) -> None:
    # Members close to one another: the 1000-iteration reference has not converged (it is off
    # by up to ~1e-3 bits); a 10^5-iteration Blahut–Arimoto nearly has (its own bounds meet to
    # ~1e-6). Catches an exact method that only polishes the reference's iterate.
    channels = softmax_channels(seed, B, M, C)
    lower, upper = long_blahut_arimoto(channels)
    exact = exact_bits(channels)
    reference = np.array([capacity_bits(channel) for channel in channels])
    assert np.all(exact >= lower - 1e-12)
    assert np.all(exact <= upper + 1e-12)
    np.testing.assert_allclose(exact, lower, rtol=0.0, atol=1e-6)
    unconverged = np.abs(reference - lower) > 1e-6
    assert unconverged.sum() >= B // 2
    assert np.all(np.abs(exact - lower)[unconverged] < np.abs(reference - lower)[unconverged])


def test_exact_lies_between_blahut_arimoto_bounds_on_awkward_channels() -> None:
    # Zero columns, exact zeros, probabilities near 1e-300, repeated members, mixtures of two
    # rows (affinely dependent), and members in a lower-dimensional face. BA's bounds after
    # 3000 steps bracket the capacity, so an exact answer must lie between them.
    rng = np.random.default_rng(7)
    cases: list[Array] = []
    for C in (3, 4, 6):
        W = rng.dirichlet(np.full(C, 0.3), size=6)
        W[:, 0] = 0.0
        cases.append(W / W.sum(axis=1, keepdims=True))
        cases.append(rng.dirichlet(np.full(C, 0.02), size=6))  # tiny probabilities
        cases.append(np.vstack([cases[-1], cases[-1][:3]]))  # repeated members
        a, b = rng.dirichlet(np.ones(C), size=2)
        mix = rng.random((6, 1))
        cases.append(np.vstack([a, b, mix * a + (1 - mix) * b]))  # collinear
        face = np.zeros((6, C))
        face[:, :2] = rng.dirichlet(np.ones(2), size=6)
        cases.append(np.vstack([face, rng.dirichlet(np.ones(C), size=1)]))
    for channel in cases:
        lower, upper = long_blahut_arimoto(channel[np.newaxis], tol=1e-300, max_iter=3000)
        exact = capacity_bits(channel, method="exact")
        assert lower[0] - 1e-12 <= exact <= upper[0] + 1e-12


def test_multiclass_solver_agrees_with_the_binary_closed_form() -> None:
    # C = 3 with an all-zero class: the general solver on what is a binary channel.
    rng = np.random.default_rng(11)
    a = rng.random((20, 5))
    channels = np.stack([1.0 - a, a, np.zeros_like(a)], axis=2)
    expected = binary_capacity_bits(a.min(axis=1), a.max(axis=1))
    np.testing.assert_allclose(exact_bits(channels), expected, rtol=0.0, atol=1e-13)


def test_from_extremes_equals_exact_mode_on_full_probabilities() -> None:
    rng = np.random.default_rng(5)
    M, N = 9, 200
    a = rng.beta(0.3, 0.3, size=(M, N))
    a[:, :10] = a[:1, :10]  # all members agree: exactly 1
    a[0, 10:15], a[1, 10:15] = 0.0, 1.0  # one-hot extremes: exactly 2
    P = np.stack([1.0 - a, a], axis=2)
    low, high = P[:, :, 1].min(axis=0), P[:, :, 1].max(axis=0)
    streamed = rashomon_capacity_from_extremes(low, high)
    np.testing.assert_allclose(streamed, rashomon_capacity(P, method="exact"), atol=1e-13)
    assert np.all(streamed[:10] == 1.0)
    assert np.all(streamed[10:15] == 2.0)
    # a streaming caller: running min / max over chunks of members
    running_low, running_high = np.ones(N), np.zeros(N)
    for chunk in np.array_split(P, 3, axis=0):
        running_low = np.minimum(running_low, chunk[:, :, 1].min(axis=0))
        running_high = np.maximum(running_high, chunk[:, :, 1].max(axis=0))
    np.testing.assert_array_equal(
        rashomon_capacity_from_extremes(running_low, running_high), streamed
    )


def test_from_extremes_rejects_bad_input() -> None:
    with pytest.raises(InvalidInputError, match="same shape"):
        rashomon_capacity_from_extremes([0.1, 0.2], [0.3])
    with pytest.raises(InvalidInputError, match="low must not exceed high"):
        rashomon_capacity_from_extremes([0.1, 0.5], [0.3, 0.4])
    with pytest.raises(InvalidInputError, match=r"high must lie in \[0, 1\]"):
        rashomon_capacity_from_extremes([0.1], [1.5])
    with pytest.raises(InvalidInputError, match="low contains NaN"):
        rashomon_capacity_from_extremes([math.nan], [0.5])


@pytest.mark.parametrize("C", [3, 4, 6])
def test_hull_pruning_keeps_the_capacity(C: int) -> None:
    rng = np.random.default_rng(C)
    for _ in range(5):
        channel = rng.dirichlet(np.ones(C), size=30)
        channel = np.vstack([channel, channel[:4]])  # repeats
        mask = hull_vertices(channel)
        assert 0 < mask.sum() < len(channel)
        assert capacity_bits(channel[mask], method="exact") == pytest.approx(
            capacity_bits(channel, method="exact"), abs=1e-12
        )
        # the pruned rows are mixtures of the kept ones: pruning again keeps everything
        assert hull_vertices(channel[mask]).all()


def test_hull_vertices_removes_inside_points_and_keeps_vertices() -> None:
    eye = np.eye(4)
    channel = np.vstack(
        [
            eye,  # the vertices
            eye.mean(axis=0),  # the centre: inside
            0.5 * (eye[0] + eye[1]),  # on an edge: not a vertex
            eye[2],  # a repeat of a vertex
            [0.7, 0.1, 0.1, 0.1],  # inside
        ]
    )
    np.testing.assert_array_equal(
        hull_vertices(channel), [True, True, True, True, False, False, False, False]
    )
    # Tetrahedron inside the simplex: a point 1e-6 beyond a face is a vertex, 1e-6 inside not.
    tetra = 0.6 * np.eye(4) + 0.1
    face_centre = tetra[1:].mean(axis=0)  # (0.1, 0.3, 0.3, 0.3)
    outward = np.array([-3.0, 1.0, 1.0, 1.0]) * 1e-6
    points = np.vstack([tetra, face_centre + outward, face_centre - outward])
    assert hull_vertices(points).tolist() == [True, True, True, True, True, False]
    assert hull_vertices(points[[0, 1, 2, 3, 5]]).tolist() == [True, True, True, True, False]
    # Two classes in use: only the extremes of the segment.
    a = np.array([0.2, 0.9, 0.5, 0.2, 0.1, 0.6])
    two = np.stack([1.0 - a, a, np.zeros_like(a)], axis=1)
    assert np.flatnonzero(hull_vertices(two)).tolist() == [1, 4]
    # Three classes: a triangle with points inside and on its edges.
    tri = np.array(
        [[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0.2, 0.3, 0.5], [0.5, 0.5, 0], [0.9, 0.05, 0.05]]
    )
    assert np.flatnonzero(hull_vertices(tri)).tolist() == [0, 1, 2]
    assert hull_vertices([[0.3, 0.7]]).tolist() == [True]


def test_bad_method_names_the_choices() -> None:
    P = np.full((2, 3, 2), 0.5)
    for method in ("Exact", "converged", None, 1):
        message = METHOD_INVALID.format(value=method)
        assert "'reference'" in message
        assert "'exact'" in message
        with pytest.raises(InvalidInputError, match="method must be one of 'reference', 'exact'"):
            rashomon_capacity(P, method=method)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="method must be one of"):
            capacity_bits(P[:, 0, :], method=method)  # type: ignore[arg-type]


def test_results_do_not_depend_on_threads_or_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    P = softmax_channels(8, 37, 6, 3).transpose(1, 0, 2)
    results = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("OMP_NUM_THREADS", threads)
        for chunk in (1, 5, None):
            for method in ("reference", "exact"):
                results[threads, chunk, method] = rashomon_capacity(
                    P, method=method, chunk_size=chunk
                )
    for (_, _, method), value in results.items():
        np.testing.assert_array_equal(value, results["1", None, method])


def test_numpy_fallback_gives_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without numba: the vectorised numpy reference and the plain-Python exact solver.
    P3 = softmax_channels(9, 6, 5, 3).transpose(1, 0, 2)
    a = np.random.default_rng(9).random((4, 6))
    P2 = np.stack([1.0 - a, a], axis=2)
    P2[:, :2] = P2[:1, :2]  # repeated members
    inputs = {"P2": P2, "P3": P3}
    methods = ("reference", "exact")
    compiled = {
        (name, method): rashomon_capacity(P, method=method)
        for name, P in inputs.items()
        for method in methods
    }
    try:
        with monkeypatch.context() as patch:
            patch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
            module = importlib.reload(capacity)
            assert module._NUMBA is None
            fallback = {
                (name, method): module.rashomon_capacity(P, method=method)
                for name, P in inputs.items()
                for method in methods
            }
    finally:
        importlib.reload(capacity)
    assert capacity._NUMBA is not None
    for key, value in fallback.items():
        np.testing.assert_allclose(value, compiled[key], rtol=0.0, atol=1e-12)
