"""The path-finding attack (Tramèr et al. 2016, section 4.2) on tree targets that reveal leaf ids,
and the tree family it needs (leaf ids through the pipeline, a safe artifact)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.attacks.base import AttackContext, AttackSetting, query_in_batches
from multisteal.attacks.path_finding import (
    BAD_COUNT,
    BAD_EPSILON,
    NEEDS_LEAVES,
    NO_SPEC,
    NOT_RECORDS,
    LeafBox,
    PathFindingAttack,
    check_path_finding,
    recover_tree,
)
from multisteal.data import input_spec_of, load_dataset
from multisteal.data.inputs import ColumnSpec, ImageSpec, TabularSpec
from multisteal.errors import InvalidInputError
from multisteal.models import load_model, save_model
from multisteal.models.pipeline import InputPipeline
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI
from multisteal.query.api import NO_LEAVES


@pytest.fixture(scope="module")
def german() -> tuple[pd.DataFrame, np.ndarray, TabularSpec]:
    ds = load_dataset("german_credit")
    spec = input_spec_of(ds)
    assert isinstance(spec, TabularSpec)
    return ds.features, np.asarray(ds.y), spec


@pytest.fixture(scope="module")
def tree(german) -> InputPipeline:
    """The zoo's tree family with its defaults (depth 5, 5 rows a leaf) on German credit."""
    records, y, spec = german
    return make_pipeline("tree", spec, random_state=0).fit(records, y)


def _steal(target, spec, budget: int, seed: int, **params):
    api = LocalQueryAPI(target, output="leaf", budget=budget, input_spec=spec)
    attack = PathFindingAttack(**params)
    transcript = attack.run(AttackContext(api, np.random.default_rng(seed)))
    return api, transcript, attack.solve(api, transcript)


def test_a_depth_5_tree_on_german_credit_is_recovered_exactly(german, tree) -> None:
    records, _, spec = german
    n_leaves = int(tree.model_.get_n_leaves())
    api, transcript, stolen = _steal(tree, spec, budget=20_000, seed=0)
    assert len(transcript) == api.ledger.used <= 20_000
    assert api.ledger.used < 100 * n_leaves  # about 60 queries a leaf (1,747 with seed 0)
    assert stolen.n_leaves == n_leaves
    sampled = spec.sample(20_000, np.random.default_rng(1))
    for X in (sampled, records):
        assert np.mean(stolen.predict(X) == tree.predict(X)) == 1.0
        np.testing.assert_array_equal(stolen.apply(X), tree.apply(X))
        assert stolen.covers(X).all()
        np.testing.assert_array_equal(stolen.predict_proba(X), tree.predict_proba(X).round())


def test_no_record_is_queried_twice(german, tree) -> None:
    _, _, spec = german
    _, transcript, _ = _steal(tree, spec, budget=20_000, seed=2)
    assert not transcript.queries.duplicated().any()


def test_it_is_deterministic_under_the_seed(german, tree) -> None:
    _, _, spec = german
    api_a, first, _ = _steal(tree, spec, budget=20_000, seed=3)
    api_b, second, _ = _steal(tree, spec, budget=20_000, seed=3)
    pd.testing.assert_frame_equal(first.queries, second.queries)
    assert first.answers.leaves is not None
    assert second.answers.leaves is not None
    np.testing.assert_array_equal(first.answers.leaves, second.answers.leaves)
    assert api_a.ledger.used == api_b.ledger.used


@pytest.mark.parametrize("budget", [1, 37, 300])
def test_a_too_small_budget_is_spent_and_not_exceeded(german, tree, budget: int) -> None:
    records, _, spec = german
    api, transcript, stolen = _steal(tree, spec, budget=budget, seed=4)
    assert api.ledger.used == len(transcript) == budget
    assert api.ledger.remaining == 0
    assert stolen.predict(records).shape == (len(records),)  # partial, but usable


def test_a_hand_checkable_depth_2_tree_is_recovered_box_by_box() -> None:
    # y = (x >= 10) XOR (color == red) on the whole grid: the tree splits x at 9.5, then each
    # side on red; over the published domain x in [0, 20] its four leaves are these boxes.
    spec = TabularSpec(
        (
            ColumnSpec("x", "numerical", low=0, high=20, integer=True),
            ColumnSpec("color", "categorical", ("blue", "green", "red")),
        )
    )
    x = np.repeat(np.arange(21.0), 3)
    color = np.tile(["blue", "green", "red"], 21)
    y = ((x >= 10) ^ (color == "red")).astype(np.int64)
    records = pd.DataFrame({"x": x, "color": color})
    target = make_pipeline("tree", spec, random_state=0, max_depth=2, min_samples_leaf=1)
    target.fit(records, y)
    api, transcript, stolen = _steal(target, spec, budget=1_000, seed=5, seeds_per_round=1)
    other, red = frozenset({"blue", "green"}), frozenset({"red"})
    # scikit-learn numbers nodes depth first, the "<=" side first: root 0, its left child 1
    # (x <= 9.5) with leaves 2 (not red) and 3 (red), its right child 4 with leaves 5 and 6.
    assert stolen.boxes() == {
        2: LeafBox(0, {"x": (0.0, 9.0)}, {"color": other}),
        3: LeafBox(1, {"x": (0.0, 9.0)}, {"color": red}),
        5: LeafBox(1, {"x": (10.0, 20.0)}, {"color": other}),
        6: LeafBox(0, {"x": (10.0, 20.0)}, {"color": red}),
    }
    # per leaf: both ends of x, a binary search of at most 5 probes over 21 values, the two
    # other colours; and one seed record
    assert api.ledger.used == len(transcript) <= 1 + 4 * (2 + 5 + 2)
    assert np.mean(stolen.predict(records) == y) == 1.0


def test_real_valued_columns_are_recovered_to_epsilon() -> None:
    spec = TabularSpec(
        (
            ColumnSpec("a", "numerical", low=0.0, high=1.0),
            ColumnSpec("b", "numerical", low=-5.0, high=5.0),
            ColumnSpec("c", "categorical", ("u", "v", "w", "z")),
        )
    )
    rng = np.random.default_rng(6)
    records = spec.sample(3_000, rng)
    rule = (records["a"] > 0.3) & (records["b"] < 1.7) | records["c"].isin(["u", "w"])
    y = rule.to_numpy(dtype=np.int64)
    target = make_pipeline("tree", spec, random_state=0, max_depth=4).fit(records, y)
    epsilon = 1e-3
    api, _, stolen = _steal(target, spec, budget=20_000, seed=7, epsilon=epsilon)
    assert api.ledger.used <= 20_000
    assert stolen.n_leaves == target.model_.get_n_leaves()
    # every edge of a box is an end of the column's range or within epsilon of a split
    tree_, encoder = target.model_.tree_, target.encoder_
    splits: dict[str, list[float]] = {"a": [], "b": []}
    for node in np.flatnonzero(tree_.feature >= 0):
        name = encoder.feature_names_out_[tree_.feature[node]]
        if name in splits:
            j = list(encoder.numerical_).index(name)
            splits[name].append(tree_.threshold[node] * encoder.scale_[j] + encoder.mean_[j])
    for box in stolen.boxes().values():
        for name, (low, high) in box.intervals.items():
            column = next(c for c in spec.columns if c.name == name)
            tolerance = epsilon * (column.high - column.low)
            for edge, end in ((low, column.low), (high, column.high)):
                assert edge == end or min(abs(edge - s) for s in splits[name]) <= tolerance
    sampled = spec.sample(20_000, np.random.default_rng(8))
    assert np.mean(stolen.predict(sampled) == target.predict(sampled)) >= 0.995
    assert np.mean(stolen.predict(records) == target.predict(records)) >= 0.995


def test_a_tree_target_saves_and_loads_with_its_leaves(german, tree, tmp_path) -> None:
    records, _, spec = german
    folder = save_model(tree, tmp_path / "tree", metadata={"input_spec": spec.to_dict()})
    loaded = load_model(folder)
    assert isinstance(loaded, InputPipeline)
    np.testing.assert_array_equal(loaded.predict_proba(records), tree.predict_proba(records))
    np.testing.assert_array_equal(loaded.apply(records), tree.apply(records))
    assert loaded.apply(records).dtype == np.int64
    api = LocalQueryAPI(loaded, output="leaf", budget=10, input_spec=spec)
    answer = api.query(records.iloc[:10])
    assert answer.leaves is not None
    np.testing.assert_array_equal(answer.leaves, tree.apply(records.iloc[:10]))
    assert answer.scores is None


def test_only_a_tree_pipeline_has_leaves(german, tree) -> None:
    records, y, spec = german
    mlp = make_pipeline("mlp", spec, random_state=0, epochs=1).fit(records, y)
    assert hasattr(tree, "apply")
    assert not hasattr(mlp, "apply")
    assert not hasattr(make_pipeline("tree", spec), "apply")  # not fitted yet
    with pytest.raises(InvalidInputError) as info:
        LocalQueryAPI(mlp, output="leaf", budget=10, input_spec=spec)
    assert str(info.value) == NO_LEAVES.format(cls="InputPipeline")


def test_it_refuses_before_any_query(german, tree) -> None:
    _, _, spec = german
    attack = PathFindingAttack()
    for mode in ("label", "probabilities"):
        api = LocalQueryAPI(tree, output=mode, budget=100, input_spec=spec)
        with pytest.raises(InvalidInputError) as info:
            attack.run(AttackContext(api, np.random.default_rng(0)))
        assert str(info.value) == NEEDS_LEAVES.format(mode=mode)
        assert api.ledger.used == 0
    setting = AttackSetting(modality="image", output_mode="leaf", n_classes=2, budget=10)
    with pytest.raises(InvalidInputError) as info:
        check_path_finding(setting)
    assert str(info.value) == NOT_RECORDS.format(modality="image")
    setting = AttackSetting(
        modality="tabular", output_mode="leaf", n_classes=2, budget=10, input_spec=ImageSpec(4, 4)
    )
    with pytest.raises(InvalidInputError) as info:
        check_path_finding(setting)
    assert str(info.value) == NOT_RECORDS.format(modality="image")
    setting = AttackSetting(modality="tabular", output_mode="leaf", n_classes=2, budget=10)
    with pytest.raises(InvalidInputError) as info:
        check_path_finding(setting)
    assert str(info.value) == NO_SPEC


def test_a_transcript_without_leaf_ids_is_refused(german, tree) -> None:
    records, _, spec = german
    api = LocalQueryAPI(tree, output="label", budget=5, input_spec=spec)
    transcript = query_in_batches(api, records.iloc[:5], batch_size=5)
    with pytest.raises(InvalidInputError) as info:
        recover_tree(spec, transcript, n_classes=2)
    assert str(info.value) == NEEDS_LEAVES.format(mode="label")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"epsilon": 0.0}, BAD_EPSILON.format(value=0.0)),
        ({"epsilon": 1.5}, BAD_EPSILON.format(value=1.5)),
        ({"check_samples": 0}, BAD_COUNT.format(name="check_samples", value=0)),
        ({"seeds_per_round": -1}, BAD_COUNT.format(name="seeds_per_round", value=-1)),
        ({"max_rounds": 2.5}, BAD_COUNT.format(name="max_rounds", value=2.5)),
    ],
)
def test_bad_parameters_are_named(params, message) -> None:
    with pytest.raises(InvalidInputError) as info:
        PathFindingAttack(**params)
    assert str(info.value) == message
