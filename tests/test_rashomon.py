from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from multisteal.attacks import PoolAttack
from multisteal.errors import InvalidInputError
from multisteal.models import TorchMLPClassifier, train_target
from multisteal.query import LocalQueryAPI
from multisteal.rashomon import (
    Candidates,
    DropoutExplorer,
    ExplorationContext,
    RetrainExplorer,
    candidate_losses,
    default_rates,
    rashomon_set,
)
from multisteal.rashomon.base import BAD_EPSILON
from multisteal.surrogates import fit_surrogate


@pytest.fixture
def surrogate(blobs) -> TorchMLPClassifier:
    X, y = blobs
    return TorchMLPClassifier((16, 8), epochs=5, random_state=0).fit(X, y)


def _context(surrogate, X, rng, transcript=None, refit=None) -> ExplorationContext:
    return ExplorationContext(
        surrogate=surrogate,
        inputs={"holdout": X[:50], "evaluation": X[50:]},
        transcript=transcript,  # type: ignore[arg-type]
        refit=refit,  # type: ignore[arg-type]
        rng=rng,
    )


def test_default_rate_grids() -> None:
    np.testing.assert_allclose(default_rates("bernoulli"), np.linspace(0, 0.2, 21))
    np.testing.assert_allclose(default_rates("gaussian"), np.linspace(0, 0.6, 21))


def test_dropout_candidates_layout(surrogate, blobs, rng) -> None:
    X, _ = blobs
    cands = DropoutExplorer(rates=[0.0, 0.1], members_per_rate=3).explore(
        _context(surrogate, X, rng)
    )
    assert len(cands) == 1 + 2 * 3
    assert cands.output("holdout").shape == (7, 50, 2)
    assert cands.output("evaluation").shape == (7, 550, 2)
    np.testing.assert_allclose(
        cands.output("evaluation")[0], surrogate.predict_proba(X[50:]), atol=1e-12
    )
    # rate 0 members equal the reference exactly
    for m in (1, 2, 3):
        np.testing.assert_array_equal(cands.output("evaluation")[m], cands.output("evaluation")[0])
    assert list(cands.params["rate"]) == [0.0, 0.0, 0.0, 0.0, 0.1, 0.1, 0.1]


def _single_linear(rng) -> TorchMLPClassifier:
    X = rng.normal(size=(200, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    return TorchMLPClassifier((), epochs=2, random_state=0).fit(X, y)


@pytest.mark.parametrize("kind", ["bernoulli", "gaussian"])
def test_per_member_noise_is_one_fixed_pattern(kind, rng) -> None:
    model = _single_linear(rng)
    X = rng.normal(size=(100, 4))
    explorer = DropoutExplorer(
        kind=kind, rates=[0.5 if kind == "bernoulli" else 0.4], members_per_rate=8
    )
    cands = explorer.explore(_context(model, X, rng))
    clean = model.logits(X)
    P = np.concatenate([cands.output("holdout"), cands.output("evaluation")], axis=1)
    for m in range(1, len(cands)):
        # For a single Linear layer the noisy logits are the clean logits times one multiplier
        # per output unit, so log p1 - log p0 = l1*m1 - l0*m0 on every sample: solve for
        # (m0, m1) by least squares and check that one pattern explains all rows.
        log_p = np.log(P[m])
        A = np.column_stack([-clean[:, 0], clean[:, 1]])
        coef, *_ = np.linalg.lstsq(A, log_p[:, 1] - log_p[:, 0], rcond=None)
        fitted = A @ coef
        assert np.abs(fitted - (log_p[:, 1] - log_p[:, 0])).max() < 1e-4
        if kind == "bernoulli":
            for value in coef:
                assert min(abs(value), abs(value - 2.0)) < 1e-3  # 0 or 1/(1-0.5)


def test_per_pass_noise_differs_between_samples(rng) -> None:
    model = _single_linear(rng)
    X = np.repeat(rng.normal(size=(1, 4)), 100, axis=0)  # the same row 100 times
    member = DropoutExplorer(semantics="per-member", rates=[0.1], members_per_rate=2)
    passes = DropoutExplorer(semantics="per-pass", rates=[0.1], members_per_rate=2)
    fixed = member.explore(_context(model, X, rng)).output("evaluation")
    fresh = passes.explore(_context(model, X, rng)).output("evaluation")
    assert np.ptp(fixed[1], axis=0).max() == 0.0  # identical rows, identical answers
    assert np.ptp(fresh[1], axis=0).max() > 0.0  # fresh noise per element


def test_dropout_hooks_are_removed(surrogate, blobs, rng) -> None:
    X, _ = blobs
    before = surrogate.predict_proba(X)
    DropoutExplorer(rates=[0.2], members_per_rate=2).explore(_context(surrogate, X, rng))
    np.testing.assert_array_equal(surrogate.predict_proba(X), before)
    assert all(not m._forward_hooks for m in surrogate.module_.modules())


def test_dropout_needs_a_torch_surrogate(blobs, rng) -> None:
    X, y = blobs
    gb = train_target("logistic", X, y)
    with pytest.raises(InvalidInputError, match="needs a torch surrogate"):
        DropoutExplorer().explore(_context(gb, X, rng))


def test_dropout_works_on_conv_layers(rng) -> None:
    class Conv(TorchMLPClassifier):
        pass

    model = Conv(())
    model.module_ = torch.nn.Sequential(
        torch.nn.Unflatten(1, (1, 4, 4)),
        torch.nn.Conv2d(1, 3, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(12, 2),
    )
    model.n_features_in_, model.n_classes_ = 16, 2
    X = rng.normal(size=(80, 16))
    cands = DropoutExplorer(rates=[0.3], members_per_rate=4).explore(_context(model, X, rng))
    assert cands.output("evaluation").shape == (5, 30, 2)
    for m in range(1, 5):
        assert not np.allclose(cands.output("holdout")[m], cands.output("holdout")[0])


def test_retrain_explorer(blobs, rng) -> None:
    X, y = blobs
    target = train_target("logistic", X, y)
    transcript = PoolAttack(X).run(LocalQueryAPI(target, budget=200), 200, rng=rng)

    def refit(t, seed):
        return fit_surrogate(t, architecture="mlp", random_state=seed, epochs=3, min_steps=20)

    reference = refit(transcript, 0)
    cands = RetrainExplorer(n_members=3, bootstrap=True).explore(
        ExplorationContext(
            reference, {"holdout": X[:10], "evaluation": X[10:]}, transcript, refit, rng
        )
    )
    assert len(cands) == 4
    np.testing.assert_array_equal(cands.output("evaluation")[0], reference.predict_proba(X[10:]))
    assert list(cands.params["seed"]) == [-1, 1001, 1002, 1003]
    assert not np.allclose(cands.output("evaluation")[1], cands.output("evaluation")[2])


def _toy_candidates() -> Candidates:
    # 3 candidates, 2 holdout rows, 3 evaluation rows, 2 classes.
    hold = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8]],
            [[0.9, 0.1], [0.6, 0.4]],
            [[0.4, 0.6], [0.6, 0.4]],
        ]
    )
    ev = np.array(
        [
            [[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]],
            [[0.9, 0.1], [0.2, 0.8], [0.3, 0.7]],
            [[0.1, 0.9], [0.9, 0.1], [0.3, 0.7]],
        ]
    )
    return Candidates(
        "toy", pd.DataFrame({"member": [0, 1, 2]}), {"holdout": hold, "evaluation": ev}
    )


def test_candidate_losses_hand_computed() -> None:
    target = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    losses = candidate_losses(
        _toy_candidates(), holdout_labels=np.array([0, 1]), target_probabilities=target
    )
    np.testing.assert_allclose(losses["transcript"], [0.0, 0.5, 1.0])
    np.testing.assert_allclose(losses["test-fidelity"], [0.0, 1 / 3, 1.0])
    expected_ce0 = -np.mean(
        [
            0.8 * np.log(0.9) + 0.2 * np.log(0.1),
            0.3 * np.log(0.2) + 0.7 * np.log(0.8),
            0.6 * np.log(0.7) + 0.4 * np.log(0.3),
        ]
    )
    assert losses["test-loss"][0] == pytest.approx(expected_ce0)


def test_epsilon_filter_is_inclusive() -> None:
    losses = {"transcript": np.array([0.10, 0.15, 0.30, 0.101])}
    assert list(rashomon_set(losses, epsilon=0.0).members) == [0]
    assert list(rashomon_set(losses, epsilon=0.05).members) == [
        0,
        1,
        3,
    ]  # 0.15 = 0.10 + 0.05 included
    assert list(rashomon_set(losses, epsilon=0.2).members) == [0, 1, 2, 3]
    R = rashomon_set(losses, epsilon=0.05)
    assert R.size == 3
    assert R.reference_loss == 0.10


@pytest.mark.parametrize("eps", [-0.01, float("nan"), float("inf")])
def test_bad_epsilon(eps) -> None:
    with pytest.raises(InvalidInputError) as info:
        rashomon_set({"transcript": np.zeros(2)}, epsilon=eps)
    assert str(info.value) == BAD_EPSILON.format(epsilon=eps)


def test_unknown_criterion() -> None:
    with pytest.raises(InvalidInputError, match="Unknown Rashomon criterion 'auc'"):
        rashomon_set({"transcript": np.zeros(2)}, epsilon=0.1, criterion="auc")
