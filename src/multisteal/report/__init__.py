"""Reports: tables, figures and the run summary, built from result tables only."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from multisteal.report.figures import (
    plot_ambiguity_vs_budget,
    plot_fidelity_vs_budget,
    plot_member_fairness,
    write_figures,
)
from multisteal.report.summary import render_summary
from multisteal.report.tables import (
    RunTables,
    aggregate,
    fairness_table,
    fidelity_table,
    read_run,
)

__all__ = [
    "RunTables",
    "aggregate",
    "fairness_table",
    "fidelity_table",
    "plot_ambiguity_vs_budget",
    "plot_fidelity_vs_budget",
    "plot_member_fairness",
    "read_run",
    "render_summary",
    "write_figures",
    "write_report",
]


def write_report(folder: str | Path, *, partial: str | None = None) -> list[Path]:
    """Write ``summary.md``, ``aggregate.csv`` (every number as mean and 95 % interval over
    seeds, for the stolen sets and the baselines) and ``figures/*.png`` from a run's tables.

    ``partial``, when given, opens the summary: a run that stopped early says so and what is
    missing.
    """
    path = Path(folder)
    tables = read_run(path)
    stolen = aggregate(tables.results).assign(kind="stolen")
    parts = [stolen]
    if not tables.baselines.empty:
        base = aggregate(tables.baselines, by=("baseline", "epsilon", "reference"))
        parts.append(base.assign(kind="baseline"))
    pd.concat(parts, ignore_index=True).to_csv(path / "aggregate.csv", index=False)
    text = render_summary(tables)
    if partial is not None:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{partial}\n{rest}"
    (path / "summary.md").write_text(text)
    return [path / "summary.md", path / "aggregate.csv", *write_figures(tables, path / "figures")]
