"""Output policies: what a prediction API reveals about its probabilities.

An output policy is a plain callable ``probabilities (n, C) -> Answer``. Every policy returns the
service's decision (``labels``, the argmax of the model's probabilities, ties to the lowest
class) because a prediction service always reveals its decision; what differs is how much of
the score vector comes with it.

Each policy is also a restriction of an answer (:meth:`restrict`): the query API builds the
full answer (:func:`full_answer`), lets its defences transform it in order, and then restricts
it to its output mode. ``leaf`` reveals the decision and the identifier of the leaf that made it
(a decision-tree service that exposes it, as BigML's did; off unless a service chooses it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from multisteal.errors import InvalidInputError

__all__ = [
    "OUTPUT_MODES",
    "Answer",
    "LabelOnly",
    "LeafIds",
    "OutputPolicy",
    "Probabilities",
    "Rounded",
    "TopK",
    "full_answer",
    "make_output_policy",
]

OutputMode = Literal["probabilities", "top-k", "label", "rounded", "leaf"]
OUTPUT_MODES: tuple[str, ...] = ("probabilities", "top-k", "label", "rounded", "leaf")
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
    leaves : (n,) int64 or None — the leaf that decided each row (``leaf`` mode only).
    """

    labels: NDArray[np.int64]
    scores: NDArray[np.float64] | None
    revealed: NDArray[np.bool_] | None
    mode: str
    n_classes: int = field(default=0)
    leaves: NDArray[np.int64] | None = None

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
            leaves=None if self.leaves is None else self.leaves[indices],
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


def full_answer(
    probabilities: NDArray[np.float64], leaves: NDArray[np.int64] | None = None
) -> Answer:
    """Everything the model knows about a batch: its decision and its whole probability
    vector (and, for a tree, each row's leaf). Output policies and defences restrict this."""
    return Answer(
        labels=_labels(probabilities),
        scores=probabilities.copy(),
        revealed=np.ones(probabilities.shape, dtype=bool),
        mode="probabilities",
        n_classes=probabilities.shape[1],
        leaves=leaves,
    )


def _replace(answer: Answer, **changes: Any) -> Answer:
    out: Answer = dataclasses.replace(answer, **changes)
    return out


@dataclass(frozen=True)
class Probabilities:
    """Reveal the full probability vector."""

    name: str = "probabilities"

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return self.restrict(full_answer(probabilities))

    def restrict(self, answer: Answer) -> Answer:
        return _replace(answer, leaves=None)


@dataclass(frozen=True)
class TopK:
    """Reveal the ``k`` largest probabilities of each row (ties to the lowest class index)."""

    k: int = 1
    name: str = "top-k"

    def __post_init__(self) -> None:
        if self.k < 1:
            raise InvalidInputError(BAD_K.format(k=self.k))

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return self.restrict(full_answer(probabilities))

    def restrict(self, answer: Answer) -> Answer:
        """Keep the ``k`` largest of the scores still revealed (label-only answers pass)."""
        if answer.scores is None or answer.revealed is None:
            return answer
        k = min(self.k, answer.scores.shape[1])
        masked = np.where(answer.revealed, answer.scores, -np.inf)
        order = np.argsort(-masked, axis=1, kind="stable")[:, :k]
        keep = np.zeros(answer.scores.shape, dtype=bool)
        np.put_along_axis(keep, order, True, axis=1)
        revealed = keep & answer.revealed
        return _replace(
            answer,
            scores=np.where(revealed, answer.scores, 0.0),
            revealed=revealed,
            mode=self.name,
            leaves=None,
        )


@dataclass(frozen=True)
class LabelOnly:
    """Reveal only the decision."""

    name: str = "label"

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return self.restrict(full_answer(probabilities))

    def restrict(self, answer: Answer) -> Answer:
        return _replace(answer, scores=None, revealed=None, leaves=None, mode=self.name)


@dataclass(frozen=True)
class LeafIds:
    """Reveal the decision and the identifier of the leaf that made it (tree services)."""

    name: str = "leaf"

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return self.restrict(full_answer(probabilities))

    def restrict(self, answer: Answer) -> Answer:
        if answer.leaves is None:  # a defence before it hid them: only the decision is left
            return LabelOnly().restrict(answer)
        return _replace(answer, scores=None, revealed=None, mode=self.name)


@dataclass(frozen=True)
class Rounded:
    """Reveal probabilities rounded to ``decimals`` decimal places."""

    decimals: int = 2
    name: str = "rounded"

    def __post_init__(self) -> None:
        if self.decimals < 0:
            raise InvalidInputError(BAD_DECIMALS.format(decimals=self.decimals))

    def __call__(self, probabilities: NDArray[np.float64]) -> Answer:
        return self.restrict(full_answer(probabilities))

    def restrict(self, answer: Answer) -> Answer:
        if answer.scores is None:
            return answer
        mode = self.name if answer.mode == "probabilities" else answer.mode
        return _replace(
            answer, scores=np.round(answer.scores, self.decimals), mode=mode, leaves=None
        )


def make_output_policy(
    name: str, *, k: int = 1, decimals: int = 2
) -> Probabilities | TopK | LabelOnly | Rounded | LeafIds:
    """The output policy called ``name`` (one of :data:`OUTPUT_MODES`)."""
    if name == "probabilities":
        return Probabilities()
    if name == "top-k":
        return TopK(k)
    if name == "label":
        return LabelOnly()
    if name == "rounded":
        return Rounded(decimals)
    if name == "leaf":
        return LeafIds()
    raise InvalidInputError(UNKNOWN_OUTPUT.format(name=name, available=", ".join(OUTPUT_MODES)))
