from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from multisteal.cli import app
from multisteal.data import load_dataset
from multisteal.experiments.io import RUN_FILES

runner = CliRunner()

SMALL = [
    "--budget",
    "60,120",
    "--epsilon",
    "0,0.02",
    "--n-rates",
    "3",
    "--members-per-rate",
    "3",
    "--threads",
    "1",
    "--quiet",
]


@pytest.fixture(scope="module")
def german_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "german"
    result = runner.invoke(app, ["audit", "--dataset", "german_credit", "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    return out, result


def test_audit_writes_every_run_file(german_run) -> None:
    out, result = german_run
    for name in (*RUN_FILES, "summary.md"):
        assert (out / name).is_file(), name
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == [
        "ambiguity_vs_budget.png",
        "convergence.png",
        "fairness_members.png",
        "fidelity_vs_budget.png",
    ]
    assert "Fidelity versus multiplicity" in result.output


def test_run_from_the_written_config_reproduces_results(german_run, tmp_path) -> None:
    out, _ = german_run
    again = tmp_path / "again"
    result = runner.invoke(app, ["run", str(out / "config.yaml"), "--out", str(again), "--quiet"])
    assert result.exit_code == 0, result.output
    first, second = pd.read_csv(out / "results.csv"), pd.read_csv(again / "results.csv")
    pd.testing.assert_frame_equal(first, second)


def test_results_table_is_tidy(german_run) -> None:
    out, _ = german_run
    results = pd.read_csv(out / "results.csv")
    assert len(results) == 2 * 2 * 2  # budget × ε × reference
    assert set(results["reference"]) == {"target", "surrogate"}
    pd.testing.assert_frame_equal(
        results, pd.read_parquet(out / "results.parquet"), check_dtype=False
    )
    # ε = 0 keeps only candidates exactly as good as the reference; larger ε keeps more.
    sizes = results[results["reference"] == "target"].set_index(["budget", "epsilon"])["set_size"]
    for budget in (60, 120):
        assert 1 <= sizes[(budget, 0.0)] <= sizes[(budget, 0.02)] <= 1 + 3 * 3
    # Everyone in the largest set is within ε of the reference under the transcript criterion.
    members = pd.read_csv(out / "members.csv")
    for (budget, eps), group in members.groupby(["budget", "epsilon"]):
        reference = group.loc[group["reference"], "loss[transcript]"].iloc[0]
        assert (group["loss[transcript]"] <= reference + eps + 1e-12).all()
        assert len(group) == sizes[(budget, eps)]
    log = pd.read_csv(out / "query_log.csv")
    attacker = log[log["api"] == "attacker"]
    assert attacker.groupby("budget")["rows"].sum().to_dict() == {60: 60, 120: 120}
    # The auditor's view of the target (evaluation-set probabilities) is logged too, and so is
    # the explorer floor's full-pool transcript.
    assert log.loc[log["api"] == "auditor", "rows"].sum() == 200
    assert log.loc[log["api"] == "baseline", "rows"].sum() == 400


def test_saved_target_scores_raw_rows_like_the_audit(german_run) -> None:
    from multisteal.models import load_encoder, load_model

    out, _ = german_run
    target = load_model(out / "target")
    encoder = load_encoder(out / "target")
    ds = load_dataset("german_credit")
    samples = np.load(out / "samples.npz")
    evaluation = samples["seed0/evaluation_index"]
    assert evaluation.shape == (200,)
    # The saved target is one artifact that takes raw records, as the service did.
    raw = ds.features.iloc[evaluation].reset_index(drop=True)
    scores = target.predict_proba(raw)
    np.testing.assert_allclose(scores, samples["seed0/target_probabilities"], atol=1e-12)
    # Its encoder, loaded alone, is the one inside it.
    inner = target.model_.predict_proba(encoder.transform(raw))
    np.testing.assert_allclose(inner, scores, atol=1e-12)


def test_samples_are_per_individual(german_run) -> None:
    out, _ = german_run
    samples = np.load(out / "samples.npz")
    n_eval = len(samples["seed0/y"])
    assert n_eval == 200  # 20 % of German credit
    rc = samples["seed0/b120/eps0.02/rashomon_capacity"]
    assert rc.shape == (n_eval,)
    assert (rc >= 1 - 1e-12).all()
    assert (rc <= 2 + 1e-12).all()
    assert set(samples["seed0/sensitive/sex"]) == {"male", "female"}


def test_split_sizes_in_rows(tmp_path) -> None:
    out = tmp_path / "rows"
    args = ["audit", "--dataset", "german_credit", "--split", "500,300,150", "--out", str(out)]
    result = runner.invoke(app, [*args, *SMALL])
    assert result.exit_code == 0, result.output
    assert len(np.load(out / "samples.npz")["seed0/y"]) == 150


def test_csv_audit_without_code(tmp_path) -> None:
    ds = load_dataset("german_credit")
    frame = ds.features.copy()
    frame["credit"] = np.where(ds.y == 1, "good", "bad")
    frame["gender"] = ds.sensitive["sex"]
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "audit",
            "--csv",
            str(path),
            "--label",
            "credit",
            "--sensitive",
            "gender",
            "--out",
            str(out),
            *SMALL,
        ],
    )
    assert result.exit_code == 0, result.output
    results = pd.read_csv(out / "results.csv")
    assert results["dataset"].iloc[0] == "loans"
    assert "demographic_parity_difference[gender]_target" in results.columns


def _error(args: list[str]) -> str:
    result = runner.invoke(app, ["audit", "--quiet", *args])
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


def test_cli_errors_are_clear(tmp_path) -> None:
    assert _error(["--dataset", "mnist"]) == (
        "Error: Unknown dataset 'mnist'. Available datasets: adult, breastmnist, compas, eec, "
        "german_credit, pneumoniamnist, rotten_tomatoes, sst2."
    )
    assert _error(["--budget", "0"]) == (
        "Error: Invalid configuration: - budgets: Budget must be a positive whole number of rows, got 0."
    )
    assert _error(["--epsilon", "-0.1"]) == (
        "Error: Invalid configuration: - epsilons: epsilon must be a finite number >= 0, got -0.1."
    )
    assert _error(["--dataset", "german_credit", "--budget", "100,1000"]) == (
        "Error: The pool attack needs 1000 distinct rows but the attacker's pool has 400."
    )
    assert _error(["--split", "0.5,0.5"]) == (
        "Error: --split needs three sizes (target-train, pool, evaluation), got '0.5,0.5'."
    )
    assert _error(["--target", "xgboost"]) == (
        "Error: Invalid configuration: - target: Unknown model 'xgboost'. Available models: "
        "logistic, mlp, torch-logistic, gboost, forest, tree, cnn, tfidf-logistic, minilm-mlp."
    )
    assert _error(["--budget", "10,ten"]) == (
        "Error: --budget must be comma-separated whole numbers, got '10,ten'."
    )
    path = tmp_path / "d.csv"
    path.write_text("a,b,y\n1,x,0\n2,z,1\n")
    assert _error(["--csv", str(path), "--label", "income", "--sensitive", "b"]) == (
        "Error: Label column 'income' not found in d.csv. Available columns: a, b, y."
    )
    assert _error(["--csv", str(path), "--label", "y", "--sensitive", "gender"]) == (
        "Error: Sensitive column 'gender' not found in d.csv. Available columns: a, b, y."
    )


def test_finished_budgets_survive_a_later_failure(tmp_path, monkeypatch) -> None:
    from multisteal.errors import InvalidInputError
    from multisteal.experiments import runner as runner_module

    budget_step = runner_module._Audit._budget

    def failing(self, budget):
        if budget == 120:
            raise InvalidInputError("simulated failure at budget 120")
        return budget_step(self, budget)

    monkeypatch.setattr(runner_module._Audit, "_budget", failing)
    out = tmp_path / "partial"
    message = _error(["--dataset", "german_credit", "--out", str(out), *SMALL])
    assert message == (
        "Error: simulated failure at budget 120 Results of the finished budgets "
        f"(seed 0: budgets 60) are kept in {out}."
    )
    results = pd.read_csv(out / "results.csv")
    assert set(results["budget"]) == {60}
    assert (out / "samples.npz").is_file()


def test_summary_explains_what_shapes_the_numbers(german_run) -> None:
    from multisteal.report import RunTables, read_run, render_summary

    out, _ = german_run
    tables = read_run(out)
    text = render_summary(tables)
    # The default criterion is the cross-entropy on the held-out rows: ε is stated against the
    # reference's own loss, per budget.
    loss = tables.results.query("reference == 'target'").groupby("budget")["reference_loss"]
    assert "`transcript-loss` criterion is a cross-entropy against the probabilities" in text
    assert f"{loss.mean()[60]:.4f} at budget 60, {loss.mean()[120]:.4f} at budget 120" in text
    # Under a 0-1 criterion the step of the loss is stated instead (20 % of 60 and 120 rows).
    zero_one = tables.results.assign(criterion="transcript")
    zero_one["criterion_step"] = 1 / (0.2 * zero_one["budget"])
    text01 = render_summary(RunTables(zero_one, tables.members, tables.baselines))
    assert (
        "(12 rows at budget 60, 24 rows at budget 120): it moves in steps of 0.0833, 0.0417"
        in text01
    )
    assert "Fairness treats `good` as the favourable class." in text
    assert "per-pass" not in text
    # The label-conditioned cells of the evaluation rows, counted here from the saved arrays:
    # German credit's age<25 group is large enough for demographic parity, not for TPR/FPR.
    samples = np.load(out / "samples.npz")
    young = samples["seed0/sensitive/age_group"] == "age<25"
    y = samples["seed0/y"]
    positives, negatives = int((young & (y == 1)).sum()), int((young & (y == 0)).sum())
    assert young.sum() >= 20
    assert positives < 20
    assert negatives < 20
    assert (
        f"age_group=age<25 ({positives} positives); age_group=age<25 ({negatives} negatives)."
        in text
    )
    # One seed: no interval, no finding claimed.
    assert "This run has a single seed" in text
    assert "practically equivalent" not in text
    results = tables.results.copy()
    results["explorer_dropout_semantics"] = "per-pass"
    results["fairness_excluded_cells"] = "sex=female (3 negatives)"
    text = render_summary(RunTables(results, tables.members, tables.baselines))
    assert "Dropout used **per-pass** semantics" in text
    assert "both for equalized odds): sex=female (3 negatives)." in text


def test_a_csv_audit_names_and_uses_the_favourable_class(tmp_path) -> None:
    ds = load_dataset("german_credit")
    frame = ds.features.copy()
    frame["default"] = np.where(ds.y == 1, "no", "yes")  # good credit = did not default
    frame["gender"] = ds.sensitive["sex"]
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    base = ["audit", "--csv", str(path), "--label", "default", "--sensitive", "gender", *SMALL]

    out = tmp_path / "favourable"
    result = runner.invoke(app, [*base, "--positive-label", "no", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Fairness treats `no` as the favourable class." in result.output
    row = pd.read_csv(out / "results.csv").iloc[0]
    samples = np.load(out / "samples.npz")
    y, t, g = (
        samples["seed0/y"],
        samples["seed0/target_decisions"],
        samples["seed0/sensitive/gender"],
    )
    # The class index the "no" rows received (whatever the encoding), from the dataset itself.
    no_rows = ds.y[samples["seed0/evaluation_index"]] == 1
    (favourable,) = set(y[no_rows].tolist())
    tpr = [np.mean(t[(g == s) & (y == favourable)] == favourable) for s in ("female", "male")]
    fpr = [np.mean(t[(g == s) & (y != favourable)] == favourable) for s in ("female", "male")]
    assert row["true_positive_rate_difference[gender]_target"] == pytest.approx(
        abs(tpr[0] - tpr[1])
    )
    assert row["false_positive_rate_difference[gender]_target"] == pytest.approx(
        abs(fpr[0] - fpr[1])
    )

    # Without the option the last label in sorted order ("yes") is favourable, and said so.
    out = tmp_path / "default"
    result = runner.invoke(app, [*base, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "Fairness treats `yes` as the favourable class." in result.output

    assert _error([*base[1:], "--positive-label", "maybe"]).startswith(
        "Error: positive_label 'maybe' is not a value of label column 'default'"
    )
