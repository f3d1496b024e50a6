"""Rashomon Capacity: our two methods against a per-sample Blahut–Arimoto loop.

Run with ``OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_capacity.py`` (options: ``--help``).
For each number of classes it times

* ``rashomon_capacity(P)`` (reference stop rule) on all ``N`` samples,
* the per-sample loop (plain numpy, one sample at a time, the published code's iteration and stop
  rule) on a random subset of samples, scaled per sample to ``N``,
* ``rashomon_capacity(P, method="exact")`` on all ``N`` samples,

and prints a markdown table: wall-clock and CPU times (CPU: all threads; it shows the work when
other jobs share the cores), ratio loop / ours (higher is better), the largest difference
from the loop on the subset, and the largest difference from a 10^5-iteration Blahut–Arimoto (stop
once the mean squared change is below 1e-14) on a smaller subset, with how many of our values lie
between that run's lower and upper bound of the capacity (``2 ** log2 Z`` and ``2 ** max_m D``).

Our compiled kernels use ``OMP_NUM_THREADS`` threads (all CPUs when unset); the loop is
single-threaded; numpy's BLAS is limited to ``OMP_NUM_THREADS`` threads.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from multisteal.metrics import capacity


def member_probabilities(M: int, N: int, C: int, seed: int) -> np.ndarray:
    """Deterministic ``(M, N, C)`` probabilities: softmax of base logits plus member noise.

    Base logits ``N(0, 2²)`` per sample and class; each sample draws a noise scale from
    ``{0, 0.05, 0.3, 1}`` (probabilities 0.1, 0.3, 0.4, 0.2), so 10 % of the samples have all
    members agreeing exactly, and the others range from near-identical to quite different members.
    """
    rng = np.random.default_rng(seed)
    base = rng.normal(scale=2.0, size=(N, C))
    scale = rng.choice([0.0, 0.05, 0.3, 1.0], size=N, p=[0.1, 0.3, 0.4, 0.2])
    logits = base[None] + scale[None, :, None] * rng.normal(size=(M, N, C))
    logits -= logits.max(axis=2, keepdims=True)
    P = np.exp(logits)
    P /= P.sum(axis=2, keepdims=True)
    return P


def blahut_arimoto_loop(P: np.ndarray, tol: float = 1e-12, max_iter: int = 1000) -> np.ndarray:
    """Per-sample Blahut–Arimoto, one sample at a time, step for step like the reference code.

    Posterior ``q = pw·P / col``, update ``r ∝ Π_c q^P``, stop when ``Σ (r − pw)² / M < tol`` (or
    after ``max_iter`` steps); the capacity is ``Σ r P log(q / r)`` over positive terms (bits),
    and the result is ``2 ** capacity``. All-zero columns are skipped.
    """
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
        out[n] = 2.0 ** (terms.sum() / np.log(2.0))
    return out


def blahut_arimoto_bounds(
    P: np.ndarray, tol: float = 1e-14, max_iter: int = 100_000
) -> tuple[np.ndarray, np.ndarray]:
    """Long per-sample Blahut–Arimoto: Rashomon Capacity's lower and upper bound per sample.

    Same iteration and stop rule as :func:`blahut_arimoto_loop`; at the last step ``2 ** log2 Z``
    is a lower bound of the capacity and ``2 ** max_m D(P_m || col)`` an upper bound.
    """
    M, N, _ = P.shape
    lower, upper = np.empty(N), np.empty(N)
    for n in range(N):
        W = P[:, n, :]
        W = W[:, W.sum(axis=0) > 0]
        log_w = np.log(np.where(W > 0, W, 1.0))
        pw = np.full(M, 1.0 / M)
        for _ in range(max_iter):
            col = pw @ W
            D = np.sum(W * (log_w - np.log(col)), axis=1)
            r = pw * np.exp(D)
            z = r.sum()
            r /= z
            if np.sum((r - pw) ** 2) / M < tol:
                break
            pw = r
        lower[n], upper[n] = z, np.exp(D.max())
    return lower, upper


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    """Best wall-clock time, the CPU time (all threads) of that run, and the result."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - start
        if wall < best:
            best, cpu = wall, time.process_time() - start_cpu
    return best, cpu, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", "-M", type=int, default=100)
    parser.add_argument("--samples", "-N", type=int, default=10_000)
    parser.add_argument("--classes", "-C", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--subset", type=int, default=200, help="samples for the loop baseline")
    parser.add_argument(
        "--ba-subset", type=int, default=10, help="samples for the 10^5-iteration Blahut–Arimoto"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of ours")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    threads = capacity._n_threads()
    print(
        f"M={args.members} N={args.samples}; our kernels on {threads} thread(s) "
        f"(OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"numba {'on' if capacity._NUMBA is not None else 'missing (numpy fallback)'}; "
        f"loop baseline on {args.subset} samples, scaled to N; "
        f"10^5-iteration BA on {args.ba_subset} samples\n"
    )
    rows = []
    with threadpool_limits(threads):
        for C in args.classes:
            P = member_probabilities(args.members, args.samples, C, args.seed + C)
            rng = np.random.default_rng(args.seed)
            subset = np.sort(
                rng.choice(args.samples, size=min(args.subset, args.samples), replace=False)
            )
            small = subset[: args.ba_subset]
            # Warm-up: compiles (or loads from numba's cache) outside the timings.
            capacity.rashomon_capacity(P[:, :4])
            capacity.rashomon_capacity(P[:, :4], method="exact")

            loop_t, loop_cpu, loop = _best_of(
                lambda: blahut_arimoto_loop(P[:, subset]),  # noqa: B023
                1,
            )
            loop_t *= args.samples / subset.size
            loop_cpu *= args.samples / subset.size
            ba_lower, ba_upper = blahut_arimoto_bounds(P[:, small])
            for method in ("reference", "exact"):
                ours_t, ours_cpu, ours = _best_of(
                    lambda: capacity.rashomon_capacity(P, method=method),  # noqa: B023
                    args.repeat,
                )
                rows.append(
                    (
                        C,
                        method,
                        ours_t,
                        ours_cpu,
                        loop_t,
                        loop_cpu,
                        loop_t / ours_t,
                        loop_cpu / ours_cpu,
                        float(np.abs(ours[subset] - loop).max()),
                        float(np.abs(ours[small] - ba_lower).max()),
                        int(
                            np.sum(
                                (ours[small] >= ba_lower - 1e-12)
                                & (ours[small] <= ba_upper + 1e-12)
                            )
                        ),
                        float((ba_upper - ba_lower).max()),
                    )
                )
    print(
        "| C | method | ours: wall (CPU) s | per-sample loop: wall (CPU) s, scaled "
        "| loop / ours: wall (CPU) | max abs diff vs loop (RC) "
        "| max abs diff vs 10^5-iter BA (RC) | inside the 10^5-iter BA's bounds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        C, method, ours_t, ours_cpu, loop_t, loop_cpu, ratio, ratio_cpu = row[:8]
        diff, diff_ba, inside, width = row[8:]
        print(
            f"| {C} | {method} | {ours_t:.3f} ({ours_cpu:.3f}) | {loop_t:.1f} ({loop_cpu:.1f}) "
            f"| {ratio:.0f}x ({ratio_cpu:.0f}x) | {diff:.1e} | {diff_ba:.1e} "
            f"| {inside}/{len(small)} (bounds up to {width:.1e} apart) |"
        )


if __name__ == "__main__":
    main()
