from __future__ import annotations

import pytest
import yaml

from multisteal.errors import ConfigError
from multisteal.experiments import AuditConfig, load_config


def test_defaults_and_normalisation() -> None:
    config = load_config({"budgets": [1000, 250, 1000], "epsilons": [0.02, 0.005]})
    assert config.budgets == [250, 1000]
    assert config.epsilons == [0.005, 0.02]
    assert config.dataset == "adult"
    assert AuditConfig.model_validate(config.model_dump()) == config


def test_yaml_round_trip(tmp_path) -> None:
    config = load_config({"dataset": "compas", "explorer": "retrain", "retrain": {"n_members": 5}})
    path = tmp_path / "config.yaml"
    path.write_text(config.to_yaml())
    assert load_config(path) == config


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"budgets": [100, 0]},
            "Invalid configuration:\n- budgets: Budget must be a positive whole number of rows, got 0.",
        ),
        (
            {"epsilons": [0.01, -0.5]},
            "Invalid configuration:\n- epsilons: epsilon must be a finite number >= 0, got -0.5.",
        ),
        ({"budgets": []}, "Invalid configuration:\n- budgets: At least one budget is needed."),
        (
            {"explorer": "sgd-noise"},
            "Invalid configuration:\n- explorer: Unknown explorer 'sgd-noise'. Available "
            "explorers: dropout, awp, retrain, ensemble, logistic-level-set, treefarms.",
        ),
        ({"bogus": 1}, "Invalid configuration:\n- bogus: Extra inputs are not permitted"),
        (
            {"dropout": {"rates": [0.0, 1.0]}},
            "Invalid configuration:\n- dropout: Dropout rates must be in [0, 1) for bernoulli and >= 0 for gaussian; got 1.0.",
        ),
        (
            {"dropout": {"kind": "gaussian", "p_max": -0.1}},
            "Invalid configuration:\n- dropout: p_max must be in (0, 1) for bernoulli and > 0 for gaussian (the largest rate of the grid); got -0.1.",
        ),
        (
            {"dataset": None, "csv": "x.csv"},
            "Invalid configuration:\n- config: A CSV file needs --label (the label column) and --sensitive (one or more sensitive columns).",
        ),
    ],
)
def test_malformed_configs_name_the_problem(raw, expected) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert str(info.value) == expected


def test_unreadable_yaml(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a YAML mapping, got list"):
        load_config(path)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"seed": -1}, "- seed: Input should be greater than or equal to 0"),
        ({"seeds": [0, -2]}, "- seeds: Seeds must be whole numbers >= 0, got -2."),
        (
            {"surrogate": "logistic", "dropout": {"layers": "hidden"}},
            "- config: Dropout on hidden layers needs a surrogate with hidden layers",
        ),
        (
            {"criterion": "test-loss", "selection_fraction": 1.0},
            "- config: selection_fraction must be in (0, 1), got 1.0.",
        ),
    ],
)
def test_inconsistent_options_are_refused_before_any_work(raw, expected) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert expected in str(info.value)


def test_a_selection_part_too_small_is_refused_before_training() -> None:
    from multisteal.experiments import prepare_data
    from multisteal.experiments.data import TOO_FEW_ROWS

    config = load_config(
        {"dataset": "german_credit", "criterion": "test-fidelity", "selection_fraction": 0.99}
    )
    with pytest.raises(ConfigError) as info:
        prepare_data(config)
    assert str(info.value) == TOO_FEW_ROWS.format(
        criterion="test-fidelity", fraction=0.99, n=200, select=198, measure=2, minimum=10
    )


def test_relative_paths_are_resolved_against_the_config_file(tmp_path, monkeypatch) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "data").mkdir()
    path = folder / "config.yaml"
    path.write_text("csv: loans.csv\nlabel: y\nsensitive: [g]\ndata_dir: data\n")
    monkeypatch.chdir(tmp_path)  # somewhere else
    config = load_config(path)
    assert config.csv == folder / "loans.csv"
    assert config.data_dir == folder / "data"
    # A mapping (the CLI) resolves against the working directory.
    assert load_config({"csv": "x.csv", "label": "y", "sensitive": ["g"]}).csv == tmp_path / "x.csv"
    # The written config.yaml carries absolute paths.
    assert f"csv: {folder / 'loans.csv'}" in config.to_yaml()


def test_the_explorer_is_a_discriminated_union_and_the_older_form_is_read() -> None:
    from multisteal.experiments.config import (
        LEGACY_AND_UNION,
        RETRAIN_WITHOUT_NAME,
        DropoutConfig,
        RetrainConfig,
    )

    new = load_config({"explorer": {"name": "retrain", "n_members": 4, "bootstrap": True}})
    old = load_config({"explorer": "retrain", "retrain": {"n_members": 4, "bootstrap": True}})
    assert new == old
    assert isinstance(new.explorer, RetrainConfig)
    assert new.explorer_params() == {"n_members": 4, "bootstrap": True}
    # the older form's section for the other explorer is ignored when the explorer is named
    dropout = load_config(
        {"explorer": "dropout", "dropout": {"kind": "gaussian"}, "retrain": {"n_members": 2}}
    )
    assert isinstance(dropout.explorer, DropoutConfig)
    assert dropout.explorer.kind == "gaussian"
    # ... but a retrain section with no explorer named would silently run dropout: refused
    with pytest.raises(ConfigError) as unnamed:
        load_config({"retrain": {"n_members": 2}})
    assert RETRAIN_WITHOUT_NAME in str(unnamed.value)
    # a written config.yaml holds the union form and reads back equal
    assert load_config(yaml.safe_load(new.to_yaml())) == new
    with pytest.raises(ConfigError) as info:
        load_config({"explorer": {"name": "dropout"}, "dropout": {"kind": "gaussian"}})
    assert LEGACY_AND_UNION in str(info.value)
