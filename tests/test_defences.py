"""Score-perturbing defences (Gaussian noise, reverse sigmoid, high confidence, MAD), their
composition with the rounding / top-k / label-only defences, and the defence registry."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from multisteal.data import input_spec_of, load_dataset
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import make_pipeline
from multisteal.params import BAD_PARAM, MALFORMED, UNKNOWN_PARAM
from multisteal.query import LocalQueryAPI
from multisteal.query import perturbations as pt
from multisteal.query.api import effective_output_mode
from multisteal.query.defences import (
    DEFENCES,
    UNKNOWN_DEFENCE,
    LabelOnlyDefence,
    RoundingDefence,
    TopKDefence,
    make_defence,
    make_defences,
    parse_defence,
)
from multisteal.query.outputs import Answer, LabelOnly, TopK, full_answer
from multisteal.query.perturbations import MAD, GaussianNoise, HighConfidence, ReverseSigmoid


def _probabilities(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return rng.dirichlet(np.full(c, 0.7), size=n)


def _same(a: Answer, b: Answer) -> None:
    np.testing.assert_array_equal(a.labels, b.labels)
    assert (a.scores is None) == (b.scores is None)
    if a.scores is not None:
        np.testing.assert_array_equal(a.scores, b.scores)
        np.testing.assert_array_equal(a.revealed, b.revealed)
    assert a.mode == b.mode


def _label_only(p: np.ndarray) -> Answer:
    return LabelOnly().restrict(full_answer(p))


# --------------------------------------------------------------------------- every defence


@pytest.mark.parametrize("name", list(DEFENCES))
def test_every_registered_defence_keeps_the_answer_well_formed(name: str) -> None:
    p = _probabilities(np.random.default_rng(0), 50, 4)
    X = np.random.default_rng(1).normal(size=(50, 3))
    defence = make_defence(name, seed=3, model=None)
    assert defence.name == name
    answer = defence(X, full_answer(p))
    assert answer.labels.shape == (50,)
    assert answer.mode == defence.mode_after("probabilities")
    if answer.scores is not None:
        assert answer.revealed is not None
        assert answer.scores.shape == p.shape
        assert (answer.scores >= 0).all()
        assert (answer.scores[~answer.revealed] == 0).all()
        full = answer.revealed.all(axis=1) & (answer.mode != "rounded")
        np.testing.assert_allclose(answer.scores[full].sum(axis=1), 1.0, atol=1e-12)
    # a label-only answer passes every defence unchanged
    labels = _label_only(p)
    _same(defence(X, labels), labels)
    assert defence.mode_after("label") == "label"


# --------------------------------------------------------------------------- gaussian noise


def test_gaussian_noise_by_hand() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]])
    noise = np.random.default_rng(7).normal(0.0, 0.2, size=p.shape)
    clipped = np.clip(p + noise, 0.0, None)
    expected = clipped / clipped.sum(axis=1, keepdims=True)
    answer = GaussianNoise(0.2, seed=7)(None, full_answer(p))
    np.testing.assert_allclose(answer.scores, expected, rtol=1e-15)
    np.testing.assert_array_equal(answer.labels, np.argmax(expected, axis=1))
    assert answer.mode == "probabilities"
    assert answer.revealed.all()


def test_gaussian_noise_is_seeded_and_its_labels_are_the_noisy_decisions() -> None:
    p = _probabilities(np.random.default_rng(0), 400, 3)
    a1 = GaussianNoise(0.3, seed=5)(None, full_answer(p))
    a2 = GaussianNoise(0.3, seed=5)(None, full_answer(p))
    a3 = GaussianNoise(0.3, seed=6)(None, full_answer(p))
    _same(a1, a2)
    assert not np.allclose(a1.scores, a3.scores)
    np.testing.assert_array_equal(a1.labels, np.argmax(a1.scores, axis=1))
    assert (a1.labels != np.argmax(p, axis=1)).any()  # noise this large changes decisions
    # sigma = 0 changes nothing
    np.testing.assert_allclose(GaussianNoise(0.0)(None, full_answer(p)).scores, p, atol=1e-15)


def test_gaussian_noise_has_mean_zero() -> None:
    p = np.full((20_000, 4), 0.25)  # far from 0: nothing clips
    answer = GaussianNoise(0.01, seed=11)(None, full_answer(p))
    change = answer.scores - p
    assert abs(change.mean()) < 1e-4
    np.testing.assert_allclose(change.mean(axis=0), 0.0, atol=4 * 0.01 / math.sqrt(20_000))
    assert 0.005 < change.std() < 0.01  # renormalising removes part of the noise


def test_gaussian_noise_never_answers_the_true_probabilities_of_a_row_that_clips_to_zero() -> None:
    p = np.array([[0.9, 0.1]])
    # a seed whose first draw pushes both entries below 0
    seed = next(
        s for s in range(1000) if (p + np.random.default_rng(s).normal(0, 5, p.shape) < 0).all()
    )
    noisy = p + np.random.default_rng(seed).normal(0, 5, p.shape)
    answer = GaussianNoise(5.0, seed=seed)(None, full_answer(p))
    # the one-hot of the largest noisy entry: the exact probabilities would leak the model
    np.testing.assert_array_equal(answer.scores, np.eye(2)[[int(np.argmax(noisy))]])
    assert answer.labels.tolist() == [int(np.argmax(noisy))]


def test_gaussian_noise_on_a_partly_revealed_row() -> None:
    p = np.array([[0.6, 0.3, 0.1]])
    top = TopK(1).restrict(full_answer(p))  # only 0.6 revealed
    noise = np.random.default_rng(2).normal(0.0, 0.1, size=p.shape)
    answer = GaussianNoise(0.1, seed=2)(None, top)
    expected = np.array([[min(max(0.6 + noise[0, 0], 0.0), 1.0), 0.0, 0.0]])
    np.testing.assert_allclose(answer.scores, expected)
    np.testing.assert_array_equal(answer.revealed, top.revealed)
    assert answer.mode == "top-k"


# --------------------------------------------------------------------------- reverse sigmoid


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_reverse_sigmoid_by_hand() -> None:
    y = [0.7, 0.2, 0.1]
    beta, gamma = 0.3, 0.5
    raw = [v - beta * (_sigmoid(gamma * math.log(v / (1 - v))) - 0.5) for v in y]
    expected = np.array([[max(r, 0.0) for r in raw]])
    expected /= expected.sum()
    answer = ReverseSigmoid(beta, gamma)(None, full_answer(np.array([y])))
    np.testing.assert_allclose(answer.scores, expected, rtol=1e-12)
    assert answer.labels.tolist() == [0]
    # beta = 3 pushes the 0.99 entry below 0: clipped to 0, the row renormalised to [0, 1],
    # which flips the argmax; the swap gives [1, 0] back
    y2 = np.array([[0.99, 0.01]])
    raw2 = pt.reverse_sigmoid(y2, beta=3.0, gamma=1.0)
    assert raw2[0, 0] < 0 < raw2[0, 1]
    answer2 = ReverseSigmoid(3.0, 1.0)(None, full_answer(y2))
    np.testing.assert_allclose(answer2.scores, [[1.0, 0.0]])
    assert answer2.labels.tolist() == [0]


@pytest.mark.parametrize("n_classes", [2, 5])
def test_reverse_sigmoid_keeps_the_argmax(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    p = _probabilities(rng, 2000, n_classes)
    flipped_raw = 0
    for beta, gamma in [(0.2, 0.5), (0.7, 1.0), (1.0, 2.0), (3.0, 1.0), (10.0, 0.5), (5.0, 5.0)]:
        answer = ReverseSigmoid(beta, gamma)(None, full_answer(p))
        np.testing.assert_array_equal(np.argmax(answer.scores, axis=1), np.argmax(p, axis=1))
        np.testing.assert_array_equal(answer.labels, np.argmax(p, axis=1))
        np.testing.assert_allclose(answer.scores.sum(axis=1), 1.0, atol=1e-12)
        assert (answer.scores >= 0).all()
        raw = np.clip(pt.reverse_sigmoid(p, beta=beta, gamma=gamma), 0, None)
        flipped_raw += int((np.argmax(raw, axis=1) != np.argmax(p, axis=1)).sum())
    assert flipped_raw > 100  # the raw formula flips many argmaxes: the swap is exercised


def test_reverse_sigmoid_matches_the_formula_where_nothing_is_swapped() -> None:
    p = _probabilities(np.random.default_rng(3), 500, 4)
    beta, gamma = 0.6, 2.0  # beta * gamma > 1: the raw formula flips about 40% of the rows
    y = np.clip(p, 1e-6, 1 - 1e-6)
    raw = np.clip(y - beta * (1 / (1 + np.exp(-gamma * np.log(y / (1 - y)))) - 0.5), 0, None)
    expected = raw / raw.sum(axis=1, keepdims=True)
    kept = np.argmax(expected, axis=1) == np.argmax(p, axis=1)
    assert 0 < kept.sum() < len(p)  # both cases occur
    answer = ReverseSigmoid(beta, gamma)(None, full_answer(p))
    np.testing.assert_allclose(answer.scores[kept], expected[kept], rtol=1e-10)
    # swapped rows hold the same values, with the two entries exchanged
    np.testing.assert_allclose(
        np.sort(answer.scores[~kept], axis=1), np.sort(expected[~kept], axis=1), rtol=1e-10
    )


# --------------------------------------------------------------------------- high confidence


def test_high_confidence_by_hand() -> None:
    p = np.array([[0.6, 0.3, 0.1], [0.2, 0.35, 0.45], [0.34, 0.33, 0.33]])
    answer = HighConfidence(0.3)(None, full_answer(p))
    np.testing.assert_array_equal(
        answer.revealed, [[True, True, False], [False, True, True], [True, True, True]]
    )
    np.testing.assert_array_equal(
        answer.scores, [[0.6, 0.3, 0.0], [0.0, 0.35, 0.45], [0.34, 0.33, 0.33]]
    )
    assert answer.mode == "top-k"
    np.testing.assert_array_equal(answer.labels, [0, 2, 0])
    strict = HighConfidence(0.5)(None, full_answer(p))  # the decision's score always shows
    np.testing.assert_array_equal(
        strict.revealed, [[True, False, False], [False, False, True], [True, False, False]]
    )
    assert HighConfidence(1.0).mode_after("rounded") == "top-k"
    assert HighConfidence(1.0).mode_after("label") == "label"


# --------------------------------------------------------------------------- MAD


def _mad_case(seed: int, n: int = 300, c: int = 5, d: int = 6):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), _probabilities(rng, n, c)


@pytest.mark.parametrize("epsilon", [0.0, 0.05, 0.3, 1.0, 2.0])
@pytest.mark.parametrize("keep_argmax", [False, True])
def test_mad_stays_within_epsilon_and_on_the_simplex(epsilon: float, keep_argmax: bool) -> None:
    X, p = _mad_case(int(epsilon * 100) + keep_argmax)
    answer = MAD(epsilon, keep_argmax=keep_argmax, seed=1)(X, full_answer(p))
    assert (np.abs(answer.scores - p).sum(axis=1) <= epsilon + 1e-12).all()
    assert (answer.scores >= 0).all()
    np.testing.assert_allclose(answer.scores.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(answer.labels, np.argmax(answer.scores, axis=1))
    if epsilon == 0:
        np.testing.assert_array_equal(answer.scores, p)
    else:
        assert np.abs(answer.scores - p).sum(axis=1).max() > 0.99 * min(epsilon, 1.0)
    if keep_argmax:
        np.testing.assert_array_equal(answer.labels, np.argmax(p, axis=1))
    elif epsilon >= 1:
        assert (answer.labels != np.argmax(p, axis=1)).any()


def test_mad_moves_towards_its_vertex_by_the_closed_form_alpha() -> None:
    X, p = _mad_case(3)
    mad = MAD(0.4, seed=2)
    answer = mad(X, full_answer(p))
    vertex = mad.choose(p, mad.proxy_probabilities(X, p.shape[1]))
    assert set(np.unique(vertex)) <= {0.0, 1.0}  # one-hot vertices
    alpha = np.minimum(1.0, 0.4 / np.abs(vertex - p).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(answer.scores, p + alpha * (vertex - p), rtol=1e-12)


def _weight_space_objective(x: np.ndarray, W: np.ndarray, y: np.ndarray, v: np.ndarray) -> float:
    """The paper's objective with G computed by autograd on the linear softmax proxy:
    ‖Gv/‖Gv‖ − Gy/‖Gy‖‖², G's columns the gradients of log p_k w.r.t. all weights."""
    weights = torch.tensor(W, requires_grad=True)
    xt = torch.tensor(np.append(x, 1.0))
    columns = []
    for k in range(W.shape[1]):
        (grad,) = torch.autograd.grad(torch.log_softmax(xt @ weights, dim=0)[k], weights)
        columns.append(grad.reshape(-1).numpy())
    G = np.stack(columns, axis=1)
    a, b = G @ v, G @ y
    return float(np.sum((a / np.linalg.norm(a) - b / np.linalg.norm(b)) ** 2))


@pytest.mark.parametrize("keep_argmax", [False, True])
def test_mad_chooses_the_vertex_of_largest_angular_deviation(keep_argmax: bool) -> None:
    X, p = _mad_case(4, n=25, c=4, d=3)
    mad = MAD(0.5, keep_argmax=keep_argmax, seed=9)
    proxy = mad.proxy_probabilities(X, 4)
    chosen = mad.choose(p, proxy)
    W = mad.weights_
    assert W is not None
    for i in range(len(p)):
        c = int(np.argmax(p[i]))
        if keep_argmax:  # uniform mixtures over every set of classes that holds c
            others = [k for k in range(4) if k != c]
            vertices = [
                np.eye(4)[[c, *extra]].mean(axis=0)
                for size in range(4)
                for extra in itertools.combinations(others, size)
            ]
            assert len(vertices) == 8
        else:
            vertices = list(np.eye(4))
        scores = [_weight_space_objective(X[i], W, p[i], v) for v in vertices]
        assert _weight_space_objective(X[i], W, p[i], chosen[i]) == pytest.approx(max(scores))
        assert any(np.allclose(chosen[i], v) for v in vertices)
        # the class-space objective equals the weight-space one
        class_space = pt.angular_deviation(np.array([vertices]), p[i : i + 1], proxy[i : i + 1])
        np.testing.assert_allclose(class_space[0], scores, atol=1e-9)


def test_mad_keep_argmax_shrinks_alpha_on_a_tie() -> None:
    # the decision is class 1; the best candidate (e_0 + e_1)/2 ties at alpha = 1 and the tie
    # goes to class 0: alpha is shrunk just enough to keep class 1
    mad = MAD(5.0, keep_argmax=True)
    y = np.array([[0.3, 0.6, 0.1]])
    step = np.array([[0.5, 0.5, 0.0]]) - y
    scores = mad._keep_argmax(y, step, np.ones((1, 1)), y + step)
    assert np.argmax(scores) == 1
    assert scores[0, 0] == pytest.approx(0.5, abs=1e-9)
    assert scores[0, 0] < scores[0, 1]


def test_mad_uses_the_models_encoder_and_refuses_partial_answers() -> None:
    class Encoded:  # a model whose encode doubles the width
        def encode(self, X: np.ndarray) -> np.ndarray:
            return np.hstack([X, X])

    X, p = _mad_case(5, n=20, c=3, d=4)
    mad = MAD(0.2, seed=0, model=Encoded())
    mad(X, full_answer(p))
    assert mad.weights_ is not None
    assert mad.weights_.shape == (9, 3)
    with pytest.raises(InvalidInputError) as info:
        mad(X[:, :2], full_answer(p))
    assert str(info.value) == pt.MAD_WIDTH.format(expected=8, got=4)
    with pytest.raises(InvalidInputError) as info:
        mad(X, TopK(1).restrict(full_answer(p)))
    assert str(info.value) == pt.MAD_NEEDS_FULL.format(mode="top-k")
    with pytest.raises(InvalidInputError) as info:
        effective_output_mode("probabilities", [TopKDefence(1).mode_after, mad.mode_after])
    assert str(info.value) == pt.MAD_NEEDS_FULL.format(mode="top-k")
    with pytest.raises(InvalidInputError, match="needs the queries as numbers"):
        MAD(0.2)(np.array([["a", "b"]], dtype=object), full_answer(p[:1]))


def test_mad_on_records_through_the_targets_encoder() -> None:
    ds = load_dataset("german_credit")
    spec = input_spec_of(ds)
    target = make_pipeline("logistic", spec).fit(ds.features.iloc[:600], ds.y[:600])
    mad = make_defence("mad", {"epsilon": "0.3"}, seed=2, model=target)
    api = LocalQueryAPI(target, budget=None, input_spec=spec, defences=[mad])
    records = ds.features.iloc[600:700].reset_index(drop=True)
    answer = api.query(records)
    p = target.predict_proba(records)
    assert (np.abs(answer.scores - p).sum(axis=1) <= 0.3 + 1e-12).all()
    assert isinstance(mad, MAD)
    assert mad.weights_ is not None
    assert mad.weights_.shape == (target.encode(records).shape[1] + 1, 2)


# --------------------------------------------------------------------------- composition


def _by_hand(chain, X: np.ndarray, p: np.ndarray) -> Answer:
    answer = full_answer(p)
    for defence in chain:
        answer = defence(X, answer)
    return answer


def test_the_order_of_a_chain_matters() -> None:
    X, p = _mad_case(6, n=200, c=4)
    noise_then_top = [make_defence("gaussian-noise", {"sigma": "0.1"}, seed=4, model=None)]
    noise_then_top.append(make_defence("top-k", {"k": "1"}, model=None))
    top_then_noise = [TopKDefence(1), GaussianNoise(0.1, seed=4)]
    a = _by_hand(noise_then_top, X, p)
    b = _by_hand(top_then_noise, X, p)
    # by hand, step by step
    noisy = GaussianNoise(0.1, seed=4)(X, full_answer(p))
    _same(a, TopK(1).restrict(noisy))
    noise = np.random.default_rng(4).normal(0.0, 0.1, size=p.shape)
    top = TopK(1).restrict(full_answer(p))
    expected = np.where(top.revealed, np.clip(p + noise, 0.0, 1.0), 0.0)
    np.testing.assert_allclose(b.scores, expected)
    assert not np.allclose(a.scores, b.scores)
    assert (a.labels != b.labels).any()  # noise first can change the decision
    np.testing.assert_array_equal(b.labels, np.argmax(p, axis=1))  # top-1 first cannot


def test_label_only_answers_nothing_but_labels() -> None:
    X, p = _mad_case(7, n=30, c=3)
    for chain in (
        [LabelOnlyDefence()],
        [GaussianNoise(0.1, seed=1), LabelOnlyDefence()],
        [LabelOnlyDefence(), ReverseSigmoid(1.0, 1.0), MAD(0.5), HighConfidence(0.2)],
    ):
        answer = _by_hand(chain, X, p)
        assert answer.scores is None
        assert answer.revealed is None
        assert answer.mode == "label"
        assert effective_output_mode("probabilities", [d.mode_after for d in chain]) == "label"


@pytest.fixture(scope="module")
def target() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 4))
    y = np.argmax(X[:, :3] + rng.gumbel(size=(500, 3)), axis=1)
    return LogisticRegression(max_iter=1000).fit(X, y), rng.normal(size=(60, 4))


@pytest.mark.parametrize(
    ("texts", "output"),
    [
        (["reverse-sigmoid:beta=0.8", "gaussian-noise:sigma=0.05", "high-confidence"], "top-k"),
        (["mad:epsilon=0.3,keep_argmax=true", "rounding:decimals=1"], "probabilities"),
        (["gaussian-noise:sigma=0.2", "rounding:decimals=2"], "top-k"),
        (["high-confidence:cutoff=0.4", "reverse-sigmoid"], "probabilities"),
    ],
)
def test_the_api_answers_equal_the_chain_by_hand(target, texts, output) -> None:
    model, X = target
    chain = [parse_defence(text) for text in texts]
    api = LocalQueryAPI(
        model,
        output=output,
        k=2,
        budget=None,
        defences=make_defences(chain, seed=5, model=model),
    )
    first, second = api.query(X[:30]), api.query(X[30:])
    hand = make_defences(chain, seed=5, model=model)  # fresh: the same seed streams
    policy = api._policy
    for answer, rows in ((first, X[:30]), (second, X[30:])):
        expected = policy.restrict(_by_hand(hand, rows, model.predict_proba(rows)))
        _same(answer, expected)
        assert answer.mode == api.output_mode


@pytest.mark.parametrize(
    ("output", "chain", "mode"),
    [
        ("probabilities", [], "probabilities"),
        ("probabilities", [GaussianNoise(), ReverseSigmoid(), MAD()], "probabilities"),
        ("probabilities", [HighConfidence()], "top-k"),
        ("probabilities", [RoundingDefence(1), GaussianNoise()], "rounded"),
        ("probabilities", [RoundingDefence(1), HighConfidence()], "top-k"),
        ("probabilities", [HighConfidence(), RoundingDefence(1)], "top-k"),
        ("probabilities", [GaussianNoise(), LabelOnlyDefence(), MAD()], "label"),
        ("rounded", [GaussianNoise()], "rounded"),
        ("top-k", [ReverseSigmoid()], "top-k"),
        ("label", [MAD()], "label"),
        ("leaf", [GaussianNoise()], "leaf"),
        ("leaf", [HighConfidence()], "leaf"),  # hiding scores leaves the leaf ids
        ("leaf", [GaussianNoise(), LabelOnlyDefence()], "label"),
    ],
)
def test_effective_output_mode_of_chains(output, chain, mode) -> None:
    assert effective_output_mode(output, [d.mode_after for d in chain]) == mode


# --------------------------------------------------------------------------- registry errors


def test_parse_and_make_defence_errors() -> None:
    available = ", ".join(DEFENCES)
    with pytest.raises(InvalidInputError) as info:
        parse_defence("jpeg:quality=5")
    assert str(info.value) == UNKNOWN_DEFENCE.format(name="jpeg", available=available)
    with pytest.raises(InvalidInputError) as info:
        make_defence("blur", model=None)
    assert str(info.value) == UNKNOWN_DEFENCE.format(name="blur", available=available)
    with pytest.raises(InvalidInputError) as info:
        parse_defence("gaussian-noise:scale=1")
    assert str(info.value) == UNKNOWN_PARAM.format(
        owner="gaussian-noise defence", param="scale", available="sigma"
    )
    with pytest.raises(InvalidInputError) as info:
        parse_defence("mad:keep_argmax=maybe")
    assert str(info.value) == BAD_PARAM.format(
        owner="mad defence", param="keep_argmax", kind="true or false", value="maybe"
    )
    with pytest.raises(InvalidInputError) as info:
        make_defence("reverse-sigmoid", {"beta": "big"}, model=None)
    assert str(info.value) == BAD_PARAM.format(
        owner="reverse-sigmoid defence", param="beta", kind="a number", value="big"
    )
    with pytest.raises(InvalidInputError) as info:
        parse_defence("mad:epsilon")
    assert str(info.value) == MALFORMED.format(
        what="defence", text="mad:epsilon", example="reverse-sigmoid:beta=0.7"
    )
    assert parse_defence("mad:epsilon=0.5,keep_argmax=yes") == (
        "mad",
        {"epsilon": "0.5", "keep_argmax": "yes"},
    )
    built = make_defence("mad", {"epsilon": "0.5", "keep_argmax": "yes"}, seed=3, model=None)
    assert isinstance(built, MAD)
    assert built.keep_argmax is True
    assert built.seed == 3


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("gaussian-noise", {"sigma": -0.1}, pt.BAD_SIGMA.format(value=-0.1)),
        ("gaussian-noise", {"sigma": "nan"}, pt.BAD_SIGMA.format(value=float("nan"))),
        ("reverse-sigmoid", {"beta": 0}, pt.BAD_BETA.format(value=0.0)),
        ("reverse-sigmoid", {"gamma": "-1"}, pt.BAD_GAMMA.format(value=-1.0)),
        ("high-confidence", {"cutoff": 0}, pt.BAD_CUTOFF.format(value=0.0)),
        ("high-confidence", {"cutoff": "1.5"}, pt.BAD_CUTOFF.format(value=1.5)),
        ("mad", {"epsilon": -1}, pt.BAD_EPSILON.format(value=-1.0)),
        ("mad", {"epsilon": "inf"}, pt.BAD_EPSILON.format(value=float("inf"))),
    ],
)
def test_bad_defence_values_are_named(name, params, message) -> None:
    with pytest.raises(InvalidInputError) as info:
        make_defence(name, params, model=None)
    assert str(info.value) == message


def test_two_streams_of_one_service_share_mads_proxy_but_not_their_noise() -> None:
    X, p = _mad_case(6, n=30, c=3, d=4)
    chain = [("gaussian-noise", {"sigma": 0.05}), ("mad", {"epsilon": 0.3})]
    first = make_defences(chain, seed=1, model=None, service_seed=7)
    second = make_defences(chain, seed=2, model=None, service_seed=7)
    other_service = make_defences(chain, seed=1, model=None, service_seed=8)
    for defences in (first, second, other_service):
        defences[1](X, full_answer(p))  # draws the proxy
    np.testing.assert_array_equal(first[1].weights_, second[1].weights_)
    assert not np.allclose(first[1].weights_, other_service[1].weights_)
    a = first[0](X, full_answer(p)).scores
    b = second[0](X, full_answer(p)).scores
    assert not np.allclose(a, b)
