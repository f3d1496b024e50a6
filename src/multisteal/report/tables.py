"""Reading result tables, aggregating them over seeds and condensing them for the summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from multisteal import metrics
from multisteal.errors import DataError
from multisteal.experiments import schema

__all__ = [
    "FAIRNESS_HEADLINE",
    "RunTables",
    "aggregate",
    "fairness_columns",
    "fairness_table",
    "fidelity_table",
    "format_interval",
    "markdown_table",
    "read_run",
    "seed_interval",
]

#: The between-group differences the summary tests for the paper's finding.
FAIRNESS_HEADLINE = (
    "demographic_parity_difference",
    "true_positive_rate_difference",
    "equalized_odds_difference",
)
SET_KEYS = schema.SET_KEYS
BASELINE_KEYS = ("baseline", "epsilon", "reference")


@dataclass(frozen=True)
class RunTables:
    """The tables of a run directory: ``results``, ``members`` and ``baselines``."""

    results: pd.DataFrame
    members: pd.DataFrame
    baselines: pd.DataFrame
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)


def _read(path: Path) -> pd.DataFrame:
    """An optional table of a run: empty when absent or written empty, refused when corrupt."""
    if not path.is_file():
        return pd.DataFrame()
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise DataError(NOT_TABLE.format(file=path, problem=problem)) from None
    missing = [c for c in REQUIRED.get(path.name, ()) if c not in frame.columns]
    if missing:
        problem = f"missing columns: {', '.join(missing)}"
        raise DataError(NOT_TABLE.format(file=path, problem=problem))
    return frame


#: Columns without which a results table is not a multisteal one.
REQUIRED_RESULTS = (
    "seed",
    "budget",
    "epsilon",
    "reference",
    "dataset",
    "target",
    "attack",
    "output",
    "surrogate",
    "explorer",
    "criterion",
    "positive_class",
    "n_candidates",
    "surrogate_agreement",
    "set_size",
)
REQUIRED = {
    "members.csv": ("seed", "budget", "epsilon"),
    "baselines.csv": ("seed", "baseline", "baseline_reference", "epsilon", "reference"),
    "convergence.csv": ("seed", "set", "budget", "epsilon", "metric", "fraction", "size", "value"),
}
NOT_TABLE = "{file} is not a multisteal table ({problem}); re-run the audit, or restore the file."
NOT_RESULTS = (
    "{file} is not a multisteal results table ({problem}); re-run the audit, or restore the file."
)


def read_run(folder: str | Path) -> RunTables:
    """The tables of a run directory (``baselines`` empty when the run has none).

    Raises ``DataError`` naming the file when ``results.csv`` is unreadable, empty or lacks the
    columns every run writes.
    """
    path = Path(folder)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(str(path))
    file = path / "results.csv"
    if not file.is_file():
        raise FileNotFoundError(2, "missing", str(file))
    try:
        results = pd.read_csv(file)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise DataError(NOT_RESULTS.format(file=file, problem=problem)) from None
    missing = [c for c in REQUIRED_RESULTS if c not in results.columns]
    if missing or results.empty:
        problem = f"missing columns: {', '.join(missing)}" if missing else "no rows"
        raise DataError(NOT_RESULTS.format(file=file, problem=problem))
    return RunTables(
        results=results,
        members=_read(path / "members.csv"),
        baselines=_read(path / "baselines.csv"),
        convergence=_read(path / "convergence.csv"),
    )


def fairness_columns(results: pd.DataFrame) -> list[tuple[str, str]]:
    """The (metric, attribute) pairs that the results carry, in column order."""
    pairs = []
    for column in results.columns:
        pair = schema.parse_fairness_target(str(column))
        if pair is not None:
            pairs.append(pair)
    return pairs


def seed_interval(values: pd.Series | np.ndarray) -> dict[str, float]:
    """Mean and 95 % t-interval over seeds (``n``, ``mean``, ``std``, ``low``, ``high``)."""
    array = np.asarray(values, dtype=np.float64)
    return metrics.mean_interval(array, confidence=0.95)


def format_interval(
    stats: dict[str, float],
    *,
    digits: int = 3,
    lower: float | None = None,
    upper: float | None = None,
) -> str:
    """``0.979 [0.975, 0.983]``, just the mean with one seed, ``n/a`` without a value.

    ``lower``/``upper`` clip the displayed interval to the quantity's range (a share cannot
    exceed 1); the tables written to disk keep the unclipped t-interval.
    """
    mean = stats["mean"]
    if not np.isfinite(mean):
        return "n/a"
    if stats["n"] < 2 or not np.isfinite(stats["low"]):
        return f"{mean:.{digits}f}"
    low, high = stats["low"], stats["high"]
    if lower is not None:
        low = max(low, lower)
    if upper is not None:
        high = min(high, upper)
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


#: Display ranges of result columns: (lower, upper, digits). Shares and fairness differences
#: live in [0, 1]; counts are >= 0; Rashomon Capacity is >= 1.
def _display(column: str) -> dict[str, float | int | None]:
    if column in ("set_size", "n_duplicates", "n_distinct", "n_candidates"):
        return {"lower": 0.0, "upper": None, "digits": 1}
    if column.startswith("rashomon_capacity_") and not column.endswith("frac_above"):
        return {"lower": 1.0, "upper": None, "digits": 3}
    return {"lower": 0.0, "upper": 1.0, "digits": 3}


def _fmt(value: object) -> str:
    if isinstance(value, (float, np.floating)):
        return "n/a" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """``frame`` as a Markdown table (floats with 3 decimals, NaN as ``n/a``)."""
    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def aggregate(frame: pd.DataFrame, *, by: tuple[str, ...] = SET_KEYS) -> pd.DataFrame:
    """Every numeric column as mean, std and 95 % t-interval over seeds, per ``by`` group.

    Long format: the ``by`` columns, ``metric``, then ``n`` (seeds with a finite value),
    ``mean``, ``std`` (ddof 1), ``low``, ``high``.
    """
    if frame.empty:
        return pd.DataFrame(columns=[*by, "metric", *metrics.MEAN_INTERVAL_KEYS])
    skip = {*by, "seed"}
    numeric = [
        c
        for c in frame.columns
        if c not in skip and pd.api.types.is_numeric_dtype(frame[c]) and frame[c].dtype != bool
    ]
    records = []
    keys = list(by)
    for group, part in frame.groupby(keys, dropna=False, sort=True):
        values = group if isinstance(group, tuple) else (group,)
        for column in numeric:
            stats = seed_interval(part[column])
            records.append({**dict(zip(keys, values, strict=True)), "metric": column, **stats})
    return pd.DataFrame(records)


def _stat(frame: pd.DataFrame, column: str) -> str:
    if column not in frame:
        return "n/a"
    shown = _display(column)
    return format_interval(
        seed_interval(frame.groupby("seed")[column].first() if "seed" in frame else frame[column]),
        digits=int(shown["digits"] or 3),
        lower=shown["lower"],
        upper=shown["upper"],
    )


def fidelity_table(results: pd.DataFrame) -> pd.DataFrame:
    """Fidelity next to multiplicity, one row per budget × ε: mean [95 % CI] over seeds."""
    records = []
    target = results[results["reference"] == "target"]
    surrogate = results[results["reference"] == "surrogate"]
    for _, part in target.groupby(["budget", "epsilon"], sort=True):
        budget, eps = int(part["budget"].iloc[0]), float(part["epsilon"].iloc[0])
        vs_s = _pick(surrogate, budget=budget, epsilon=eps)
        records.append(
            {
                "budget": budget,
                "ε": f"{eps:g}",
                "fidelity": _stat(part, "surrogate_agreement"),
                "distinct set size": _stat(part, "set_size"),
                "duplicates": _stat(part, "n_duplicates"),
                "ambiguity vs target": _stat(part, "ambiguity"),
                "= infidelity": _stat(part, "reference_infidelity"),
                "+ excess": _stat(part, "excess_ambiguity"),
                "ambiguity vs surrogate": _stat(vs_s, "ambiguity"),
                "mean RC": _stat(part, "rashomon_capacity_mean"),
                "share RC>1.01": _stat(part, "rashomon_capacity_frac_above"),
            }
        )
    return pd.DataFrame(records)


def baseline_table(baselines: pd.DataFrame) -> pd.DataFrame:
    """The baselines like the fidelity table: one row per baseline × ε."""
    records = []
    if baselines.empty:
        return pd.DataFrame()
    target = baselines[baselines["reference"] == "target"]
    for _, part in target.groupby(["baseline", "epsilon"], sort=False, dropna=False):
        name, eps = str(part["baseline"].iloc[0]), float(part["epsilon"].iloc[0])
        records.append(
            {
                "baseline": str(name).replace("_", " "),
                "reference model": str(part["baseline_reference"].iloc[0]),
                "ε": "all members" if not np.isfinite(eps) else f"{eps:g}",
                "distinct set size": _stat(part, "set_size"),
                "reference fidelity": _stat(part, "surrogate_agreement"),
                "ambiguity vs target": _stat(part, "ambiguity"),
                "excess over reference": _stat(part, "excess_ambiguity"),
                "mean RC": _stat(part, "rashomon_capacity_mean"),
                "share RC>1.01": _stat(part, "rashomon_capacity_frac_above"),
            }
        )
    return pd.DataFrame(records)


def _pick(frame: pd.DataFrame, **where: float) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        if column not in frame:
            return frame.iloc[0:0]
        col = frame[column].to_numpy(dtype=np.float64)
        mask &= np.isnan(col) if not np.isfinite(value) else np.isclose(col, value)
    return frame[mask]


def baseline_rows(baselines: pd.DataFrame, name: str, *, epsilon: float) -> pd.DataFrame:
    """A baseline's target-reference rows at ``epsilon`` (the owner's set has no ε)."""
    if baselines.empty:
        return baselines
    rows = baselines[(baselines["baseline"] == name) & (baselines["reference"] == "target")]
    if name == "target_retrain":
        return rows
    return _pick(rows, epsilon=epsilon)


def fairness_table(
    results: pd.DataFrame, baselines: pd.DataFrame, *, budget: int, epsilon: float
) -> pd.DataFrame:
    """Group fairness at one budget and ε: target (with its bootstrap interval), the set's
    range, its positive-rate-matched control and both baselines' ranges; mean [CI] over seeds."""
    rows = _pick(results[results["reference"] == "target"], budget=budget, epsilon=epsilon)
    floor = baseline_rows(baselines, "explorer_floor", epsilon=epsilon)
    owner = baseline_rows(baselines, "target_retrain", epsilon=epsilon)
    records = []
    for metric, attribute in fairness_columns(results):
        if metric == "group_accuracy":
            continue
        prefix = f"{metric}[{attribute}]"
        records.append(
            {
                "metric": metric,
                "attribute": attribute,
                "target": _stat(rows, f"{prefix}_target"),
                "target 95 % bootstrap width": _stat(rows, f"{prefix}_target_boot_width"),
                "set min": _stat(rows, f"{prefix}_min"),
                "set max": _stat(rows, f"{prefix}_max"),
                "set range": _stat(rows, f"{prefix}_range"),
                "rate-matched range": _stat(rows, f"{prefix}_matched_range"),
                "floor range": _stat(floor, f"{prefix}_range"),
                "owner range": _stat(owner, f"{prefix}_range"),
            }
        )
    return pd.DataFrame(records)


#: The metrics whose convergence the summary reports (when the run measured them).
CONVERGENCE_HEADLINE = (
    ("ambiguity[target]", "ambiguity vs target"),
    ("discrepancy[target]", "discrepancy vs target"),
    ("rashomon_capacity_mean", "mean RC"),
    ("disagreement_mean", "mean disagreement"),
    ("viable_prediction_range_mean", "mean viable prediction range"),
)


def convergence_table(
    results: pd.DataFrame,
    convergence: pd.DataFrame,
    *,
    budget: int,
    epsilon: float,
) -> pd.DataFrame:
    """Whether each headline metric of the stolen set (``budget``, ``epsilon``) has settled.

    Per metric: the value with all ``M`` members and with half of them (means over seeds), the
    change from half to all, and in how many seeds it settled (``settled[...]`` of the results;
    METRICS.md, "Convergence"), and ``all_settled`` (bool). Fairness ranges over the set follow
    the headline metrics.
    """
    rows = _at_set(results[results["reference"] == "target"], budget, epsilon)
    curves = convergence
    if rows.empty or curves.empty or "set" not in curves:
        return pd.DataFrame()
    curves = curves[
        (curves["set"] == "stolen")
        & (curves["budget"] == budget)
        & np.isclose(curves["epsilon"].astype(float), epsilon)
    ]
    names = list(CONVERGENCE_HEADLINE)
    names += [
        (m, f"{m[: -len('_range')]} range")
        for m in sorted(set(curves["metric"]))
        if m.endswith("_range") and m.split("[")[0] in metrics.FAIRNESS_METRICS
    ]
    out = []
    for metric, label in names:
        column = f"settled[{metric}]"
        if column not in rows:
            continue
        verdicts = rows[column].dropna().astype(bool)
        part = curves[curves["metric"] == metric]
        full = part[part["fraction"] == 1.0]
        half = part[np.isclose(part["fraction"], 0.5)]
        if full.empty or half.empty:
            continue
        size = float(full["size"].mean())
        out.append(
            {
                "metric": label,
                "_metric": metric,
                "members M": f"{size:.0f}",
                "value (M)": f"{full['value'].mean():.3f}",
                "value (M/2)": f"{half['value'].mean():.3f}",
                "change M/2 → M": f"{(full['value'].mean() - half['value'].mean()):+.3f}",
                "settled": f"{int(verdicts.sum())}/{len(verdicts)} seeds"
                if len(verdicts)
                else "too few members",
                # None: no seed had members enough for a verdict
                "all_settled": bool(verdicts.all()) if len(verdicts) else None,
            }
        )
    return pd.DataFrame(out)


def _at_set(frame: pd.DataFrame, budget: int, epsilon: float) -> pd.DataFrame:
    return frame[(frame["budget"] == budget) & np.isclose(frame["epsilon"].astype(float), epsilon)]
