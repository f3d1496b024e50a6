"""Rashomon Capacity: the channel capacity of the members' probabilities, per sample.

For each sample ``n`` the ``M × C`` matrix ``P[:, n, :]`` is read as a channel from members
(inputs) to classes (outputs). Its capacity measures how many distinguishable answers the set of
members can give on that sample; Rashomon Capacity is ``2 ** capacity_bits`` and lies in
``[1, C]`` (Hsu & Calmon 2022; ``docs/METRICS.md``).

Two methods:

``method="reference"`` (the default) is Blahut–Arimoto with the reference code's stop rule:
start from the uniform input distribution over the members, stop a sample once the mean squared
change of its input distribution falls below ``tol`` (``1e-12``), or after ``max_iter``
(``1000``) iterations, and report the capacity estimate of that last iteration. Typical member
sets stop at ``max_iter`` before converging, so this is a slight underestimate, kept for
comparability with published numbers.

``method="exact"`` computes the converged capacity. For ``C = 2`` it is a closed form of the two
extreme members (smallest and largest probability of class 1; :func:`binary_capacity_bits`,
:func:`rashomon_capacity_from_extremes`); for ``C > 2`` an active-set Newton method whose answer
is certified to within ``1e-12`` bits by the Blahut–Arimoto bounds. Only vertices of the convex
hull of the members' rows can matter (:func:`hull_vertices`, for streaming callers).

When numba is installed both methods run compiled, one sample at a time, on up to
``OMP_NUM_THREADS`` threads (all CPUs when unset); without numba the reference method runs a
vectorised numpy Blahut–Arimoto (same results) and the exact method for ``C > 2`` runs the same
solver in plain Python (same results, much slower).
"""

from __future__ import annotations

import importlib
import math
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt

from multisteal.errors import InvalidInputError
from multisteal.metrics._validation import check_probabilities, integer_at_least

__all__ = [
    "CHUNK_SIZE_INVALID",
    "DEFAULT_MAX_ITER",
    "DEFAULT_TOL",
    "EXACT_GAP_BITS",
    "EXTREMES_NOT_FINITE",
    "EXTREMES_OUT_OF_RANGE",
    "EXTREMES_SHAPE_MISMATCH",
    "EXTREMES_SWAPPED",
    "MAX_ITER_INVALID",
    "METHODS",
    "METHOD_INVALID",
    "TOL_INVALID",
    "binary_capacity_bits",
    "capacity_bits",
    "hull_vertices",
    "rashomon_capacity",
    "rashomon_capacity_from_extremes",
]

DEFAULT_TOL = 1e-12
DEFAULT_MAX_ITER = 1000
#: The capacities of ``method="exact"`` (C > 2) are within this many bits of the true capacity
#: (the gap between Blahut–Arimoto's lower and upper bound at the answer, up to rounding).
EXACT_GAP_BITS = 1e-12
#: The accepted values of ``method``.
METHODS = ("reference", "exact")

TOL_INVALID = "tol must be a positive finite number; got {value!r}"
MAX_ITER_INVALID = "max_iter must be an integer >= 1; got {value!r}"
CHUNK_SIZE_INVALID = "chunk_size must be an integer >= 1 or None; got {value!r}"
METHOD_INVALID = "method must be one of 'reference', 'exact'; got {value!r}"
EXTREMES_NOT_FINITE = "{name} contains NaN or infinite values; the first is at index {index}"
EXTREMES_OUT_OF_RANGE = "{name} must lie in [0, 1]; found {value:.10g} at index {index}"
EXTREMES_SHAPE_MISMATCH = "low with shape {low} and high with shape {high} must have the same shape"
EXTREMES_SWAPPED = "low must not exceed high; low {low:.10g} > high {high:.10g} at index {index}"

# Automatic chunk size of the numpy path: about this many float64 values in the per-chunk
# channel array, so the arrays touched by every iteration stay in the CPU's L2 cache (measured
# fastest, see ``_auto_chunk_size``).
_CHUNK_ELEMENTS = 1 << 16
# Samples per task of the compiled kernels (tasks are shared out among the threads).
_KERNEL_BLOCK = 32
_EPS = float(np.finfo(np.float64).eps)
_TINY = float(np.finfo(np.float64).tiny)
_LOG_TINY = math.log(_TINY)
_LN2 = math.log(2.0)
_HAS_VECDOT = hasattr(np, "vecdot")
# Exact method: stop once upper bound − lower bound <= this (nats).
_EXACT_GAP_NATS = 0.1 * EXACT_GAP_BITS * _LN2
# hull_vertices: a row within this Euclidean distance of the hull of the others is inside it.
_HULL_TOL = 1e-12

_F = TypeVar("_F", bound=Callable[..., Any])


def _import_numba() -> Any:
    try:
        return importlib.import_module("numba")
    except ImportError:  # pragma: no cover - numba is a dependency; numpy paths stay correct
        return None


_NUMBA: Any = _import_numba()


def _jit(fastmath: bool | frozenset[str] = False) -> Callable[[_F], _F]:
    """Compile with numba (nopython, GIL released, cached on disk) when it is installed."""

    def decorate(func: _F) -> _F:
        if _NUMBA is None:  # pragma: no cover - exercised by reloading without numba
            return func
        flags = set(fastmath) if isinstance(fastmath, frozenset) else fastmath
        # error_model="numpy": no zero-division checks (the code guards its divisions)
        options = {"nogil": True, "fastmath": flags, "error_model": "numpy"}
        try:
            compiled = _NUMBA.njit(**options, cache=True)(func)
        except RuntimeError:  # pragma: no cover - no writable cache location
            compiled = _NUMBA.njit(**options, cache=False)(func)
        return cast(_F, compiled)

    return decorate


# Reductions may be reassociated (vectorised sums); everything else keeps IEEE semantics.
_VECTOR = frozenset({"contract", "reassoc"})
_CONTRACT = frozenset({"contract"})


def rashomon_capacity(
    P: npt.ArrayLike,
    *,
    method: str = "reference",
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
    chunk_size: int | None = None,
) -> npt.NDArray[np.float64]:
    """Rashomon Capacity of every sample.

    Parameters
    ----------
    P : array-like of shape (M, N, C)
        Probabilities of ``M`` members on ``N`` samples over ``C`` classes.
    method : {"reference", "exact"}, default="reference"
        ``"reference"``: Blahut–Arimoto with the reference code's stop rule (below).
        ``"exact"``: the converged capacity (closed form for ``C = 2``, within
        :data:`EXACT_GAP_BITS` bits otherwise).
    tol : float, default=1e-12
        ``"reference"`` only: a sample stops once the mean (over members) squared change of its
        input distribution falls below ``tol``.
    max_iter : int, default=1000
        ``"reference"`` only: maximum number of Blahut–Arimoto iterations per sample.
    chunk_size : int, optional
        Number of samples processed together: one task of the compiled kernels (default 32),
        or one vectorised chunk of the numpy fallback (default: about 65,536 channel entries
        per chunk, so memory stays bounded for any ``N``). Results do not depend on it.

    Returns
    -------
    ndarray of float64 of shape (N,)
        ``2 ** capacity_bits(P[:, n, :])``, in ``[1, C]``. Exactly 1 on samples where all
        members give identical probabilities; ``C`` when the members include one-hot answers
        for every class (exactly ``C`` with ``method="exact"``).

    Raises
    ------
    InvalidInputError
        If ``method`` is not one of :data:`METHODS`, or ``tol``, ``max_iter`` or
        ``chunk_size`` is invalid, or ``P`` is not a valid 3-d probability array.

    Notes
    -----
    Reference method: with ``Pw`` the input distribution of a step (uniform at the start), the
    posterior is ``q[m, c] = Pw[m] P[m, c] / col[c]`` with ``col = Σ_m Pw[m] P[m, :]``, the new
    input distribution ``r[m] ∝ Π_c q[m, c] ** P[m, c]``, and the sample stops once
    ``Σ_m (r[m] − Pw[m])² / M < tol`` (or after ``max_iter`` steps); the reported capacity is
    that step's ``Σ r P log(q / r)``. Each sample follows exactly the steps of this per-sample
    loop (to rounding). The compiled kernel merges identical members into one input with a
    multiplicity (an exactly equivalent iteration: same start, same stop rule), and computes
    ``r = Pw · exp(D)`` with ``D[m] = Σ_c P[m, c] log(P[m, c] / col[c])`` in log space with a
    vectorised ``exp``. Classes whose column is all zero are skipped. Rows are renormalised to
    sum to exactly 1 (they are validated to within 1e-6). The cost is about
    ``N · M · iterations`` exponentials; compiled, about 1 ns (C = 2) to 2 ns (C = 10) per
    member and iteration on one core, so N = 10,000, M = 100 takes about 1 s (C = 2) to 1.5 s
    (C = 10) on one core, half that on two.

    Exact method, ``C > 2``: capacity is ``max_p I(p)``, a concave maximisation over the
    members' weights whose optimum puts weight on few members (vertices of the convex hull of
    the rows). The solver keeps an active set of members, maximises ``I`` on it by Newton's
    method (dropping members whose weight reaches 0), and adds the member with the largest
    divergence ``D(P_m || q)`` until ``max_m D(P_m || q) − I(p) <= 1e-13`` nats: that gap bounds
    the error, since ``I(p) <= capacity <= max_m D(P_m || q)`` for every ``p``. It returns the
    lower bound ``I(p)``. Blahut–Arimoto itself would need 10^4–10^6 iterations on typical
    member sets to get as close; this takes about 0.02 ms per sample for M = 100, C = 10.
    Identical members give exactly 1, and one-hot members for every class in use exactly the
    number of classes in use.

    Examples
    --------
    >>> P = [[[1.0, 0.0], [0.3, 0.7]], [[0.0, 1.0], [0.3, 0.7]]]  # M=2, N=2, C=2
    >>> rashomon_capacity(P).round(6)
    array([2., 1.])
    >>> P = [[[0.5, 0.3, 0.2]], [[0.4, 0.4, 0.2]], [[0.45, 0.35, 0.2]], [[0.3, 0.3, 0.4]]]
    >>> rashomon_capacity(P).round(6)  # M=4, N=1, C=3: 1000 iterations, not converged
    array([1.030233])
    >>> rashomon_capacity(P, method="exact").round(6)
    array([1.030236])
    """
    method = _check_method(method)
    members = check_probabilities(P, name="probabilities", ndim=3)
    tolerance, iterations = _check_options(tol, max_iter)
    chunk = _check_chunk_size(chunk_size)
    return _rashomon_capacity(members, tolerance, iterations, chunk, method)


def capacity_bits(
    channel: npt.ArrayLike,
    *,
    method: str = "reference",
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> float:
    """Capacity in bits of one channel.

    Parameters
    ----------
    channel : array-like of shape (M, C)
        Row ``m`` is the output distribution for input ``m`` (a member's probabilities).
    method : {"reference", "exact"}, default="reference"
        ``"reference"``: Blahut–Arimoto with the reference stop rule; ``"exact"``: the
        converged capacity (see :func:`rashomon_capacity`).
    tol : float, default=1e-12
        ``"reference"`` only: stop once the mean squared change of the input distribution falls
        below ``tol``.
    max_iter : int, default=1000
        ``"reference"`` only: maximum number of iterations.

    Returns
    -------
    float
        Capacity in bits, in ``[0, log2(C)]``; exactly 0 when all rows are identical.

    Raises
    ------
    InvalidInputError
        If ``method``, ``tol`` or ``max_iter`` is invalid, or ``channel`` is not a valid 2-d
        probability array.

    Examples
    --------
    >>> capacity_bits([[1.0, 0.0], [0.0, 1.0]])
    1.0
    >>> round(capacity_bits([[0.9, 0.1], [0.1, 0.9]]), 6)  # 1 − H(0.1)
    0.531004
    >>> channel = [[0.7, 0.3], [0.6, 0.4], [0.65, 0.35]]  # the reference stops early
    >>> round(capacity_bits(channel), 6), round(capacity_bits(channel, method="exact"), 6)
    (0.007932, 0.007948)
    """
    method = _check_method(method)
    values = check_probabilities(channel, name="channel", ndim=2)
    tolerance, iterations = _check_options(tol, max_iter)
    members = values[:, np.newaxis, :]
    if method == "exact":
        return float(_exact_bits_and_capacity(members, None)[0][0])
    return float(_reference_bits(members, tolerance, iterations, None)[0])


def binary_capacity_bits(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Capacity in bits of the binary channel with rows ``(1 − a, a)`` and ``(1 − b, b)``.

    Vectorised: ``a`` and ``b`` broadcast against each other. For ``C = 2`` this is the
    capacity of any member set whose smallest and largest probability of class 1 are ``a`` and
    ``b`` (the members in between lie inside the convex hull and do not matter).

    Parameters
    ----------
    a, b : array-like of float in [0, 1]
        Probabilities of class 1 of the two inputs, in either order.

    Returns
    -------
    ndarray of float64
        Capacity in bits, in ``[0, 1]``: 0 where ``a == b``, exactly 1 for ``{a, b} = {0, 1}``.

    Raises
    ------
    InvalidInputError
        If a value is not finite or lies outside ``[0, 1]`` (beyond 1e-9 of rounding).

    Notes
    -----
    With binary entropy ``h`` (nats), the capacity-achieving output distribution ``q`` has the
    same divergence from both rows, ``D(a || q) = D(b || q)``, which gives
    ``logit(q) = −(h(b) − h(a)) / (b − a)`` (the mean of ``logit`` over ``[a, b]``, so ``q``
    lies between ``a`` and ``b``), and the capacity is ``D(a || q)``. Written with
    ``softplus(s) = log(1 + e^s)`` as ``−h(a) + a softplus(s) + (1 − a) softplus(−s)`` with
    ``s = (h(b) − h(a)) / (b − a)``, it is accurate to about 1e-16 bits (absolute) for all
    ``a, b``, including values near 0 and 1 and nearly equal ``a, b``.

    Examples
    --------
    >>> binary_capacity_bits([0.0, 0.1, 0.3], [1.0, 0.9, 0.3]).round(6)  # 1 − H(0.1) = 0.531
    array([1.      , 0.531004, 0.      ])
    >>> float(binary_capacity_bits(0.0, 0.5))  # Z channel: log2(1.25)
    0.32192809488736235
    """
    lo = _check_unit_interval(a, "a")
    hi = _check_unit_interval(b, "b")
    lo, hi = np.broadcast_arrays(lo, hi)
    return _binary_capacity_nats(np.minimum(lo, hi), np.maximum(lo, hi)) / _LN2


def rashomon_capacity_from_extremes(
    low: npt.ArrayLike, high: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Exact binary Rashomon Capacity from each sample's extreme probabilities of class 1.

    For ``C = 2`` the capacity of a member set depends only on its two extreme members, so a
    streaming caller can keep, per sample, the running minimum and maximum of ``P[:, n, 1]``
    over the members seen so far and get the same result as
    ``rashomon_capacity(P, method="exact")`` on the full array.

    Parameters
    ----------
    low, high : array-like of shape (N,)
        ``P[:, n, 1].min()`` and ``P[:, n, 1].max()`` over the members, per sample (rows of
        ``P`` summing to 1; :func:`rashomon_capacity` renormalises them first, which can only
        matter at the level of rounding).

    Returns
    -------
    ndarray of float64 of shape (N,)
        Rashomon Capacity ``2 ** binary_capacity_bits(low, high)``, in ``[1, 2]``: exactly 1
        where ``low == high``, exactly 2 where ``low == 0`` and ``high == 1``.

    Raises
    ------
    InvalidInputError
        If the shapes differ, a value is not finite or outside ``[0, 1]``, or ``low > high``.

    Examples
    --------
    >>> P = np.array([[[0.9, 0.1], [0.5, 0.5]], [[0.2, 0.8], [0.5, 0.5]], [[0.6, 0.4], [1, 0]]])
    >>> low, high = P[:, :, 1].min(axis=0), P[:, :, 1].max(axis=0)  # running min / max
    >>> rashomon_capacity_from_extremes(low, high).round(6)
    array([1.317456, 1.25    ])
    >>> rashomon_capacity(P, method="exact").round(6)
    array([1.317456, 1.25    ])
    """
    lo = _check_unit_interval(low, "low")
    hi = _check_unit_interval(high, "high")
    if lo.shape != hi.shape:
        raise InvalidInputError(EXTREMES_SHAPE_MISMATCH.format(low=lo.shape, high=hi.shape))
    swapped = lo > hi
    if swapped.any():
        i = int(np.argmax(swapped.reshape(-1)))
        raise InvalidInputError(
            EXTREMES_SWAPPED.format(
                low=float(lo.reshape(-1)[i]), high=float(hi.reshape(-1)[i]), index=i
            )
        )
    return _capacity_from_extremes(lo, hi)


def hull_vertices(channel: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """Which rows of a channel are vertices of the convex hull of all its rows.

    Capacity only depends on the hull's vertices: dropping the other rows (members whose
    probabilities are a mixture of other members' probabilities, and repeated rows) leaves the
    capacity unchanged, for this channel and for any channel made by adding rows later. A
    streaming caller can therefore keep only the vertices of each sample's channel between
    chunks of members.

    Parameters
    ----------
    channel : array-like of shape (M, C)
        One sample's member probabilities (rows renormalised to sum to 1).

    Returns
    -------
    ndarray of bool of shape (M,)
        True for the first occurrence of every vertex. False for repeats of an earlier row and
        for rows inside the hull of the others or on its boundary between vertices (within
        1e-12, Euclidean, of the hull of the other rows).

    Raises
    ------
    InvalidInputError
        If ``channel`` is not a valid 2-d probability array.

    Notes
    -----
    Exact in every dimension: rows with at most two classes in use are ordered on a line, three
    classes use a 2-d monotone chain, more classes test each row for membership in the hull of
    the remaining rows by non-negative least squares (rows sum to 1, so a non-negative
    combination that reproduces the row is a convex one). Rows found inside are removed before
    the next test, and rows that are the unique largest or smallest on some class are vertices
    without a test. The cost is one small NNLS per remaining row (about 0.1 ms for M = 100,
    C = 10); in many dimensions most rows are vertices.

    Examples
    --------
    >>> channel = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [0.2, 0.3, 0.5],
    ...            [0.0, 1.0, 0.0], [0.5, 0.5, 0.0]]
    >>> hull_vertices(channel)
    array([ True,  True,  True, False, False, False])
    >>> bool(np.isclose(capacity_bits(channel, method="exact"),
    ...                 capacity_bits(np.asarray(channel)[hull_vertices(channel)], method="exact")))
    True
    """
    values = check_probabilities(channel, name="channel", ndim=2)
    return _hull_vertices(values / values.sum(axis=1, keepdims=True))


# --------------------------------------------------------------------------------------------
# Validation and dispatch
# --------------------------------------------------------------------------------------------


def _rashomon_capacity(
    members: npt.NDArray[np.float64],
    tol: float,
    max_iter: int,
    chunk_size: int | None,
    method: str = "reference",
) -> npt.NDArray[np.float64]:
    C = members.shape[2]
    if method == "exact":
        return _exact_bits_and_capacity(members, chunk_size)[1]
    bits = _reference_bits(members, tol, max_iter, chunk_size)
    capacity: npt.NDArray[np.float64] = np.clip(np.exp2(bits), 1.0, float(C))
    return capacity


def _check_method(method: object) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise InvalidInputError(METHOD_INVALID.format(value=method))
    return method


def _check_options(tol: object, max_iter: object) -> tuple[float, int]:
    if isinstance(tol, bool | np.bool_) or not isinstance(tol, int | float | np.number):
        raise InvalidInputError(TOL_INVALID.format(value=tol))
    tolerance = float(tol)
    if not (math.isfinite(tolerance) and tolerance > 0.0):
        raise InvalidInputError(TOL_INVALID.format(value=tol))
    iterations = _positive_int(max_iter, MAX_ITER_INVALID)
    return tolerance, iterations


def _check_chunk_size(chunk_size: object) -> int | None:
    if chunk_size is None:
        return None
    return _positive_int(chunk_size, CHUNK_SIZE_INVALID)


def _positive_int(value: object, message: str) -> int:
    number = integer_at_least(value, 1)
    if number is None:
        raise InvalidInputError(message.format(value=value))
    return number


def _check_unit_interval(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """``values`` as float64 in [0, 1]; values within 1e-9 outside are clipped."""
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    if not finite.all():
        index = int(np.argmax(~finite.reshape(-1)))
        raise InvalidInputError(EXTREMES_NOT_FINITE.format(name=name, index=index))
    outside = (arr < -1e-9) | (arr > 1.0 + 1e-9)
    if outside.any():
        index = int(np.argmax(outside.reshape(-1)))
        raise InvalidInputError(
            EXTREMES_OUT_OF_RANGE.format(
                name=name, value=float(arr.reshape(-1)[index]), index=index
            )
        )
    clipped: npt.NDArray[np.float64] = np.clip(arr, 0.0, 1.0)
    return clipped


def _n_threads() -> int:
    """Threads for the compiled kernels: ``OMP_NUM_THREADS`` when set, else the usable CPUs."""
    affinity = getattr(os, "sched_getaffinity", None)  # Linux; elsewhere all CPUs
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        requested = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        requested = 0
    return max(1, min(requested, cpus) if requested > 0 else cpus)


def _run_blocks(task: Callable[[int, int], None], n: int, block: int) -> None:
    """Call ``task(start, stop)`` on consecutive blocks of ``range(n)``, on several threads."""
    starts = range(0, n, block)
    threads = min(_n_threads(), len(starts)) if _NUMBA is not None else 1
    if threads <= 1:
        for start in starts:
            task(start, min(start + block, n))
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(lambda start: task(start, min(start + block, n)), starts))


def _reference_bits(
    members: npt.NDArray[np.float64], tol: float, max_iter: int, chunk_size: int | None
) -> npt.NDArray[np.float64]:
    """Reference-rule Blahut–Arimoto capacity in bits of every sample, shape (N,)."""
    if _NUMBA is None:
        return _capacity_bits(members, tol, max_iter, chunk_size)
    P = np.ascontiguousarray(members)
    bits = np.zeros(P.shape[1], dtype=np.float64)

    def task(start: int, stop: int) -> None:
        _reference_range(P, start, stop, tol, max_iter, bits)

    _run_blocks(task, P.shape[1], chunk_size or _KERNEL_BLOCK)
    result: npt.NDArray[np.float64] = np.clip(bits, 0.0, math.log2(P.shape[2]))
    return result


def _exact_bits_and_capacity(
    members: npt.NDArray[np.float64], chunk_size: int | None
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Converged capacity of every sample: (bits, Rashomon Capacity), each of shape (N,)."""
    _, N, C = members.shape
    if C == 2:
        column = members[:, :, 1] / members.sum(axis=2)
        lo, hi = column.min(axis=0), column.max(axis=0)
        return _binary_capacity_nats(lo, hi) / _LN2, _capacity_from_extremes(lo, hi)
    P = np.ascontiguousarray(members)
    nats = np.zeros(N, dtype=np.float64)
    capacity = np.ones(N, dtype=np.float64)

    def task(start: int, stop: int) -> None:
        _exact_range(P, start, stop, _EXACT_GAP_NATS, nats, capacity)

    _run_blocks(task, N, chunk_size or _KERNEL_BLOCK)
    bits: npt.NDArray[np.float64] = np.clip(nats / _LN2, 0.0, math.log2(C))
    return bits, np.clip(capacity, 1.0, float(C))


# --------------------------------------------------------------------------------------------
# Binary channels: closed form
# --------------------------------------------------------------------------------------------


def _entropy_nats(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Binary entropy in nats, 0 at 0 and 1."""
    y = 1.0 - x
    h = np.zeros_like(x)
    inner = (x > 0.0) & (y > 0.0)
    xi, yi = x[inner], y[inner]
    h[inner] = -(xi * np.log(xi) + yi * np.log(yi))
    return h


def _binary_capacity_nats(
    lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Capacity in nats of the binary channels with class-1 probabilities ``lo <= hi``."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    width = hi - lo
    distinct = width > 0.0
    h_lo, h_hi = _entropy_nats(lo), _entropy_nats(hi)
    # slope of the entropy's secant over [lo, hi]; the optimal output has logit(q) = −slope
    slope = np.divide(h_hi - h_lo, width, out=np.zeros_like(width), where=distinct)
    up, down = np.logaddexp(0.0, slope), np.logaddexp(0.0, -slope)  # −log q, −log(1 − q)
    d_lo = -h_lo + lo * up + (1.0 - lo) * down
    d_hi = -h_hi + hi * up + (1.0 - hi) * down
    nats: npt.NDArray[np.float64] = np.where(
        (lo == 0.0) & (hi == 1.0),
        _LN2,
        np.clip(np.where(distinct, np.maximum(d_lo, d_hi), 0.0), 0.0, _LN2),
    )
    return nats


def _capacity_from_extremes(
    lo: npt.NDArray[np.float64], hi: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    bits = _binary_capacity_nats(lo, hi) / _LN2
    capacity: npt.NDArray[np.float64] = np.where(
        lo == hi, 1.0, np.where((lo == 0.0) & (hi == 1.0), 2.0, np.clip(np.exp2(bits), 1.0, 2.0))
    )
    return capacity


# --------------------------------------------------------------------------------------------
# Reference method, numpy fallback: all samples of a chunk at once
# --------------------------------------------------------------------------------------------


def _auto_chunk_size(n_members: int, n_classes: int) -> int:
    return max(1, _CHUNK_ELEMENTS // ((n_classes + 2) * n_members))


def _capacity_bits(
    members: npt.NDArray[np.float64], tol: float, max_iter: int, chunk_size: int | None
) -> npt.NDArray[np.float64]:
    """Capacity in bits of every channel ``members[:, n, :]``, shape (N,), in [0, log2 C]."""
    M, N, C = members.shape
    step = chunk_size if chunk_size is not None else _auto_chunk_size(M, C)
    bits = np.zeros(N, dtype=np.float64)
    for start in range(0, N, step):
        stop = min(start + step, N)
        X = _channel_rows(members[:, start:stop, :])
        # Identical members: capacity exactly 0 (BA would return ~1e-17 from rounding).
        P_t = X[:, :C, :]
        varied = np.flatnonzero(np.any(P_t.max(axis=2) != P_t.min(axis=2), axis=1))
        if varied.size == stop - start:
            bits[start:stop] = _blahut_arimoto_bits(X, C, tol, max_iter)
        elif varied.size:
            bits[start + varied] = _blahut_arimoto_bits(X[varied], C, tol, max_iter)
    result: npt.NDArray[np.float64] = np.clip(bits, 0.0, math.log2(C))
    return result


def _channel_rows(block: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Lay out ``n`` channels for the iteration: shape (n, C + 2, M).

    For the channel of sample ``n`` (``block[:, n, :]``, shape (M, C)), rows ``0 … C−1`` hold
    the class columns ``P[:, c]`` (renormalised so every member's row sums to exactly 1), row
    ``C`` holds ``Σ_c P log P`` per member (0 log 0 = 0) and row ``C + 1`` holds ones.
    """
    M, n, C = block.shape
    X = np.empty((n, C + 2, M), dtype=np.float64)
    P_t = X[:, :C, :]
    P_t[...] = block.transpose(1, 2, 0)
    P_t /= P_t.sum(axis=1, keepdims=True)
    log_p = np.log(P_t, out=np.zeros_like(P_t), where=P_t > 0.0)
    log_p *= P_t
    X[:, C, :] = log_p.sum(axis=1)
    X[:, C + 1, :] = 1.0
    return X


def _row_dot(
    left: npt.NDArray[np.float64], right: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Row-wise dot product of two (n, M) arrays, shape (n,)."""
    if _HAS_VECDOT:  # numpy >= 2.0: about 15 % faster overall than einsum
        result: npt.NDArray[np.float64] = np.vecdot(left, right)
    else:  # pragma: no cover - numpy 1.26
        result = np.einsum("ij,ij->i", left, right)
    return result


def _converged(
    w: npt.NDArray[np.float64],
    w_prev: npt.NDArray[np.float64],
    inv_z: npt.NDArray[np.float64],
    inv_z_prev: npt.NDArray[np.float64],
    a: npt.NDArray[np.float64],
    a_prev: npt.NDArray[np.float64],
    s_cross: npt.NDArray[np.float64],
    *,
    threshold: float,
    tol: float,
) -> npt.NDArray[np.intp]:
    """Rows whose mean squared change ``Σ_m (w·inv_z − w_prev·inv_z_prev)² / M`` is below tol.

    The expanded square ``a + a_prev − 2 · s_cross · inv_z · inv_z_prev`` (``a = Σ Pw²``,
    ``s_cross = Σ w · w_prev``) costs nothing extra per row; ``threshold`` is ``tol · M`` plus a
    bound on its rounding error, so only rows that may have converged get the direct formula.
    """
    expanded = a + a_prev - 2.0 * s_cross * inv_z * inv_z_prev
    near = np.flatnonzero(expanded < threshold)
    if near.size == 0:
        return near
    change = w[near] * inv_z[near, np.newaxis] - w_prev[near] * inv_z_prev[near, np.newaxis]
    converged: npt.NDArray[np.intp] = near[_row_dot(change, change) / w.shape[1] < tol]
    return converged


def _blahut_arimoto_bits(
    X: npt.NDArray[np.float64], C: int, tol: float, max_iter: int
) -> npt.NDArray[np.float64]:
    """Blahut–Arimoto on ``n`` channels at once, each stopping on its own; capacities in bits.

    Parameters
    ----------
    X : ndarray of shape (n, C + 2, M)
        ``n`` channels laid out by :func:`_channel_rows` (not modified).
    C : int
        Number of classes.

    Notes
    -----
    With ``Pw`` the input distribution of step ``k`` (uniform at ``k = 0``), the reference step
    is ``q[m, c] = Pw[m] P[m, c] / col[c]`` with ``col = Σ_m Pw[m] P[m, :]``, then
    ``r[m] ∝ Π_c q[m, c] ** P[m, c] = Pw[m] · exp(D[m])`` with
    ``D[m] = Σ_c P[m, c] log(P[m, c] / col[c])``; the step's capacity is ``log Z`` with
    ``Z = Σ_m Pw[m] exp(D[m])``, and it stops when ``Σ_m (r[m] − Pw[m])² / M < tol``.

    Here the input distribution is kept unnormalised, ``w = exp(X · coef)`` with rows
    ``X = [P[:, 0], …, P[:, C−1], Σ_c P log P, 1]`` and ``coef = [−Λ, k + 1, 0]``, ``Λ`` the
    running sum of ``log col``. Because rows of ``P`` sum to 1, the scale of ``w`` cancels:
    ``exp(X · coef)`` after step ``k`` equals ``Pw[m] · exp(D[m])`` (in exact arithmetic), so
    ``Σ_m w = Z``.
    The squared change is first evaluated from row dot products (expanded square, cheap); only
    samples within rounding distance of ``tol`` are checked with the direct formula, so the
    stop decisions are those of the direct formula.
    """
    n, K, M = X.shape
    coef = np.zeros((n, 1, K), dtype=np.float64)
    w = np.ones((n, M), dtype=np.float64)  # unnormalised uniform start
    w_prev = w
    s_cur = np.full(n, float(M))  # Σ_m w²
    s_cross = np.zeros(n)  # Σ_m w · w_prev
    a_prev = np.zeros(n)  # Σ_m Pw_prev²
    inv_z_prev = np.zeros(n)  # 1 / Σ_m w_prev
    bits = np.empty(n, dtype=np.float64)
    rows = np.arange(n)  # position in ``bits`` of every row still iterating
    # |rounding error| of the expanded square is below this (terms <= 1, dot products of M).
    margin = 8.0 * (M + 8) * _EPS
    threshold = tol * M + margin

    for k in range(max_iter + 1):
        y = np.matmul(X, w[:, :, np.newaxis])[:, :, 0]  # [col * Σw (C), Σ w·A, Σ w]
        inv_z = 1.0 / y[:, C + 1]
        a = s_cur * inv_z * inv_z  # Σ_m Pw_k²
        if k > 0:
            # ``w`` holds step k−1's result; y[:, C + 1] is that step's normaliser Z.
            if k == max_iter:
                stopped = np.arange(rows.size)
            else:
                stopped = _converged(
                    w, w_prev, inv_z, inv_z_prev, a, a_prev, s_cross, threshold=threshold, tol=tol
                )
            if stopped.size:
                bits[rows[stopped]] = np.log2(y[stopped, C + 1])
                if stopped.size == rows.size:
                    break
                keep = np.ones(rows.size, dtype=np.bool_)
                keep[stopped] = False
                rows, X, coef, w = rows[keep], X[keep], coef[keep], w[keep]
                y, inv_z, a = y[keep], inv_z[keep], a[keep]
        # Next step: Λ += log col (zero columns: any finite value, they multiply zeros).
        coef[:, 0, :C] -= np.log(np.maximum(y[:, :C], _TINY))
        coef[:, 0, C] = k + 1
        w_next = np.matmul(coef, X)[:, 0, :]
        np.exp(w_next, out=w_next)
        s_cur = _row_dot(w_next, w_next)
        s_cross = _row_dot(w_next, w)
        w_prev, inv_z_prev, a_prev, w = w, inv_z, a, w_next
    return bits


# --------------------------------------------------------------------------------------------
# Compiled kernels (plain Python when numba is missing): one sample at a time
# --------------------------------------------------------------------------------------------

# exp by Cody–Waite reduction x = k·ln2 + r, |r| <= ln2/2, a degree-13 Taylor polynomial of
# exp(r) (truncation < 2e-17 relative) and the exponent bits of 2**k: <= 1 ulp from the correctly
# rounded value, and a loop the compiler vectorises (libm's exp is a call per element, 3-6x
# slower here).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_ROUND = 6755399441055744.0  # 1.5 · 2**52: adding then subtracting it rounds to an integer


@_jit(_CONTRACT)
def _exp_parts(
    t: npt.NDArray[np.float64],
    poly: npt.NDArray[np.float64],
    bits: npt.NDArray[np.int64],
    n: int,
) -> None:
    """``exp(t[i]) = poly[i] · bits[i].view(float64)`` for ``i < n`` (``t[i] <= 709``).

    ``poly[i]`` is 0 where ``t[i] < −708``. The caller multiplies the two parts. Kept apart from
    the reassociating kernels: the rounding trick and the two-part ``ln 2`` need IEEE semantics.
    """
    for i in range(n):
        x = min(max(t[i], -708.0), 709.0)
        k = (x * _INV_LN2 + _ROUND) - _ROUND
        r = (x - k * _LN2_HI) - k * _LN2_LO
        p = 1.0 / 6227020800.0
        p = p * r + 1.0 / 479001600.0
        p = p * r + 1.0 / 39916800.0
        p = p * r + 1.0 / 3628800.0
        p = p * r + 1.0 / 362880.0
        p = p * r + 1.0 / 40320.0
        p = p * r + 1.0 / 5040.0
        p = p * r + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        poly[i] = p if t[i] >= -708.0 else 0.0
        bits[i] = (np.int64(k) + 1023) << 52


@_jit()
def _load_unique(
    P: npt.NDArray[np.float64],
    n: int,
    rows: npt.NDArray[np.float64],
    W: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    multiplicity: npt.NDArray[np.float64],
    key: npt.NDArray[np.float64],
) -> int:
    """Distinct rows of sample ``n``'s channel; returns their number ``G``.

    ``W[:G]`` gets the distinct rows of ``P[:, n, :]`` (each renormalised to sum to 1),
    ``multiplicity[:G]`` how many members share each, ``A[:G]`` their ``Σ_c P log P``
    (0 log 0 = 0). ``rows`` and ``key`` are scratch of shape (M, C) and (M,).
    """
    M = P.shape[0]
    C = P.shape[2]
    for m in range(M):
        total = 0.0
        for c in range(C):
            total += P[m, n, c]
        h = 0.0
        for c in range(C):
            v = P[m, n, c] / total
            rows[m, c] = v
            h += v * (1.0 + 0.6180339887498949 * c)
        key[m] = h  # equal rows have equal keys
    order = np.arange(M)
    gap = M // 2
    while gap > 0:  # Shell sort of the members by key (cheaper to compile than np.argsort)
        for i in range(gap, M):
            m = order[i]
            j = i
            while j >= gap and key[order[j - gap]] > key[m]:
                order[j] = order[j - gap]
                j -= gap
            order[j] = m
        gap = gap // 2 if gap > 2 else gap - 1
    G = 0
    i = 0
    while i < M:
        run = G  # groups of this run of equal keys start here
        j = i
        while j < M and key[order[j]] == key[order[i]]:
            m = order[j]
            found = -1
            for g in range(run, G):
                same = True
                for c in range(C):
                    if rows[m, c] != W[g, c]:
                        same = False
                        break
                if same:
                    found = g
                    break
            if found >= 0:
                multiplicity[found] += 1.0
            else:
                for c in range(C):
                    W[G, c] = rows[m, c]
                multiplicity[G] = 1.0
                G += 1
            j += 1
        i = j
    for g in range(G):
        a = 0.0
        for c in range(C):
            v = W[g, c]
            if v > 0.0:
                a += v * math.log(v)
        A[g] = a
    return G


@_jit(_VECTOR)
def _reference_sample(
    X: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    multiplicity: npt.NDArray[np.float64],
    G: int,
    n_members: float,
    tol: float,
    max_iter: int,
    t: npt.NDArray[np.float64],
    e: npt.NDArray[np.float64],
    e_prev: npt.NDArray[np.float64],
    bits: npt.NDArray[np.int64],
    inv_k: npt.NDArray[np.float64],
    col: npt.NDArray[np.float64],
    L: npt.NDArray[np.float64],
) -> float:
    """Reference-rule Blahut–Arimoto on one channel of ``G`` distinct rows; capacity in bits.

    ``X[:, :G]`` holds the rows as columns (class-major, padded with a zero row to an even
    number of classes ``K``; a pass over the rows handles 2 or 4 classes, then 8 or 4), ``multiplicity`` how many members share each row
    (they sum to ``n_members``). With ``W_g`` the weight of row ``g`` (its members' total, so
    ``k_g / M`` at the start), one step is ``col = Σ_g W_g X_g``,
    ``E_g = W_g exp(D_g)`` with ``D_g = Σ_c P log(P / col)``, ``Z = Σ_g E_g``, and the next
    weights are ``E / Z``; a member's weight is ``W_g / k_g``, so the reference's stop test reads
    ``Σ_g (E_g / Z − W_g)² / k_g < tol · M``.

    ``t`` holds ``log E`` of the previous step, unnormalised: the next step's is
    ``t + Σ_c P log P − Σ_c P log col − log Z`` (one pass, four classes at a time), then ``E``
    by the vectorised exp, and one pass sums ``Z``, the next ``col`` (unnormalised) and the
    two dot products of the stop test's expanded square (which screens it; the direct formula
    decides).
    """
    K = X.shape[0]
    first = 2 if K % 4 == 2 else 4  # classes in the first block; then blocks of 8 or 4
    log_m = math.log(n_members)
    for c in range(K):
        col[c] = 0.0
    s2 = 0.0  # Σ E² / k of the previous step (its E = W at the start, Z = 1)
    for g in range(G):
        k = multiplicity[g]
        w = k / n_members
        inv_k[g] = 1.0 / k
        t[g] = math.log(k) - log_m
        e[g] = w
        s2 += w * w / k
        for c in range(K):
            col[c] += w * X[c, g]
    scale = bits.view(np.float64)
    threshold = tol * n_members
    margin = 8.0 * (G + 8) * 2.220446049250313e-16
    inv_z = 1.0
    log_z = 0.0
    for it in range(max_iter):
        for c in range(K):
            L[c] = math.log(col[c]) if col[c] > 0.0 else 0.0  # zero column: any finite value
        l0 = L[0]
        l1 = L[1]
        if first == 2:
            for g in range(G):
                t[g] += (A[g] - log_z) - (X[0, g] * l0 + X[1, g] * l1)
        else:
            l2 = L[2]
            l3 = L[3]
            for g in range(G):
                t[g] += (A[g] - log_z) - (
                    (X[0, g] * l0 + X[1, g] * l1) + (X[2, g] * l2 + X[3, g] * l3)
                )
        c = first
        while c < K:
            l0 = L[c]
            l1 = L[c + 1]
            l2 = L[c + 2]
            l3 = L[c + 3]
            if c + 8 <= K:
                l4 = L[c + 4]
                l5 = L[c + 5]
                l6 = L[c + 6]
                l7 = L[c + 7]
                for g in range(G):
                    t[g] -= (
                        (X[c, g] * l0 + X[c + 1, g] * l1) + (X[c + 2, g] * l2 + X[c + 3, g] * l3)
                    ) + (
                        (X[c + 4, g] * l4 + X[c + 5, g] * l5)
                        + (X[c + 6, g] * l6 + X[c + 7, g] * l7)
                    )
                c += 8
            else:
                for g in range(G):
                    t[g] -= (X[c, g] * l0 + X[c + 1, g] * l1) + (
                        X[c + 2, g] * l2 + X[c + 3, g] * l3
                    )
                c += 4
        e, e_prev = e_prev, e
        _exp_parts(t, e, bits, G)
        z = 0.0
        s1 = 0.0
        s0 = s2
        s2 = 0.0
        c0 = 0.0
        c1 = 0.0
        c2 = 0.0
        c3 = 0.0
        if first == 2:
            for g in range(G):
                eg = e[g] * scale[g]
                e[g] = eg
                z += eg
                s1 += eg * e_prev[g] * inv_k[g]
                s2 += eg * eg * inv_k[g]
                c0 += eg * X[0, g]
                c1 += eg * X[1, g]
        else:
            for g in range(G):
                eg = e[g] * scale[g]
                e[g] = eg
                z += eg
                s1 += eg * e_prev[g] * inv_k[g]
                s2 += eg * eg * inv_k[g]
                c0 += eg * X[0, g]
                c1 += eg * X[1, g]
                c2 += eg * X[2, g]
                c3 += eg * X[3, g]
            col[2] = c2
            col[3] = c3
        col[0] = c0
        col[1] = c1
        inv_z_prev = inv_z
        inv_z = 1.0 / z
        log_z = math.log(z)
        if it == max_iter - 1:
            break
        a = s2 * inv_z * inv_z
        b = s0 * inv_z_prev * inv_z_prev
        if a - 2.0 * s1 * inv_z * inv_z_prev + b < threshold + margin * (a + b):
            change = 0.0
            for g in range(G):
                d = e[g] * inv_z - e_prev[g] * inv_z_prev
                change += d * d * inv_k[g]
            if change < threshold:
                break
        c = first
        while c < K:
            c0 = 0.0
            c1 = 0.0
            c2 = 0.0
            c3 = 0.0
            if c + 8 <= K:
                c4 = 0.0
                c5 = 0.0
                c6 = 0.0
                c7 = 0.0
                for g in range(G):
                    w = e[g]
                    c0 += w * X[c, g]
                    c1 += w * X[c + 1, g]
                    c2 += w * X[c + 2, g]
                    c3 += w * X[c + 3, g]
                    c4 += w * X[c + 4, g]
                    c5 += w * X[c + 5, g]
                    c6 += w * X[c + 6, g]
                    c7 += w * X[c + 7, g]
                col[c + 4] = c4
                col[c + 5] = c5
                col[c + 6] = c6
                col[c + 7] = c7
                step = 8
            else:
                for g in range(G):
                    w = e[g]
                    c0 += w * X[c, g]
                    c1 += w * X[c + 1, g]
                    c2 += w * X[c + 2, g]
                    c3 += w * X[c + 3, g]
                step = 4
            col[c] = c0
            col[c + 1] = c1
            col[c + 2] = c2
            col[c + 3] = c3
            c += step
        for c in range(K):
            col[c] *= inv_z
    return log_z / _LN2


@_jit(_VECTOR)
def _reference_range(
    P: npt.NDArray[np.float64],
    start: int,
    stop: int,
    tol: float,
    max_iter: int,
    out: npt.NDArray[np.float64],
) -> None:
    """``out[n]`` = reference-rule capacity in bits of samples ``start <= n < stop``."""
    M = P.shape[0]
    C = P.shape[2]
    K = C + C % 2
    rows = np.empty((M, C))
    W = np.empty((M, C))
    X = np.zeros((K, M))
    A = np.empty(M)
    multiplicity = np.empty(M)
    key = np.empty(M)
    t = np.empty(M)
    e = np.empty(M)
    e_prev = np.empty(M)
    bits = np.empty(M, dtype=np.int64)
    inv_k = np.empty(M)
    col = np.empty(K)
    L = np.empty(K)
    for n in range(start, stop):
        G = _load_unique(P, n, rows, W, A, multiplicity, key)
        if G == 1:  # identical members: exactly 0
            out[n] = 0.0
            continue
        for c in range(C):
            for g in range(G):
                X[c, g] = W[g, c]
        out[n] = _reference_sample(
            X, A, multiplicity, G, float(M), tol, max_iter, t, e, e_prev, bits, inv_k, col, L
        )


@_jit()
def _objective(
    p: npt.NDArray[np.float64],
    S: npt.NDArray[np.int64],
    size: int,
    W: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    q: npt.NDArray[np.float64],
    log_q: npt.NDArray[np.float64],
) -> float:
    """Mutual information (nats) of the weights ``p[S[:size]]``; fills ``q`` and ``log q``.

    ``I(p) = Σ_x p_x Σ_c W log W − Σ_c q log q`` with ``q = Σ_x p_x W_x`` (rows sum to 1);
    ``log_q`` holds ``log(tiny)`` where ``q`` is 0.
    """
    C = W.shape[1]
    for c in range(C):
        q[c] = 0.0
    value = 0.0
    for i in range(size):
        x = S[i]
        px = p[x]
        value += px * A[x]
        for c in range(C):
            q[c] += px * W[x, c]
    for c in range(C):
        if q[c] > 0.0:
            log_q[c] = math.log(q[c])
            value -= q[c] * log_q[c]
        else:
            log_q[c] = _LOG_TINY
    return value


@_jit()
def _divergence(
    W: npt.NDArray[np.float64], A: npt.NDArray[np.float64], x: int, log_q: npt.NDArray[np.float64]
) -> float:
    """``D(W_x || q)`` in nats, from ``A[x] = Σ W_x log W_x`` and ``log q``."""
    d: float = A[x]
    for c in range(W.shape[1]):
        d -= W[x, c] * log_q[c]
    return d


@_jit()
def _solve_regularised(H: npt.NDArray[np.float64], g: npt.NDArray[np.float64], n: int) -> Any:
    """Solve ``(H + 1e-12 diag(H)) z = g`` by Cholesky (lower triangle of ``H``, overwritten).

    The relative regularisation keeps the solve defined when rows of the active set are
    affinely dependent (a null direction then gets a long step, and a member is dropped).
    """
    diag = np.empty(n)
    for i in range(n):
        H[i, i] = H[i, i] * (1.0 + 1e-12) + 1e-300
        diag[i] = H[i, i]
    for j in range(n):
        s = H[j, j]
        for k in range(j):
            s -= H[j, k] * H[j, k]
        d = math.sqrt(max(s, 1e-13 * diag[j]))
        H[j, j] = d
        for i in range(j + 1, n):
            s = H[i, j]
            for k in range(j):
                s -= H[i, k] * H[j, k]
            H[i, j] = s / d
    z = np.empty(n)
    for i in range(n):
        s = g[i]
        for k in range(i):
            s -= H[i, k] * z[k]
        z[i] = s / H[i, i]
    for i in range(n - 1, -1, -1):
        s = z[i]
        for k in range(i + 1, n):
            s -= H[k, i] * z[k]
        z[i] = s / H[i, i]
    return z


@_jit()
def _newton_on_face(
    W: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    S: npt.NDArray[np.int64],
    size: int,
    active: npt.NDArray[np.bool_],
    q: npt.NDArray[np.float64],
    log_q: npt.NDArray[np.float64],
    q_trial: npt.NDArray[np.float64],
    log_q_trial: npt.NDArray[np.float64],
    p_trial: npt.NDArray[np.float64],
    gap: float,
    budget: int,
) -> Any:
    """Maximise ``I`` over the weights of the active members ``S[:size]`` (Newton's method).

    Each step solves the reduced Newton system (weights relative to the heaviest member, so
    they keep summing to 1), goes at most to the boundary of the simplex, backtracks (Armijo)
    while far from the optimum and takes full steps near it (quadratic convergence), and drops
    members whose weight reaches 0. Stops once every active member's divergence is within
    ``gap / 4`` of ``I``. Returns ``(I, size, budget)``; ``q``, ``log_q`` hold the optimum's.
    """
    C = W.shape[1]
    value = _objective(p, S, size, W, A, q, log_q)
    for _ in range(100):
        if size == 1 or budget <= 0:
            break
        budget -= 1
        r = 0
        for i in range(1, size):
            if p[S[i]] > p[S[r]]:
                r = i
        xr = S[r]
        n = size - 1
        d_r = _divergence(W, A, xr, log_q)
        worst = d_r - value
        V = np.empty((n, C))
        g = np.empty(n)
        pos = np.empty(n, dtype=np.int64)
        k = 0
        for i in range(size):
            if i == r:
                continue
            x = S[i]
            d = _divergence(W, A, x, log_q)
            worst = max(worst, d - value)
            pos[k] = i
            g[k] = d - d_r
            for c in range(C):
                V[k, c] = W[x, c] - W[xr, c]
            k += 1
        if worst <= 0.25 * gap:
            break
        H = np.zeros((n, n))
        for c in range(C):
            if q[c] > 0.0:
                wc = min(1.0 / q[c], 1e250)
                for i in range(n):
                    vi = V[i, c] * wc
                    if vi != 0.0:
                        for j in range(i + 1):
                            H[i, j] += vi * V[j, c]
        z = _solve_regularised(H, g, n)
        slope = 0.0
        for i in range(n):
            slope += g[i] * z[i]
        if not slope > 0.0:
            break
        step = np.zeros(size)
        total = 0.0
        for i in range(n):
            step[pos[i]] = z[i]
            total += z[i]
        step[r] = -total
        t_max = math.inf
        block = -1
        for i in range(size):
            if step[i] < 0.0:
                t_i = p[S[i]] / -step[i]
                if t_i < t_max:
                    t_max = t_i
                    block = i
        t = min(1.0, t_max)
        local = worst < 1e-7
        accepted = False
        for _search in range(1 if local else 60):
            for i in range(size):
                p_trial[S[i]] = max(p[S[i]] + t * step[i], 0.0)
            if t == t_max:
                p_trial[S[block]] = 0.0
            trial = _objective(p_trial, S, size, W, A, q_trial, log_q_trial)
            if local or trial >= value + 1e-4 * t * slope:
                accepted = True
                break
            t *= 0.5
        if not accepted:
            break
        k = int(np.int64(0))  # typed int64, not a literal (see _exact_range)
        for i in range(size):
            x = S[i]
            p[x] = p_trial[x]
            if p[x] > 0.0:
                S[k] = x
                k += 1
            else:
                active[x] = False
        size = k
        value = _objective(p, S, size, W, A, q, log_q)
    return value, size, budget


@_jit()
def _mixture_slope(
    theta: float,
    W: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    S: npt.NDArray[np.int64],
    size: int,
    new: int,
    q_trial: npt.NDArray[np.float64],
    log_q_trial: npt.NDArray[np.float64],
    p_trial: npt.NDArray[np.float64],
) -> float:
    """Derivative in ``θ`` of ``I((1 − θ) p + θ e_new)`` (``new`` is in ``S``, ``p[new] = 0``)."""
    for i in range(size):
        x = S[i]
        p_trial[x] = (1.0 - theta) * p[x]
    p_trial[new] = theta
    _objective(p_trial, S, size, W, A, q_trial, log_q_trial)
    slope = _divergence(W, A, new, log_q_trial)
    for i in range(size):
        x = S[i]
        if x != new:
            slope -= p[x] * _divergence(W, A, x, log_q_trial)
    return slope


@_jit()
def _mixture_step(
    W: npt.NDArray[np.float64],
    A: npt.NDArray[np.float64],
    p: npt.NDArray[np.float64],
    S: npt.NDArray[np.int64],
    size: int,
    new: int,
    excess: float,
    q: npt.NDArray[np.float64],
    q_trial: npt.NDArray[np.float64],
    log_q_trial: npt.NDArray[np.float64],
    p_trial: npt.NDArray[np.float64],
) -> float:
    """Weight ``θ`` to move onto the new member: the maximiser of ``I`` along the segment.

    ``I`` is concave in ``θ`` with slope ``excess > 0`` at 0; the root of the slope is found
    by Newton's method in ``log θ`` (exact for the entropy-like part, which makes tiny optimal
    weights as easy as large ones) inside a bisection bracket. Returns the largest ``θ`` known
    to have a positive slope, so ``I`` increases.
    """
    C = W.shape[1]
    if _mixture_slope(1.0, W, A, p, S, size, new, q_trial, log_q_trial, p_trial) >= 0.0:
        return 1.0
    curvature = 0.0
    unbounded = False
    for c in range(C):
        dq = W[new, c] - q[c]
        if q[c] > 0.0:
            curvature += dq * dq / q[c]
        elif W[new, c] > 0.0:
            unbounded = True
    u = (
        math.log(0.5)
        if unbounded or not curvature > 0.0
        else math.log(min(0.5, max(excess / curvature, 1e-300)))
    )
    lo = -745.0
    hi = 0.0
    for _ in range(100):
        theta = math.exp(u)
        slope = _mixture_slope(theta, W, A, p, S, size, new, q_trial, log_q_trial, p_trial)
        if slope == 0.0:
            return theta
        if slope > 0.0:
            lo = u
        else:
            hi = u
        if hi - lo < 1e-6:
            break
        curvature = 0.0
        for c in range(C):
            if q_trial[c] > 0.0:
                dq = W[new, c] - q[c]
                curvature += dq * dq / q_trial[c]
        denominator = theta * curvature
        following = u + slope / denominator if denominator > 0.0 else 0.5 * (lo + hi)
        u = following if lo < following < hi else 0.5 * (lo + hi)
    return math.exp(lo)


@_jit()
def _exact_range(
    P: npt.NDArray[np.float64],
    start: int,
    stop: int,
    gap: float,
    nats: npt.NDArray[np.float64],
    capacity: npt.NDArray[np.float64],
) -> None:
    """Converged capacity (nats) and Rashomon Capacity of samples ``start <= n < stop``.

    Per sample, on its distinct rows ``W`` (:func:`_load_unique`): identical members give 0;
    one-hot members for every class in use give exactly ``log(classes in use)``; otherwise the
    active-set method. It starts from the member farthest from the average row, then
    alternates Newton on the active set (:func:`_newton_on_face`) and the optimality test over
    all members, ``max_x D(W_x || q) − I(p) <= gap``, adding the most violating member with a
    line search (:func:`_mixture_step`); ``I(p) <= capacity <= max_x D(W_x || q)``, and the
    answer is ``I(p)``.
    """
    M = P.shape[0]
    C = P.shape[2]
    rows = np.empty((M, C))
    W = np.empty((M, C))
    A = np.empty(M)
    multiplicity = np.empty(M)
    key = np.empty(M)
    q = np.empty(C)
    log_q = np.empty(C)
    q_trial = np.empty(C)
    log_q_trial = np.empty(C)
    active = np.zeros(M, dtype=np.bool_)
    S = np.empty(M, dtype=np.int64)
    p = np.zeros(M)
    p_trial = np.zeros(M)
    for n in range(start, stop):
        G = _load_unique(P, n, rows, W, A, multiplicity, key)
        nats[n] = 0.0
        capacity[n] = 1.0
        if G == 1:
            continue
        used = 0
        covered = 0
        for c in range(C):
            in_use = False
            one_hot = False
            for g in range(G):
                if W[g, c] > 0.0:
                    in_use = True
                    if W[g, c] == 1.0:
                        rest = 0.0
                        for k in range(C):
                            if k != c:
                                rest += W[g, k]
                        one_hot = one_hot or rest == 0.0
            used += in_use
            covered += one_hot
        if covered == used:
            nats[n] = math.log(used)
            capacity[n] = float(used)
            continue
        for c in range(C):
            s = 0.0
            for x in range(G):
                s += W[x, c]
            q[c] = s / G
            log_q[c] = math.log(q[c]) if q[c] > 0.0 else _LOG_TINY
        # int(np.int64(.)): typed int64 rather than a literal, so numba compiles the callees
        # once instead of once more for each constant.
        first = int(np.int64(0))
        best = -1.0
        for x in range(G):
            active[x] = False
            p[x] = 0.0
            d = _divergence(W, A, x, log_q)
            if d > best:
                best = d
                first = x
        S[0] = first
        size = int(np.int64(1))
        active[first] = True
        p[first] = 1.0
        value = 0.0
        budget = 50 * G + 500
        for _ in range(4 * G + 50):
            value, size, budget = _newton_on_face(
                W, A, p, S, size, active, q, log_q, q_trial, log_q_trial, p_trial, gap, budget
            )
            upper = -math.inf
            new = int(np.int64(0))
            for x in range(G):
                d = _divergence(W, A, x, log_q)
                if d > upper:
                    upper = d
                    new = x
            if upper - value <= gap or budget <= 0:
                break
            if active[new]:
                continue
            S[size] = new
            size += 1
            active[new] = True
            p[new] = 0.0
            theta = _mixture_step(
                W, A, p, S, size, new, upper - value, q, q_trial, log_q_trial, p_trial
            )
            for i in range(size):
                p[S[i]] *= 1.0 - theta
            p[new] = theta
        value = min(max(value, 0.0), math.log(used))
        nats[n] = value
        capacity[n] = min(max(math.exp(value), 1.0), float(used))


# --------------------------------------------------------------------------------------------
# Convex hull of a channel's rows
# --------------------------------------------------------------------------------------------


def _hull_vertices(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """Vertex mask of renormalised rows (first occurrence of each vertex)."""
    mask = np.zeros(rows.shape[0], dtype=np.bool_)
    _, first = np.unique(rows, axis=0, return_index=True)
    first = np.sort(first)
    points = rows[first]
    used = np.flatnonzero(points.max(axis=0) > 0.0)
    if first.size <= 2:
        keep = np.arange(first.size)
    elif used.size <= 2:  # on a segment: its two ends
        keep = np.unique([np.argmin(points[:, used[0]]), np.argmax(points[:, used[0]])])
    elif used.size == 3:  # in a plane: (y0, y1) is an affine chart of it
        keep = _hull_2d(points[:, used[:2]])
    else:
        keep = _hull_by_nnls(points[:, used])
    mask[first[keep]] = True
    return mask


def _hull_2d(points: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Indices of the strict vertices of the convex hull of 2-d points (monotone chain)."""
    order = np.lexsort((points[:, 1], points[:, 0]))
    xy = points.tolist()

    def turns_left(o: int, a: int, b: int) -> bool:
        (ox, oy), (ax, ay), (bx, by) = xy[o], xy[a], xy[b]
        return bool((ax - ox) * (by - oy) - (ay - oy) * (bx - ox) > 0.0)

    def chain(indices: list[int]) -> list[int]:
        kept: list[int] = []
        for i in indices:
            while len(kept) >= 2 and not turns_left(kept[-2], kept[-1], i):
                kept.pop()
            kept.append(i)
        return kept

    ordered = [int(i) for i in order]
    lower, upper = chain(ordered), chain(ordered[::-1])
    return np.unique(np.array(lower[:-1] + upper[:-1], dtype=np.intp))


def _hull_by_nnls(points: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    """Indices of the vertices of the hull of distinct points, by one NNLS test per point."""
    from scipy.optimize import nnls

    G = points.shape[0]
    alive = np.ones(G, dtype=np.bool_)
    certain = np.zeros(G, dtype=np.bool_)
    for column in (*points.T, *(-points.T)):
        winners = np.flatnonzero(column == column.max())
        if winners.size == 1:  # the unique maximiser of a linear function: a vertex
            certain[winners[0]] = True
    centre = points.mean(axis=0)
    # Likely interior points first: each one found inside shrinks the later tests.
    for i in np.argsort(((points - centre) ** 2).sum(axis=1)):
        if certain[i]:
            continue
        others = np.flatnonzero(alive)
        others = others[others != i]
        design = np.vstack([points[others].T, np.ones(others.size)])
        target = np.append(points[i], 1.0)
        try:
            residual = float(nnls(design, target)[1])
        except RuntimeError:  # pragma: no cover - iteration limit: keep the point
            continue
        if residual <= _HULL_TOL:
            alive[i] = False
    return np.flatnonzero(alive)
