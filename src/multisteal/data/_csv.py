"""Loading a user's own CSV file as a :class:`TabularDataset`."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from multisteal.data._dataset import TabularDataset
from multisteal.errors import DataError, DatasetNotFoundError

__all__ = ["load_csv"]

MISSING_CATEGORY = "missing"

FILE_NOT_FOUND_MSG = "CSV file {path} does not exist."
EMPTY_FILE_MSG = "{file} is empty."
NO_ROWS_MSG = "{file} has a header but no data rows."
LABEL_NOT_FOUND_MSG = "Label column {label!r} not found in {file}. Available columns: {columns}."
SENSITIVE_NOT_FOUND_MSG = (
    "Sensitive column {column!r} not found in {file}. Available columns: {columns}."
)
CATEGORICAL_NOT_FOUND_MSG = (
    "Categorical column {column!r} not found in {file}. Available columns: {columns}."
)
SENSITIVE_IS_LABEL_MSG = (
    "Column {column!r} of {file} cannot be both the label and a sensitive attribute."
)
NO_FEATURES_MSG = "{file} has no feature columns besides the label {label!r}."
MISSING_LABELS_MSG = (
    "Label column {label!r} in {file} has {count} missing value(s); drop or fill those rows first."
)
SINGLE_CLASS_MSG = (
    "Label column {label!r} in {file} has a single class ({value}); at least two classes are "
    "needed."
)
POSITIVE_LABEL_NOT_FOUND_MSG = (
    "positive_label {value!r} is not a value of label column {label!r} in {file}. Values: {values}."
)
NOT_UTF8_MSG = (
    "{file} is not valid {encoding} text (byte {byte} at position {position}); give its "
    "encoding, e.g. --encoding {suggestion}."
)
UNKNOWN_ENCODING_MSG = "Unknown text encoding {encoding!r} for {file}."
BAD_TEXT_MSG = "{file} cannot be read as {encoding} text ({problem}); check --encoding."
MALFORMED_CSV_MSG = (
    "{file} is not a well-formed CSV file ({problem}); check its separator (a comma is "
    "expected) and that every row has the header's number of fields."
)
IS_LABEL_MSG = "Column {column!r} is the label of {file}; it cannot be a {kind} feature too."
NO_NUMBERS_MSG = (
    "--numerical {column}: no value of column {column!r} in {file} is a number (e.g. {values}); "
    "it is a categorical or text column."
)
DUPLICATE_COLUMNS_MSG = "{file} has duplicate column names: {columns}. Rename them first."
INFINITE_MSG = (
    "Column {column!r} of {file} has {count} infinite value(s) (first at row {row}); replace or "
    "drop them first."
)
STRAY_STRINGS_MSG = (
    "Column {column!r} of {file} is numeric except for {count} value(s) such as {values}: it would "
    "silently become a {n_categories}-way categorical. Say what the column is: --numerical "
    "{column} (those rows are dropped, and reported) or --categorical {column}; or fix the file."
)
NUMERICAL_NOT_FOUND_MSG = (
    "Numerical column {column!r} not found in {file}. Available columns: {columns}."
)
BOTH_KINDS_MSG = "Column {column!r} cannot be both --categorical and --numerical."
COERCED_NOTE = (
    "{count} row(s) dropped because numerical column {column!r} held non-numbers ({values})"
)
NOT_NUMERIC_MSG = (
    "Column {column!r} of {file} is not numeric; list it in `categorical` to use it as a "
    "categorical feature."
)


def _as_strings(series: pd.Series) -> pd.Series:
    """String values, with missing values as the category ``"missing"``."""
    return series.astype(object).where(series.notna(), MISSING_CATEGORY).astype(str)


def _is_categorical_dtype(series: pd.Series) -> bool:
    return (
        pd.api.types.is_object_dtype(series)
        or pd.api.types.is_string_dtype(series)
        or pd.api.types.is_bool_dtype(series)
        or isinstance(series.dtype, pd.CategoricalDtype)
    )


def _refuse_stray_strings(series: pd.Series, column: str, file: str) -> None:
    """Refuse a text column whose values are numbers but for a few stray strings."""
    present = series.dropna()
    if present.empty or pd.api.types.is_bool_dtype(series):
        return
    parsed = pd.to_numeric(present.astype(str), errors="coerce")
    stray = present[parsed.isna()]
    if 0 < len(stray) < 0.5 * len(present):  # mostly numbers: a text column would be wrong
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(stray.astype(str)))[:5])
        raise DataError(
            STRAY_STRINGS_MSG.format(
                column=column,
                file=file,
                count=len(stray),
                values=examples,
                n_categories=present.astype(str).nunique(),
            )
        )


def read_csv_checked(file_path: Path, encoding: str, **read_options: Any) -> pd.DataFrame:
    """A CSV file with a header row as a DataFrame with string column names; every way it can
    fail to read (empty, wrong codec, unknown encoding, ragged rows, a repeated column name)
    is a :class:`DataError` naming the file. ``read_options`` go to ``pandas.read_csv``."""
    file = file_path.name
    try:
        header = pd.read_csv(file_path, header=None, nrows=1, encoding=encoding, dtype=str)
        raw = pd.read_csv(file_path, encoding=encoding, **read_options)
    except pd.errors.EmptyDataError as exc:
        raise DataError(EMPTY_FILE_MSG.format(file=file)) from exc
    except UnicodeDecodeError as exc:
        utf16 = exc.start == 0 and bytes(exc.object[:2]) in (b"\xff\xfe", b"\xfe\xff")
        raise DataError(
            NOT_UTF8_MSG.format(
                file=file,
                encoding=encoding,
                byte=f"0x{exc.object[exc.start]:02x}",
                position=exc.start,
                suggestion="utf-16" if utf16 else "latin-1",
            )
        ) from None
    except UnicodeError as exc:  # e.g. a UTF-16 codec on a file without a byte-order mark
        raise DataError(BAD_TEXT_MSG.format(file=file, encoding=encoding, problem=exc)) from None
    except LookupError:
        raise DataError(UNKNOWN_ENCODING_MSG.format(encoding=encoding, file=file)) from None
    except pd.errors.ParserError as exc:
        problem = str(exc).strip().splitlines()[-1]
        raise DataError(MALFORMED_CSV_MSG.format(file=file, problem=problem)) from None
    names = [str(c) for c in header.iloc[0].tolist()]
    duplicates = sorted({c for c in names if names.count(c) > 1})
    if duplicates:
        raise DataError(DUPLICATE_COLUMNS_MSG.format(file=file, columns=", ".join(duplicates)))
    raw.columns = [str(c) for c in raw.columns]
    frame: pd.DataFrame = raw
    return frame


def load_csv(
    path: str | os.PathLike[str],
    *,
    label: str,
    sensitive: str | Sequence[str],
    name: str | None = None,
    positive_label: object = None,
    categorical: Sequence[str] | None = None,
    encoding: str = "utf-8",
    numerical: Sequence[str] | None = None,
) -> TabularDataset:
    """Load a CSV file with a header row as a :class:`TabularDataset`.

    Every column except ``label`` is a feature (sensitive columns included).

    Args:
        path: the CSV file (any compression pandas infers from the suffix).
        label: the label column. Its values become classes ``0 .. C-1`` in sorted order; for a
            binary label, ``positive_label`` (when given) becomes class 1. Rows with a missing
            label are an error.
        sensitive: the sensitive attribute column(s); their values become string group labels.
        name: dataset name; defaults to the file name without suffix.
        positive_label: the favourable label value; ``positive_class`` is its class index.
            Without it, ``positive_class`` is the last class in sorted order (class 1 when
            binary).
        categorical: columns to treat as categorical whatever their values. The kind of every
            other column is inferred from its dtype (object, string, bool or category means
            categorical), refusing a column whose values are numbers but for a few stray
            strings (name it here, or in ``numerical``, to say what it is).
        encoding: the file's text encoding (``utf-8`` by default; e.g. ``latin-1``).
        numerical: columns to read as numbers although some values are not: those values
            become missing, and the rows holding them are dropped (the encoder does not impute)
            and reported in ``notes``.

    Categorical values are stored as strings, a missing one as the category ``"missing"``;
    numerical columns are stored as floats and missing values are kept as NaN (the
    :class:`~multisteal.data.TabularPreprocessor` rejects them, naming the column).

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: empty file, unknown column, missing labels, a single class, or a
            non-numeric column that is not listed as categorical.
    """
    file_path = Path(path)
    file = file_path.name
    if not file_path.is_file():
        raise DatasetNotFoundError(FILE_NOT_FOUND_MSG.format(path=file_path))
    raw = read_csv_checked(file_path, encoding)
    columns = ", ".join(raw.columns)

    if label not in raw.columns:
        raise DataError(LABEL_NOT_FOUND_MSG.format(label=label, file=file, columns=columns))
    sensitive_columns = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    for column in sensitive_columns:
        if column == label:
            raise DataError(SENSITIVE_IS_LABEL_MSG.format(column=column, file=file))
        if column not in raw.columns:
            raise DataError(
                SENSITIVE_NOT_FOUND_MSG.format(column=column, file=file, columns=columns)
            )
    for kind, named, not_found in (
        ("categorical", categorical or (), CATEGORICAL_NOT_FOUND_MSG),
        ("numerical", numerical or (), NUMERICAL_NOT_FOUND_MSG),
    ):
        for column in named:
            if column == label:
                raise DataError(IS_LABEL_MSG.format(column=column, file=file, kind=kind))
            if column not in raw.columns:
                raise DataError(not_found.format(column=column, file=file, columns=columns))
    for column in set(categorical or ()) & set(numerical or ()):
        raise DataError(BOTH_KINDS_MSG.format(column=column))
    notes: list[str] = []
    for column in numerical or ():
        present = raw[column].notna()
        coerced = pd.to_numeric(raw[column], errors="coerce")
        bad = present & coerced.isna()
        if present.any() and coerced.notna().sum() == 0:
            examples = ", ".join(repr(v) for v in raw.loc[present, column].astype(str).head(3))
            raise DataError(NO_NUMBERS_MSG.format(column=column, file=file, values=examples))
        if bad.any():
            examples = ", ".join(
                repr(v) for v in list(dict.fromkeys(raw.loc[bad, column].astype(str)))[:5]
            )
            notes.append(COERCED_NOTE.format(column=column, count=int(bad.sum()), values=examples))
        raw[column] = coerced
        raw = raw[~bad].reset_index(drop=True)
    if len(raw) == 0:
        raise DataError(NO_ROWS_MSG.format(file=file))
    feature_columns = [c for c in raw.columns if c != label]
    if not feature_columns:
        raise DataError(NO_FEATURES_MSG.format(file=file, label=label))

    labels = raw[label]
    n_missing = int(labels.isna().sum())
    if n_missing:
        raise DataError(MISSING_LABELS_MSG.format(label=label, file=file, count=n_missing))
    values, codes = np.unique(labels.to_numpy(dtype=object), return_inverse=True)
    if len(values) < 2:
        raise DataError(SINGLE_CLASS_MSG.format(label=label, file=file, value=repr(values[0])))
    positive_class = len(values) - 1
    if positive_label is not None:
        matches = [
            i for i, v in enumerate(values) if v == positive_label or str(v) == str(positive_label)
        ]
        if not matches:
            raise DataError(
                POSITIVE_LABEL_NOT_FOUND_MSG.format(
                    value=positive_label,
                    label=label,
                    file=file,
                    values=", ".join(map(str, values)),
                )
            )
        positive_class = matches[0]
        if len(values) == 2 and positive_class == 0:
            values = values[::-1]
            codes = 1 - codes
            positive_class = 1

    # Columns the user named keep the kind they were given; the others are inferred from their
    # values, refusing numbers with a few stray strings (a silent many-way categorical).
    given = set(categorical or ()) | set(numerical or ())
    inferred = {c for c in feature_columns if c not in given and _is_categorical_dtype(raw[c])}
    for column in sorted(inferred):
        _refuse_stray_strings(raw[column], column, file)
    cat_set = inferred | set(categorical or ())
    features = {}
    for column in feature_columns:
        series = raw[column]
        if column in cat_set:
            features[column] = _as_strings(series)
        elif pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numbers = series.astype(np.float64)
            infinite = np.isinf(numbers.to_numpy())
            if infinite.any():
                raise DataError(
                    INFINITE_MSG.format(
                        column=column,
                        file=file,
                        count=int(infinite.sum()),
                        row=int(np.argmax(infinite)) + 2,  # 1-based, after the header line
                    )
                )
            features[column] = numbers
        else:
            raise DataError(NOT_NUMERIC_MSG.format(column=column, file=file))

    return TabularDataset(
        name=name if name is not None else file_path.name.split(".")[0],
        features=pd.DataFrame(features),
        y=np.asarray(codes, dtype=np.int64).reshape(-1),
        sensitive=pd.DataFrame({c: _as_strings(raw[c]) for c in sensitive_columns}),
        class_names=tuple(str(v) for v in values),
        categorical=tuple(c for c in feature_columns if c in cat_set),
        numerical=tuple(c for c in feature_columns if c not in cat_set),
        source=str(file_path),
        positive_class=positive_class,
        notes=tuple(notes),
    )
