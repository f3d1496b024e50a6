"""The summary's conclusions follow from the numbers, by its stated decision rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.experiments import load_config, run_audit
from multisteal.report import RunTables, render_summary
from multisteal.report.summary import findings

SEEDS = [0, 1, 2]
DP = "demographic_parity_difference[sex]"


@pytest.fixture(scope="module")
def tables() -> RunTables:
    config = load_config(
        {
            "dataset": "german_credit",
            "budgets": [120],
            "epsilons": [0.05],
            "threads": 1,
            "seeds": SEEDS,
            "dropout": {"n_rates": 3, "members_per_rate": 3},
            "baselines": {"target_members": 2},
            "fairness_bootstrap": 100,
        }
    )
    result = run_audit(config)
    return RunTables(result.results, result.members, result.baselines)


def _with(
    tables: RunTables,
    *,
    excess: list[float],
    floor_excess: list[float],
    dp_margin: list[float],
    infidelity: float = 0.01,
) -> RunTables:
    """The run's tables with chosen per-seed numbers: the stolen set's excess ambiguity, the
    floor's, and every headline fairness range set to ``max(bootstrap width, floor range,
    fidelity span)`` plus a margin (negative: narrower than that bar)."""
    results, baselines = tables.results.copy(), tables.baselines.copy()
    floor = (baselines["baseline"] == "explorer_floor") & (baselines["reference"] == "target")
    for seed, e, f, margin in zip(SEEDS, excess, floor_excess, dp_margin, strict=True):
        rows = (results["seed"] == seed) & (results["reference"] == "target")
        results.loc[rows, "reference_infidelity"] = infidelity
        results.loc[rows, "excess_ambiguity"] = e
        results.loc[rows, "ambiguity"] = infidelity + e
        baselines.loc[floor & (baselines["seed"] == seed), "excess_ambiguity"] = f
        for column in [c for c in results.columns if c.endswith("]_range")]:
            if "accuracy" in column or "false_positive" in column:
                continue
            if not np.isfinite(results.loc[rows, column]).all():
                continue  # not measurable at this seed (cells too small): left as it is
            prefix = column.removesuffix("_range")
            width = results.loc[rows, f"{prefix}_target_boot_width"]
            floor_range = baselines.loc[floor & (baselines["seed"] == seed), column]
            span = results.loc[rows, "set_agreement_max"] - results.loc[rows, "set_agreement_min"]
            bar = max(
                float(width.fillna(0).iloc[0]),
                float(floor_range.fillna(0).iloc[0]),
                float(span.iloc[0]),
            )
            results.loc[rows, column] = max(bar + margin, 0.0)
    return RunTables(results, tables.members, baselines)


def test_no_finding_is_claimed_when_the_numbers_do_not_show_it(tables) -> None:
    negligible = _with(
        tables,
        excess=[0.010, 0.012, 0.011],
        floor_excess=[0.011, 0.010, 0.012],
        dp_margin=[-0.02, -0.01, -0.03],
    )
    text = render_summary(negligible)
    assert "At 3 seeds the excess cannot be told apart from the explorer floor" in text
    assert "No fairness difference is shown to be wider than" in text
    assert "Fairness is less determined than fidelity" not in text
    assert "On this setting the stolen copies are practically equivalent to the target" in text
    assert {f.name: f.holds for f in findings(negligible)} == {
        "fidelity": True,
        "individual": False,
        "fairness": False,
        "equivalent": True,
    }


def test_a_clear_spread_is_claimed(tables) -> None:
    clear = _with(
        tables,
        excess=[0.10, 0.12, 0.11],
        floor_excess=[0.01, 0.02, 0.015],
        dp_margin=[0.05, 0.06, 0.04],
    )
    text = render_summary(clear)
    assert "The stolen set is more ambiguous than the explorer floor" in text
    assert "Fairness is less determined than fidelity" in text
    assert "demographic parity difference for `sex`" in text
    assert "(wider at 3 of 3 seeds)" in text
    assert "practically equivalent" not in text


def test_wider_at_every_seed_counts_even_when_the_mean_interval_is_wide(tables) -> None:
    every = _with(tables, excess=[0.0] * 3, floor_excess=[0.0] * 3, dp_margin=[0.001, 0.2, 0.001])
    assert "Fairness is less determined than fidelity" in render_summary(every)
    # Two seeds far above, one just below: neither every seed nor an interval above 0.
    mixed = _with(tables, excess=[0.0] * 3, floor_excess=[0.0] * 3, dp_margin=[0.3, 0.3, -0.01])
    text = render_summary(mixed)
    assert "Fairness is less determined than fidelity" not in text
    assert "No fairness difference is shown to be wider than" in text


def test_a_set_less_ambiguous_than_the_floor_is_said_so(tables) -> None:
    less = _with(
        tables, excess=[0.01, 0.012, 0.011], floor_excess=[0.1, 0.12, 0.11], dp_margin=[-0.1] * 3
    )
    assert "The stolen set is *less* ambiguous than the explorer floor." in render_summary(less)


def test_summary_numbers_are_the_seed_means_with_their_intervals(tables) -> None:
    clear = _with(
        tables, excess=[0.10, 0.12, 0.11], floor_excess=[0.0] * 3, dp_margin=[0.05, 0.06, 0.04]
    )
    text = render_summary(clear)
    # mean 0.11, sd 0.01, t_{0.975,2} = 4.302653: half-width 0.02484.
    assert "11.0% [8.5%, 13.5%] in excess of it" in text
    fidelity = clear.results.query("reference == 'target'")["surrogate_agreement"]
    assert f"agrees with the target on {fidelity.mean():.1%} [" in text


def test_a_real_run_with_negligible_multiplicity_claims_nothing() -> None:
    """Adult, logistic target, logistic surrogate, retrain explorer: the copies barely differ."""
    config = load_config(
        {
            "dataset": "adult",
            "split": {"target_train": 4000, "pool": 4000, "evaluation": 4000},
            "target": "logistic",
            "surrogate": "logistic",
            "explorer": "retrain",
            "retrain": {"n_members": 4},
            "budgets": [2000],
            "epsilons": [0.01],
            "seeds": SEEDS,
            "threads": 1,
            "baselines": {"target_members": 2},
            "fairness_bootstrap": 200,
        }
    )
    result = run_audit(config)
    text = render_summary(RunTables(result.results, result.members, result.baselines))
    assert "Fairness is less determined than fidelity" not in text
    assert "more ambiguous than the explorer floor" not in text
    assert "practically equivalent" in text
    assert isinstance(result.results, pd.DataFrame)
    assert np.isfinite(result.results["surrogate_agreement"]).all()


def test_equivalence_is_not_claimed_without_an_explorer_floor(tables) -> None:
    negligible = _with(
        tables, excess=[0.010, 0.012, 0.011], floor_excess=[0.011] * 3, dp_margin=[-0.02] * 3
    )
    without = RunTables(
        negligible.results,
        negligible.members,
        negligible.baselines[negligible.baselines["baseline"] != "explorer_floor"],
    )
    text = render_summary(without)
    assert "the excess cannot be attributed" in text
    assert "practically equivalent" not in text


def test_a_copy_with_large_infidelity_is_not_called_equivalent(tables) -> None:
    owner = tables.baselines.query("baseline == 'target_retrain' and reference == 'target'")
    level = max(owner["ambiguity"].mean(), 0.02)
    far = _with(
        tables,
        excess=[0.010, 0.012, 0.011],
        floor_excess=[0.011, 0.010, 0.012],
        dp_margin=[-0.02, -0.01, -0.03],
        infidelity=level + 0.05,
    )
    text = render_summary(far)
    assert "practically equivalent to the target" not in text
    assert "it is not a practically equivalent copy" in text
    assert {f.name: f.holds for f in findings(far)}["equivalent"] is False


def test_one_seed_gets_numbers_but_no_verdict(tables) -> None:
    clear = _with(
        tables, excess=[0.10, 0.12, 0.11], floor_excess=[0.0] * 3, dp_margin=[0.05, 0.06, 0.04]
    )
    one = RunTables(
        clear.results[clear.results["seed"] == 0],
        clear.members,
        clear.baselines[clear.baselines["seed"] == 0],
    )
    text = render_summary(one)
    assert "This run has a single seed" in text
    assert "With one seed the two are not compared." in text
    assert "Fairness (with one seed the rule is not applied)" in text
    for claim in (
        "more ambiguous than",
        "less determined",
        "practically equivalent",
        "No fairness",
    ):
        assert claim not in text


def test_no_fairness_verdict_without_the_bootstrap(tables) -> None:
    clear = _with(tables, excess=[0.01] * 3, floor_excess=[0.01] * 3, dp_margin=[0.05, 0.06, 0.04])
    results = clear.results.drop(
        columns=[c for c in clear.results.columns if c.endswith("_target_boot_width")]
    )
    text = render_summary(RunTables(results, clear.members, clear.baselines))
    assert "the bootstrap or the explorer floor is missing, so the rule cannot be applied" in text
    assert "less determined" not in text
    assert "practically equivalent" not in text


def test_no_equivalence_when_no_fairness_difference_could_be_measured(tables) -> None:
    negligible = _with(tables, excess=[0.01] * 3, floor_excess=[0.01] * 3, dp_margin=[-0.1] * 3)
    results = negligible.results.copy()
    for column in [c for c in results.columns if c.endswith("]_range")]:
        results[column] = np.nan
    text = render_summary(RunTables(results, negligible.members, negligible.baselines))
    assert "practically equivalent" not in text


def test_a_fairness_range_within_the_fidelity_span_is_not_the_finding(tables) -> None:
    results = tables.results.copy()
    results["set_agreement_min"] = 0.5  # members whose fidelity spans 0.45 ...
    results["set_agreement_max"] = 0.95
    wide = _with(
        RunTables(results, tables.members, tables.baselines),
        excess=[0.0] * 3,
        floor_excess=[0.0] * 3,
        dp_margin=[-0.01] * 3,  # ... and fairness ranges just inside that span
    )
    text = render_summary(wide)
    assert "less determined than fidelity" not in text


def test_per_class_and_probe_intervals_are_not_clipped_to_shares() -> None:
    from multisteal.report.summary import per_class_table, probe_table

    rows = pd.DataFrame(
        {
            "seed": [0, 1, 2],
            "budget": 100,
            "epsilon": 0.01,
            "reference": "target",
            "ambiguity_vs_target[class=a]": [0.1, 0.2, 0.3],
            "rashomon_capacity_mean[class=a]": [1.05, 1.10, 1.15],
            "class_rows[class=a]": 40,
            "eec.rate_gap[gender:female-male]_target": [-0.05, -0.04, -0.06],
            "eec.rate_gap[gender:female-male]_min": [-0.09, -0.08, -0.1],
            "eec.rate_gap[gender:female-male]_max": [0.01, 0.0, 0.02],
            "eec.rate_gap[gender:female-male]_range": [0.1, 0.08, 0.12],
        }
    )
    classes = per_class_table(rows, pd.DataFrame(), budget=100, epsilon=0.01)
    assert classes.loc[0, "rows"] == "40"
    # RC lives in [1, C]: its interval must not be clipped at 1 from above
    assert classes.loc[0, "RC mean"] == "1.100 [1.000, 1.224]"  # t-interval [0.976, 1.224]
    probe = probe_table(rows, pd.DataFrame(), budget=100, epsilon=0.01)
    # signed gaps keep their sign (a share-clipped interval would show [0.000, ...])
    assert probe.loc[0, "target"].startswith("-0.050 [-0.075, -0.025]")
    assert probe.loc[0, "gap"] == "rate_gap[gender:female-male]"


def test_without_sensitive_attributes_no_equivalence_verdict_is_given(tables) -> None:
    # The same numbers as the "practically equivalent" case, without any fairness column (as
    # for MedMNIST or SST-2): the fairness rule cannot be applied, so no verdict is given.
    negligible = _with(
        tables,
        excess=[0.010, 0.012, 0.011],
        floor_excess=[0.011, 0.010, 0.012],
        dp_margin=[-0.02, -0.01, -0.03],
    )

    def drop(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[[c for c in frame.columns if "[" not in str(c)]]

    bare = RunTables(drop(negligible.results), negligible.members, drop(negligible.baselines))
    found = {f.name: f for f in findings(bare)}
    assert "equivalent" not in found
    assert "no verdict of practical equivalence" in found["fairness-untested"].text
    assert "practically equivalent to the target" not in render_summary(bare)
