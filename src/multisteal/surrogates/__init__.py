"""Fitting a surrogate on an attack transcript, on hard or soft labels."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import Transcript
from multisteal.errors import InvalidInputError
from multisteal.models.mlp import TorchMLPClassifier

__all__ = ["SURROGATES", "LabelKind", "fit_surrogate", "make_surrogate", "surrogate_targets"]

LabelKind = Literal["auto", "hard", "soft"]
SURROGATES: tuple[str, ...] = ("mlp", "logistic")
UNKNOWN_SURROGATE = "Unknown surrogate architecture {name!r}. Available: {available}."
UNKNOWN_LABELS = "labels must be one of auto, hard, soft; got {labels!r}."
NO_SOFT_LABELS = "Soft labels need scores in the answers, but the API answered in {mode!r} mode."


def make_surrogate(
    architecture: str, *, n_classes: int, random_state: int | None = None, **params: Any
) -> TorchMLPClassifier:
    """An unfitted surrogate: ``mlp`` (64-32 ReLU) or ``logistic`` (a single Linear layer).

    Both are torch networks, so every Rashomon explorer (dropout included) applies to them.
    """
    if architecture == "mlp":
        defaults: dict[str, Any] = {"hidden_layer_sizes": (64, 32), "epochs": 40}
    elif architecture == "logistic":
        defaults = {"hidden_layer_sizes": (), "epochs": 60, "lr": 1e-2}
    else:
        raise InvalidInputError(
            UNKNOWN_SURROGATE.format(name=architecture, available=", ".join(SURROGATES))
        )
    defaults.update(params)
    return TorchMLPClassifier(n_classes=n_classes, random_state=random_state, **defaults)


def surrogate_targets(transcript: Transcript, labels: LabelKind = "auto") -> NDArray[np.float64]:
    """Training targets from the answers: class indices (hard) or distributions (soft).

    ``auto`` uses soft labels whenever the answers carry scores, hard labels otherwise.
    """
    if labels not in ("auto", "hard", "soft"):
        raise InvalidInputError(UNKNOWN_LABELS.format(labels=labels))
    soft = transcript.answers.soft_targets()
    if labels == "soft" and soft is None:
        raise InvalidInputError(NO_SOFT_LABELS.format(mode=transcript.answers.mode))
    if labels == "hard" or soft is None:
        return transcript.answers.labels.astype(np.float64)
    return soft


def fit_surrogate(
    transcript: Transcript,
    *,
    architecture: str = "mlp",
    labels: LabelKind = "auto",
    random_state: int | None = None,
    **params: Any,
) -> TorchMLPClassifier:
    """Fit a surrogate of the given architecture on the transcript's queries and answers."""
    model = make_surrogate(
        architecture,
        n_classes=transcript.answers.n_classes,
        random_state=random_state,
        **params,
    )
    targets = surrogate_targets(transcript, labels)
    y = targets.astype(np.int64) if targets.ndim == 1 else targets
    return model.fit(transcript.queries, y)
