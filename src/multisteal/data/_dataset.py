"""The in-memory form of a tabular dataset."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from multisteal.errors import DataError, InvalidInputError

__all__ = ["TabularDataset"]

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

    def __len__(self) -> int:
        return len(self.features)

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TabularDataset:
        """Return the rows at ``indices`` (positions, e.g. ``Splits.target_train``).

        The result has a fresh ``RangeIndex``; every other attribute is kept.
        """
        n = len(self)
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.int64)
        if idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise InvalidInputError(BAD_SUBSET_MSG.format(n=n))
        if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
            raise InvalidInputError(BAD_SUBSET_MSG.format(n=n))
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
