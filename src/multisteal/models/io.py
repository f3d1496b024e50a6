"""Saving and loading fitted models as artifacts that are safe to load.

An artifact is a folder with ``meta.json`` and the model's files; nothing in it is a pickle:

* a torch MLP or CNN is its class, hyper-parameters and input shape (``model.json``) and its
  weights (``weights.pt``, read with ``torch.load(weights_only=True)``); the network is rebuilt
  from the recorded input shape (a ``model.json`` without ``torch_class`` is an MLP's);
* a scikit-learn model, and the encoder saved next to a target, are ``skops`` files, loaded
  with an allow-list of types (scikit-learn, numpy and multisteal's own encoder); a file that
  holds any other type is refused, naming it.

``meta.json`` records the SHA-256 of every file, and every file is checked **before** anything
is deserialised.
"""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from multisteal.errors import DataError
from multisteal.models.cnn import TorchCNNClassifier
from multisteal.models.mlp import TorchMLPClassifier
from multisteal.models.pipeline import EmbeddingEncoder, InputPipeline
from multisteal.models.torch_base import TorchClassifier
from multisteal.models.zoo import Classifier

__all__ = ["load_encoder", "load_model", "read_metadata", "save_model"]

META_FILE = "meta.json"
TORCH_PARAMS, TORCH_WEIGHTS = "model.json", "weights.pt"
SKOPS_MODEL, SKOPS_ENCODER = "model.skops", "encoder.skops"
FORMAT = 2

MISSING_ARTIFACT = "No model artifact at {path}: expected {meta} inside it."
CORRUPT_ARTIFACT = (
    "Model artifact {path} is corrupt: SHA-256 of {file} is {actual}, {meta} records {expected}."
)
BAD_META = "Model artifact {path}: {meta} is not a valid record ({problem})."
PICKLED = (
    "Model artifact {path} was saved as a pickle ({file}) by an older multisteal; loading a pickle "
    "can run arbitrary code, so it is refused. Re-run the audit that made it to save it again."
)
UNTRUSTED = (
    "Model artifact {path}: {file} holds types that are not on the allow-list ({types}); it is "
    "refused. Only scikit-learn, numpy and multisteal's encoder types are loaded."
)
NO_ENCODER = "Model artifact {path} has no encoder ({file})."
CANNOT_SAVE = (
    "Cannot save a {cls} as a safe artifact: only torch MLPs, torch CNNs and scikit-learn "
    "models are supported ({problem})."
)
FACTORY_NETWORK = "its network comes from a module_factory, which is code, not data"
UNKNOWN_TORCH_CLASS = "unknown torch class {name!r} in {file}; known: {known}"
BAD_INPUT_SHAPE = "input_shape in {file} is not a list of positive integers: {shape!r}"

#: The torch classifiers an artifact may hold, by the name ``model.json`` records; their
#: sequence-valued parameters (JSON lists) are turned back into tuples.
_TORCH_CLASSES: dict[str, type[TorchClassifier]] = {
    "TorchMLPClassifier": TorchMLPClassifier,
    "TorchCNNClassifier": TorchCNNClassifier,
}
_TUPLE_PARAMS = ("hidden_layer_sizes", "channels")

#: The only types a skops file may hold beyond skops's own defaults, by exact name: what
#: :func:`save_model` writes for the zoo's scikit-learn families and the encoder. No function
#: is ever trusted (a function reference is how a crafted file would run code).
_TRUSTED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.tree._tree.Tree",
        "multisteal.data.preprocessing.TabularPreprocessor",
        "multisteal.models.pipeline.ImageEncoder",
    }
)
#: What the top-level object of each skops file must be.
_MODEL_TYPES = (
    "sklearn.dummy.DummyClassifier",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
)
_ENCODER_TYPES = (
    "multisteal.data.preprocessing.TabularPreprocessor",
    "multisteal.models.pipeline.ImageEncoder",
    "sklearn.feature_extraction.text.TfidfVectorizer",
)
UNEXPECTED_OBJECT = (
    "Model artifact {path}: {file} holds a {cls}, not one of the types multisteal saves there "
    "({expected}); it is refused."
)
MALFORMED = "Model artifact {path} is malformed ({problem}); it is refused."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(
    model: Classifier,
    path: str | Path,
    *,
    metadata: dict[str, Any] | None = None,
    encoder: object = None,
) -> Path:
    """Write ``model`` (and the ``encoder`` that turns raw rows into its inputs) to the folder
    ``path`` with a ``meta.json`` record: the model class, versions, the SHA-256 of every file
    and any user ``metadata``."""
    import skops.io

    from multisteal import __version__

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    files: list[str] = []
    pipeline: dict[str, Any] | None = None
    if isinstance(model, InputPipeline):
        # A raw-input model: its classifier as usual, its fitted encoder next to it (or, for a
        # frozen sentence encoder, the name of the embedding model).
        pipeline = {
            "n_classes": int(model.n_classes_),
            "columns": [int(c) for c in model.columns_],
        }
        if isinstance(model.encoder_, EmbeddingEncoder):
            pipeline["embedding_model"] = model.encoder_.model
        else:
            encoder = model.encoder_
        model = model.model_
    if isinstance(model, TorchClassifier):
        (folder / TORCH_PARAMS).write_text(json.dumps(_torch_spec(model), indent=2))
        torch.save(model.module_.state_dict(), folder / TORCH_WEIGHTS)
        files += [TORCH_PARAMS, TORCH_WEIGHTS]
        kind = "torch"
    else:
        try:
            skops.io.dump(model, folder / SKOPS_MODEL)
        except (TypeError, NotImplementedError) as exc:
            raise DataError(CANNOT_SAVE.format(cls=type(model).__name__, problem=exc)) from exc
        files.append(SKOPS_MODEL)
        kind = "skops"
    if encoder is not None:
        skops.io.dump(encoder, folder / SKOPS_ENCODER)
        files.append(SKOPS_ENCODER)
    record = {
        "format": FORMAT,
        "kind": kind,
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "multisteal_version": __version__,
        "python_version": platform.python_version(),
        "files": {name: _sha256(folder / name) for name in files},
        "sha256": _sha256(folder / files[0]),
        "metadata": metadata or {},
    }
    if pipeline is not None:
        record["pipeline"] = pipeline
    (folder / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


def _torch_spec(model: TorchClassifier) -> dict[str, Any]:
    """What ``model.json`` records of a fitted torch classifier (its weights go elsewhere)."""
    name = next((n for n, cls in _TORCH_CLASSES.items() if isinstance(model, cls)), None)
    if name is None:
        raise DataError(CANNOT_SAVE.format(cls=type(model).__name__, problem=FACTORY_NETWORK))
    loss_curve = [float(v) for v in model.loss_curve_]
    spec: dict[str, Any] = {
        "torch_class": name,
        "params": {k: _jsonable(v) for k, v in model.get_params().items()},
        "input_shape": [int(d) for d in model._input_shape()],
        "n_classes_": int(model.n_classes_),
        "loss_curve_": loss_curve,
        "val_loss_curve_": [float(v) for v in getattr(model, "val_loss_curve_", [])],
        "best_epoch_": int(getattr(model, "best_epoch_", len(loss_curve) - 1)),
    }
    if isinstance(model, TorchMLPClassifier):
        spec["n_features_in_"] = int(model.n_features_in_)
    return spec


def _jsonable(value: object) -> object:
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` record of an artifact saved by :func:`save_model`, checked for shape
    (the files' checksums are checked by the loaders, before deserialising)."""
    folder = Path(path)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise DataError(MISSING_ARTIFACT.format(path=folder, meta=META_FILE))
    try:
        record = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(BAD_META.format(path=folder, meta=META_FILE, problem=exc)) from None
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str):
        problem = "no 'sha256' entry"
        raise DataError(BAD_META.format(path=folder, meta=META_FILE, problem=problem))
    if not isinstance(record.get("metadata", {}), dict):
        problem = "'metadata' is not a mapping"
        raise DataError(BAD_META.format(path=folder, meta=META_FILE, problem=problem))
    if record.get("format") != FORMAT or not isinstance(record.get("files"), dict):
        legacy = next((p.name for p in folder.glob("*.joblib")), "model.joblib")
        raise DataError(PICKLED.format(path=folder, file=legacy))
    return record


def _verified(folder: Path, record: dict[str, Any], name: str) -> Path:
    """The path of one of the artifact's files, after checking its SHA-256."""
    file = folder / name
    expected = record["files"].get(name)
    if not file.is_file() or expected is None:
        raise DataError(MISSING_ARTIFACT.format(path=folder, meta=f"{META_FILE} and {name}"))
    actual = _sha256(file)
    if actual != expected:
        raise DataError(
            CORRUPT_ARTIFACT.format(
                path=folder, file=name, actual=actual, meta=META_FILE, expected=expected
            )
        )
    return file


def _load_skops(folder: Path, file: Path, expected: tuple[str, ...]) -> Any:
    import skops.io

    untrusted = skops.io.get_untrusted_types(file=file)
    refused = [t for t in untrusted if t not in _TRUSTED_TYPES]
    if refused:
        raise DataError(UNTRUSTED.format(path=folder, file=file.name, types=", ".join(refused)))
    loaded = skops.io.load(file, trusted=list(untrusted))
    name = f"{type(loaded).__module__}.{type(loaded).__qualname__}"
    if name not in expected:
        raise DataError(
            UNEXPECTED_OBJECT.format(
                path=folder, file=file.name, cls=name, expected=", ".join(expected)
            )
        )
    return loaded


def load_model(path: str | Path) -> Classifier:
    """Load a model saved by :func:`save_model`; every file is checked before it is read."""
    folder = Path(path)
    record = read_metadata(folder)
    files = {name: _verified(folder, record, name) for name in record["files"]}
    try:
        return _load_verified(folder, record, files)
    except DataError:
        raise
    except Exception as exc:  # a checksummed but malformed artifact: refuse, never crash
        raise DataError(
            MALFORMED.format(path=folder, problem=f"{type(exc).__name__}: {exc}")
        ) from exc


def _load_verified(folder: Path, record: dict[str, Any], files: dict[str, Path]) -> Classifier:
    model: Classifier
    if record.get("kind") == "torch":
        model = _load_torch(folder, files)
    else:
        model = _load_skops(folder, files[SKOPS_MODEL], _MODEL_TYPES)
    pipeline = record.get("pipeline")
    if not isinstance(pipeline, dict):
        return model  # a classifier on encoded vectors (its encoder, if any: load_encoder)
    if "embedding_model" in pipeline:
        encoder: Any = EmbeddingEncoder(model=str(pipeline["embedding_model"])).fit(None)
    else:
        encoder = _load_skops(folder, files[SKOPS_ENCODER], _ENCODER_TYPES)
    loaded = InputPipeline.from_fitted(
        encoder,
        model,
        n_classes=int(pipeline["n_classes"]),
        columns=np.asarray(pipeline["columns"], dtype=np.int64),
    )
    spec = record.get("metadata", {}).get("input_spec")
    if isinstance(spec, dict):  # the inputs the target was published to take
        from multisteal.data.inputs import spec_from_dict

        loaded.input_spec_ = spec_from_dict(spec)
    return loaded


def _load_torch(folder: Path, files: dict[str, Path]) -> TorchClassifier:
    """Rebuild a torch classifier from ``model.json`` and load its weights into it."""
    spec = json.loads(files[TORCH_PARAMS].read_text())
    name = spec.get("torch_class", "TorchMLPClassifier")  # older artifacts: always an MLP
    if name not in _TORCH_CLASSES:
        problem = UNKNOWN_TORCH_CLASS.format(
            name=name, file=TORCH_PARAMS, known=", ".join(_TORCH_CLASSES)
        )
        raise DataError(MALFORMED.format(path=folder, problem=problem))
    params = dict(spec["params"])
    for key in _TUPLE_PARAMS:
        if key in params:
            params[key] = tuple(params[key])
    model = _TORCH_CLASSES[name](**params)
    shape = spec["input_shape"] if "input_shape" in spec else [spec["n_features_in_"]]
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape
    ):
        problem = BAD_INPUT_SHAPE.format(file=TORCH_PARAMS, shape=shape)
        raise DataError(MALFORMED.format(path=folder, problem=problem))
    input_shape = tuple(shape)
    n_classes = int(spec["n_classes_"])
    loss_curve = [float(v) for v in spec["loss_curve_"]]
    module = model._build_module(input_shape, n_classes, torch.Generator().manual_seed(0))
    state = torch.load(files[TORCH_WEIGHTS], weights_only=True)
    module.load_state_dict(state)
    module.eval()
    model._set_fitted(
        module,
        input_shape,
        n_classes,
        loss_curve,
        [float(v) for v in spec.get("val_loss_curve_", [])],
        int(spec.get("best_epoch_", len(loss_curve) - 1)),
    )
    return model


def load_encoder(path: str | Path) -> Any:
    """The encoder saved with a target (raw rows → the target's inputs), checked first."""
    folder = Path(path)
    record = read_metadata(folder)
    if SKOPS_ENCODER not in record["files"]:
        raise DataError(NO_ENCODER.format(path=folder, file=SKOPS_ENCODER))
    file = _verified(folder, record, SKOPS_ENCODER)
    try:
        return _load_skops(folder, file, _ENCODER_TYPES)
    except DataError:
        raise
    except Exception as exc:
        raise DataError(
            MALFORMED.format(path=folder, problem=f"{type(exc).__name__}: {exc}")
        ) from exc
