from __future__ import annotations

import numpy as np
import pytest

from multisteal.errors import BudgetExceededError, InvalidInputError
from multisteal.models import train_target
from multisteal.query import (
    LocalQueryAPI,
    Rounded,
    TopK,
    batch_digest,
    make_output_policy,
)
from multisteal.query.api import QUERY_BAD_WIDTH, QUERY_NOT_FINITE
from multisteal.query.ledger import BAD_BUDGET, BUDGET_EXCEEDED
from multisteal.query.outputs import UNKNOWN_OUTPUT


class CountingModel:
    """Wraps a model and counts every row it is asked to score."""

    def __init__(self, model) -> None:
        self.model = model
        self.rows = 0
        self.classes_ = model.classes_
        self.n_features_in_ = model.n_features_in_

    def fit(self, X, y):  # pragma: no cover - never called
        return self

    def predict_proba(self, X):
        self.rows += len(X)
        return self.model.predict_proba(X)


@pytest.fixture
def model(blobs):
    X, y = blobs
    return train_target("logistic", X, y)


def test_ledger_never_answers_beyond_budget(model, rng) -> None:
    counting = CountingModel(model)
    api = LocalQueryAPI(counting, output="label", budget=100)
    answered = 0
    refused = 0
    for _ in range(60):
        n = int(rng.integers(1, 20))
        try:
            answer = api.query(rng.normal(size=(n, 5)))
            answered += len(answer)
        except BudgetExceededError:
            refused += 1
    assert refused > 0
    assert counting.rows == answered == api.ledger.used <= 100
    assert api.log.rows_answered == answered
    log = api.log.to_frame()
    assert set(log["status"]) == {"answered", "refused-budget"}
    assert log.loc[log["status"] == "answered", "rows"].sum() == answered


def test_budget_exceeded_message_and_nothing_answered(model) -> None:
    counting = CountingModel(model)
    api = LocalQueryAPI(counting, budget=10)
    api.query(np.zeros((7, 5)))
    with pytest.raises(BudgetExceededError) as info:
        api.query(np.zeros((4, 5)))
    assert str(info.value) == BUDGET_EXCEEDED.format(rows=4, remaining=3, total=10, used=7)
    assert counting.rows == 7
    api.query(np.zeros((3, 5)))  # exactly the remaining budget is still answered
    assert api.ledger.remaining == 0


@pytest.mark.parametrize("budget", [0, -5, 2.5, True])
def test_bad_budget(model, budget) -> None:
    with pytest.raises(InvalidInputError) as info:
        LocalQueryAPI(model, budget=budget)
    assert str(info.value) == BAD_BUDGET.format(budget=budget)


def test_query_validation(model) -> None:
    api = LocalQueryAPI(model, budget=None)
    with pytest.raises(InvalidInputError) as info:
        api.query(np.zeros((2, 3)))
    assert str(info.value) == QUERY_BAD_WIDTH.format(got=3, d=5)
    bad = np.zeros((2, 5))
    bad[1, 1] = np.nan
    with pytest.raises(InvalidInputError) as info:
        api.query(bad)
    assert str(info.value) == QUERY_NOT_FINITE
    assert api.ledger.used == 0


def test_log_records_batch_digests(model, rng) -> None:
    api = LocalQueryAPI(model, budget=None)
    X = rng.normal(size=(5, 5))
    api.query(X)
    record = api.log.records[0]
    assert record.sha256 == batch_digest(X)
    assert record.rows == 5
    assert record.status == "answered"
    assert batch_digest(X) != batch_digest(X + 1e-9)


PROBS = np.array([[0.1, 0.6, 0.3], [0.5, 0.5, 0.0], [0.333, 0.333, 0.334]])


def test_output_modes_hand_computed() -> None:
    full = make_output_policy("probabilities")(PROBS)
    np.testing.assert_array_equal(full.labels, [1, 0, 2])
    np.testing.assert_array_equal(full.scores, PROBS)

    top1 = TopK(1)(PROBS)
    np.testing.assert_array_equal(top1.scores, [[0, 0.6, 0], [0.5, 0, 0], [0, 0, 0.334]])
    top2 = TopK(2)(PROBS)
    np.testing.assert_array_equal(top2.revealed, [[0, 1, 1], [1, 1, 0], [1, 0, 1]])

    label = make_output_policy("label")(PROBS)
    assert label.scores is None
    assert label.soft_targets() is None
    np.testing.assert_array_equal(label.labels, [1, 0, 2])

    rounded = Rounded(1)(PROBS)
    np.testing.assert_array_equal(
        rounded.scores, [[0.1, 0.6, 0.3], [0.5, 0.5, 0.0], [0.3, 0.3, 0.3]]
    )
    np.testing.assert_array_equal(rounded.labels, [1, 0, 2])  # the decision is unrounded


def test_soft_targets_fill_hidden_mass() -> None:
    soft = TopK(1)(PROBS).soft_targets()
    expected = np.array([[0.2, 0.6, 0.2], [0.5, 0.25, 0.25], [0.333, 0.333, 0.334]])
    np.testing.assert_allclose(soft, expected)
    rounded = Rounded(1)(PROBS).soft_targets()
    np.testing.assert_allclose(rounded[2], [1 / 3, 1 / 3, 1 / 3])


def test_unknown_output_mode() -> None:
    with pytest.raises(InvalidInputError) as info:
        make_output_policy("logits")
    assert str(info.value) == UNKNOWN_OUTPUT.format(
        name="logits", available="probabilities, top-k, label, rounded, leaf"
    )


class _Flip:
    """A defence that swaps the two classes' scores and the decision with them."""

    name = "flip"

    def __call__(self, inputs, answer):
        from dataclasses import replace

        return replace(answer, scores=answer.scores[:, ::-1].copy(), labels=1 - answer.labels)

    def mode_after(self, mode):
        return mode


def test_defences_apply_before_the_policy(model) -> None:
    plain = LocalQueryAPI(model, budget=None).query(np.ones((3, 5)))
    defended = LocalQueryAPI(model, budget=None, defences=[_Flip()]).query(np.ones((3, 5)))
    np.testing.assert_array_equal(defended.labels, 1 - plain.labels)
    np.testing.assert_array_equal(defended.scores, plain.scores[:, ::-1])
    # the output policy restricts the defended answer: top-1 of the flipped scores
    top = LocalQueryAPI(model, output="top-k", budget=None, defences=[_Flip()])
    answer = top.query(np.ones((3, 5)))
    np.testing.assert_array_equal(answer.revealed.argmax(axis=1), 1 - plain.labels)


class _Broken:
    """A defence that fails (e.g. a bad chain found at answer time)."""

    name = "broken"

    def __call__(self, inputs, answer):
        raise ValueError("broken defence")

    def mode_after(self, mode):
        return mode


def test_a_failing_defence_charges_and_logs_nothing(model) -> None:
    api = LocalQueryAPI(model, budget=10, defences=[_Broken()])
    with pytest.raises(ValueError, match="broken defence"):
        api.query(np.ones((3, 5)))
    assert api.ledger.used == 0
    assert api.log.rows_answered == 0
