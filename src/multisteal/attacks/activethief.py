"""ActiveThief: model extraction with active learning on an unlabelled pool.

Pal, Gupta, Shukla, Kanade, Shevade & Ganapathy, "ActiveThief: Model Extraction Using Active
Learning and Unannotated Public Data", AAAI 2020.

The attacker queries a random seed set of its pool (``initial_fraction`` of the budget), then
spends the rest in ``rounds`` (near-)equal rounds. Before each round it fits its surrogate on the
whole transcript so far (``context.fit_surrogate``), scores the pool with the surrogate's
probabilities and queries the rows the strategy selects:

* ``uncertainty``: the highest entropy ``−Σ_k p_k log p_k`` of the surrogate's prediction;
* ``margin``: the smallest gap between the surrogate's two largest probabilities (a common
  variant of uncertainty sampling, not in the paper);
* ``k-center``: the paper's greedy k-center (Sener & Savarese, ICLR 2018) in the space of the
  surrogate's probability vectors: the already-queried rows are the initial centres, and each
  pick is the unqueried row farthest (Euclidean) from its nearest centre, which then becomes a
  centre. Queried rows are placed by the surrogate's prediction too, so that both sides of
  every distance come from the same model.

Ties go to the lower pool position. The rounds share what the seed set leaves of the budget
(sizes differing by at most one; fewer rounds when fewer rows are left), so the whole budget
is spent; the transcript lists the queries in the order they were sent (the seed set in
pool order, then each round in selection order), with their pool positions in
``source_index``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, Transcript, join_transcripts
from multisteal.attacks.features import surrogate_probabilities
from multisteal.attacks.knockoff import BAD_ROUNDS, check_pool
from multisteal.data.inputs import n_inputs, take_inputs
from multisteal.errors import InvalidInputError

__all__ = [
    "BAD_INITIAL_FRACTION",
    "STRATEGIES",
    "UNKNOWN_STRATEGY",
    "ActiveThiefAttack",
    "k_center_greedy",
    "select_queries",
]

STRATEGIES: tuple[str, ...] = ("uncertainty", "margin", "k-center")
UNKNOWN_STRATEGY = "Unknown ActiveThief strategy {strategy!r}. Strategies: {available}."
BAD_INITIAL_FRACTION = (
    "The activethief attack needs an initial_fraction of the budget in (0, 1] for its random "
    "seed set, got {value!r}."
)
TOO_MANY = "Cannot select {k} rows: only {left} of the pool are not queried yet."

_SEEDS = 2**31 - 1


def _entropy(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    p = np.clip(probabilities, 0.0, 1.0)
    logs = np.log(np.where(p > 0, p, 1.0))
    out: NDArray[np.float64] = -(p * logs).sum(axis=1)
    return out


def _margin(probabilities: NDArray[np.float64]) -> NDArray[np.float64]:
    top = -np.sort(-probabilities, axis=1)
    if probabilities.shape[1] == 1:
        return top[:, 0]
    out: NDArray[np.float64] = top[:, 0] - top[:, 1]
    return out


def k_center_greedy(
    points: NDArray[np.float64], centres: NDArray[np.bool_], k: int
) -> NDArray[np.int64]:
    """Greedy k-center: ``k`` rows of ``points`` not in ``centres``, each the farthest
    (Euclidean) from its nearest centre so far, in the order picked (ties: the lowest row).

    Without any centre the first pick is the lowest free row.
    """
    nearest = np.full(len(points), np.inf)
    for anchor in np.flatnonzero(centres):
        nearest = np.minimum(nearest, _distances(points, points[anchor]))
    nearest[centres] = -np.inf
    picks = np.empty(k, dtype=np.int64)
    for i in range(k):
        pick = int(np.argmax(nearest))
        picks[i] = pick
        nearest = np.minimum(nearest, _distances(points, points[pick]))
        nearest[pick] = -np.inf
    return picks


def _distances(points: NDArray[np.float64], centre: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = np.sqrt(((points - centre) ** 2).sum(axis=1))
    return out


def select_queries(
    strategy: str, probabilities: NDArray[np.float64], queried: NDArray[np.bool_], k: int
) -> NDArray[np.int64]:
    """The ``k`` unqueried rows the strategy picks, in selection order.

    Parameters
    ----------
    strategy : ``uncertainty``, ``margin`` or ``k-center`` (see the module docstring).
    probabilities : ``(n, C)`` the surrogate's probabilities on every pool row.
    queried : ``(n,)`` which pool rows were already queried.
    k : how many rows to pick.
    """
    if strategy not in STRATEGIES:
        raise InvalidInputError(
            UNKNOWN_STRATEGY.format(strategy=strategy, available=", ".join(STRATEGIES))
        )
    free = np.flatnonzero(~queried)
    if k > len(free):
        raise InvalidInputError(TOO_MANY.format(k=k, left=len(free)))
    if strategy == "k-center":
        return k_center_greedy(probabilities, queried, k)
    if strategy == "uncertainty":
        score = -_entropy(probabilities[free])  # highest entropy first
    else:
        score = _margin(probabilities[free])  # smallest margin first
    order = np.argsort(score, kind="stable")[:k]
    out: NDArray[np.int64] = free[order].astype(np.int64)
    return out


@dataclass
class ActiveThiefAttack:
    """ActiveThief (Pal et al., AAAI 2020): a random seed set, then rounds of active learning
    with the attacker's surrogate (see the module docstring).

    Parameters
    ----------
    strategy : ``uncertainty`` (default), ``margin`` or ``k-center``.
    rounds : the rounds after the seed set (fewer when the budget left is smaller).
    initial_fraction : the share of the budget queried at random first (at least one row).

    Attributes (after :meth:`run`)
    ------------------------------
    selected_ : the pool positions queried by the seed set and then by each round.
    """

    strategy: str = "uncertainty"
    rounds: int = 10
    initial_fraction: float = 0.1
    name: str = field(default="activethief", init=False)
    selected_: list[NDArray[np.int64]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise InvalidInputError(
                UNKNOWN_STRATEGY.format(strategy=self.strategy, available=", ".join(STRATEGIES))
            )
        if (
            isinstance(self.rounds, bool)
            or not isinstance(self.rounds, (int, np.integer))
            or self.rounds < 1
        ):
            raise InvalidInputError(BAD_ROUNDS.format(name=self.name, value=self.rounds))
        fraction = self.initial_fraction
        if (
            isinstance(fraction, bool)
            or not isinstance(fraction, (int, float))
            or not math.isfinite(fraction)
            or not 0.0 < fraction <= 1.0
        ):
            raise InvalidInputError(BAD_INITIAL_FRACTION.format(value=fraction))

    def run(self, context: AttackContext) -> Transcript:
        """Spend the whole budget on distinct pool inputs (see the module docstring)."""
        pool, budget = check_pool(self.name, context)
        size = n_inputs(pool)
        rng = context.rng
        n_seed = min(budget, max(1, round(self.initial_fraction * budget)))
        rest = budget - n_seed
        sizes = (
            [len(s) for s in np.array_split(np.arange(rest), min(self.rounds, rest))]
            if rest
            else []
        )

        seed_rows = np.sort(rng.choice(size, size=n_seed, replace=False)).astype(np.int64)
        parts = [context.query(take_inputs(pool, seed_rows), source_index=seed_rows)]
        self.selected_ = [seed_rows]
        queried = np.zeros(size, dtype=bool)
        queried[seed_rows] = True
        for k in sizes:
            transcript = join_transcripts(parts)
            surrogate = context.fit_surrogate(self.name, transcript, int(rng.integers(_SEEDS)))
            probabilities = surrogate_probabilities(surrogate, pool, context.api.n_classes)
            rows = select_queries(self.strategy, probabilities, queried, k)
            parts.append(context.query(take_inputs(pool, rows), source_index=rows))
            self.selected_.append(rows)
            queried[rows] = True
        return join_transcripts(parts)
