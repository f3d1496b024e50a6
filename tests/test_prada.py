"""PRADA (Juuti et al. 2019): the growing-set logic by hand and against a slow loop, the
Shapiro–Wilk flag on an attack stream but not on natural Adult records, the API refusing once
flagged, and the detector registry."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from multisteal.data import input_spec_of, load_dataset
from multisteal.errors import InvalidInputError, QueryRefusedError
from multisteal.models.zoo import make_pipeline
from multisteal.params import BAD_PARAM, UNKNOWN_PARAM
from multisteal.query import LocalQueryAPI
from multisteal.query import detection as dt
from multisteal.query.api import FLAGGED
from multisteal.query.detection import (
    DEFAULT_DELTA,
    DEFAULT_MIN_DISTANCES,
    DETECTORS,
    PRADA,
    make_detector,
    parse_detector,
)

# --------------------------------------------------------------------------- the algorithm

STREAM = [  # (x, decision) and what happens; T_c never decreases, D_{G_c} starts as [0]
    (0.0, 0),  # G_0 empty: joins; D_G0 = [0], T_0 = 0; no distance
    (10.0, 0),  # d = 10 > 0: joins; D_G0 = [0, 10]: mean 5, std 5, T_0 = max(0, 0) = 0
    (10.0, 0),  # a repeat: d = 0 <= 0, stays out
    (100.0, 1),  # G_1 empty: joins; no distance
    (4.0, 0),  # d = 4 > 0: joins; D_G0 = [0, 10, 4]: T_0 = 4.667 - 4.110 = 0.557
    (4.5, 0),  # d = 0.5 <= 0.557: stays out
    (103.0, 1),  # d = 3 > 0: joins; D_G1 = [0, 3]: T_1 = 0
    (30.0, 0),  # d = 20: joins; D_G0 = [0, 10, 4, 20]: T_0 = 8.5 - 7.533 = 0.967
    (5.2, 0),  # d = 1.2 > 0.967: joins; mean - std = -0.30 < 0.967: T_0 stays 0.967
    (6.0, 0),  # d = 0.8 <= 0.967: stays out (with T_0 recomputed it would have joined)
]


def test_growing_sets_by_hand() -> None:
    X = np.array([[x] for x, _ in STREAM])
    labels = np.array([c for _, c in STREAM])
    whole = PRADA(delta=0.5, min_distances=3)
    assert whole.observe(X, labels) is False
    one_by_one = PRADA(delta=0.5, min_distances=3)
    for i in range(len(STREAM)):
        one_by_one.observe(X[i : i + 1], labels[i : i + 1])
    D = [10.0, 0.0, 4.0, 0.5, 3.0, 20.0, 1.2, 0.8]
    for det in (whole, one_by_one):
        np.testing.assert_allclose(det.distances_, D, rtol=1e-12)
        sets = det.growing_sets
        assert sorted(sets[0].ravel()) == [0.0, 4.0, 5.2, 10.0, 30.0]
        assert sorted(sets[1].ravel()) == [100.0, 103.0]
        assert det.n_queries_ == 10
        # W once |D| exceeds min_distances = 3: from query 6 (4 distances) on; no value lies
        # beyond 3 standard deviations, so W is the plain Shapiro-Wilk statistic
        assert [q for q, _ in det.history_] == [6, 7, 8, 9, 10]
        expected = [stats.shapiro(D[:k]).statistic for k in (4, 5, 6, 7, 8)]
        np.testing.assert_allclose([w for _, w in det.history_], expected, rtol=1e-12)
        assert det.flagged_after is None
    ws = [float(w) for w in expected]
    threshold = (sorted(ws)[0] + sorted(ws)[1]) / 2  # between the lowest two W values
    flagging = PRADA(delta=threshold, min_distances=3)
    assert flagging.observe(X, labels) is True
    assert flagging.flagged_after == [6, 7, 8, 9, 10][int(np.argmin(ws))]


def test_outliers_beyond_three_sigma_are_left_out_of_w() -> None:
    rng = np.random.default_rng(3)
    values = list(rng.normal(5.0, 1.0, size=200))
    with_outlier = [*values, 60.0]
    assert dt._shapiro_w(with_outlier) == pytest.approx(stats.shapiro(values).statistic)
    assert stats.shapiro(with_outlier).statistic < 0.5  # what keeping it would have given


class _SlowPRADA:
    """PRADA as the paper and its authors' code write it: loops, lists, nothing cached."""

    def __init__(self, delta: float, min_distances: int) -> None:
        self.delta, self.min_distances = delta, min_distances
        self.G: dict[int, list[np.ndarray]] = {}
        self.DG: dict[int, list[float]] = {}
        self.T: dict[int, float] = {}
        self.D: list[float] = []
        self.W: list[float] = []
        self.flagged_after: int | None = None
        self.n = 0

    def observe(self, x: np.ndarray, c: int) -> None:
        self.n += 1
        if c not in self.G:
            self.G[c], self.DG[c], self.T[c] = [x], [0.0], 0.0
        else:
            G, DG = self.G[c], self.DG[c]
            d = min(math.sqrt(sum((a - b) ** 2 for a, b in zip(x, g, strict=True))) for g in G)
            self.D.append(d)
            if d > self.T[c]:
                G.append(x)
                DG.append(d)
                self.T[c] = max(self.T[c], float(np.mean(DG) - np.std(DG)))
        if len(self.D) > self.min_distances:
            window = np.array(self.D[-5000:])
            kept = window[np.abs(window - window.mean()) <= 3 * window.std()]
            w = 0.0 if np.ptp(kept) == 0 else float(stats.shapiro(kept).statistic)
            self.W.append(w)
            if w < self.delta and self.flagged_after is None:
                self.flagged_after = self.n


def test_the_vectorised_detector_matches_a_slow_loop() -> None:
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(500, 3)), rng.normal(size=(5, 3)).repeat(40, axis=0)])
    X[::7] = X[1::7]  # some repeated queries: distance exactly 0
    labels = rng.integers(0, 3, size=len(X))
    fast = PRADA(delta=0.96, min_distances=30)
    for start, stop in ((0, 1), (1, 38), (38, 650), (650, len(X))):  # crosses a chunk boundary
        fast.observe(X[start:stop], labels[start:stop])
    slow = _SlowPRADA(0.96, 30)
    for x, c in zip(X, labels, strict=True):
        slow.observe(x, int(c))
    np.testing.assert_allclose(fast.distances_, slow.D, rtol=1e-9, atol=1e-12)
    assert fast.distances_.count(0.0) == slow.D.count(0.0) > 0
    np.testing.assert_allclose([w for _, w in fast.history_], slow.W, rtol=1e-9)
    assert fast.flagged_after == slow.flagged_after is not None
    for c, points in fast.growing_sets.items():
        np.testing.assert_array_equal(points, np.array(slow.G[c]))


def test_equal_distances_have_w_zero() -> None:
    # a seed at the origin, then unit vectors: each is 1 from the origin and sqrt(2) from the
    # others, so every minimum distance is 1 — the most regular stream there is
    X = np.vstack([np.zeros(40), np.eye(40)])
    det = PRADA(min_distances=10)
    assert det.observe(X, np.zeros(len(X), dtype=np.int64)) is True
    np.testing.assert_allclose(det.distances_, 1.0, rtol=1e-15)
    assert len(det.growing_sets[0]) == 41  # 1 > T_0 every time (D_G0 holds the initial 0)
    assert det.flagged_after == 12  # the seed, then the 11th distance exceeds min_distances
    assert det.last_w == 0.0


def test_observe_checks_its_inputs() -> None:
    with pytest.raises(InvalidInputError) as info:
        PRADA().observe(np.zeros((3, 2)), np.zeros(2, dtype=np.int64))
    assert str(info.value) == dt.BAD_LABELS.format(n=3, m=2)
    with pytest.raises(InvalidInputError, match="needs the queries as numbers"):
        PRADA().observe(np.array([["a"], ["b"]], dtype=object), np.zeros(2, dtype=np.int64))


# --------------------------------------------------------------------------- on Adult


@pytest.fixture(scope="module")
def adult():
    ds = load_dataset("adult")
    spec = input_spec_of(ds)
    train = ds.features.iloc[:5000].reset_index(drop=True)
    target = make_pipeline("logistic", spec, n_classes=2).fit(train, ds.y[:5000])
    pool = ds.features.iloc[5000:].reset_index(drop=True)
    return spec, target, pool


def test_natural_adult_records_are_not_flagged(adult) -> None:
    spec, target, pool = adult
    detector = make_detector("prada", {}, model=target)
    api = LocalQueryAPI(target, budget=None, input_spec=spec, detectors=[detector])
    for seed in range(3):
        rng = np.random.default_rng(seed)
        stream = pool.iloc[rng.choice(len(pool), 1500, replace=False)].reset_index(drop=True)
        detector = make_detector("prada", {}, model=target)
        api = LocalQueryAPI(target, budget=None, input_spec=spec, detectors=[detector])
        for start in range(0, 1500, 100):
            api.query(stream.iloc[start : start + 100].reset_index(drop=True))
        assert isinstance(detector, PRADA)
        assert detector.n_queries_ == 1500 == api.ledger.used
        assert detector.flagged_after is None
        w = np.array([w for _, w in detector.history_])
        # measured (seeds 0-4 of 1,500 pool records, logistic or MLP target): the lowest W
        # was 0.946, the last 0.98; delta = 0.9
        assert w.min() > DEFAULT_DELTA + 0.02
        assert not any(r.flagged for r in api.log.records)


def _attack_stream(pool_encoded: np.ndarray, seed: int, n: int) -> np.ndarray:
    """A Jacobian-style stream in the defender's encoding: 3 seed records, then rounds in which
    each walk takes a step ``x ± λ·sign(random direction)``, λ = 0.5."""
    rng = np.random.default_rng(seed)
    points = [pool_encoded[rng.choice(len(pool_encoded), 3, replace=False)]]
    while sum(len(p) for p in points) < n:
        points.append(points[-1] + 0.5 * np.sign(rng.standard_normal(points[-1].shape)))
    return np.vstack(points)[:n]


def test_a_jacobian_style_stream_is_refused_from_the_batch_that_flags_it(adult) -> None:
    _, target, pool = adult
    encoded = target.encode(pool.iloc[:5000]).astype(np.float64)
    stream = _attack_stream(encoded, seed=0, n=600)
    classifier = target.model_  # the target's classifier on encoded vectors
    detector = PRADA()  # encode=None: the queries are already the defender's encoding
    api = LocalQueryAPI(classifier, budget=None, detectors=[detector], refuse_when_flagged=True)
    sent = 0
    refusal: QueryRefusedError | None = None
    while refusal is None:
        try:
            api.query(stream[sent : sent + 50])
            sent += 50
        except QueryRefusedError as exc:  # noqa: PERF203 (the loop ends here)
            refusal = exc
    assert detector.flagged_after is not None
    assert sent < detector.flagged_after <= sent + 50  # it flagged inside the refused batch
    assert str(refusal) == FLAGGED.format(detector="prada", after=detector.flagged_after)
    # the batch that made it flag was not answered, nor charged: no flagged row got out
    assert api.ledger.used == api.log.rows_answered == sent
    records = api.log.records
    assert records[-1].status == "refused-flagged"
    assert records[-1].flagged  # the log says why it was refused
    assert records[-1].used_after == sent
    assert not any(r.flagged for r in records[:-1])
    assert len(api.log.answered_inputs()) == sent // 50
    with pytest.raises(QueryRefusedError):
        api.query(stream[:1])
    assert api.ledger.used == sent


def test_one_batch_holding_the_whole_stream_is_refused_whole(adult) -> None:
    _, target, pool = adult
    encoded = target.encode(pool.iloc[:5000]).astype(np.float64)
    stream = _attack_stream(encoded, seed=0, n=600)
    api = LocalQueryAPI(target.model_, budget=600, detectors=[PRADA()], refuse_when_flagged=True)
    with pytest.raises(QueryRefusedError):
        api.query(stream)
    assert api.ledger.used == 0


def test_without_refusing_the_flag_is_only_recorded(adult) -> None:
    _, target, pool = adult
    encoded = target.encode(pool.iloc[:5000]).astype(np.float64)
    stream = _attack_stream(encoded, seed=1, n=400)
    detector = PRADA()
    api = LocalQueryAPI(target.model_, budget=None, detectors=[detector])
    for start in range(0, 400, 100):
        api.query(stream[start : start + 100])
    assert api.ledger.used == 400
    assert detector.flagged_after is not None
    flagged_batch = (detector.flagged_after - 1) // 100
    assert [r.flagged for r in api.log.records] == [i >= flagged_batch for i in range(4)]
    assert all(r.status == "answered" for r in api.log.records)


# --------------------------------------------------------------------------- the real attack


@pytest.fixture(scope="module")
def pneumonia():
    import torch

    torch.manual_seed(0)
    ds = load_dataset("pneumoniamnist")
    spec = input_spec_of(ds)
    order = np.random.default_rng(0).permutation(ds.parts["train"])
    half = len(order) // 2
    target = make_pipeline("cnn", spec, n_classes=2, random_state=0, epochs=3).fit(
        ds.images[order[:half]], ds.y[order[:half]]
    )
    return spec, target, ds.images[order[half:]]


def test_prada_flags_the_jacobian_attacker_but_not_natural_images(pneumonia) -> None:
    # PneumoniaMNIST (the PRADA paper's setting: images), delta = 0.9. Measured on seeds 0-2:
    # natural pool streams of 1,000 images have W >= 0.93 throughout; the Jacobian attacker
    # (Papernot et al.: 10 seeds per class, lambda = 0.1, tau = 3) falls to W = 0.56-0.73.
    from multisteal.attacks import AttackContext, make_attack, run_attack
    from multisteal.surrogates import fit_surrogate

    spec, target, pool = pneumonia

    def fit(transcript, seed):
        return fit_surrogate(
            transcript, architecture="cnn", input_spec=spec, random_state=seed, epochs=2
        )

    outcomes = {}
    for name in ("pool", "jacobian"):
        detector = make_detector("prada", {}, model=target)
        api = LocalQueryAPI(
            target,
            output="label",
            budget=800,
            input_spec=spec,
            detectors=[detector],
            refuse_when_flagged=True,
        )
        context = AttackContext(api, np.random.default_rng(0), pool=pool, fit=fit)
        attack = make_attack(name, **({"max_rounds": 5} if name == "jacobian" else {}))
        transcript, stop = run_attack(attack, context)
        outcomes[name] = (detector.flagged_after, stop, api.ledger.used, transcript)
    flagged, stop, used, _ = outcomes["pool"]
    assert (flagged, stop, used) == (None, "finished", 800)
    flagged, stop, used, transcript = outcomes["jacobian"]
    assert flagged is not None
    assert stop == "refused"
    assert transcript is not None
    assert len(transcript) == used < 800  # it kept what it got before the flag
    assert used < flagged


# --------------------------------------------------------------------------- registry


def test_detector_registry() -> None:
    assert set(DETECTORS) == {"prada"}
    det = make_detector("prada", {"delta": "0.7", "min_distances": "50"}, model=None)
    assert isinstance(det, PRADA)
    assert (det.delta, det.min_distances) == (0.7, 50)
    assert det.name == "prada"
    default = make_detector("prada", model=None)
    assert isinstance(default, PRADA)
    assert (default.delta, default.min_distances) == (DEFAULT_DELTA, DEFAULT_MIN_DISTANCES)
    assert parse_detector("prada:delta=0.9") == ("prada", {"delta": "0.9"})
    with pytest.raises(InvalidInputError) as info:
        make_detector("entropy", model=None)
    assert str(info.value) == dt.UNKNOWN_DETECTOR.format(name="entropy", available="prada")
    with pytest.raises(InvalidInputError) as info:
        parse_detector("prada:window=5")
    assert str(info.value) == UNKNOWN_PARAM.format(
        owner="prada detector", param="window", available="delta, min_distances"
    )
    with pytest.raises(InvalidInputError) as info:
        make_detector("prada", {"min_distances": "2.5"}, model=None)
    assert str(info.value) == BAD_PARAM.format(
        owner="prada detector", param="min_distances", kind="a whole number", value="2.5"
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"delta": 0}, dt.BAD_DELTA.format(value=0.0)),
        ({"delta": 1.5}, dt.BAD_DELTA.format(value=1.5)),
        ({"delta": "nan"}, dt.BAD_DELTA.format(value=float("nan"))),
        ({"min_distances": 2}, dt.BAD_MIN_DISTANCES.format(value=2)),
    ],
)
def test_bad_prada_values_are_named(params, message) -> None:
    with pytest.raises(InvalidInputError) as info:
        make_detector("prada", params, model=None)
    assert str(info.value) == message
