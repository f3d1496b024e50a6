"""The TreeFARMS explorer: the exact Rashomon set of sparse decision trees (Xin et al. 2022).

Every TreeFARMS fit here is on 200 rows and at most 8 binary features (milliseconds); the
brute-force references enumerate all trees of depth <= 2 on the same binary features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "treefarms", reason="the optional treefarms package is not installed (multisteal[treefarms])"
)

from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from multisteal import metrics
from multisteal.attacks.base import Transcript
from multisteal.data.preprocessing import TabularPreprocessor
from multisteal.errors import InvalidInputError
from multisteal.models.pipeline import InputPipeline
from multisteal.query import Answer
from multisteal.rashomon.base import ExplorationContext, concat_candidates
from multisteal.rashomon.treefarms import (
    BAD_DEPTH,
    BAD_MULTIPLIER,
    BAD_REGULARIZATION,
    NEEDS_TREEFARMS,
    NOT_A_TREE,
    NOT_BINARY,
    Binarizer,
    TreeFarmsExplorer,
)

# λ is not a multiple of 1/n, so no objective ties the bound or a split's gain in float32.
LAM = 0.0123
MULT = 0.3
N_THRESHOLDS = 2
DEPTH_BUDGET = 3  # TreeFARMS counts a leaf as depth 1: trees of depth <= 2


def _problem(seed: int = 0, n: int = 200) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = (((X[:, 0] > 0.3) & (X[:, 1] < 0.5)) | (X[:, 2] > 1)).astype(np.int64)
    return X, np.where(rng.random(n) < 0.15, 1 - y, y)


def _context(
    surrogate: object,
    X: np.ndarray | pd.DataFrame,
    y: np.ndarray,
    inputs: dict[str, object],
    seed: int = 0,
    max_chunk_bytes: int | None = None,
) -> ExplorationContext:
    answers = Answer(labels=y, scores=None, revealed=None, mode="label")
    extra = {} if max_chunk_bytes is None else {"max_chunk_bytes": max_chunk_bytes}
    return ExplorationContext(
        surrogate,  # type: ignore[arg-type]
        inputs,
        Transcript(X, answers),
        refit=None,  # type: ignore[arg-type]
        rng=np.random.default_rng(seed),
        **extra,  # type: ignore[arg-type]
    )


def _explore(seed: int = 0, **params: object) -> tuple[object, np.ndarray, np.ndarray]:
    X, y = _problem()
    surrogate = DecisionTreeClassifier(max_depth=5, random_state=0).fit(X, y)
    explorer = TreeFarmsExplorer(
        regularization=LAM,
        depth_budget=DEPTH_BUDGET,
        rashomon_multiplier=MULT,
        n_thresholds=N_THRESHOLDS,
        **params,  # type: ignore[arg-type]
    )
    evaluation = np.random.default_rng(99).normal(size=(50, 4))
    cands = explorer.explore(
        _context(surrogate, X, y, {"train": X, "evaluation": evaluation}, seed)
    )
    return cands, X, y


def _trees(
    B: np.ndarray, y: np.ndarray, rows: np.ndarray, depth: int, treefarms_rules: bool
) -> list[tuple[int, int, np.ndarray]]:
    """(errors, leaves, predictions on ``rows``, -1 elsewhere) of every tree of depth <= depth.

    ``treefarms_rules=False``: every labelling of every leaf. ``True``: TreeFARMS' own trees —
    each leaf predicts its training majority (a tie: class 1), and no split has two leaves
    predicting the same class (a "trivial extension").
    """
    n = y.size
    ones = int(y[rows].sum())
    zeros = rows.size - ones
    out: list[tuple[int, int, np.ndarray]] = []
    for label in (0, 1):
        if treefarms_rules and label != (1 if ones >= zeros else 0):
            continue
        predictions = np.full(n, -1)
        predictions[rows] = label
        out.append((zeros if label == 1 else ones, 1, predictions))
    if depth == 0:
        return out
    for f in range(B.shape[1]):
        left = _trees(B, y, rows[B[rows, f] == 1], depth - 1, treefarms_rules)
        right = _trees(B, y, rows[B[rows, f] == 0], depth - 1, treefarms_rules)
        for e1, l1, p1 in left:
            for e2, l2, p2 in right:
                if treefarms_rules and l1 == l2 == 1 and p1.max() == p2.max():
                    continue
                out.append((e1 + e2, l1 + l2, np.where(p1 >= 0, p1, p2)))
    return out


def _objectives(trees: list[tuple[int, int, np.ndarray]], n: int) -> np.ndarray:
    return np.array([e / n + LAM * leaves for e, leaves, _ in trees])


def _binary(X: np.ndarray) -> np.ndarray:
    return Binarizer.fit(X, N_THRESHOLDS).transform(X)


def test_binarizer_hand_computed() -> None:
    """Catches: thresholds at the raw quantiles instead of between training values, ``<``
    instead of ``<=``, a one-hot column thresholded instead of kept, a constant column or a
    repeated threshold kept as a feature, NaN mapped to 1."""
    X = np.array(
        [
            # 1..8, one-hot, constant, two values
            [1, 0, 5, -1],
            [2, 1, 5, -1],
            [3, 0, 5, -1],
            [4, 0, 5, -1],
            [5, 1, 5, -1],
            [6, 0, 5, -1],
            [7, 1, 5, 2],
            [8, 0, 5, 2],
        ],
        dtype=float,
    )
    b = Binarizer.fit(X, 3, names=["a", "c=x", "k", "d"])
    # a: quantiles 2.75, 4.5, 6.25 -> midpoints above the largest value <= each: 2.5, 4.5, 6.5.
    # d: quantiles -1, -1, -0.25 -> all the midpoint 0.5 between -1 and 2, kept once.
    np.testing.assert_array_equal(b.columns, [0, 0, 0, 1, 3])
    np.testing.assert_array_equal(b.thresholds, [2.5, 4.5, 6.5, np.nan, 0.5])
    assert b.names == ("a<=2.5", "a<=4.5", "a<=6.5", "c=x", "d<=0.5")
    new = np.array([[2.5, 1, 5, 0.5], [4.6, 0, 0, 0.6], [np.nan, np.nan, 5, -7]])
    np.testing.assert_array_equal(
        b.transform(new), [[1, 1, 1, 1, 1], [0, 0, 1, 0, 0], [0, 0, 0, 0, 1]]
    )
    np.testing.assert_array_equal(b.transform(X)[:, 3], X[:, 1])
    with pytest.raises(InvalidInputError, match="binarizer was fitted on 4 columns"):
        b.transform(X[:, :3])


def test_set_contains_the_brute_force_optimum() -> None:
    """With the cap active (3 of 20+ trees), a member is the brute-force optimal tree.

    Catches: taking TreeFARMS' tree 0 as the optimum (its trees are not sorted by
    objective), a tree evaluated with swapped true/false branches or shifted feature columns,
    leaf predictions mapped to the wrong class, a capped sample that may miss the optimum."""
    cands, X, y = _explore(max_members=3)
    B = _binary(X)
    every = _trees(B, y, np.arange(y.size), 2, treefarms_rules=False)
    objective = _objectives(every, y.size)
    optimum = objective.min()
    optimal = {
        tuple(p) for (_, _, p), o in zip(every, objective, strict=True) if o <= optimum + 1e-9
    }

    params = cands.params
    decisions = metrics.decisions(cands.output("train"))
    flagged = np.flatnonzero(params["is_optimal"].to_numpy())
    assert flagged.size >= 1
    for m in flagged:
        assert tuple(decisions[m]) in optimal
        assert params["objective"][m] == pytest.approx(optimum, abs=1e-12)
    members = params.index[~params["reference"]]
    assert params["objective"][members].min() == pytest.approx(optimum, abs=1e-12)


def test_members_respect_the_bound() -> None:
    """Every member's objective, recomputed from its decisions on the training rows and its
    leaves, is within (1 + rashomon_multiplier) × the optimum and equals what TreeFARMS reports.

    Catches: regularization or the multiplier passed wrongly to TreeFARMS (an absolute bound,
    a percentage), probabilities whose argmax is not the tree's prediction (a tied leaf turned
    into class 0), a member's outputs taken from another tree."""
    cands, X, y = _explore(max_members=1000)
    every = _trees(_binary(X), y, np.arange(y.size), 2, treefarms_rules=False)
    optimum = _objectives(every, y.size).min()

    params = cands.params
    decisions = metrics.decisions(cands.output("train"))
    members = np.flatnonzero(~params["reference"].to_numpy())
    assert members.size > 5  # a set worth checking
    for m in members:
        recomputed = np.mean(decisions[m] != y) + LAM * params["leaves"][m]
        assert recomputed <= (1 + MULT) * optimum + 1e-9
        assert params["objective"][m] == pytest.approx(recomputed, abs=1e-12)
        assert params["treefarms_objective"][m] == pytest.approx(recomputed, abs=1e-6)
    assert (params["n_trees_in_set"] == members.size).all()


def test_set_is_complete() -> None:
    """The members' distinct decisions on the training rows are exactly those of all trees of
    depth <= 2 within the bound (TreeFARMS' trees: majority leaves, no trivial splits).

    Catches: members dropped or truncated without the cap, the depth budget off by one (deeper
    trees appear or depth-2 trees vanish), trees decoded from the wrong index."""
    cands, X, y = _explore(max_members=1000)
    candidates = _trees(_binary(X), y, np.arange(y.size), 2, treefarms_rules=True)
    objective = _objectives(candidates, y.size)
    bound = (1 + MULT) * objective.min()
    expected = {tuple(p) for (_, _, p), o in zip(candidates, objective, strict=True) if o <= bound}

    decisions = metrics.decisions(cands.output("train"))[1:]
    assert {tuple(d) for d in decisions} == expected


def test_same_seed_same_sample_and_the_optimum_is_always_taken() -> None:
    """With the cap active, the sample follows ``context.rng``: same seed, same members.

    Catches: sampling from a global or unseeded generator, sampling with replacement, a sample
    that may miss the optimal tree, the set's size not recorded, a sampled index decoded into
    another tree."""
    full, _, _ = _explore(max_members=1000)
    count = len(full) - 1
    assert count >= 20
    first, _, _ = _explore(seed=3, max_members=6)
    again, _, _ = _explore(seed=3, max_members=6)
    other, _, _ = _explore(seed=4, max_members=6)

    pd.testing.assert_frame_equal(first.params, again.params)
    for key in first.outputs:
        np.testing.assert_array_equal(first.output(key), again.output(key))
    assert len(first) == 7
    index = first.params["tree_index"].to_numpy()[1:]
    assert np.unique(index).size == 6
    assert ((index >= 0) & (index < count)).all()
    assert first.params["is_optimal"].any()
    assert (first.params["n_trees_in_set"] == count).all()
    assert list(index) != list(other.params["tree_index"][1:])
    # a sampled member is the full set's tree of the same index, optimal flag included
    row_of = {int(t): r for r, t in enumerate(full.params["tree_index"])}
    for m, tree in enumerate(index, start=1):
        np.testing.assert_array_equal(first.output("train")[m], full.output("train")[row_of[tree]])
        assert first.params["is_optimal"][m] == full.params["is_optimal"][row_of[tree]]


def test_non_tree_and_multiclass_surrogates_are_refused() -> None:
    """Catches: a surrogate of another family explored as if it were a tree (its encoder's
    features would be binarised and a tree set built for the wrong reference), a multi-class
    task sent to a binary-only method."""
    X, y = _problem()
    explorer = TreeFarmsExplorer()
    logistic = LogisticRegression().fit(X, y)
    assert explorer.accepts(logistic) == NOT_A_TREE.format(model="LogisticRegression")
    with pytest.raises(InvalidInputError) as error:
        explorer.explore(_context(logistic, X, y, {"train": X}))
    assert str(error.value) == (
        "The treefarms explorer cannot explore a LogisticRegression surrogate: "
        + NOT_A_TREE.format(model="LogisticRegression")
    )
    y3 = np.arange(y.size) % 3
    three = DecisionTreeClassifier(max_depth=2).fit(X, y3)
    assert explorer.accepts(three) == NOT_BINARY.format(n=3)
    with pytest.raises(InvalidInputError, match="binary classifiers only"):
        explorer.explore(_context(three, X, y3, {"train": X}))


def test_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Catches: an ImportError deep inside an audit instead of the install hint."""
    import multisteal.rashomon.treefarms as module

    explorer = TreeFarmsExplorer()
    monkeypatch.setattr(module, "treefarms_available", lambda: False)
    assert NEEDS_TREEFARMS == (
        "The treefarms explorer needs the optional treefarms package: "
        "pip install 'multisteal[treefarms]'"
    )
    X, y = _problem()
    assert explorer.accepts(DecisionTreeClassifier().fit(X, y)) == NEEDS_TREEFARMS
    with pytest.raises(InvalidInputError, match="pip install 'multisteal\\[treefarms\\]'"):
        TreeFarmsExplorer()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"regularization": 0.0}, BAD_REGULARIZATION.format(value=0.0)),
        ({"depth_budget": 0}, BAD_DEPTH.format(value=0)),
        ({"rashomon_multiplier": -0.1}, BAD_MULTIPLIER.format(value=-0.1)),
    ],
)
def test_bad_parameters(params: dict[str, object], message: str) -> None:
    """Catches: depth_budget=0 passed through (TreeFARMS reads it as *unlimited* depth)."""
    with pytest.raises(InvalidInputError) as error:
        TreeFarmsExplorer(**params)  # type: ignore[arg-type]
    assert str(error.value) == message


def test_pipeline_surrogate_in_chunks_is_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    """A zoo-style tree pipeline on raw records: the encoder's one-hot columns reach
    TreeFARMS as 0/1 features, row 0 is the reference, chunks respect ``members_per_chunk``
    and concatenate to the whole, and TreeFARMS' C++ core prints nothing.

    Catches: raw records binarised without the surrogate's encoder, a reference row that is
    not the surrogate's own outputs, chunks over the memory bound, stdout spam."""
    X, y = _problem()
    frame = pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "c": np.where(X[:, 2] > 1, "hi", "lo")})
    encoder = TabularPreprocessor(categorical=["c"], numerical=["x0", "x1"])
    surrogate = InputPipeline(encoder, DecisionTreeClassifier(max_depth=5, random_state=0))
    surrogate.fit(frame, y)
    evaluation = frame.sample(40, random_state=1).reset_index(drop=True)
    inputs = {"holdout": frame.iloc[:30], "evaluation": evaluation}
    explorer = TreeFarmsExplorer(
        regularization=LAM, depth_budget=DEPTH_BUDGET, rashomon_multiplier=0.5, n_thresholds=3
    )
    per_member = (30 + 40) * 2 * 8
    whole = explorer.explore(_context(surrogate, frame, y, inputs, 0))
    chunks = list(explorer.explore_chunks(_context(surrogate, frame, y, inputs, 0, 3 * per_member)))
    assert not capfd.readouterr().out

    assert len(whole) > 4
    assert all(len(chunk) <= 3 for chunk in chunks)
    joined = concat_candidates(chunks)
    pd.testing.assert_frame_equal(joined.params, whole.params)
    np.testing.assert_array_equal(joined.output("evaluation"), whole.output("evaluation"))
    np.testing.assert_array_equal(
        whole.output("evaluation")[0], surrogate.predict_proba(evaluation)
    )
    assert bool(whole.params["reference"][0])
    np.testing.assert_allclose(whole.output("evaluation").sum(axis=2), 1.0)
    # the categorical column is one 0/1 feature pair, the two numerical ones 3 thresholds each
    assert explorer.describe()["n_binary_features"] == 2 + 3 + 3
    assert explorer.describe()["n_trees_in_set"] == len(whole) - 1


def test_leaf_and_onehot_probabilities_decide_alike() -> None:
    """Catches: leaf frequencies whose argmax (ties to class 0) differs from TreeFARMS'
    prediction (it sends ties to class 1), one-hot outputs that are not 0/1."""
    leaf, _, _ = _explore(max_members=1000)
    onehot, _, _ = _explore(max_members=1000, probabilities="onehot")
    for key in ("train", "evaluation"):
        P_leaf, P_hot = leaf.output(key)[1:], onehot.output(key)[1:]
        np.testing.assert_array_equal(metrics.decisions(P_leaf), metrics.decisions(P_hot))
        assert np.isin(P_hot, (0.0, 1.0)).all()
        assert not np.isin(P_leaf, (0.0, 1.0)).all()


def test_one_class_transcript() -> None:
    """A tree pipeline fitted on one class (it holds a DummyClassifier) is explored: the set is
    the single leaf predicting that class.

    Catches: TreeFARMS' leaf prediction (an index among the labels it saw) read as a class
    index, which turns an all-1 transcript into a class-0 tree."""
    X, _ = _problem(n=60)
    frame = pd.DataFrame(X[:, :2], columns=["a", "b"])
    y = np.ones(60, dtype=np.int64)
    encoder = TabularPreprocessor(numerical=["a", "b"])
    surrogate = InputPipeline(encoder, DecisionTreeClassifier(), n_classes=2).fit(frame, y)
    cands = TreeFarmsExplorer().explore(_context(surrogate, frame, y, {"evaluation": frame}))
    assert len(cands) == 2
    np.testing.assert_array_equal(cands.output("evaluation")[1], np.tile([0.0, 1.0], (60, 1)))
    assert cands.params["leaves"][1] == 1
