"""Peak memory and time of the multiplicity metrics for M members × N samples: streaming over
member chunks (``StreamingMultiplicity``) against the in-memory metrics on the full array.

Each side runs in its own process, so its peak resident memory (``ru_maxrss``) is its own. The
members are generated chunk by chunk from a seed (softmax of a shared logit per sample plus
member noise), so both sides see identical members without either holding them twice.

    python benchmarks/bench_streaming.py                       # M = N = 10,000, C = 2
    python benchmarks/bench_streaming.py --members 2000 --samples 5000 --skip-in-memory
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from collections.abc import Iterator

import numpy as np


def member_chunks(
    members: int, samples: int, classes: int, chunk: int, seed: int
) -> Iterator[np.ndarray]:
    """Deterministic chunks of member probabilities, shape (≤ chunk, samples, classes)."""
    base = np.random.default_rng(seed).normal(size=(samples, classes)) * 2.0
    for start in range(0, members, chunk):
        size = min(chunk, members - start)
        rng = np.random.default_rng([seed, start])
        logits = base[np.newaxis] + 0.5 * rng.normal(size=(size, samples, classes))
        logits -= logits.max(axis=2, keepdims=True)
        P = np.exp(logits)
        P /= P.sum(axis=2, keepdims=True)
        yield P


def labels_and_references(samples: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([seed, 10**9])
    return rng.integers(0, classes, size=samples), rng.integers(0, classes, size=samples)


def run_streaming(args: argparse.Namespace) -> dict[str, object]:
    from multisteal.metrics.streaming import StreamingMultiplicity

    y, t = labels_and_references(args.samples, args.classes, args.seed)
    started = time.perf_counter()
    acc = StreamingMultiplicity(
        labels=y,
        references={"target": t},
        n_classes=args.classes,
        capacity="exact",
        n_orders=args.orders,
        rng=np.random.default_rng(0),
    )
    for P in member_chunks(args.members, args.samples, args.classes, args.chunk, args.seed):
        acc.update(P)
    per_sample = acc.per_sample()
    scalars = acc.scalars()
    curves = acc.convergence()
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "curve_rows": len(curves),
        **{k: float(v) for k, v in scalars.items()},
        **{f"{k}_mean": float(np.mean(v)) for k, v in per_sample.items()},
        "arrays": {k: v.tolist() for k, v in per_sample.items()} if args.dump else {},
    }


def run_in_memory(args: argparse.Namespace) -> dict[str, object]:
    from multisteal import metrics

    y, t = labels_and_references(args.samples, args.classes, args.seed)
    started = time.perf_counter()
    P = np.concatenate(
        list(member_chunks(args.members, args.samples, args.classes, args.chunk, args.seed))
    )
    d = metrics.decisions(P)
    per_sample = {
        "ambiguous_vs_target": metrics.ambiguous_samples(d, t),
        "disagreement": metrics.disagreement(d, n_classes=args.classes),
        "viable_prediction_range": metrics.viable_prediction_range(P, y),
        "score_variance": metrics.score_variance(P, y),
        "rashomon_capacity": metrics.rashomon_capacity(P, method="exact"),
    }
    scalars = {
        "ambiguity[target]": metrics.ambiguity(d, t),
        "discrepancy[target]": metrics.discrepancy(d, t),
    }
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        **{k: float(v) for k, v in scalars.items()},
        **{f"{k}_mean": float(np.mean(v)) for k, v in per_sample.items()},
    }


def child(args: argparse.Namespace) -> None:
    out = run_streaming(args) if args.child == "streaming" else run_in_memory(args)
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


def measure(side: str, argv: list[str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, __file__, *argv, "--child", side],
        check=True,
        capture_output=True,
        text=True,
    )
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--classes", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=256, help="members per chunk")
    parser.add_argument("--orders", type=int, default=20, help="convergence orders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-in-memory", action="store_true")
    parser.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=["streaming", "in-memory"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    argv = [
        f"--members={args.members}",
        f"--samples={args.samples}",
        f"--classes={args.classes}",
        f"--chunk={args.chunk}",
        f"--orders={args.orders}",
        f"--seed={args.seed}",
    ]
    full_gb = args.members * args.samples * args.classes * 8 / 2**30
    print(
        f"M = {args.members:,} members × N = {args.samples:,} samples × C = {args.classes}: "
        f"the full probability array alone is {full_gb:.2f} GB"
    )
    ours = measure("streaming", argv)
    rows = [("streaming (exact RC, convergence curves)", ours)]
    base: dict[str, float] | None = None
    if not args.skip_in_memory:
        base = measure("in-memory", argv)
        rows.append(("in-memory metrics on the full array (no curves)", base))
    print()
    print("| method | seconds | peak RSS (GB) |")
    print("|---|---|---|")
    for name, row in rows:
        print(f"| {name} | {row['seconds']:.1f} | {row['peak_rss_gb']:.2f} |")
    if base is not None:
        keys = [k for k in base if k not in ("seconds", "peak_rss_gb")]
        diff = max(abs(float(ours[k]) - float(base[k])) for k in keys)
        print()
        print(
            f"memory ratio in-memory / streaming: {base['peak_rss_gb'] / ours['peak_rss_gb']:.1f}×; "
            f"time ratio in-memory / streaming: {base['seconds'] / ours['seconds']:.2f}× "
            f"(streaming also computes {args.orders} orders of convergence curves); "
            f"largest difference of the metrics: {diff:.2e}"
        )
    print(f"streaming peak under 2 GB: {'yes' if ours['peak_rss_gb'] < 2 else 'NO'}")


if __name__ == "__main__":
    main()
