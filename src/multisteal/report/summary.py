"""The run's ``summary.md``: fidelity next to multiplicity and fairness, read against the
baselines and sampling noise, with conclusions computed from the numbers.

Every sentence of "What this means" comes from :func:`findings`, which applies stated decision
rules to the per-seed numbers; nothing in it is fixed text that holds whatever the data say.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from multisteal.experiments import schema
from multisteal.metrics.streaming import grows_with_members
from multisteal.report.tables import (
    FAIRNESS_HEADLINE,
    RunTables,
    baseline_rows,
    baseline_table,
    convergence_table,
    fairness_columns,
    fairness_table,
    fidelity_table,
    format_interval,
    markdown_table,
    seed_interval,
)

__all__ = ["Finding", "findings", "per_class_table", "probe_table", "render_summary"]

#: Infidelity a copy may have and still be called practically equivalent, when the target's own
#: retrained copies agree with it more closely than this (or are not measured).
EQUIVALENCE_INFIDELITY = 0.02

RULES = (
    "Decision rules: a difference counts only when its 95 % t-interval over seeds excludes 0 "
    "(at least 2 seeds). *Individual decisions*: the stolen set's excess ambiguity over its "
    "reference surrogate is compared, seed by seed, with the explorer floor's. *Fairness*: a "
    "set's range of a between-group difference counts as wider than noise when, seed by seed, "
    "it exceeds the target's 95 % bootstrap interval width, the explorer floor's range and the "
    "members' fidelity span — at every seed, or on average with an interval above 0. "
    "*Practically equivalent* is said only when both rules were applied, neither holds, and the "
    "surrogate's infidelity is within the target-retrain baseline's ambiguity (at least 2 %)."
)


@dataclass(frozen=True)
class Finding:
    """One conclusion of the summary: what was tested, whether the data support it, the text."""

    name: str
    holds: bool
    text: str


def _by_seed(frame: pd.DataFrame, column: str) -> pd.Series:
    if frame.empty or column not in frame:
        return pd.Series(dtype=np.float64)
    return frame.groupby("seed")[column].first().astype(np.float64)


def _interval(values: pd.Series, *, digits: int = 3) -> str:
    """Mean [95 % t-interval] of a share or difference in [0, 1] (interval clipped to it)."""
    return format_interval(seed_interval(values.to_numpy()), digits=digits, lower=0.0, upper=1.0)


def _rc_interval(values: pd.Series) -> str:
    """Mean [95 % t-interval] of a Rashomon Capacity (at least 1)."""
    return format_interval(seed_interval(values.to_numpy()), digits=3, lower=1.0)


def _signed_interval(values: pd.Series) -> str:
    """Mean [95 % t-interval] of a signed difference of shares (in [-1, 1])."""
    return format_interval(seed_interval(values.to_numpy()), digits=3, lower=-1.0, upper=1.0)


def _count_interval(values: pd.Series) -> str:
    """A count over seeds: a whole number when the seeds agree on one, else the mean and its
    interval to one decimal."""
    finite = values.dropna().to_numpy(dtype=float)
    if finite.size and np.all(finite == finite[0]) and float(finite[0]).is_integer():
        return f"{int(finite[0]):,}"
    return format_interval(seed_interval(values.to_numpy()), digits=1, lower=0.0)


def _pct_interval(values: pd.Series) -> str:
    stats = seed_interval(values.to_numpy())
    if not np.isfinite(stats["mean"]):
        return "n/a"
    if stats["n"] < 2:
        return f"{stats['mean']:.1%}"
    low, high = max(stats["low"], -1.0), min(stats["high"], 1.0)
    if stats["mean"] >= 0 and (values.dropna() >= 0).all():
        low = max(low, 0.0)  # a share, not a difference: the interval stays in [0, 1]
    return f"{stats['mean']:.1%} [{low:.1%}, {high:.1%}]"


def _above_zero(values: pd.Series) -> bool:
    stats = seed_interval(values.to_numpy())
    return bool(stats["n"] >= 2 and np.isfinite(stats["low"]) and stats["low"] > 0)


def _below_zero(values: pd.Series) -> bool:
    stats = seed_interval(values.to_numpy())
    return bool(stats["n"] >= 2 and np.isfinite(stats["high"]) and stats["high"] < 0)


def findings(tables: RunTables) -> list[Finding]:
    """The conclusions the data support at the largest budget and ε, by the stated rules."""
    results, baselines = tables.results, tables.baselines
    budget = int(results["budget"].max())
    epsilon = float(results["epsilon"].max())
    top = results[
        (results["reference"] == "target")
        & (results["budget"] == budget)
        & np.isclose(results["epsilon"], epsilon)
    ]
    n_seeds = int(top["seed"].nunique())
    floor = baseline_rows(baselines, "explorer_floor", epsilon=epsilon)
    owner = baseline_rows(baselines, "target_retrain", epsilon=epsilon)
    out: list[Finding] = []

    fidelity = _by_seed(top, "surrogate_agreement")
    low, high = _by_seed(top, "set_agreement_min"), _by_seed(top, "set_agreement_max")
    out.append(
        Finding(
            "fidelity",
            True,
            f"At the largest budget ({budget} queries) the stolen surrogate agrees with the "
            f"target on {_pct_interval(fidelity)} of evaluation rows; the distinct members of "
            f"its ε = {epsilon:g} set ({_count_interval(_by_seed(top, 'set_size'))} per seed) span "
            f"{_pct_interval(high - low)} in fidelity.",
        )
    )
    if n_seeds < 2:
        out.append(
            Finding(
                "seeds",
                False,
                "This run has a single seed, so no number here has an interval and no finding "
                "is claimed: repeat the audit with `--seeds 0,1,2,3,4` (or `--repeats 5`).",
            )
        )

    ambiguity = _by_seed(top, "ambiguity")
    infidelity = _by_seed(top, "reference_infidelity")
    excess = _by_seed(top, "excess_ambiguity")
    text = (
        f"Under some member, {_pct_interval(ambiguity)} of individuals get a different decision "
        f"from the target: {_pct_interval(infidelity)} already from the stolen surrogate's own "
        f"infidelity, {_pct_interval(excess)} in excess of it."
    )
    individual = False
    decided = n_seeds >= 2
    if not floor.empty:
        floor_excess = _by_seed(floor, "excess_ambiguity")
        difference = (excess - floor_excess).dropna()
        text += (
            f" The same explorer without budget-limited stealing (on the "
            f"{floor['baseline_reference'].iloc[0]}) adds {_pct_interval(floor_excess)} "
            f"(difference {_pct_interval(difference)})."
        )
        if not decided:
            text += " With one seed the two are not compared."
        elif _above_zero(difference):
            individual = True
            text += (
                " The stolen set is more ambiguous than the explorer floor: that much of its "
                "multiplicity comes from what the queries left open, not from the explorer."
            )
        elif _below_zero(difference):
            text += " The stolen set is *less* ambiguous than the explorer floor."
        else:
            text += (
                f" At {n_seeds} seeds the excess cannot be told apart from the explorer floor: "
                "the data do not show that stealing leaves more open than the explorer creates "
                "by itself."
            )
    else:
        text += " (No explorer floor in this run: the excess cannot be attributed.)"
    if not owner.empty:
        owner_ambiguity = _by_seed(owner, "ambiguity")
        text += (
            f" For scale, the target's own copies retrained with other seeds disagree with it "
            f"on {_pct_interval(owner_ambiguity)} of individuals"
        )
        if (owner["set_size"] == 1).all():
            text += (
                " (its family does not depend on the seed here: every retrained copy is the "
                "target itself)"
            )
        text += "."
    out.append(Finding("individual", individual, text))

    wide: list[str] = []
    narrow: list[str] = []
    untested: list[str] = []
    fidelity_span = (high - low).rename("fidelity")
    for metric, attribute in fairness_columns(results):
        if metric not in FAIRNESS_HEADLINE:
            continue
        prefix = f"{metric}[{attribute}]"
        spread = _by_seed(top, f"{prefix}_range")
        if spread.dropna().empty:
            continue
        noise = _by_seed(top, f"{prefix}_target_boot_width").reindex(spread.index)
        floor_range = _by_seed(floor, f"{prefix}_range").reindex(spread.index)
        # The bar: the target's sampling noise, the explorer floor and the members' own
        # fidelity span. A missing reference leaves the bar undefined (never 0).
        bar = pd.concat([noise, floor_range, fidelity_span.reindex(spread.index)], axis=1)
        margin = (spread - bar.max(axis=1, skipna=False)).dropna()
        name = f"{metric.replace('_', ' ')} for `{attribute}`"
        detail = (
            f"{name}: set range {_interval(spread)} against the target's bootstrap width "
            f"{_interval(noise)} and the floor's range {_interval(floor_range)}"
        )
        matched = _by_seed(top, f"{prefix}_matched_range")
        if not matched.dropna().empty:
            detail += f"; re-thresholded to the target's positive rate: {_interval(matched)}"
        every = bool(len(margin) >= 2 and (margin > 0).all())
        if not decided or (len(margin) < 2 and spread.notna().sum() >= 2):
            untested.append(detail)  # one seed, or a reference (bootstrap, floor) is missing
        elif len(margin) < 2:
            continue  # measurable at fewer than 2 seeds (its cells are too small elsewhere)
        elif every or _above_zero(margin):
            exceed = int((margin > 0).sum())
            wide.append(f"{detail} (wider at {exceed} of {len(margin)} seeds)")
        else:
            narrow.append(detail)
    if wide:
        out.append(
            Finding(
                "fairness",
                True,
                "Fairness is less determined than fidelity: while the members' fidelity spans "
                f"{_interval(fidelity_span)}, equally faithful members differ in "
                + "; ".join(wide)
                + ". A high-fidelity copy is therefore not evidence that the copy is as fair as "
                "the target.",
            )
        )
    if narrow:
        out.append(
            Finding(
                "fairness",
                False,
                ("The other fairness differences are not" if wide else "No fairness difference is")
                + " shown to be wider than the target's sampling noise, the explorer floor and "
                "the members' fidelity span: " + "; ".join(narrow) + ".",
            )
        )
    if untested:
        why = (
            "with one seed the rule is not applied"
            if not decided
            else "the bootstrap or the explorer floor is missing, so the rule cannot be applied"
        )
        out.append(
            Finding(
                "fairness-untested",
                False,
                f"Fairness ({why}): " + "; ".join(untested) + ".",
            )
        )
    headline = [m for m, _ in fairness_columns(results) if m in FAIRNESS_HEADLINE]
    if decided and not headline:
        out.append(
            Finding(
                "fairness-untested",
                False,
                "No group-fairness difference is measured (the data have no sensitive "
                "attribute), so the fairness rule cannot be applied and no verdict of practical "
                "equivalence is given; the multiplicity per true class above is what there is.",
            )
        )
    if decided and not floor.empty and not individual and not wide and narrow and not untested:
        # The set adds nothing beyond the floor and the noise; the copy itself must also be as
        # close to the target as the owner's own retrained copies are (2 % where they agree).
        owner_level = float(_by_seed(owner, "ambiguity").mean()) if not owner.empty else 0.0
        tolerance = max(owner_level, EQUIVALENCE_INFIDELITY)
        around = f"the {floor['baseline_reference'].iloc[0]}"
        if float(infidelity.mean()) <= tolerance:
            out.append(
                Finding(
                    "equivalent",
                    True,
                    "On this setting the stolen copies are practically equivalent to the target "
                    "within sampling noise: stealing leaves no more open, on individuals or on "
                    f"groups, than the explorer creates around {around} and the target's own "
                    "sampling noise, and the surrogate's own infidelity "
                    f"({_pct_interval(infidelity)}) is within {tolerance:.1%} (the larger of the "
                    f"target's own retrained copies' disagreement, {owner_level:.1%}, and "
                    f"{EQUIVALENCE_INFIDELITY:.0%}).",
                )
            )
        else:
            out.append(
                Finding(
                    "equivalent",
                    False,
                    "The Rashomon set adds nothing measurable beyond the explorer (around "
                    f"{around}) and the target's sampling noise, but the stolen surrogate itself "
                    f"disagrees with the target on {_pct_interval(infidelity)} of individuals, "
                    f"more than {tolerance:.1%} (the larger of the target's own retrained copies' "
                    f"disagreement, {owner_level:.1%}, and {EQUIVALENCE_INFIDELITY:.0%}): it is "
                    "not a practically equivalent copy.",
                )
            )
    return out


def _probe_columns(results: pd.DataFrame) -> list[str]:
    found = (schema.parse_probe_target(str(c)) for c in results.columns)
    return [c for c in found if c is not None]


def _at(frame: pd.DataFrame, budget: int | None, epsilon: float) -> pd.DataFrame:
    rows = frame[frame["reference"] == "target"] if "reference" in frame else frame
    if budget is not None and "budget" in rows:
        rows = rows[rows["budget"] == budget]
    if "epsilon" in rows and np.isfinite(rows["epsilon"]).any():
        rows = rows[np.isclose(rows["epsilon"], epsilon)]
    return rows


def per_class_table(
    results: pd.DataFrame, baselines: pd.DataFrame, *, budget: int, epsilon: float
) -> pd.DataFrame:
    """Ambiguity and RC among each true class's evaluation rows (mean [95 % CI] over seeds)."""
    found = (schema.parse_per_class(str(c)) for c in results.columns)
    names = [n for n in found if n is not None]
    if not names:
        return pd.DataFrame()
    rows = _at(results, budget, epsilon)
    floor = pd.DataFrame()
    if not baselines.empty and "baseline" in baselines:
        floor = _at(baselines[baselines["baseline"] == "explorer_floor"], None, epsilon)
    out = []
    for name in names:
        ambiguity = schema.per_class_column("ambiguity_vs_target", name)
        record = {
            "class": name,
            "rows": f"{rows[schema.per_class_column('class_rows', name)].mean():.0f}",
            "ambiguity": _pct_interval(rows[ambiguity]),
            "RC mean": _rc_interval(rows[schema.per_class_column("rashomon_capacity_mean", name)]),
        }
        if not floor.empty and ambiguity in floor:
            record["floor ambiguity"] = _pct_interval(floor[ambiguity])
        out.append(record)
    return pd.DataFrame(out)


def probe_table(
    results: pd.DataFrame, baselines: pd.DataFrame, *, budget: int, epsilon: float
) -> pd.DataFrame:
    """The EEC gaps: the target's, the set's min–max and range, the owner's range."""
    columns = _probe_columns(results)
    if not columns:
        return pd.DataFrame()
    rows = _at(results, budget, epsilon)
    owner = pd.DataFrame()
    if not baselines.empty and "baseline" in baselines:
        owner = baselines[
            (baselines["baseline"] == "target_retrain") & (baselines["reference"] == "target")
        ]
    out = []
    for column in columns:
        record = {
            "gap": column.split(".", 1)[1],
            "target": _signed_interval(rows[f"{column}_target"]),
            "set min": _signed_interval(rows[f"{column}_min"]),
            "set max": _signed_interval(rows[f"{column}_max"]),
            "set range": _interval(rows[f"{column}_range"]),
        }
        if not owner.empty and f"{column}_range" in owner:
            record["target retrain range"] = _interval(owner[f"{column}_range"])
        out.append(record)
    return pd.DataFrame(out)


def _notes(tables: RunTables) -> list[str]:
    results = tables.results
    first = results.iloc[0]
    notes: list[str] = []
    if str(first.get("surrogate")) == "minilm-mlp" and first.get("explorer") == "dropout":
        notes.append(
            "The `minilm-mlp` surrogate is a frozen all-MiniLM-L6-v2 sentence encoder with an "
            "MLP head: dropout perturbs the head only; the embedding model is never perturbed."
        )
    pool = first.get("pool_dataset")
    if isinstance(pool, str) and pool not in ("", "none", "nan"):
        size = first.get("pool_size")
        kept = f" ({int(size):,} inputs" if size is not None and np.isfinite(size) else " ("
        notes.append(
            f"The attacker's pool is another dataset, `{pool}`{kept}, after removing any input "
            "equal to one of the audited dataset's own; out of distribution, the Knockoff "
            "setting); the explorer floor uses that pool too."
        )
    if first.get("explorer_dropout_semantics") == "per-pass":
        notes.append(
            "Dropout used **per-pass** semantics: each member is one stochastic forward pass "
            "over the data (fresh noise per element), not a fixed model, so member-level "
            "fairness is that of a pass."
        )
    excluded = first.get("fairness_excluded_cells")
    if isinstance(excluded, str) and excluded not in ("", "none"):
        notes.append(
            f"Each between-group difference leaves out the cells it divides by that have fewer "
            f"than {int(first['min_group_size'])} evaluation rows (groups for demographic "
            f"parity and accuracy; a group's positives for TPR, its negatives for FPR; both for "
            f"equalized odds): {excluded}."
        )
    data_notes = first.get("data_notes")
    if isinstance(data_notes, str) and data_notes not in ("", "none"):
        notes.append(f"Data: {data_notes.rstrip('.')}.")
    capped = first.get("capped_categories")
    if isinstance(capped, str) and capped not in ("", "none"):
        notes.append(
            "Categorical features with many values were capped (the most frequent kept, the rest "
            f"grouped as `(other)`; --max-categories): {capped}."
        )
    criterion = str(first["criterion"])
    epsilons = ", ".join(f"{e:g}" for e in sorted(results["epsilon"].unique()))
    if "criterion_step" in results and np.isfinite(results["criterion_step"]).any():
        steps = results.groupby("budget")["criterion_step"].mean()
        where = {
            "transcript": "the attacker's held-out rows",
            "transcript-loss": "the attacker's held-out rows (only labels were revealed)",
            "test-fidelity": "the evaluation rows set aside for selection",
        }.get(criterion, "its rows")
        listed = ", ".join(f"{1 / s:.0f} rows at budget {b}" for b, s in steps.items() if s > 0)
        notes.append(
            f"The `{criterion}` criterion is a 0-1 loss on {where} ({listed}): it moves in steps "
            f"of {', '.join(f'{s:.4f}' for s in steps)}, so an ε (here {epsilons}) below one step "
            "keeps only members that tie with the reference there."
        )
    elif "reference_loss" in results:
        loss = results[results["reference"] == "target"].groupby("budget")["reference_loss"]
        listed = ", ".join(f"{v:.4f} at budget {b}" for b, v in loss.mean().items())
        rows = (
            "the probabilities the API revealed on the attacker's held-out rows"
            if criterion == "transcript-loss"
            else "the target's probabilities on the evaluation rows set aside for selection"
        )
        notes.append(
            f"The `{criterion}` criterion is a cross-entropy against {rows}; ε (here "
            f"{epsilons}) is in the same units (nats) as the reference's own loss, {listed} "
            "(mean over seeds)."
        )
    if criterion.startswith("test-"):
        notes.append(
            f"The `{criterion}` criterion selected members on evaluation rows set aside for "
            "selection; every metric here is measured on the other evaluation rows."
        )
    duplicates = results.get("n_duplicates")
    if duplicates is not None and (duplicates > 0).any():
        notes.append(
            "Set sizes count distinct models: candidates identical to another on every input "
            f"the filter and metrics see were counted once ({int(duplicates.max())} duplicates "
            "at most per budget)."
        )
    return notes


def _service_section(results: pd.DataFrame) -> list[str]:
    """What the service answered, what that cost honest users, and what the attack spent."""
    if "honest_accuracy" not in results:
        return []  # a run written before defences were recorded
    first = results.iloc[0]
    target = results[results["reference"] == "target"]
    honest = pd.DataFrame(
        [
            {
                "answers": str(first.get("answer_mode", first["output"])),
                "accuracy (undefended)": _interval(_by_seed(target, "target_accuracy")),
                "accuracy as answered": _interval(_by_seed(target, "honest_accuracy")),
                "top-1 agreement as answered": _interval(_by_seed(target, "honest_agreement")),
                "ECE (undefended)": _interval(_by_seed(target, "target_ece")),
                "ECE as answered": _interval(_by_seed(target, "honest_ece"))
                if target["honest_ece"].notna().any()
                else "n/a (labels only)",
            }
        ]
    )
    rows = []
    detect = str(first.get("detect", "none"))
    for budget, part in target.groupby("budget", sort=True):
        row = {
            "budget": str(budget),
            "queries used": _count_interval(_by_seed(part, "queries_used")),
            "refused by the detector": f"{int((part.groupby('seed')['attack_stop'].first() != 'finished').sum())}"
            f" of {part['seed'].nunique()} seeds",
        }
        if "recovered_agreement" in part and part["recovered_agreement"].notna().any():
            row["attack's own reconstruction: fidelity"] = _interval(
                _by_seed(part, "recovered_agreement")
            )
        if detect != "none":
            flagged = part.groupby("seed")["flagged_after"].first()
            row[f"{detect} flagged"] = f"{int(flagged.notna().sum())} of {len(flagged)} seeds"
            row["flagged after (inputs received)"] = (
                _count_interval(flagged.dropna()) if flagged.notna().any() else "never"
            )
        rows.append(row)
    after = []
    if detect != "none":
        after += [
            "",
            "*Flagged after*: the inputs the service had received when the detector first "
            "flagged the stream (a batch that makes it flag counts, even when it is refused).",
        ]
        if str(first.get("attacker_keys", "one per budget")) == "one for all budgets":
            after += [
                "",
                "**One attacker key served every budget**: the service's detector saw all "
                "budgets' queries as one stream, in the order of the budgets, so a budget's "
                "flag may come from earlier budgets' queries (counted here from the budget's "
                "own first query; 0 when the stream was flagged before it). Give one key per "
                "budget (comma-separated in --api-key-env) to judge each attack alone.",
            ]
    if any("attack's own reconstruction: fidelity" in row for row in rows):
        after += [
            "",
            "*Attack's own reconstruction*: the model the attack solved for from its answers "
            "(equation solving's weights, path finding's leaf boxes), scored like the "
            "surrogate. The Rashomon set above is explored around the configured surrogate "
            "trained on the same transcript.",
        ]
    return [
        "",
        "## The service: defences, detection and their cost",
        "",
        f"Defences (in order): `{first.get('defences', 'none')}`; output policy "
        f"`{first['output']}`; detector: `{detect}`. Honest users asking about the evaluation "
        "rows get:",
        "",
        markdown_table(honest),
        "",
        "*As answered*: through the same output policy and defences as the attacker; *top-1 "
        "agreement* with the target's own undefended decisions; *ECE*: top-label expected "
        "calibration error (15 bins) of the answered scores.",
        "",
        markdown_table(pd.DataFrame(rows)),
        *after,
    ]


def _convergence_section(tables: RunTables, *, budget: int, epsilon: float) -> list[str]:
    """Whether the headline metrics settled in the number of members the run drew."""
    results = tables.results
    heading = f"## Has the exploration settled? (budget {budget}, ε = {epsilon:g})"
    if "candidate_kind" in results and (results["candidate_kind"] == "channels").all():
        return [
            "",
            heading,
            "",
            "Not measured: the explorer's sets are per-sample channels (AWP: one row per ε and "
            "class, a different model on every sample), not members of a set that grows.",
        ]
    orders = int(results["convergence_orders"].max()) if "convergence_orders" in results else 20
    if orders == 0:
        return [
            "",
            heading,
            "",
            "Not measured: the run drew no random member orders (--convergence-orders 0).",
        ]
    table = convergence_table(results, tables.convergence, budget=budget, epsilon=epsilon)
    if table.empty:
        return []
    verdicts = table.pop("all_settled").tolist()
    names = dict(zip(table["metric"], table.pop("_metric"), strict=True))
    unsettled = [
        str(m) for m, v in zip(table["metric"], verdicts, strict=True) if v is not None and not v
    ]
    undecided = [str(m) for m, v in zip(table["metric"], verdicts, strict=True) if v is None]
    growing = [m for m in unsettled if grows_with_members(names[m])]
    moving = [m for m in unsettled if m not in growing]
    parts: list[str] = []
    if not unsettled and not undecided:
        parts.append(
            "Every metric above settled in every seed: the half-size subsets already gave "
            "values within the tolerance of the whole set's."
        )
    if growing:
        parts.append(
            "Not settled in every seed: "
            + ", ".join(growing)
            + ". These can only grow with more members, so the reported values are lower "
            "bounds of what a larger exploration would show; draw more members before citing "
            "them."
        )
    if moving:
        parts.append(
            "Still changing between half and all of the members: "
            + ", ".join(moving)
            + " (these can move either way as members are added)."
        )
    if undecided:
        parts.append(
            "Too few members for a verdict (fewer than 8 in every seed): " + ", ".join(undecided)
        )
    verdict = " ".join(parts)
    caution = (
        f" With only {orders} orders the spread over orders is a rough interval."
        if orders < 10
        else ""
    )
    return [
        "",
        heading,
        "",
        markdown_table(table),
        "",
        "Each metric recomputed on random subsets of the set's members (each member kept with "
        f"probability 1/2, the reference always; {orders} random orders).{caution} A metric "
        "has *settled* in a seed when going from half of the members to all of them changes "
        "it by at most 5 % of its value above its floor (1 for RC; the reference surrogate's "
        "own infidelity for ambiguity and discrepancy against the target; 0 otherwise), or "
        "0.001, whichever is larger (no verdict for sets of fewer than 8 members); "
        "`convergence.csv` holds the whole curves and `figures/convergence.png` draws them.",
        "",
        verdict,
    ]


def _capacity_mode(results: pd.DataFrame) -> str:
    modes = sorted(set(results.get("capacity_mode", pd.Series(dtype=str)).dropna().astype(str)))
    if modes == ["exact"]:
        return " (converged: `--capacity exact`)"
    if modes == ["reference"]:
        return " (the published 1,000-step Blahut–Arimoto rule: `--capacity reference`)"
    return ""


def render_summary(tables: RunTables) -> str:
    """Markdown text summarising a run's tables."""
    results = tables.results
    first = results.iloc[0]
    budget = int(results["budget"].max())
    epsilon = float(results["epsilon"].max())
    seeds = sorted(int(s) for s in results["seed"].unique())
    lines = [
        f"# multisteal audit: {first['dataset']}",
        "",
        f"Target `{first['target']}`"
        + (
            f" (served at {first['target_service']}, audited over HTTP; the family is the one "
            "--target named, since the service does not publish it)"
            if str(first.get("target_service", "in-process")) != "in-process"
            else ""
        )
        + f" stolen with the `{first['attack']}` attack through an API "
        f"answering `{first['output']}`; surrogate `{first['surrogate']}`; Rashomon set from the "
        f"`{first['explorer']}` explorer ({int(first['n_candidates'])} candidates per budget), "
        f"filtered with the `{first['criterion']}` criterion. Fairness treats "
        f"`{first['positive_class']}` as the favourable class"
        + (
            f" and compares it against the other {int(first['n_classes']) - 1} classes together."
            if int(first.get("n_classes", 2)) > 2
            else "."
        ),
        "",
        f"Seeds: {', '.join(map(str, seeds))} ({len(seeds)}); each stage (split, target, "
        "attack, surrogate, explorer, baselines) draws from its own seed stream. Numbers are "
        "means over seeds with their 95 % t-interval in brackets.",
        "",
        "## Fidelity versus multiplicity",
        "",
        markdown_table(fidelity_table(results)),
        "",
        "*Fidelity* is the reference surrogate's label agreement with the target on the evaluation "
        "rows. *Ambiguity* is the share of evaluation individuals for whom at least one member of "
        "the ε-Rashomon set decides differently from the reference (target or surrogate); against "
        "the target it splits into the surrogate's own *infidelity* plus the set's *excess*. "
        "*RC* is the Rashomon Capacity per individual, in [1, C]" + _capacity_mode(results) + ".",
    ]
    if "candidate_kind" in results and (results["candidate_kind"] == "channels").any():
        lines += [
            "",
            "The `"
            + str(first["explorer"])
            + "` explorer gives per-sample channels: each set's rows are one per ε and class, a "
            "different model on every sample. Its *set size* counts those rows, not models; "
            "ambiguity, RC and the per-sample metrics are defined, discrepancy and the fairness "
            "of a member are not (reported as n/a).",
        ]
    lines += _service_section(results)
    table = baseline_table(tables.baselines)
    if not table.empty:
        lines += [
            "",
            "## Baselines",
            "",
            markdown_table(table),
            "",
            "*Explorer floor*: the same explorer, ε and criterion with no budget-limited stealing "
            "(applied to the target where the explorer can run on it, else to a surrogate trained "
            "on the whole pool with full probabilities). *Target retrain*: the target's family "
            "retrained on target-train with other seeds (the owner's own multiplicity; no "
            "ε-filter).",
        ]
    per_class = per_class_table(results, tables.baselines, budget=budget, epsilon=epsilon)
    if not per_class.empty:
        lines += [
            "",
            f"## Multiplicity per true class (budget {budget}, ε = {epsilon:g})",
            "",
            markdown_table(per_class),
            "",
            "Among the evaluation rows of each true class: the share on which some member "
            "decides differently from the target (*ambiguity*), and the mean Rashomon Capacity "
            "(*RC*, in [1, C]); *floor* is the explorer-floor baseline's ambiguity there.",
        ]
    if str(first.get("sensitive_attributes", "")) == "none":
        why = {
            "csv": "no sensitive column was given (--sensitive)",
            "text_csv": "no sensitive column was given (--sensitive)",
            "images": "the image file has no `groups` array",
        }.get(
            str(first.get("data_source", "dataset")),
            f"`{first['dataset']}` records no demographic attribute",
        )
        lines += [
            "",
            "## Group fairness",
            "",
            f"Not measured: {why}, and multisteal does not invent groups. Multiplicity per "
            "true class is reported instead"
            + (
                "; for text models the EEC probe below compares genders and races."
                if _probe_columns(results)
                else "."
            ),
        ]
    else:
        lines += [
            "",
            f"## Group fairness (budget {budget}, ε = {epsilon:g})",
            "",
            markdown_table(
                fairness_table(results, tables.baselines, budget=budget, epsilon=epsilon)
            ),
            "",
            "*Rate-matched range*: the set's range after re-thresholding every member to the "
            "target's positive rate (what is left is not a mere threshold shift). *Bootstrap "
            "width*: the 95 % interval width of the target's own difference over resampled "
            "evaluation rows (its sampling noise).",
        ]
    probe = probe_table(results, tables.baselines, budget=budget, epsilon=epsilon)
    if not probe.empty:
        lines += [
            "",
            f"## Bias probe: Equity Evaluation Corpus (budget {budget}, ε = {epsilon:g})",
            "",
            markdown_table(probe),
            "",
            "Every member scores the 8,640 EEC template sentences, which differ only in the "
            "person's gender or race. *Rate gap*: difference in the rate of the favourable "
            "decision between the two groups (first named minus second; sentences with no race "
            "are left out of the race gap); *score gap*: the same for the mean favourable "
            "probability. The set's range is the spread of that gap over its members; the "
            "target retrain range is the owner's own spread.",
        ]
    lines += _convergence_section(tables, budget=budget, epsilon=epsilon)
    for note in _notes(tables):
        lines += ["", note]
    lines += ["", "## What this means", ""]
    for finding in findings(tables):
        lines += [finding.text, ""]
    lines += [RULES, ""]
    return "\n".join(lines)
