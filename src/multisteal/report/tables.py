"""Reading result tables and condensing them into the summary's tables."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["fairness_columns", "fairness_table", "fidelity_table", "read_run"]

_FAIRNESS = re.compile(r"^(?P<metric>[a-z_]+)\[(?P<attribute>[^\]]+)\]_target$")


def read_run(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``results`` and ``members`` tables of a run directory."""
    path = Path(folder)
    return pd.read_csv(path / "results.csv"), pd.read_csv(path / "members.csv")


def fairness_columns(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The (metric, attribute) pairs that the results carry, in column order."""
    pairs = []
    for column in results.columns:
        match = _FAIRNESS.match(str(column))
        if match:
            pairs.append((match["metric"], match["attribute"]))
    return pairs


def fidelity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Fidelity next to multiplicity: one row per budget × ε."""
    vs_target = results[results["reference"] == "target"].set_index(["budget", "epsilon"])
    vs_surrogate = results[results["reference"] == "surrogate"].set_index(["budget", "epsilon"])
    table = pd.DataFrame(
        {
            "set size": vs_target["set_size"],
            "target acc.": vs_target["target_accuracy"],
            "surrogate acc.": vs_target["surrogate_accuracy"],
            "fidelity (agreement)": vs_target["surrogate_agreement"],
            "set fidelity min": vs_target["set_agreement_min"],
            "set fidelity max": vs_target["set_agreement_max"],
            "ambiguity vs target": vs_target["ambiguity"],
            "discrepancy vs target": vs_target["discrepancy"],
            "ambiguity vs surrogate": vs_surrogate["ambiguity"],
            "mean RC": vs_target.get("rashomon_capacity_mean", np.nan),
            "share RC>1.01": vs_target.get("rashomon_capacity_frac_above", np.nan),
        }
    )
    return table.reset_index()


def fairness_table(results: pd.DataFrame, *, budget: int, epsilon: float) -> pd.DataFrame:
    """Group fairness of the target, the surrogate and across the set, at one budget and ε."""
    row = results[
        (results["reference"] == "target")
        & (results["budget"] == budget)
        & np.isclose(results["epsilon"], epsilon)
    ].iloc[0]
    records = []
    for metric, attribute in fairness_columns(results):
        prefix = f"{metric}[{attribute}]"
        records.append(
            {
                "metric": metric,
                "attribute": attribute,
                "target": row[f"{prefix}_target"],
                "surrogate": row[f"{prefix}_surrogate"],
                "set min": row[f"{prefix}_min"],
                "set max": row[f"{prefix}_max"],
                "set range": row[f"{prefix}_range"],
                "largest gap to target": row[f"{prefix}_max_gap"],
            }
        )
    return pd.DataFrame(records)
