"""Model zoo: targets and surrogates behind the scikit-learn classifier contract."""

from __future__ import annotations

from multisteal.models.io import load_encoder, load_model, read_metadata, save_model
from multisteal.models.mlp import TorchMLPClassifier, softmax
from multisteal.models.zoo import MODELS, Classifier, ModelSpec, make_model, train_target

__all__ = [
    "MODELS",
    "Classifier",
    "ModelSpec",
    "TorchMLPClassifier",
    "load_encoder",
    "load_model",
    "make_model",
    "read_metadata",
    "save_model",
    "softmax",
    "train_target",
]
