"""Turning a features table into a float32 model-input matrix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from multisteal.errors import InvalidInputError, NotFittedError

__all__ = ["TabularPreprocessor"]

MISSING_CATEGORY = "missing"

NOT_A_DATAFRAME_MSG = "TabularPreprocessor expects a pandas DataFrame; got {type}."
EMPTY_FIT_MSG = "TabularPreprocessor cannot be fitted on 0 rows."
NO_COLUMNS_MSG = "TabularPreprocessor has no columns to encode."
COLUMN_NOT_FOUND_MSG = "Column {column!r} not found in the data. Available columns: {available}."
OVERLAP_MSG = "Columns listed as both categorical and numerical: {columns}."
NOT_NUMERIC_MSG = (
    "Numerical column {column!r} has non-numeric values; list it in `categorical` instead."
)
MISSING_NUMERIC_MSG = (
    "Numerical column {column!r} has {count} missing value(s); impute or drop them before "
    "preprocessing."
)
NOT_FITTED_MSG = "This TabularPreprocessor is not fitted yet; call fit(features) first."
BAD_MAX_CATEGORIES_MSG = "max_categories must be a whole number >= 2 or None; got {value!r}."
OTHER_CATEGORY = "(other)"


def _is_numeric(series: pd.Series) -> bool:
    return bool(pd.api.types.is_numeric_dtype(series)) and not pd.api.types.is_bool_dtype(series)


class TabularPreprocessor(BaseEstimator):  # type: ignore[misc]
    """One-hot encode categoricals and standardise numericals, column by column.

    Follows the scikit-learn estimator contract: ``__init__`` only stores its arguments,
    :meth:`fit` returns ``self`` and learned attributes end in ``_``.

    **Fit it on the target-train split only** (``dataset.subset(splits.target_train)``): the
    categories and the scaling statistics are then the target model's, and nothing about the
    attacker pool or the evaluation rows leaks into the encoding.

    Encoding:

    * categorical column → one-hot block with one output column per category seen in the
      training rows (sorted). Values are compared as strings; a missing value (NaN/None) is the
      category ``"missing"``. A category not seen at fit time encodes as all zeros.
    * numerical column → ``(x - mean) / std`` with the training mean and population standard
      deviation (``ddof=0``; a constant column gets scale 1). Missing numerical values are
      **not** imputed: fit and transform raise :class:`InvalidInputError` naming the column.

    Output columns follow the order of the input columns (each categorical's block at the
    column's place). Columns listed in neither ``categorical`` nor ``numerical`` are ignored
    when both lists are given.

    Args:
        categorical: categorical columns; ``None`` infers them from the dtype (anything that is
            not numeric, bool included) among the columns not in ``numerical``.
        numerical: numerical columns; ``None`` means every remaining column.
        max_categories: at most this many one-hot columns per categorical: the
            ``max_categories - 1`` most frequent training categories are kept (ties by name)
            and the rest share the category ``"(other)"``. ``None`` keeps every category.

    Attributes (after fit):
        feature_names_in_: input columns used, in output order.
        categorical_, numerical_: the columns of each kind.
        categories_: ``{column: tuple of categories}`` learned for each categorical.
        capped_: ``{column: number of distinct training values}`` for the categoricals whose
            rare categories were grouped into ``"(other)"`` (empty when none was).
        mean_, scale_: float64 arrays, one value per numerical column (``numerical_`` order).
        feature_names_out_: output column names (``"age"``, ``"sex=Female"``, …).
        feature_groups_: ``((input column, output column indices), …)`` in input order; the
            groups cover every output column exactly once.
        n_features_in_, n_features_out_: number of input columns used / output columns.
    """

    def __init__(
        self,
        categorical: Sequence[str] | None = None,
        numerical: Sequence[str] | None = None,
        max_categories: int | None = None,
    ) -> None:
        self.categorical = categorical
        self.numerical = numerical
        self.max_categories = max_categories

    # ----------------------------------------------------------------------------- helpers

    @staticmethod
    def _check_frame(X: Any) -> pd.DataFrame:
        if not isinstance(X, pd.DataFrame):
            raise InvalidInputError(NOT_A_DATAFRAME_MSG.format(type=type(X).__name__))
        frame: pd.DataFrame = X
        if not all(isinstance(c, str) for c in frame.columns):
            frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
        return frame

    @staticmethod
    def _require(X: pd.DataFrame, columns: Sequence[str]) -> None:
        for column in columns:
            if column not in X.columns:
                raise InvalidInputError(
                    COLUMN_NOT_FOUND_MSG.format(
                        column=column, available=", ".join(map(str, X.columns))
                    )
                )

    @staticmethod
    def _numeric_block(X: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
        block = np.empty((len(X), len(columns)), dtype=np.float64)
        for j, column in enumerate(columns):
            series = X[column]
            if not _is_numeric(series):
                raise InvalidInputError(NOT_NUMERIC_MSG.format(column=column))
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
            n_missing = int(np.isnan(values).sum())
            if n_missing:
                raise InvalidInputError(MISSING_NUMERIC_MSG.format(column=column, count=n_missing))
            block[:, j] = values
        return block

    @staticmethod
    def _categorical_block(
        X: pd.DataFrame, columns: Sequence[str], kept: Mapping[str, Sequence[str]] | None = None
    ) -> np.ndarray:
        block = np.empty((len(X), len(columns)), dtype=object)
        for j, column in enumerate(columns):
            series = X[column]
            values = np.where(
                series.isna().to_numpy(), MISSING_CATEGORY, series.astype(str).to_numpy()
            )
            if kept is not None and column in kept:
                values = np.where(np.isin(values, list(kept[column])), values, OTHER_CATEGORY)
            block[:, j] = values
        return block

    def _cap(self, X: pd.DataFrame, columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
        """The categories kept per capped column (the most frequent, ties by name)."""
        if self.max_categories is None:
            return {}
        if int(self.max_categories) < 2:
            raise InvalidInputError(BAD_MAX_CATEGORIES_MSG.format(value=self.max_categories))
        kept: dict[str, tuple[str, ...]] = {}
        block = self._categorical_block(X, columns)
        for j, column in enumerate(columns):
            counts = pd.Series(block[:, j]).value_counts()
            if len(counts) <= self.max_categories:
                continue
            order = sorted(counts.items(), key=lambda item: (-item[1], str(item[0])))
            kept[column] = tuple(sorted(str(v) for v, _ in order[: self.max_categories - 1]))
        return kept

    def _resolve_columns(self, X: pd.DataFrame) -> tuple[list[str], list[str]]:
        columns = [str(c) for c in X.columns]
        explicit_num = list(self.numerical) if self.numerical is not None else None
        if self.categorical is not None:
            categorical = list(self.categorical)
        else:
            skip = set(explicit_num or ())
            categorical = [c for c in columns if c not in skip and not _is_numeric(X[c])]
        if explicit_num is not None:
            numerical = explicit_num
        else:
            numerical = [c for c in columns if c not in set(categorical)]
        self._require(X, categorical + numerical)
        overlap = sorted(set(categorical) & set(numerical))
        if overlap:
            raise InvalidInputError(OVERLAP_MSG.format(columns=", ".join(overlap)))
        if not categorical and not numerical:
            raise InvalidInputError(NO_COLUMNS_MSG)
        return categorical, numerical

    # ------------------------------------------------------------------------------ API

    def fit(self, X: pd.DataFrame, y: object = None) -> TabularPreprocessor:
        """Learn categories and scaling statistics from ``X`` (the target-train rows).

        ``y`` is ignored; it is accepted for scikit-learn pipeline compatibility.
        """
        X = self._check_frame(X)
        if len(X) == 0:
            raise InvalidInputError(EMPTY_FIT_MSG)
        categorical, numerical = self._resolve_columns(X)
        kinds = set(categorical)
        order = [str(c) for c in X.columns if str(c) in kinds or str(c) in set(numerical)]

        scaler = StandardScaler()
        if numerical:
            scaler.fit(self._numeric_block(X, numerical))
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        kept = self._cap(X, categorical)
        if categorical:
            encoder.fit(self._categorical_block(X, categorical, kept))
        categories = {
            column: tuple(str(v) for v in cats)
            for column, cats in zip(
                categorical, encoder.categories_ if categorical else [], strict=True
            )
        }

        names: list[str] = []
        groups: list[tuple[str, np.ndarray]] = []
        num_index = np.empty(len(numerical), dtype=np.int64)
        cat_index: list[int] = []
        cat_start = {}
        for column in order:
            start = len(names)
            if column in kinds:
                cat_start[column] = start
                names += [f"{column}={value}" for value in categories[column]]
            else:
                num_index[numerical.index(column)] = start
                names.append(column)
            groups.append((column, np.arange(start, len(names), dtype=np.int64)))
        for column in categorical:
            cat_index += range(cat_start[column], cat_start[column] + len(categories[column]))

        self.categorical_ = tuple(categorical)
        self.numerical_ = tuple(numerical)
        self.feature_names_in_ = tuple(order)
        self.n_features_in_ = len(order)
        self.categories_ = categories
        self.capped_ = {column: int(X[column].astype(str).nunique(dropna=False)) for column in kept}
        self._kept = kept
        self.mean_ = np.asarray(scaler.mean_, dtype=np.float64) if numerical else np.zeros(0)
        self.scale_ = np.asarray(scaler.scale_, dtype=np.float64) if numerical else np.ones(0)
        self.feature_names_out_ = tuple(names)
        self.n_features_out_ = len(names)
        self.feature_groups_ = tuple(groups)
        self._scaler = scaler if numerical else None
        self._encoder = encoder if categorical else None
        self._num_index = num_index
        self._cat_index = np.asarray(cat_index, dtype=np.int64)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode ``X``; returns a ``float32`` array of shape ``(len(X), n_features_out_)``.

        Extra columns in ``X`` are ignored; a missing one is an :class:`InvalidInputError`.
        """
        if not hasattr(self, "feature_groups_"):
            raise NotFittedError(NOT_FITTED_MSG)
        X = self._check_frame(X)
        self._require(X, self.feature_names_in_)
        out = np.zeros((len(X), self.n_features_out_), dtype=np.float32)
        if self._scaler is not None and len(X):
            scaled = self._scaler.transform(self._numeric_block(X, self.numerical_))
            out[:, self._num_index] = scaled
        if self._encoder is not None and len(X):
            encoded = self._encoder.transform(
                self._categorical_block(X, self.categorical_, getattr(self, "_kept", {}))
            )
            out[:, self._cat_index] = encoded
        return out

    def fit_transform(self, X: pd.DataFrame, y: object = None) -> np.ndarray:
        """``fit(X).transform(X)``."""
        return self.fit(X, y).transform(X)

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        """Output column names as an object array (scikit-learn convention)."""
        if not hasattr(self, "feature_names_out_"):
            raise NotFittedError(NOT_FITTED_MSG)
        return np.asarray(self.feature_names_out_, dtype=object)
