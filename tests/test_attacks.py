from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.attacks import (
    AttackContext,
    MarginalsAttack,
    PoolAttack,
    SyntheticAttack,
    make_attack,
    sample_marginals,
)
from multisteal.attacks.pool import POOL_TOO_SMALL
from multisteal.data.inputs import TabularSpec
from multisteal.errors import InvalidInputError
from multisteal.models import train_target
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI


@pytest.fixture
def target(blobs):
    X, y = blobs
    return train_target("logistic", X, y)


def test_pool_attack_spends_exactly_the_budget(target, blobs, rng) -> None:
    X, _ = blobs
    api = LocalQueryAPI(target, output="probabilities", budget=150)
    transcript = PoolAttack().run(AttackContext(api, rng, pool=X, batch_size=32))
    assert len(transcript) == 150 == api.ledger.used
    # Distinct pool rows, and the answers are the target's on those rows.
    assert len(np.unique(transcript.queries, axis=0)) == 150
    np.testing.assert_allclose(transcript.answers.scores, target.predict_proba(transcript.queries))
    assert len(api.log) == 5  # ceil(150 / 32) batches


def test_pool_attack_cannot_exceed_its_pool(target, blobs, rng) -> None:
    X, _ = blobs
    api = LocalQueryAPI(target, budget=21)
    with pytest.raises(InvalidInputError) as info:
        PoolAttack().run(AttackContext(api, rng, pool=X[:20]))
    assert str(info.value) == POOL_TOO_SMALL.format(name="pool", budget=21, size=20)
    assert api.ledger.used == 0


def test_synthetic_rows_follow_marginals_and_keep_one_hot_blocks(rng) -> None:
    # Pool: one numeric column and a 3-way one-hot block; the two are perfectly dependent.
    category = rng.integers(0, 3, size=500)
    pool = np.column_stack([category * 10.0, np.eye(3)[category]])
    groups = [np.array([0]), np.array([1, 2, 3])]
    rows = sample_marginals(pool, 3000, rng=rng, feature_groups=groups)
    assert np.all(rows[:, 1:].sum(axis=1) == 1)  # valid one-hot
    assert set(np.unique(rows[:, 0])) <= {0.0, 10.0, 20.0}
    # Marginals match the pool's ...
    np.testing.assert_allclose(rows[:, 1:].mean(axis=0), pool[:, 1:].mean(axis=0), atol=0.04)
    # ... but the dependence is destroyed: most rows are not pool rows.
    consistent = rows[:, 0] == 10.0 * rows[:, 1:].argmax(axis=1)
    assert 0.25 < consistent.mean() < 0.45


def test_marginals_attack_on_records_keeps_each_column_marginal(rng) -> None:
    pool = pd.DataFrame({"a": ["x"] * 50 + ["y"] * 50, "b": np.r_[np.zeros(50), np.ones(50)]})
    target = make_pipeline(
        "logistic", TabularSpec.from_frame(pool, categorical=["a"], numerical=["b"])
    )
    target.fit(pool, (pool["b"] > 0.5).astype(int))
    spec = TabularSpec.from_frame(pool, categorical=["a"], numerical=["b"])
    api = LocalQueryAPI(target, budget=400, input_spec=spec)
    transcript = MarginalsAttack().run(AttackContext(api, rng, pool=pool))
    queries = transcript.queries
    assert list(queries.columns) == ["a", "b"]
    assert 0.4 < (queries["a"] == "x").mean() < 0.6
    # the columns are drawn independently: "x" rows are not all b == 0 any more
    assert 0.3 < queries.loc[queries["a"] == "x", "b"].mean() < 0.7
    assert api.ledger.used == 400


def test_synthetic_attack_groups_must_cover_columns(rng) -> None:
    with pytest.raises(InvalidInputError, match="cover each of the 3 columns exactly once"):
        sample_marginals(np.zeros((4, 3)), 2, rng=rng, feature_groups=[np.array([0, 1])])


def test_synthetic_attack_runs_through_the_api(target, blobs, rng) -> None:
    X, _ = blobs
    api = LocalQueryAPI(target, output="label", budget=64)
    transcript = SyntheticAttack().run(AttackContext(api, rng, pool=X))
    assert len(transcript) == 64 == api.ledger.used
    assert transcript.answers.scores is None


def test_holdout_split(target, blobs, rng) -> None:
    X, _ = blobs
    api = LocalQueryAPI(target, budget=100)
    transcript = make_attack("pool").run(AttackContext(api, rng, pool=X))
    train, hold = transcript.holdout_split(0.2, rng=rng)
    assert (len(train), len(hold)) == (80, 20)
    both = np.concatenate([train.queries, hold.queries])
    assert len(np.unique(both, axis=0)) == 100
    with pytest.raises(InvalidInputError, match="holdout_fraction must be in"):
        transcript.holdout_split(1.0, rng=rng)


def test_unknown_attack() -> None:
    with pytest.raises(InvalidInputError) as info:
        make_attack("jacobain")
    assert str(info.value).startswith("Unknown attack 'jacobain'. Available attacks: pool, ")
