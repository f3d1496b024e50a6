"""Saving and loading fitted models as artifacts that are safe to load.

An artifact is a folder with ``meta.json`` and the model's files; nothing in it is a pickle:

* a torch MLP is its hyper-parameters (``model.json``) and its weights (``weights.pt``, read
  with ``torch.load(weights_only=True)``);
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
from multisteal.models.mlp import TorchMLPClassifier
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
    "Cannot save a {cls} as a safe artifact: only torch MLPs and scikit-learn models are "
    "supported ({problem})."
)

#: The only types a skops file may hold beyond skops's own defaults, by exact name: what
#: :func:`save_model` writes for the zoo's scikit-learn families and the encoder. No function
#: is ever trusted (a function reference is how a crafted file would run code).
_TRUSTED_TYPES = frozenset(
    {
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "multisteal.data.preprocessing.TabularPreprocessor",
    }
)
#: What the top-level object of each skops file must be.
_MODEL_TYPES = (
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
)
_ENCODER_TYPES = ("multisteal.data.preprocessing.TabularPreprocessor",)
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
    if isinstance(model, TorchMLPClassifier):
        params = {
            "params": {k: _jsonable(v) for k, v in model.get_params().items()},
            "n_features_in_": int(model.n_features_in_),
            "n_classes_": int(model.n_classes_),
            "loss_curve_": [float(v) for v in model.loss_curve_],
        }
        (folder / TORCH_PARAMS).write_text(json.dumps(params, indent=2))
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
    (folder / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


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
    if record.get("kind") == "torch":
        spec = json.loads(files[TORCH_PARAMS].read_text())
        params = dict(spec["params"])
        params["hidden_layer_sizes"] = tuple(params.get("hidden_layer_sizes", ()))
        model = TorchMLPClassifier(**params)
        n_features, n_classes = int(spec["n_features_in_"]), int(spec["n_classes_"])
        module = model._build(n_features, n_classes, torch.Generator().manual_seed(0))
        state = torch.load(files[TORCH_WEIGHTS], weights_only=True)
        module.load_state_dict(state)
        module.eval()
        model.module_ = module
        model.n_features_in_ = n_features
        model.n_classes_ = n_classes
        model.classes_ = np.arange(n_classes)
        model.loss_curve_ = list(spec["loss_curve_"])
        return model
    loaded: Classifier = _load_skops(folder, files[SKOPS_MODEL], _MODEL_TYPES)
    return loaded


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
