"""Model zoo: targets and surrogates behind the scikit-learn classifier contract."""

from __future__ import annotations

from multisteal.models.cnn import TorchCNNClassifier
from multisteal.models.io import load_encoder, load_model, read_metadata, save_model
from multisteal.models.mlp import TorchMLPClassifier, softmax
from multisteal.models.pipeline import EmbeddingEncoder, ImageEncoder, InputPipeline
from multisteal.models.torch_base import TorchClassifier
from multisteal.models.zoo import (
    MODELS,
    Classifier,
    ModelSpec,
    make_model,
    make_pipeline,
    models_for,
    train_target,
)

__all__ = [
    "MODELS",
    "Classifier",
    "EmbeddingEncoder",
    "ImageEncoder",
    "InputPipeline",
    "ModelSpec",
    "TorchCNNClassifier",
    "TorchClassifier",
    "TorchMLPClassifier",
    "load_encoder",
    "load_model",
    "make_model",
    "make_pipeline",
    "models_for",
    "read_metadata",
    "save_model",
    "softmax",
    "train_target",
]
