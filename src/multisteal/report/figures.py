"""Figures of a run (matplotlib, imported lazily, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multisteal.report.tables import fairness_columns

__all__ = [
    "plot_ambiguity_vs_budget",
    "plot_fidelity_vs_budget",
    "plot_member_fairness",
    "write_figures",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _budget_axis(ax: Any, budgets: pd.Series) -> None:
    ticks = sorted({int(b) for b in budgets})
    ax.set_xscale("log")
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("query budget (rows)")


def plot_fidelity_vs_budget(results: pd.DataFrame, path: Path) -> Path:
    """Surrogate fidelity (and the set's fidelity range per ε) against the query budget."""
    plt = _pyplot()
    rows = results[results["reference"] == "target"].sort_values("budget")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    first = rows.drop_duplicates("budget")
    ax.plot(
        first["budget"],
        first["surrogate_agreement"],
        "o-",
        color="black",
        label="surrogate fidelity",
    )
    ax.plot(
        first["budget"],
        first["surrogate_accuracy"],
        "s--",
        color="tab:blue",
        label="surrogate accuracy",
    )
    ax.plot(
        first["budget"], first["target_accuracy"], ":", color="tab:red", label="target accuracy"
    )
    for eps, group in rows.groupby("epsilon"):
        ax.fill_between(
            group["budget"],
            group["set_agreement_min"],
            group["set_agreement_max"],
            alpha=0.18,
            label=f"set fidelity range, ε={eps:g}",
        )
    _budget_axis(ax, first["budget"])
    ax.set_ylabel("agreement with target / accuracy")
    ax.set_title("Fidelity against budget")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ambiguity_vs_budget(results: pd.DataFrame, path: Path) -> Path:
    """Ambiguity against the target and against the surrogate, and the share with RC > 1.01."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    panels = [
        ("target", "ambiguity", "ambiguity vs target"),
        ("surrogate", "ambiguity", "ambiguity vs surrogate"),
        ("target", "rashomon_capacity_frac_above", "share of samples with RC > 1.01"),
    ]
    for ax, (reference, column, title) in zip(axes, panels, strict=True):
        rows = results[results["reference"] == reference]
        for eps, group in rows.groupby("epsilon"):
            group = group.sort_values("budget")
            ax.plot(group["budget"], group[column], "o-", label=f"ε={eps:g}")
        _budget_axis(ax, rows["budget"])
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_member_fairness(
    results: pd.DataFrame, members: pd.DataFrame, path: Path, *, budget: int, epsilon: float
) -> Path:
    """Each Rashomon member's fairness next to the target's and the surrogate's."""
    plt = _pyplot()
    pairs = [(m, a) for m, a in fairness_columns(results) if m != "group_accuracy"]
    row = results[
        (results["reference"] == "target")
        & (results["budget"] == budget)
        & np.isclose(results["epsilon"], epsilon)
    ].iloc[0]
    chosen = members[(members["budget"] == budget) & np.isclose(members["epsilon"], epsilon)]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(pairs)), 4.4))
    rng = np.random.default_rng(0)
    for i, (metric, attribute) in enumerate(pairs):
        column = f"{metric}[{attribute}]"
        values = chosen[column].to_numpy(dtype=float)
        ax.scatter(
            i + rng.uniform(-0.18, 0.18, size=values.size),
            values,
            s=9,
            alpha=0.5,
            color="tab:blue",
            label="Rashomon members" if i == 0 else None,
        )
        ax.hlines(
            row[f"{column}_target"],
            i - 0.32,
            i + 0.32,
            color="tab:red",
            lw=2.5,
            label="target" if i == 0 else None,
        )
        ax.scatter(
            [i],
            [row[f"{column}_surrogate"]],
            marker="D",
            color="black",
            s=30,
            zorder=3,
            label="stolen surrogate" if i == 0 else None,
        )
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels(
        [f"{m.replace('_difference', '').replace('_', ' ')}\n[{a}]" for m, a in pairs], fontsize=7
    )
    ax.set_ylabel("difference between groups")
    ax.set_title(
        f"Fairness across the Rashomon set (budget {budget}, ε={epsilon:g}, n={len(chosen)})"
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(results: pd.DataFrame, members: pd.DataFrame, folder: Path) -> list[Path]:
    """All standard figures of a run into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    budget = int(results["budget"].max())
    epsilon = float(results["epsilon"].max())
    return [
        plot_fidelity_vs_budget(results, folder / "fidelity_vs_budget.png"),
        plot_ambiguity_vs_budget(results, folder / "ambiguity_vs_budget.png"),
        plot_member_fairness(
            results, members, folder / "fairness_members.png", budget=budget, epsilon=epsilon
        ),
    ]
