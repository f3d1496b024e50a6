"""A torch multilayer perceptron behind the scikit-learn classifier contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from multisteal.errors import InvalidInputError
from multisteal.models.torch_base import (
    BAD_TARGETS,
    LABEL_OUT_OF_RANGE,
    NOT_FINITE,
    NOT_FITTED,
    SOFT_NOT_DISTRIBUTION,
    TorchClassifier,
    init_uniform_,
    softmax,
)

__all__ = [
    "BAD_FEATURES",
    "BAD_TARGETS",
    "LABEL_OUT_OF_RANGE",
    "NOT_2D",
    "NOT_FINITE",
    "NOT_FITTED",
    "SOFT_NOT_DISTRIBUTION",
    "UNKNOWN_ACTIVATION",
    "TorchMLPClassifier",
    "as_float_matrix",
    "softmax",
]

BAD_FEATURES = "X has {got} features, but this {cls} was fitted with {expected}."
NOT_2D = "X must be a 2-D array of shape (n_samples, n_features), got shape {shape}."
UNKNOWN_ACTIVATION = "Unknown activation {name!r}. Available: {available}."

_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}


def as_float_matrix(
    X: ArrayLike, *, n_features: int | None = None, owner: str = "model"
) -> NDArray[np.float32]:
    """Check ``X`` is a finite 2-D matrix (with ``n_features`` columns) and return it as float32."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise InvalidInputError(NOT_2D.format(shape=arr.shape))
    if n_features is not None and arr.shape[1] != n_features:
        raise InvalidInputError(
            BAD_FEATURES.format(got=arr.shape[1], cls=owner, expected=n_features)
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError(NOT_FINITE)
    return arr.astype(np.float32)


class TorchMLPClassifier(TorchClassifier):
    """Multilayer perceptron trained with Adam on hard labels or soft (probability) targets.

    ``hidden_layer_sizes=()`` gives multinomial logistic regression as a torch module, so the
    dropout Rashomon explorer can perturb it like any other network. The training loop
    (including ``fit(X, y, *, X_val=None, y_val=None)``) is :class:`TorchClassifier`'s.

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden ``Linear`` layers.
    activation : ``relu``, ``tanh`` or ``gelu``.
    n_classes : number of classes; ``None`` infers it from ``y`` (class indices ``0..C-1``).
        Set it when a training set may lack a class (a small query transcript).
    epochs, batch_size, lr, weight_decay : optimisation settings (Adam, mini-batches).
    min_steps : lower bound on the number of gradient steps, so tiny training sets still train.
    random_state : seed of initialisation and shuffling (a private ``torch.Generator``).

    Attributes
    ----------
    module_ : the fitted ``torch.nn.Sequential`` (``Linear`` layers followed by activations).
    classes_ : ``np.arange(n_classes_)``.
    n_features_in_, n_classes_, loss_curve_ : as in scikit-learn.
    input_shape_, val_loss_curve_, best_epoch_ : see :class:`TorchClassifier`.
    """

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (64, 32),
        *,
        activation: str = "relu",
        n_classes: int | None = None,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        min_steps: int = 300,
        random_state: int | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.random_state = random_state

    # -- building ---------------------------------------------------------------------------
    def _build(self, n_features: int, n_classes: int, generator: torch.Generator) -> nn.Sequential:
        if self.activation not in _ACTIVATIONS:
            raise InvalidInputError(
                UNKNOWN_ACTIVATION.format(name=self.activation, available=", ".join(_ACTIVATIONS))
            )
        layers: list[nn.Module] = []
        width = n_features
        for hidden in self.hidden_layer_sizes:
            layers += [nn.Linear(width, int(hidden)), _ACTIVATIONS[self.activation]()]
            width = int(hidden)
        layers.append(nn.Linear(width, n_classes))
        module = nn.Sequential(*layers)
        init_uniform_(module, generator)
        return module

    def _build_module(
        self, input_shape: tuple[int, ...], n_classes: int, generator: torch.Generator
    ) -> nn.Module:
        return self._build(input_shape[0], n_classes, generator)

    # -- inputs -----------------------------------------------------------------------------
    def _as_inputs(self, X: ArrayLike, expected: tuple[int, ...] | None) -> NDArray[np.float32]:
        n_features = None if expected is None else expected[0]
        return as_float_matrix(X, n_features=n_features, owner=type(self).__name__)

    def _input_shape(self) -> tuple[int, ...]:
        return (int(self.n_features_in_),)

    def _record_input_shape(self, shape: tuple[int, ...]) -> None:
        super()._record_input_shape(shape)
        self.n_features_in_ = shape[0]
