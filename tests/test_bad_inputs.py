"""Bad or unusual inputs: each ends in one clear message and exit code, never a traceback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from multisteal.cli import app
from multisteal.data import load_dataset

runner = CliRunner()
FAST = ["--budget", "60", "--epsilon", "0.02", "--n-rates", "2", "--members-per-rate", "2"]
FAST += ["--threads", "1", "--quiet", "--baseline-members", "0", "--fairness-bootstrap", "0"]


def _loans(folder: Path) -> pd.DataFrame:
    ds = load_dataset("german_credit")
    frame = ds.features.copy()
    frame["credit"] = np.where(ds.y == 1, "good", "bad")
    frame["gender"] = ds.sensitive["sex"]
    return frame


def _csv(folder: Path, edit: Callable[[pd.DataFrame], pd.DataFrame], **kwargs: str) -> Path:
    path = folder / "loans.csv"
    edit(_loans(folder)).to_csv(path, index=False, **kwargs)
    return path


def _csv_args(path: Path) -> list[str]:
    return ["--csv", str(path), "--label", "credit", "--sensitive", "gender"]


def _with_inf(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[[3, 7], "credit_amount"] = np.inf
    return frame


def _with_stray_string(frame: pd.DataFrame) -> pd.DataFrame:
    frame["age"] = frame["age"].astype(object)
    frame.loc[5, "age"] = "unknown"
    return frame


def _latin1(folder: Path) -> Path:
    path = folder / "loans.csv"
    frame = _loans(folder)
    frame.loc[0, "purpose"] = "réparation"
    frame.to_csv(path, index=False, encoding="latin-1")
    return path


def _duplicate_columns(folder: Path) -> Path:
    path = folder / "loans.csv"
    frame = _loans(folder)
    text = frame.to_csv(index=False).splitlines()
    text[0] = text[0].replace("duration_months", "age", 1)  # two columns named "age"
    path.write_text("\n".join(text) + "\n")
    return path


def _artifact(folder: Path, meta: str) -> Path:
    target = folder / "target"
    target.mkdir()
    (target / "model.joblib").write_bytes(b"not a model")
    (target / "meta.json").write_text(meta)
    return target


def _corrupt_run(folder: Path, results: str, members: str = "seed,budget\n0,60\n") -> Path:
    run = folder / "run"
    run.mkdir()
    (run / "results.csv").write_text(results)
    (run / "members.csv").write_text(members)
    return run


# Each case: (name, build(tmp) -> argv, expected message (whitespace-normalised), exit code).
CASES: list[tuple[str, Callable[[Path], list[str]], str, int]] = [
    (
        "csv-infinity",
        lambda t: ["audit", *_csv_args(_csv(t, _with_inf)), *FAST, "--out", str(t / "o")],
        "Error: Column 'credit_amount' of loans.csv has 2 infinite value(s) (first at row 5); "
        "replace or drop them first.",
        2,
    ),
    (
        "csv-latin-1",
        lambda t: ["audit", *_csv_args(_latin1(t)), *FAST, "--out", str(t / "o")],
        "Error: loans.csv is not valid utf-8 text (byte 0xe9 at position ",
        2,
    ),
    (
        "csv-stray-string",
        lambda t: ["audit", *_csv_args(_csv(t, _with_stray_string)), *FAST, "--out", str(t / "o")],
        "Error: Column 'age' of loans.csv is numeric except for 1 value(s) such as 'unknown': it "
        "would silently become a 54-way categorical. Say what the column is: --numerical age "
        "(those rows are dropped, and reported) or --categorical age; or fix the file.",
        2,
    ),
    (
        "csv-duplicate-columns",
        lambda t: ["audit", *_csv_args(_duplicate_columns(t)), *FAST, "--out", str(t / "o")],
        "Error: loans.csv has duplicate column names: age. Rename them first.",
        2,
    ),
    (
        "split-one-row",
        lambda t: ["audit", "--dataset", "german_credit", "--split", "1,100,100", *FAST],
        "Error: The split leaves target-train with 1 row(s) of 1 class: a target cannot be "
        "trained or measured on it. Give larger sizes with --split.",
        2,
    ),
    (
        "out-is-a-file",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            *FAST,
            "--out",
            str(_touch(t / "taken.txt")),
        ],
        "Error: --out {tmp}/taken.txt is a file, not a folder for a run.",
        2,
    ),
    (
        "out-not-empty",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            *FAST,
            "--out",
            str(_touch(t / "old" / "x").parent),
        ],
        "Error: --out {tmp}/old exists and is not empty; choose a new folder, give --resume to "
        "finish the run there, or --force to remove its contents first.",
        2,
    ),
    (
        "meta-bad-json",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            *FAST,
            "--load-target",
            str(_artifact(t, "{bad")),
        ],
        "Error: Model artifact {tmp}/target: meta.json is not a valid record (Expecting property "
        "name enclosed in double quotes: line 1 column 2 (char 1)).",
        2,
    ),
    (
        "meta-without-sha256",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            *FAST,
            "--load-target",
            str(_artifact(t, json.dumps({"metadata": {}}))),
        ],
        "Error: Model artifact {tmp}/target: meta.json is not a valid record (no 'sha256' entry).",
        2,
    ),
    (
        "continuous-sensitive-attribute",
        lambda t: [
            "audit",
            "--csv",
            str(_csv(t, lambda f: f.assign(age_years=f["age"]))),
            "--label",
            "credit",
            "--sensitive",
            "age_years",
            *FAST,
        ],
        "Error: Sensitive attribute 'age_years' has ",
        2,
    ),
    (
        "groups-below-min-group-size",
        lambda t: ["audit", "--dataset", "german_credit", "--split", "700,250,50", *FAST],
        "Error: Sensitive attribute 'sex' has 2 group(s) on the 50 evaluation rows, and 1 of them "
        "have 20 rows or more (--min-group-size): no fairness difference can be computed. Give a "
        "larger evaluation part with --split, or lower --min-group-size.",
        2,
    ),
    (
        "budget-too-small-for-a-holdout",
        lambda t: ["audit", "--dataset", "german_credit", *FAST, "--budget", "2,60"],
        "Error: Invalid configuration: - config: Budget 2 with a held-out share of 0.2 keeps no "
        "held-out row, which the 'transcript-loss' criterion needs: use larger budgets, a larger "
        "--holdout, or a test-* criterion.",
        2,
    ),
    (
        "csv-ragged-row",
        lambda t: ["audit", *_csv_args(_ragged(t)), *FAST],
        "Error: loans.csv is not a well-formed CSV file (Error tokenizing data. C error: Expected "
        "22 fields in line 4, saw 23); check its separator (a comma is expected) and that every "
        "row has the header's number of fields.",
        2,
    ),
    (
        "csv-wrong-codec",
        lambda t: ["audit", *_csv_args(_csv(t, lambda f: f)), "--encoding", "utf-16", *FAST],
        "Error: loans.csv cannot be read as utf-16 text (UTF-16 stream does not start with BOM); "
        "check --encoding.",
        2,
    ),
    (
        "csv-numerical-label",
        lambda t: ["audit", *_csv_args(_csv(t, lambda f: f)), "--numerical", "credit", *FAST],
        "Error: Column 'credit' is the label of loans.csv; it cannot be a numerical feature too.",
        2,
    ),
    (
        "csv-numerical-text-column",
        lambda t: ["audit", *_csv_args(_csv(t, lambda f: f)), "--numerical", "purpose", *FAST],
        "Error: --numerical purpose: no value of column 'purpose' in loans.csv is a number",
        2,
    ),
    (
        "csv-eight-percent-stray-strings",
        lambda t: ["audit", *_csv_args(_csv(t, _many_stray)), *FAST],
        "Error: Column 'num_dependents' of loans.csv is numeric except for 80 value(s) such as '?'",
        2,
    ),
    (
        "csv-option-on-a-bundled-dataset",
        lambda t: ["audit", "--dataset", "german_credit", "--label", "nope", *FAST],
        "Error: Invalid configuration: - config: label applies to a CSV file (--csv), not to a "
        "bundled dataset.",
        2,
    ),
    (
        "yaml-not-utf8",
        lambda t: ["run", str(_bytes(t / "c.yaml", b"dataset: g\xe9rman\n"))],
        "Error: Cannot read configuration {tmp}/c.yaml: 'utf-8' codec can't decode byte 0xe9",
        2,
    ),
    (
        "yaml-negative-stage-seed",
        lambda t: ["run", str(_yaml(t, {"stage_seeds": {"split": -1}}))],
        "Error: Invalid configuration: - stage_seeds: Seeds must be whole numbers >= 0, got -1.",
        2,
    ),
    (
        "yaml-unknown-surrogate-parameter",
        lambda t: ["run", str(_yaml(t, {"surrogate_params": {"bogus": 1}}))],
        "Error: Invalid configuration: - config: surrogate_params: TorchMLPClassifier.__init__() "
        "got an unexpected keyword argument 'bogus'",
        2,
    ),
    (
        "force-on-a-folder-that-is-not-a-run",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            *FAST,
            "--force",
            "--out",
            str(_touch(t / "thesis" / "thesis.tex").parent),
        ],
        "Error: --out {tmp}/thesis is not a multisteal run folder (no config.yaml or run.log in "
        "it): --force only replaces earlier runs. Choose a new folder.",
        2,
    ),
    (
        "out-is-a-symlink",
        lambda t: ["audit", "--dataset", "german_credit", *FAST, "--out", str(_link(t))],
        "Error: --out {tmp}/link is a symbolic link; give the folder it points to.",
        2,
    ),
    (
        "report-corrupt-members",
        lambda t: [
            "report",
            str(
                _corrupt_run(
                    t,
                    "seed,budget,epsilon,reference,dataset,target,attack,output,surrogate,"
                    "explorer,criterion,positive_class,n_candidates,surrogate_agreement,set_size\n"
                    "0,60,0.02,target,d,mlp,pool,probabilities,mlp,dropout,transcript,good,5,0.8,3\n",
                    members="budget\n60\n",
                )
            ),
        ],
        "Error: {tmp}/run/members.csv is not a multisteal table (missing columns: seed, epsilon); "
        "re-run the audit, or restore the file.",
        2,
    ),
    (
        "csv-utf-16-without-encoding",
        lambda t: ["audit", *_csv_args(_csv(t, lambda f: f, encoding="utf-16")), *FAST],
        "Error: loans.csv is not valid utf-8 text (byte 0xff at position 0); give its encoding, "
        "e.g. --encoding utf-16.",
        2,
    ),
    (
        "csv-sensitive-all-missing",
        lambda t: ["audit", *_csv_args(_csv(t, lambda f: f.assign(gender=None))), *FAST],
        "Error: Sensitive attribute 'gender' has 1 group(s) on the 200 evaluation rows, and 1 of "
        "them have 20 rows or more (--min-group-size): no fairness difference can be computed. "
        "The column has no values there (all missing): choose another sensitive column.",
        2,
    ),
    (
        "data-dir-missing",
        lambda t: ["audit", "--dataset", "adult", "--data-dir", str(t / "nowhere"), *FAST],
        "Error: Invalid configuration: - config: data_dir {tmp}/nowhere is not an existing folder.",
        2,
    ),
    (
        "top-k-above-classes",
        lambda t: [
            "audit",
            "--dataset",
            "german_credit",
            "--output",
            "top-k",
            "--top-k",
            "5",
            *FAST,
        ],
        "Error: --top-k 5 exceeds the 2 classes of the data: the API cannot reveal more scores "
        "than there are classes. Use --top-k 2 or less (with 2, or --output probabilities, every "
        "score is revealed).",
        2,
    ),
    (
        "p-max-out-of-range",
        lambda t: ["audit", "--dataset", "german_credit", "--p-max", "2", *FAST],
        "Error: Invalid configuration: - dropout: p_max must be in (0, 1) for bernoulli and > 0 "
        "for gaussian (the largest rate of the grid); got 2.0.",
        2,
    ),
    (
        "report-on-a-file",
        lambda t: ["report", str(_touch(t / "results.txt"))],
        "Error: {tmp}/results.txt is not a run directory: it is a file.",
        2,
    ),
    (
        "report-corrupt-results",
        lambda t: [
            "report",
            str(
                _corrupt_run(
                    t,
                    "seed,budget,epsilon,reference,surrogate_agreement,set_size\n"
                    "0,60,0.02,target,0.8,3\n1,2,3,4,5,6,7,8\n",
                )
            ),
        ],
        "Error: {tmp}/run/results.csv is not a multisteal results table (Error tokenizing data. C "
        "error: Expected 6 fields in line 3, saw 8); re-run the audit, or restore the file.",
        2,
    ),
    (
        "report-results-missing-columns",
        lambda t: ["report", str(_corrupt_run(t, "seed,budget\n0,60\n"))],
        "Error: {tmp}/run/results.csv is not a multisteal results table (missing columns: "
        "epsilon, reference, dataset, target, attack, output, surrogate, explorer, criterion, "
        "positive_class, n_candidates, surrogate_agreement, set_size); re-run the audit, or "
        "restore the file.",
        2,
    ),
    (
        "report-results-without-rows",
        lambda t: ["report", str(_corrupt_run(t, ""))],
        "Error: {tmp}/run/results.csv is not a multisteal results table (No columns to parse "
        "from file); re-run the audit, or restore the file.",
        2,
    ),
    (
        "yaml-csv-without-dataset",
        lambda t: ["run", str(_yaml(t, {"csv": str(t / "none.csv"), "label": "y"}))],
        "Error: Invalid configuration: - config: A CSV file needs --label (the label column) and "
        "--sensitive (one or more sensitive columns).",
        2,
    ),
]


def _ragged(folder: Path) -> Path:
    path = _csv(folder, lambda f: f)
    lines = path.read_text().splitlines()
    lines[3] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    return path


def _many_stray(frame: pd.DataFrame) -> pd.DataFrame:
    frame["num_dependents"] = frame["num_dependents"].astype(object)
    frame.loc[frame.index[::12][:80], "num_dependents"] = "?"  # 8 % of the rows
    return frame


def _bytes(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


def _link(folder: Path) -> Path:
    (folder / "real").mkdir()
    (folder / "link").symlink_to(folder / "real")
    return folder / "link"


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("x")
    return path


def _yaml(folder: Path, config: dict[str, object]) -> Path:
    import yaml

    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(("name", "build", "expected", "code"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_clear_message(
    tmp_path, monkeypatch, name, build, expected, code
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, build(tmp_path))
    output = " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == code, result.output
    assert output.startswith(expected.format(tmp=tmp_path)), output


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only folder")
def test_a_read_only_out_is_refused_before_any_work(tmp_path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    result = runner.invoke(
        app, ["audit", "--dataset", "german_credit", *FAST, "--out", str(folder / "run")]
    )
    assert result.exit_code == 2
    assert "Cannot write to --out" in result.output


def test_force_replaces_an_old_run_instead_of_mixing_into_it(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("dataset: german_credit\n")  # an earlier run
    (out / "summary.md").write_text("an old summary")
    (out / "stale.png").write_text("old figure")
    args = ["audit", "--dataset", "german_credit", *FAST, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 2  # refused without --force
    assert (out / "stale.png").is_file()  # and nothing was touched
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert not (out / "stale.png").exists()
    assert (out / "summary.md").read_text() != "an old summary"


def test_ctrl_c_exits_130_and_leaves_a_partial_run(tmp_path, monkeypatch) -> None:
    from multisteal.experiments import runner as runner_module

    budget_step = runner_module._Audit._budget

    def interrupted(self, budget):
        if budget == 120:
            raise KeyboardInterrupt
        return budget_step(self, budget)

    monkeypatch.setattr(runner_module._Audit, "_budget", interrupted)
    out = tmp_path / "run"
    args = ["audit", "--dataset", "german_credit", *FAST, "--budget", "60,120", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 130
    assert " ".join(result.output.split()) == (
        "Error: Interrupted (Ctrl-C). Results of the finished budgets (seed 0: budgets 60) are "
        f"kept in {out}."
    )
    summary = (out / "summary.md").read_text()
    assert "**Partial run** — it stopped early (Interrupted (Ctrl-C).)" in summary
    assert "Finished and kept: seed 0: budgets 60" in summary
    assert set(pd.read_csv(out / "results.csv")["budget"]) == {60}
    log = (out / "run.log").read_text()
    assert "stopped (exit 130): Interrupted (Ctrl-C).\nResults of the finished budgets" in log


def test_report_on_a_run_with_an_empty_member_table(tmp_path) -> None:
    out = tmp_path / "run"
    assert (
        runner.invoke(
            app, ["audit", "--dataset", "german_credit", *FAST, "--out", str(out)]
        ).exit_code
        == 0
    )
    (out / "members.csv").write_text("")
    (out / "figures" / "fairness_members.png").unlink()
    result = runner.invoke(app, ["report", str(out)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert not (out / "figures" / "fairness_members.png").exists()  # no members, no scatter
    assert (out / "summary.md").is_file()


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path) -> None:
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [str(Path(sys.executable).parent / "multisteal"), "audit", "--dataset", "adult"]
    command += ["--budget", "250,500,1000,2000", "--n-rates", "3", "--members-per-rate", "3"]
    command += ["--threads", "1", "--quiet", "--baseline-members", "0", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "results.csv").is_file() and process.poll() is None:
        assert time.monotonic() < deadline, "the first budget never finished"
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert "Traceback" not in stderr
    assert "Error: Terminated (SIGTERM)." in " ".join(stderr.split())
    summary = (out / "summary.md").read_text()
    assert "**Partial run** — it stopped early (Terminated (SIGTERM).)" in summary
    assert set(pd.read_csv(out / "results.csv")["budget"]) < {250, 500, 1000, 2000}


def test_a_continuous_attribute_is_called_continuous(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = _csv(tmp_path, lambda f: f.assign(age_years=f["age"]))
    args = ["audit", "--csv", str(path), "--label", "credit", "--sensitive", "age_years", *FAST]
    output = " ".join(runner.invoke(app, args).output.split())
    assert "It looks continuous (" in output
    assert "bin it into a few groups first (e.g. age bands)." in output
    assert not (tmp_path / "runs").exists()  # a run that kept nothing leaves no folder behind


def test_a_three_class_csv_is_audited_favourable_against_the_rest(tmp_path) -> None:
    ds = load_dataset("german_credit")
    amount = ds.features["credit_amount"]
    risk = np.where(ds.y == 0, "high", np.where(amount > amount.median(), "medium", "low"))
    path = _csv(tmp_path, lambda f: f.drop(columns="credit").assign(risk=risk))
    out = tmp_path / "run"
    args = ["audit", "--csv", str(path), "--label", "risk", "--sensitive", "gender"]
    # "high" is class 0 of (high, low, medium): an implementation that ignored the favourable
    # class, or compared raw labels with pos_label=1, would measure "low" instead.
    result = runner.invoke(app, [*args, "--positive-label", "high", *FAST, "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert (
        "Fairness treats `high` as the favourable class and compares it against the other 2 "
        "classes together." in text
    )
    samples = np.load(out / "samples.npz")
    y, t = samples["seed0/y"], samples["seed0/target_decisions"]
    g = samples["seed0/sensitive/gender"]
    assert set(np.unique(y)) == {0, 1, 2}
    favourable = 0
    row = pd.read_csv(out / "results.csv").iloc[0]

    def gap(values: list[float]) -> float:
        return abs(values[0] - values[1])

    def rate(cond: np.ndarray) -> list[float]:
        return [np.mean(t[(g == s) & cond] == favourable) for s in ("female", "male")]

    every = np.ones(len(y), dtype=bool)
    tpr, fpr = gap(rate(y == favourable)), gap(rate(y != favourable))
    assert row["demographic_parity_difference[gender]_target"] == pytest.approx(gap(rate(every)))
    assert row["true_positive_rate_difference[gender]_target"] == pytest.approx(tpr)
    assert row["false_positive_rate_difference[gender]_target"] == pytest.approx(fpr)
    assert row["equalized_odds_difference[gender]_target"] == pytest.approx(max(tpr, fpr))
    rc = samples["seed0/b60/eps0.02/rashomon_capacity"]
    assert (rc >= 1 - 1e-9).all()
    assert (rc <= 3 + 1e-9).all()


def test_without_a_terminal_progress_is_plain_lines_and_every_run_has_a_log(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["audit", "--dataset", "german_credit", *[a for a in FAST if a != "--quiet"]]
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # CliRunner is not a terminal: one plain, time-stamped line per step, no bar redraws.
    steps = [line for line in lines if line.endswith("budget 60: attack (pool)")]
    assert len(steps) == 1
    assert not any("\x1b[" in line or "━" in line for line in lines)
    log = (out / "run.log").read_text().splitlines()
    assert log[0].endswith("multisteal 0.1.0: audit of german_credit, seeds [0]")
    assert any(line.endswith("budget 60: exploring the Rashomon set (dropout)") for line in log)
    assert any("timing seed0/explore+metrics[60]:" in line for line in log)
    assert "] finished in " in log[-1]


def test_resume_finishes_an_interrupted_run_exactly(tmp_path, monkeypatch) -> None:
    base = ["audit", "--dataset", "german_credit", *FAST, "--budget", "60,120,160"]
    base += ["--seeds", "0,1"]
    # The reference: one uninterrupted run.
    full = tmp_path / "full"
    assert runner.invoke(app, [*base, "--out", str(full)]).exit_code == 0
    # Interrupted at seed 1's budget 120: seed 0 and seed 1's budget 60 are finished.
    out = tmp_path / "run"
    with monkeypatch.context() as patch:
        from multisteal.experiments import runner as runner_module

        budget_step = runner_module._Audit._budget
        state = {"seen": 0}

        def step(self, b):
            if b == 120:
                state["seen"] += 1
                if state["seen"] == 2:  # seed 1
                    raise KeyboardInterrupt
            return budget_step(self, b)

        patch.setattr(runner_module._Audit, "_budget", step)
        result = runner.invoke(app, [*base, "--out", str(out)])
    assert result.exit_code == 130
    assert "seed 0: budgets 60, 120, 160; seed 1: budgets 60" in " ".join(result.output.split())
    # Resume: only seed 1's budgets 120 and 160 run again.
    calls: list[tuple[int, int]] = []
    with monkeypatch.context() as patch:
        from multisteal.experiments import runner as runner_module

        budget_step = runner_module._Audit._budget

        def counted(self, b):
            calls.append((self.config.seed, b))
            return budget_step(self, b)

        patch.setattr(runner_module._Audit, "_budget", counted)
        result = runner.invoke(app, [*base, "--out", str(out), "--resume"])
    assert result.exit_code == 0, result.output
    assert calls == [(1, 120), (1, 160)]
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "results.csv"), pd.read_csv(full / "results.csv")
    )
    pd.testing.assert_frame_equal(
        pd.read_csv(out / "members.csv"), pd.read_csv(full / "members.csv")
    )
    done, again = np.load(out / "samples.npz"), np.load(full / "samples.npz")
    assert sorted(done.files) == sorted(again.files)
    for key in again.files:
        np.testing.assert_array_equal(done[key], again[key], err_msg=key)
    assert "Partial run" not in (out / "summary.md").read_text()
    assert (
        "resuming: kept seed 0: budgets [60, 120, 160]; seed 1: budgets [60]"
        in (out / "run.log").read_text()
    )


def test_resume_refuses_another_configuration_or_a_changed_csv(tmp_path) -> None:
    out = tmp_path / "run"
    path = _csv(tmp_path, lambda f: f)
    args = ["audit", *_csv_args(path), *FAST, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    result = runner.invoke(app, [*args, "--resume", "--budget", "80", "--epsilon", "0.05"])
    assert result.exit_code == 2
    assert " ".join(result.output.split()) == (
        f"Error: --resume needs the same configuration as the run in {out}; these settings "
        "differ: budgets, epsilons. Run with the same settings, or start anew with --force."
    )
    path.write_text(path.read_text().replace("female", "Female", 1))
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 2
    assert f"Error: --resume: {path} changed since the run in {out} started" in (
        " ".join(result.output.split())
    )
    # Nothing to finish: a complete run resumed recomputes nothing and stays the same.
    path.write_text(path.read_text().replace("Female", "female", 1))
    before = pd.read_csv(out / "results.csv")
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), before)


def test_a_free_text_column_is_capped_and_reported(tmp_path) -> None:
    ids = [f"note {i}" for i in range(1000)]
    path = _csv(tmp_path, lambda f: f.assign(notes=ids))
    out = tmp_path / "run"
    args = ["audit", *_csv_args(path), *FAST, "--max-categories", "10", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "Note: categorical features capped by --max-categories: notes (" in text
    summary = " ".join((out / "summary.md").read_text().split())
    assert "grouped as `(other)`; --max-categories): notes (" in summary
    capped = pd.read_csv(out / "results.csv")["capped_categories"].iloc[0]
    assert capped == "notes (400 values → 10)"  # all 400 target-train rows are distinct


def test_numerical_reads_a_column_with_stray_strings_and_reports_the_dropped_rows(
    tmp_path,
) -> None:
    path = _csv(tmp_path, _with_stray_string)
    out = tmp_path / "run"
    args = ["audit", *_csv_args(path), "--numerical", "age", *FAST, "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    note = "1 row(s) dropped because numerical column 'age' held non-numbers ('unknown')"
    assert f"Note: {note}." in " ".join(result.output.split())
    assert f"Data: {note}." in (out / "summary.md").read_text()
    samples = np.load(out / "samples.npz")
    assert len(samples["seed0/evaluation_index"]) == 200  # 20 % of the 999 rows left, rounded
    # As a categorical it is accepted too, as what the user said it is.
    categorical = runner.invoke(
        app,
        ["audit", *_csv_args(path), "--categorical", "age", *FAST, "--out", str(tmp_path / "c")],
    )
    assert categorical.exit_code == 0, categorical.output


def test_resume_refuses_a_run_whose_tables_are_damaged(tmp_path) -> None:
    out = tmp_path / "run"
    args = ["audit", "--dataset", "german_credit", *FAST, "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    for name in ("samples.npz", "members.csv"):
        damaged = tmp_path / name
        damaged.mkdir()
        for item in out.iterdir():
            if item.is_file() and item.name != name:
                (damaged / item.name).write_bytes(item.read_bytes())
        result = runner.invoke(app, [*args[:-1], str(damaged), "--resume"])
        assert result.exit_code == 2, result.output
        assert " ".join(result.output.split()) == (
            f"Error: --resume needs a multisteal run in {damaged}, but {name} is missing or "
            "unreadable."
        )


def test_a_continuous_attribute_is_refused_even_when_some_values_are_frequent(tmp_path) -> None:
    path = _csv(tmp_path, lambda f: f.assign(age_years=f["age"]))
    args = ["audit", "--csv", str(path), "--label", "credit", "--sensitive", "age_years"]
    result = runner.invoke(
        app, [*args, *FAST, "--split", "0.2,0.2,0.6", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "It looks continuous (" in " ".join(result.output.split())
