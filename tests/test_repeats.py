"""Seeds, seed streams, parallel repeats and the baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.errors import ConfigError
from multisteal.experiments import STAGES, load_config, run_audit
from multisteal.experiments.config import DUPLICATE_SEEDS, LOADED_TARGET_SEEDS
from multisteal.report import aggregate

SMALL = {
    "dataset": "german_credit",
    "budgets": [120],
    "epsilons": [0.05],
    "threads": 1,
    "dropout": {"n_rates": 3, "members_per_rate": 3},
    "baselines": {"target_members": 2},
    "fairness_bootstrap": 100,
}


@pytest.fixture(scope="module")
def two_seeds():
    return run_audit(load_config({**SMALL, "seeds": [3, 4]}))


def test_stage_seeds_are_independent_streams() -> None:
    config = load_config({"seed": 7})
    seeds = {stage: config.stage_seed(stage) for stage in STAGES}
    assert len(set(seeds.values())) == len(STAGES)
    expected = np.random.SeedSequence(7).spawn(len(STAGES))
    for i, stage in enumerate(STAGES):
        assert seeds[stage] == int(expected[i].generate_state(1)[0])
    override = load_config({"seed": 7, "stage_seeds": {"explorer": 5}})
    assert override.stage_seed("explorer") == 5
    assert all(override.stage_seed(s) == seeds[s] for s in STAGES if s != "explorer")


def test_every_seed_has_its_rows_and_arrays(two_seeds) -> None:
    results = two_seeds.results
    assert sorted(results["seed"].unique()) == [3, 4]
    assert len(results) == 2 * 1 * 1 * 2  # seed × budget × ε × reference
    assert sorted(two_seeds.baselines["seed"].unique()) == [3, 4]
    assert sorted(two_seeds.members["seed"].unique()) == [3, 4]
    s = two_seeds.samples
    # Each seed splits the data anew.
    assert not np.array_equal(s["seed3/evaluation_index"], s["seed4/evaluation_index"])
    for seed in (3, 4):
        row = results[(results["seed"] == seed) & (results["reference"] == "target")].iloc[0]
        assert row["ambiguity"] == pytest.approx(
            s[f"seed{seed}/b120/eps0.05/ambiguous_vs_target"].mean()
        )


def test_aggregate_is_mean_and_t_interval_over_seeds(two_seeds) -> None:
    table = aggregate(two_seeds.results)
    row = table[(table["reference"] == "target") & (table["metric"] == "surrogate_agreement")]
    values = two_seeds.results.query("reference == 'target'")["surrogate_agreement"].to_numpy()
    mean, sd = values.mean(), values.std(ddof=1)
    half = 12.706204736174707 * sd / np.sqrt(2)  # t_{0.975, 1}
    assert row["n"].iloc[0] == 2
    assert row["mean"].iloc[0] == pytest.approx(mean)
    assert row["low"].iloc[0] == pytest.approx(mean - half)
    assert row["high"].iloc[0] == pytest.approx(mean + half)


def test_serial_and_parallel_runs_are_identical(two_seeds) -> None:
    parallel = run_audit(load_config({**SMALL, "seeds": [3, 4], "workers": 2}))
    pd.testing.assert_frame_equal(parallel.results, two_seeds.results)
    pd.testing.assert_frame_equal(parallel.baselines, two_seeds.baselines)
    pd.testing.assert_frame_equal(aggregate(parallel.results), aggregate(two_seeds.results))
    assert parallel.samples.keys() == two_seeds.samples.keys()
    for key, value in parallel.samples.items():
        np.testing.assert_array_equal(value, two_seeds.samples[key], err_msg=key)


def test_changing_only_the_explorer_seed_changes_only_the_explorer_outputs() -> None:
    base = run_audit(load_config(SMALL))
    other = run_audit(load_config({**SMALL, "stage_seeds": {"explorer": 99}}))
    a, b = base.samples, other.samples
    for key in (
        "seed0/evaluation_index",
        "seed0/target_probabilities",
        "seed0/b120/surrogate_probabilities",
        "seed0/owner/surrogate_probabilities",
        "seed0/owner/rashomon_capacity",
    ):
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    attacker = [
        log.query("api == 'attacker'")["sha256"].tolist()
        for log in (base.query_log, other.query_log)
    ]
    assert attacker[0] == attacker[1]  # the same queries
    for key in ("seed0/b120/eps0.05/rashomon_capacity", "seed0/floor/eps0.05/rashomon_capacity"):
        assert not np.array_equal(a[key], b[key]), key
    same = ["surrogate_agreement", "surrogate_accuracy", "target_accuracy", "reference_infidelity"]
    pd.testing.assert_frame_equal(base.results[same], other.results[same])


def test_seed_options_are_validated() -> None:
    with pytest.raises(ConfigError) as info:
        load_config({"seeds": [1, 1]})
    assert str(info.value) == (
        "Invalid configuration:\n- seeds: " + DUPLICATE_SEEDS.format(seeds=[1, 1])
    )
    with pytest.raises(ConfigError) as info:
        load_config({"seeds": [0, 1], "target_path": "somewhere"})
    assert str(info.value) == "Invalid configuration:\n- config: " + LOADED_TARGET_SEEDS
    with pytest.raises(ConfigError, match="Unknown seed stage 'attak'"):
        load_config({"stage_seeds": {"attak": 1}})


def test_a_target_whose_retrained_copies_are_identical_has_no_own_multiplicity() -> None:
    # scikit-learn's lbfgs logistic regression does not depend on its seed: every copy
    # retrained "with another seed" is the target itself.
    config = load_config(
        {**SMALL, "target": "logistic", "baselines": {"target_members": 3, "explorer_floor": False}}
    )
    owner = run_audit(config).baselines
    assert set(owner["baseline"]) == {"target_retrain"}
    target = owner[owner["reference"] == "target"].iloc[0]
    assert target["n_candidates"] == 4
    assert target["n_distinct"] == 1
    assert target["n_duplicates"] == 3
    assert target["set_size"] == 1
    assert target["surrogate_agreement"] == 1.0  # the set's reference is the target
    assert target["ambiguity"] == 0.0
    assert target["excess_ambiguity"] == 0.0
    assert target["rashomon_capacity_mean"] == 1.0
    assert target["demographic_parity_difference[sex]_range"] == 0.0


def test_a_zero_perturbation_explorer_has_a_zero_floor() -> None:
    config = load_config(
        {
            **SMALL,
            "dropout": {"rates": [0.0], "members_per_rate": 4},
            "baselines": {"target_members": 0},
        }
    )
    floor = run_audit(config).baselines
    target = floor[floor["reference"] == "target"].iloc[0]
    assert target["baseline_reference"] == "target"  # dropout runs on the MLP target itself
    assert target["set_size"] == 1
    assert target["n_duplicates"] == 4
    assert target["ambiguity"] == 0.0
    assert target["surrogate_agreement"] == 1.0


def test_the_floor_on_the_target_is_the_explorer_applied_to_the_target() -> None:
    result = run_audit(load_config({**SMALL, "baselines": {"target_members": 0}}))
    floor = result.baselines.set_index("reference")
    s = result.samples
    # The floor's reference model is the target: its "surrogate" probabilities are the target's.
    np.testing.assert_array_equal(
        s["seed0/floor/surrogate_probabilities"], s["seed0/target_probabilities"]
    )
    assert floor.loc["target", "ambiguity"] == pytest.approx(
        s["seed0/floor/eps0.05/ambiguous_vs_target"].mean()
    )
    assert floor.loc["target", "reference_infidelity"] == 0.0
    assert floor.loc["target", "ambiguity"] == floor.loc["target", "excess_ambiguity"]


def test_serial_and_parallel_agree_for_a_boosted_target_and_the_retrain_explorer() -> None:
    config = {
        **SMALL,
        "target": "gboost",
        "explorer": "retrain",
        "retrain": {"n_members": 2},
        "seeds": [0, 1],
    }
    serial = run_audit(load_config(config))
    parallel = run_audit(load_config({**config, "workers": 2}))
    pd.testing.assert_frame_equal(parallel.results, serial.results)
    pd.testing.assert_frame_equal(parallel.baselines, serial.baselines)
    assert set(serial.baselines["baseline_reference"]) == {"full-pool surrogate", "target"}


def test_the_floor_is_filtered_at_the_largest_budget_s_resolution(two_seeds) -> None:
    floor = two_seeds.baselines.query("baseline == 'explorer_floor'")
    stolen = two_seeds.results.query("budget == 120")
    assert set(floor["holdout_size"]) == set(stolen["holdout_size"]) == {24}  # 20 % of 120
    assert set(floor["budget"]) == {400}  # the whole pool was queried


def test_displayed_intervals_stay_in_the_quantity_s_range() -> None:
    from multisteal.report.tables import format_interval

    stats = {"n": 2, "mean": 0.95, "std": 0.05, "low": 0.5, "high": 1.4}
    assert format_interval(stats, lower=0.0, upper=1.0) == "0.950 [0.500, 1.000]"
    assert format_interval(stats) == "0.950 [0.500, 1.400]"
    assert format_interval({**stats, "n": 1, "low": np.nan}) == "0.950"
    assert format_interval({**stats, "mean": np.nan}) == "n/a"
