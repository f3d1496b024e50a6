"""Equation-solving extraction of logistic and softmax targets.

Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning Models via Prediction
APIs", USENIX Security 2016, section 4.1.1.

A logistic target answers ``p = σ(w·x + b)``, so every answered query gives one linear equation
``log(p₁ / p₀) = w·x + b`` in the ``d + 1`` unknowns; ``d + 1`` queries in general position
determine ``(w, b)`` exactly. A softmax target answers ``p_k ∝ exp(w_k·x + b_k)``; the ratios
``log(p_k / p_0)`` are linear in ``x`` for every class ``k``, and the attack spends the
``c·(d + 1)`` queries the paper counts for ``c`` classes (more than the ``d + 1`` that suffice
in exact arithmetic: the surplus averages out rounding in the answers).

``d`` is the width of the **attacker's own** encoding of the published input spec: records are
one-hot encoded over the categories the spec lists, with numbers kept as they are. A target whose
own encoder is affine in that encoding (one-hot and standardisation: multisteal's tabular
encoder) then has log-odds that are linear in it, so the equations hold exactly. The one-hot
blocks make the system rank-deficient (each block sums to the intercept); the minimum-norm
solution is used, and every solution gives the same answers on every valid record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, AttackSetting, Transcript
from multisteal.data.inputs import InputSpec, TabularSpec
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI

__all__ = [
    "EquationSolvingAttack",
    "SolvedLinearModel",
    "SpecEncoder",
    "check_equation_solving",
    "queries_needed",
]

NEEDS_PROBABILITIES = (
    "The equation-solving attack solves for the target's weights from the probabilities it "
    "answers, but this API answers in {mode!r} mode. It needs --output probabilities."
)
NOT_LINEAR_DOMAIN = (
    "The equation-solving attack applies to targets that take records or vectors (a logistic "
    "or softmax model on them); these inputs are {modality}."
)
TOO_FEW_QUERIES = (
    "Equation solving needs {needed} queries for a {c}-class target on a {d}-wide encoding "
    "({formula}); the budget is {budget}. Nothing was queried."
)
ZERO_PROBABILITY = (
    "The target answered a probability of exactly 0 for class {k} of query {row}: its log-odds "
    "there are not finite, so the equations cannot be solved. Is it a logistic model?"
)


def queries_needed(d: int, n_classes: int) -> int:
    """``d + 1`` for a binary target, ``c·(d + 1)`` for ``c > 2`` classes."""
    return d + 1 if n_classes == 2 else n_classes * (d + 1)


@dataclass
class SpecEncoder:
    """The attacker's encoding of a published input spec: one-hot over the categories each
    categorical column lists, numbers as they are (``None``: the inputs are already vectors)."""

    spec: TabularSpec | None

    def transform(self, X: Any) -> NDArray[np.float64]:
        if self.spec is None:
            return np.asarray(X, dtype=np.float64)
        frame = self.spec.validate(X)
        blocks: list[NDArray[np.float64]] = []
        for column in self.spec.columns:
            values = frame[column.name]
            if column.kind == "numerical":
                blocks.append(values.to_numpy(dtype=np.float64)[:, None])
            else:
                categories = pd.Categorical(values.astype(str), categories=column.categories)
                onehot = np.zeros((len(frame), len(column.categories)))
                onehot[np.arange(len(frame)), categories.codes] = 1.0
                blocks.append(onehot)
        return np.hstack(blocks) if blocks else np.zeros((len(frame), 0))

    def width(self, n_features: int) -> int:
        if self.spec is None:
            return n_features
        return sum(1 if c.kind == "numerical" else len(c.categories) for c in self.spec.columns)


@dataclass
class SolvedLinearModel:
    """The recovered model: class scores ``x·W + b`` (class 0's fixed at 0), softmax-ed."""

    encoder: SpecEncoder
    weights: NDArray[np.float64]  # (d, c): log-odds of each class against class 0
    bias: NDArray[np.float64]  # (c,)

    @property
    def classes_(self) -> NDArray[np.int64]:
        return np.arange(self.bias.shape[0])

    def decision_function(self, X: Any) -> NDArray[np.float64]:
        scores: NDArray[np.float64] = self.encoder.transform(X) @ self.weights + self.bias
        return scores

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        scores = self.decision_function(X)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        out: NDArray[np.float64] = exp / exp.sum(axis=1, keepdims=True)
        return out

    def predict(self, X: Any) -> NDArray[np.int64]:
        out: NDArray[np.int64] = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return out


def _encoder(spec: InputSpec | None) -> SpecEncoder:
    if spec is not None and not isinstance(spec, TabularSpec):
        raise InvalidInputError(NOT_LINEAR_DOMAIN.format(modality=spec.modality))
    return SpecEncoder(spec)


def check_equation_solving(setting: AttackSetting) -> int:
    """The number of queries needed; raises before any query when the attack cannot run."""
    if setting.output_mode != "probabilities":
        raise InvalidInputError(NEEDS_PROBABILITIES.format(mode=setting.output_mode))
    encoder = _encoder(setting.input_spec)
    d, c = encoder.width(setting.n_features), setting.n_classes
    needed = queries_needed(d, c)
    if setting.budget < needed:
        formula = "d + 1" if c == 2 else "c·(d + 1)"
        raise InvalidInputError(
            TOO_FEW_QUERIES.format(needed=needed, c=c, d=d, formula=formula, budget=setting.budget)
        )
    return needed


@dataclass
class EquationSolvingAttack:
    """Query ``queries_needed(d, c)`` points of the published domain and solve for the target's
    weights (see the module docstring). Inputs are drawn from the input spec (records) or from a
    standard normal (vectors); the answers must be probabilities."""

    name: str = field(default="equation-solving", init=False)

    def run(self, context: AttackContext) -> Transcript:
        """Spend exactly ``queries_needed(d, c)`` of the budget (not all of it)."""
        needed = check_equation_solving(context.setting())
        spec = context.input_spec
        X: Any = (
            spec.sample(needed, context.rng)
            if spec is not None
            else context.rng.standard_normal((needed, context.api.n_features))
        )
        return context.query(X)

    def solve(self, api: QueryAPI, transcript: Transcript) -> SolvedLinearModel:
        """The weights that reproduce every answer of ``transcript`` (least squares with the
        minimum norm; exact when the target is logistic or softmax in the encoding)."""
        encoder = _encoder(api.input_spec)
        scores = transcript.answers.scores
        if scores is None:
            raise InvalidInputError(NEEDS_PROBABILITIES.format(mode=transcript.answers.mode))
        zero = np.argwhere(scores <= 0)
        if zero.size:
            raise InvalidInputError(ZERO_PROBABILITY.format(row=zero[0][0], k=zero[0][1]))
        log_odds = np.log(scores[:, 1:]) - np.log(scores[:, :1])  # (n, c - 1) against class 0
        A = np.hstack([encoder.transform(transcript.queries), np.ones((len(transcript), 1))])
        solution, *_ = np.linalg.lstsq(A, log_odds, rcond=None)
        weights = np.hstack([np.zeros((A.shape[1] - 1, 1)), solution[:-1]])
        bias = np.concatenate([[0.0], solution[-1]])
        return SolvedLinearModel(encoder, weights, bias)
