"""Seeded splits into target-train / pool / evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from multisteal.data import SPLIT_NAMES, Splits, TabularDataset, split_dataset
from multisteal.errors import InvalidInputError


def _parts(s: Splits) -> list[np.ndarray]:
    return [s.target_train, s.pool, s.evaluation]


def _check_valid(s: Splits, n: int) -> None:
    parts = _parts(s)
    for part in parts:
        assert part.dtype == np.int64
        assert part.ndim == 1
        assert np.all(np.diff(part) > 0)  # sorted and unique
        assert part.size == 0 or (part[0] >= 0 and part[-1] < n)
    together = np.concatenate(parts)
    assert len(np.unique(together)) == len(together)  # disjoint


@pytest.mark.parametrize(
    ("sizes", "expected"),
    [
        ((0.5, 0.3, 0.2), (500, 300, 200)),
        ((100, 200, 300), (100, 200, 300)),
        ({"target_train": 0.25, "pool": 400, "evaluation": 0.1}, (250, 400, 100)),
        ((0.6, 0.2, 0.2), (600, 200, 200)),
        ((0.29, 0.01, 0.7), (290, 10, 700)),
        ([1, 1, 998], (1, 1, 998)),
    ],
)
def test_requested_sizes_are_honoured(
    sizes: tuple[float, ...] | dict[str, float], expected: tuple[int, int, int]
) -> None:
    s = split_dataset(1000, sizes=sizes, seed=0)
    _check_valid(s, 1000)
    assert tuple(len(p) for p in _parts(s)) == expected


def test_fractions_that_round_up_still_fit() -> None:
    s = split_dataset(10, sizes=(0.35, 0.35, 0.3), seed=1)
    assert sum(len(p) for p in _parts(s)) == 10
    _check_valid(s, 10)
    assert tuple(len(p) for p in _parts(s)) == (4, 3, 3)
    t = split_dataset(10, sizes=(1 / 3, 1 / 3, 1 / 3), seed=1)
    assert sorted(len(p) for p in _parts(t)) == [3, 3, 4]
    u = split_dataset(10, sizes=(0.25, 0.25, 2), seed=1)
    assert tuple(len(p) for p in _parts(u)) == (3, 2, 2)


def test_reproducible_and_seed_dependent(german: TabularDataset) -> None:
    a = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=7)
    b = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=7)
    c = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=8)
    d = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=np.random.default_rng(7))
    for x, y, z, w in zip(_parts(a), _parts(b), _parts(c), _parts(d), strict=True):
        np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(x, w)
        assert not np.array_equal(x, z)
    # no global state: numpy's legacy global RNG is untouched
    state = np.random.get_state()[1].copy()  # type: ignore[index]  # noqa: NPY002
    split_dataset(100, sizes=(0.5, 0.3, 0.2), seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # type: ignore[index]  # noqa: NPY002


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_proportions(
    seed: int, adult: TabularDataset, compas: TabularDataset, german: TabularDataset
) -> None:
    for ds, sizes in [
        (adult, (0.6, 0.2, 0.2)),
        (compas, (0.5, 0.25, 0.25)),
        (german, (0.5, 0.3, 0.2)),
    ]:
        s = split_dataset(ds.y, sizes=sizes, seed=seed)
        _check_valid(s, len(ds))
        overall = ds.y.mean()
        for part in _parts(s):
            assert abs(ds.y[part].mean() - overall) < 0.01


def test_stratified_multiclass_string_labels() -> None:
    labels = np.array(["a"] * 600 + ["b"] * 300 + ["c"] * 100)
    s = split_dataset(labels, sizes=(0.5, 0.3, 0.2), seed=0)
    _check_valid(s, 1000)
    for part, size in zip(_parts(s), (500, 300, 200), strict=True):
        values, counts = np.unique(labels[part], return_counts=True)
        assert list(values) == ["a", "b", "c"]
        np.testing.assert_allclose(counts / size, [0.6, 0.3, 0.1], atol=0.01)


def test_unstratified_and_count_only() -> None:
    labels = np.repeat([0, 1], [900, 100])
    s = split_dataset(labels, sizes=(0.5, 0.3, 0.2), seed=0, stratify=False)
    _check_valid(s, 1000)
    t = split_dataset(1000, sizes=(0.5, 0.3, 0.2), seed=0)
    for x, y in zip(_parts(s), _parts(t), strict=True):
        np.testing.assert_array_equal(x, y)  # without stratification only n matters


def test_covers_all_rows_when_sizes_add_up() -> None:
    s = split_dataset(1001, sizes=(0.5, 0.3, 0.2), seed=0)
    assert sum(len(p) for p in _parts(s)) == 1001
    leftover = split_dataset(1000, sizes=(100, 100, 100), seed=0)
    assert sum(len(p) for p in _parts(leftover)) == 300


def test_sizes_too_large() -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(1000, sizes=(0.6, 0.3, 200), seed=0)
    assert str(info.value) == (
        "Requested split sizes exceed the data: target_train=600, pool=300, evaluation=200 "
        "rows (1100 in all) but only 1000 rows are available."
    )


@pytest.mark.parametrize("bad", [0, -5, 1.0, 1.5, 0.0, True, "0.5", None])
def test_bad_size_value(bad: object) -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(100, sizes=(0.5, bad, 0.2), seed=0)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"Size of 'pool' must be a fraction in (0, 1) or a positive integer row count; got {bad!r}."
    )


def test_bad_sizes_shape() -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(100, sizes=(0.5, 0.5), seed=0)
    assert str(info.value) == (
        "sizes must give three values (target_train, pool, evaluation); got 2."
    )
    with pytest.raises(InvalidInputError) as info:
        split_dataset(100, sizes={"train": 0.5, "pool": 0.2, "evaluation": 0.2}, seed=0)
    assert str(info.value) == (
        "sizes must have exactly the keys target_train, pool, evaluation; "
        "got train, pool, evaluation."
    )
    assert SPLIT_NAMES == ("target_train", "pool", "evaluation")


def test_fraction_giving_no_rows() -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(10, sizes=(0.5, 0.01, 0.2), seed=0)
    assert str(info.value) == "Size of 'pool' (0.01) gives 0 of the 10 rows."


@pytest.mark.parametrize(
    ("bad", "got"),
    [(0, "0"), (-3, "-3"), (np.zeros((4, 2)), "an array of shape (4, 2)"), ([], "no labels")],
)
def test_bad_n(bad: object, got: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(bad, sizes=(0.5, 0.3, 0.2), seed=0)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"n_or_labels must be a positive row count or a 1-D array of labels; got {got}."
    )


def test_bad_seed() -> None:
    with pytest.raises(InvalidInputError) as info:
        split_dataset(10, sizes=(0.5, 0.3, 0.2), seed=None)  # type: ignore[arg-type]
    assert str(info.value) == "seed must be an int or a numpy.random.Generator; got NoneType."


def test_subset_with_splits(german: TabularDataset) -> None:
    s = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=0)
    train = german.subset(s.target_train)
    assert len(train) == 500
    np.testing.assert_array_equal(train.y, german.y[s.target_train])
