"""Reports: tables, figures and the run summary, built from result tables only."""

from __future__ import annotations

from pathlib import Path

from multisteal.report.figures import (
    plot_ambiguity_vs_budget,
    plot_fidelity_vs_budget,
    plot_member_fairness,
    write_figures,
)
from multisteal.report.summary import render_summary
from multisteal.report.tables import fairness_table, fidelity_table, read_run

__all__ = [
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


def write_report(folder: str | Path) -> list[Path]:
    """Write ``summary.md`` and ``figures/*.png`` into a run directory from its tables."""
    path = Path(folder)
    results, members = read_run(path)
    (path / "summary.md").write_text(render_summary(results))
    return [path / "summary.md", *write_figures(results, members, path / "figures")]
