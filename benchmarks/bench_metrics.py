"""Benchmarks of the vectorised metrics against naive baselines measured in the same run.

Run with ``make bench`` (or ``python benchmarks/bench_metrics.py [--quick]``). Each line prints
our time, the baseline's time and the ratio baseline / ours (higher is better), and checks that
both give the same numbers.
"""

from __future__ import annotations

import argparse
import functools
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# The per-sample Blahut–Arimoto loop with the published stop rule (run as a script, this
# folder is on the path).
from bench_capacity import blahut_arimoto_loop
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate
from sklearn.metrics import accuracy_score

from multisteal import metrics


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def naive_member_fairness(y: np.ndarray, d: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """fairlearn MetricFrame once per member: DP, EO and TPR differences."""
    fns = {
        "sr": selection_rate,
        "tpr": functools.partial(true_positive_rate, pos_label=1),
        "fpr": functools.partial(false_positive_rate, pos_label=1),
        "acc": accuracy_score,
    }
    rows = []
    for member in d:
        diff = MetricFrame(
            metrics=fns, y_true=y, y_pred=member, sensitive_features=groups
        ).difference()
        rows.append([diff["sr"], max(diff["tpr"], diff["fpr"]), diff["tpr"]])
    return np.asarray(rows)


def bench_capacity(M: int, N: int, C: int, rng: np.random.Generator, repeat: int) -> None:
    base = rng.dirichlet(np.ones(C), size=N)
    logits = np.log(base)[None] + 0.3 * rng.normal(size=(M, N, C))
    P = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    ours_t, ours = _best_of(lambda: metrics.rashomon_capacity(P), repeat)
    n_loop = min(N, 300)
    loop_t, loop = _best_of(lambda: blahut_arimoto_loop(P[:, :n_loop]), 1)
    loop_t *= N / n_loop  # extrapolated from n_loop samples
    err = np.abs(ours[:n_loop] - loop).max()
    print(
        f"rashomon_capacity M={M} N={N} C={C}: ours {ours_t:.3f} s, per-sample loop "
        f"{loop_t:.3f} s (from {n_loop} samples), ratio {loop_t / ours_t:.1f}x, max |diff| {err:.1e}"
    )


def bench_fairness(M: int, N: int, G: int, rng: np.random.Generator, repeat: int) -> None:
    y = rng.integers(0, 2, size=N)
    d = rng.integers(0, 2, size=(M, N))
    groups = np.array([f"g{i}" for i in range(G)])[rng.integers(0, G, size=N)]
    ours_t, ours = _best_of(
        lambda: metrics.member_fairness(y, d, sensitive_features=groups), repeat
    )
    n_loop = min(M, 30)
    loop_t, loop = _best_of(lambda: naive_member_fairness(y, d[:n_loop], groups), 1)
    loop_t *= M / n_loop
    cols = [
        "demographic_parity_difference",
        "equalized_odds_difference",
        "true_positive_rate_difference",
    ]
    err = np.abs(ours[cols].to_numpy()[:n_loop] - loop).max()
    print(
        f"member_fairness M={M} N={N} groups={G}: ours {ours_t:.3f} s, fairlearn MetricFrame per "
        f"member {loop_t:.3f} s (from {n_loop} members), ratio {loop_t / ours_t:.1f}x, max |diff| {err:.1e}"
    )


def bench_bootstrap(N: int, G: int, B: int, rng: np.random.Generator, repeat: int) -> None:
    """The target's bootstrap interval: vectorised counts against one fairlearn call per
    resample (the same group-stratified draws, extrapolated from 30 resamples)."""
    y = rng.integers(0, 2, size=N)
    t = np.where(rng.random(N) < 0.85, y, 1 - y)
    groups = np.array([f"g{i}" for i in range(G)])[rng.integers(0, G, size=N)]

    def ours() -> Any:
        return metrics.bootstrap_fairness(
            y, t, sensitive_features=groups, n_resamples=B, rng=np.random.default_rng(1)
        )

    ours_t, table = _best_of(ours, repeat)
    n_loop = 30
    draws = np.random.default_rng(1)
    members = [np.flatnonzero(groups == g) for g in sorted(set(groups))]
    picks = [m[draws.integers(0, m.size, size=(B, m.size))] for m in members]

    def loop() -> list[float]:
        out = []
        for b in range(n_loop):
            rows = np.concatenate([p[b] for p in picks])
            dp = metrics.fairness_metrics(y[rows], t[rows], sensitive_features=groups[rows])
            out.append(dp["demographic_parity_difference"])
        return out

    loop_t, _ = _best_of(loop, 1)
    loop_t *= B / n_loop
    estimate = metrics.fairness_metrics(y, t, sensitive_features=groups)
    err = abs(
        table.loc["demographic_parity_difference", "estimate"]
        - estimate["demographic_parity_difference"]
    )
    print(
        f"bootstrap_fairness N={N} groups={G} resamples={B}: ours {ours_t:.3f} s, fairlearn per "
        f"resample {loop_t:.3f} s (from {n_loop}), ratio {loop_t / ours_t:.1f}x, "
        f"estimate |diff| {err:.1e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    repeat = 1 if args.quick else 3
    sizes = [(50, 2000, 2)] if args.quick else [(200, 10_000, 2), (100, 5_000, 5)]
    for M, N, C in sizes:
        bench_capacity(M, N, C, rng, repeat)
    for M, N, G in [(50, 2000, 2)] if args.quick else [(300, 10_000, 2), (300, 10_000, 5)]:
        bench_fairness(M, N, G, rng, repeat)
    for N, G, B in [(2000, 2, 200)] if args.quick else [(10_000, 2, 1000), (10_000, 5, 1000)]:
        bench_bootstrap(N, G, B, rng, repeat)


if __name__ == "__main__":
    main()
