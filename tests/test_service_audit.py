"""Defences, detection and attack parameters through the audit: configuration, the honest-user
cost columns (checked against an independent computation on the saved arrays), and the checks
every attack's registry entry makes before any work."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from multisteal.errors import ConfigError, InvalidInputError
from multisteal.experiments import load_config, prepare_data, run_audit
from multisteal.experiments.config import AuditConfig
from multisteal.metrics import expected_calibration_error

FAST = {
    "dataset": "german_credit",
    "budgets": [120],
    "epsilons": [0.05],
    "threads": 1,
    "dropout": {"n_rates": 2, "members_per_rate": 2},
    "baselines": {"target_members": 0, "explorer_floor": False},
    "fairness_bootstrap": 50,
}


def test_defences_parse_from_text_and_mappings() -> None:
    config = load_config(
        {
            **FAST,
            "defences": ["rounding:decimals=1", {"name": "top-k", "params": {"k": 1}}],
        }
    )
    assert [(d.name, d.params) for d in config.defences] == [
        ("rounding", {"decimals": 1}),
        ("top-k", {"k": 1}),
    ]
    assert config.answer_mode == "top-k"
    assert [d.label() for d in config.defences] == ["rounding:decimals=1", "top-k:k=1"]
    # label-only anywhere in the chain: the attacker gets labels whatever the output policy
    assert load_config({**FAST, "defences": ["label-only"]}).answer_mode == "label"


@pytest.mark.parametrize(
    ("defences", "message"),
    [
        (["reverse-sigmoid:alpha=1"], "has no parameter 'alpha'"),
        (["rounding:decimals=two"], "decimals must be a whole number"),
        (["jpeg"], "Unknown defence 'jpeg'"),
        (["rounding:decimals"], "Malformed defence"),
    ],
)
def test_bad_defences_are_named(defences, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**FAST, "defences": defences})


def test_attack_checks_run_at_config_time() -> None:
    # equation solving needs probabilities; a label-only defence hides them
    with pytest.raises(ConfigError, match="does not work on answers in 'label' mode"):
        load_config({**FAST, "attack": "equation-solving", "defences": ["label-only"]})
    with pytest.raises(ConfigError, match="equation-solving attack does not apply to image"):
        load_config({**FAST, "dataset": "breastmnist", "attack": "equation-solving"})
    with pytest.raises(ConfigError, match="synthetic attack does not apply to text"):
        load_config({**FAST, "dataset": "sst2", "attack": "synthetic"})
    with pytest.raises(ConfigError, match="has no parameter 'strategy'"):
        load_config({**FAST, "attack": "pool", "attack_params": {"strategy": "margin"}})
    with pytest.raises(ConfigError, match="detect_params are given but no detector"):
        load_config({**FAST, "detect_params": {"delta": 0.9}})


def test_too_few_queries_for_equation_solving_fail_before_any_work() -> None:
    config = load_config(
        {**FAST, "target": "logistic", "attack": "equation-solving", "budgets": [20]}
    )
    with pytest.raises(ConfigError, match="Equation solving needs 62 queries"):
        run_audit(config)


@pytest.fixture(scope="module")
def rounded_run():
    config = load_config({**FAST, "defences": ["rounding:decimals=1"]})
    return config, run_audit(config)


def test_honest_user_columns_match_the_answers(rounded_run) -> None:
    config, result = rounded_run
    data = prepare_data(config)
    row = result.results.query("reference == 'target'").iloc[0]
    P = result.samples["seed0/target_probabilities"]
    t = result.samples["seed0/target_decisions"]
    y = result.samples["seed0/y"]
    np.testing.assert_array_equal(y, data.y_eval)
    # Rounding to one decimal keeps the decision (argmax of the rounded vector may tie at
    # 0.5/0.5 → class 0): the answered labels are the service's decisions.
    assert row["honest_accuracy"] == pytest.approx(np.mean(t == y))
    assert row["honest_agreement"] == pytest.approx(1.0)
    rounded = np.round(P, 1)
    rounded = rounded / rounded.sum(axis=1, keepdims=True)
    assert row["honest_ece"] == pytest.approx(expected_calibration_error(y, rounded))
    assert row["target_ece"] == pytest.approx(expected_calibration_error(y, P))
    assert row["honest_ece"] != pytest.approx(row["target_ece"])  # rounding moved it
    assert row["defences"] == "rounding:decimals=1"
    assert row["answer_mode"] == "rounded"
    assert row["queries_used"] == 120
    assert row["attack_stop"] == "finished"
    log = result.query_log
    assert set(log["api"]) >= {"attacker", "auditor", "honest"}
    assert int(log.query("api == 'honest'")["rows"].sum()) == len(y)


def test_label_only_defence_costs_calibration_not_accuracy() -> None:
    config = load_config({**FAST, "defences": ["label-only"]})
    result = run_audit(config)
    row = result.results.query("reference == 'target'").iloc[0]
    assert np.isnan(row["honest_ece"])
    assert row["honest_accuracy"] == pytest.approx(row["target_accuracy"])
    assert row["honest_agreement"] == 1.0
    assert row["answer_mode"] == "label"
    assert row["labels"] == "hard"  # the surrogate trained on the only thing answered


def test_config_round_trips_defences() -> None:
    config = load_config({**FAST, "defences": ["reverse-sigmoid:beta=0.5,gamma=2"]})
    again = AuditConfig.model_validate(config.model_dump(mode="json"))
    assert again.defences == config.defences
    with pytest.raises(ValidationError):
        AuditConfig.model_validate({**config.model_dump(mode="json"), "defences": ["nope"]})


@pytest.mark.parametrize(
    ("overrides", "budget"),
    [
        ({"target": "tree", "output": "leaf", "attack": "path-finding"}, 2000),
        ({"target": "logistic", "attack": "equation-solving"}, 100),
    ],
)
def test_attacks_that_solve_for_the_model_report_its_fidelity(overrides, budget) -> None:
    # Path finding maps every leaf of the depth-5 tree and equation solving recovers the
    # logistic weights: their own reconstructions agree with the target on every evaluation
    # row, whatever the configured surrogate (an MLP on the transcript) reaches.
    result = run_audit(load_config({**FAST, **overrides, "budgets": [budget]}))
    row = result.results.query("reference == 'target'").iloc[0]
    assert row["recovered_agreement"] == 1.0
    assert row["queries_used"] < budget  # both stop once the model is determined
    assert row["attack_stop"] == "finished"


def test_other_attacks_have_no_reconstruction(rounded_run) -> None:
    _, result = rounded_run
    assert result.results["recovered_agreement"].isna().all()


def test_a_detector_that_refuses_stops_the_attack_and_keeps_what_it_got() -> None:
    config = load_config(
        {
            **FAST,
            "budgets": [300],
            "detect": "prada",
            "detect_params": {"delta": 0.99, "min_distances": 20},
            "detect_refuse": True,
            "query_batch_size": 10,
        }
    )
    result = run_audit(config)
    row = result.results.query("reference == 'target'").iloc[0]
    assert row["attack_stop"] == "refused"
    assert row["detect"] == "prada"
    # the batch of 10 that made PRADA flag was refused whole: every answered row came before
    assert 20 < row["flagged_after"] < 300
    log = result.query_log.query("api == 'attacker'")
    assert log["status"].tolist()[-1] == "refused-flagged"
    assert row["queries_used"] == int(log.query("status == 'answered'")["rows"].sum())
    assert row["queries_used"] < row["flagged_after"]
    index = result.samples.get("seed0/b300/query_index")
    assert index is not None
    assert len(index) == row["queries_used"]


def test_a_stream_refused_at_its_first_batch_is_a_clear_error() -> None:
    config = load_config(
        {
            **FAST,
            "budgets": [300],
            "detect": "prada",
            "detect_params": {"delta": 0.99, "min_distances": 20},
            "detect_refuse": True,
        }
    )
    with pytest.raises(InvalidInputError, match="refused its first batch"):
        run_audit(config)


def test_the_cli_runs_an_attack_with_a_strategy_defences_and_a_detector(tmp_path) -> None:
    from typer.testing import CliRunner

    from multisteal.cli import app

    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "audit",
            "--dataset",
            "german_credit",
            "--attack",
            "activethief",
            "--strategy",
            "margin",
            "--attack-param",
            "rounds=3",
            "--defence",
            "rounding:decimals=1",
            "--defence",
            "reverse-sigmoid:beta=0.5",
            "--detect",
            "prada",
            "--detect-param",
            "min_distances=50",
            "--budget",
            "150",
            "--epsilon",
            "0.05",
            "--n-rates",
            "2",
            "--members-per-rate",
            "2",
            "--baseline-members",
            "0",
            "--no-explorer-floor",
            "--fairness-bootstrap",
            "20",
            "--threads",
            "1",
            "--quiet",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = (out / "summary.md").read_text()
    assert "## The service: defences, detection and their cost" in summary
    assert "`rounding:decimals=1 > reverse-sigmoid:beta=0.5`" in summary
    assert "prada flagged" in summary
    import pandas as pd

    results = pd.read_csv(out / "results.csv")
    assert set(results["attack_params"]) == {"rounds=3,strategy=margin"}
    assert set(results["answer_mode"]) == {"rounded"}
    listing = runner.invoke(app, ["attacks"])
    assert listing.exit_code == 0
    assert "activethief" in listing.output
    assert "Pal et al., AAAI 2020" in listing.output
    defences = runner.invoke(app, ["defences"])
    assert "reverse-sigmoid" in defences.output
    assert "beta (float)" in defences.output
    bad = runner.invoke(app, ["audit", "--dataset", "german_credit", "--strategy", "entropy"])
    assert bad.exit_code == 2
    assert "pool attack has no parameter 'strategy'" in bad.output


def test_every_budget_is_checked_before_any_work() -> None:
    # the smallest budget is too small for equation solving: refused before the target trains
    config = load_config(
        {**FAST, "target": "logistic", "attack": "equation-solving", "budgets": [20, 100]}
    )
    with pytest.raises(ConfigError, match=r"Equation solving needs 62 queries .* budget is 20"):
        run_audit(config)
