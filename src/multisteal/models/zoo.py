"""The model zoo: named model families with sensible defaults for tabular data."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from multisteal.errors import InvalidInputError
from multisteal.models.mlp import TorchMLPClassifier

__all__ = ["MODELS", "Classifier", "ModelSpec", "make_model", "train_target"]

UNKNOWN_MODEL = "Unknown model {name!r}. Available models: {available}."
BAD_PARAMS = "Invalid parameters for model {name!r}: {error}"


@runtime_checkable
class Classifier(Protocol):
    """What multisteal needs of a fitted classifier: scikit-learn's ``predict_proba``."""

    classes_: Any

    def fit(self, X: Any, y: Any) -> Any: ...

    def predict_proba(self, X: Any) -> NDArray[np.float64]: ...


@dataclass(frozen=True)
class ModelSpec:
    """A named model family: a factory taking a seed and keyword parameters."""

    name: str
    description: str
    factory: Callable[..., Classifier]


def _logistic(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_iter": 2000, "C": 1.0}
    defaults.update(params)
    model: Classifier = LogisticRegression(random_state=random_state, **defaults)
    return model


def _mlp(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"hidden_layer_sizes": (64, 32), "epochs": 20}
    defaults.update(params)
    return TorchMLPClassifier(random_state=random_state, **defaults)


def _torch_logistic(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"epochs": 30}
    defaults.update(params)
    return TorchMLPClassifier(hidden_layer_sizes=(), random_state=random_state, **defaults)


def _gboost(*, random_state: int | None = None, **params: Any) -> Classifier:
    defaults: dict[str, Any] = {"max_iter": 200, "learning_rate": 0.1}
    defaults.update(params)
    model: Classifier = HistGradientBoostingClassifier(random_state=random_state, **defaults)
    return model


MODELS: Mapping[str, ModelSpec] = {
    "logistic": ModelSpec("logistic", "scikit-learn LogisticRegression (L2, lbfgs)", _logistic),
    "mlp": ModelSpec("mlp", "torch MLP (64-32, ReLU, Adam)", _mlp),
    "torch-logistic": ModelSpec(
        "torch-logistic",
        "logistic regression as a torch module (dropout-explorable)",
        _torch_logistic,
    ),
    "gboost": ModelSpec("gboost", "scikit-learn HistGradientBoostingClassifier", _gboost),
}


def make_model(name: str, *, random_state: int | None = None, **params: Any) -> Classifier:
    """Create an unfitted model of the named family."""
    try:
        spec = MODELS[name]
    except KeyError:
        raise InvalidInputError(
            UNKNOWN_MODEL.format(name=name, available=", ".join(MODELS))
        ) from None
    try:
        return spec.factory(random_state=random_state, **params)
    except TypeError as exc:
        raise InvalidInputError(BAD_PARAMS.format(name=name, error=exc)) from exc


def train_target(
    name: str, X: ArrayLike, y: ArrayLike, *, random_state: int | None = None, **params: Any
) -> Classifier:
    """Create and fit a target model of the named family on ``(X, y)``."""
    model = make_model(name, random_state=random_state, **params)
    model.fit(np.asarray(X, dtype=np.float64), np.asarray(y))
    return model
