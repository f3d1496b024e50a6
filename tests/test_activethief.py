"""ActiveThief: its selection strategies against slow, obviously correct loops, and the attack
through the query API."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from attack_models import fit_flat, fit_text, record_problem, text_problem
from multisteal.attacks.activethief import (
    BAD_INITIAL_FRACTION,
    UNKNOWN_STRATEGY,
    ActiveThiefAttack,
    k_center_greedy,
    select_queries,
)
from multisteal.attacks.base import NO_FIT, AttackContext, Transcript
from multisteal.attacks.knockoff import BAD_ROUNDS
from multisteal.attacks.pool import POOL_TOO_SMALL
from multisteal.data.inputs import ImageSpec, TextSpec, take_inputs
from multisteal.errors import InvalidInputError
from multisteal.models import train_target
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI

STRATEGIES = ("uncertainty", "margin", "k-center")


class Recorder:
    """A surrogate trainer that always returns one fixed surrogate and records what it got."""

    def __init__(self, surrogate: Any) -> None:
        self.surrogate = surrogate
        self.seen: list[np.ndarray] = []

    def __call__(self, transcript: Transcript, seed: int) -> Any:
        assert transcript.source_index is not None
        self.seen.append(transcript.source_index.copy())
        return self.surrogate


@pytest.fixture
def problem(rng):
    """A 3-class target on 4-D vectors, a pool of 400 rows and a fixed 3-class surrogate."""
    X = rng.normal(size=(1000, 4))
    y = np.argmax(X[:, :3] + 0.3 * rng.normal(size=(1000, 3)), axis=1)
    target = train_target("logistic", X[:500], y[:500])
    surrogate = LogisticRegression(max_iter=1000).fit(X[500:560, :], y[500:560])
    return target, X[600:], surrogate


def _context(api, pool, fit, seed: int = 0) -> AttackContext:
    return AttackContext(
        api=api, rng=np.random.default_rng(seed), pool=pool, fit=fit, batch_size=32
    )


# -- the strategies against slow loops -------------------------------------------------------


def _slow_entropy(p: np.ndarray) -> float:
    return -sum(q * math.log(q) for q in p if q > 0)


def _slow_margin(p: np.ndarray) -> float:
    top = sorted(p, reverse=True)
    return top[0] - top[1]


def _slow_k_center(points: np.ndarray, centres: list[int], k: int) -> list[int]:
    centres, picks = list(centres), []
    for _ in range(k):
        best, best_distance = -1, -1.0
        for i in range(len(points)):
            if i in centres:
                continue
            nearest = min((math.dist(points[i], points[c]) for c in centres), default=math.inf)
            if nearest > best_distance:
                best, best_distance = i, nearest
        picks.append(best)
        centres.append(best)
    return picks


@pytest.fixture
def scores(rng):
    probabilities = rng.dirichlet(np.ones(4) * 0.7, size=120)
    probabilities[7] = probabilities[3]  # a tie: the lower row goes first
    queried = np.zeros(120, dtype=bool)
    queried[rng.choice(120, size=15, replace=False)] = True
    return probabilities, queried


def test_uncertainty_picks_the_highest_entropy(scores) -> None:
    probabilities, queried = scores
    picks = select_queries("uncertainty", probabilities, queried, 20)
    free = [i for i in range(120) if not queried[i]]
    expected = sorted(free, key=lambda i: (-_slow_entropy(probabilities[i]), i))[:20]
    np.testing.assert_array_equal(picks, expected)


def test_margin_picks_the_smallest_margins(scores) -> None:
    probabilities, queried = scores
    picks = select_queries("margin", probabilities, queried, 20)
    free = [i for i in range(120) if not queried[i]]
    expected = sorted(free, key=lambda i: (_slow_margin(probabilities[i]), i))[:20]
    np.testing.assert_array_equal(picks, expected)
    # not the same rows as uncertainty on 4 classes
    assert set(picks) != set(select_queries("uncertainty", probabilities, queried, 20))


def test_k_center_picks_farthest_first(scores) -> None:
    probabilities, queried = scores
    picks = select_queries("k-center", probabilities, queried, 12)
    expected = _slow_k_center(probabilities, list(np.flatnonzero(queried)), 12)
    np.testing.assert_array_equal(picks, expected)
    # from no centre at all: the lowest free row first, then farthest-first
    none = np.zeros(120, dtype=bool)
    np.testing.assert_array_equal(
        k_center_greedy(probabilities, none, 5), _slow_k_center(probabilities, [], 5)
    )


def test_strategies_never_pick_queried_rows(scores) -> None:
    probabilities, queried = scores
    for strategy in STRATEGIES:
        picks = select_queries(strategy, probabilities, queried, int((~queried).sum()))
        np.testing.assert_array_equal(np.sort(picks), np.flatnonzero(~queried))


def test_unknown_strategy_names_the_choices(scores) -> None:
    probabilities, queried = scores
    message = UNKNOWN_STRATEGY.format(strategy="dfal", available="uncertainty, margin, k-center")
    with pytest.raises(InvalidInputError) as info:
        select_queries("dfal", probabilities, queried, 3)
    assert str(info.value) == message
    with pytest.raises(InvalidInputError) as info:
        ActiveThiefAttack(strategy="dfal")
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rounds": 0}, BAD_ROUNDS.format(name="activethief", value=0)),
        ({"initial_fraction": 0.0}, BAD_INITIAL_FRACTION.format(value=0.0)),
        ({"initial_fraction": 1.5}, BAD_INITIAL_FRACTION.format(value=1.5)),
    ],
)
def test_bad_parameters_are_named(params, message) -> None:
    with pytest.raises(InvalidInputError) as info:
        ActiveThiefAttack(**params)
    assert str(info.value) == message


# -- the attack through the API ---------------------------------------------------------------


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_each_round_queries_what_the_strategy_picks(problem, strategy) -> None:
    target, pool, surrogate = problem
    api = LocalQueryAPI(target, budget=100)
    trainer = Recorder(surrogate)
    attack = ActiveThiefAttack(strategy, rounds=4, initial_fraction=0.2)
    transcript = attack.run(_context(api, pool, trainer))

    assert api.ledger.used == len(transcript) == 100
    source = transcript.source_index
    assert source is not None
    assert len(np.unique(source)) == 100
    np.testing.assert_array_equal(transcript.queries, pool[source])
    np.testing.assert_allclose(transcript.answers.scores, target.predict_proba(pool[source]))
    # a seed set of 20 (in pool order), then 4 rounds of 20 in selection order
    assert [len(s) for s in attack.selected_] == [20, 20, 20, 20, 20]
    np.testing.assert_array_equal(source, np.concatenate(attack.selected_))
    assert np.all(np.diff(attack.selected_[0]) > 0)
    # the surrogate was refitted on everything answered before each round
    assert [len(s) for s in trainer.seen] == [20, 40, 60, 80]
    for seen, upto in zip(trainer.seen, range(1, 5), strict=True):
        np.testing.assert_array_equal(seen, np.concatenate(attack.selected_[:upto]))
    # each round is the strategy's choice among the rows not yet queried (a slow loop)
    probabilities = surrogate.predict_proba(pool)
    queried = set(attack.selected_[0].tolist())
    for picks in attack.selected_[1:]:
        free = [i for i in range(len(pool)) if i not in queried]
        if strategy == "uncertainty":
            expected = sorted(free, key=lambda i: (-_slow_entropy(probabilities[i]), i))[:20]
        elif strategy == "margin":
            expected = sorted(free, key=lambda i: (_slow_margin(probabilities[i]), i))[:20]
        else:
            expected = _slow_k_center(probabilities, sorted(queried), 20)
        np.testing.assert_array_equal(picks, expected)
        queried.update(picks.tolist())


def test_the_last_round_takes_what_remains(problem) -> None:
    target, pool, surrogate = problem
    api = LocalQueryAPI(target, budget=37)
    attack = ActiveThiefAttack("margin", rounds=3, initial_fraction=0.1)
    attack.run(_context(api, pool, Recorder(surrogate)))
    assert [len(s) for s in attack.selected_] == [4, 11, 11, 11]
    assert api.ledger.used == 37
    # more rounds than rows left: one row a round
    api = LocalQueryAPI(target, budget=5)
    attack = ActiveThiefAttack("margin", rounds=10, initial_fraction=0.5)
    attack.run(_context(api, pool, Recorder(surrogate)))
    assert [len(s) for s in attack.selected_] == [2, 1, 1, 1]
    assert api.ledger.used == 5


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_deterministic_under_its_seed(problem, strategy) -> None:
    target, pool, _ = problem

    def run(seed: int) -> np.ndarray:
        api = LocalQueryAPI(target, budget=60, output="label")
        transcript = ActiveThiefAttack(strategy, rounds=3).run(_context(api, pool, fit_flat, seed))
        assert transcript.source_index is not None
        return transcript.source_index

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_active_learning_finds_the_boundary(rng) -> None:
    """Uncertainty sampling queries rows near the target's boundary more than random would."""
    X = rng.normal(size=(2000, 2))
    y = (X[:, 0] > 0).astype(int)
    target = train_target("logistic", X, y, C=100.0)
    api = LocalQueryAPI(target, budget=100, output="label")
    transcript = ActiveThiefAttack("uncertainty", rounds=5).run(_context(api, X, fit_flat))
    assert transcript.source_index is not None
    picked = transcript.source_index[10:]  # after the random seed set
    assert np.median(np.abs(X[picked, 0])) < 0.25 * np.median(np.abs(X[:, 0]))


def test_a_pool_smaller_than_the_budget_fails_before_any_query(problem) -> None:
    target, pool, surrogate = problem
    api = LocalQueryAPI(target, budget=401)
    with pytest.raises(InvalidInputError) as info:
        ActiveThiefAttack().run(_context(api, pool, Recorder(surrogate)))
    assert str(info.value) == POOL_TOO_SMALL.format(name="activethief", budget=401, size=400)
    assert api.ledger.used == 0


def test_it_needs_the_surrogate_trainer(problem) -> None:
    target, pool, _ = problem
    api = LocalQueryAPI(target, budget=50)
    with pytest.raises(InvalidInputError) as info:
        ActiveThiefAttack().run(_context(api, pool, None))
    assert str(info.value) == NO_FIT.format(name="activethief")


# -- other modalities -------------------------------------------------------------------------


class Brightness:
    classes_ = np.array([0, 1])

    def fit(self, X: Any, y: Any) -> Brightness:
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        mean = np.asarray(X, float).reshape(len(X), -1).mean(axis=1)
        p = 1.0 / (1.0 + np.exp(-10.0 * (mean - 0.5)))
        return np.column_stack([1.0 - p, p])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_image_pools(strategy) -> None:
    rng = np.random.default_rng(0)
    images = rng.uniform(0.0, 1.0, size=(80, 5, 5, 3)) * rng.uniform(0.2, 1.0, size=(80, 1, 1, 1))
    api = LocalQueryAPI(Brightness(), budget=30, input_spec=ImageSpec(5, 5, 3, 0.0, 1.0))
    transcript = ActiveThiefAttack(strategy, rounds=3).run(_context(api, images, fit_flat))
    assert api.ledger.used == 30
    assert transcript.source_index is not None
    assert len(np.unique(transcript.source_index)) == 30
    np.testing.assert_array_equal(transcript.queries, images[transcript.source_index])


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_text_pools(strategy) -> None:
    texts, target = text_problem()
    api = LocalQueryAPI(target, budget=25, output="label", input_spec=TextSpec())
    transcript = ActiveThiefAttack(strategy, rounds=3).run(_context(api, texts, fit_text))
    assert api.ledger.used == 25
    assert transcript.source_index is not None
    assert len(np.unique(transcript.source_index)) == 25
    np.testing.assert_array_equal(transcript.queries, texts[transcript.source_index])


def test_record_pools() -> None:
    pool, spec, target = record_problem()

    def fit(transcript: Transcript, seed: int) -> Any:
        model = make_pipeline("logistic", spec, n_classes=2, random_state=seed)
        return model.fit(transcript.queries, transcript.answers.labels)

    api = LocalQueryAPI(target, budget=60, input_spec=spec)
    transcript = ActiveThiefAttack("k-center", rounds=3).run(_context(api, pool, fit))
    assert api.ledger.used == 60
    assert transcript.source_index is not None
    pd.testing.assert_frame_equal(transcript.queries, take_inputs(pool, transcript.source_index))
