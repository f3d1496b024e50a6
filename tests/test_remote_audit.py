"""`multisteal audit --target-url`: a full audit of a live service over HTTP.

A target saved by a local run is served by `multisteal serve` (a real uvicorn on loopback); the
remote audit must give the same results and the same attacker transcript as the in-process
audit of the same saved target, spend exactly what it says from each key, and refuse a service
trained on another split before spending anything.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from multisteal.cli import app
from multisteal.errors import ConfigError
from multisteal.experiments import load_config, run_audit
from multisteal.experiments.io import write_run
from multisteal.experiments.remote import MISMATCH, NOT_AUDITOR, SAME_KEY
from multisteal.service.store import open_store
from service_helpers import free_port, stop, wait_until_healthy

runner = CliRunner()

FAST = {
    "dataset": "german_credit",
    "target": "logistic",
    "budgets": [80, 120],
    "epsilons": [0.05],
    "threads": 1,
    "dropout": {"n_rates": 2, "members_per_rate": 2},
    "baselines": {"target_members": 2, "explorer_floor": True},
    "fairness_bootstrap": 50,
    "convergence_orders": 2,
}
# The service rounds its public answers to one decimal: the auditor's view (full
# probabilities) and the honest users' (rounded) differ, so a mix-up changes the results.
PUBLIC = {"output": "rounded", "decimals": 1}
# Columns that say where the target is, not what was measured.
WHERE = {"defences", "detect", "target_service"}


@dataclass
class Service:
    url: str
    db: str
    run: Path
    attacker: str
    auditor: str


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("remote")
    write_run(run_audit(load_config(FAST)), folder / "first")
    target = folder / "first" / "target"
    db = f"sqlite:///{folder / 'service.db'}"
    with open_store(db) as store:
        attacker = store.add_key("attacker", 10_000)
        auditor = store.add_key("auditor", 10_000, auditor=True)
    port = free_port()
    command = [sys.executable, "-c", "from multisteal.cli import main; main()", "serve"]
    command += [str(target), "--port", str(port), "--db", db, "--output", "rounded"]
    command += ["--decimals", "1"]
    log = folder / "serve.log"
    with log.open("w") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, log)
        yield Service(url, db, folder / "first", attacker, auditor)
    finally:
        stop(process)


def remote(service: Service, **overrides: object) -> dict[str, object]:
    return {
        **FAST,
        **PUBLIC,
        "target_url": service.url,
        "api_key_env": "MS_ATTACKER",
        "auditor_key_env": "MS_AUDITOR",
        **overrides,
    }


def used(service: Service) -> dict[str, int]:
    with open_store(service.db) as store:
        return {k.name: k.used for k in store.list_keys()}


def test_the_remote_audit_equals_the_in_process_audit_of_the_same_target(
    service: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`multisteal audit --target-url` against the served target and `--load-target` on the
    saved one give the same results (fidelity, multiplicity, fairness, baselines, honest-user
    columns) and the attacker sends the same batches. Each key is charged exactly what the
    audit needs. Catches: answers that lose precision in JSON, the auditor's view going
    through the attacker's key (or the public output), the honest view answered with full
    probabilities, budgets sharing one key, batches reordered or resent."""
    with open_store(service.db) as store:  # one attacker per budget, as in-process
        per_budget = [store.add_key("attacker-80", 80), store.add_key("attacker-120", 120)]
    monkeypatch.setenv("MS_ATTACKER", ",".join(per_budget))
    monkeypatch.setenv("MS_AUDITOR", service.auditor)
    before = used(service)
    common = ["--dataset", "german_credit", "--target", "logistic", "--budget", "80,120"]
    common += ["--epsilon", "0.05", "--threads", "1", "--n-rates", "2", "--members-per-rate", "2"]
    common += ["--baseline-members", "2", "--fairness-bootstrap", "50"]
    common += ["--convergence-orders", "2", "--output", "rounded", "--decimals", "1", "--quiet"]
    over_http = runner.invoke(
        app,
        [
            "audit",
            *common,
            "--target-url",
            service.url,
            "--api-key-env",
            "MS_ATTACKER",
            "--auditor-key-env",
            "MS_AUDITOR",
            "--out",
            str(tmp_path / "http"),
        ],
    )
    assert over_http.exit_code == 0, over_http.output
    local = runner.invoke(
        app,
        [
            "audit",
            *common,
            "--load-target",
            str(service.run / "target"),
            "--out",
            str(tmp_path / "local"),
        ],
    )
    assert local.exit_code == 0, local.output
    for table in ("results.csv", "baselines.csv", "members.csv"):
        got = pd.read_csv(tmp_path / "http" / table)
        expected = pd.read_csv(tmp_path / "local" / table)
        keep = [c for c in expected.columns if c not in WHERE]
        pd.testing.assert_frame_equal(got[keep], expected[keep], check_exact=False, rtol=1e-12)
    results = pd.read_csv(tmp_path / "http" / "results.csv")
    assert len(results) == 2 * 2  # budgets × references
    assert set(results["defences"]) == {"not published by the service"}
    # the rounding cost honest users calibration: the honest view went through the public one
    assert (results["honest_ece"] != results["target_ece"]).all()
    logs = {name: pd.read_csv(tmp_path / name / "query_log.csv") for name in ("http", "local")}
    for api in ("attacker", "auditor", "honest", "baseline"):
        got = logs["http"][logs["http"]["api"] == api]
        expected = logs["local"][logs["local"]["api"] == api]
        assert got["rows"].sum() == expected["rows"].sum(), api
    attacker_http = logs["http"][logs["http"]["api"] == "attacker"]
    attacker_local = logs["local"][logs["local"]["api"] == "attacker"]
    # the same batches, in the same order (HTTP batches are at most the service's max_batch)
    assert attacker_http["sha256"].tolist() == attacker_local["sha256"].tolist()
    assert len(attacker_http) > 0
    after = used(service)
    assert (after["attacker-80"], after["attacker-120"]) == (80, 120)
    assert after["attacker"] == before["attacker"]
    assert set(results["attacker_keys"]) == {"one per budget"}
    assert set(results["target_service"]) == {service.url}
    spent = after["auditor"] - before["auditor"]
    auditor_rows = logs["http"][logs["http"]["api"].isin(["auditor", "honest", "baseline"])]
    assert spent == int(auditor_rows["rows"].sum())


def test_a_service_trained_on_another_split_is_refused_before_any_query(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches: evaluation rows that may hold the target's training rows (another seed's
    split) audited anyway, or refused only after the keys were charged."""
    monkeypatch.setenv("MS_ATTACKER", service.attacker)
    monkeypatch.setenv("MS_AUDITOR", service.auditor)
    before = used(service)
    config = load_config(remote(service, seed=3))
    with pytest.raises(ConfigError) as info:
        run_audit(config)
    assert str(info.value) == MISMATCH.format(
        url=service.url,
        field="split_seed",
        remote=load_config(FAST).stage_seed("split"),
        here=config.stage_seed("split"),
    )
    assert used(service) == before


def test_keys_are_checked_before_any_query(
    service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Catches: an ordinary key used as the auditor's (its answers are the public ones), one
    key for both roles, a missing variable reported as a 401 deep in the run, an audit that
    starts although a key's budget cannot pay for it."""
    before = used(service)
    config = load_config(remote(service))
    monkeypatch.delenv("MS_ATTACKER", raising=False)
    monkeypatch.setenv("MS_AUDITOR", service.auditor)
    with pytest.raises(ConfigError, match=r"MS_ATTACKER .* is not set"):
        run_audit(config)
    monkeypatch.setenv("MS_ATTACKER", service.auditor)
    with pytest.raises(ConfigError) as info:
        run_audit(config)
    assert str(info.value) == SAME_KEY
    monkeypatch.setenv("MS_ATTACKER", service.auditor)
    monkeypatch.setenv("MS_AUDITOR", service.attacker)
    with pytest.raises(ConfigError) as info:
        run_audit(config)
    assert str(info.value) == NOT_AUDITOR.format(env="MS_AUDITOR")
    monkeypatch.setenv("MS_AUDITOR", service.auditor)
    monkeypatch.setenv("MS_ATTACKER", ",".join([service.attacker] * 3))
    with pytest.raises(ConfigError, match="3 comma-separated attacker keys, but the run has 2"):
        run_audit(config)
    monkeypatch.setenv("MS_ATTACKER", f"{service.attacker},{service.attacker}")
    with pytest.raises(ConfigError, match="same attacker key more than once"):
        run_audit(config)
    other_decimals = load_config(remote(service, decimals=2))
    monkeypatch.setenv("MS_ATTACKER", service.attacker)
    with pytest.raises(
        ConfigError, match="answers rounded with decimals=1, but this run's --decimals is 2"
    ):
        run_audit(other_decimals)
    too_big = load_config(remote(service, query_batch_size=2000))
    monkeypatch.setenv("MS_ATTACKER", service.attacker)
    with pytest.raises(ConfigError, match="--query-batch 2000 exceeds the service's max_batch"):
        run_audit(too_big)
    with open_store(service.db) as store:
        small = store.add_key("small", 50)
    monkeypatch.setenv("MS_ATTACKER", small)
    monkeypatch.setenv("MS_AUDITOR", service.auditor)
    with pytest.raises(ConfigError, match=r"attacker's key has 50 rows .* needs 200 \(budget 80"):
        run_audit(config)
    assert used(service) == {**before, "small": 0}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_key_env": "A"}, "give --target-url"),
        ({"target_url": "http://x", "api_key_env": "A"}, "set auditor_key_env"),
        ({"target_url": "ftp://x", "api_key_env": "A", "auditor_key_env": "B"}, "http://"),
        ({"target_url": "http://x", "api_key_env": "A", "auditor_key_env": "A"}, "two keys"),
        (
            {"target_url": "http://x", "api_key_env": "p0iR-M3x", "auditor_key_env": "B"},
            "takes the NAME of an environment variable",
        ),
        (
            {"target_url": "http://x", "api_key_env": "A", "auditor_key_env": "B", "seeds": [0, 1]},
            "one seed",
        ),
        (
            {
                "target_url": "http://x",
                "api_key_env": "A",
                "auditor_key_env": "B",
                "defences": ["label-only"],
            },
            "its own defences",
        ),
        (
            {
                "target_url": "http://x",
                "api_key_env": "A",
                "auditor_key_env": "B",
                "target_path": "somewhere",
            },
            "not both",
        ),
    ],
)
def test_remote_configurations_are_checked(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**FAST, **overrides})
