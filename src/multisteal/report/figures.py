"""Figures of a run (matplotlib, imported lazily, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multisteal.report.tables import RunTables, fairness_columns, seed_interval

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


def _mean_ci(frame: pd.DataFrame, column: str, by: str = "budget") -> pd.DataFrame:
    """Mean and 95 % interval of ``column`` over seeds, per ``by`` value (sorted)."""
    records = []
    for key, part in frame.groupby(by, sort=True):
        stats = seed_interval(part.groupby("seed")[column].first())
        records.append({by: key, **stats})
    out = pd.DataFrame(records)
    # With one seed there is no interval: the band collapses onto the mean.
    out["low"] = out["low"].fillna(out["mean"])
    out["high"] = out["high"].fillna(out["mean"])
    return out


def _errorbar(ax: Any, stats: pd.DataFrame, x: str, fmt: str, **kwargs: Any) -> None:
    ax.errorbar(
        stats[x],
        stats["mean"],
        yerr=[stats["mean"] - stats["low"], stats["high"] - stats["mean"]],
        fmt=fmt,
        capsize=3,
        **kwargs,
    )


def plot_fidelity_vs_budget(results: pd.DataFrame, path: Path) -> Path:
    """Surrogate fidelity and accuracy (mean and 95 % interval over seeds) against budget,
    with the set's fidelity range per ε (mean over seeds of its min and max)."""
    plt = _pyplot()
    rows = results[results["reference"] == "target"].sort_values("budget")
    first = rows[np.isclose(rows["epsilon"], rows["epsilon"].min())]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    _errorbar(
        ax,
        _mean_ci(first, "surrogate_agreement"),
        "budget",
        "o-",
        color="black",
        label="surrogate fidelity",
    )
    _errorbar(
        ax,
        _mean_ci(first, "surrogate_accuracy"),
        "budget",
        "s--",
        color="tab:blue",
        label="surrogate accuracy",
    )
    target = _mean_ci(first, "target_accuracy")
    ax.plot(target["budget"], target["mean"], ":", color="tab:red", label="target accuracy")
    for eps, group in rows.groupby("epsilon"):
        low = _mean_ci(group, "set_agreement_min")
        high = _mean_ci(group, "set_agreement_max")
        ax.fill_between(
            low["budget"],
            low["mean"],
            high["mean"],
            alpha=0.18,
            label=f"set fidelity range, ε={eps:g}",
        )
    _budget_axis(ax, first["budget"])
    ax.set_ylabel("agreement with target / accuracy")
    ax.set_title(f"Fidelity against budget ({rows['seed'].nunique()} seeds, 95 % intervals)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_ambiguity_vs_budget(
    results: pd.DataFrame, path: Path, baselines: pd.DataFrame | None = None
) -> Path:
    """Ambiguity against the target (and its excess over the surrogate's infidelity), against
    the surrogate, and the share with RC > 1.01 — mean and 95 % interval over seeds — with the
    explorer floor and the target-retrain baseline as horizontal bands."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.9))
    panels = [
        ("target", "excess_ambiguity", "excess ambiguity vs target"),
        ("surrogate", "ambiguity", "ambiguity vs surrogate"),
        ("target", "rashomon_capacity_frac_above", "share of samples with RC > 1.01"),
    ]
    base = baselines if baselines is not None else pd.DataFrame()
    for ax, (reference, column, title) in zip(axes, panels, strict=True):
        rows = results[results["reference"] == reference]
        for eps, group in rows.groupby("epsilon"):
            _errorbar(ax, _mean_ci(group, column), "budget", "o-", label=f"ε={eps:g}")
        if not base.empty and column in base:
            top = float(rows["epsilon"].max())
            for name, colour in (("explorer_floor", "tab:gray"), ("target_retrain", "tab:red")):
                part = base[(base["baseline"] == name) & (base["reference"] == reference)]
                if name == "explorer_floor":
                    part = part[np.isclose(part["epsilon"], top)]
                if part.empty:
                    continue
                stats = seed_interval(part.groupby("seed")[column].first())
                low = stats["low"] if np.isfinite(stats["low"]) else stats["mean"]
                high = stats["high"] if np.isfinite(stats["high"]) else stats["mean"]
                ax.axhspan(low, high, color=colour, alpha=0.15)
                ax.axhline(
                    stats["mean"],
                    color=colour,
                    ls="--",
                    lw=1,
                    label=name.replace("_", " ")
                    + (f" (ε={top:g})" if name == "explorer_floor" else ""),
                )
        _budget_axis(ax, rows["budget"])
        ax.set_ylim(bottom=0)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_member_fairness(
    results: pd.DataFrame,
    members: pd.DataFrame,
    path: Path,
    *,
    budget: int,
    epsilon: float,
    baselines: pd.DataFrame | None = None,
) -> Path:
    """Each Rashomon member's fairness (first seed) next to the target's with its bootstrap
    interval, the surrogate's, and the explorer floor's range at the same ε."""
    plt = _pyplot()
    pairs = [(m, a) for m, a in fairness_columns(results) if m != "group_accuracy"]
    seed = int(results["seed"].min())
    row = results[
        (results["reference"] == "target")
        & (results["seed"] == seed)
        & (results["budget"] == budget)
        & np.isclose(results["epsilon"], epsilon)
    ].iloc[0]
    chosen = members[
        (members["seed"] == seed)
        & (members["budget"] == budget)
        & np.isclose(members["epsilon"], epsilon)
    ]
    floor = pd.DataFrame()
    if baselines is not None and not baselines.empty:
        floor = baselines[
            (baselines["baseline"] == "explorer_floor")
            & (baselines["reference"] == "target")
            & (baselines["seed"] == seed)
            & np.isclose(baselines["epsilon"], epsilon)
        ]
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(pairs)), 4.4))
    rng = np.random.default_rng(0)
    for i, (metric, attribute) in enumerate(pairs):
        column = f"{metric}[{attribute}]"
        values = chosen[column].to_numpy(dtype=float)
        low, high = row.get(f"{column}_target_boot_low"), row.get(f"{column}_target_boot_high")
        if low is not None and high is not None and np.isfinite([low, high]).all():
            ax.add_patch(
                plt.Rectangle(
                    (i - 0.32, low),
                    0.64,
                    high - low,
                    color="tab:red",
                    alpha=0.12,
                    label="target, 95 % bootstrap" if i == 0 else None,
                )
            )
        if not floor.empty and f"{column}_min" in floor:
            ax.vlines(
                i + 0.4,
                floor[f"{column}_min"].iloc[0],
                floor[f"{column}_max"].iloc[0],
                color="tab:gray",
                lw=3,
                label="explorer floor range" if i == 0 else None,
            )
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
            [row[f"{column}_reference"]],
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
        f"Fairness across the Rashomon set (seed {seed}, budget {budget}, ε={epsilon:g}, "
        f"n={len(chosen)})"
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_convergence(
    convergence: pd.DataFrame,
    path: Path,
    *,
    budget: int,
    epsilon: float,
    metrics_shown: tuple[tuple[str, str], ...] = (
        ("ambiguity[target]", "ambiguity vs target"),
        ("rashomon_capacity_mean", "mean Rashomon Capacity"),
        ("disagreement_mean", "mean disagreement"),
    ),
) -> Path | None:
    """Each headline metric against the number of members (random subsets of the stolen set
    at ``budget`` and ``epsilon``): one line per seed, its 95 % band over member orders."""
    frame = convergence[
        (convergence["set"] == "stolen")
        & (convergence["budget"] == budget)
        & np.isclose(convergence["epsilon"].astype(float), epsilon)
    ]
    shown = [(m, label) for m, label in metrics_shown if (frame["metric"] == m).any()]
    if not shown:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 3.4), squeeze=False)
    for ax, (metric, label) in zip(axes[0], shown, strict=True):
        part = frame[frame["metric"] == metric]
        for seed, curve in part.groupby("seed"):
            curve = curve.sort_values("size")
            ax.plot(curve["size"], curve["value"], marker="o", ms=3, label=f"seed {seed}")
            ax.fill_between(curve["size"], curve["low"], curve["high"], alpha=0.15)
        ax.set_xscale("log")
        ax.set_xlabel("members in the subset")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"Convergence in the number of members (budget {budget}, ε = {epsilon:g})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_figures(tables: RunTables, folder: Path) -> list[Path]:
    """All standard figures of a run into ``folder``."""
    results, members = tables.results, tables.members
    folder.mkdir(parents=True, exist_ok=True)
    budget = int(results["budget"].max())
    epsilon = float(results["epsilon"].max())
    written = [
        plot_fidelity_vs_budget(results, folder / "fidelity_vs_budget.png"),
        plot_ambiguity_vs_budget(results, folder / "ambiguity_vs_budget.png", tables.baselines),
    ]
    has_fairness = any(
        m != "group_accuracy" and f"{m}[{a}]" in members for m, a in fairness_columns(results)
    )
    # No scatter without a member table (a run restored by hand), without sensitive attributes,
    # or for per-sample channels (AWP), whose rows are no single model with a fairness.
    if not members.empty and has_fairness:
        written.append(
            plot_member_fairness(
                results,
                members,
                folder / "fairness_members.png",
                budget=budget,
                epsilon=epsilon,
                baselines=tables.baselines,
            )
        )
    if not tables.convergence.empty and "set" in tables.convergence:
        figure = plot_convergence(
            tables.convergence, folder / "convergence.png", budget=budget, epsilon=epsilon
        )
        if figure is not None:
            written.append(figure)
    return written
