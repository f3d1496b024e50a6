"""Fitting a surrogate on an attack transcript, on hard or soft labels.

The surrogate is any family of the model zoo (:data:`multisteal.models.MODELS`) that serves the
target's input modality; the attacker's architecture may differ from the target's. Against a
raw-input API the surrogate is an :class:`~multisteal.models.InputPipeline` whose encoder is
fitted on the transcript's queries only — attacker-side data, never the owner's encoder.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import Transcript
from multisteal.data.inputs import InputSpec
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import (
    MODELS,
    SURROGATE_ALIASES,
    Classifier,
    make_model,
    make_pipeline,
    resolve_model_name,
)

__all__ = ["SURROGATES", "LabelKind", "fit_surrogate", "make_surrogate", "surrogate_targets"]

LabelKind = Literal["auto", "hard", "soft"]
SURROGATES: tuple[str, ...] = tuple(dict.fromkeys([*SURROGATE_ALIASES, *MODELS]))
UNKNOWN_SURROGATE = "Unknown surrogate architecture {name!r}. Available: {available}."
UNKNOWN_LABELS = "labels must be one of auto, hard, soft; got {labels!r}."
NO_SOFT_LABELS = "Soft labels need scores in the answers, but the API answered in {mode!r} mode."


def make_surrogate(
    architecture: str,
    *,
    n_classes: int,
    random_state: int | None = None,
    input_spec: InputSpec | None = None,
    encoder_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> Classifier:
    """An unfitted surrogate of a zoo family.

    With ``input_spec`` it is a raw-input pipeline for that modality (its encoder is fitted with
    it, on the transcript); without, the bare classifier on encoded vectors. ``logistic`` is the
    torch logistic regression, so that every explorer (dropout included) applies to it.
    """
    try:
        family = resolve_model_name(architecture, surrogate=True)
    except InvalidInputError:
        raise InvalidInputError(
            UNKNOWN_SURROGATE.format(name=architecture, available=", ".join(SURROGATES))
        ) from None
    if input_spec is not None:
        return make_pipeline(
            architecture,
            input_spec,
            n_classes=n_classes,
            random_state=random_state,
            surrogate=True,
            encoder_params=encoder_params,
            **params,
        )
    merged: dict[str, Any] = dict(MODELS[family].surrogate_defaults)
    merged.update(params)
    if MODELS[family].torch:
        merged.setdefault("n_classes", n_classes)
    return make_model(family, random_state=random_state, **merged)


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
    input_spec: InputSpec | None = None,
    encoder_params: Mapping[str, Any] | None = None,
    **params: Any,
) -> Classifier:
    """Fit a surrogate of the given architecture on the transcript's queries and answers."""
    model = make_surrogate(
        architecture,
        n_classes=transcript.answers.n_classes,
        random_state=random_state,
        input_spec=input_spec,
        encoder_params=encoder_params,
        **params,
    )
    targets = surrogate_targets(transcript, labels)
    y = targets.astype(np.int64) if targets.ndim == 1 else targets
    queries = transcript.queries
    if input_spec is None:
        queries = np.asarray(queries, dtype=np.float64)
    fitted: Classifier = model.fit(queries, y)
    return fitted
