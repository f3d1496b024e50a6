"""A small torch convolutional network behind the scikit-learn classifier contract."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray
from torch import nn

from multisteal.errors import InvalidInputError
from multisteal.models.torch_base import NOT_FINITE, TorchClassifier, init_uniform_

__all__ = [
    "BAD_CHANNELS",
    "BAD_HIDDEN",
    "BAD_IMAGES",
    "BEYOND_FLOAT32",
    "NOT_4D",
    "TOO_SMALL",
    "TorchCNNClassifier",
    "as_float_images",
    "small_cnn",
]

NOT_4D = (
    "X must be a 4-D array of images of shape (n_samples, channels, height, width), got shape "
    "{shape}. Give single-channel images a channel axis: X[:, None]."
)
TOO_SMALL = (
    "Images must be at least {min}x{min} pixels for {stages} pooling stages (each halves them); "
    "got {height}x{width}."
)
BAD_IMAGES = (
    "X has images of shape {got} (channels, height, width), but this {cls} was fitted with "
    "{expected}."
)
BEYOND_FLOAT32 = "X has values beyond the float32 range (|x| > 3.4e38)."
BAD_CHANNELS = "channels must be a non-empty sequence of positive integers, got {channels!r}."
BAD_HIDDEN = "hidden must be a positive integer, got {hidden!r}."


def _architecture(channels: object, hidden: object) -> tuple[tuple[int, ...], int]:
    """``channels`` and ``hidden`` checked, as a tuple of ints and an int."""
    if (
        not isinstance(channels, Sequence)
        or isinstance(channels, str)
        or not channels
        or not all(isinstance(c, int | np.integer) and int(c) > 0 for c in channels)
    ):
        raise InvalidInputError(BAD_CHANNELS.format(channels=channels))
    if not isinstance(hidden, int | np.integer) or isinstance(hidden, bool) or int(hidden) <= 0:
        raise InvalidInputError(BAD_HIDDEN.format(hidden=hidden))
    return tuple(int(c) for c in channels), int(hidden)


def as_float_images(
    X: ArrayLike,
    *,
    image_shape: tuple[int, ...] | None = None,
    min_size: int = 1,
    owner: str = "model",
) -> NDArray[np.float32]:
    """Check ``X`` is a finite batch of images (n, channels, height, width), at least
    ``min_size`` pixels on each side (and of ``image_shape`` when given); return it as float32."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 4:
        raise InvalidInputError(NOT_4D.format(shape=arr.shape))
    got = tuple(int(d) for d in arr.shape[1:])
    if image_shape is not None and got != tuple(image_shape):
        raise InvalidInputError(BAD_IMAGES.format(got=got, cls=owner, expected=tuple(image_shape)))
    height, width = got[1], got[2]
    if min(height, width) < min_size:
        stages = max(int(min_size).bit_length() - 1, 0)
        raise InvalidInputError(
            TOO_SMALL.format(min=min_size, stages=stages, height=height, width=width)
        )
    if not np.isfinite(arr).all():
        raise InvalidInputError(NOT_FINITE)
    if arr.size and np.abs(arr).max() > np.finfo(np.float32).max:
        raise InvalidInputError(BEYOND_FLOAT32)
    return arr.astype(np.float32)


def small_cnn(
    input_shape: tuple[int, ...],
    n_classes: int,
    generator: torch.Generator,
    *,
    channels: Sequence[int] = (16, 32),
    hidden: int = 64,
) -> nn.Sequential:
    """A small CNN for images of ``input_shape`` = (channels, height, width), as a module factory.

    One stage per entry of ``channels``: ``Conv2d(3x3, padding 1) - ReLU - MaxPool2d(2)``; then
    ``Flatten - Linear(hidden) - ReLU - Linear(n_classes)``. The flattened size follows from
    the input shape (each stage floors height and width by half), so any image at least
    ``2**len(channels)`` pixels on each side works. Weights are drawn from ``generator``.
    """
    widths, hidden_units = _architecture(channels, hidden)
    in_channels, height, width = (int(d) for d in input_shape)
    layers: list[nn.Module] = []
    for out_channels in widths:
        layers += [
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        ]
        in_channels, height, width = out_channels, height // 2, width // 2
    layers += [
        nn.Flatten(),
        nn.Linear(in_channels * height * width, hidden_units),
        nn.ReLU(),
        nn.Linear(hidden_units, n_classes),
    ]
    return init_uniform_(nn.Sequential(*layers), generator)  # type: ignore[return-value]


class TorchCNNClassifier(TorchClassifier):
    """A small convolutional network (:func:`small_cnn`) trained with Adam on hard labels or
    soft targets; inputs are float images of shape (n_samples, channels, height, width).

    The training loop (seeding, soft targets, ``min_steps``, validation-based epoch selection
    with ``fit(X, y, *, X_val=None, y_val=None)``) is :class:`TorchClassifier`'s. Its layers are
    plain ``nn.Conv2d`` / ``nn.Linear`` modules, so the dropout Rashomon explorer perturbs
    them (per channel for the convolutions).

    Parameters
    ----------
    channels : output channels of each convolution stage; the images must be at least
        ``2**len(channels)`` pixels on each side.
    hidden : width of the hidden ``Linear`` layer.
    n_classes, epochs, batch_size, lr, weight_decay, min_steps, random_state : as in
        :class:`TorchClassifier`. The defaults (20 epochs, batches of 128, lr 3e-3, at least
        300 steps) were chosen on BreastMNIST and PneumoniaMNIST with validation-based epoch
        selection (``benchmarks/bench_cnn.py``): test accuracy about 0.83 and 0.84, close to
        MedMNIST's ResNet-18, in seconds on two CPU threads.

    Attributes
    ----------
    module_ : the fitted ``torch.nn.Sequential``.
    input_shape_ : (channels, height, width) of the training images.
    classes_, n_classes_, loss_curve_, val_loss_curve_, best_epoch_ : as in
        :class:`TorchClassifier`.
    """

    #: Images per forward pass in ``logits`` (convolution activations are large).
    _predict_batch_size = 1024

    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        *,
        hidden: int = 64,
        n_classes: int | None = None,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        min_steps: int = 300,
        random_state: int | None = None,
    ) -> None:
        self.channels = channels
        self.hidden = hidden
        self.n_classes = n_classes
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.min_steps = min_steps
        self.random_state = random_state

    def _build_module(
        self, input_shape: tuple[int, ...], n_classes: int, generator: torch.Generator
    ) -> nn.Module:
        return small_cnn(
            input_shape, n_classes, generator, channels=self.channels, hidden=self.hidden
        )

    def _as_inputs(self, X: ArrayLike, expected: tuple[int, ...] | None) -> NDArray[np.float32]:
        widths, _ = _architecture(self.channels, self.hidden)
        return as_float_images(
            X, image_shape=expected, min_size=2 ** len(widths), owner=type(self).__name__
        )
