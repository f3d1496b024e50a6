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
    "Every answer is saturated (e.g. class {k} of query {row} at a probability of 1e-9 or "
    "less): no log-odds can be read off them, so the equations cannot be solved. Is it a "
    "logistic model?"
)


MIN_EXTRA = 16
"""The smallest batch of extra queries (each round of them re-checks the design's rank)."""
SATURATED = 1e-9
"""An answered probability at or below this carries too little precision for its log-odds
(float64 keeps ~16 digits of ``1 − p`` only down to here): such answers are not used."""


def _usable(transcript: Transcript) -> NDArray[np.bool_]:
    """Answers whose every class probability exceeds :data:`SATURATED`."""
    scores = transcript.answers.scores
    if scores is None:
        return np.zeros(len(transcript), dtype=bool)
    out: NDArray[np.bool_] = np.asarray((scores > SATURATED).all(axis=1), dtype=bool)
    return out


def _least_saturated(context: AttackContext) -> Any:
    """The answered record whose smallest class probability is largest (a row of records), or
    ``None`` without records: later draws are centred there."""
    best: tuple[float, Any] | None = None
    for part in context.answered:
        queries, scores = part.queries, part.answers.scores
        if scores is None or not isinstance(queries, pd.DataFrame):
            return None
        i = int(np.argmax(scores.min(axis=1)))
        if best is None or scores[i].min() > best[0]:
            best = (float(scores[i].min()), queries.iloc[i])
    return None if best is None else best[1]


def _design_rank(encoder: SpecEncoder, n_features: int) -> int:
    """The rank of the equations' design ``[encoding, 1]`` over the whole domain: each one-hot
    block of ``k`` categories adds ``k − 1`` (the blocks and the intercept share a direction)."""
    if encoder.spec is None:
        return n_features + 1
    return 1 + sum(
        1 if c.kind == "numerical" else len(c.categories) - 1 for c in encoder.spec.columns
    )


def _design(encoder: SpecEncoder, batch: Transcript) -> NDArray[np.float64]:
    """The rows ``[encoding, 1]`` of a batch's usable answers."""
    keep = np.flatnonzero(_usable(batch)).astype(np.int64)
    if not len(keep):
        return np.zeros((0, 0))
    A = encoder.transform(batch.take(keep).queries)
    return np.hstack([A, np.ones((len(A), 1))])


def _rank(design: list[NDArray[np.float64]]) -> int:
    parts = [rows for rows in design if len(rows)]
    if not parts:
        return 0
    A = np.vstack(parts)
    spread = np.abs(A).max(axis=0)
    spread[spread == 0] = 1.0
    return int(np.linalg.matrix_rank(A / spread))


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
        """Spend ``queries_needed(d, c)`` of the budget; then, only while the usable answers do
        not determine the weights (answers whose probabilities are saturated — a class at
        ``1e-9`` or less — carry no precision and are not used, and the rest must span the
        domain's design), more queries, drawn nearer the middle of each numeric range while
        most answers saturate, within the budget."""
        needed = check_equation_solving(context.setting())
        encoder = _encoder(context.input_spec)
        full_rank = _design_rank(encoder, context.api.n_features)
        batch = context.query(self._draw(context, needed, 1.0))
        design = [_design(encoder, batch)]  # the usable answers' rows of [encoding, 1]
        scale = 1.0
        while context.budget > 0 and _rank(design) < full_rank:
            if _usable(batch).mean() < 0.5:
                scale /= 2.0  # most answers saturated: draw nearer to where they were not
            usable = sum(len(rows) for rows in design)
            more = min(max(needed - usable, MIN_EXTRA), context.budget)
            centre = _least_saturated(context)
            batch = context.query(self._draw(context, more, scale, centre))
            design.append(_design(encoder, batch))
        transcript = context.transcript()
        assert transcript is not None
        return transcript

    @staticmethod
    def _draw(context: AttackContext, n: int, scale: float, centre: Any = None) -> Any:
        """``n`` points of the published domain: each categorical column cycles through its
        categories in a random order (so that ``d + 1`` queries hold every category), numeric
        columns are uniform over their range — with ``scale < 1`` over its middle ``scale``
        share (vectors: a normal of that scale)."""
        spec = context.input_spec
        if spec is None:
            return context.rng.standard_normal((n, context.api.n_features)) * scale
        X: Any = spec.sample(n, context.rng)
        if isinstance(spec, TabularSpec):
            for column in spec.columns:
                if column.kind != "numerical":
                    # every category in turn (shuffled): a category no query holds would leave
                    # its weight undetermined
                    cycle = np.resize(np.asarray(column.categories, dtype=object), n)
                    X[column.name] = context.rng.permutation(cycle)
                    continue
                if scale >= 1.0:
                    continue
                half = (column.high - column.low) / 2
                middle = (column.low + column.high) / 2
                if centre is not None:
                    middle = float(centre[column.name])
                values = middle + context.rng.uniform(-1.0, 1.0, size=n) * half * scale
                values = np.clip(values, column.low, column.high)
                if column.integer:
                    values = np.clip(np.rint(values), column.low, column.high).astype(np.int64)
                X[column.name] = values
        return X

    def solve(self, api: QueryAPI, transcript: Transcript) -> SolvedLinearModel:
        """The weights that reproduce every answer of ``transcript`` (least squares with the
        minimum norm; exact when the target is logistic or softmax in the encoding)."""
        encoder = _encoder(api.input_spec)
        scores = transcript.answers.scores
        if scores is None:
            raise InvalidInputError(NEEDS_PROBABILITIES.format(mode=transcript.answers.mode))
        keep = _usable(transcript)
        if not keep.any():
            zero = np.argwhere(scores <= SATURATED)
            raise InvalidInputError(ZERO_PROBABILITY.format(row=zero[0][0], k=zero[0][1]))
        scores = scores[keep]
        log_odds = np.log(scores[:, 1:]) - np.log(scores[:, :1])  # (n, c - 1) against class 0
        rows = transcript.take(np.flatnonzero(keep).astype(np.int64)).queries
        A = np.hstack([encoder.transform(rows), np.ones((len(scores), 1))])
        # columns scaled to a common spread (numbers can be 1e5 beside 0/1 one-hot columns)
        spread = np.abs(A).max(axis=0)
        spread[spread == 0] = 1.0
        scaled, *_ = np.linalg.lstsq(A / spread, log_odds, rcond=None)
        solution = scaled / spread[:, None]
        weights = np.hstack([np.zeros((A.shape[1] - 1, 1)), solution[:-1]])
        bias = np.concatenate([[0.0], solution[-1]])
        return SolvedLinearModel(encoder, weights, bias)
