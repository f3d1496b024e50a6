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

STREAM = [  # (x, decision) and what happens
    (0.0, 0),  # G_0 empty: joins
    (10.0, 0),  # d = 10, D_G0 empty: joins
    (4.0, 0),  # d = 4 <= T_0 = 10
    (100.0, 1),  # G_1 empty: joins
    (11.0, 0),  # d = 1
    (30.0, 0),  # d = 20 > 10: joins; D_G0 = [10, 20], T_0 = 15 - 5 = 10
    (21.0, 0),  # d = 9 <= 10
    (-12.0, 0),  # d = 12 > 10: joins; D_G0 = [10, 20, 12], T_0 = 14 - 4.32 = 9.68
    (105.0, 1),  # d = 5, D_G1 empty: joins
    (90.0, 1),  # d = 10 > T_1 = 5: joins
    (24.0, 0),  # d = 6 <= 9.68
    (45.0, 0),  # d = 15 > 9.68: joins
]


def test_growing_sets_by_hand() -> None:
    X = np.array([[x] for x, _ in STREAM])
    labels = np.array([c for _, c in STREAM])
    whole = PRADA(delta=0.5, min_distances=3)
    assert whole.observe(X, labels) is False
    one_by_one = PRADA(delta=0.5, min_distances=3)
    for i in range(len(STREAM)):
        one_by_one.observe(X[i : i + 1], labels[i : i + 1])
    D = [10.0, 4.0, 1.0, 20.0, 9.0, 12.0, 5.0, 10.0, 6.0, 15.0]
    for det in (whole, one_by_one):
        assert det.distances_ == D
        sets = det.growing_sets
        assert sorted(sets[0].ravel()) == [-12.0, 0.0, 10.0, 30.0, 45.0]
        assert sorted(sets[1].ravel()) == [90.0, 100.0, 105.0]
        assert det.n_queries_ == 12
        # W after every query from the one that brought |D| to 3 (query 5)
        assert [q for q, _ in det.history_] == [5, 6, 7, 8, 9, 10, 11, 12]
        expected = [stats.shapiro(D[:k]).statistic for k in (3, 4, 5, 6, 7, 8, 9, 10)]
        np.testing.assert_allclose([w for _, w in det.history_], expected, rtol=1e-12)
        assert det.flagged_after is None
    # W = 0.964, 0.9375, ...: with delta = 0.94 the fourth distance (query 6) flags the stream
    flagging = PRADA(delta=0.94, min_distances=3)
    assert flagging.observe(X, labels) is True
    assert flagging.flagged_after == 6


class _SlowPRADA:
    """PRADA as the paper writes it: loops, lists, nothing cached."""

    def __init__(self, delta: float, min_distances: int) -> None:
        self.delta, self.min_distances = delta, min_distances
        self.G: dict[int, list[np.ndarray]] = {}
        self.DG: dict[int, list[float]] = {}
        self.D: list[float] = []
        self.W: list[float] = []
        self.flagged_after: int | None = None
        self.n = 0

    def observe(self, x: np.ndarray, c: int) -> None:
        self.n += 1
        G, DG = self.G.setdefault(c, []), self.DG.setdefault(c, [])
        if not G:
            G.append(x)
        else:
            d = min(math.sqrt(sum((a - b) ** 2 for a, b in zip(x, g, strict=True))) for g in G)
            self.D.append(d)
            if not DG or d > np.mean(DG) - np.std(DG):
                G.append(x)
                DG.append(d)
        if len(self.D) >= self.min_distances:
            self.W.append(float(stats.shapiro(self.D[-5000:]).statistic))
            if self.W[-1] < self.delta and self.flagged_after is None:
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
    # a seed, then queries on the unit circle around it, each more than 1 away from the first
    # (the only one that joins G): every distance is 1, the most regular stream there is
    angles = np.concatenate([[0.0], np.linspace(2.2, 4.0, 30)])
    X = np.vstack([[0.0, 0.0], np.column_stack([np.cos(angles), np.sin(angles)])])
    det = PRADA(min_distances=10)
    assert det.observe(X, np.zeros(len(X), dtype=np.int64)) is True
    np.testing.assert_allclose(det.distances_, 1.0, rtol=1e-15)
    assert len(det.growing_sets[0]) == 2
    assert det.flagged_after == 11
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
    rng = np.random.default_rng(0)
    stream = pool.iloc[rng.choice(len(pool), 1500, replace=False)].reset_index(drop=True)
    for start in range(0, 1500, 100):
        api.query(stream.iloc[start : start + 100].reset_index(drop=True))
    assert isinstance(detector, PRADA)
    assert detector.n_queries_ == 1500 == api.ledger.used
    assert detector.flagged_after is None
    w = np.array([w for _, w in detector.history_])
    # measured: W = 0.59 at the first test (query 202, 200 distances) — its lowest — then
    # 0.79 after 500 queries, 0.85 after 1,000 and 0.86 after 1,500
    assert detector.history_[0][0] == DEFAULT_MIN_DISTANCES + 2  # one query per class: no d
    assert w.min() > DEFAULT_DELTA + 0.05
    assert w[-1] > 0.85
    assert not any(r.flagged for r in api.log.records)


def _attack_stream(pool_encoded: np.ndarray, seed: int, n: int) -> np.ndarray:
    """A Jacobian-style stream in the defender's encoding: 3 seed records, then rounds in which
    each walk takes a step ``x ± λ·sign(random direction)``, λ = 0.5."""
    rng = np.random.default_rng(seed)
    points = [pool_encoded[rng.choice(len(pool_encoded), 3, replace=False)]]
    while sum(len(p) for p in points) < n:
        points.append(points[-1] + 0.5 * np.sign(rng.standard_normal(points[-1].shape)))
    return np.vstack(points)[:n]


def test_a_jacobian_style_stream_is_flagged_and_then_refused(adult) -> None:
    _, target, pool = adult
    encoded = target.encode(pool.iloc[:5000]).astype(np.float64)
    stream = _attack_stream(encoded, seed=0, n=600)
    classifier = target.model_  # the target's classifier on encoded vectors
    detector = PRADA()  # encode=None: the queries are already the defender's encoding
    api = LocalQueryAPI(classifier, budget=None, detectors=[detector], refuse_when_flagged=True)
    answered = 0
    while detector.flagged_after is None:
        api.query(stream[answered : answered + 50])
        answered += 50
    with pytest.raises(QueryRefusedError) as info:
        api.query(stream[answered : answered + 50])
    # measured: W = 0.34 at the first test (200 distances); flagged right there
    assert detector.flagged_after is not None
    assert DEFAULT_MIN_DISTANCES < detector.flagged_after <= DEFAULT_MIN_DISTANCES + 3
    assert detector.history_[0][1] < 0.4
    assert str(info.value) == FLAGGED.format(detector="prada", after=detector.flagged_after)
    # the flagged batch was answered, the next one refused and not charged
    assert answered == 250 == api.ledger.used == api.log.rows_answered
    records = api.log.records
    assert records[-1].status == "refused-flagged"
    assert records[-1].used_after == 250
    assert [r.flagged for r in records[:-1]] == [False, False, False, False, True]
    assert len(api.log.answered_inputs()) == 5
    with pytest.raises(QueryRefusedError):
        api.query(stream[:1])
    assert api.ledger.used == 250


def test_without_refusing_the_flag_is_only_recorded(adult) -> None:
    _, target, pool = adult
    encoded = target.encode(pool.iloc[:5000]).astype(np.float64)
    stream = _attack_stream(encoded, seed=1, n=400)
    api = LocalQueryAPI(target.model_, budget=None, detectors=[PRADA()])
    for start in range(0, 400, 100):
        api.query(stream[start : start + 100])
    assert api.ledger.used == 400
    assert [r.flagged for r in api.log.records] == [False, False, True, True]
    assert all(r.status == "answered" for r in api.log.records)


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
