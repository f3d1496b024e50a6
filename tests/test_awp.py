"""Adversarial weight perturbation (AWP) explorer: tiny MLPs and a tiny CNN on synthetic data.

Each test says which wrong implementation it catches.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.preprocessing import StandardScaler

from multisteal import metrics
from multisteal.errors import InvalidInputError
from multisteal.models import TorchMLPClassifier
from multisteal.models.cnn import TorchCNNClassifier
from multisteal.models.pipeline import InputPipeline
from multisteal.query import Answer
from multisteal.rashomon import candidate_losses, concat_candidates, rashomon_set
from multisteal.rashomon.awp import MIN_STEP, NO_EPSILONS, NOT_TORCH, AWPExplorer
from multisteal.rashomon.base import NOT_ACCEPTED, ExplorationContext

EPSILONS = (0.0, 0.02, 0.05)


# -- problems -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def problem() -> tuple[TorchMLPClassifier, np.ndarray, np.ndarray]:
    """A tiny binary MLP; 100 held-out rows (labels from a noisy rule), 24 evaluation rows."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(424, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.4 * rng.normal(size=424) > 0).astype(np.int64)
    model = TorchMLPClassifier((8, 4), epochs=5, min_steps=150, random_state=0)
    model.fit(X[124:], y[124:])
    return model, X[:124], y[:124]


def _answer(labels: np.ndarray, n_classes: int = 2) -> Answer:
    return Answer(labels=labels, scores=None, revealed=None, mode="label", n_classes=n_classes)


def _context(model, X, y, *, epsilons=EPSILONS, criterion=True, rng=0, **extra):
    """Held-out rows 0..99 (criterion: transcript disagreement), evaluation rows 100.."""
    answers = _answer(y[:100])

    def transcript(candidates):
        return candidate_losses(candidates, holdout=answers, target_probabilities=None)[
            "transcript"
        ]

    inputs = {"holdout": X[:100], "evaluation": X[100:], **extra}
    return ExplorationContext(
        surrogate=model,
        inputs=inputs,
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        rng=np.random.default_rng(rng),
        criterion_loss=transcript if criterion else None,
        epsilons=epsilons,
    )


def _transcript_loss(model, weights, X_hold, labels) -> float:
    """The real criterion of one pushed model, computed independently: apply its weights to a
    copy of the surrogate and count disagreements with the answers on the held-out rows."""
    clone = _with_weights(model, weights)
    return float(np.mean(clone.predict(X_hold) != labels))


def _with_weights(model, weights):
    clone = copy.deepcopy(model)
    inner = clone.model_ if hasattr(clone, "model_") else clone
    inner.module_.load_state_dict(weights, strict=False)
    return clone


def _row(e: int, c: int, C: int) -> int:
    return 1 + e * C + c


# -- tests ----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [{"steps": 0}, {"step_size": 0.0}])
def test_zero_perturbation_reproduces_reference(problem, kwargs) -> None:
    """Catches: channel rows computed by a different (batched) forward than the reference,
    rows assembled from the wrong samples, weights moved without an accepted step, a reference
    row that is not the surrogate's own predict_proba."""
    model, X, y = problem
    cands = AWPExplorer(**kwargs).explore(_context(model, X, y))
    assert cands.kind == "channels"
    assert len(cands) == 1 + len(EPSILONS) * 2
    for key, inputs in (("holdout", X[:100]), ("evaluation", X[100:])):
        P = cands.outputs[key]
        np.testing.assert_array_equal(P[0], model.predict_proba(inputs))
        for m in range(1, len(cands)):
            np.testing.assert_array_equal(P[m], P[0])
    assert (cands.params["awp_moved"] == 0).all()


def test_members_respect_their_epsilon_and_match_the_outputs(problem) -> None:
    """Every per-sample model is recomputed from its weights and its real criterion checked.

    Catches: accepting a step by a surrogate loss (cross-entropy) instead of the audit's 0-1
    criterion, keeping the first violating iterate (off by one), a wrong bound (ε relative, or
    without the reference's loss), perturbing only the last layer, outputs that are not those
    of the kept weights, a constraint row that is not the worst model (awp_max_loss)."""
    model, X, y = problem
    X, y = X[:112], y[:112]  # 12 evaluation samples: every pushed model is recomputed
    labels = y[:100]
    explorer = AWPExplorer(steps=6, step_size=0.05, batch=5)
    context = _context(model, X, y)
    cands = explorer.explore(context)
    ref_loss = float(np.mean(model.predict(X[:100]) != labels))
    P = cands.outputs["evaluation"]
    losses = np.full((len(EPSILONS), 2, 12), np.nan)
    layers_moved = set()
    reference = dict(model.module_.named_parameters())
    for n in range(12):
        for c in range(2):
            for e, eps in enumerate(EPSILONS):
                weights = explorer.pushed_weights(context, n, c, eps)
                losses[e, c, n] = _transcript_loss(model, weights, X[:100], labels)
                assert losses[e, c, n] <= ref_loss + eps + 1e-12
                clone = _with_weights(model, weights)
                np.testing.assert_allclose(
                    P[_row(e, c, 2), n], clone.predict_proba(X[100 + n : 101 + n])[0], atol=1e-6
                )
                moved = {k for k, v in weights.items() if not torch.equal(v, reference[k])}
                layers_moved |= moved
                if moved:  # every parameter tensor moves, not only the output layer's
                    assert moved == set(reference)
    assert layers_moved == set(reference)
    # A channel row's criterion loss is that of its worst per-sample model.
    crit = candidate_losses(cands, holdout=_answer(labels), target_probabilities=None)
    row_loss = crit["transcript"]
    assert row_loss[0] == pytest.approx(ref_loss)
    for e in range(len(EPSILONS)):
        for c in range(2):
            worst = losses[e, c].max()
            assert row_loss[_row(e, c, 2)] == pytest.approx(worst)
            assert cands.params["awp_max_loss"][_row(e, c, 2)] == pytest.approx(worst)
    # The ε-filter keeps every row built at ε' <= ε (and the reference).
    for e, eps in enumerate(EPSILONS):
        kept = set(rashomon_set(crit, epsilon=eps, criterion="transcript").members.tolist())
        assert {0} | {_row(f, c, 2) for f in range(e + 1) for c in range(2)} <= kept


def test_awp_raises_the_pushed_class_more_with_larger_epsilon(problem) -> None:
    """Catches: pushing the wrong class (the predicted one, or lowering c), ignoring ε (every
    ε the same push), a push that shrinks as ε grows, channels that do not add multiplicity."""
    model, X, y = problem
    cands = AWPExplorer(steps=8, step_size=0.05).explore(_context(model, X, y))
    P = cands.outputs["evaluation"]
    ref = P[0]
    pushes = np.empty((len(EPSILONS), 2))
    for e in range(len(EPSILONS)):
        for c in range(2):
            gain = P[_row(e, c, 2), :, c] - ref[:, c]
            assert (gain >= -1e-12).all()  # never pushed the other way
            pushes[e, c] = gain.mean()
            if e:  # per sample, a larger ε pushes at least as far
                assert (P[_row(e, c, 2), :, c] >= P[_row(e - 1, c, 2), :, c] - 1e-12).all()
    assert (pushes[-1] > 0.02).all()
    assert (np.diff(pushes, axis=0) >= -1e-12).all()
    rc = [
        metrics.rashomon_capacity(P[[0, *range(1, _row(e, 1, 2) + 1)]])
        for e in range(len(EPSILONS))
    ]
    assert all((r >= 1.0 - 1e-9).all() for r in rc)
    means = [float(r.mean()) for r in rc]
    assert means == sorted(means)
    assert means[-1] > means[0]
    assert means[-1] > 1.02


def _slow_push(model, x, c, *, epsilons, steps, step_size, prob_target, loss_of, ref_loss):
    """The algorithm for one pair, with plain autograd on a copy of the module."""
    module = copy.deepcopy(model.module_).eval()
    params = list(module.parameters())
    norm = float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in params)))
    xt = torch.as_tensor(x[None], dtype=torch.float32)
    probs = model.predict_proba(x[None])[0]
    out = []
    for eps in epsilons:
        eta = step_size
        for _ in range(steps):
            if probs[c] >= prob_target or eta < step_size * MIN_STEP:
                break
            value = torch.log_softmax(module(xt), dim=-1)[0, c]
            grads = torch.autograd.grad(value, params)
            gnorm = float(torch.sqrt(sum((g.double() ** 2).sum() for g in grads)))
            if gnorm == 0:
                break
            scale = torch.tensor(eta * norm / gnorm, dtype=torch.float64).float()
            old = [p.detach().clone() for p in params]
            with torch.no_grad():
                for p, g in zip(params, grads, strict=True):
                    p.add_(scale * g)
                logits = module(xt)
                new_value = torch.log_softmax(logits, dim=-1)[0, c]
            if not new_value > value or loss_of(module) > ref_loss + eps + 1e-12:
                with torch.no_grad():
                    for p, o in zip(params, old, strict=True):
                        p.copy_(o)
                eta /= 2.0
                continue
            probs = torch.softmax(logits.double(), dim=-1)[0].numpy()
        out.append(probs.copy())
    return out


def test_batched_push_equals_a_per_pair_loop(problem) -> None:
    """Catches: pairs of a vmapped batch leaking into each other (one gradient norm or one
    step size for the whole batch, a shared accept mask), compaction of active pairs that
    mixes up rows, and any drift from the plain-autograd algorithm."""
    model, X, y = problem
    labels = y[:100]
    steps, step_size, target = 6, 0.05, 0.99
    cands = AWPExplorer(steps=steps, step_size=step_size, prob_target=target, batch=7).explore(
        _context(model, X, y)
    )
    hold = torch.as_tensor(X[:100], dtype=torch.float32)

    def loss_of(module) -> float:
        with torch.no_grad():
            pred = module(hold).argmax(dim=1).numpy()
        return float(np.mean(pred != labels))

    ref_loss = float(np.mean(model.predict(X[:100]) != labels))
    P = cands.outputs["evaluation"]
    for n in range(24):
        for c in range(2):
            slow = _slow_push(
                model,
                X[100 + n],
                c,
                epsilons=EPSILONS,
                steps=steps,
                step_size=step_size,
                prob_target=target,
                loss_of=loss_of,
                ref_loss=ref_loss,
            )
            for e, probs in enumerate(slow):
                np.testing.assert_allclose(P[_row(e, c, 2), n], probs, atol=1e-5)


def test_same_seed_gives_identical_candidates(problem) -> None:
    """Catches: hidden randomness (torch's or numpy's global generator) and a max_samples
    subset not drawn from the context's generator; the warning names the skipped samples."""
    model, X, y = problem
    explorer = AWPExplorer(steps=3, step_size=0.05, max_samples=10)
    runs = []
    for seed in (3, 3, 4):
        with pytest.warns(UserWarning, match="pushed 10 of the 24 samples"):
            runs.append(explorer.explore(_context(model, X, y, rng=seed)))
    a, b, other = runs
    for key in a.outputs:
        np.testing.assert_array_equal(a.outputs[key], b.outputs[key])
    assert a.params.equals(b.params)
    # Skipped samples keep the reference's probabilities in every row; 10 samples move.
    P = a.outputs["evaluation"]
    untouched = np.all(P[0] == P, axis=(0, 2))
    assert untouched.sum() >= 14
    assert not np.array_equal(P, other.outputs["evaluation"])


def test_sklearn_surrogate_is_refused(problem) -> None:
    """Catches: an explorer that silently returns the reference for a non-torch model."""
    _, X, y = problem
    hgb = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    explorer = AWPExplorer()
    reason = explorer.accepts(hgb)
    assert reason == NOT_TORCH.format(cls="HistGradientBoostingClassifier")
    with pytest.raises(InvalidInputError) as info:
        explorer.explore(_context(hgb, X, y))
    assert str(info.value) == NOT_ACCEPTED.format(
        explorer="awp", model="HistGradientBoostingClassifier", reason=reason
    )


def test_epsilons_are_required_and_the_explorer_s_own_win(problem) -> None:
    """Catches: a silent default ε, and the explorer's epsilons being ignored in an audit."""
    model, X, y = problem
    with pytest.raises(InvalidInputError, match="none were given") as info:
        AWPExplorer().explore(_context(model, X, y, epsilons=()))
    assert str(info.value) == NO_EPSILONS
    cands = AWPExplorer(epsilons=[0.05, 0.01], steps=2).explore(_context(model, X, y))
    assert cands.params["epsilon"].tolist() == [0.0, 0.01, 0.01, 0.05, 0.05]


def test_chunks_probe_and_no_criterion(problem) -> None:
    """Catches: chunks that ignore members_per_chunk or disagree with one exploration, a probe
    set that is not pushed per sample, and (outside an audit) a loss that is not the
    cross-entropy against the reference's probabilities on the held-out rows."""
    model, X, y = problem
    probe = X[100:106] * 0.5
    context = _context(model, X, y, criterion=False, probe=probe)
    small = ExplorationContext(**{**context.__dict__, "max_chunk_bytes": 3 * 130 * 2 * 8})
    explorer = AWPExplorer(steps=4, step_size=0.05)
    chunks = list(explorer.explore_chunks(small))
    assert [len(c) for c in chunks] == [3, 3, 1]
    whole = explorer.explore(context)
    joined = concat_candidates(chunks)
    for key in whole.outputs:
        np.testing.assert_array_equal(joined.outputs[key], whole.outputs[key])
    ref_hold = model.predict_proba(X[:100])
    ref_ce = -(ref_hold * np.log(ref_hold)).sum(axis=1).mean()
    for e, eps in enumerate(EPSILONS):
        for c in range(2):
            weights = explorer.pushed_weights(context, 0, c, eps, key="probe")
            P = _with_weights(model, weights).predict_proba(X[:100])
            ce = -(ref_hold * np.log(np.clip(P, 1e-12, 1.0))).sum(axis=1).mean()
            assert ce <= ref_ce + eps + 1e-9
            row = whole.outputs["probe"][_row(e, c, 2), 0]
            expected = _with_weights(model, weights).predict_proba(probe[:1])[0]
            np.testing.assert_allclose(row, expected, atol=1e-6)
    pushed = whole.outputs["probe"][_row(2, 0, 2), :, 0] - whole.outputs["probe"][0, :, 0]
    assert pushed.mean() > 0


def test_raw_input_pipeline_and_tiny_cnn() -> None:
    """Catches: a pipeline's raw inputs fed to the network unencoded, and batched weights that
    break on convolutions (vmap over Conv2d) or a 3-class channel laid out wrongly."""
    rng = np.random.default_rng(3)
    # A raw-input pipeline: the encoder standardises, the MLP is perturbed.
    X = rng.normal(loc=5.0, scale=3.0, size=(300, 4))
    y = (X[:, 0] > 5.0).astype(np.int64)
    pipe = InputPipeline(StandardScaler(), TorchMLPClassifier((6,), epochs=3, min_steps=60))
    pipe.fit(X[100:], y[100:])
    cands = AWPExplorer(steps=3, step_size=0.05).explore(_context(pipe, X[:120], y[:120]))
    np.testing.assert_array_equal(cands.outputs["evaluation"][0], pipe.predict_proba(X[100:120]))
    assert (
        cands.outputs["evaluation"][-1, :, 1].mean() > cands.outputs["evaluation"][0, :, 1].mean()
    )

    # A tiny CNN on 8x8 single-channel images, three classes.
    images = rng.normal(size=(150, 1, 8, 8)).astype(np.float32)
    labels = np.argmax(images[:, 0, :3, :3].reshape(150, 3, 3).mean(axis=2), axis=1)
    cnn = TorchCNNClassifier((2,), hidden=6, epochs=2, min_steps=40, random_state=0)
    cnn.fit(images[50:], labels[50:])
    answers = _answer(labels[:40].astype(np.int64), 3)
    context = ExplorationContext(
        surrogate=cnn,
        inputs={"holdout": images[:40], "evaluation": images[40:50]},
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        criterion_loss=lambda c: candidate_losses(c, holdout=answers, target_probabilities=None)[
            "transcript"
        ],
        epsilons=(0.05,),
    )
    explorer = AWPExplorer(steps=3, step_size=0.05, batch=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cands = explorer.explore(context)
    P = cands.outputs["evaluation"]
    assert P.shape == (4, 10, 3)
    ref_loss = float(np.mean(cnn.predict(images[:40]) != labels[:40]))
    for c in range(3):
        assert (P[1 + c, :, c] >= P[0, :, c] - 1e-12).all()
        weights = explorer.pushed_weights(context, 0, c, 0.05)
        clone = _with_weights(cnn, weights)
        assert np.mean(clone.predict(images[:40]) != labels[:40]) <= ref_loss + 0.05 + 1e-12
        np.testing.assert_allclose(P[1 + c, 0], clone.predict_proba(images[40:41])[0], atol=1e-6)
    assert np.mean([P[1 + c, :, c] - P[0, :, c] for c in range(3)]) > 0


def test_selection_criterion_constrains_on_selection_only(problem) -> None:
    """A ``test-fidelity`` audit: members are accepted on the selection rows, the held-out rows
    are never pushed per sample and carry the worst model's outputs.

    Catches: checking the criterion on the wrong set (holdout instead of selection), pushing
    selection rows per sample (their channel row would not be the worst model), a worst-case
    row whose outputs on the other constraint set come from a different model."""
    model, X, y = problem
    target = np.eye(2)[y[50:100]]
    inputs = {"holdout": X[:50], "selection": X[50:100], "evaluation": X[100:112]}

    def fidelity(candidates):
        return candidate_losses(candidates, holdout=None, target_probabilities=target)[
            "test-fidelity"
        ]

    context = ExplorationContext(
        surrogate=model,
        inputs=inputs,
        transcript=None,  # type: ignore[arg-type]
        refit=None,  # type: ignore[arg-type]
        criterion_loss=fidelity,
        epsilons=(0.02, 0.06),
    )
    explorer = AWPExplorer(steps=5, step_size=0.05)
    cands = explorer.explore(context)
    ref_loss = float(np.mean(model.predict(X[50:100]) != y[50:100]))
    row_loss = fidelity(cands)
    for e, eps in enumerate((0.02, 0.06)):
        for c in range(2):
            models = [
                _with_weights(model, explorer.pushed_weights(context, n, c, eps)) for n in range(12)
            ]
            losses = [float(np.mean(m.predict(X[50:100]) != y[50:100])) for m in models]
            assert max(losses) <= ref_loss + eps + 1e-12
            assert row_loss[_row(e, c, 2)] == pytest.approx(max(losses))
            worst = models[int(np.argmax(losses))]
            np.testing.assert_allclose(
                cands.outputs["holdout"][_row(e, c, 2)], worst.predict_proba(X[:50]), atol=1e-6
            )
    assert cands.outputs["selection"].shape == (5, 50, 2)
    assert (cands.params["awp_moved"][1:] > 0).any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"steps": -1},
        {"step_size": float("nan")},
        {"prob_target": 0.0},
        {"batch": 0},
        {"max_samples": 0},
        {"epsilons": [-0.1]},
    ],
)
def test_bad_parameters_are_refused(kwargs) -> None:
    """Catches: a negative step count or ε, or a NaN step, silently running."""
    with pytest.raises(InvalidInputError):
        AWPExplorer(**kwargs)
