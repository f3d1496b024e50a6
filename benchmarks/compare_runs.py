"""Compare audit runs: dropout layers (all vs hidden) and the ε-filter's criteria.

Usage::

    python benchmarks/compare_runs.py RUN_DIR [RUN_DIR ...]

Each run should include ε = 1 (every distinct candidate is then a member, so ``members.csv``
holds all of them with their losses under every transcript criterion). For every run and budget
it prints, as mean [95 % t-interval] over seeds:

* distinct set sizes at the run's other ε values;
* the candidates' spread of the held-out losses (std over all distinct candidates);
* how well each transcript criterion ranks candidates by what it should predict — Spearman's
  rank correlation, across all distinct candidates, between the criterion's loss and the
  candidate's disagreement with the target on the evaluation rows (higher is better);
* the share of candidates that tie with the reference under each criterion (its resolution);
* ambiguity against the target (and its excess) and the demographic-parity range with its
  positive-rate-matched control at the largest ε below 1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from multisteal.report.tables import format_interval, read_run, seed_interval


def _ci(values: list[float] | pd.Series) -> str:
    return format_interval(seed_interval(np.asarray(values, dtype=np.float64)))


def _spearman(x: pd.Series, y: pd.Series) -> float:
    if x.nunique() < 2 or y.nunique() < 2:
        return float("nan")
    return float(spearmanr(x, y).statistic)


def compare(folder: Path) -> list[dict[str, str]]:
    tables = read_run(folder)
    results, members = tables.results, tables.members
    name = folder.name
    rows = []
    epsilons = sorted(e for e in results["epsilon"].unique() if e < 1)
    top = max(epsilons)
    dp = [c for c in results.columns if c.startswith("demographic_parity_difference[")]
    dp_column = dp[0].split("]")[0] + "]" if dp else None
    attribute = dp_column.split("[")[1].rstrip("]") if dp_column else ""
    for budget, part in members[np.isclose(members["epsilon"], 1.0)].groupby("budget"):
        per_seed: dict[str, list[float]] = {}
        for _, every in part.groupby("seed"):
            infidelity = 1 - every["agreement"]
            ref = every[every["reference"]].iloc[0]
            for criterion in ("transcript", "transcript-loss"):
                loss = every[f"loss[{criterion}]"]
                per_seed.setdefault(f"rho {criterion}", []).append(_spearman(loss, infidelity))
                per_seed.setdefault(f"ties {criterion}", []).append(
                    float(np.mean(np.isclose(loss, ref[f"loss[{criterion}]"])))
                )
                per_seed.setdefault(f"std {criterion}", []).append(float(loss.std(ddof=0)))
            per_seed.setdefault("candidates", []).append(float(len(every)))
        res = results[(results["budget"] == budget) & (results["reference"] == "target")]
        row = {"run": name, "budget": str(int(budget))}
        row["distinct candidates"] = _ci(per_seed["candidates"])
        for eps in epsilons:
            row[f"set size ε={eps:g}"] = _ci(res[np.isclose(res["epsilon"], eps)]["set_size"])
        for key, values in per_seed.items():
            if key != "candidates":
                row[key] = _ci(values)
        at_top = res[np.isclose(res["epsilon"], top)]
        row[f"ambiguity vs target ε={top:g}"] = _ci(at_top["ambiguity"])
        row[f"excess ε={top:g}"] = _ci(at_top["excess_ambiguity"])
        if dp_column:
            row["DP attribute"] = attribute
            row[f"DP range ε={top:g}"] = _ci(at_top[f"{dp_column}_range"])
            row[f"DP rate-matched range ε={top:g}"] = _ci(at_top[f"{dp_column}_matched_range"])
        rows.append(row)
    return rows


def main(paths: list[str]) -> None:
    rows = [row for path in paths for row in compare(Path(path))]
    frame = pd.DataFrame(rows).fillna("")
    header = "| " + " | ".join(frame.columns) + " |"
    print(header)
    print("|" + "---|" * len(frame.columns))
    for record in frame.itertuples(index=False):
        print("| " + " | ".join(str(v) for v in record) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
