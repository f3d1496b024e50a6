"""Every attack at two budgets and every defence at one budget, side by side, on Adult.

Run with ``python benchmarks/attack_suite.py [--seeds 0 1 2] [--budgets 250 1000]
[--defence-budget 1000] [--workers 2] [--out runs/attack-suite]`` (not part of the tests; about
30-40 minutes on 2 cores with the defaults). Each setting is a full audit (``run_audit``) with
the same data split, target, surrogate, explorer and ε for every seed; each run directory is
written under ``--out`` so every number can be traced to its tables.

For each attack × budget it prints, as mean [95 % t-interval over seeds]: the queries the attack
actually used, fidelity (the reference surrogate's label agreement with the target on the
evaluation rows), the distinct ε-Rashomon set size, the excess ambiguity over the reference
surrogate's infidelity, the mean Rashomon Capacity, and the demographic-parity range across
the set (by sex). For each defence it prints the same at one budget (the ``pool`` attack) with
the cost to honest users: the target's accuracy, ECE and top-1 agreement *as answered*. With
``--detect`` it also prints after how many inputs PRADA (not refusing) flagged each attack.
Intervals are clipped to each quantity's range for display (shares in [0, 1], RC >= 1).

The target is the Adult MLP for every attack except ``equation-solving`` (a logistic target:
the method assumes one) and ``path-finding`` (a depth-5 tree answering leaf ids).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd

from multisteal.experiments import load_config, run_audit
from multisteal.experiments.io import write_run
from multisteal.report.tables import format_interval, markdown_table, seed_interval

os.environ.setdefault("OMP_NUM_THREADS", "1")

BASE: dict[str, Any] = {
    "dataset": "adult",
    "target": "mlp",
    "surrogate": "mlp",
    "explorer": "dropout",
    "dropout": {"n_rates": 6, "members_per_rate": 5},
    "epsilons": [0.01],
    "baselines": {"target_members": 0, "explorer_floor": False},
    "fairness_bootstrap": 100,
    "threads": 1,
}

ATTACK_SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("pool", {"attack": "pool"}),
    ("synthetic", {"attack": "synthetic"}),
    ("marginals", {"attack": "marginals"}),
    ("equation-solving (logistic target)", {"attack": "equation-solving", "target": "logistic"}),
    (
        "path-finding (tree target, leaf ids)",
        {"attack": "path-finding", "target": "tree", "output": "leaf"},
    ),
    ("jacobian", {"attack": "jacobian"}),
    ("knockoff-random", {"attack": "knockoff-random"}),
    ("knockoff-adaptive", {"attack": "knockoff-adaptive"}),
    (
        "activethief uncertainty",
        {"attack": "activethief", "attack_params": {"strategy": "uncertainty"}},
    ),
    ("activethief margin", {"attack": "activethief", "attack_params": {"strategy": "margin"}}),
    ("activethief k-center", {"attack": "activethief", "attack_params": {"strategy": "k-center"}}),
    ("label-only-retraining", {"attack": "label-only-retraining", "output": "label"}),
]

DEFENCE_SETTINGS: list[tuple[str, list[str]]] = [
    ("none", []),
    ("rounding:decimals=1", ["rounding:decimals=1"]),
    ("top-k:k=1", ["top-k:k=1"]),
    ("label-only", ["label-only"]),
    ("gaussian-noise:sigma=0.1", ["gaussian-noise:sigma=0.1"]),
    ("reverse-sigmoid:beta=0.7", ["reverse-sigmoid:beta=0.7"]),
    ("high-confidence:cutoff=0.8", ["high-confidence:cutoff=0.8"]),
    ("mad:epsilon=0.5", ["mad:epsilon=0.5"]),
    ("mad:epsilon=0.5,keep_argmax=true", ["mad:epsilon=0.5,keep_argmax=true"]),
]

COLUMNS = {
    "queries used": ("queries_used", 0),
    "fidelity": ("surrogate_agreement", 3),
    "own reconstruction fidelity": ("recovered_agreement", 3),
    "distinct set size": ("set_size", 1),
    "excess ambiguity": ("excess_ambiguity", 3),
    "mean RC": ("rashomon_capacity_mean", 3),
    "DP range [sex]": ("demographic_parity_difference[sex]_range", 3),
}
HONEST = {
    "honest accuracy": ("honest_accuracy", 3),
    "honest ECE": ("honest_ece", 3),
    "honest top-1 agreement": ("honest_agreement", 3),
}


def _cell(part: pd.DataFrame, column: str, digits: int) -> str:
    if column not in part or part[column].isna().all():
        return "n/a"
    values = part.groupby("seed")[column].first()
    lower = 1.0 if column.startswith("rashomon_capacity") else 0.0
    upper = 1.0 if digits == 3 and not column.startswith("rashomon_capacity") else None
    return format_interval(seed_interval(values), digits=digits, lower=lower, upper=upper)


def _run(label: str, raw: dict[str, Any], out: Path) -> pd.DataFrame:
    started = time.perf_counter()
    config = load_config(raw)
    result = run_audit(config)
    write_run(result, out)
    print(f"  {label}: {time.perf_counter() - started:.0f} s", flush=True)
    return result.results.query("reference == 'target'").assign(setting=label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budgets", type=int, nargs="+", default=[250, 1000])
    parser.add_argument("--defence-budget", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--detect", action="store_true", help="run PRADA on every attack")
    parser.add_argument("--only", nargs="*", default=None, help="setting labels to run")
    parser.add_argument("--out", type=Path, default=Path("runs/attack-suite"))
    args = parser.parse_args()
    common = {**BASE, "seeds": args.seeds, "workers": args.workers}
    if args.detect:
        common["detect"] = "prada"

    rows = []
    print("Attacks:", flush=True)
    for label, overrides in ATTACK_SETTINGS:
        if args.only and label not in args.only:
            continue
        raw = {**common, **overrides, "budgets": args.budgets}
        slug = label.split(" ")[0] + ("-" + overrides.get("attack_params", {}).get("strategy", ""))
        frame = _run(label, raw, args.out / "attacks" / slug.rstrip("-"))
        for budget, part in frame.groupby("budget", sort=True):
            row = {"attack": label, "budget": int(budget)}
            row.update({name: _cell(part, c, d) for name, (c, d) in COLUMNS.items()})
            if args.detect:
                flagged = part.groupby("seed")["flagged_after"].first()
                row["PRADA flagged"] = f"{int(flagged.notna().sum())}/{len(flagged)}"
                row["flagged after"] = (
                    format_interval(seed_interval(flagged.dropna()), digits=0)
                    if flagged.notna().any()
                    else "never"
                )
            rows.append(row)
    if rows:
        print("\n" + markdown_table(pd.DataFrame(rows)))

    rows = []
    print("\nDefences (pool attack):", flush=True)
    for label, chain in DEFENCE_SETTINGS:
        if args.only and label not in args.only:
            continue
        raw = {**common, "attack": "pool", "defences": chain, "budgets": [args.defence_budget]}
        frame = _run(label, raw, args.out / "defences" / label.replace(":", "-"))
        row = {"defence": label}
        row.update({name: _cell(frame, c, d) for name, (c, d) in {**COLUMNS, **HONEST}.items()})
        rows.append(row)
    if rows:
        print("\n" + markdown_table(pd.DataFrame(rows)))
    print(f"\nseeds {args.seeds}; numbers are mean [95 % t-interval over seeds]; ε = 0.01.")


if __name__ == "__main__":
    main()
