"""A saved target must fit the run that loads it: same data, split, seed and features."""

from __future__ import annotations

from typing import Any

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.models import MODELS, Classifier, TorchMLPClassifier, read_metadata
from multisteal.models.pipeline import EmbeddingEncoder, ImageEncoder, InputPipeline

__all__ = ["TARGET_MISMATCH", "check_target_metadata", "target_family"]

TARGET_MISMATCH = (
    "The saved target {path} does not fit this run: its {field} is {saved!r}, this run's is "
    "{here!r}. A target trained on another split may have trained on this run's evaluation "
    "rows; load it with the data, --split and --seed it was trained with (it was trained with "
    "--seed {seed})."
)
UNKNOWN_FAMILY = (
    "The saved target {path} records family {family!r}, which is not a known model family "
    "({available}); its own Rashomon set (the target-retrain baseline) cannot be built."
)


def target_family(model: Classifier) -> str:
    """The zoo family name of a fitted model (``custom`` when it is none of the zoo's)."""
    if isinstance(model, InputPipeline):
        encoder = model.encoder_
        if isinstance(encoder, ImageEncoder):
            return "cnn"
        if isinstance(encoder, EmbeddingEncoder):
            return "minilm-mlp"
        if isinstance(encoder, TfidfVectorizer):
            return "tfidf-logistic"
        return target_family(model.model_)
    if isinstance(model, TorchMLPClassifier):
        return "torch-logistic" if not tuple(model.hidden_layer_sizes) else "mlp"
    if isinstance(model, LogisticRegression):
        return "logistic"
    if isinstance(model, HistGradientBoostingClassifier):
        return "gboost"
    if isinstance(model, DecisionTreeClassifier):
        return "tree"
    return "custom"


def check_target_metadata(config: AuditConfig, data: PreparedData) -> dict[str, Any]:
    """Compare a saved target's ``meta.json`` with the run; return its metadata.

    Checked: the dataset, the split sizes, the split seed and the input spec (so the target's
    training rows are this run's target-train rows and its inputs mean the same).
    """
    path = config.target_path
    assert path is not None
    saved: dict[str, Any] = dict(read_metadata(path).get("metadata", {}))
    here: dict[str, Any] = {
        "data": config.data_name,
        "split": config.split.model_dump(),
        "split_seed": data.split_seed,
        "input_spec": data.input_spec.to_dict(),
        "classes": [str(c) for c in data.dataset.class_names],
        "data_sha256": config.data_file_sha256(),
    }
    for name, value in here.items():
        if saved.get(name) != value:
            shown = (saved.get(name, "missing"), value)
            if name == "input_spec":  # name the first difference, not two long records
                shown = _first_difference(saved.get(name), value)
            raise ConfigError(
                TARGET_MISMATCH.format(
                    path=path,
                    field=name,
                    saved=shown[0],
                    here=shown[1],
                    seed=saved.get("seed", "unknown"),
                )
            )
    family = saved.get("family")
    if config.baselines.target_members and family not in MODELS:
        raise ConfigError(
            UNKNOWN_FAMILY.format(path=path, family=family, available=", ".join(MODELS))
        )
    return saved


def _first_difference(saved: Any, here: Any) -> tuple[str, str]:
    """The first column (or image field) where two published input specs differ."""
    if not isinstance(saved, dict):
        return ("missing", "an input spec")
    if saved.get("modality") != here.get("modality"):
        return (f"{saved.get('modality')} inputs", f"{here.get('modality')} inputs")
    if here.get("modality") != "tabular":
        for key in sorted(set(saved) | set(here)):
            if saved.get(key) != here.get(key):
                return (f"{key} {saved.get(key)!r}", f"{key} {here.get(key)!r}")
        return ("the same", "the same")
    old, new = list(saved.get("columns") or []), list(here.get("columns") or [])
    for i in range(max(len(old), len(new))):
        a = old[i] if i < len(old) else None
        b = new[i] if i < len(new) else None
        if a != b:
            name_a = a.get("name") if isinstance(a, dict) else "none"
            name_b = b.get("name") if isinstance(b, dict) else "none"
            return (
                f"{len(old)} columns ({name_a} at position {i})",
                f"{len(new)} columns ({name_b})",
            )
    return ("the same", "the same")
