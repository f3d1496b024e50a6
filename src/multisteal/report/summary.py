"""The run's ``summary.md``: fidelity next to multiplicity, fairness next to the target's."""

from __future__ import annotations

import numpy as np
import pandas as pd

from multisteal.report.tables import fairness_table, fidelity_table

__all__ = ["render_summary"]


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def _markdown(frame: pd.DataFrame) -> str:
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _semantics_note(first: pd.Series) -> list[str]:
    if first.get("explorer_dropout_semantics") != "per-pass":
        return []
    return [
        "",
        "Dropout used **per-pass** semantics: each member is one stochastic forward pass over "
        "the data (fresh noise per element), not a fixed model, so member-level fairness is that "
        "of a pass. Use `per-member` for members that are well-defined models.",
    ]


def _excluded_note(results: pd.DataFrame) -> list[str]:
    if "fairness_excluded_groups" not in results:
        return []
    excluded = results["fairness_excluded_groups"].iloc[0]
    if not isinstance(excluded, str) or excluded in ("", "none"):
        return []
    size = int(results["min_group_size"].iloc[0])
    return [
        "",
        f"Between-group differences leave out groups with fewer than {size} evaluation rows "
        f"(their per-group accuracy is still listed): {excluded}.",
    ]


def _resolution_note(results: pd.DataFrame) -> list[str]:
    if results["criterion"].iloc[0] != "transcript" or "holdout_size" not in results:
        return []
    sizes = sorted({int(s) for s in results["holdout_size"]})
    steps = ", ".join(f"1/{s} = {1 / s:.4f}" for s in sizes if s > 0)
    return [
        "",
        f"The `transcript` criterion is measured on the attacker's held-out rows ({', '.join(map(str, sizes))} "
        f"per budget), so losses move in steps of {steps}: an ε below one step keeps only members "
        "that tie with the surrogate on the held-out slice.",
    ]


def render_summary(results: pd.DataFrame) -> str:
    """Markdown text summarising a run's results table."""
    first = results.iloc[0]
    budget = int(results["budget"].max())
    epsilon = float(results["epsilon"].max())
    fid = fidelity_table(results)
    fair = fairness_table(results, budget=budget, epsilon=epsilon)
    top = fid[(fid["budget"] == budget) & np.isclose(fid["epsilon"], epsilon)].iloc[0]
    lines = [
        f"# multisteal audit: {first['dataset']}",
        "",
        f"Target `{first['target']}` stolen with the `{first['attack']}` attack through an API "
        f"answering `{first['output']}`; surrogate `{first['surrogate']}`; Rashomon set from the "
        f"`{first['explorer']}` explorer ({int(first['n_candidates'])} candidates per budget), "
        f"filtered with the `{first['criterion']}` criterion.",
        *_semantics_note(first),
        "",
        "## Fidelity versus multiplicity",
        "",
        _markdown(fid),
        "",
        "*Fidelity* is the reference surrogate's label agreement with the target on the evaluation "
        "set. *Ambiguity* is the share of evaluation individuals for whom at least one member of "
        "the ε-Rashomon set decides differently from the reference (target or surrogate); "
        "*discrepancy* is the largest disagreement of a single member. *RC* is the Rashomon "
        "Capacity per individual, in [1, C].",
        *_resolution_note(results),
        "",
        f"## Group fairness across the set (budget {budget}, ε = {epsilon:g})",
        "",
        _markdown(fair),
        *_excluded_note(results),
        "",
        "## What this means",
        "",
    ]
    spread = float(top["set fidelity max"] - top["set fidelity min"])
    lines.append(
        f"At the largest budget ({budget} queries) the stolen surrogate agrees with the target on "
        f"{top['fidelity (agreement)']:.1%} of evaluation rows. Its ε = {epsilon:g} Rashomon set has "
        f"{int(top['set size'])} members whose fidelity spans only {spread:.1%} "
        f"({top['set fidelity min']:.1%} to {top['set fidelity max']:.1%}), yet "
        f"{top['ambiguity vs target']:.1%} of individuals receive a different decision from the "
        f"target under at least one member."
    )
    gaps = fair[fair["metric"] != "group_accuracy"]
    if not gaps.empty:
        widest = gaps.iloc[int(np.nanargmax(gaps["set range"].to_numpy(dtype=float)))]
        lines.append("")
        lines.append(
            f"Fairness is less determined than fidelity: the {widest['metric'].replace('_', ' ')} "
            f"for `{widest['attribute']}` ranges from {widest['set min']:.3f} to "
            f"{widest['set max']:.3f} across equally faithful surrogates (target: "
            f"{widest['target']:.3f}, largest gap {widest['largest gap to target']:.3f}). "
            "A high-fidelity copy is therefore not evidence that the copy is as fair as the target."
        )
    lines.append("")
    return "\n".join(lines)
