"""Streaming multiplicity metrics equal the in-memory ones; convergence curves are right."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal import metrics
from multisteal.errors import InvalidInputError
from multisteal.metrics.streaming import (
    StreamingMultiplicity,
    convergence_summary,
    settled,
)


def _random_members(rng: np.random.Generator, M: int, N: int, C: int) -> np.ndarray:
    logits = rng.normal(size=(1, N, C)) * 2 + rng.normal(size=(M, N, C)) * 0.7
    P = np.exp(logits)
    P /= P.sum(axis=2, keepdims=True)
    # some samples on which every member agrees exactly
    P[:, : N // 10] = P[:1, : N // 10]
    return P


def _stream(P, y, refs, C, chunks, **kwargs) -> StreamingMultiplicity:
    acc = StreamingMultiplicity(labels=y, references=refs, n_classes=C, **kwargs)
    for part in np.array_split(P, chunks):
        acc.update(part)
    return acc


@pytest.mark.parametrize(("M", "N", "C", "chunks"), [(1, 7, 2, 1), (17, 40, 2, 5), (30, 25, 4, 7)])
@pytest.mark.parametrize("n_orders", [0, 6])
@pytest.mark.parametrize("capacity", ["reference", "exact"])
def test_streaming_equals_in_memory(M, N, C, chunks, n_orders, capacity) -> None:
    """Catches: a wrong merge of chunks (variance combined naively, min/max not carried,
    flags reset per chunk), the reference member missing from the full set, orders that
    change the full-set value."""
    rng = np.random.default_rng(M * 1000 + N)
    P = _random_members(rng, M, N, C)
    y = rng.integers(0, C, size=N)
    t, s = rng.integers(0, C, size=N), metrics.decisions(P[0])
    acc = _stream(
        P,
        y,
        {"target": t, "surrogate": s},
        C,
        chunks,
        capacity=capacity,
        n_orders=n_orders,
        rng=np.random.default_rng(1),
    )
    d = metrics.decisions(P)
    got = acc.per_sample()
    np.testing.assert_array_equal(got["ambiguous_vs_target"], metrics.ambiguous_samples(d, t))
    np.testing.assert_array_equal(got["ambiguous_vs_surrogate"], metrics.ambiguous_samples(d, s))
    np.testing.assert_allclose(
        got["disagreement"], metrics.disagreement(d, n_classes=C), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        got["viable_prediction_range"], metrics.viable_prediction_range(P, y), rtol=0, atol=1e-12
    )
    np.testing.assert_allclose(
        got["score_variance"], metrics.score_variance(P, y), rtol=0, atol=1e-12
    )
    assert np.all(got["score_variance"][: N // 10] == 0.0)
    np.testing.assert_allclose(
        got["rashomon_capacity"], metrics.rashomon_capacity(P, method=capacity), rtol=0, atol=1e-12
    )
    scalars = acc.scalars()
    assert scalars["ambiguity[target]"] == pytest.approx(metrics.ambiguity(d, t), abs=1e-12)
    assert scalars["discrepancy[target]"] == pytest.approx(metrics.discrepancy(d, t), abs=1e-12)
    assert scalars["discrepancy[surrogate]"] == pytest.approx(metrics.discrepancy(d, s), abs=1e-12)
    rates = acc.per_member()["disagreement_rate[target]"]
    np.testing.assert_allclose(rates, 1 - metrics.member_agreement(d, t), atol=1e-12)


def test_convergence_curves_match_subsets() -> None:
    """Every point of a curve is the metric of the subset {key < fraction}: recomputed here
    from scratch with the in-memory metrics. Catches: buckets combined in the wrong order,
    prefix of the wrong side, member values not subset, sizes miscounted."""
    rng = np.random.default_rng(5)
    M, N, C = 60, 30, 3
    P = _random_members(rng, M, N, C)
    y = rng.integers(0, C, size=N)
    t = rng.integers(0, C, size=N)
    s = metrics.decisions(P[0])
    fairness = rng.normal(size=M)
    fairness[[3, 17, 40]] = np.nan  # a member too small a cell could carry: left out
    fractions = (0.125, 0.25, 0.5, 1.0)

    def accumulator() -> StreamingMultiplicity:
        return StreamingMultiplicity(
            labels=y,
            references={"target": t, "surrogate": s},
            n_classes=C,
            capacity="reference",
            n_orders=4,
            fractions=fractions,
            rng=np.random.default_rng(2),
        )

    acc = accumulator()
    for part, values in zip(np.array_split(P, 4), np.array_split(fairness, 4), strict=True):
        acc.update(part, member_values={"dp": values})
    curves = acc.convergence()
    keys = np.random.default_rng(2)
    drawn = [keys.random((len(part), 4)).T for part in np.array_split(P, 4)]
    drawn[0][:, 0] = 0.0
    key = np.concatenate(drawn, axis=1)
    # Keys do not depend on the chunking: one chunk gives the same curves.
    one = accumulator()
    one.update(P, member_values={"dp": fairness})
    pd.testing.assert_frame_equal(one.convergence(), curves, atol=1e-12)
    for o in range(4):
        for f in fractions:
            chosen = key[o] < f
            sub, d = P[chosen], metrics.decisions(P[chosen])
            assert chosen[0]  # the reference member is in every subset
            want = {
                "ambiguity[target]": metrics.ambiguity(d, t),
                "discrepancy[target]": metrics.discrepancy(d, t),
                "ambiguity[surrogate]": metrics.ambiguity(d, s),
                "discrepancy[surrogate]": metrics.discrepancy(d, s),
                "disagreement_mean": metrics.disagreement(d, n_classes=C).mean(),
                "viable_prediction_range_mean": metrics.viable_prediction_range(sub, y).mean(),
                "score_variance_mean": metrics.score_variance(sub, y).mean(),
                "dp_range": np.ptp(fairness[chosen & np.isfinite(fairness)]),
            }
            if o < 3:  # capacity is retained: computed for the first orders only
                want["rashomon_capacity_mean"] = metrics.rashomon_capacity(sub).mean()
            else:
                assert "rashomon_capacity_mean" not in set(curves["metric"][curves["order"] == o])
            rows = curves[(curves["order"] == o) & (curves["fraction"] == f)]
            assert set(rows["size"]) == {chosen.sum()}
            got = dict(zip(rows["metric"], rows["value"], strict=True))
            for name, value in want.items():
                assert got[name] == pytest.approx(value, abs=1e-12), (o, f, name)
    smallest = curves[curves["fraction"] == fractions[0]]
    assert (smallest["size"] >= 1).all()


def test_settled_and_summary() -> None:
    """A curve that still climbs between M/2 and M is not settled; a flat one is."""
    rows = []
    for o in range(3):
        for f, climbing, flat in [(0.25, 0.1, 0.3), (0.5, 0.2, 0.3), (1.0, 0.4, 0.3)]:
            rows.append(
                {"metric": "climb", "order": o, "fraction": f, "size": f * 8, "value": climbing}
            )
            rows.append(
                {
                    "metric": "flat",
                    "order": o,
                    "fraction": f,
                    "size": f * 8,
                    "value": flat + o * 1e-5,
                }
            )
    curves = pd.DataFrame(rows)
    table = settled(curves, min_members=1).set_index("metric")
    assert not table.loc["climb", "settled"]
    assert table.loc["climb", "change"] == pytest.approx(0.2)
    assert table.loc["climb", "tolerance"] == pytest.approx(0.05 * 0.4)
    assert table.loc["flat", "settled"]
    # Too few members (8 at f = 1 here) for the default minimum of 8? 8 is enough; 7 is not.
    assert settled(curves).set_index("metric").loc["flat", "settled"] == True  # noqa: E712
    fewer = curves.assign(size=curves["size"] * 7 / 8)
    assert settled(fewer).set_index("metric").loc["flat", "settled"] is None
    # A falling curve is as unsettled as a rising one.
    falling = curves.assign(value=np.where(curves["metric"] == "climb", 1 - curves["value"], 0.3))
    assert not settled(falling, min_members=1).set_index("metric").loc["climb", "settled"]
    # RC's floor is 1: the relative tolerance is taken on its excess over 1. RC 1.04 at half and
    # 1.06 at all members moves by 0.02 > 5 % of 0.06, but < 5 % of 1.06.
    rc = pd.DataFrame(
        [
            {"metric": "rc", "order": 0, "fraction": f, "size": f * 8, "value": v}
            for f, v in [(0.5, 1.04), (1.0, 1.06)]
        ]
    )
    assert not settled(rc, lower_bounds={"rc": 1.0}).set_index("metric").loc["rc", "settled"]
    assert settled(rc).set_index("metric").loc["rc", "settled"]
    summary = convergence_summary(curves)
    half = summary[(summary["metric"] == "flat") & (summary["fraction"] == 0.5)].iloc[0]
    assert half["low"] <= half["value"] <= half["high"]
    assert half["orders"] == 3


def test_bad_inputs() -> None:
    y = np.zeros(3, dtype=int)
    with pytest.raises(InvalidInputError, match="capacity must be one of"):
        StreamingMultiplicity(labels=y, references={}, n_classes=2, capacity="fast")
    acc = StreamingMultiplicity(labels=y, references={}, n_classes=2)
    with pytest.raises(InvalidInputError, match=r"shape \(members, 3, 2\)"):
        acc.update(np.zeros((2, 4, 2)))
    with pytest.raises(InvalidInputError, match="No member"):
        acc.per_sample()
    for fractions in ([0.5], [0.5, 0.25, 1.0], [0.0, 0.5, 1.0], [0.25, 1.0]):
        with pytest.raises(InvalidInputError, match="fractions"):
            StreamingMultiplicity(
                labels=y, references={}, n_classes=2, n_orders=2, fractions=fractions
            )
    for orders in (-1, True, 2.5):
        with pytest.raises(InvalidInputError, match="n_orders"):
            StreamingMultiplicity(labels=y, references={}, n_classes=2, n_orders=orders)
    with pytest.raises(InvalidInputError, match="member value 'dp'"):
        acc.update(np.full((2, 3, 2), 0.5), member_values={"dp": np.zeros(3)})
    small = StreamingMultiplicity(
        labels=y, references={}, n_classes=3, capacity="exact", max_retained_bytes=100
    )
    with pytest.raises(InvalidInputError, match="needs every member's probabilities"):
        small.update(np.full((2, 3, 3), 1 / 3))


def test_exact_binary_capacity_curve_from_running_extremes() -> None:
    """With two classes the exact mode keeps no member: every point of the RC curve comes
    from running extremes and equals the exact capacity of that subset, for every order."""
    rng = np.random.default_rng(9)
    P = _random_members(rng, 40, 20, 2)
    y = rng.integers(0, 2, size=20)
    acc = _stream(
        P,
        y,
        {},
        2,
        3,
        capacity="exact",
        n_orders=5,
        fractions=(0.25, 0.5, 1.0),
        rng=np.random.default_rng(4),
    )
    assert acc._retained == []
    keys = np.random.default_rng(4)
    drawn = [keys.random((len(part), 5)).T for part in np.array_split(P, 3)]
    drawn[0][:, 0] = 0.0
    key = np.concatenate(drawn, axis=1)
    curves = acc.convergence()
    rc = curves[curves["metric"] == "rashomon_capacity_mean"]
    assert set(rc["order"]) == set(range(5))
    for _, row in rc.iterrows():
        chosen = key[int(row["order"])] < row["fraction"]
        want = metrics.rashomon_capacity(P[chosen], method="exact").mean()
        assert row["value"] == pytest.approx(want, abs=1e-12)
