"""Knockoff Nets: query an attacker's pool at random, or adaptively with a gradient bandit.

Orekondy, Schiele & Fritz, "Knockoff Nets: Stealing Functionality of Black-Box Models",
CVPR 2019, section 4.1 (sampling strategies).

* ``knockoff-random`` (:class:`KnockoffRandom`): the *random* strategy — ``budget`` pool inputs
  drawn uniformly without replacement.
* ``knockoff-adaptive`` (:class:`KnockoffAdaptive`): the *adaptive* strategy. The paper's actions
  are the label hierarchy of the attacker's (labelled) pool; an unlabelled pool has none, so the
  actions here are the k-means clusters of the pool in the attacker's own feature view
  (:func:`~multisteal.attacks.features.attacker_features`). A gradient bandit (Sutton & Barto,
  *Reinforcement Learning: An Introduction*, 2nd ed., section 2.8) keeps a preference ``H_z`` per
  action and draws actions from ``π = softmax(H)``; a query is a pool input drawn uniformly
  (without replacement) from the drawn cluster. After every answered query ``t`` with reward
  ``r_t``::

      H(z_t) += α (r_t − r̄)(1 − π(z_t)),   H(z) −= α (r_t − r̄) π(z)  for z ≠ z_t,

  with ``r̄`` the average of the rewards before ``t`` (``r̄ = r_1`` at the first query). The
  rewards are the paper's, computed from the answer ``y_t`` (its revealed distribution; a
  one-hot vector of the label when the API answers labels only) and the attacker's surrogate
  ``ŷ_t`` (trained on everything answered *before* the query):

  * certainty: ``y_{t,k1} − y_{t,k2}``, the margin between the two largest answered scores;
  * diversity: ``Σ_k max(0, y_{t,k} − ȳ_k)``, with ``ȳ`` the mean of the last ``window``
    answers (up to and including ``t``);
  * loss: the cross-entropy ``−Σ_k y_{t,k} log ŷ_{t,k}`` of the surrogate against the answer.

  ``all`` (the default) combines the three as the paper does; each is first rescaled to
  ``[0, 1]`` by the smallest and largest value of that reward seen so far, and the combined
  reward is their mean (the paper's sum divided by three: the same policy, a step size on the
  same scale as each reward's). The surrogate is fitted through ``context.fit_surrogate``, so
  the loss reward needs the context's ``fit``.

  The paper updates its knockoff after every query; here the budget is spent in ``rounds``
  equal rounds (queries of a round go to the API together), the surrogate is refitted on the
  whole transcript after each round, and the bandit is updated query by query at the end of
  the round with step ``learning_rate / n`` for a round of ``n`` queries, so that how fast the
  policy moves does not depend on the budget. The surrogate of the first round is missing: its
  rewards use certainty and diversity only.

  The paper starts from ``H = 0``: uniform over its actions, which are classes of a curated
  dataset of similar sizes. k-means clusters are not of similar sizes, and a uniform start
  would over-sample the small ones; here ``H_z`` starts at ``log |cluster z|``, so the first
  round draws like the random strategy (every pool input equally likely) and the bandit moves
  away from it as rewards come in. The rescaled rewards of clusters differ by a tenth or less
  on average, hence the large default ``learning_rate`` (20 per round): with 10
  clusters and 10 rounds a smaller one barely leaves the starting policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, Transcript, join_transcripts
from multisteal.attacks.features import attacker_features, surrogate_probabilities
from multisteal.attacks.pool import POOL_TOO_SMALL
from multisteal.data.inputs import n_inputs, take_inputs
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import Classifier
from multisteal.query.outputs import Answer

__all__ = [
    "BAD_CLUSTERS",
    "BAD_LEARNING_RATE",
    "BAD_ROUNDS",
    "BAD_WINDOW",
    "NO_BUDGET",
    "REWARDS",
    "UNKNOWN_REWARD",
    "KnockoffAdaptive",
    "KnockoffRandom",
    "answer_distributions",
    "check_pool",
    "gradient_bandit_step",
    "knockoff_rewards",
]

REWARDS: tuple[str, ...] = ("all", "certainty", "diversity", "loss")
UNKNOWN_REWARD = "Unknown knockoff-adaptive reward {reward!r}. Rewards: {available}."
BAD_CLUSTERS = "The knockoff-adaptive attack needs n_clusters >= 1 (a whole number), got {value!r}."
BAD_ROUNDS = "The {name} attack needs rounds >= 1 (a whole number), got {value!r}."
BAD_LEARNING_RATE = "The knockoff-adaptive attack needs a finite learning_rate > 0, got {value!r}."
BAD_WINDOW = "The knockoff-adaptive attack needs window >= 1 (a whole number), got {value!r}."
NO_BUDGET = "The {name} attack has no budget left to spend: the API's ledger is used up."

_TINY = 1e-12
_SEEDS = 2**31 - 1


def _whole(value: object, least: int) -> bool:
    return (
        not isinstance(value, bool) and isinstance(value, (int, np.integer)) and int(value) >= least
    )


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(_SEEDS))


def check_pool(name: str, context: AttackContext) -> tuple[pd.DataFrame | NDArray[Any], int]:
    """The context's pool and budget, once it is checked that the pool holds the budget in
    distinct inputs (raised before any query)."""
    pool = context.require_pool(name)
    budget, size = context.budget, n_inputs(pool)
    if budget < 1:
        raise InvalidInputError(NO_BUDGET.format(name=name))
    if budget > size:
        raise InvalidInputError(POOL_TOO_SMALL.format(name=name, budget=budget, size=size))
    return pool, budget


def answer_distributions(answers: Answer, n_classes: int = 0) -> NDArray[np.float64]:
    """Each answer as a distribution ``(n, C)``: the revealed scores (``soft_targets``), or a
    one-hot vector of the label when the answers are labels only (``C``: ``n_classes``, the
    service's class count, when given)."""
    soft = answers.soft_targets()
    if soft is not None:
        return soft
    c = max(n_classes, answers.n_classes, int(answers.labels.max(initial=0)) + 1)
    return np.eye(c)[answers.labels]


def knockoff_rewards(
    answered: NDArray[np.float64],
    history: NDArray[np.float64],
    predicted: NDArray[np.float64] | None,
    *,
    window: int,
) -> dict[str, NDArray[np.float64]]:
    """The paper's raw rewards of the last ``n`` answers (not rescaled).

    Parameters
    ----------
    answered : ``(n, C)`` the answers being rewarded, as distributions.
    history : ``(m, C)`` every answer so far in query order, the last ``n`` of which are
        ``answered``.
    predicted : ``(n, C)`` the surrogate's probabilities on those queries (``None``: there is
        no surrogate yet, and no ``loss`` reward).
    window : the diversity window Δ (answers averaged, the rewarded one included).

    Returns ``{"certainty": (n,), "diversity": (n,), "loss": (n,)}`` (no ``loss`` without a
    surrogate).
    """
    n, m = answered.shape[0], history.shape[0]
    top = -np.sort(-answered, axis=1)
    certainty = top[:, 0] - (top[:, 1] if answered.shape[1] > 1 else 0.0)
    cumulative = np.vstack([np.zeros((1, history.shape[1])), np.cumsum(history, axis=0)])
    ends = np.arange(m - n, m) + 1  # answer t covers history[t - window + 1 .. t]
    starts = np.maximum(ends - window, 0)
    means = (cumulative[ends] - cumulative[starts]) / (ends - starts)[:, None]
    diversity = np.clip(answered - means, 0.0, None).sum(axis=1)
    rewards = {"certainty": certainty, "diversity": diversity}
    if predicted is not None:
        rewards["loss"] = -(answered * np.log(np.clip(predicted, _TINY, 1.0))).sum(axis=1)
    return rewards


@dataclass
class KnockoffRandom:
    """Knockoff Nets' random strategy (Orekondy et al., CVPR 2019): ``budget`` pool inputs
    drawn uniformly without replacement, sent in pool order (``source_index`` is sorted)."""

    name: str = field(default="knockoff-random", init=False)

    def run(self, context: AttackContext) -> Transcript:
        pool, budget = check_pool(self.name, context)
        rows = np.sort(context.rng.choice(n_inputs(pool), size=budget, replace=False))
        rows = rows.astype(np.int64)
        return context.query(take_inputs(pool, rows), source_index=rows)


@dataclass
class KnockoffAdaptive:
    """Knockoff Nets' adaptive strategy (Orekondy et al., CVPR 2019): a gradient bandit over
    clusters of the pool (see the module docstring).

    Parameters
    ----------
    n_clusters : the bandit's actions: k-means clusters of the pool (fewer when the pool has
        fewer distinct inputs).
    rounds : the budget is spent in this many (near-)equal rounds; the surrogate is refitted
        after each.
    learning_rate : the bandit's step size α per round.
    reward : ``all`` (default), ``certainty``, ``diversity`` or ``loss``.
    window : the diversity reward's window Δ (answers).

    Attributes (after :meth:`run`)
    ------------------------------
    clusters_ : ``(pool size,)`` the cluster (action) of each pool input.
    history_ : the action probabilities ``π`` each round drew from, one array per round.
    policy_ : ``π`` after the last update.
    actions_ : the action of each query, in query order.
    rewards_ : the combined (rescaled) reward of each query, in query order (NaN where there
        was no signal yet: the loss reward of the first round).
    """

    n_clusters: int = 10
    rounds: int = 10
    learning_rate: float = 20.0
    reward: str = "all"
    window: int = 50
    name: str = field(default="knockoff-adaptive", init=False)
    clusters_: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), init=False, repr=False
    )
    history_: list[NDArray[np.float64]] = field(default_factory=list, init=False, repr=False)
    policy_: NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0), init=False, repr=False
    )
    actions_: NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), init=False, repr=False
    )
    rewards_: NDArray[np.float64] = field(
        default_factory=lambda: np.zeros(0), init=False, repr=False
    )

    def __post_init__(self) -> None:
        if not _whole(self.n_clusters, 1):
            raise InvalidInputError(BAD_CLUSTERS.format(value=self.n_clusters))
        if not _whole(self.rounds, 1):
            raise InvalidInputError(BAD_ROUNDS.format(name=self.name, value=self.rounds))
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not math.isfinite(self.learning_rate)
            or self.learning_rate <= 0
        ):
            raise InvalidInputError(BAD_LEARNING_RATE.format(value=self.learning_rate))
        if self.reward not in REWARDS:
            raise InvalidInputError(
                UNKNOWN_REWARD.format(reward=self.reward, available=", ".join(REWARDS))
            )
        if not _whole(self.window, 1):
            raise InvalidInputError(BAD_WINDOW.format(value=self.window))

    def run(self, context: AttackContext) -> Transcript:
        """Spend the whole budget (distinct pool inputs, in query order in ``source_index``)."""
        pool, budget = check_pool(self.name, context)
        rng = context.rng
        clusters = self._cluster(attacker_features(pool, context.input_spec), rng)
        k = int(clusters.max()) + 1
        members = [rng.permutation(np.flatnonzero(clusters == z)) for z in range(k)]
        taken = np.zeros(k, dtype=np.int64)
        preferences = np.log(np.array([len(m) for m in members], dtype=np.float64))
        n_classes = context.api.n_classes
        uses_loss = self.reward in ("all", "loss")

        parts: list[Transcript] = []
        actions: list[NDArray[np.int64]] = []
        combined: list[NDArray[np.float64]] = []
        raw: dict[str, list[NDArray[np.float64]]] = {}
        baseline, seen = 0.0, 0
        surrogate: Classifier | None = None
        self.history_ = []
        sizes = [len(s) for s in np.array_split(np.arange(budget), min(self.rounds, budget))]
        for round_index, size in enumerate(sizes):
            left = np.array([len(m) for m in members]) - taken
            available = left > 0  # the actions of this round
            policy = _softmax(preferences, available)
            self.history_.append(policy)
            chosen = np.empty(size, dtype=np.int64)
            rows = np.empty(size, dtype=np.int64)
            for i in range(size):
                z = int(rng.choice(k, p=_softmax(preferences, left > 0)))
                chosen[i], rows[i] = z, members[z][taken[z]]
                taken[z] += 1
                left[z] -= 1
            part = context.query(take_inputs(pool, rows), source_index=rows)
            parts.append(part)
            actions.append(chosen)

            history = np.vstack([answer_distributions(p.answers, n_classes) for p in parts])
            answered = history[-size:]
            predicted = (
                None
                if surrogate is None
                else surrogate_probabilities(surrogate, part.queries, n_classes)
            )
            rewards = knockoff_rewards(answered, history, predicted, window=self.window)
            for key, values in rewards.items():
                raw.setdefault(key, []).append(values)
            reward = self._combine(rewards, raw)
            if reward is None:  # the loss reward before any surrogate: no signal, no update
                combined.append(np.full(size, np.nan))
            else:
                combined.append(reward)
            if reward is not None:
                preferences, baseline, seen = gradient_bandit_step(
                    preferences,
                    available,
                    chosen,
                    reward,
                    step=self.learning_rate / size,
                    baseline=baseline,
                    count=seen,
                )

            if uses_loss and round_index < len(sizes) - 1:
                surrogate = context.fit_surrogate(self.name, join_transcripts(parts), _seed(rng))

        left = np.array([len(m) for m in members]) - taken
        self.clusters_ = clusters
        self.policy_ = _softmax(preferences, left > 0 if left.any() else left >= 0)
        self.actions_ = np.concatenate(actions)
        self.rewards_ = np.concatenate(combined)
        return join_transcripts(parts)

    def _cluster(
        self, features: NDArray[np.float64], rng: np.random.Generator
    ) -> NDArray[np.int64]:
        from sklearn.cluster import KMeans

        distinct = len(np.unique(features, axis=0))
        k = min(self.n_clusters, distinct)
        if k == 1:
            return np.zeros(len(features), dtype=np.int64)
        model = KMeans(n_clusters=k, n_init=3, random_state=_seed(rng))
        labels = np.asarray(model.fit_predict(features), dtype=np.int64)
        # number the clusters 0..k-1 in the order of their first pool input
        _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
        rank = np.empty(len(first), dtype=np.int64)
        rank[np.argsort(first)] = np.arange(len(first))
        out: NDArray[np.int64] = rank[inverse.reshape(-1)]
        return out

    def _combine(
        self, rewards: dict[str, NDArray[np.float64]], raw: dict[str, list[NDArray[np.float64]]]
    ) -> NDArray[np.float64] | None:
        """Each reward rescaled to [0, 1] by its range so far; ``all``: their mean. ``None``
        when there is no signal yet (the loss reward before any surrogate): the bandit then
        neither updates nor counts anything into its baseline."""
        names: list[str] = [r for r in ("certainty", "diversity", "loss") if r in rewards]
        if self.reward != "all":
            names = [self.reward] if self.reward in rewards else []
        if not names:  # the loss reward before any surrogate: no signal yet
            return None
        scaled = []
        for key in names:
            seen = np.concatenate(raw[key])
            low, high = float(seen.min()), float(seen.max())
            span = high - low
            values = rewards[key]
            scaled.append((values - low) / span if span > 0 else np.zeros_like(values))
        out: NDArray[np.float64] = np.mean(scaled, axis=0)
        return out


def gradient_bandit_step(
    preferences: NDArray[np.float64],
    allowed: NDArray[np.bool_],
    actions: NDArray[np.int64],
    rewards: NDArray[np.float64],
    *,
    step: float,
    baseline: float,
    count: int,
) -> tuple[NDArray[np.float64], float, int]:
    """The gradient bandit's updates for ``actions`` and their ``rewards``, one after another
    (Sutton & Barto, 2nd ed., eq. 2.12): ``H += step (r − r̄)(1[z = a] − π)`` with ``π`` the
    softmax of ``H`` over the ``allowed`` actions and ``r̄`` the average of the ``count``
    rewards before (``baseline``; the first reward is its own baseline).

    Returns the new preferences, baseline and count.
    """
    H = preferences.astype(np.float64, copy=True)
    for action, reward in zip(actions.tolist(), rewards.tolist(), strict=True):
        if count == 0:
            baseline = float(reward)
        onehot = np.zeros(len(H))
        onehot[action] = 1.0
        H += step * (float(reward) - baseline) * (onehot - _softmax(H, allowed))
        count += 1
        baseline += (float(reward) - baseline) / count
    return H, baseline, count


def _softmax(preferences: NDArray[np.float64], allowed: NDArray[np.bool_]) -> NDArray[np.float64]:
    """``softmax(H)`` over the ``allowed`` actions (0 for the others)."""
    masked = np.where(allowed, preferences, -np.inf)
    exp = np.exp(masked - masked[allowed].max())
    out: NDArray[np.float64] = exp / exp.sum()
    return out
