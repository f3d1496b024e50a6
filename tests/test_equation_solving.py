"""Equation solving (Tramèr et al. 2016) recovers logistic and softmax targets exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from multisteal.attacks import AttackContext
from multisteal.attacks import equation_solving as es
from multisteal.attacks.equation_solving import EquationSolvingAttack, queries_needed
from multisteal.data import input_spec_of, load_dataset, split_dataset
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI


def _target(d: int, c: int, seed: int) -> LogisticRegression:
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((2000, d))
    W = rng.standard_normal((d, c))
    y = np.argmax(X @ W + rng.gumbel(size=(2000, c)), axis=1)
    return LogisticRegression(max_iter=5000).fit(X, y)


def test_a_30_feature_logistic_target_from_31_queries() -> None:
    target = _target(30, 2, seed=0)
    api = LocalQueryAPI(target, output="probabilities", budget=31)
    attack = EquationSolvingAttack()
    transcript = attack.run(AttackContext(api, np.random.default_rng(1)))
    assert api.ledger.used == 31 == len(transcript)
    stolen = attack.solve(api, transcript)
    X = np.random.default_rng(2).standard_normal((100_000, 30)) * 3
    assert np.mean(stolen.predict(X) == target.predict(X)) == 1.0
    np.testing.assert_allclose(stolen.predict_proba(X), target.predict_proba(X), atol=1e-8)


def test_a_softmax_target_from_c_times_d_plus_1_queries() -> None:
    d, c = 12, 4
    target = _target(d, c, seed=3)
    needed = queries_needed(d, c)
    assert needed == c * (d + 1)
    api = LocalQueryAPI(target, output="probabilities", budget=needed)
    attack = EquationSolvingAttack()
    stolen = attack.solve(api, attack.run(AttackContext(api, np.random.default_rng(4))))
    assert api.ledger.used == needed
    X = np.random.default_rng(5).standard_normal((100_000, d)) * 3
    assert np.mean(stolen.predict(X) == target.predict(X)) == 1.0
    np.testing.assert_allclose(stolen.predict_proba(X), target.predict_proba(X), atol=1e-8)


def test_a_logistic_target_on_german_credit_records_through_the_input_spec() -> None:
    ds = load_dataset("german_credit")
    spec = input_spec_of(ds)
    parts = split_dataset(ds.y, sizes=(0.6, 0.2, 0.2), seed=0)
    records = ds.features
    target = make_pipeline("logistic", spec).fit(
        records.iloc[parts.target_train].reset_index(drop=True), ds.y[parts.target_train]
    )
    attack = EquationSolvingAttack()
    d = es.SpecEncoder(spec).width(0)  # the attacker's one-hot over the published categories
    api = LocalQueryAPI(target, output="probabilities", budget=d + 1, input_spec=spec)
    stolen = attack.solve(api, attack.run(AttackContext(api, np.random.default_rng(6))))
    assert api.ledger.used == d + 1
    evaluation = records.iloc[parts.evaluation].reset_index(drop=True)
    sampled = spec.sample(10_000, np.random.default_rng(7))
    for X in (evaluation, sampled):
        assert np.mean(stolen.predict(X) == target.predict(X)) == 1.0
        # the owner's encoder works in float32: its answers carry rounding of about 1e-6
        np.testing.assert_allclose(stolen.predict_proba(X), target.predict_proba(X), atol=1e-5)


def test_it_refuses_before_any_query() -> None:
    target = _target(5, 2, seed=8)
    attack = EquationSolvingAttack()
    labels = LocalQueryAPI(target, output="label", budget=100)
    with pytest.raises(InvalidInputError) as info:
        attack.run(AttackContext(labels, np.random.default_rng(0)))
    assert str(info.value) == es.NEEDS_PROBABILITIES.format(mode="label")
    small = LocalQueryAPI(target, output="probabilities", budget=5)
    with pytest.raises(InvalidInputError) as info:
        attack.run(AttackContext(small, np.random.default_rng(0)))
    assert str(info.value) == es.TOO_FEW_QUERIES.format(
        needed=6, c=2, d=5, formula="d + 1", budget=5
    )
    from multisteal.data.inputs import ImageSpec

    images = LocalQueryAPI(target, budget=100, input_spec=ImageSpec(4, 4))
    with pytest.raises(InvalidInputError) as info:
        attack.run(AttackContext(images, np.random.default_rng(0)))
    assert str(info.value) == es.NOT_LINEAR_DOMAIN.format(modality="image")
    assert labels.ledger.used == small.ledger.used == images.ledger.used == 0


def test_a_non_logistic_target_is_not_recovered() -> None:
    # the check that the test above can fail: a tree's answers are not log-linear
    from sklearn.tree import DecisionTreeClassifier

    rng = np.random.default_rng(9)
    X = rng.standard_normal((2000, 6))
    y = (np.abs(X[:, 0]) > 0.8).astype(int)
    tree = DecisionTreeClassifier(max_depth=3, random_state=0).fit(X, y)
    api = LocalQueryAPI(tree, output="probabilities", budget=7)
    attack = EquationSolvingAttack()
    try:
        stolen = attack.solve(api, attack.run(AttackContext(api, rng)))
    except InvalidInputError:  # a leaf answering probability 0: no log-odds
        return
    Z = rng.standard_normal((10_000, 6))
    assert np.mean(stolen.predict(Z) == tree.predict(Z)) < 0.95
