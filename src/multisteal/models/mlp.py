"""A torch multilayer perceptron behind the scikit-learn classifier contract."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from multisteal.errors import InvalidInputError, NotFittedError

__all__ = ["TorchMLPClassifier", "as_float_matrix", "softmax"]

NOT_FITTED = "This {cls} is not fitted yet: call fit before {method}."
BAD_FEATURES = "X has {got} features, but this {cls} was fitted with {expected}."
NOT_2D = "X must be a 2-D array of shape (n_samples, n_features), got shape {shape}."
NOT_FINITE = "X contains NaN or infinite values."
BAD_TARGETS = (
    "y must be class indices of shape (n_samples,) or class probabilities of shape "
    "(n_samples, n_classes); got shape {shape} for {n} samples."
)
LABEL_OUT_OF_RANGE = "y contains class index {value}, outside 0..{last} for n_classes={n_classes}."
SOFT_NOT_DISTRIBUTION = "Soft targets must be finite, non-negative and sum to 1 per row."
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


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Multilayer perceptron trained with Adam on hard labels or soft (probability) targets.

    ``hidden_layer_sizes=()`` gives multinomial logistic regression as a torch module, so the
    dropout Rashomon explorer can perturb it like any other network.

    Parameters
    ----------
    hidden_layer_sizes : widths of the hidden ``Linear`` layers.
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
        with torch.no_grad():
            for layer in module:
                if isinstance(layer, nn.Linear):
                    bound = 1.0 / math.sqrt(layer.in_features)
                    layer.weight.uniform_(-bound, bound, generator=generator)
                    layer.bias.uniform_(-bound, bound, generator=generator)
        return module

    def _targets(self, y: ArrayLike, n_samples: int) -> NDArray[np.float32]:
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[0] == n_samples:
            soft = arr.astype(np.float64)
            if self.n_classes is not None and soft.shape[1] != self.n_classes:
                raise InvalidInputError(BAD_TARGETS.format(shape=arr.shape, n=n_samples))
            if (
                not np.isfinite(soft).all()
                or (soft < 0).any()
                or not np.allclose(soft.sum(axis=1), 1.0, atol=1e-4)
            ):
                raise InvalidInputError(SOFT_NOT_DISTRIBUTION)
            return soft.astype(np.float32)
        if arr.ndim != 1 or arr.shape[0] != n_samples:
            raise InvalidInputError(BAD_TARGETS.format(shape=arr.shape, n=n_samples))
        labels = arr.astype(np.int64)
        n_classes = self.n_classes if self.n_classes is not None else max(int(labels.max()) + 1, 2)
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if bad.size:
            raise InvalidInputError(
                LABEL_OUT_OF_RANGE.format(
                    value=int(bad[0]), last=n_classes - 1, n_classes=n_classes
                )
            )
        onehot = np.zeros((n_samples, n_classes), dtype=np.float32)
        onehot[np.arange(n_samples), labels] = 1.0
        return onehot

    # -- scikit-learn API -------------------------------------------------------------------
    def fit(self, X: ArrayLike, y: ArrayLike) -> TorchMLPClassifier:
        """Fit on class indices ``y`` of shape (n,) or soft targets of shape (n, n_classes)."""
        features = as_float_matrix(X, owner=type(self).__name__)
        targets = self._targets(y, features.shape[0])
        n_samples, n_features = features.shape
        n_classes = targets.shape[1]
        seed = 0 if self.random_state is None else int(self.random_state)
        generator = torch.Generator().manual_seed(seed)
        module = self._build(n_features, n_classes, generator)
        optimiser = torch.optim.Adam(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        x_t = torch.from_numpy(features)
        y_t = torch.from_numpy(targets)
        batch = max(1, min(int(self.batch_size), n_samples))
        steps_per_epoch = math.ceil(n_samples / batch)
        epochs = max(int(self.epochs), math.ceil(int(self.min_steps) / steps_per_epoch))
        losses: list[float] = []
        module.train()
        for _ in range(epochs):
            order = torch.randperm(n_samples, generator=generator)
            total = 0.0
            for start in range(0, n_samples, batch):
                idx = order[start : start + batch]
                loss = self._step(module, optimiser, x_t[idx], y_t[idx])
                total += loss * len(idx)
            losses.append(total / n_samples)
        module.eval()
        self.module_ = module
        self.n_features_in_ = n_features
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes)
        self.loss_curve_ = losses
        return self

    @staticmethod
    def _step(
        module: nn.Module, optimiser: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
    ) -> float:
        optimiser.zero_grad()
        log_probs = torch.log_softmax(module(xb), dim=1)
        loss = -(yb * log_probs).sum(dim=1).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        return float(loss.detach())

    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(NOT_FITTED.format(cls=type(self).__name__, method=method))

    def logits(self, X: ArrayLike, *, batch_size: int = 8192) -> NDArray[np.float64]:
        """Raw network outputs (before softmax), shape (n_samples, n_classes)."""
        self._check_fitted("logits")
        features = as_float_matrix(X, n_features=self.n_features_in_, owner=type(self).__name__)
        outputs = []
        with torch.no_grad():
            for start in range(0, features.shape[0], batch_size):
                outputs.append(self.module_(torch.from_numpy(features[start : start + batch_size])))
        if not outputs:
            return np.zeros((0, self.n_classes_))
        return torch.cat(outputs).double().numpy()

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1."""
        self._check_fitted("predict_proba")
        logits = self.logits(X)
        return softmax(logits)

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """Predicted class indices (argmax, ties to the lowest index)."""
        self._check_fitted("predict")
        out: NDArray[np.int64] = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """Numerically stable softmax over the last axis, in float64."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: NDArray[np.float64] = exp / exp.sum(axis=-1, keepdims=True)
    return out
