"""Seeded, disjoint splits into target-train / attacker pool / evaluation rows."""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from multisteal.errors import InvalidInputError

__all__ = ["SPLIT_NAMES", "Splits", "split_dataset"]

SPLIT_NAMES = ("target_train", "pool", "evaluation")

BAD_N_MSG = "n_or_labels must be a positive row count or a 1-D array of labels; got {value}."
BAD_SEED_MSG = "seed must be an int or a numpy.random.Generator; got {type}."
SIZES_COUNT_MSG = "sizes must give three values (target_train, pool, evaluation); got {count}."
SIZES_KEYS_MSG = "sizes must have exactly the keys target_train, pool, evaluation; got {keys}."
SIZE_VALUE_MSG = (
    "Size of {part!r} must be a fraction in (0, 1) or a positive integer row count; got {value!r}."
)
SIZE_ZERO_MSG = "Size of {part!r} ({value!r}) gives 0 of the {n} rows."
SIZES_TOO_LARGE_MSG = (
    "Requested split sizes exceed the data: target_train={target_train}, pool={pool}, "
    "evaluation={evaluation} rows ({total} in all) but only {n} rows are available."
)


@dataclass(frozen=True, eq=False)
class Splits:
    """Disjoint, sorted ``int64`` row indices of the three parts of a dataset.

    Attributes:
        target_train: rows the target (victim) model is trained on.
        pool: rows available to the attacker to build queries from.
        evaluation: rows held out for measuring fidelity, multiplicity and fairness.
    """

    target_train: np.ndarray
    pool: np.ndarray
    evaluation: np.ndarray


def _size_values(sizes: Mapping[str, float] | Sequence[float]) -> list[float]:
    if isinstance(sizes, Mapping):
        if set(sizes) != set(SPLIT_NAMES):
            raise InvalidInputError(
                SIZES_KEYS_MSG.format(keys=", ".join(map(str, sizes)) or "none")
            )
        return [sizes[name] for name in SPLIT_NAMES]
    if isinstance(sizes, (str, bytes)) or not isinstance(sizes, Sequence):
        raise InvalidInputError(SIZES_COUNT_MSG.format(count=type(sizes).__name__))
    if len(sizes) != 3:
        raise InvalidInputError(SIZES_COUNT_MSG.format(count=len(sizes)))
    return list(sizes)


def _counts(sizes: Mapping[str, float] | Sequence[float], n: int) -> list[int]:
    """Row count of each part.

    Integer sizes are taken as they are. Fractions are turned into rows by the largest
    remainder method: the parts together get ``round(sum of exact sizes)`` rows, so fractions
    that add up to 1 cover every row.
    """
    values = _size_values(sizes)
    exact: list[float] = []
    counts: list[int] = []
    fractional: list[int] = []
    for k, (part, value) in enumerate(zip(SPLIT_NAMES, values, strict=True)):
        if isinstance(value, (bool, np.bool_)):
            raise InvalidInputError(SIZE_VALUE_MSG.format(part=part, value=value))
        if isinstance(value, numbers.Integral) and int(value) >= 1:
            exact.append(float(int(value)))
            counts.append(int(value))
        elif (
            not isinstance(value, numbers.Integral)
            and isinstance(value, numbers.Real)
            and 0.0 < float(value) < 1.0
        ):
            exact.append(float(value) * n)
            counts.append(int(np.floor(exact[-1])))
            fractional.append(k)
        else:
            raise InvalidInputError(SIZE_VALUE_MSG.format(part=part, value=value))
    leftover = round(sum(exact)) - sum(counts)
    for k in sorted(fractional, key=lambda j: counts[j] - exact[j])[: max(leftover, 0)]:
        counts[k] += 1
    if sum(counts) > n:
        raise InvalidInputError(
            SIZES_TOO_LARGE_MSG.format(
                **dict(zip(SPLIT_NAMES, counts, strict=True)), total=sum(counts), n=n
            )
        )
    for part, value, count in zip(SPLIT_NAMES, values, counts, strict=True):
        if count == 0:
            raise InvalidInputError(SIZE_ZERO_MSG.format(part=part, value=value, n=n))
    return counts


def _stratified_order(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random order of the rows in which every prefix is (nearly) stratified.

    Within each class the rows are shuffled and the r-th of ``n_c`` rows gets the key
    ``(r + u) / n_c`` with ``u ~ U(0, 1)``; sorting all rows by key interleaves the classes
    evenly (systematic sampling), so any run of consecutive rows holds each class in its
    overall proportion, up to about one row per class.
    """
    _, codes = np.unique(labels, return_inverse=True)
    keys = np.empty(len(labels), dtype=np.float64)
    for c in range(int(codes.max()) + 1):
        members = np.flatnonzero(codes == c)
        members = members[rng.permutation(len(members))]
        keys[members] = (np.arange(len(members)) + rng.random(len(members))) / len(members)
    return np.argsort(keys, kind="stable")


def split_dataset(
    n_or_labels: int | Sequence[object] | np.ndarray,
    *,
    sizes: Mapping[str, float] | Sequence[float],
    seed: int | np.random.Generator,
    stratify: bool = True,
) -> Splits:
    """Split rows into disjoint target-train / attacker-pool / evaluation index arrays.

    Args:
        n_or_labels: the number of rows, or the label of every row (then the split is
            stratified by label when ``stratify`` is true).
        sizes: three sizes, as a tuple in the order ``(target_train, pool, evaluation)`` or a
            mapping with those keys. Each is a fraction in ``(0, 1)`` of all rows or an integer
            row count; fractions are rounded so that the parts' total is the nearest whole
            number of rows (fractions adding up to 1 cover every row). Together they must not
            exceed the rows available; rows left over belong to no part.
        seed: an ``int`` or a ``numpy.random.Generator``; the same seed gives the same split.
        stratify: keep the class proportions in each part (only when labels are given).

    Returns:
        :class:`Splits` with sorted ``int64`` indices.

    >>> s = split_dataset(10, sizes=(0.5, 0.3, 0.2), seed=0)
    >>> len(s.target_train), len(s.pool), len(s.evaluation)
    (5, 3, 2)
    """
    labels: np.ndarray | None
    if isinstance(n_or_labels, numbers.Integral) and not isinstance(n_or_labels, bool):
        n = int(n_or_labels)
        labels = None
    else:
        labels = np.asarray(n_or_labels)
        if labels.ndim != 1:
            raise InvalidInputError(BAD_N_MSG.format(value=f"an array of shape {labels.shape}"))
        n = len(labels)
    if n < 1:
        value = "no labels" if labels is not None else repr(n)
        raise InvalidInputError(BAD_N_MSG.format(value=value))
    if not isinstance(seed, (numbers.Integral, np.random.Generator)) or isinstance(seed, bool):
        raise InvalidInputError(BAD_SEED_MSG.format(type=type(seed).__name__))
    counts = _counts(sizes, n)
    rng = np.random.default_rng(seed)
    if labels is not None and stratify:
        order = _stratified_order(labels, rng)
    else:
        order = rng.permutation(n)
    bounds = np.cumsum([0, *counts])
    parts = [np.sort(order[bounds[k] : bounds[k + 1]]).astype(np.int64) for k in range(3)]
    return Splits(target_train=parts[0], pool=parts[1], evaluation=parts[2])
