from __future__ import annotations

import re

import numpy as np
import pytest

from multisteal.errors import DataError, InvalidInputError, NotFittedError
from multisteal.models import (
    MODELS,
    TorchMLPClassifier,
    load_model,
    make_model,
    save_model,
    train_target,
)
from multisteal.models.io import CORRUPT_ARTIFACT, PICKLED
from multisteal.models.zoo import UNKNOWN_MODEL


@pytest.mark.parametrize("name", sorted(n for n, m in MODELS.items() if "tabular" in m.modalities))
def test_every_model_learns_and_round_trips(name: str, blobs, tmp_path) -> None:
    X, y = blobs
    model = train_target(name, X[:400], y[:400], random_state=0)
    proba = model.predict_proba(X[400:])
    assert proba.shape == (200, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert (proba.argmax(axis=1) == y[400:]).mean() > 0.85
    folder = save_model(model, tmp_path / name, metadata={"dataset": "blobs"})
    again = load_model(folder)
    np.testing.assert_array_equal(again.predict_proba(X[400:]), proba)


@pytest.mark.parametrize(("name", "file"), [("logistic", "model.skops"), ("mlp", "weights.pt")])
def test_a_tampered_artifact_is_refused_before_it_is_read(blobs, tmp_path, name, file) -> None:
    X, y = blobs
    folder = save_model(train_target(name, X, y, random_state=0), tmp_path / "m")
    assert not list(folder.glob("*.joblib"))
    assert not list(folder.glob("*.pkl"))
    with (folder / file).open("ab") as handle:
        handle.write(b"tampered")
    with pytest.raises(DataError) as info:
        load_model(folder)
    assert str(info.value).startswith(f"Model artifact {folder} is corrupt: SHA-256 of {file} is")
    assert "{path}" in CORRUPT_ARTIFACT


def test_an_old_pickled_artifact_is_refused(tmp_path) -> None:
    import json

    folder = tmp_path / "old"
    folder.mkdir()
    (folder / "model.joblib").write_bytes(b"a pickle would run code here")
    (folder / "meta.json").write_text(json.dumps({"sha256": "0" * 64, "metadata": {}}))
    with pytest.raises(DataError) as info:
        load_model(folder)
    assert str(info.value) == PICKLED.format(path=folder, file="model.joblib")


def _forged(folder, obj) -> None:
    """A skops file with consistent checksums, as an attacker who controls the folder makes."""
    import hashlib
    import json

    import skops.io

    folder.mkdir()
    skops.io.dump(obj, folder / "model.skops")
    digest = hashlib.sha256((folder / "model.skops").read_bytes()).hexdigest()
    meta = {"format": 2, "kind": "skops", "sha256": digest, "files": {"model.skops": digest}}
    (folder / "meta.json").write_text(json.dumps(meta))


def test_a_skops_file_with_a_function_is_refused(blobs, tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FunctionTransformer, make_pipeline

    X, y = blobs
    # Functions from trusted-looking packages chain into code execution; none is trusted.
    chain = make_pipeline(FunctionTransformer(np.round), LogisticRegression()).fit(X, y)
    _forged(tmp_path / "evil", chain)
    with pytest.raises(DataError) as info:
        load_model(tmp_path / "evil")
    message = str(info.value)
    assert message.startswith(
        f"Model artifact {tmp_path / 'evil'}: model.skops holds types that are not on the "
        "allow-list ("
    )
    assert "numpy." in message.split("allow-list (")[1]


def test_a_skops_file_with_another_estimator_is_refused(blobs, tmp_path) -> None:
    from sklearn.tree import ExtraTreeClassifier

    X, y = blobs
    _forged(tmp_path / "other", ExtraTreeClassifier().fit(X, y))
    with pytest.raises(DataError) as info:
        load_model(tmp_path / "other")
    assert "model.skops holds" in str(info.value)
    assert "it is refused" in str(info.value)


def test_a_malformed_torch_artifact_is_refused_not_crashed(blobs, tmp_path) -> None:
    import hashlib
    import json

    X, y = blobs
    folder = save_model(train_target("mlp", X, y, random_state=0), tmp_path / "m")
    spec = json.loads((folder / "model.json").read_text())
    spec["params"]["bogus"] = 1
    (folder / "model.json").write_text(json.dumps(spec))
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["model.json"] = hashlib.sha256((folder / "model.json").read_bytes()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError) as info:
        load_model(folder)
    assert str(info.value).startswith(f"Model artifact {folder} is malformed (TypeError: ")


def test_the_encoder_is_saved_safely_and_reproduces_the_encoding(tmp_path) -> None:
    from multisteal.data import TabularPreprocessor, load_dataset
    from multisteal.models import load_encoder

    ds = load_dataset("german_credit")
    pre = TabularPreprocessor(max_categories=4).fit(ds.features)
    X = pre.transform(ds.features)
    model = train_target("logistic", X, ds.y)
    folder = save_model(model, tmp_path / "t", encoder=pre)
    again = load_encoder(folder)
    np.testing.assert_array_equal(again.transform(ds.features), X)
    np.testing.assert_array_equal(
        load_model(folder).predict_proba(again.transform(ds.features)), model.predict_proba(X)
    )


def test_unknown_model_message() -> None:
    with pytest.raises(InvalidInputError) as info:
        make_model("xgboost")
    assert str(info.value) == UNKNOWN_MODEL.format(
        name="xgboost",
        available="logistic, mlp, torch-logistic, gboost, forest, tree, cnn, tfidf-logistic, "
        "minilm-mlp",
    )


def test_mlp_is_reproducible_and_seed_sensitive(blobs) -> None:
    X, y = blobs
    a = TorchMLPClassifier((8,), epochs=3, random_state=1).fit(X, y).predict_proba(X)
    b = TorchMLPClassifier((8,), epochs=3, random_state=1).fit(X, y).predict_proba(X)
    c = TorchMLPClassifier((8,), epochs=3, random_state=2).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_mlp_fits_soft_targets(rng) -> None:
    # Soft targets that a logistic model can represent exactly: the fit must approach them.
    X = rng.normal(size=(800, 2))
    p1 = 1.0 / (1.0 + np.exp(-(1.5 * X[:, 0] - X[:, 1])))
    soft = np.column_stack([1 - p1, p1])
    model = TorchMLPClassifier((), epochs=200, lr=0.05, weight_decay=0.0, random_state=0).fit(
        X, soft
    )
    assert np.abs(model.predict_proba(X)[:, 1] - p1).max() < 0.05


def test_mlp_n_classes_keeps_missing_classes() -> None:
    X = np.arange(12, dtype=float).reshape(6, 2)
    y = np.zeros(6, dtype=np.int64)
    model = TorchMLPClassifier((4,), n_classes=3, epochs=1, random_state=0).fit(X, y)
    assert model.predict_proba(X).shape == (6, 3)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])


def test_mlp_errors() -> None:
    model = TorchMLPClassifier()
    with pytest.raises(NotFittedError, match=re.escape("call fit before predict_proba")):
        model.predict_proba(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        model.fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), np.array([0, 1]))
    with pytest.raises(InvalidInputError, match=re.escape("class index 5, outside 0..1")):
        TorchMLPClassifier(n_classes=2).fit(np.zeros((2, 2)), np.array([0, 5]))
    fitted = TorchMLPClassifier((2,), epochs=1).fit(np.zeros((4, 3)), np.array([0, 1, 0, 1]))
    with pytest.raises(InvalidInputError, match=re.escape("X has 2 features, but this")):
        fitted.predict_proba(np.zeros((1, 2)))
