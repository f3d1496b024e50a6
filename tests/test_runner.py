from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

from multisteal import metrics
from multisteal.experiments import load_config, prepare_data, run_audit
from multisteal.rashomon import EmptyRashomonSetWarning, rashomon_set

FAST = {
    "dataset": "german_credit",
    "budgets": [80, 160],
    "epsilons": [0.0, 0.05],
    "threads": 1,
    "dropout": {"n_rates": 3, "members_per_rate": 3},
}


@pytest.fixture(scope="module")
def german():
    config = load_config(FAST)
    return prepare_data(config)


@pytest.fixture(scope="module")
def retrain_run(german):
    config = load_config(
        {
            **FAST,
            "explorer": "retrain",
            "retrain": {"n_members": 4, "bootstrap": True},
            "criterion": "test-fidelity",
        }
    )
    return run_audit(config, data=german)


def test_results_match_independent_computations(retrain_run) -> None:
    result = retrain_run
    s = result.samples
    y, t = s["y"], s["target_decisions"]
    sex = s["sensitive/sex"]
    row = result.results.query("reference == 'target'").iloc[0]
    # Target fairness as fairlearn computes it from the saved per-sample arrays.
    assert row["demographic_parity_difference[sex]_target"] == pytest.approx(
        demographic_parity_difference(y, t, sensitive_features=sex), abs=1e-12
    )
    assert row["equalized_odds_difference[sex]_target"] == pytest.approx(
        equalized_odds_difference(y, t, sensitive_features=sex), abs=1e-12
    )
    for budget in (80, 160):
        surrogate = metrics.decisions(s[f"b{budget}/surrogate_probabilities"])
        got = result.results.query("budget == @budget")["surrogate_agreement"].iloc[0]
        assert got == pytest.approx(np.mean(surrogate == t))
        assert result.results.query("budget == @budget")["target_accuracy"].iloc[
            0
        ] == pytest.approx(np.mean(t == y))


def test_members_respect_the_chosen_criterion(retrain_run) -> None:
    members = retrain_run.members
    assert set(members["seed"]) <= {-1, 1001, 1002, 1003, 1004}
    for (_, eps), group in members.groupby(["budget", "epsilon"]):
        reference = group.loc[group["reference"], "loss[test-fidelity]"].iloc[0]
        assert (group["loss[test-fidelity]"] <= reference + eps + 1e-12).all()
        # test-fidelity loss is 1 − agreement with the target
        np.testing.assert_allclose(group["loss[test-fidelity]"], 1 - group["agreement"])


def test_ambiguity_rows_agree_with_per_sample_flags(retrain_run) -> None:
    res = retrain_run.results
    for _, row in res.iterrows():
        key = f"b{row['budget']}/eps{row['epsilon']:g}/ambiguous_vs_{row['reference']}"
        assert row["ambiguity"] == pytest.approx(retrain_run.samples[key].mean())


def test_attacker_spends_exactly_its_budgets(retrain_run) -> None:
    log = retrain_run.query_log
    attacker = log[log["api"] == "attacker"]
    assert attacker.groupby("budget")["rows"].sum().to_dict() == {80: 80, 160: 160}
    assert set(log["status"]) == {"answered"}
    assert log.loc[log["api"] == "auditor", "rows"].sum() == len(retrain_run.samples["y"])


def test_fairlearn_method_gives_the_same_tables(german, retrain_run) -> None:
    config = retrain_run.config.model_copy(update={"fairness_method": "fairlearn"})
    again = run_audit(config, data=german)
    pd.testing.assert_frame_equal(again.members, retrain_run.members, check_exact=False, atol=1e-12)


@pytest.mark.parametrize("output", ["label", "top-k", "rounded"])
def test_every_output_mode_runs(german, output) -> None:
    config = load_config({**FAST, "budgets": [100], "output": output, "decimals": 1})
    result = run_audit(config, data=german)
    assert set(result.results["output"]) == {output}
    assert (result.results["surrogate_agreement"] > 0.6).all()


def test_surrogate_may_differ_from_target(german) -> None:
    config = load_config({**FAST, "budgets": [100], "target": "gboost", "surrogate": "logistic"})
    result = run_audit(config, data=german)
    assert result.results["surrogate_agreement"].iloc[0] > 0.6


def test_empty_set_is_reported_as_empty() -> None:
    with pytest.warns(EmptyRashomonSetWarning, match="is empty"):
        R = rashomon_set({"transcript": np.array([np.nan, 0.1])}, epsilon=0.1)
    assert R.size == 0


@pytest.mark.slow
def test_demo_sized_adult_audit() -> None:
    config = load_config({"dataset": "adult", "budgets": [250, 4000], "epsilons": [0.01, 0.02]})
    result = run_audit(config)
    top = result.results.query("budget == 4000 and reference == 'target'")
    assert (top["surrogate_agreement"] > 0.95).all()
    assert (top["set_size"] > 1).all()
    assert isinstance(result.results, pd.DataFrame)


def test_small_groups_are_left_out_of_differences_only() -> None:
    config = load_config(
        {
            "dataset": "compas",
            "target": "logistic",
            "budgets": [200],
            "epsilons": [0.02],
            "explorer": "retrain",
            "retrain": {"n_members": 2},
            "threads": 1,
        }
    )
    result = run_audit(config)
    s = result.samples
    race = s["sensitive/race"]
    counts = pd.Series(race).value_counts()
    small = sorted(g for g, n in counts.items() if n < 20)
    assert small  # COMPAS has Asian and Native American groups far below 20 evaluation rows
    row = result.results.iloc[0]
    assert row["fairness_excluded_groups"] == "; ".join(f"race={g} ({counts[g]})" for g in small)
    keep = ~np.isin(race, small)
    # fairlearn on the remaining groups; the favourable COMPAS class is 0 (no recidivism),
    # and demographic parity / equalized odds differences are the same for either label.
    y, t = s["y"][keep], s["target_decisions"][keep]
    assert row["demographic_parity_difference[race]_target"] == pytest.approx(
        demographic_parity_difference(y, t, sensitive_features=race[keep]), abs=1e-12
    )
    assert row["equalized_odds_difference[race]_target"] == pytest.approx(
        equalized_odds_difference(y, t, sensitive_features=race[keep]), abs=1e-12
    )
    # Per-group accuracy is still reported for the small groups.
    for group in small:
        mask = race == group
        expected = np.mean(s["target_decisions"][mask] == s["y"][mask])
        assert row[f"group_accuracy[race={group}]_target"] == pytest.approx(expected)


@pytest.mark.parametrize(
    "overrides",
    [
        {"attack": "synthetic"},
        {
            "dropout": {
                "kind": "gaussian",
                "semantics": "per-pass",
                "n_rates": 3,
                "members_per_rate": 3,
            }
        },
        {"labels": "hard", "surrogate": "logistic"},
        {"criterion": "test-loss"},
    ],
    ids=["synthetic", "gaussian-per-pass", "hard-logistic", "test-loss"],
)
def test_configuration_variants_run(german, overrides) -> None:
    result = run_audit(load_config({**FAST, "budgets": [100], **overrides}), data=german)
    rows = result.results
    assert len(rows) == 2 * 2  # ε × reference
    assert (rows["set_size"] >= 1).all()
    for key, value in overrides.items():
        if key == "dropout":
            assert set(rows["explorer_dropout_kind"]) == {value["kind"]}
            assert set(rows["explorer_dropout_semantics"]) == {value["semantics"]}
        elif key in rows:
            assert set(rows[key]) == {value}


def test_a_saved_target_can_be_attacked_again(german, retrain_run, tmp_path, monkeypatch) -> None:
    from multisteal.experiments import runner as runner_module
    from multisteal.experiments.io import write_run

    def no_training(*args, **kwargs):
        raise AssertionError("the saved target must be loaded, not retrained")

    monkeypatch.setattr(runner_module, "train_target", no_training)
    write_run(retrain_run, tmp_path / "first")
    config = retrain_run.config.model_copy(update={"target_path": tmp_path / "first" / "target"})
    again = run_audit(config, data=german)
    np.testing.assert_array_equal(
        again.samples["target_probabilities"], retrain_run.samples["target_probabilities"]
    )
    pd.testing.assert_frame_equal(again.results, retrain_run.results)


def test_explicit_dropout_rates(german) -> None:
    config = load_config(
        {**FAST, "budgets": [100], "dropout": {"rates": [0.0, 0.05, 0.1], "members_per_rate": 2}}
    )
    result = run_audit(config, data=german)
    assert set(result.results["n_candidates"]) == {1 + 3 * 2}
    assert set(result.results["explorer_rate_max"]) == {0.1}
    assert set(result.members["rate"]) <= {0.0, 0.05, 0.1}
