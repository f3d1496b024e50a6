"""The in-memory form of a dataset: the :class:`Dataset` protocol and :class:`TabularDataset`.

Every dataset type (tabular, image, text) has the same labels, sensitive attributes, class
names and official split; only its model inputs differ (``inputs``: a DataFrame of features,
an array of images, an array of texts). Code that does not look at the inputs works with any
:class:`Dataset`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from multisteal.errors import DataError, InvalidInputError

__all__ = ["MODALITIES", "PART_NAMES", "Dataset", "Modality", "TabularDataset"]

Modality = Literal["tabular", "image", "text"]
MODALITIES: tuple[Modality, ...] = ("tabular", "image", "text")
PART_NAMES = ("train", "val", "test")

LENGTH_MISMATCH_MSG = (
    "Dataset {name!r}: features have {n_features} rows but {part} has {n_other} rows."
)
BAD_LABELS_MSG = (
    "Dataset {name!r}: y must be a 1-D int64 array with values in 0..{last} (one per class name)."
)
COLUMN_KINDS_MSG = (
    "Dataset {name!r}: categorical + numerical columns must list every feature column exactly "
    "once; features: {features}; categorical: {categorical}; numerical: {numerical}."
)
BAD_POSITIVE_CLASS_MSG = (
    "Dataset {name!r}: positive_class must be a class index in 0..{last}; got {value!r}."
)
BAD_SUBSET_MSG = (
    "subset indices must be a 1-D array of integers in [-{n}, {n}) for a dataset of {n} rows."
)
BAD_PARTS_MSG = (
    "Dataset {name!r}: parts must map names among train, val, test to sorted, disjoint 1-D "
    "int64 arrays of row positions in 0..{last}; {problem}."
)
INPUTS_LENGTH_MISMATCH_MSG = (
    "Dataset {name!r}: {inputs} have {n_inputs} rows but {part} has {n_other} rows."
)
BAD_SENSITIVE_MSG = (
    "Dataset {name!r}: sensitive must be a pandas DataFrame (one column per attribute, possibly "
    "none); got {kind}."
)
BAD_CLASS_NAMES_MSG = (
    "Dataset {name!r}: class_names must be a tuple of at least two distinct strings; got {value!r}."
)

_D = TypeVar("_D", bound="Dataset")


@runtime_checkable
class Dataset(Protocol):
    """What every dataset type has (:class:`TabularDataset`, ``ImageDataset``, ``TextDataset``).

    Attributes:
        name: short dataset name.
        y: ``int64`` array of shape ``(n,)`` with class indices ``0 .. n_classes - 1``.
        sensitive: one column per sensitive attribute, string group labels, same row order as
            the inputs. It may have **no** columns (e.g. MedMNIST has no demographic data).
        class_names: readable name of each class index.
        source: where the data was read from (file paths).
        positive_class: index of the favourable outcome used by fairness metrics.
        notes: remarks on the data (limitations, rows dropped while loading, …).
        modality: ``"tabular"``, ``"image"`` or ``"text"``.
        inputs: the raw model inputs: a DataFrame (tabular) or an ``np.ndarray`` (images of
            shape ``(n, H, W)`` / ``(n, H, W, C)``; texts: a 1-D object array of ``str``).
        parts: the official split as sorted ``int64`` row positions keyed among ``"train"``,
            ``"val"``, ``"test"``; ``None`` when the data has no official split (and in every
            subset).
    """

    @property
    def name(self) -> str: ...

    @property
    def y(self) -> np.ndarray: ...

    @property
    def sensitive(self) -> pd.DataFrame: ...

    @property
    def class_names(self) -> tuple[str, ...]: ...

    @property
    def source(self) -> str: ...

    @property
    def positive_class(self) -> int: ...

    @property
    def notes(self) -> tuple[str, ...]: ...

    @property
    def modality(self) -> Modality: ...

    @property
    def inputs(self) -> pd.DataFrame | np.ndarray: ...

    @property
    def parts(self) -> Mapping[str, np.ndarray] | None: ...

    @property
    def n_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def subset(self: _D, indices: Sequence[int] | np.ndarray) -> _D: ...


def _subset_indices(indices: Sequence[int] | np.ndarray, n: int) -> np.ndarray:
    """``indices`` as a 1-D integer array of positions valid for ``n`` rows."""
    idx = np.asarray(indices)
    if idx.size == 0:
        idx = idx.astype(np.int64)
    if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
        raise InvalidInputError(BAD_SUBSET_MSG.format(n=n))
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise InvalidInputError(BAD_SUBSET_MSG.format(n=n))
    return idx


def _check_parts(name: str, parts: Mapping[str, np.ndarray] | None, n: int) -> None:
    """Refuse an official split that is not sorted, disjoint int64 positions in ``0..n-1``."""
    if parts is None:
        return

    def fail(problem: str) -> DataError:
        return DataError(BAD_PARTS_MSG.format(name=name, last=n - 1, problem=problem))

    if not isinstance(parts, Mapping):
        raise fail(f"got {type(parts).__name__}")
    seen = np.zeros(n, dtype=bool)
    for key, rows in parts.items():
        if key not in PART_NAMES:
            raise fail(f"unknown part {key!r}")
        if not isinstance(rows, np.ndarray) or rows.dtype != np.int64 or rows.ndim != 1:
            raise fail(f"part {key!r} is not a 1-D int64 array")
        if rows.size and (int(rows.min()) < 0 or int(rows.max()) >= n):
            raise fail(f"part {key!r} has positions outside 0..{n - 1}")
        if rows.size > 1 and not bool(np.all(np.diff(rows) > 0)):
            raise fail(f"part {key!r} is not sorted without repeats")
        if seen[rows].any():
            raise fail(f"part {key!r} shares rows with another part")
        seen[rows] = True


def _check_labelled_rows(
    name: str,
    *,
    inputs: str,
    n: int,
    y: np.ndarray,
    sensitive: pd.DataFrame,
    class_names: tuple[str, ...],
    positive_class: int,
    parts: Mapping[str, np.ndarray] | None,
) -> None:
    """The checks of ``ImageDataset`` and ``TextDataset`` on everything but their inputs."""
    if (
        not isinstance(class_names, tuple)
        or len(class_names) < 2
        or not all(isinstance(c, str) for c in class_names)
        or len(set(class_names)) != len(class_names)
    ):
        raise DataError(BAD_CLASS_NAMES_MSG.format(name=name, value=class_names))
    last = len(class_names) - 1
    if (
        not isinstance(y, np.ndarray)
        or y.dtype != np.int64
        or y.ndim != 1
        or (y.size and (int(y.min()) < 0 or int(y.max()) > last))
    ):
        raise DataError(BAD_LABELS_MSG.format(name=name, last=last))
    if len(y) != n:
        raise DataError(
            INPUTS_LENGTH_MISMATCH_MSG.format(
                name=name, inputs=inputs, n_inputs=n, part="y", n_other=len(y)
            )
        )
    if not isinstance(sensitive, pd.DataFrame):
        raise DataError(BAD_SENSITIVE_MSG.format(name=name, kind=type(sensitive).__name__))
    if len(sensitive) != n:
        raise DataError(
            INPUTS_LENGTH_MISMATCH_MSG.format(
                name=name, inputs=inputs, n_inputs=n, part="sensitive", n_other=len(sensitive)
            )
        )
    if (
        isinstance(positive_class, bool)
        or not isinstance(positive_class, int | np.integer)
        or not 0 <= positive_class <= last
    ):
        raise DataError(BAD_POSITIVE_CLASS_MSG.format(name=name, last=last, value=positive_class))
    _check_parts(name, parts, n)


@dataclass(frozen=True, eq=False)
class TabularDataset:
    """A cleaned tabular classification dataset.

    Attributes:
        name: short dataset name (e.g. ``"adult"``).
        features: the raw model inputs after cleaning, one row per example, with a default
            ``RangeIndex``. Categorical columns hold strings, numerical columns hold floats.
            The label is **not** a column. Sensitive attributes (or the columns they are
            derived from) stay in the features, as is usual for these fairness benchmarks;
            drop them yourself to train a "fairness through unawareness" model.
        y: ``int64`` array of shape ``(n,)`` with class indices ``0 .. n_classes - 1``.
        sensitive: one column per sensitive attribute, string group labels, same row order as
            ``features``.
        class_names: readable name of each class index.
        categorical: names of the categorical feature columns.
        numerical: names of the numerical feature columns.
        source: where the data was read from (file paths).
        positive_class: index of the favourable outcome used by fairness metrics (for example
            ``">50K"`` for Adult, ``"good"`` for German credit, ``"no recidivism"`` for
            COMPAS).
        notes: remarks on the data (e.g. rows dropped while loading).
        parts: the official split (sorted ``int64`` row positions keyed among ``"train"``,
            ``"val"``, ``"test"``), or ``None`` (the default, and always in a subset).
    """

    name: str
    features: pd.DataFrame
    y: np.ndarray
    sensitive: pd.DataFrame
    class_names: tuple[str, ...]
    categorical: tuple[str, ...]
    numerical: tuple[str, ...]
    source: str
    positive_class: int
    notes: tuple[str, ...] = ()
    parts: Mapping[str, np.ndarray] | None = None

    def __post_init__(self) -> None:
        n = len(self.features)
        if len(self.sensitive) != n:
            raise DataError(
                LENGTH_MISMATCH_MSG.format(
                    name=self.name, n_features=n, part="sensitive", n_other=len(self.sensitive)
                )
            )
        last = len(self.class_names) - 1
        y = self.y
        if (
            not isinstance(y, np.ndarray)
            or y.dtype != np.int64
            or y.ndim != 1
            or (y.size and (int(y.min()) < 0 or int(y.max()) > last))
        ):
            raise DataError(BAD_LABELS_MSG.format(name=self.name, last=last))
        if len(y) != n:
            raise DataError(
                LENGTH_MISMATCH_MSG.format(name=self.name, n_features=n, part="y", n_other=len(y))
            )
        columns = list(self.features.columns)
        kinds = list(self.categorical) + list(self.numerical)
        if sorted(kinds) != sorted(columns) or len(set(kinds)) != len(kinds):
            raise DataError(
                COLUMN_KINDS_MSG.format(
                    name=self.name,
                    features=", ".join(map(str, columns)),
                    categorical=", ".join(self.categorical),
                    numerical=", ".join(self.numerical),
                )
            )
        if not 0 <= self.positive_class <= last:
            raise DataError(
                BAD_POSITIVE_CLASS_MSG.format(name=self.name, last=last, value=self.positive_class)
            )
        _check_parts(self.name, self.parts, n)

    def __len__(self) -> int:
        return len(self.features)

    @property
    def modality(self) -> Literal["tabular"]:
        """``"tabular"``."""
        return "tabular"

    @property
    def inputs(self) -> pd.DataFrame:
        """The model inputs: :attr:`features`."""
        return self.features

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TabularDataset:
        """Return the rows at ``indices`` (positions, e.g. ``Splits.target_train``).

        The result has a fresh ``RangeIndex``; every other attribute is kept, except ``parts``
        (``None`` in a subset).
        """
        idx = _subset_indices(indices, len(self))
        return TabularDataset(
            name=self.name,
            features=self.features.iloc[idx].reset_index(drop=True),
            y=self.y[idx],
            sensitive=self.sensitive.iloc[idx].reset_index(drop=True),
            class_names=self.class_names,
            categorical=self.categorical,
            numerical=self.numerical,
            source=self.source,
            positive_class=self.positive_class,
            notes=self.notes,
        )
