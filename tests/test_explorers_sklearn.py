"""The tree-ensemble and logistic level-set explorers (and the zoo's ``forest`` family).

Each test names the wrong implementation it would catch.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import log_softmax
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer
from sklearn.tree import DecisionTreeClassifier

from multisteal.attacks.base import Transcript
from multisteal.data.inputs import TabularSpec
from multisteal.errors import InvalidInputError
from multisteal.models import MODELS, TorchMLPClassifier, make_pipeline, train_target
from multisteal.models.pipeline import InputPipeline
from multisteal.query import Answer
from multisteal.rashomon.base import (
    NOT_ACCEPTED,
    Candidates,
    ExplorationContext,
    concat_candidates,
    rashomon_set,
)
from multisteal.rashomon.ensemble import (
    NO_REFIT_WITH,
    NOT_ENSEMBLE,
    EnsembleExplorer,
    feature_share,
)
from multisteal.rashomon.logistic import (
    L1_PENALTY,
    NOT_LINEAR,
    ONE_CLASS,
    UNFILTERED_NO_CRITERION,
    LogisticLevelSetExplorer,
    fit_laplace,
)
from multisteal.rashomon.retrain import reference_seed
from multisteal.surrogates import fit_surrogate

# -- helpers ----------------------------------------------------------------------------------


def _answers(y: np.ndarray, n_classes: int, soft: np.ndarray | None = None) -> Answer:
    if soft is None:
        return Answer(y.astype(np.int64), None, None, "label", n_classes)
    return Answer(y.astype(np.int64), soft, np.ones_like(soft, bool), "probabilities", n_classes)


def _problem(n: int = 400, d: int = 3, classes: int = 2, seed: int = 0):
    """Noisy linear labels (so logistic regression is not separable and has a finite optimum)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = rng.normal(size=(classes, d)) * 1.5
    logits = X @ W.T + rng.gumbel(size=(n, classes))
    return X, logits.argmax(axis=1).astype(np.int64)


def _zero_one(labels: np.ndarray, key: str = "holdout"):
    """A criterion built here: 0-1 disagreement with ``labels`` on input set ``key``."""

    def loss(c: Candidates) -> np.ndarray:
        return (c.output(key).argmax(axis=2) != labels[None, :]).mean(axis=1)

    return loss


def _context(model, inputs, transcript, *, seed=1, criterion=None, eps=(), **kw):
    return ExplorationContext(
        surrogate=model,
        inputs=inputs,
        transcript=transcript,
        refit=kw.pop("refit", None),
        rng=np.random.default_rng(seed),
        criterion_loss=criterion,
        epsilons=eps,
        **kw,
    )


def _objective(theta, X, Q, l2w, l2b, link):
    """The training objective written independently: mean cross-entropy + ½·l2·‖θ‖²."""
    W, b = theta[:, :-1], theta[:, -1]
    Z = X @ W.T + b
    if link == "sigmoid":  # scikit-learn's binary model: logits [0, z]
        Z = np.concatenate([np.zeros((len(X), 1)), Z], axis=1)
    ce = -(Q * log_softmax(Z, axis=1)).sum(axis=1).mean()
    return ce + 0.5 * l2w * (W**2).sum() + 0.5 * l2b * (b**2).sum()


def _fd_hessian(f, theta, h=1e-4):
    """Central second differences of ``f`` around ``theta`` (flattened)."""
    x0 = theta.ravel()
    P = x0.size
    H = np.empty((P, P))
    for i in range(P):
        for j in range(i, P):
            e_i, e_j = np.eye(P)[i] * h, np.eye(P)[j] * h
            val = (
                f(x0 + e_i + e_j) - f(x0 + e_i - e_j) - f(x0 - e_i + e_j) + f(x0 - e_i - e_j)
            ) / (4 * h * h)
            H[i, j] = H[j, i] = val
    return H


def _onehot(y, k):
    return np.eye(k)[y]


# -- logistic level set: zero perturbation ----------------------------------------------------


def _sk_binary():
    X, y = _problem()
    return LogisticRegression(C=0.5, tol=1e-10, max_iter=5000).fit(X, y), X, y, 2


def _sk_multinomial():
    X, y = _problem(classes=3)
    return LogisticRegression(C=2.0, tol=1e-10, max_iter=5000).fit(X, y), X, y, 3


def _torch_logistic():
    X, y = _problem()
    return TorchMLPClassifier((), epochs=5, lr=1e-2, random_state=3).fit(X, y), X, y, 2


def _pipeline_missing_class():
    # Three classes overall, the transcript lacks class 1: the inner model is binary over
    # classes 0 and 2, placed in columns 0 and 2 (InputPipeline.columns_).
    X, y = _problem()
    y = np.where(y == 1, 2, 0)
    pipe = InputPipeline(FunctionTransformer(), LogisticRegression(), n_classes=3).fit(X, y)
    return pipe, X, y, 3


def _float32(X):
    return np.asarray(X, dtype=np.float32)


def _pipeline_float32(classes):
    # The tabular encoder answers float32 rows: scikit-learn then fits float32 weights and
    # answers in float32, which the members must reproduce (not recompute in float64).
    def build():
        X, y = _problem(classes=classes, seed=classes)
        model = LogisticRegression()
        pipe = InputPipeline(FunctionTransformer(_float32), model, n_classes=classes).fit(X, y)
        assert pipe.model_.coef_.dtype == np.float32
        return pipe, X, y, classes

    build.__name__ = f"_pipeline_float32_{classes}"
    return build


def _pipeline_torch_soft():
    X, y = _problem(classes=3)
    soft = 0.8 * _onehot(y, 3) + 0.2 / 3
    model = TorchMLPClassifier((), epochs=3, random_state=0, n_classes=3)
    pipe = InputPipeline(FunctionTransformer(), model, n_classes=3).fit(X, soft)
    return pipe, X, y, 3


@pytest.mark.parametrize(
    "build",
    [
        _sk_binary,
        _sk_multinomial,
        _torch_logistic,
        _pipeline_missing_class,
        _pipeline_torch_soft,
        _pipeline_float32(2),
        _pipeline_float32(3),
    ],
)
def test_logistic_zero_scale_reproduces_the_reference_bit_for_bit(build) -> None:
    # Catches: the wrong binary link (softmax([-d, d]) is sigmoid(2d), not scikit-learn's
    # [1 - expit(d), expit(d)]); a missing softmax over classes; forgetting the pipeline's
    # columns_ for a class missing from the transcript; computing a torch model in float64
    # instead of its float32 logits (or a float32 scikit-learn model in float64); perturbing
    # at s = 0.
    model, X, y, C = build()
    transcript = Transcript(X, _answers(y, C))
    inputs = {"holdout": X[:60], "evaluation": X[60:200] + 0.1}
    cands = LogisticLevelSetExplorer(scales=(0.0, 0.5), members_per_scale=3).explore(
        _context(model, inputs, transcript)
    )
    for key, rows in inputs.items():
        out = cands.output(key)
        assert out.shape == (7, len(rows), C)
        np.testing.assert_array_equal(out[0], model.predict_proba(rows))
        for m in (1, 2, 3):  # the s = 0 draws are the reference itself
            np.testing.assert_array_equal(out[m], out[0])
        assert not np.allclose(out[4], out[0])  # s > 0 moves
        np.testing.assert_allclose(out.sum(axis=2), 1.0, atol=1e-6)  # float32 models: 1e-7
    if C == 3 and isinstance(model, InputPipeline) and list(model.columns_) == [0, 2]:
        assert (cands.output("evaluation")[:, :, 1] == 0).all()
    assert list(cands.params["scale"]) == [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.5]
    assert bool(cands.params["reference"].iloc[0])
    assert not cands.params["reference"][1:].any()


# -- logistic level set: the Hessian and the sampler ----------------------------------------


@pytest.mark.parametrize("classes", [2, 3])
def test_hessian_matches_sklearns_own_objective(classes) -> None:
    # scikit-learn minimises C·Σ loss + ½‖w‖², i.e. per row mean CE + ‖w‖²/(2Cn), intercept
    # unpenalised. The gradient of that objective vanishes at sklearn's optimum only with that
    # scaling (catches penalising the intercept, or a penalty of 1/C or 1/(2Cn) on the
    # Hessian), and finite differences of it match the Hessian (catches a wrong curvature:
    # p(1−p) vs diag(p) − ppᵀ, a missing cross-class block, forgetting the 1/n).
    X, y = _problem(n=300, d=2, classes=classes, seed=4)
    C = 0.3
    model = LogisticRegression(C=C, tol=1e-12, max_iter=10000).fit(X, y)
    n = len(X)
    lap = fit_laplace(model, Transcript(X, _answers(y, classes)))
    assert lap.kind == "full"
    link = "sigmoid" if classes == 2 else "softmax"
    theta = lap.view.theta
    np.testing.assert_array_equal(theta[:, :-1], model.coef_)

    def f(x):
        return _objective(x.reshape(theta.shape), X, _onehot(y, classes), 1 / (C * n), 0.0, link)

    eps = 1e-6
    grad = np.array(
        [
            (f(theta.ravel() + e) - f(theta.ravel() - e)) / (2 * eps)
            for e in np.eye(theta.size) * eps
        ]
    )
    assert np.abs(grad).max() < 1e-6
    wrong = np.array(  # the same objective with the intercept penalised is not at its optimum
        [
            (
                _objective(
                    (theta.ravel() + e).reshape(theta.shape),
                    X,
                    _onehot(y, classes),
                    1 / (C * n),
                    1 / (C * n),
                    link,
                )
                - _objective(
                    (theta.ravel() - e).reshape(theta.shape),
                    X,
                    _onehot(y, classes),
                    1 / (C * n),
                    1 / (C * n),
                    link,
                )
            )
            / (2 * eps)
            for e in np.eye(theta.size) * eps
        ]
    )
    assert np.abs(wrong).max() > 1e-4
    np.testing.assert_allclose(lap.hessian, _fd_hessian(f, theta), rtol=1e-4, atol=1e-6)
    assert lap.newton_decrement < 1e-10  # the fitted weights are the objective's minimum


def test_hessian_of_the_torch_logistic_penalises_every_parameter() -> None:
    # Adam's weight_decay λ adds λθ to every gradient, the bias included: the objective is
    # mean CE + (λ/2)‖θ‖² (catches leaving the bias unpenalised, or λ/2 on the Hessian).
    X, y = _problem(n=200, d=2, seed=5)
    model = TorchMLPClassifier((), epochs=2, weight_decay=0.05, random_state=0).fit(X, y)
    lap = fit_laplace(model, Transcript(X, _answers(y, 2)))
    theta = lap.view.theta  # (2 classes, 3)
    X32 = X.astype(np.float32).astype(np.float64)

    def f(x):
        return _objective(x.reshape(theta.shape), X32, _onehot(y, 2), 0.05, 0.05, "softmax")

    np.testing.assert_allclose(lap.hessian, _fd_hessian(f, theta), rtol=1e-4, atol=1e-6)


def test_laplace_draws_have_covariance_inverse_hessian() -> None:
    # On a 2-feature binary problem, unfiltered draws at scale 1 have covariance H⁻¹, with H
    # computed here in closed form XᵀWX/n + diag(1/(Cn), 1/(Cn), 0). Catches using H instead
    # of H⁻¹, L⁻¹z instead of L⁻ᵀz, penalising the intercept, a missing 1/n.
    X, y = _problem(n=500, d=2, seed=7)
    C = 0.2
    model = LogisticRegression(C=C, tol=1e-10).fit(X, y)
    n = len(X)
    lap = fit_laplace(model, Transcript(X, _answers(y, 2)))
    Xt = np.c_[X, np.ones(n)]
    p = model.predict_proba(X)[:, 1]
    H = Xt.T @ (Xt * (p * (1 - p))[:, None]) / n + np.diag([1 / (C * n)] * 2 + [0.0])
    np.testing.assert_allclose(lap.hessian, H, rtol=1e-10, atol=1e-14)
    draws = lap.draw(np.random.default_rng(0), 1.0, 40_000).reshape(40_000, 3)
    empirical = np.cov(draws.T)
    target = np.linalg.inv(H)
    assert np.linalg.norm(empirical - target) / np.linalg.norm(target) < 0.03
    np.testing.assert_allclose(lap.covariance(), target, rtol=1e-6)
    half = lap.draw(np.random.default_rng(0), 0.5, 40_000).reshape(40_000, 3)
    np.testing.assert_allclose(half, 0.5 * draws, rtol=1e-12)  # s scales the deviation


def test_multinomial_draws_leave_the_softmax_null_direction_alone() -> None:
    # Three classes, intercepts unpenalised: adding c to every class's intercept changes
    # nothing, so H is singular there. Draws are projected off it (their intercept offsets
    # sum to 0 over classes) and their covariance is H's pseudo-inverse (H·Σ·H = H).
    # Catches a singular Cholesky, or huge draws along the null direction.
    X, y = _problem(n=400, d=2, classes=3, seed=2)
    model = LogisticRegression(C=1.0, tol=1e-10).fit(X, y)
    lap = fit_laplace(model, Transcript(X, _answers(y, 3)))
    assert list(lap.gauge) == [2]
    assert lap.n_parameters == 8
    draws = lap.draw(np.random.default_rng(3), 1.0, 30_000)
    np.testing.assert_allclose(draws[:, :, 2].sum(axis=1), 0.0, atol=1e-10)
    sigma = np.cov(draws.reshape(30_000, 9).T)
    H = lap.hessian
    assert np.linalg.norm(H @ sigma @ H - H) / np.linalg.norm(H) < 0.05
    np.testing.assert_allclose(H @ lap.covariance() @ H, H, atol=1e-8)


def test_soft_target_pipeline_is_at_its_optimum() -> None:
    # A scikit-learn pipeline fitted on soft targets learns from weighted repeated rows whose
    # weights add up to n: its penalty per row is 1/(C·n) with n the transcript's length, not
    # the number of repeated rows (catches that scaling), and the targets are the soft ones.
    X, y = _problem(n=300, classes=3, seed=8)
    soft = 0.7 * _onehot(y, 3) + 0.1
    pipe = InputPipeline(
        FunctionTransformer(), LogisticRegression(tol=1e-12, max_iter=10000), n_classes=3
    ).fit(X, soft)
    lap = fit_laplace(pipe, Transcript(X, _answers(y, 3, soft)))
    assert lap.newton_decrement < 1e-10
    hard = fit_laplace(pipe, Transcript(X, _answers(y, 3)))  # not the targets it learnt from
    assert hard.newton_decrement > 1e-3
    np.testing.assert_allclose(hard.hessian, lap.hessian)  # CE curvature ignores the targets


def test_diagonal_hessian_above_the_dimension_threshold() -> None:
    # Above max_full_dim the diagonal of the same Hessian is used and said so (catches a
    # diagonal that is not the full Hessian's, or a wrong variance 1/H_jj).
    X, y = _problem(n=300, d=6, seed=9)
    model = LogisticRegression().fit(X, y)
    transcript = Transcript(X, _answers(y, 2))
    full = fit_laplace(model, transcript)
    diag = fit_laplace(model, transcript, max_full_dim=5)
    assert (full.kind, diag.kind) == ("full", "diagonal")
    np.testing.assert_allclose(diag.hessian, np.diag(full.hessian), rtol=1e-12)
    draws = diag.draw(np.random.default_rng(0), 1.0, 20_000).reshape(20_000, -1)
    np.testing.assert_allclose(draws.var(axis=0) * diag.hessian, 1.0, rtol=0.05)
    explorer = LogisticLevelSetExplorer(scales=(0.1,), members_per_scale=2, max_full_dim=5)
    explorer.explore(_context(model, {"evaluation": X[:20]}, transcript))
    assert explorer.describe()["hessian"] == "diagonal"


# -- logistic level set: the ε filter ------------------------------------------------------


@pytest.fixture
def filtered_setup():
    X, y = _problem(n=700, d=4, seed=11)
    Xtr, ytr, Xh, yh, Xe = X[:400], y[:400], X[400:550], y[400:550], X[550:]
    model = LogisticRegression().fit(Xtr, ytr)
    transcript = Transcript(Xtr, _answers(ytr, 2))
    inputs = {"holdout": Xh, "evaluation": Xe}
    return model, transcript, inputs, _zero_one(yh)


def test_logistic_members_meet_the_criterion_they_were_filtered_by(filtered_setup) -> None:
    # Every member's loss is within the largest ε of the reference's; the same scale without
    # the filter does produce draws outside it, so the filter did work (catches accepting
    # every draw, comparing to 0 instead of the reference's loss, or using the smallest ε).
    model, transcript, inputs, criterion = filtered_setup
    eps = (0.0, 0.02)
    explorer = LogisticLevelSetExplorer(scales=(0.05, 0.4), members_per_scale=8, max_tries=20)
    cands = explorer.explore(_context(model, inputs, transcript, criterion=criterion, eps=eps))
    losses = criterion(cands)
    assert (losses <= losses[0] + 0.02 + 1e-12).all()
    assert (losses > losses[0]).any()  # members use the slack, not only ε = 0
    described = explorer.describe()
    assert described["filtered"] is True
    assert described["reference_loss"] == pytest.approx(losses[0])
    rates = dict(part.split("=") for part in str(described["acceptance_by_scale"]).split(","))
    assert float(rates["0.4"]) < 1.0
    kept = rashomon_set({"transcript": losses}, epsilon=0.02)
    assert kept.size == len(cands)  # the audit's own filter keeps them all

    unfiltered = LogisticLevelSetExplorer(scales=(0.4,), members_per_scale=30).explore(
        _context(model, inputs, transcript)
    )
    loose = criterion(unfiltered)
    assert (loose > loose[0] + 0.02 + 1e-12).any()


def test_logistic_adaptive_scales_reach_the_boundary(filtered_setup) -> None:
    # The adaptive search doubles until the pilot draws fail, so its top scale is accepted
    # while twice it is not (catches a grid that never reaches the largest ε).
    model, transcript, inputs, criterion = filtered_setup
    explorer = LogisticLevelSetExplorer(members_per_scale=4, n_scales=3, pilot_draws=16)
    cands = explorer.explore(
        _context(model, inputs, transcript, criterion=criterion, eps=(0.01, 0.03))
    )
    losses = criterion(cands)
    assert (losses <= losses[0] + 0.03 + 1e-12).all()
    d = explorer.describe()
    trace = [tuple(map(float, p.split("="))) for p in str(d["scale_search"]).split(",")]
    top = float(d["scale_max"])
    assert any(s > top and rate < 0.2 for s, rate in trace)
    assert any(s == pytest.approx(top, rel=1e-5) and rate >= 0.2 for s, rate in trace)
    assert float(d["scale_min"]) == pytest.approx(top / 4)


def test_logistic_without_a_criterion_accepts_all_and_says_so(filtered_setup) -> None:
    model, transcript, inputs, _ = filtered_setup
    explorer = LogisticLevelSetExplorer(scales=(1.0,), members_per_scale=3)
    cands = explorer.explore(_context(model, inputs, transcript, eps=(0.01,)))
    assert len(cands) == 4
    assert explorer.describe()["filtered"] is False
    assert explorer.describe()["filter_note"] == UNFILTERED_NO_CRITERION


def test_logistic_same_seed_same_set_and_bounded_chunks(filtered_setup) -> None:
    # Catches drawing from a global generator, and chunks larger than the memory bound.
    model, transcript, inputs, criterion = filtered_setup
    explorer = LogisticLevelSetExplorer(members_per_scale=3, n_scales=2)

    def run(seed, **kw):
        ctx = _context(model, inputs, transcript, seed=seed, criterion=criterion, eps=(0.02,), **kw)
        return list(explorer.explore_chunks(ctx)), ctx

    one, _ = run(7)
    two, _ = run(7)
    other, _ = run(8)
    a, b, c = (concat_candidates(x) for x in (one, two, other))
    np.testing.assert_array_equal(a.output("evaluation"), b.output("evaluation"))
    pd.testing.assert_frame_equal(a.params, b.params)
    assert not np.array_equal(a.output("evaluation"), c.output("evaluation"))
    small, ctx = run(7, max_chunk_bytes=3 * ctx_bytes(inputs))
    assert ctx.members_per_chunk(2) == 3
    assert [len(chunk) for chunk in small] == [3, 3, 1]
    np.testing.assert_array_equal(
        concat_candidates(small).output("evaluation"), a.output("evaluation")
    )


def ctx_bytes(inputs) -> int:
    return sum(len(v) for v in inputs.values()) * 2 * 8


def test_logistic_refuses_other_families() -> None:
    # Catches accepting a network with hidden layers (not a linear model), an L1 model (no
    # Hessian) or a one-class pipeline, and explore() skipping the check.
    X, y = _problem(n=120)
    transcript = Transcript(X, _answers(y, 2))
    explorer = LogisticLevelSetExplorer()
    gboost = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    mlp = TorchMLPClassifier((4,), epochs=1, min_steps=1).fit(X, y)
    l1 = LogisticRegression(l1_ratio=1.0, solver="saga", max_iter=50).fit(X, y)
    one = InputPipeline(FunctionTransformer(), LogisticRegression()).fit(X, np.zeros(120, int))
    assert explorer.accepts(gboost) == NOT_LINEAR
    assert explorer.accepts(mlp) == NOT_LINEAR
    assert explorer.accepts(l1) == L1_PENALTY.format(penalty="l1")
    assert explorer.accepts(one) == ONE_CLASS
    with pytest.raises(InvalidInputError) as info:
        explorer.explore(_context(gboost, {"evaluation": X}, transcript))
    assert str(info.value) == NOT_ACCEPTED.format(
        explorer="logistic-level-set", model="HistGradientBoostingClassifier", reason=NOT_LINEAR
    )


# -- tree ensembles ---------------------------------------------------------------------------


def _tabular(n=360, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(5)})
    frame["c"] = rng.choice(list("abcd"), size=n)
    y = ((frame.x0 + frame.x1 * frame.x2 + (frame.c < "c")) > 0.5).astype(np.int64).to_numpy()
    spec = TabularSpec.from_frame(frame, categorical=["c"], numerical=[f"x{i}" for i in range(5)])
    return frame, y, spec


FAST = {"gboost": {"max_iter": 15}, "forest": {"n_estimators": 8}}


@pytest.fixture(params=["gboost", "forest"])
def ensemble_setup(request):
    arch = request.param
    frame, y, spec = _tabular()
    train = frame.iloc[:240].reset_index(drop=True)
    inputs = {
        "holdout": frame.iloc[240:300].reset_index(drop=True),
        "evaluation": frame.iloc[300:].reset_index(drop=True),
    }
    transcript = Transcript(train, _answers(y[:240], 2))
    calls: list[dict] = []

    def refit(t, seed):
        return fit_surrogate(t, architecture=arch, random_state=seed, input_spec=spec, **FAST[arch])

    def refit_with(t, seed, overrides):
        calls.append({"n": len(t), "seed": seed, **overrides})
        params = {**FAST[arch], **overrides}
        return fit_surrogate(t, architecture=arch, random_state=seed, input_spec=spec, **params)

    reference = refit(transcript, 5)
    ctx = {"refit": refit, "refit_with": refit_with}
    return arch, reference, transcript, inputs, ctx, calls, _zero_one(y[240:300])


def test_ensemble_zero_perturbation_reproduces_the_reference(ensemble_setup) -> None:
    # row_fraction 1, max_features 1.0 (the reference's own setting) and the reference's seed
    # refit the reference exactly. Catches subsampling rows at fraction 1, or overriding a
    # forest's max_features="sqrt" by 1.0 (its share is relative to the reference's).
    _, reference, transcript, inputs, ctx, calls, _ = ensemble_setup
    explorer = EnsembleExplorer(row_fraction=1.0, max_features=1.0)
    context = _context(reference, inputs, transcript, **ctx)
    fit = explorer.fit_member(context, reference_seed(reference), np.random.default_rng(0))
    for rows in inputs.values():
        np.testing.assert_array_equal(fit.model.predict_proba(rows), reference.predict_proba(rows))
    assert fit.n_rows == fit.n_unique_rows == len(transcript)
    assert fit.max_features is None
    assert not calls


def test_ensemble_members_differ_and_use_row_and_feature_subsampling(ensemble_setup) -> None:
    # Catches members that are copies of the reference, seeds that repeat or equal the
    # reference's, row subsamples of the wrong size (or drawn with replacement), and
    # max_features never reaching the family.
    arch, reference, transcript, inputs, ctx, calls, _ = ensemble_setup
    explorer = EnsembleExplorer(n_members=3, row_fraction=0.75, max_features=0.5)
    cands = explorer.explore(_context(reference, inputs, transcript, **ctx))
    params = cands.params
    assert len(cands) == 4
    assert bool(params["reference"][0])
    np.testing.assert_array_equal(
        cands.output("evaluation")[0], reference.predict_proba(inputs["evaluation"])
    )
    seeds = list(params["seed"][1:])
    assert len(set(seeds)) == 3
    assert reference_seed(reference) not in seeds
    assert list(params["n_rows"]) == [240, 180, 180, 180]
    assert list(params["n_unique_rows"][1:]) == [180, 180, 180]
    share = feature_share(reference.model_)
    D = reference.model_.n_features_in_
    assert share == (1.0 if arch == "gboost" else int(np.sqrt(D)) / D)
    np.testing.assert_allclose(params["max_features"][1:], 0.5 * share)
    assert [c["max_features"] for c in calls] == [0.5 * share] * 3
    assert [c["n"] for c in calls] == [180] * 3
    out = cands.output("evaluation")
    for m in range(1, 4):
        assert not np.array_equal(out[m], out[0])
    # Feature subsampling alone (every row, the reference's seed) changes the model.
    alone = EnsembleExplorer(row_fraction=1.0, max_features=0.3).fit_member(
        _context(reference, inputs, transcript, **ctx),
        reference_seed(reference),
        np.random.default_rng(0),
    )
    assert alone.model.model_.max_features == pytest.approx(0.3 * share)
    assert not np.array_equal(
        alone.model.predict_proba(inputs["evaluation"]),
        reference.predict_proba(inputs["evaluation"]),
    )


def test_ensemble_bootstrap_same_seed_and_the_filter(ensemble_setup) -> None:
    # Bootstrap rows repeat (catches drawing without replacement); the same audit seed gives
    # the same set (catches a global generator); the ε filter applied to the candidates keeps
    # exactly those within ε of the reference under the criterion built here.
    _, reference, transcript, inputs, ctx, _calls, criterion = ensemble_setup
    explorer = EnsembleExplorer(n_members=2, bootstrap=True, row_fraction=1.0)
    a = explorer.explore(_context(reference, inputs, transcript, seed=3, **ctx))
    b = explorer.explore(_context(reference, inputs, transcript, seed=3, **ctx))
    np.testing.assert_array_equal(a.output("evaluation"), b.output("evaluation"))
    pd.testing.assert_frame_equal(a.params, b.params)
    assert (a.params["n_rows"][1:] == 240).all()
    assert (a.params["n_unique_rows"][1:] < 240).all()
    losses = criterion(a)
    kept = rashomon_set({"transcript": losses}, epsilon=0.02)
    np.testing.assert_array_equal(kept.members, np.flatnonzero(losses <= losses[0] + 0.02 + 1e-12))
    assert 0 in kept.members


def test_ensemble_chunks_and_refusals() -> None:
    # Catches chunks beyond the memory bound, accepting a non-ensemble, and silently ignoring
    # max_features when the audit cannot pass overrides.
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 4))
    y = (X[:, 0] > 0).astype(np.int64)
    transcript = Transcript(X, _answers(y, 2))

    def refit(t, seed):
        return fit_surrogate(t, architecture="gboost", random_state=seed, max_iter=5)

    reference = refit(transcript, 0)
    inputs = {"evaluation": X[:50]}
    explorer = EnsembleExplorer(n_members=4, max_features=1.0)
    ctx = _context(reference, inputs, transcript, refit=refit, max_chunk_bytes=2 * 50 * 2 * 8)
    chunks = list(explorer.explore_chunks(ctx))
    assert [len(c) for c in chunks] == [2, 2, 1]
    with pytest.raises(InvalidInputError) as refused:
        list(EnsembleExplorer(n_members=1).explore_chunks(ctx))
    assert str(refused.value) == NO_REFIT_WITH.format(value=0.8)
    for model in (
        LogisticRegression().fit(X, y),
        DecisionTreeClassifier().fit(X, y),
        TorchMLPClassifier((), epochs=1, min_steps=1).fit(X, y),
    ):
        assert explorer.accepts(model) == NOT_ENSEMBLE
    with pytest.raises(InvalidInputError) as info:
        explorer.explore(_context(LogisticRegression().fit(X, y), inputs, transcript, refit=refit))
    assert str(info.value) == NOT_ACCEPTED.format(
        explorer="ensemble", model="LogisticRegression", reason=NOT_ENSEMBLE
    )
    assert explorer.refits is True


def test_forest_family_trains_and_predicts() -> None:
    # Catches a missing zoo entry or defaults that are not the documented ones.
    assert "forest" in MODELS
    frame, y, spec = _tabular(n=300)
    X = np.asarray(frame[[f"x{i}" for i in range(5)]])
    model = train_target("forest", X[:200], y[:200], random_state=0, n_estimators=20)
    assert isinstance(model, RandomForestClassifier)
    assert (model.min_samples_leaf, model.n_jobs) == (2, 1)
    assert MODELS["forest"].factory().n_estimators == 200
    proba = model.predict_proba(X[200:])
    assert proba.shape == (100, 2)
    assert (proba.argmax(axis=1) == y[200:]).mean() > 0.6
    pipe = make_pipeline("forest", spec, n_classes=2, random_state=0, n_estimators=10)
    pipe.fit(frame.iloc[:200], y[:200])
    assert pipe.predict_proba(frame.iloc[200:]).shape == (100, 2)
    assert EnsembleExplorer().accepts(pipe) is None
