"""Test accuracy and fit time of the default CNN (``TorchCNNClassifier``) on two MedMNIST sets.

Run with ``python benchmarks/bench_cnn.py [--seeds 0 1 2] [--epochs N --lr X ...]`` (not part of
the tests). For BreastMNIST and PneumoniaMNIST (28x28 grey images, binary labels) it trains on
the official train split and on a seeded half of it, keeps the epoch with the lowest loss on
the official validation split, and prints the test accuracy (and the majority-class rate), the
kept epoch (1-based, of the epochs trained) and the fit time on
two CPU threads (wall clock, and the CPU time of all threads; the load average printed before
and after tells whether other work shared the machine). Images are scaled to [0, 1] and standardised with the training split's mean
and standard deviation.

For scale: MedMNIST v2's ResNet-18 (28x28) reaches about 0.863 (BreastMNIST) and 0.854
(PneumoniaMNIST) test accuracy.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multisteal.models.cnn import TorchCNNClassifier

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
NAMES = ("breastmnist", "pneumoniamnist")


def load(name: str, root: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Splits of one MedMNIST set as (images (n, 1, 28, 28) standardised, labels (n,))."""
    data = np.load(root / name / f"{name}.npz")
    train = data["train_images"].astype(np.float64) / 255.0
    mean, std = train.mean(), train.std()
    splits = {}
    for split in ("train", "val", "test"):
        images = (data[f"{split}_images"].astype(np.float64) / 255.0 - mean) / std
        labels = data[f"{split}_labels"].reshape(-1).astype(np.int64)
        splits[split] = (images[:, None].astype(np.float32), labels)
    return splits


def run(
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    fraction: float,
    seed: int,
    params: dict[str, Any],
) -> dict[str, float]:
    X, y = splits["train"]
    if fraction < 1.0:
        keep = np.random.default_rng(seed).permutation(len(y))[: round(fraction * len(y))]
        X, y = X[np.sort(keep)], y[np.sort(keep)]
    X_val, y_val = splits["val"]
    X_test, y_test = splits["test"]
    model = TorchCNNClassifier(random_state=seed, **params)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(X, y, X_val=X_val, y_val=y_val)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "n_train": float(len(y)),
        "accuracy": float((model.predict(X_test) == y_test).mean()),
        "majority": float(max(np.mean(y_test), 1 - np.mean(y_test))),
        "best_epoch": float(model.best_epoch_),
        "epochs": float(len(model.loss_curve_)),
        "seconds": seconds,
        "cpu_seconds": cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=DATASETS)
    parser.add_argument("--datasets", nargs="+", default=list(NAMES), choices=NAMES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--fractions", nargs="+", type=float, default=[1.0, 0.5])
    parser.add_argument("--threads", type=int, default=2)
    for name in ("epochs", "batch_size", "min_steps"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int)
    for name in ("lr", "weight_decay"):
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=float)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keys = ("epochs", "batch_size", "min_steps", "lr", "weight_decay")
    params = {k: getattr(args, k) for k in keys if getattr(args, k) is not None}
    defaults = TorchCNNClassifier().get_params()
    print(f"TorchCNNClassifier { ({**defaults, **params}) } on {args.threads} threads")
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    header = ("dataset", "train", "seed", "acc", "major", "epoch", "wall s", "cpu s")
    print("{:<16}{:>7}{:>6}{:>8}{:>8}{:>8}{:>8}{:>8}".format(*header))
    for name in args.datasets:
        splits = load(name, args.root)
        for fraction in args.fractions:
            rows = []
            for seed in args.seeds:
                row = run(splits, fraction=fraction, seed=seed, params=params)
                rows.append(row)
                epoch = f"{row['best_epoch'] + 1:.0f}/{row['epochs']:.0f}"
                print(
                    f"{name:<16}{row['n_train']:>7.0f}{seed:>6}{row['accuracy']:>8.3f}"
                    f"{row['majority']:>8.3f}{epoch:>8}{row['seconds']:>8.1f}"
                    f"{row['cpu_seconds']:>8.1f}",
                    flush=True,
                )
            acc = np.array([r["accuracy"] for r in rows])
            wall = np.array([r["seconds"] for r in rows])
            print(
                f"{name:<16}{rows[0]['n_train']:>7.0f}{'mean':>6}{acc.mean():>8.3f}"
                f"  (sd {acc.std():.3f} over {len(rows)} seeds), fit {wall.mean():.1f} s wall, "
                f"median {np.median(wall):.1f} s",
                flush=True,
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
