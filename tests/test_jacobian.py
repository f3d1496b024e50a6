"""Jacobian-based dataset augmentation (Papernot et al. 2017): the step, the budget, the
raw domain."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from torch import nn

from multisteal.attacks.base import AttackContext, Transcript
from multisteal.attacks.jacobian import (
    BAD_LAMBDA,
    BAD_MAX_ROUNDS,
    BAD_SEED_SIZE,
    BAD_TAU,
    NO_TORCH_MODULE,
    NOT_TEXT,
    POOL_TOO_SMALL_FOR_SEED,
    SEED_TOO_SMALL,
    JacobianAttack,
    jacobian_augment,
    step_size,
)
from multisteal.data.inputs import ColumnSpec, ImageSpec, TabularSpec, TextSpec
from multisteal.data.preprocessing import TabularPreprocessor
from multisteal.errors import InvalidInputError
from multisteal.models.mlp import TorchMLPClassifier
from multisteal.models.pipeline import ImageEncoder, InputPipeline
from multisteal.models.torch_base import TorchClassifier
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI
from multisteal.surrogates import fit_surrogate

SPEC = TabularSpec(
    (
        ColumnSpec("x", "numerical", low=0.0, high=10.0),
        ColumnSpec("n", "numerical", low=0.0, high=20.0, integer=True),
        ColumnSpec("c", "categorical", ("a", "b", "c", "d")),
    )
)
IMAGES = ImageSpec(8, 6, 3, 0.0, 1.0)


def _tabular_target(n_classes: int = 3) -> InputPipeline:
    rng = np.random.default_rng(0)
    X = SPEC.sample(600, rng)
    score = (X["x"] - 5.0) / 3 + (X["n"] - 10.0) / 6 + X["c"].map({"a": 1.0, "b": -1.0}).fillna(0)
    y = np.digitize(score, [-0.5, 0.5] if n_classes == 3 else [0.0]).astype(np.int64)
    return make_pipeline("logistic", SPEC).fit(X, y)


def _fit_mlp(spec: Any) -> Any:
    def fit(transcript: Transcript, seed: int) -> Any:
        return fit_surrogate(
            transcript, architecture="mlp", input_spec=spec, random_state=seed, epochs=2,
            min_steps=30,
        )  # fmt: skip

    return fit


def _linear_network(weight: NDArray[np.float64], bias: NDArray[np.float64]) -> TorchMLPClassifier:
    """A torch logistic regression with the given weights (class k's logit: W[k]·x + b[k])."""
    c, d = weight.shape
    rng = np.random.default_rng(0)
    model = TorchMLPClassifier(hidden_layer_sizes=(), n_classes=c, epochs=1, min_steps=1)
    model.fit(rng.standard_normal((4, d)), np.arange(4) % c)
    layer = next(m for m in model.module_.modules() if isinstance(m, nn.Linear))
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
        layer.bias.copy_(torch.tensor(bias, dtype=torch.float32))
    return model


def _fixed(surrogate: Any) -> Any:
    def fit(transcript: Transcript, seed: int) -> Any:
        return surrogate

    return fit


def _expected_records(
    frame: pd.DataFrame, labels: NDArray[np.int64], W: NDArray[np.float64], lam: float, groups: Any
) -> pd.DataFrame:
    """The step by hand: the gradient of class k's logit of a linear network is W[k]."""
    out = frame.copy()
    cols = dict(groups)
    categories = ("a", "b", "c", "d")
    for i, k in enumerate(labels):
        w = W[k]
        out.loc[i, "x"] = np.clip(frame.loc[i, "x"] + lam * 10.0 * np.sign(w[cols["x"][0]]), 0, 10)
        units = max(1.0, np.floor(abs(lam) * 20.0 + 0.5))
        moved = frame.loc[i, "n"] + np.sign(lam) * units * np.sign(w[cols["n"][0]])
        out.loc[i, "n"] = np.clip(moved, 0, 20)
        block = w[cols["c"]]
        current = block[categories.index(frame.loc[i, "c"])]
        best = int(np.argmax(block)) if lam > 0 else int(np.argmin(block))
        if (lam > 0 and block[best] > current) or (lam < 0 and block[best] < current):
            out.loc[i, "c"] = categories[best]
    return out


# -- the step ---------------------------------------------------------------------------------


def test_the_periodic_step_size_flips_every_tau_rounds() -> None:
    assert [step_size(0.1, 1, r) for r in range(4)] == [0.1, -0.1, 0.1, -0.1]
    assert [step_size(0.2, 3, r) for r in range(7)] == [0.2, 0.2, 0.2, -0.2, -0.2, -0.2, 0.2]


def test_every_augmented_record_is_the_hand_computed_step_of_its_parent() -> None:
    """A fixed linear surrogate, 3 classes, tau=1: rounds step +λ, −λ, +λ along W[oracle label]
    (numbers, whole numbers at least one unit, categories), clipped to the spec."""
    pool = SPEC.sample(50, np.random.default_rng(1))
    encoder = TabularPreprocessor(categorical=["c"], numerical=["x", "n"]).fit(pool)
    W = np.array(
        [
            [1.0, -1.0, 0.5, -2.0, 3.0, 0.1],
            [-1.0, 1.0, -0.3, 2.0, -1.0, 0.4],
            [0.5, 0.5, 0.9, 0.0, -0.5, -0.9],
        ]
    )
    surrogate = InputPipeline.from_fitted(
        encoder, _linear_network(W, np.zeros(3)), n_classes=3, columns=np.arange(3)
    )
    api = LocalQueryAPI(_tabular_target(3), budget=32, output="label", input_spec=SPEC)
    context = AttackContext(api, np.random.default_rng(2), pool=pool, fit=_fixed(surrogate))
    transcript = JacobianAttack(lambda_=0.13, tau=1, seed_size=4, max_rounds=3).run(context)
    assert api.ledger.used == 32 == len(transcript)
    labels = transcript.answers.labels
    assert len(set(labels.tolist())) > 1  # the oracle's class decides the gradient
    frame = SPEC.validate(transcript.queries)
    for rho, n in enumerate((4, 8, 16)):
        lam = step_size(0.13, 1, rho)
        parents = frame.iloc[:n].reset_index(drop=True)
        expected = _expected_records(parents, labels[:n], W, lam, encoder.feature_groups_)
        got = frame.iloc[n : 2 * n].reset_index(drop=True)
        pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    # the step really moves records, both ways
    assert (frame["x"].iloc[4:8].to_numpy() != frame["x"].iloc[:4].to_numpy()).any()


def test_a_categorical_step_goes_to_the_category_with_the_largest_gradient() -> None:
    pool = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "n": [0.0, 5, 10, 20], "c": list("abcd")})
    encoder = TabularPreprocessor(categorical=["c"], numerical=["x", "n"]).fit(pool)
    #            x    n    a    b    c    d
    W = np.array([[0.0, 0.0, 0.2, -1.0, 2.0, 0.5]])
    W = np.vstack([W, -W])
    surrogate = InputPipeline.from_fitted(
        encoder, _linear_network(W, np.zeros(2)), n_classes=2, columns=np.arange(2)
    )
    X = pool.assign(x=5.0, n=10.0)
    up = jacobian_augment(surrogate, X, np.zeros(4, dtype=np.int64), step=0.1, spec=SPEC)
    assert list(up["c"]) == ["c", "c", "c", "c"]  # the largest component, 2.0 at "c"
    down = jacobian_augment(surrogate, X, np.zeros(4, dtype=np.int64), step=-0.1, spec=SPEC)
    assert list(down["c"]) == ["b", "b", "b", "b"]  # the smallest, -1.0 at "b"
    other = jacobian_augment(surrogate, X, np.ones(4, dtype=np.int64), step=0.1, spec=SPEC)
    assert list(other["c"]) == ["b", "b", "b", "b"]  # class 1's gradient is -W[0]
    # a zero gradient in x and n leaves them where they are
    assert list(up["x"]) == [5.0] * 4
    assert list(up["n"]) == [10.0] * 4
    # a record already at the best category keeps it
    at_best = X.assign(c="c")
    assert list(jacobian_augment(surrogate, at_best, np.zeros(4, np.int64), step=0.1, spec=SPEC)["c"]) == ["c"] * 4  # fmt: skip


def test_an_encoded_vector_api_gets_x_plus_lambda_sign_of_the_gradient() -> None:
    rng = np.random.default_rng(3)
    X = rng.standard_normal((300, 4))
    target = LogisticRegression().fit(X, (X[:, 0] - X[:, 2] > 0).astype(int))
    W = np.array([[1.0, -2.0, 0.5, -0.1], [-0.3, 0.2, -0.4, 0.9]])
    api = LocalQueryAPI(target, budget=12, output="top-k")
    context = AttackContext(
        api, np.random.default_rng(4), pool=X, fit=_fixed(_linear_network(W, np.zeros(2)))
    )
    transcript = JacobianAttack(lambda_=0.25, tau=1, seed_size=3, max_rounds=2).run(context)
    assert api.ledger.used == 12
    Q, labels = np.asarray(transcript.queries), transcript.answers.labels
    np.testing.assert_allclose(Q[3:6], Q[:3] + 0.25 * np.sign(W[labels[:3]]))
    np.testing.assert_allclose(Q[6:12], Q[:6] - 0.25 * np.sign(W[labels[:6]]))
    assert transcript.source_index is None  # augmented points are not the pool's


# -- images ------------------------------------------------------------------------------------


class _Bright:
    """A raw-image target: bright images are class 1."""

    classes_ = np.arange(2)

    def fit(self, X: Any, y: Any) -> _Bright:
        return self

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        z = (np.asarray(X, dtype=np.float64).reshape(len(X), -1).mean(axis=1) - 0.5) * 20
        p = 1 / (1 + np.exp(-z))
        return np.column_stack([1 - p, p])


def _flat_linear(weight: NDArray[np.float64]) -> Any:
    def factory(shape: tuple[int, ...], n_classes: int, generator: torch.Generator) -> nn.Module:
        layer = nn.Linear(int(np.prod(shape)), n_classes)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor(weight, dtype=torch.float32))
            layer.bias.zero_()
        return nn.Sequential(nn.Flatten(), layer)

    return factory


def test_image_steps_follow_the_gradient_in_channels_last_layout_and_are_clipped() -> None:
    rng = np.random.default_rng(5)
    pool = IMAGES.sample(40, rng)
    encoder = ImageEncoder().fit(pool)
    C, H, Wd = 3, 8, 6
    weight = rng.standard_normal((2, C * H * Wd))
    network = TorchClassifier(_flat_linear(weight), n_classes=2, epochs=1, min_steps=1, lr=0.0)
    network.fit(encoder.transform(pool[:4]), np.array([0, 1, 0, 1]))
    surrogate = InputPipeline.from_fitted(encoder, network, n_classes=2, columns=np.arange(2))
    api = LocalQueryAPI(_Bright(), budget=20, output="label", input_spec=IMAGES)
    context = AttackContext(api, np.random.default_rng(6), pool=pool, fit=_fixed(surrogate))
    transcript = JacobianAttack(lambda_=0.3, tau=2, seed_size=5, max_rounds=2).run(context)
    Q, labels = np.asarray(transcript.queries), transcript.answers.labels
    assert api.ledger.used == 20 == Q.shape[0]
    assert Q.min() >= 0.0
    assert Q.max() <= 1.0
    for parents, children in ((slice(0, 5), slice(5, 10)), (slice(0, 10), slice(10, 20))):
        sign = np.sign(weight[labels[parents]].reshape(-1, C, H, Wd).transpose(0, 2, 3, 1))
        np.testing.assert_allclose(Q[children], np.clip(Q[parents] + 0.3 * sign, 0.0, 1.0))
    assert ((Q[5:] == 0.0) | (Q[5:] == 1.0)).any()  # some pixels were clipped


def test_a_cnn_surrogate_on_grey_images_spends_the_budget_within_range() -> None:
    grey = ImageSpec(8, 8, 0, 0.0, 255.0)
    pool = grey.sample(30, np.random.default_rng(7))

    def fit(transcript: Transcript, seed: int) -> Any:
        return fit_surrogate(
            transcript, architecture="cnn", input_spec=grey, random_state=seed, epochs=1,
            min_steps=5, channels=(4,), hidden=8,
        )  # fmt: skip

    api = LocalQueryAPI(_Bright(), budget=25, output="probabilities", input_spec=grey)
    context = AttackContext(api, np.random.default_rng(8), pool=pool, fit=fit)
    Q = np.asarray(JacobianAttack(lambda_=0.5).run(context).queries)
    assert api.ledger.used == 25
    assert Q.shape == (25, 8, 8)
    assert Q.min() >= 0.0
    assert Q.max() <= 255.0
    # a half-range step pushes about half the pixels of uniform noise past a bound: clipped
    assert ((Q[20:] == 0.0) | (Q[20:] == 255.0)).mean() > 0.3


# -- the loop -----------------------------------------------------------------------------------


@pytest.mark.parametrize("output", ["label", "probabilities", "rounded"])
def test_it_spends_the_budget_exactly_with_valid_records(output: str) -> None:
    pool = SPEC.sample(200, np.random.default_rng(9))
    api = LocalQueryAPI(_tabular_target(), budget=70, output=output, input_spec=SPEC)
    context = AttackContext(api, np.random.default_rng(10), pool=pool, fit=_fit_mlp(SPEC))
    transcript = JacobianAttack().run(context)
    assert api.ledger.used == 70 == len(transcript)
    frame = SPEC.validate(transcript.queries)  # every record is in the domain
    n = frame["n"].to_numpy()
    assert np.all(n == np.round(n))
    assert n.min() >= 0
    assert n.max() <= 20
    seed = 30  # 10 per class of the 3
    known = SPEC.validate(pool)
    assert len(frame.iloc[:seed].merge(known, how="inner")) == seed
    assert len(frame.iloc[seed:].merge(known, how="inner")) < 10  # the rest are new points


def test_the_seed_set_comes_from_the_pool_and_is_deterministic_under_the_seed() -> None:
    pool = SPEC.sample(200, np.random.default_rng(11))

    def run(seed: int) -> pd.DataFrame:
        api = LocalQueryAPI(_tabular_target(), budget=50, output="label", input_spec=SPEC)
        context = AttackContext(api, np.random.default_rng(seed), pool=pool, fit=_fit_mlp(SPEC))
        return SPEC.validate(JacobianAttack(seed_size=10, max_rounds=3).run(context).queries)

    first, again, other = run(12), run(12), run(13)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)
    seeds = first.iloc[:10]
    assert len(seeds.merge(SPEC.validate(pool), how="inner")) == 10


# -- refusals ------------------------------------------------------------------------------------


def test_it_refuses_before_any_query() -> None:
    pool = SPEC.sample(20, np.random.default_rng(14))
    target = _tabular_target()

    def context(budget: int, fit: Any = None, spec: Any = SPEC, pool: Any = pool) -> Any:
        api = LocalQueryAPI(target, budget=budget, output="label", input_spec=spec)
        return api, AttackContext(api, np.random.default_rng(0), pool=pool, fit=fit)

    api, ctx = context(500)
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack(seed_size=5, max_rounds=3).run(ctx)
    assert str(info.value) == SEED_TOO_SMALL.format(seed=5, reach=40, rounds=3, budget=500, size=20)
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack(max_rounds=3).run(ctx)  # the default seed needs 63 > 20 pool inputs
    assert str(info.value) == SEED_TOO_SMALL.format(
        seed=20, reach=160, rounds=3, budget=500, size=20
    )
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack(seed_size=25).run(ctx)
    assert str(info.value) == POOL_TOO_SMALL_FOR_SEED.format(seed=25, size=20)
    assert api.ledger.used == 0

    texts = np.array(["good film", "bad film"], dtype=object)
    text_api = LocalQueryAPI(
        make_pipeline("tfidf-logistic", TextSpec()).fit(texts, np.array([0, 1])),
        budget=4,
        input_spec=TextSpec(),
    )
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack().run(AttackContext(text_api, np.random.default_rng(0), pool=texts))
    assert str(info.value) == NOT_TEXT

    sklearn_fit = lambda t, s: make_pipeline("logistic", SPEC).fit(t.queries, t.answers.labels)  # noqa: E731
    api, ctx = context(8, fit=sklearn_fit)
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack(seed_size=4).run(ctx)
    assert str(info.value) == NO_TORCH_MODULE.format(model="LogisticRegression")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"lambda_": 0.0}, BAD_LAMBDA.format(value=0.0)),
        ({"lambda_": float("nan")}, BAD_LAMBDA.format(value=float("nan"))),
        ({"tau": 0}, BAD_TAU.format(value=0)),
        ({"seed_size": 0}, BAD_SEED_SIZE.format(value=0)),
        ({"max_rounds": 1.5}, BAD_MAX_ROUNDS.format(value=1.5)),
    ],
)
def test_bad_parameters_are_named(params: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        JacobianAttack(**params)
    assert str(info.value) == message


def test_a_whole_number_column_moves_at_least_one_unit_and_stays_whole() -> None:
    pool = pd.DataFrame({"x": [1.0, 2.0], "n": [0.0, 20.0], "c": ["a", "b"]})
    encoder = TabularPreprocessor(categorical=["c"], numerical=["x", "n"]).fit(pool)
    W = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0]])
    surrogate = InputPipeline.from_fitted(
        encoder, _linear_network(W, np.zeros(2)), n_classes=2, columns=np.arange(2)
    )
    X = pool.assign(n=[7.0, 20.0])
    moved = jacobian_augment(surrogate, X, np.array([0, 0]), step=0.01, spec=SPEC)
    assert list(moved["n"]) == [8.0, 20.0]  # 0.01 · 20 rounds to 0: one unit; clipped at 20
    back = jacobian_augment(surrogate, X, np.array([0, 1]), step=0.01, spec=SPEC)
    assert list(back["n"]) == [8.0, 19.0]  # class 1's gradient points the other way
