"""Batched dropout exploration against one hooked forward pass per member (the published way).

Run with ``OMP_NUM_THREADS=2 python benchmarks/bench_dropout.py [--members 100] [--rows 10000]
[--baseline-members 5] [--threads 2] [--semantics per-member per-pass]`` (not part of the
tests). The surrogate is an MLP 20 → 1000 → 2 (ReLU; a hand-built ``nn.Sequential`` with seeded
uniform weights, wrapped in a ``TorchMLPClassifier`` as the tests do), the rates
``linspace(0, 0.2, 21)`` (Bernoulli) with ``--members`` draws each, on ``--rows`` random rows,
layers ``all``.

For both semantics it times :class:`~multisteal.rashomon.DropoutExplorer` (``explore``:
everything, the reference, the masks, the outputs as float64 probabilities, in one chunk) and
the baseline: one forward pass per member with forward hooks multiplying every Linear output by
its noise (:func:`~multisteal.rashomon.dropout.hooked_forward`). The baseline is timed on
``--baseline-members`` draws per rate, half before and half after the explorer (so a change of
the machine's load weighs on both), and scaled to all members (printed). Wall-clock and CPU
time (all threads) are both compared. Per member the baseline uses the same masks
(:func:`~multisteal.rashomon.dropout.member_masks`), so the largest |difference| of the
probabilities is printed; per pass the baseline draws fresh noise in its hooks
(``torch.rand(shape) >= p``, survivors scaled by ``1/(1−p)``), not comparable element by
element: the difference of the mean probability of class 1 (over passes and rows) at the rate
where it is largest in standard errors is printed, and the largest |difference| against hooked
passes with the explorer's own noise (:func:`~multisteal.rashomon.dropout.pass_noise`).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from multisteal.models import TorchMLPClassifier
from multisteal.models.torch_base import init_uniform_
from multisteal.rashomon import DropoutExplorer, ExplorationContext
from multisteal.rashomon.dropout import (
    hooked_forward,
    layer_units,
    member_masks,
    pass_noise,
    perturbed_modules,
)

RATES = np.linspace(0.0, 0.2, 21)


def surrogate(n_features: int, hidden: int, seed: int) -> TorchMLPClassifier:
    """A 'fitted' ``TorchMLPClassifier`` around a seeded MLP ``n_features → hidden → 2``."""
    module = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 2))
    init_uniform_(module, torch.Generator().manual_seed(seed))
    model = TorchMLPClassifier((hidden,))
    model.module_ = module.eval()
    model.n_features_in_, model.n_classes_ = n_features, 2
    model.classes_ = np.arange(2)
    return model


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.double(), dim=-1).numpy()


def explore(model: TorchMLPClassifier, X: np.ndarray, semantics: str, members: int) -> Any:
    explorer = DropoutExplorer(rates=list(RATES), members_per_rate=members, semantics=semantics)  # type: ignore[arg-type]
    context = ExplorationContext(
        surrogate=model,
        inputs={"evaluation": X},
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        rng=np.random.default_rng(0),
        max_chunk_bytes=2**40,  # one chunk: explore returns it without concatenating
    )
    start = time.perf_counter()
    candidates = explorer.explore(context)
    return candidates, time.perf_counter() - start


def fresh_noise(rate: float) -> Any:
    """The published code's per-pass hook noise: fresh Bernoulli keep/(1−p) per element."""

    def noise(_position: int, out: torch.Tensor) -> torch.Tensor:
        if rate == 0.0:
            return torch.ones(())
        return (torch.rand(out.shape) >= rate).float() / (1.0 - rate)

    return noise


def time_baseline(
    module: nn.Module,
    Xt: torch.Tensor,
    units: list[int],
    seeds: np.ndarray,
    semantics: str,
    draws: list[tuple[int, int]],
    probs: dict[tuple[int, int], np.ndarray],
) -> tuple[float, float]:
    """One hooked forward pass for every draw ``(rate index, draw)``; its probabilities go to
    ``probs``. Returns the wall-clock and CPU time."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i, j in draws:
        rate = float(RATES[i])
        if semantics == "per-member":
            logits = hooked_forward(
                module, Xt, member_masks(int(seeds[i, j]), units, "bernoulli", rate)
            )
        else:
            logits = hooked_forward(module, Xt, fresh_noise(rate))
        probs[(i, j)] = softmax(logits)
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=100, help="draws per rate")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=1000)
    parser.add_argument(
        "--baseline-members", type=int, default=5, help="draws per rate timed for the baseline"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--semantics", nargs="+", default=["per-member", "per-pass"], help="which to run"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(args.rows, args.features))
    model = surrogate(args.features, args.hidden, seed=0)
    module = model.module_
    units = layer_units(perturbed_modules(module))
    Xt = torch.from_numpy(X.astype(np.float32))
    n_members = len(RATES) * args.members
    sub = min(args.baseline_members, args.members)
    print(
        f"MLP {args.features} -> {args.hidden} -> 2, {args.rows} rows, {len(RATES)} rates x "
        f"{args.members} members = {n_members} (+ the reference), torch threads "
        f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"baseline: one hooked forward pass per member, timed on {sub} members per rate "
        f"({sub * len(RATES)} passes) and scaled per member to {n_members + 1} passes"
    )
    table = []
    for semantics in args.semantics:
        # The baseline is timed in two halves, before and after the explorer, so a change of
        # the machine's load during the run weighs on both alike.
        draws = [(i, j) for j in range(sub) for i in range(len(RATES))]
        seeds = DropoutExplorer(rates=list(RATES), members_per_rate=args.members).member_seeds(
            np.random.default_rng(0)
        )
        baseline_probs: dict[tuple[int, int], np.ndarray] = {}

        first = time_baseline(
            module, Xt, units, seeds, semantics, draws[: len(draws) // 2], baseline_probs
        )
        cpu = time.process_time()
        candidates, ours = explore(model, X, semantics, args.members)
        ours_cpu = time.process_time() - cpu
        second = time_baseline(
            module, Xt, units, seeds, semantics, draws[len(draws) // 2 :], baseline_probs
        )
        scale = (n_members + 1) / len(draws)
        base_wall, base_cpu = (first[0] + second[0]) * scale, (first[1] + second[1]) * scale
        P = candidates.output("evaluation")
        if semantics == "per-member":
            worst = max(
                float(np.abs(probs - P[1 + i * args.members + j]).max())
                for (i, j), probs in baseline_probs.items()
            )
            difference = f"{worst:.1e}"
        else:
            gaps, errors = [np.nan], [np.nan]  # rate 0: the reference, no spread
            for i in range(1, len(RATES)):
                members = P[1 + i * args.members : 1 + (i + 1) * args.members, :, 1].mean(axis=1)
                theirs = np.array([baseline_probs[(i, j)][:, 1].mean() for j in range(sub)])
                gaps.append(abs(members.mean() - theirs.mean()))
                # the spread of a pass's mean, from the explorer's many passes (same law)
                errors.append(np.sqrt(members.var(ddof=1) * (1 / len(members) + 1 / sub)))
            ratios = np.asarray(gaps) / np.asarray(errors)
            k = int(np.nanargmax(ratios))
            # The explorer's own noise through hooked passes: equal up to float rounding.
            exact = 0.0
            for i in (1, len(RATES) - 1):
                shapes = [(args.rows, u) for u in units]
                noise = pass_noise(int(seeds[i, 0]), shapes, "bernoulli", float(RATES[i]))
                probs = softmax(hooked_forward(module, Xt, noise))
                exact = max(exact, float(np.abs(probs - P[1 + i * args.members]).max()))
            difference = (
                f"mean P(class 1): {gaps[k]:.1e} at rate {RATES[k]:.2f} ({ratios[k]:.1f} s.e., the "
                f"most of {len(RATES) - 1} rates); same noise: {exact:.1e}"
            )
        table.append((semantics, ours, ours_cpu, base_wall, base_cpu, difference))
        print(
            f"{semantics}: ours {ours:.2f} s (CPU {ours_cpu:.2f} s), baseline {base_wall:.1f} s "
            f"(CPU {base_cpu:.1f} s); load average {os.getloadavg()[0]:.2f}",
            flush=True,
        )
    print()
    print(
        "| semantics | ours (s) | baseline (s) | speed-up | CPU-time speed-up | largest difference |"
    )
    print("|---|---:|---:|---:|---:|---|")
    for semantics, ours, ours_cpu, base_wall, base_cpu, difference in table:
        print(
            f"| {semantics} | {ours:.2f} | {base_wall:.1f} | {base_wall / ours:.0f}x | "
            f"{base_cpu / ours_cpu:.0f}x | {difference} |"
        )


if __name__ == "__main__":
    main()
