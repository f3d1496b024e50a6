"""Exploration at scale in an audit: chunked streaming, convergence curves, family checks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal import metrics
from multisteal.errors import ConfigError
from multisteal.experiments import load_config, run_audit

FAST = {
    "dataset": "german_credit",
    "budgets": [120],
    "epsilons": [0.0, 0.05],
    "threads": 1,
    "dropout": {"n_rates": 4, "members_per_rate": 6},
    "baselines": {"target_members": 2, "explorer_floor": False},
    "fairness_bootstrap": 0,
    "convergence_orders": 6,
}


@pytest.fixture(scope="module")
def runs():
    """The same audit with candidates in one chunk and in chunks of a few members."""
    whole = run_audit(load_config({**FAST, "chunk_mb": 64}))
    # 0.02 MB: 20 kB / (rows × 2 classes × 8 bytes), a few members per chunk.
    chunked = run_audit(load_config({**FAST, "chunk_mb": 0.02}))
    return whole, chunked


def test_chunked_audit_equals_one_chunk(runs) -> None:
    """Catches: a chunk boundary that drops or double-counts members, losses or set
    membership decided against the wrong reference loss, copies miscounted across chunks."""
    whole, chunked = runs
    rows = whole.config.epsilons
    assert len(rows) == 2
    a, b = whole.results, chunked.results
    numeric = [c for c in a.columns if pd.api.types.is_numeric_dtype(a[c])]
    pd.testing.assert_frame_equal(a[numeric], b[numeric], check_exact=False, rtol=0, atol=1e-12)
    pd.testing.assert_frame_equal(whole.members, chunked.members, check_exact=False, atol=1e-12)
    pd.testing.assert_frame_equal(whole.convergence, chunked.convergence, atol=1e-12)
    # The 6 rate-0 draws are copies of the reference: deduplicated across chunks too.
    assert (a["n_duplicates"] >= 6).all()
    assert (b["n_candidates"] == 1 + 4 * 6).all()
    assert set(whole.samples) == set(chunked.samples)
    for key, value in whole.samples.items():
        if value.dtype.kind == "f":
            np.testing.assert_allclose(chunked.samples[key], value, rtol=0, atol=1e-12)
        else:
            np.testing.assert_array_equal(chunked.samples[key], value)


def test_set_metrics_match_the_in_memory_definitions(runs) -> None:
    """The streamed per-sample arrays equal the metrics recomputed from the members' saved
    decisions... recomputed here from the samples the audit saved: RC in [1, 2], ambiguity
    flags consistent with the row's ambiguity, and the exact mode recorded."""
    whole, _ = runs
    row = whole.results[(whole.results["reference"] == "target")].iloc[-1]
    assert row["capacity_mode"] == "exact"
    key = f"seed0/b{int(row['budget'])}/eps{row['epsilon']:g}"
    flags = whole.samples[f"{key}/ambiguous_vs_target"]
    assert row["ambiguity"] == pytest.approx(float(np.mean(flags)))
    rc = whole.samples[f"{key}/rashomon_capacity"]
    assert np.all((rc >= 1.0) & (rc <= 2.0))
    assert row["rashomon_capacity_mean"] == pytest.approx(float(rc.mean()))
    # The set at ε = 0.05 contains the set at ε = 0: its ambiguity is at least as large.
    small = whole.results[(whole.results["reference"] == "target")].iloc[0]
    assert small["epsilon"] == 0.0
    assert row["ambiguity"] >= small["ambiguity"]


def test_convergence_curves_and_settled_verdicts(runs) -> None:
    """Every set has a curve per metric ending at the set's own value with all members, and a
    settled verdict per metric in the results. Catches: curves over the wrong set, the full
    fraction not equal to the reported value, orders ignored."""
    whole, _ = runs
    curves = whole.convergence
    assert {
        "seed",
        "set",
        "budget",
        "epsilon",
        "metric",
        "fraction",
        "size",
        "value",
        "low",
        "high",
    } <= set(curves.columns)
    for _, row in whole.results[whole.results["reference"] == "target"].iterrows():
        part = curves[
            (curves["set"] == "stolen")
            & (curves["epsilon"] == row["epsilon"])
            & (curves["fraction"] == 1.0)
        ].set_index("metric")
        assert part.loc["ambiguity[target]", "value"] == pytest.approx(row["ambiguity"])
        assert part.loc["ambiguity[target]", "size"] == row["set_size"]
        assert part.loc["rashomon_capacity_mean", "value"] == pytest.approx(
            row["rashomon_capacity_mean"]
        )
        assert part.loc["ambiguity[target]", "low"] == part.loc["ambiguity[target]", "high"]
        # The verdict is the rule of METRICS.md applied to the curve (5 % of the excess over the
        # floor, at least 0.001), and no verdict below 8 members.
        floors = {"ambiguity[target]": row["reference_infidelity"], "rashomon_capacity_mean": 1.0}
        for metric, floor in floors.items():
            half = curves[
                (curves["set"] == "stolen")
                & (curves["epsilon"] == row["epsilon"])
                & (curves["fraction"] == 0.5)
                & (curves["metric"] == metric)
            ]["value"].iloc[0]
            value = part.loc[metric, "value"]
            expected = abs(value - half) <= max(0.05 * abs(value - floor), 1e-3)
            verdict = row[f"settled[{metric}]"]
            if row["set_size"] < 8:
                assert pd.isna(verdict)
            else:
                assert bool(verdict) == expected
    half = curves[(curves["fraction"] == 0.5) & (curves["metric"] == "ambiguity[target]")]
    assert (half["low"] <= half["value"]).all()
    assert (half["value"] <= half["high"]).all()
    # Baseline sets have curves too.
    assert "target_retrain" in set(curves["set"])


def test_reference_capacity_mode_is_recorded_and_differs_little(runs) -> None:
    """--capacity reference runs the published stop rule; both modes agree closely on these
    smooth members, and the results say which one was used."""
    whole, _ = runs
    reference = run_audit(load_config({**FAST, "capacity": "reference", "convergence_orders": 0}))
    a = whole.results[whole.results["reference"] == "target"]["rashomon_capacity_mean"]
    b = reference.results[reference.results["reference"] == "target"]["rashomon_capacity_mean"]
    assert set(reference.results["capacity_mode"]) == {"reference"}
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=5e-3)
    assert reference.convergence.empty


@pytest.mark.parametrize(
    ("explorer", "surrogate", "message"),
    [
        ("ensemble", "mlp", "explores gboost, forest surrogates"),
        ("treefarms", "mlp", "explores tree surrogates"),
        ("dropout", "gboost", "perturbs a torch network"),
        ("awp", "tree", "perturbs a torch network"),
    ],
)
def test_explorer_family_is_checked_before_any_work(explorer, surrogate, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({**FAST, "explorer": explorer, "surrogate": surrogate})


def test_rc_capacity_option_is_validated() -> None:
    with pytest.raises(ConfigError, match="capacity"):
        load_config({**FAST, "capacity": "fast"})


def test_metric_helpers_exported() -> None:
    assert callable(metrics.rashomon_capacity)


@pytest.mark.parametrize(
    ("explorer", "surrogate", "params"),
    [
        ("ensemble", "gboost", {"n_members": 3}),
        ("ensemble", "forest", {"n_members": 3}),
        ("logistic-level-set", "logistic", {"members_per_scale": 3, "n_scales": 2}),
        ("treefarms", "tree", {"max_members": 20}),
        ("awp", "mlp", {"steps": 4}),
    ],
)
def test_every_explorer_runs_in_an_audit(explorer, surrogate, params) -> None:
    """Each explorer's set goes through the audit: members meet the ε rule under the audit's
    criterion, the reference is a member, the explorer floor runs on the same explorer."""
    if explorer == "treefarms":
        pytest.importorskip("treefarms", reason="the optional treefarms extra is not installed")
    base = {k: v for k, v in FAST.items() if k != "dropout"}
    config = load_config(
        {
            **base,
            "budgets": [200],
            "surrogate": surrogate,
            "explorer": {"name": explorer, **params},
            "baselines": {"target_members": 0, "explorer_floor": True},
            "criterion": "transcript",
            "convergence_orders": 4,
        }
    )
    result = run_audit(config)
    rows = result.results[result.results["reference"] == "target"]
    assert set(rows["explorer"]) == {explorer}
    assert (rows["set_size"] >= 1).all()
    members = result.members
    for eps, part in members.groupby("epsilon"):
        reference_loss = rows.loc[rows["epsilon"] == eps, "reference_loss"].iloc[0]
        assert (part["loss[transcript]"] <= reference_loss + eps + 1e-12).all()
        assert part["reference"].astype(bool).any()
    assert not result.baselines.empty
    assert set(result.baselines["explorer"]) == {explorer}
    reference = members[members["reference"].astype(bool)]
    assert reference["loss[transcript]"].to_numpy() == pytest.approx(
        rows.set_index("epsilon").loc[reference["epsilon"], "reference_loss"].to_numpy()
    )
    if explorer == "awp":  # channels: per-sample metrics only, no curve in M
        assert set(rows["candidate_kind"]) == {"channels"}
        assert rows["discrepancy"].isna().all()
        assert (rows["rashomon_capacity_mean"] >= 1.0).all()
        assert result.convergence.empty or "stolen" not in set(result.convergence["set"])
    else:
        assert set(rows["candidate_kind"]) == {"models"}
        assert rows["discrepancy"].notna().all()


def test_cli_explorer_params_and_listing(tmp_path) -> None:
    """--explorer-param reaches the explorer (typed by its config), a wrong one is named, and
    `multisteal explorers` lists each explorer's surrogate families."""
    from typer.testing import CliRunner

    from multisteal.cli import app

    runner = CliRunner()
    listing = runner.invoke(app, ["explorers"])
    assert listing.exit_code == 0
    assert "ensemble:" in listing.output
    assert "surrogates: gboost, forest" in listing.output
    out = tmp_path / "run"
    args = ["audit", "--dataset", "german_credit", "--surrogate", "gboost", "--budget", "120"]
    args += ["--explorer", "ensemble", "--explorer-param", "n_members=3", "--epsilon", "0.05"]
    args += ["--quiet", "--threads", "1", "--baseline-members", "0", "--no-explorer-floor"]
    args += ["--fairness-bootstrap", "0", "--convergence-orders", "0"]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = pd.read_csv(out / "results.csv")
    assert set(results["explorer_n_members"]) == {3}
    assert set(results["n_candidates"]) == {4}
    # No orders: an empty curve table that still reads back, and the summary says why.
    curves = pd.read_csv(out / "convergence.csv")
    assert curves.empty
    assert {"metric", "fraction", "value"} <= set(curves.columns)
    summary = (out / "summary.md").read_text()
    assert "--convergence-orders 0" in summary
    assert "(converged: `--capacity exact`)" in summary
    unknown = runner.invoke(
        app, [*args[:-2], "--explorer-param", "trees=5", "--out", str(tmp_path / "u")]
    )
    assert unknown.exit_code != 0
    assert "not a parameter of the ensemble explorer; its parameters: n_members" in unknown.output
    bad = runner.invoke(
        app, [*args[:-2], "--explorer-param", "n_members=lots", "--out", str(tmp_path / "b")]
    )
    assert bad.exit_code != 0
    assert "ensemble.n_members" in bad.output


def test_cli_awp_audit_writes_its_report(tmp_path) -> None:
    """An AWP audit (per-sample channels, no member fairness) finishes with its figures and a
    summary that says what its set sizes count and why no convergence is measured."""
    from typer.testing import CliRunner

    from multisteal.cli import _explorer_sections, app

    out = tmp_path / "awp"
    args = ["audit", "--dataset", "german_credit", "--budget", "120", "--explorer", "awp"]
    args += ["--explorer-param", "steps=2", "--epsilon", "0.05", "--quiet", "--threads", "1"]
    args += ["--baseline-members", "0", "--no-explorer-floor", "--fairness-bootstrap", "0"]
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = (out / "summary.md").read_text()
    assert "per-sample channels" in summary
    assert "Not measured: the explorer's sets are per-sample channels" in summary
    assert (out / "figures" / "fidelity_vs_budget.png").is_file()
    assert not (out / "figures" / "fairness_members.png").exists()
    # A comma-separated --explorer-param value is a list (e.g. the level-set scales).
    sections = _explorer_sections("logistic-level-set", {"scales": "0.05,0.1"})
    assert sections["logistic-level-set"] == {"scales": ["0.05", "0.1"]}
