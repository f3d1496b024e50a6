"""The ε-filter's criteria and distinct members (rashomon/base.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.errors import InvalidInputError
from multisteal.query.outputs import make_output_policy
from multisteal.rashomon import (
    Candidates,
    DropoutExplorer,
    ExplorationContext,
    candidate_losses,
    distinct_candidates,
    rashomon_set,
)
from multisteal.rashomon.base import EMPTY_HOLDOUT, NO_SELECTION


def _candidates(holdout: np.ndarray, selection: np.ndarray | None = None) -> Candidates:
    outputs = {"holdout": holdout, "evaluation": holdout}
    if selection is not None:
        outputs["selection"] = selection
    params = pd.DataFrame({"member": range(holdout.shape[0])})
    return Candidates("test", params, outputs)


# Two candidates, three held-out rows, two classes.
P_HOLD = np.array(
    [
        [[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]],
        [[0.6, 0.4], [0.7, 0.3], [0.5, 0.5]],
    ]
)
REVEALED = np.array([[0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])


def test_transcript_loss_is_the_cross_entropy_against_revealed_probabilities() -> None:
    answers = make_output_policy("probabilities")(REVEALED)
    losses = candidate_losses(_candidates(P_HOLD), holdout=answers, target_probabilities=None)
    # By hand: −mean_n Σ_c q[n, c] · log p[m, n, c].
    m0 = (
        -(
            0.8 * np.log(0.9)
            + 0.2 * np.log(0.1)
            + 0.3 * np.log(0.4)
            + 0.7 * np.log(0.6)
            + 0.1 * np.log(0.2)
            + 0.9 * np.log(0.8)
        )
        / 3
    )
    m1 = (
        -(
            0.8 * np.log(0.6)
            + 0.2 * np.log(0.4)
            + 0.3 * np.log(0.7)
            + 0.7 * np.log(0.3)
            + 0.1 * np.log(0.5)
            + 0.9 * np.log(0.5)
        )
        / 3
    )
    np.testing.assert_allclose(losses["transcript-loss"], [m0, m1], rtol=1e-12)
    # The 0-1 transcript loss on the same rows: labels 0, 1, 1; member 1 decides 0, 0, 0
    # (0.5/0.5 ties go to class 0).
    np.testing.assert_allclose(losses["transcript"], [0.0, 2 / 3])
    assert "test-loss" not in losses  # no selection rows were given


def test_transcript_loss_falls_back_to_0_1_for_label_only_answers() -> None:
    answers = make_output_policy("label")(REVEALED)
    losses = candidate_losses(_candidates(P_HOLD), holdout=answers, target_probabilities=None)
    np.testing.assert_array_equal(losses["transcript-loss"], losses["transcript"])


def test_transcript_loss_uses_what_top_k_revealed() -> None:
    answers = make_output_policy("top-k", k=1)(REVEALED)
    losses = candidate_losses(_candidates(P_HOLD), holdout=answers, target_probabilities=None)
    q = answers.soft_targets()
    assert q is not None  # top-1 of two classes reveals the whole distribution
    np.testing.assert_allclose(q, REVEALED)
    expected = -(q[None] * np.log(P_HOLD)).sum(axis=2).mean(axis=1)
    np.testing.assert_allclose(losses["transcript-loss"], expected, rtol=1e-12)


def test_test_criteria_use_the_selection_rows_only() -> None:
    selection = np.array([[[0.2, 0.8], [0.9, 0.1]], [[0.7, 0.3], [0.9, 0.1]]])
    target = np.array([[0.3, 0.7], [0.6, 0.4]])
    # The evaluation outputs are deliberately different: they must not enter the loss.
    candidates = _candidates(P_HOLD, selection)
    losses = candidate_losses(candidates, holdout=None, target_probabilities=target)
    np.testing.assert_allclose(losses["test-fidelity"], [0.0, 0.5])
    expected = -(target[None] * np.log(selection)).sum(axis=2).mean(axis=1)
    np.testing.assert_allclose(losses["test-loss"], expected, rtol=1e-12)
    assert "transcript" not in losses


def test_missing_inputs_name_the_criterion() -> None:
    losses = candidate_losses(_candidates(P_HOLD), holdout=None, target_probabilities=None)
    with pytest.raises(InvalidInputError) as info:
        rashomon_set(losses, epsilon=0.1, criterion="transcript-loss")
    assert str(info.value) == EMPTY_HOLDOUT.format(criterion="transcript-loss")
    with pytest.raises(InvalidInputError) as info:
        rashomon_set(losses, epsilon=0.1, criterion="test-loss")
    assert str(info.value) == NO_SELECTION.format(criterion="test-loss")


def test_k_copies_of_one_model_are_one_member() -> None:
    P = np.repeat(P_HOLD[:1], 5, axis=0)
    distinct, mapping = distinct_candidates(_candidates(P))
    assert len(distinct) == 1
    assert distinct.params["copies"].tolist() == [5]
    np.testing.assert_array_equal(mapping, np.zeros(5, dtype=np.int64))


def test_distinct_means_identical_on_every_input_set() -> None:
    # Members 0 and 2 agree on the holdout rows but not on the selection rows: both stay.
    holdout = np.stack([P_HOLD[0], P_HOLD[1], P_HOLD[0], P_HOLD[1]])
    selection = np.stack(
        [P_HOLD[0, :2], P_HOLD[0, :2], P_HOLD[1, :2], P_HOLD[0, :2]]
    )  # members 1 and 3 are identical everywhere
    distinct, mapping = distinct_candidates(_candidates(holdout, selection))
    assert distinct.params["member"].tolist() == [0, 1, 2]
    assert distinct.params["copies"].tolist() == [1, 2, 1]
    np.testing.assert_array_equal(mapping, [0, 1, 2, 1])
    np.testing.assert_array_equal(distinct.output("selection"), selection[:3])


def test_a_grid_containing_zero_gives_one_distinct_member_for_all_rate_zero_draws(
    blobs, rng
) -> None:
    from multisteal.models import TorchMLPClassifier

    X, y = blobs
    surrogate = TorchMLPClassifier((16, 8), epochs=5, random_state=0).fit(X, y)
    candidates = DropoutExplorer(rates=[0.0, 0.1], members_per_rate=4).explore(
        ExplorationContext(
            surrogate=surrogate,
            inputs={"holdout": X[:50], "evaluation": X[50:]},
            transcript=None,  # type: ignore[arg-type]
            refit=None,  # type: ignore[arg-type]
            rng=rng,
        )
    )
    distinct, mapping = distinct_candidates(candidates)
    rate_zero = candidates.params["rate"].to_numpy() == 0.0
    assert rate_zero.sum() == 5  # the reference and four rate-0 draws
    assert set(mapping[rate_zero]) == {0}  # all of them are the reference
    # The rate-0.1 draws are distinct models (4 of them), so 5 distinct members in all.
    assert len(distinct) == 5
    assert distinct.params["copies"].tolist() == [5, 1, 1, 1, 1]
