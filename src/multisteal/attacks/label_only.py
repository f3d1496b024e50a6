"""Label-only extraction by retraining with adaptive queries.

Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning Models via Prediction
APIs", USENIX Security 2016, section 5 (label-only extraction: "retraining with adaptive
queries", in the spirit of active learning).

What is implemented here:

1. ``m₀ = round(initial_fraction · budget)`` (at least 1) inputs drawn uniformly at random
   from the input domain are queried;
2. the rest of the budget is split over ``rounds`` rounds as evenly as possible; before each
   round the attacker's surrogate is fitted on the **labels** answered so far (a label-only
   copy of the transcript, even when the API reveals scores), and ``candidates_per_query``
   random candidates are drawn from the domain per query of the round;
3. the round queries the candidates the current surrogate is least certain about: those with
   the smallest margin between its top-1 and top-2 class probabilities (uncertainty
   sampling).

Tramèr et al. query the points closest to the current model's decision boundary, which for a
linear model they can compute; this implementation selects them from random candidates by the
surrogate's margin instead of moving points onto the boundary (no line search), so it applies
to any surrogate family. It spends exactly the budget and uses labels only, so it works in
every output mode.

The domain: records and images are drawn from the published input spec (``spec.sample``:
uniform over each column's categories and range, uniform-noise images), as in the paper.
Against an API that publishes no spec (encoded vectors) the candidates are drawn from the
pool's per-column marginals (as the ``synthetic`` attack does). A string domain has no
distribution to sample: for text the candidates are texts of the attacker's pool that were
not queried yet (the pool must then hold the whole budget), and without a pool text is not
applicable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, AttackSetting, Transcript, concat_answers
from multisteal.attacks.synthetic import sample_marginals
from multisteal.data.inputs import concat_inputs, n_inputs, take_inputs
from multisteal.errors import InvalidInputError
from multisteal.query.outputs import LabelOnly

__all__ = [
    "BAD_CANDIDATES",
    "BAD_FRACTION",
    "BAD_ROUNDS",
    "NO_BUDGET",
    "NO_DOMAIN",
    "TEXT_NEEDS_POOL",
    "TEXT_POOL_TOO_SMALL",
    "AdaptiveRetrainingAttack",
    "boundary_margins",
    "check_label_only_retraining",
    "label_only",
    "round_sizes",
]

NAME = "label-only-retraining"
BAD_ROUNDS = "The label-only-retraining attack's rounds must be a whole number >= 1; got {value!r}."
BAD_FRACTION = (
    "The label-only-retraining attack's initial_fraction must be a number in (0, 1]; got {value!r}."
)
BAD_CANDIDATES = (
    "The label-only-retraining attack's candidates_per_query must be a whole number >= 1; "
    "got {value!r}."
)
NO_BUDGET = (
    "The label-only-retraining attack has no budget to spend: the API's ledger has 0 rows left."
)
NO_DOMAIN = (
    "The label-only-retraining attack draws candidates from the target's published input spec "
    "or, against an API that takes encoded vectors, from the pool's marginals; this API "
    "publishes no spec and the attacker has no pool."
)
TEXT_NEEDS_POOL = (
    "The label-only-retraining attack draws candidates from the input domain, and a string "
    "domain has none to sample: on text it picks them from the attacker's pool, but the "
    "attacker has none (use --pool-dataset, or the pool attack)."
)
TEXT_POOL_TOO_SMALL = (
    "On text the label-only-retraining attack queries {budget} distinct texts of the "
    "attacker's pool, but the pool has {size}."
)


def check_label_only_retraining(setting: AttackSetting) -> None:
    """The registry's extra check: a domain to draw candidates from must exist."""
    if setting.modality == "text":
        if setting.pool_size is None:
            raise InvalidInputError(TEXT_NEEDS_POOL)
        if setting.budget > setting.pool_size:
            raise InvalidInputError(
                TEXT_POOL_TOO_SMALL.format(budget=setting.budget, size=setting.pool_size)
            )
    elif setting.input_spec is None and setting.pool_size is None:
        raise InvalidInputError(NO_DOMAIN)


def round_sizes(total: int, rounds: int) -> list[int]:
    """``total`` queries split over ``rounds`` as evenly as possible (the first get the rest).

    >>> round_sizes(10, 4)
    [3, 3, 2, 2]
    """
    base, extra = divmod(total, rounds)
    return [base + (1 if i < extra else 0) for i in range(rounds)]


def label_only(transcript: Transcript) -> Transcript:
    """``transcript`` with its answers cut down to the labels (``label`` mode)."""
    return Transcript(
        transcript.queries, LabelOnly().restrict(transcript.answers), transcript.source_index
    )


def boundary_margins(surrogate: Any, X: pd.DataFrame | NDArray[Any]) -> NDArray[np.float64]:
    """Top-1 minus top-2 probability of ``surrogate`` on each input (small: near its decision
    boundary)."""
    probabilities = np.asarray(surrogate.predict_proba(X), dtype=np.float64)
    if probabilities.shape[1] < 2:
        return np.zeros(probabilities.shape[0])
    top = np.sort(probabilities, axis=1)
    out: NDArray[np.float64] = top[:, -1] - top[:, -2]
    return out


class _Domain:
    """Where candidates come from: the input spec, the pool's marginals, or unqueried pool
    texts."""

    def __init__(self, context: AttackContext) -> None:
        self.spec = context.input_spec
        self.pool = context.pool
        self.rng = context.rng
        self.from_pool = self.spec is not None and self.spec.modality == "text"
        if self.from_pool:
            if self.pool is None:
                raise InvalidInputError(TEXT_NEEDS_POOL)
            if context.budget > n_inputs(self.pool):
                raise InvalidInputError(
                    TEXT_POOL_TOO_SMALL.format(budget=context.budget, size=n_inputs(self.pool))
                )
            self.unused = np.ones(n_inputs(self.pool), dtype=bool)
        elif self.spec is None and self.pool is None:
            raise InvalidInputError(NO_DOMAIN)

    def draw(self, n: int) -> tuple[pd.DataFrame | NDArray[Any], NDArray[np.int64] | None]:
        """Up to ``n`` candidates (and their pool rows when they come from the pool)."""
        if self.from_pool:
            assert self.pool is not None
            free = np.flatnonzero(self.unused)
            rows = np.sort(self.rng.choice(free, size=min(n, free.size), replace=False))
            return take_inputs(self.pool, rows), rows.astype(np.int64)
        if self.spec is not None:
            return self.spec.sample(n, self.rng), None
        assert self.pool is not None
        return sample_marginals(self.pool, n, rng=self.rng), None

    def mark(self, rows: NDArray[np.int64] | None) -> None:
        if self.from_pool and rows is not None:
            self.unused[rows] = False


@dataclass
class AdaptiveRetrainingAttack:
    """Tramèr et al.'s retraining with adaptive queries (see the module docstring).

    Parameters
    ----------
    rounds : the adaptive rounds after the initial random queries (one surrogate fit each).
    initial_fraction : the share of the budget spent on the initial uniformly random queries.
    candidates_per_query : random candidates drawn per query of a round; the round queries the
        ones with the smallest surrogate margin.
    """

    rounds: int = 5
    initial_fraction: float = 0.25
    candidates_per_query: int = 10
    name: str = field(default=NAME, init=False)

    def __post_init__(self) -> None:
        if not _whole(self.rounds):
            raise InvalidInputError(BAD_ROUNDS.format(value=self.rounds))
        if isinstance(self.initial_fraction, bool) or not (
            isinstance(self.initial_fraction, int | float)
            and math.isfinite(self.initial_fraction)
            and 0.0 < self.initial_fraction <= 1.0
        ):
            raise InvalidInputError(BAD_FRACTION.format(value=self.initial_fraction))
        if not _whole(self.candidates_per_query):
            raise InvalidInputError(BAD_CANDIDATES.format(value=self.candidates_per_query))

    def initial_size(self, budget: int) -> int:
        """``m₀``: the initial random queries (at least 1, at most the budget)."""
        return min(budget, max(1, round(self.initial_fraction * budget)))

    def run(self, context: AttackContext) -> Transcript:
        """Spend exactly the budget: ``m₀`` random queries, then ``rounds`` adaptive rounds."""
        budget = context.budget
        if budget < 1:
            raise InvalidInputError(NO_BUDGET)
        domain = _Domain(context)
        first = self.initial_size(budget)
        X, rows = domain.draw(first)
        domain.mark(rows)
        parts = [context.query(X, source_index=rows)]
        for size in round_sizes(budget - first, self.rounds):
            if size == 0:
                continue
            surrogate = context.fit_surrogate(
                self.name, label_only(_concat(parts)), int(context.rng.integers(2**31 - 1))
            )
            candidates, candidate_rows = domain.draw(size * self.candidates_per_query)
            margins = boundary_margins(surrogate, candidates)
            chosen = np.sort(np.argsort(margins, kind="stable")[:size]).astype(np.int64)
            picked_rows = None if candidate_rows is None else candidate_rows[chosen]
            domain.mark(picked_rows)
            parts.append(context.query(take_inputs(candidates, chosen), source_index=picked_rows))
        return _concat(parts)


def _concat(parts: list[Transcript]) -> Transcript:
    if len(parts) == 1:
        return parts[0]
    sources = [p.source_index for p in parts if p.source_index is not None]
    return Transcript(
        concat_inputs([p.queries for p in parts]),
        concat_answers([p.answers for p in parts]),
        np.concatenate(sources) if len(sources) == len(parts) else None,
    )


def _whole(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= 1
