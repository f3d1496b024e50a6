"""One torch training loop behind the scikit-learn classifier contract, for any network.

:class:`TorchClassifier` owns everything but the network: input and target checks, seeded
initialisation and shuffling (a private ``torch.Generator``), Adam on hard labels or soft
targets, ``min_steps``, validation-based epoch selection, batched ``logits``,
``predict_proba`` and ``predict``. The network comes from a *module factory*
``(input_shape, n_classes, generator) -> nn.Module`` (as skorch's ``NeuralNet`` takes a
``module``), or from a subclass overriding :meth:`TorchClassifier._build_module`
(:class:`~multisteal.models.mlp.TorchMLPClassifier`,
:class:`~multisteal.models.cnn.TorchCNNClassifier`).

The loop is split into small steps (``_build_module``, ``_train_epoch``, ``_step``,
``_evaluate``, ``_set_fitted``) so each can be read, tested and overridden on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from torch import nn

from multisteal.errors import InvalidInputError, NotFittedError

__all__ = ["ModuleFactory", "TorchClassifier", "init_uniform_", "softmax"]

ModuleFactory = Callable[[tuple[int, ...], int, torch.Generator], nn.Module]
"""Builds a network: ``(input_shape, n_classes, generator) -> nn.Module``. ``input_shape`` is
the shape of one sample (``X.shape[1:]``); the module maps a batch to ``n_classes`` logits and
must draw its initial weights from ``generator`` (see :func:`init_uniform_`)."""

NOT_FITTED = "This {cls} is not fitted yet: call fit before {method}."
NOT_FINITE = "X contains NaN or infinite values."
BAD_TARGETS = (
    "y must be class indices of shape (n_samples,) or class probabilities of shape "
    "(n_samples, n_classes); got shape {shape} for {n} samples."
)
LABEL_OUT_OF_RANGE = "y contains class index {value}, outside 0..{last} for n_classes={n_classes}."
SOFT_NOT_DISTRIBUTION = "Soft targets must be finite, non-negative and sum to 1 per row."
NOT_BATCHED = (
    "X must be an array of shape (n_samples, ...) with at least 2 dimensions, got shape {shape}."
)
BAD_SAMPLE_SHAPE = "X has samples of shape {got}, but this {cls} was fitted with {expected}."
NO_FACTORY = (
    "This {cls} has no module_factory: pass a callable (input_shape, n_classes, generator) -> "
    "nn.Module, or use a subclass that builds its network (TorchMLPClassifier, "
    "TorchCNNClassifier)."
)
NOT_A_MODULE = "module_factory must return a torch.nn.Module, got {type}."
VAL_PAIR = "X_val and y_val must be given together; got only {given}."
EMPTY_VALIDATION = "X_val has no samples; pass at least one validation sample, or none at all."

_PARAMETRISED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_Self = TypeVar("_Self", bound="TorchClassifier")


def softmax(logits: NDArray[np.float64]) -> NDArray[np.float64]:
    """Numerically stable softmax over the last axis, in float64."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: NDArray[np.float64] = exp / exp.sum(axis=-1, keepdims=True)
    return out


def init_uniform_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draw the weights and biases of every Linear / Conv layer of ``module`` from
    ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with ``generator``, in module order (torch's default
    scale, but seeded privately instead of from the global generator). Returns ``module``."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, _PARAMETRISED):
                bound = 1.0 / math.sqrt(layer.weight[0].numel())
                layer.weight.uniform_(-bound, bound, generator=generator)
                if layer.bias is not None:
                    layer.bias.uniform_(-bound, bound, generator=generator)
    return module


class TorchClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A torch network trained with Adam on hard labels or soft (probability) targets.

    Parameters
    ----------
    module_factory : builds the network, ``(input_shape, n_classes, generator) -> nn.Module``;
        subclasses build their own and do not take it.
    n_classes : number of classes; ``None`` infers it from ``y`` (class indices ``0..C-1``).
        Set it when a training set may lack a class.
    epochs, batch_size, lr, weight_decay : optimisation settings (Adam, mini-batches).
    min_steps : lower bound on the number of gradient steps, so tiny training sets still train.
    random_state : seed of initialisation and shuffling (a private ``torch.Generator``);
        ``None`` means 0.

    Attributes
    ----------
    module_ : the fitted ``torch.nn.Module`` (in eval mode).
    classes_ : ``np.arange(n_classes_)``.
    input_shape_ : the shape of one sample, ``X.shape[1:]``.
    n_classes_, loss_curve_ : as in scikit-learn (``loss_curve_``: mean training loss of every
        epoch).
    val_loss_curve_ : mean validation cross-entropy after every epoch; empty without a
        validation set.
    best_epoch_ : index of the epoch whose weights were kept: the lowest validation loss (the
        first one on ties) with a validation set, else the last epoch.
    """

    #: Rows per forward pass in :meth:`logits` (and on the validation set).
    _predict_batch_size: ClassVar[int] = 8192

    def __init__(
        self,
        module_factory: ModuleFactory | None = None,
        *,
        n_classes: int | None = None,
        epochs: int = 30,
        batch_size: int = 128,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        min_steps: int = 300,
        random_state: int | None = None,
    ) -> None:
        self.module_factory = module_factory
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.random_state = random_state

    # -- hooks a subclass overrides ---------------------------------------------------------
    def _build_module(
        self, input_shape: tuple[int, ...], n_classes: int, generator: torch.Generator
    ) -> nn.Module:
        """The untrained network for samples of ``input_shape``, initialised from ``generator``."""
        if self.module_factory is None:
            raise InvalidInputError(NO_FACTORY.format(cls=type(self).__name__))
        module = self.module_factory(input_shape, n_classes, generator)
        if not isinstance(module, nn.Module):
            raise InvalidInputError(NOT_A_MODULE.format(type=type(module).__name__))
        return module

    def _as_inputs(self, X: ArrayLike, expected: tuple[int, ...] | None) -> NDArray[np.float32]:
        """``X`` checked (finite, batched, samples of shape ``expected`` when given) as float32."""
        arr = np.asarray(X, dtype=np.float64)
        if arr.ndim < 2:
            raise InvalidInputError(NOT_BATCHED.format(shape=arr.shape))
        if expected is not None and tuple(arr.shape[1:]) != tuple(expected):
            raise InvalidInputError(
                BAD_SAMPLE_SHAPE.format(
                    got=tuple(arr.shape[1:]), cls=type(self).__name__, expected=tuple(expected)
                )
            )
        if not np.isfinite(arr).all():
            raise InvalidInputError(NOT_FINITE)
        return arr.astype(np.float32)

    def _input_shape(self) -> tuple[int, ...]:
        """The fitted shape of one sample."""
        shape: tuple[int, ...] = self.input_shape_
        return shape

    def _record_input_shape(self, shape: tuple[int, ...]) -> None:
        self.input_shape_ = shape

    # -- targets ----------------------------------------------------------------------------
    def _targets(
        self, y: ArrayLike, n_samples: int, n_classes: int | None = None
    ) -> NDArray[np.float32]:
        """``y`` (class indices or soft targets) as a float32 (n_samples, n_classes) matrix.
        ``n_classes`` fixes the number of classes (else ``self.n_classes``, else inferred)."""
        fixed = self.n_classes if n_classes is None else n_classes
        arr = np.asarray(y)
        if arr.ndim == 2 and arr.shape[0] == n_samples:
            soft = arr.astype(np.float64)
            if fixed is not None and soft.shape[1] != fixed:
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
        classes = fixed if fixed is not None else max(int(labels.max()) + 1, 2)
        bad = labels[(labels < 0) | (labels >= classes)]
        if bad.size:
            raise InvalidInputError(
                LABEL_OUT_OF_RANGE.format(value=int(bad[0]), last=classes - 1, n_classes=classes)
            )
        onehot = np.zeros((n_samples, classes), dtype=np.float32)
        onehot[np.arange(n_samples), labels] = 1.0
        return onehot

    def _validation(
        self,
        X_val: ArrayLike | None,
        y_val: ArrayLike | None,
        input_shape: tuple[int, ...],
        n_classes: int,
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        if X_val is None and y_val is None:
            return None
        if X_val is None or y_val is None:
            raise InvalidInputError(VAL_PAIR.format(given="X_val" if y_val is None else "y_val"))
        inputs = self._as_inputs(X_val, input_shape)
        if inputs.shape[0] == 0:
            raise InvalidInputError(EMPTY_VALIDATION)
        targets = self._targets(y_val, inputs.shape[0], n_classes)
        return torch.from_numpy(inputs), torch.from_numpy(targets)

    # -- training loop ----------------------------------------------------------------------
    def fit(
        self: _Self,
        X: ArrayLike,
        y: ArrayLike,
        *,
        X_val: ArrayLike | None = None,
        y_val: ArrayLike | None = None,
    ) -> _Self:
        """Fit on class indices ``y`` of shape (n,) or soft targets of shape (n, n_classes).

        With a validation set (``X_val``, and ``y_val`` as class indices or soft targets) the
        weights after the epoch with the lowest validation cross-entropy are kept
        (``best_epoch_``, ``val_loss_curve_``); the number of epochs trained does not change.
        """
        inputs = self._as_inputs(X, None)
        targets = self._targets(y, inputs.shape[0])
        n_samples = inputs.shape[0]
        input_shape = tuple(int(d) for d in inputs.shape[1:])
        n_classes = targets.shape[1]
        validation = self._validation(X_val, y_val, input_shape, n_classes)
        generator = torch.Generator().manual_seed(self._seed())
        module = self._build_module(input_shape, n_classes, generator)
        optimiser = torch.optim.Adam(
            module.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        x_t = torch.from_numpy(inputs)
        y_t = torch.from_numpy(targets)
        batch = max(1, min(int(self.batch_size), n_samples))
        steps_per_epoch = math.ceil(n_samples / batch)
        epochs = max(int(self.epochs), math.ceil(int(self.min_steps) / steps_per_epoch))
        losses: list[float] = []
        val_losses: list[float] = []
        best: tuple[float, int, dict[str, torch.Tensor]] | None = None
        module.train()
        for epoch in range(epochs):
            losses.append(self._train_epoch(module, optimiser, x_t, y_t, batch, generator))
            if validation is not None:
                val_losses.append(self._evaluate(module, *validation))
                module.train()
                if best is None or val_losses[-1] < best[0]:
                    best = (val_losses[-1], epoch, _snapshot(module))
        best_epoch = epochs - 1
        if best is not None:
            best_epoch = best[1]
            module.load_state_dict(best[2])
        module.eval()
        self._set_fitted(module, input_shape, n_classes, losses, val_losses, best_epoch)
        return self

    def _seed(self) -> int:
        return 0 if self.random_state is None else int(self.random_state)

    def _train_epoch(
        self,
        module: nn.Module,
        optimiser: torch.optim.Optimizer,
        x: torch.Tensor,
        y: torch.Tensor,
        batch: int,
        generator: torch.Generator,
    ) -> float:
        """One pass over the shuffled training set; returns the mean training loss."""
        n_samples = x.shape[0]
        order = torch.randperm(n_samples, generator=generator)
        total = 0.0
        for start in range(0, n_samples, batch):
            idx = order[start : start + batch]
            loss = self._step(module, optimiser, x[idx], y[idx])
            total += loss * len(idx)
        return total / n_samples

    @staticmethod
    def _step(
        module: nn.Module, optimiser: torch.optim.Optimizer, xb: torch.Tensor, yb: torch.Tensor
    ) -> float:
        """One Adam step on a mini-batch; returns its mean cross-entropy."""
        optimiser.zero_grad()
        log_probs = torch.log_softmax(module(xb), dim=1)
        loss = -(yb * log_probs).sum(dim=1).mean()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        return float(loss.detach())

    def _evaluate(self, module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
        """Mean cross-entropy of ``module`` (in eval mode) against targets ``y``."""
        module.eval()
        total = 0.0
        size = self._predict_batch_size
        with torch.no_grad():
            for start in range(0, x.shape[0], size):
                log_probs = torch.log_softmax(module(x[start : start + size]), dim=1)
                total += float(-(y[start : start + size] * log_probs).sum())
        return total / x.shape[0]

    def _set_fitted(
        self,
        module: nn.Module,
        input_shape: tuple[int, ...],
        n_classes: int,
        loss_curve: list[float],
        val_loss_curve: list[float],
        best_epoch: int,
    ) -> None:
        """Record the fitted state (also used when an artifact is loaded)."""
        self.module_ = module
        self._record_input_shape(input_shape)
        self.n_classes_ = n_classes
        self.classes_ = np.arange(n_classes)
        self.loss_curve_ = loss_curve
        self.val_loss_curve_ = val_loss_curve
        self.best_epoch_ = best_epoch

    # -- prediction -------------------------------------------------------------------------
    def _check_fitted(self, method: str) -> None:
        if not hasattr(self, "module_"):
            raise NotFittedError(NOT_FITTED.format(cls=type(self).__name__, method=method))

    def logits(self, X: ArrayLike, *, batch_size: int | None = None) -> NDArray[np.float64]:
        """Raw network outputs (before softmax), shape (n_samples, n_classes)."""
        self._check_fitted("logits")
        inputs = self._as_inputs(X, self._input_shape())
        size = self._predict_batch_size if batch_size is None else int(batch_size)
        outputs = []
        with torch.no_grad():
            for start in range(0, inputs.shape[0], size):
                outputs.append(self.module_(torch.from_numpy(inputs[start : start + size])))
        if not outputs:
            return np.zeros((0, self.n_classes_))
        return torch.cat(outputs).double().numpy()

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Class probabilities, shape (n_samples, n_classes); rows sum to 1."""
        self._check_fitted("predict_proba")
        return softmax(self.logits(X))

    def predict(self, X: ArrayLike) -> NDArray[np.int64]:
        """Predicted class indices (argmax, ties to the lowest index)."""
        self._check_fitted("predict")
        out: NDArray[np.int64] = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return out

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


def _snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``module``'s state, to restore later."""
    return {name: value.detach().clone() for name, value in module.state_dict().items()}
