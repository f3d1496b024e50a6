"""Output policies: what a prediction API reveals about its probabilities.

An output policy is a plain callable ``probabilities (n, C) -> Answer``. Every policy returns the
service's decision (``labels``, the argmax of the model's probabilities, ties to the lowest
class) because a prediction service always reveals its decision; what differs is how much of
the score vector comes with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from multisteal.errors import InvalidInputError

__all__ = [
    "OUTPUT_MODES",
    "Answer",
    "LabelOnly",
    "OutputPolicy",
    "Probabilities",
    "Rounded",
    "TopK",
    "make_output_policy",
]

OutputMode = Literal["probabilities", "top-k", "label", "rounded"]
OUTPUT_MODES: tuple[str, ...] = ("probabilities", "top-k", "label", "rounded")
UNKNOWN_OUTPUT = "Unknown output mode {name!r}. Available output modes: {available}."
BAD_K = "top-k needs k >= 1, got {k}."
BAD_DECIMALS = "rounded needs decimals >= 0, got {decimals}."


@dataclass(frozen=True)
class Answer:
    """What the API returned for a batch of rows.

    Attributes
    ----------
    labels : (n,) int64 — the decision for each row.
    scores : (n, C) float64 or None — the revealed scores; None for label-only answers.
        Under ``top-k`` unrevealed entries are 0; under ``rounded`` rows may not sum to 1.
    revealed : (n, C) bool or None — which entries of ``scores`` were revealed.
    mode : the output policy's name.
    """

    labels: NDArray[np.int64]
    scores: NDArray[np.float64] | None
    revealed: NDArray[np.bool_] | None
    mode: str
    n_classes: int = field(default=0)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def take(self, indices: NDArray[np.int64]) -> Answer:
        """The answers for a subset of rows."""
        return Answer(
            labels=self.labels[indices],
            scores=None if self.scores is None else self.scores[indices],
            revealed=None if self.revealed is None else self.revealed[indices],
            mode=self.mode,
            n_classes=self.n_classes,
        )

    def soft_targets(self) -> NDArray[np.float64] | None:
        """A probability distribution per row built from what was revealed, or None.

        Revealed scores are kept; the remaining mass (1 − revealed total, at least 0) is spread
        evenly over unrevealed classes; the row is then renormalised (rounded scores need it).
        """
        if self.scores is None or self.revealed is None:
            return None
        scores = np.where(self.revealed, np.clip(self.scores, 0.0, 1.0), 0.0)
        hidden = (~self.revealed).sum(axis=1, keepdims=True)
        rest = np.clip(1.0 - scores.sum(axis=1, keepdims=True), 0.0, None)
        share = np.divide(rest, hidden, out=np.zeros_like(rest), where=hidden > 0)
        filled = np.where(self.revealed, scores, share)
        total = filled.sum(axis=1, keepdims=True)
        uniform = np.full_like(filled, 1.0 / filled.shape[1])
        out: NDArray[np.float64] = np.where(
            total > 0, filled / np.where(total > 0, total, 1.0), uniform
        )
        return out


OutputPolicy = Callable[[NDArray[np.float64]], Answer]


def _labels(probabilities: NDArray[np.float64]) -> NDArray[np.int64]:
    out: NDArray[np.int64] = np.argmax(probabilities, axis=1).astype(np.int64)
    return out


@dataclass(frozen=True)
class Probabilities:
    """Reveal the full probability vector."""

    name: str = "probabilities"

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return Answer(
            labels=_labels(probabilities),
            scores=probabilities.copy(),
            revealed=np.ones(probabilities.shape, dtype=bool),
            mode=self.name,
            n_classes=probabilities.shape[1],
        )


@dataclass(frozen=True)
class TopK:
    """Reveal the ``k`` largest probabilities of each row (ties to the lowest class index)."""

    k: int = 1
    name: str = "top-k"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(BAD_K.format(k=self.k))

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        k = min(self.k, probabilities.shape[1])
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        revealed = np.zeros(probabilities.shape, dtype=bool)
        np.put_along_axis(revealed, order, True, axis=1)
        return Answer(
            labels=_labels(probabilities),
            scores=np.where(revealed, probabilities, 0.0),
            revealed=revealed,
            mode=self.name,
            n_classes=probabilities.shape[1],
        )


@dataclass(frozen=True)
class LabelOnly:
    """Reveal only the decision."""

    name: str = "label"

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return Answer(
            labels=_labels(probabilities),
            scores=None,
            revealed=None,
            mode=self.name,
            n_classes=probabilities.shape[1],
        )


@dataclass(frozen=True)
class Rounded:
    """Reveal probabilities rounded to ``decimals`` decimal places."""

    decimals: int = 2
    name: str = "rounded"

    def __post_init__(self) -> None:
        if self.decimals < 0:
            raise InvalidInputError(BAD_DECIMALS.format(decimals=self.decimals))

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return Answer(
            labels=_labels(probabilities),
            scores=np.round(probabilities, self.decimals),
            revealed=np.ones(probabilities.shape, dtype=bool),
            mode=self.name,
            n_classes=probabilities.shape[1],
        )


def make_output_policy(name: str, *, k: int = 1, decimals: int = 2) -> OutputPolicy:
    """The output policy called ``name`` (one of :data:`OUTPUT_MODES`)."""
    if name == "probabilities":
        return Probabilities()
    if name == "top-k":
        return TopK(k)
    if name == "label":
        return LabelOnly()
    if name == "rounded":
        return Rounded(decimals)
    raise InvalidInputError(UNKNOWN_OUTPUT.format(name=name, available=", ".join(OUTPUT_MODES)))
