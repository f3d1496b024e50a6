"""The shared torch training loop (TorchClassifier), the small CNN and their artifacts."""

from __future__ import annotations

import hashlib
import json
import re
from functools import partial

import numpy as np
import pytest
import torch
from sklearn.base import clone
from torch import nn

from multisteal.errors import DataError, InvalidInputError, NotFittedError
from multisteal.models.cnn import (
    BAD_CHANNELS,
    BAD_HIDDEN,
    BAD_IMAGES,
    BEYOND_FLOAT32,
    NOT_4D,
    TOO_SMALL,
    TorchCNNClassifier,
    small_cnn,
)
from multisteal.models.io import CANNOT_SAVE, FACTORY_NETWORK, load_model, save_model
from multisteal.models.mlp import TorchMLPClassifier, as_float_matrix, softmax
from multisteal.models.torch_base import (
    BAD_SAMPLE_SHAPE,
    EMPTY_VALIDATION,
    LABEL_OUT_OF_RANGE,
    NO_FACTORY,
    NOT_A_MODULE,
    NOT_FINITE,
    NOT_FITTED,
    VAL_PAIR,
    TorchClassifier,
    init_uniform_,
)

# -- the MLP's numbers are pinned -----------------------------------------------------------
# Probabilities of X[:3] and the last training loss, computed with the MLP *before* the
# training loop moved into TorchClassifier (torch 2.13 CPU, one thread, as conftest sets).
# Same seed must keep giving bit-identical numbers.
_PINNED = {
    "hard": (
        [
            [0.05440384986640103, 0.9455961501335989],
            [0.9998263449569318, 0.0001736550430683102],
            [0.10089226896987925, 0.8991077310301209],
        ],
        0.04759497568011284,
        300,
    ),
    "soft": (
        [
            [0.3666277818746942, 0.22169529700435017, 0.41167692112095566],
            [0.23698577115353797, 0.4585045597162898, 0.30450966913017224],
            [0.34161541987696686, 0.3128696534658512, 0.34551492665718186],
        ],
        1.181895661354065,
        3,
    ),
    "tanh": (
        [
            [0.33421214716698555, 0.4089620180826238, 0.2568258347503906],
            [0.3447119794232411, 0.46071458587102104, 0.19457343470573785],
            [0.3808082553599646, 0.3568982147238067, 0.26229352991622873],
        ],
        1.022309919198354,
        4,
    ),
    "three": (
        [
            [0.32200349545042106, 0.36458204719013754, 0.3134144573594414],
            [0.33989618568307106, 0.3065511346076696, 0.35355267970925935],
            [0.3060827665734481, 0.36275797448475383, 0.3311592589417982],
        ],
        1.1106703281402588,
        7,
    ),
}


def _pinned_case(name: str) -> tuple[TorchMLPClassifier, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(60, 5))
    y = (X[:, 0] - X[:, 2] > 0).astype(np.int64)
    y3 = np.digitize(X[:, 1], [-0.4, 0.4])
    soft = np.abs(rng.normal(size=(60, 3)))
    soft /= soft.sum(axis=1, keepdims=True)
    cases = {
        "hard": (TorchMLPClassifier((16, 8), epochs=5, random_state=3), y),
        "soft": (
            TorchMLPClassifier((), epochs=3, batch_size=16, min_steps=10, random_state=0),
            soft,
        ),
        "tanh": (
            TorchMLPClassifier(
                (12,), activation="tanh", n_classes=3, epochs=4, batch_size=25, min_steps=0
            ),
            y,
        ),
        "three": (
            TorchMLPClassifier(
                (8,),
                activation="gelu",
                epochs=7,
                batch_size=32,
                min_steps=0,
                lr=3e-3,
                weight_decay=0.0,
                random_state=11,
            ),
            y3,
        ),
    }
    model, targets = cases[name]
    return model, X, targets


@pytest.mark.parametrize("name", sorted(_PINNED))
def test_the_mlp_gives_the_numbers_it_gave_before_the_refactor(name: str) -> None:
    model, X, targets = _pinned_case(name)
    probabilities, last_loss, n_epochs = _PINNED[name]
    model.fit(X, targets)
    np.testing.assert_array_equal(model.predict_proba(X[:3]), np.asarray(probabilities))
    assert model.loss_curve_[-1] == last_loss
    assert len(model.loss_curve_) == n_epochs
    assert model.best_epoch_ == n_epochs - 1
    assert model.val_loss_curve_ == []


def test_the_mlp_module_keeps_its_public_names() -> None:
    assert softmax(np.zeros((1, 2))).tolist() == [[0.5, 0.5]]
    assert as_float_matrix([[1, 2]]).dtype == np.float32
    model = TorchMLPClassifier((3,), random_state=0).fit(np.eye(4), [0, 1, 0, 1])
    assert model.n_features_in_ == 4
    assert model.input_shape_ == (4,)
    assert isinstance(model, TorchClassifier)


def test_the_mlp_selects_its_epoch_on_a_validation_set(blobs) -> None:
    X, y = blobs
    kw = {"epochs": 6, "batch_size": 50, "min_steps": 0, "lr": 3e-2, "random_state": 0}
    model = TorchMLPClassifier((32,), **kw).fit(X[:60], y[:60], X_val=X[300:], y_val=y[300:])
    assert len(model.val_loss_curve_) == len(model.loss_curve_) == 6
    assert model.best_epoch_ == int(np.argmin(model.val_loss_curve_))
    kw["epochs"] = model.best_epoch_ + 1
    short = TorchMLPClassifier((32,), **kw).fit(X[:60], y[:60])
    np.testing.assert_array_equal(model.predict_proba(X), short.predict_proba(X))


# -- the CNN ---------------------------------------------------------------------------------
def _images(
    n: int,
    rng: np.random.Generator,
    *,
    size: tuple[int, int] = (12, 12),
    channels: int = 1,
    noise: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 is brighter in the left half of the image, class 1 in the right half."""
    y = rng.integers(0, 2, size=n)
    X = rng.normal(scale=noise, size=(n, channels, *size))
    half = size[1] // 2
    left = y == 0
    X[left, :, :, :half] += 1.0
    X[~left, :, :, half:] += 1.0
    return X, y


@pytest.fixture
def images(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return _images(300, rng)


@pytest.fixture
def fitted(images) -> TorchCNNClassifier:
    X, y = images
    return TorchCNNClassifier(random_state=0, epochs=5, min_steps=0).fit(X[:200], y[:200])


def test_the_cnn_learns_left_from_right(images, fitted) -> None:
    X, y = images
    proba = fitted.predict_proba(X[200:])
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert (fitted.predict(X[200:]) == y[200:]).mean() >= 0.95
    assert fitted.input_shape_ == (1, 12, 12)
    assert fitted.classes_.tolist() == [0, 1]
    assert len(fitted.loss_curve_) == 5
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_the_default_network_is_plain_conv_and_linear_layers(fitted) -> None:
    kinds = [type(m) for m in fitted.module_ if isinstance(m, nn.Conv2d | nn.Linear)]
    assert kinds == [nn.Conv2d, nn.Conv2d, nn.Linear, nn.Linear]
    convs = [m for m in fitted.module_ if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(1, 16), (16, 32)]
    linears = [m for m in fitted.module_ if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(32 * 3 * 3, 64), (64, 2)]


def test_the_cnn_is_deterministic_given_its_seed(images) -> None:
    X, y = images
    kw = {"epochs": 2, "min_steps": 0}
    a = TorchCNNClassifier(random_state=5, **kw).fit(X[:100], y[:100])
    b = TorchCNNClassifier(random_state=5, **kw).fit(X[:100], y[:100])
    c = TorchCNNClassifier(random_state=6, **kw).fit(X[:100], y[:100])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    for name, value in a.module_.state_dict().items():
        assert torch.equal(value, b.module_.state_dict()[name])
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_building_the_cnn_leaves_the_global_seed_alone(images) -> None:
    X, y = images
    torch.manual_seed(0)
    a = TorchCNNClassifier(random_state=1, epochs=1, min_steps=0).fit(X[:50], y[:50])
    torch.manual_seed(123)
    b = TorchCNNClassifier(random_state=1, epochs=1, min_steps=0).fit(X[:50], y[:50])
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))


@pytest.mark.parametrize(
    ("channels", "size", "flat"),
    [(3, (20, 24), 32 * 5 * 6), (1, (4, 4), 32), (2, (7, 5), 32), (5, (28, 9), 32 * 7 * 2)],
)
def test_unusual_image_shapes_and_channels(rng, channels, size, flat) -> None:
    X, y = _images(40, rng, size=size, channels=channels)
    model = TorchCNNClassifier(random_state=0, epochs=2, min_steps=0).fit(X, y)
    assert model.input_shape_ == (channels, *size)
    first = next(m for m in model.module_ if isinstance(m, nn.Linear))
    assert first.in_features == flat
    assert model.predict_proba(X).shape == (40, 2)


def test_other_architectures(rng) -> None:
    X, y = _images(40, rng, size=(16, 16))
    model = TorchCNNClassifier((4, 8, 8), hidden=10, random_state=0, epochs=1, min_steps=0)
    model.fit(X, y)
    convs = [m for m in model.module_ if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 8]
    first = next(m for m in model.module_ if isinstance(m, nn.Linear))
    assert (first.in_features, first.out_features) == (8 * 2 * 2, 10)
    with pytest.raises(InvalidInputError) as info:
        model.fit(X[:, :, :7, :7], y)
    assert str(info.value) == TOO_SMALL.format(min=8, stages=3, height=7, width=7)


def test_the_cnn_fits_soft_targets(images) -> None:
    X, y = images
    soft = np.full((300, 3), 0.05)
    soft[np.arange(300), y] = 0.9
    model = TorchCNNClassifier(random_state=0, epochs=5, min_steps=0).fit(X[:200], soft[:200])
    assert model.n_classes_ == 3
    proba = model.predict_proba(X[200:])
    assert proba.shape == (100, 3)
    assert (proba.argmax(axis=1) == y[200:]).mean() >= 0.95
    assert np.all(proba[:, 2] < 0.2)  # the class that is never likely stays unlikely


def test_n_classes_covers_a_class_missing_from_training(images) -> None:
    X, y = images
    model = TorchCNNClassifier(n_classes=4, random_state=0, epochs=1, min_steps=0)
    assert model.fit(X[:50], y[:50]).predict_proba(X).shape == (300, 4)


def test_a_module_factory_gives_the_same_network(images) -> None:
    X, y = images
    kw = {"epochs": 2, "min_steps": 0, "batch_size": 64, "lr": 3e-3, "random_state": 3}
    cnn = TorchCNNClassifier((8, 8), hidden=16, **kw).fit(X[:100], y[:100])
    factory = partial(small_cnn, channels=(8, 8), hidden=16)
    generic = TorchClassifier(factory, **kw).fit(X[:100], y[:100])
    np.testing.assert_array_equal(generic.predict_proba(X), cnn.predict_proba(X))
    assert generic.input_shape_ == (1, 12, 12)
    assert "module_factory" in generic.get_params()


def test_a_hand_written_factory(blobs) -> None:
    def factory(shape: tuple[int, ...], n_classes: int, generator: torch.Generator) -> nn.Module:
        return init_uniform_(nn.Sequential(nn.Linear(shape[0], n_classes)), generator)

    X, y = blobs
    model = TorchClassifier(factory, epochs=5, random_state=0).fit(X[:400], y[:400])
    assert (model.predict(X[400:]) == y[400:]).mean() > 0.85
    with pytest.raises(InvalidInputError) as info:
        model.predict(X[:, :3])
    assert str(info.value) == BAD_SAMPLE_SHAPE.format(
        got=(3,), cls="TorchClassifier", expected=(5,)
    )


def test_factory_errors(blobs) -> None:
    X, y = blobs
    with pytest.raises(InvalidInputError) as info:
        TorchClassifier().fit(X, y)
    assert str(info.value) == NO_FACTORY.format(cls="TorchClassifier")
    with pytest.raises(InvalidInputError) as info:
        TorchClassifier(lambda shape, n, gen: "not a module").fit(X, y)  # type: ignore[arg-type,return-value]
    assert str(info.value) == NOT_A_MODULE.format(type="str")


def test_the_cnn_clones_like_a_scikit_learn_estimator() -> None:
    model = TorchCNNClassifier((8,), hidden=12, epochs=3, random_state=4)
    again = clone(model)
    assert again.get_params() == model.get_params()
    assert again.get_params()["channels"] == (8,)


# -- validation-based epoch selection --------------------------------------------------------
def test_validation_keeps_the_best_epoch(rng) -> None:
    """30 noisy training images and a high learning rate overfit after a few epochs."""
    X, y = _images(30, rng, noise=3.0)
    X_val, y_val = _images(100, rng, noise=3.0)
    kw = {"hidden": 16, "batch_size": 10, "min_steps": 0, "lr": 1e-2, "weight_decay": 0.0}
    model = TorchCNNClassifier((4,), epochs=25, random_state=0, **kw)
    model.fit(X, y, X_val=X_val, y_val=y_val)
    assert len(model.val_loss_curve_) == len(model.loss_curve_) == 25
    assert model.best_epoch_ == int(np.argmin(model.val_loss_curve_))
    assert model.best_epoch_ < 24  # the later epochs overfit
    assert model.val_loss_curve_[-1] > min(model.val_loss_curve_)
    # The kept weights are those of a model trained for exactly best_epoch_ + 1 epochs.
    short = TorchCNNClassifier((4,), epochs=model.best_epoch_ + 1, random_state=0, **kw)
    short.fit(X, y)
    np.testing.assert_array_equal(model.predict_proba(X_val), short.predict_proba(X_val))
    # Its validation loss is the recorded minimum.
    proba = model.predict_proba(X_val)
    loss = -np.log(proba[np.arange(100), y_val]).mean()
    np.testing.assert_allclose(loss, min(model.val_loss_curve_), rtol=1e-5)


def test_validation_does_not_change_training(images) -> None:
    X, y = images
    kw = {"epochs": 3, "min_steps": 0, "random_state": 2}
    plain = TorchCNNClassifier(**kw).fit(X[:100], y[:100])
    checked = TorchCNNClassifier(**kw).fit(X[:100], y[:100], X_val=X[100:], y_val=y[100:])
    assert checked.loss_curve_ == plain.loss_curve_
    assert plain.val_loss_curve_ == []
    assert plain.best_epoch_ == 2


def test_validation_errors(images) -> None:
    X, y = images
    model = TorchCNNClassifier(epochs=1, min_steps=0)
    with pytest.raises(InvalidInputError) as info:
        model.fit(X, y, X_val=X)
    assert str(info.value) == VAL_PAIR.format(given="X_val")
    with pytest.raises(InvalidInputError) as info:
        model.fit(X, y, y_val=y)
    assert str(info.value) == VAL_PAIR.format(given="y_val")
    with pytest.raises(InvalidInputError) as info:
        model.fit(X, y, X_val=X[:0], y_val=y[:0])
    assert str(info.value) == EMPTY_VALIDATION
    with pytest.raises(InvalidInputError) as info:
        model.fit(X, y, X_val=X[:3], y_val=[0, 1, 2])
    assert str(info.value) == LABEL_OUT_OF_RANGE.format(value=2, last=1, n_classes=2)
    with pytest.raises(InvalidInputError) as info:
        model.fit(X, y, X_val=X[:3, :, :8], y_val=y[:3])
    assert str(info.value) == BAD_IMAGES.format(
        got=(1, 8, 12), cls="TorchCNNClassifier", expected=(1, 12, 12)
    )
    assert not hasattr(model, "module_")


# -- input errors ----------------------------------------------------------------------------
def test_image_errors(images, fitted) -> None:
    X, y = images
    model = TorchCNNClassifier(epochs=1, min_steps=0)
    with pytest.raises(NotFittedError) as info:
        model.predict_proba(X)
    assert str(info.value) == NOT_FITTED.format(cls="TorchCNNClassifier", method="predict_proba")
    with pytest.raises(InvalidInputError) as info:
        model.fit(X[:, 0], y)
    assert str(info.value) == NOT_4D.format(shape=(300, 12, 12))
    with pytest.raises(InvalidInputError) as info:
        model.fit(X[:, :, :3], y)
    assert str(info.value) == TOO_SMALL.format(min=4, stages=2, height=3, width=12)
    bad = X.copy()
    bad[3, 0, 2, 2] = np.nan
    with pytest.raises(InvalidInputError) as info:
        model.fit(bad, y)
    assert str(info.value) == NOT_FINITE
    with pytest.raises(InvalidInputError) as info:
        fitted.predict(np.repeat(X, 3, axis=1))
    assert str(info.value) == BAD_IMAGES.format(
        got=(3, 12, 12), cls="TorchCNNClassifier", expected=(1, 12, 12)
    )
    with pytest.raises(InvalidInputError) as info:
        fitted.predict(np.full((1, 1, 12, 12), 1e300))  # overflows float32
    assert str(info.value) == BEYOND_FLOAT32


@pytest.mark.parametrize("channels", [(), (16, 0), "16", (2.5,)])
def test_bad_channels(images, channels) -> None:
    X, y = images
    with pytest.raises(InvalidInputError) as info:
        TorchCNNClassifier(channels, epochs=1).fit(X, y)
    assert str(info.value) == BAD_CHANNELS.format(channels=channels)


@pytest.mark.parametrize("hidden", [0, -3, 2.0, True])
def test_bad_hidden(images, hidden) -> None:
    X, y = images
    with pytest.raises(InvalidInputError) as info:
        TorchCNNClassifier(hidden=hidden, epochs=1).fit(X, y)
    assert str(info.value) == BAD_HIDDEN.format(hidden=hidden)


def test_logits_are_batched(images, fitted) -> None:
    X, _ = images
    whole = fitted.logits(X)
    np.testing.assert_allclose(fitted.logits(X, batch_size=7), whole, rtol=1e-5, atol=1e-6)
    assert fitted.logits(X[:0]).shape == (0, 2)


# -- artifacts -------------------------------------------------------------------------------
def test_a_cnn_round_trips_through_a_safe_artifact(images, tmp_path) -> None:
    X, y = images
    model = TorchCNNClassifier((8, 8), hidden=16, epochs=3, min_steps=0, random_state=0)
    model.fit(X[:100], y[:100], X_val=X[100:200], y_val=y[100:200])
    folder = save_model(model, tmp_path / "cnn")
    spec = json.loads((folder / "model.json").read_text())
    assert spec["torch_class"] == "TorchCNNClassifier"
    assert spec["input_shape"] == [1, 12, 12]
    again = load_model(folder)
    assert isinstance(again, TorchCNNClassifier)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert again.get_params() == model.get_params()
    assert again.input_shape_ == (1, 12, 12)
    assert again.val_loss_curve_ == model.val_loss_curve_
    assert again.best_epoch_ == model.best_epoch_
    assert again.loss_curve_ == model.loss_curve_


def _rewrite_spec(folder, edit) -> None:
    spec = json.loads((folder / "model.json").read_text())
    edit(spec)
    (folder / "model.json").write_text(json.dumps(spec))
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"]["model.json"] = hashlib.sha256((folder / "model.json").read_bytes()).hexdigest()
    (folder / "meta.json").write_text(json.dumps(meta))


def test_an_mlp_artifact_from_before_the_cnn_still_loads(blobs, tmp_path) -> None:
    X, y = blobs
    model = TorchMLPClassifier((8,), epochs=3, random_state=0).fit(X, y)
    folder = save_model(model, tmp_path / "old")

    def old_format(spec: dict) -> None:
        for key in ("torch_class", "input_shape", "val_loss_curve_", "best_epoch_"):
            del spec[key]

    _rewrite_spec(folder, old_format)
    again = load_model(folder)
    assert isinstance(again, TorchMLPClassifier)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert again.n_features_in_ == 5
    assert again.best_epoch_ == len(model.loss_curve_) - 1
    assert again.val_loss_curve_ == []


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda s: s.update(torch_class="os.system"), "unknown torch class 'os.system'"),
        (lambda s: s.update(input_shape=[1, -12, 12]), "input_shape in model.json"),
        (lambda s: s.update(input_shape=[1, 10, 10]), "RuntimeError"),
    ],
)
def test_a_forged_cnn_artifact_is_refused(images, tmp_path, edit, problem) -> None:
    X, y = images
    model = TorchCNNClassifier((4,), hidden=8, epochs=1, min_steps=0).fit(X[:20], y[:20])
    folder = save_model(model, tmp_path / "m")
    _rewrite_spec(folder, edit)
    with pytest.raises(DataError) as info:
        load_model(folder)
    assert str(info.value).startswith(f"Model artifact {folder} is malformed (")
    assert problem in str(info.value)


def test_a_factory_network_cannot_be_saved(images, tmp_path) -> None:
    X, y = images
    model = TorchClassifier(partial(small_cnn, channels=(4,), hidden=8), epochs=1, min_steps=0)
    model.fit(X[:20], y[:20])
    with pytest.raises(DataError, match=re.escape(FACTORY_NETWORK)) as info:
        save_model(model, tmp_path / "f")
    assert str(info.value) == CANNOT_SAVE.format(cls="TorchClassifier", problem=FACTORY_NETWORK)


# -- the dropout explorer --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_dropout_at_rate_zero_reproduces_the_cnn(images, fitted, kind) -> None:
    from multisteal.rashomon import DropoutExplorer, ExplorationContext

    X, _ = images
    inputs = {"holdout": X[:40], "evaluation": X[40:]}
    context = ExplorationContext(
        surrogate=fitted,  # type: ignore[arg-type]
        inputs=inputs,
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        rng=np.random.default_rng(0),
    )
    candidates = DropoutExplorer(kind=kind, rates=[0.0, 0.3], members_per_rate=3).explore(context)
    rates = candidates.params["rate"].to_numpy()
    for key, x in inputs.items():
        outputs = candidates.output(key)
        assert outputs.shape == (7, len(x), 2)
        expected = fitted.predict_proba(x)
        for member in np.flatnonzero(rates == 0.0):
            np.testing.assert_array_equal(outputs[member], expected)
        assert any(not np.array_equal(outputs[m], expected) for m in np.flatnonzero(rates > 0))
