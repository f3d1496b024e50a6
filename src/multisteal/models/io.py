"""Saving and loading fitted models as artifacts (a folder with the model and its metadata)."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

import joblib

from multisteal.errors import DataError
from multisteal.models.zoo import Classifier

__all__ = ["load_model", "read_metadata", "save_model"]

MODEL_FILE = "model.joblib"
META_FILE = "meta.json"
MISSING_ARTIFACT = "No model artifact at {path}: expected {model} and {meta} inside it."
CORRUPT_ARTIFACT = "Model artifact {path} is corrupt: SHA-256 {actual} does not match {expected}."
BAD_META = "Model artifact {path}: {meta} is not a valid record ({problem})."


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_model(
    model: Classifier, path: str | Path, *, metadata: dict[str, Any] | None = None
) -> Path:
    """Write ``model`` to the folder ``path`` (created) with a ``meta.json`` record.

    The record holds the model class, the multisteal/Python versions, the SHA-256 of the model
    file (checked on load) and any user ``metadata``.
    """
    from multisteal import __version__

    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    model_path = folder / MODEL_FILE
    joblib.dump(model, model_path)
    record = {
        "class": f"{type(model).__module__}.{type(model).__qualname__}",
        "multisteal_version": __version__,
        "python_version": platform.python_version(),
        "sha256": _sha256(model_path),
        "metadata": metadata or {},
    }
    (folder / META_FILE).write_text(json.dumps(record, indent=2, sort_keys=True))
    return folder


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The ``meta.json`` record of an artifact saved by :func:`save_model`, checked for shape."""
    folder = Path(path)
    model_path, meta_path = folder / MODEL_FILE, folder / META_FILE
    if not model_path.is_file() or not meta_path.is_file():
        raise DataError(MISSING_ARTIFACT.format(path=folder, model=MODEL_FILE, meta=META_FILE))
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
    return record


def load_model(path: str | Path) -> Classifier:
    """Load a model saved by :func:`save_model`, verifying its checksum."""
    folder = Path(path)
    model_path = folder / MODEL_FILE
    expected = read_metadata(folder)["sha256"]
    actual = _sha256(model_path)
    if actual != expected:
        raise DataError(CORRUPT_ARTIFACT.format(path=folder, actual=actual, expected=expected))
    model: Classifier = joblib.load(model_path)
    return model
