"""What a deployed model takes: raw inputs of one modality, and the :class:`InputSpec` that
describes the accepted domain.

A prediction service takes raw inputs — tabular records with named columns, images as arrays,
sentences as strings — and publishes what it accepts. An input spec is that publication:

* :class:`TabularSpec` — the columns with their kinds, category sets and numeric ranges;
* :class:`ImageSpec` — image height, width, channels and value range;
* :class:`TextSpec` — strings (non-empty, at most ``max_chars`` characters).

``spec.validate(inputs)`` returns the inputs in one canonical form (a ``DataFrame`` with the
spec's columns, a numeric image array, a 1-D object array of ``str``) or raises
:class:`~multisteal.errors.InvalidInputError` with a message that names the problem.
``spec.sample(n, rng)`` draws raw inputs from the domain (the synthetic attack's queries).
``spec.to_dict()`` / :func:`spec_from_dict` are the published JSON form.

The helpers :func:`n_inputs`, :func:`take_inputs`, :func:`concat_inputs` and
:func:`inputs_digest` work on raw inputs of any modality.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeAlias

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data._dataset import MODALITIES, Dataset, Modality, TabularDataset
from multisteal.errors import InvalidInputError

__all__ = [
    "MODALITIES",
    "ColumnSpec",
    "ImageSpec",
    "InputSpec",
    "Inputs",
    "Modality",
    "TabularSpec",
    "TextSpec",
    "concat_inputs",
    "input_spec_of",
    "inputs_digest",
    "n_inputs",
    "spec_from_dict",
    "take_inputs",
]

Inputs: TypeAlias = "pd.DataFrame | NDArray[Any]"
"""Raw inputs: a DataFrame of records, an image array ``(n, H, W[, C])`` or a 1-D object array
of strings."""

EMPTY_BATCH = "A query batch must contain at least one input."
MISSING_VALUE = "missing"
_SHOWN = 8  # categories named in a message

# -- tabular messages
NOT_RECORDS = (
    "Tabular inputs must be records: a pandas DataFrame or a list of {{column: value}} objects "
    "with the columns {columns}; got {got}."
)
UNKNOWN_COLUMNS = "Unknown column(s) {unknown}; the target takes the columns: {columns}."
MISSING_COLUMNS = "Missing column(s) {missing}; the target takes the columns: {columns}."
NOT_NUMERIC = "Column {column!r} is numerical, but row {row} holds {value!r} ({type})."
NOT_FINITE_VALUE = "Column {column!r} is numerical, but row {row} holds {value}."
OUT_OF_RANGE = (
    "Column {column!r}: row {row} holds {value:g}, outside its range [{low:g}, {high:g}]."
)
UNKNOWN_CATEGORY = (
    "Column {column!r}: row {row} holds {value!r}, which is not one of its {count} categories "
    "({shown})."
)
BAD_COLUMN_KIND = "Column {column!r}: kind must be 'categorical' or 'numerical', got {kind!r}."
NO_CATEGORIES = "Categorical column {column!r} needs at least one category."
BAD_RANGE = "Numerical column {column!r} needs a finite range low <= high; got [{low}, {high}]."
DUPLICATE_COLUMN = "Column {column!r} is listed twice in the input spec."
DUPLICATE_INPUT_COLUMNS = "The records have column(s) {columns} more than once."
NOT_WHOLE = "Column {column!r} holds whole numbers, but row {row} holds {value:g}."

# -- image messages
NOT_IMAGES = "Image inputs must be a numeric array of shape {expected}; got {got}."
BAD_IMAGE_SHAPE = "Images must have shape {expected}; got shape {shape}."
NOT_NUMERIC_IMAGES = "Images must hold numbers; got an array of dtype {dtype}."
NOT_FINITE_IMAGES = "Images contain NaN or infinite values (first at image {index})."
IMAGE_OUT_OF_RANGE = "Image values must lie in [{low:g}, {high:g}]; image {index} holds {value:g}."
BAD_IMAGE_SPEC = (
    "An image spec needs height and width >= 1, channels >= 0 (0: grey images of shape "
    "(n, H, W)) and a finite value range low < high; got {spec}."
)

# -- text messages
NOT_TEXTS = "Text inputs must be a list of strings; got {got}."
SINGLE_STRING = "Text inputs must be a list of strings; got a single string (wrap it in a list)."
NOT_A_STRING = "Text inputs must be strings; item {index} is {value!r} ({type})."
EMPTY_TEXT = "Text inputs must not be empty; item {index} is an empty string."
TOO_LONG = "Text item {index} has {length} characters; the target takes at most {limit}."
BAD_TEXT_SPEC = "max_chars must be a positive whole number or None; got {value!r}."

UNKNOWN_MODALITY = "Unknown input modality {name!r}. Modalities: {available}."
BAD_SPEC_RECORD = "Not a valid input spec record ({problem})."
CANNOT_SAMPLE_TEXT = (
    "Text cannot be drawn from its input spec (a string domain has no distribution to sample): "
    "the synthetic attack applies to tabular records and images. Use the pool attack with "
    "sentences the attacker holds (--pool-dataset for another corpus)."
)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so messages show ``1.0``, not
    ``np.float64(1.0)``."""
    return value.item() if isinstance(value, np.generic) else value


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    if isinstance(value, pd.DataFrame):
        return f"a table of records with columns {', '.join(map(str, value.columns))}"
    return f"a {type(value).__name__}"


@dataclass(frozen=True)
class ColumnSpec:
    """One column of a tabular input: its kind and its domain.

    Attributes
    ----------
    name : the raw column name (as the dataset's ``features`` have it).
    kind : ``categorical`` or ``numerical``.
    categories : the accepted values of a categorical column (compared as strings; a missing
        value is the category ``"missing"``).
    low, high : the accepted range of a numerical column (inclusive).
    integer : whether a numerical column only holds whole numbers (sampling draws integers).
    """

    name: str
    kind: Literal["categorical", "numerical"]
    categories: tuple[str, ...] = ()
    low: float = 0.0
    high: float = 0.0
    integer: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("categorical", "numerical"):
            raise InvalidInputError(BAD_COLUMN_KIND.format(column=self.name, kind=self.kind))
        if self.kind == "categorical" and not self.categories:
            raise InvalidInputError(NO_CATEGORIES.format(column=self.name))
        if self.kind == "numerical" and not (
            math.isfinite(self.low) and math.isfinite(self.high) and self.low <= self.high
        ):
            raise InvalidInputError(
                BAD_RANGE.format(column=self.name, low=self.low, high=self.high)
            )


@dataclass(frozen=True)
class TabularSpec:
    """Tabular records with named columns (see :class:`ColumnSpec`)."""

    columns: tuple[ColumnSpec, ...]
    modality: ClassVar[Modality] = "tabular"

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for column in self.columns:
            if column.name in seen:
                raise InvalidInputError(DUPLICATE_COLUMN.format(column=column.name))
            seen.add(column.name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "categorical")

    @property
    def numerical(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.kind == "numerical")

    @classmethod
    def from_frame(
        cls,
        features: pd.DataFrame,
        *,
        categorical: Sequence[str],
        numerical: Sequence[str],
    ) -> TabularSpec:
        """The domain seen in ``features``: each categorical's values, each numerical's range."""
        kinds = {
            **dict.fromkeys(categorical, "categorical"),
            **dict.fromkeys(numerical, "numerical"),
        }
        columns: list[ColumnSpec] = []
        for name in features.columns:
            kind = kinds.get(str(name))
            if kind is None:
                continue
            series = features[name]
            if kind == "categorical":
                values = series.astype(object).where(series.notna(), MISSING_VALUE).astype(str)
                columns.append(ColumnSpec(str(name), "categorical", tuple(sorted(set(values)))))
            else:
                values_f = series.to_numpy(dtype=np.float64, na_value=np.nan)
                finite = values_f[np.isfinite(values_f)]
                low, high = (
                    (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
                )
                whole = bool(finite.size) and bool(np.all(finite == np.round(finite)))
                columns.append(ColumnSpec(str(name), "numerical", (), low, high, whole))
        return cls(tuple(columns))

    def validate(self, inputs: object) -> pd.DataFrame:
        """The records as a DataFrame with exactly the spec's columns, in the spec's order."""
        columns = ", ".join(self.names)
        if isinstance(inputs, pd.DataFrame):
            frame = inputs
        elif (
            isinstance(inputs, Sequence)
            and not isinstance(inputs, (str, bytes))
            and all(isinstance(r, Mapping) for r in inputs)
        ):
            frame = pd.DataFrame(list(inputs))
        else:
            raise InvalidInputError(NOT_RECORDS.format(columns=columns, got=_describe(inputs)))
        if len(frame) == 0:
            raise InvalidInputError(EMPTY_BATCH)
        given = [str(c) for c in frame.columns]
        unknown = [c for c in given if c not in self.names]
        if unknown:
            raise InvalidInputError(
                UNKNOWN_COLUMNS.format(unknown=", ".join(map(repr, unknown)), columns=columns)
            )
        missing = [c for c in self.names if c not in given]
        if missing:
            raise InvalidInputError(
                MISSING_COLUMNS.format(missing=", ".join(map(repr, missing)), columns=columns)
            )
        duplicated = sorted({c for c in given if given.count(c) > 1})
        if duplicated:
            raise InvalidInputError(
                DUPLICATE_INPUT_COLUMNS.format(columns=", ".join(map(repr, duplicated)))
            )
        frame = frame.set_axis(given, axis=1)
        out: dict[str, Any] = {}
        for column in self.columns:
            series = frame[column.name]
            out[column.name] = (
                self._numerical(column, series)
                if column.kind == "numerical"
                else self._categorical(column, series)
            )
        return pd.DataFrame(out, columns=list(self.names))

    @staticmethod
    def _numerical(column: ColumnSpec, series: pd.Series) -> NDArray[np.float64]:
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            numeric = series.to_numpy(dtype=np.float64, na_value=np.nan)
        else:
            numeric = TabularSpec._numbers(column, series)
        bad = np.flatnonzero(~np.isfinite(numeric))
        if bad.size:
            row = int(bad[0])
            raise InvalidInputError(
                NOT_FINITE_VALUE.format(column=column.name, row=row, value=numeric[row])
            )
        if column.integer:
            fractional = np.flatnonzero(numeric != np.round(numeric))
            if fractional.size:
                row = int(fractional[0])
                raise InvalidInputError(
                    NOT_WHOLE.format(column=column.name, row=row, value=numeric[row])
                )
        outside = np.flatnonzero((numeric < column.low) | (numeric > column.high))
        if outside.size:
            row = int(outside[0])
            raise InvalidInputError(
                OUT_OF_RANGE.format(
                    column=column.name,
                    row=row,
                    value=numeric[row],
                    low=column.low,
                    high=column.high,
                )
            )
        return numeric

    @staticmethod
    def _numbers(column: ColumnSpec, series: pd.Series) -> NDArray[np.float64]:
        """Element by element, so a string or a bool is named with its row."""
        values = series.to_numpy(dtype=object)
        numeric = np.empty(len(values), dtype=np.float64)
        for row, value in enumerate(values):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                numeric[row] = np.nan
                continue
            if isinstance(value, (bool, np.bool_)) or not isinstance(
                value, (int, float, np.integer, np.floating)
            ):
                raise InvalidInputError(
                    NOT_NUMERIC.format(
                        column=column.name, row=row, value=_plain(value), type=type(value).__name__
                    )
                )
            numeric[row] = float(value)
        return numeric

    @staticmethod
    def _categorical(column: ColumnSpec, series: pd.Series) -> NDArray[Any]:
        values = series.astype(object).where(series.notna(), MISSING_VALUE).astype(str)
        allowed = set(column.categories)
        unknown = ~values.isin(allowed).to_numpy()
        if unknown.any():
            row = int(np.flatnonzero(unknown)[0])
            shown = ", ".join(column.categories[:_SHOWN])
            if len(column.categories) > _SHOWN:
                shown += ", …"
            raise InvalidInputError(
                UNKNOWN_CATEGORY.format(
                    column=column.name,
                    row=row,
                    value=_plain(series.iloc[row]),
                    count=len(column.categories),
                    shown=shown,
                )
            )
        return values.to_numpy(dtype=object)

    def sample(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """``n`` records, each column drawn independently and uniformly from its domain."""
        out: dict[str, Any] = {}
        for column in self.columns:
            if column.kind == "categorical":
                out[column.name] = np.asarray(column.categories, dtype=object)[
                    rng.integers(0, len(column.categories), size=n)
                ]
            elif column.integer:
                out[column.name] = rng.integers(
                    int(column.low), int(column.high) + 1, size=n
                ).astype(np.float64)
            else:
                out[column.name] = rng.uniform(column.low, column.high, size=n)
        return pd.DataFrame(out, columns=list(self.names))

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "columns": [
                {"name": c.name, "kind": c.kind, "categories": list(c.categories)}
                if c.kind == "categorical"
                else {
                    "name": c.name,
                    "kind": c.kind,
                    "low": c.low,
                    "high": c.high,
                    "integer": c.integer,
                }
                for c in self.columns
            ],
        }


@dataclass(frozen=True)
class ImageSpec:
    """Images of one size: ``(n, height, width)`` when ``channels`` is 0 (grey), else
    ``(n, height, width, channels)``; every value in ``[low, high]``."""

    height: int
    width: int
    channels: int = 0
    low: float = 0.0
    high: float = 255.0
    modality: ClassVar[Modality] = "image"

    def __post_init__(self) -> None:
        if (
            self.height < 1
            or self.width < 1
            or self.channels < 0
            or not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high)
        ):
            raise InvalidInputError(BAD_IMAGE_SPEC.format(spec=self))

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of one image."""
        if self.channels:
            return (self.height, self.width, self.channels)
        return (self.height, self.width)

    def _expected(self) -> str:
        return "(n, " + ", ".join(map(str, self.shape)) + ")"

    @classmethod
    def from_array(cls, images: NDArray[Any]) -> ImageSpec:
        """The spec of ``images``: their size, channels and value range (0–255 for uint8
        images, else the range seen, or [0, 1] when the values lie within it)."""
        channels = int(images.shape[3]) if images.ndim == 4 else 0
        low, high = float(np.min(images)), float(np.max(images))
        if np.issubdtype(images.dtype, np.unsignedinteger):
            low, high = 0.0, float(np.iinfo(images.dtype).max)  # the dtype's whole range
        elif low >= 0.0 and high <= 1.0:
            low, high = 0.0, 1.0  # intensities in [0, 1]
        elif low >= 0.0 and high <= 255.0:
            low, high = 0.0, 255.0  # 8-bit intensities stored as int64 or float
        elif low == high:
            high = low + 1.0
        return cls(int(images.shape[1]), int(images.shape[2]), channels, low, high)

    def validate(self, inputs: object) -> NDArray[Any]:
        """The images as a numeric array of shape ``(n, *shape)``."""
        expected = self._expected()
        if isinstance(inputs, (pd.DataFrame, str, bytes)):
            raise InvalidInputError(NOT_IMAGES.format(expected=expected, got=_describe(inputs)))
        try:
            arr = np.asarray(inputs)
        except ValueError:  # ragged nested lists
            raise InvalidInputError(
                NOT_IMAGES.format(expected=expected, got="nested lists of unequal lengths")
            ) from None
        if arr.dtype == object or not (
            (
                np.issubdtype(arr.dtype, np.number)
                and not np.issubdtype(arr.dtype, np.complexfloating)
            )
            or arr.dtype == np.bool_
        ):
            if arr.dtype == object:
                raise InvalidInputError(
                    NOT_IMAGES.format(
                        expected=expected, got="nested lists of unequal lengths or mixed types"
                    )
                )
            raise InvalidInputError(NOT_NUMERIC_IMAGES.format(dtype=arr.dtype))
        if arr.ndim >= 1 and arr.shape[0] == 0:
            raise InvalidInputError(EMPTY_BATCH)
        if arr.ndim != len(self.shape) + 1 or tuple(arr.shape[1:]) != self.shape:
            raise InvalidInputError(BAD_IMAGE_SHAPE.format(expected=expected, shape=arr.shape))
        if np.issubdtype(arr.dtype, np.floating):
            finite = np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
            if not finite.all():
                raise InvalidInputError(NOT_FINITE_IMAGES.format(index=int(np.argmin(finite))))
        flat = arr.reshape(len(arr), -1)
        low_bad = flat.min(axis=1) < self.low
        high_bad = flat.max(axis=1) > self.high
        bad = np.flatnonzero(low_bad | high_bad)
        if bad.size:
            index = int(bad[0])
            value = flat[index].min() if low_bad[index] else flat[index].max()
            raise InvalidInputError(
                IMAGE_OUT_OF_RANGE.format(low=self.low, high=self.high, index=index, value=value)
            )
        return arr

    def sample(self, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
        """``n`` images of independent uniform noise over the value range."""
        return rng.uniform(self.low, self.high, size=(n, *self.shape))

    def to_dict(self) -> dict[str, Any]:
        return {
            "modality": self.modality,
            "height": self.height,
            "width": self.width,
            "channels": self.channels,
            "low": self.low,
            "high": self.high,
            "shape": ["n", *self.shape],
        }


@dataclass(frozen=True)
class TextSpec:
    """Sentences: non-empty strings of at most ``max_chars`` characters (``None``: any)."""

    max_chars: int | None = None
    modality: ClassVar[Modality] = "text"

    def __post_init__(self) -> None:
        if self.max_chars is not None and (
            isinstance(self.max_chars, bool)
            or not isinstance(self.max_chars, int)
            or self.max_chars < 1
        ):
            raise InvalidInputError(BAD_TEXT_SPEC.format(value=self.max_chars))

    def validate(self, inputs: object) -> NDArray[np.object_]:
        """The texts as a 1-D object array of ``str``."""
        if isinstance(inputs, (str, bytes)):
            raise InvalidInputError(SINGLE_STRING)
        if isinstance(inputs, pd.DataFrame):
            raise InvalidInputError(NOT_TEXTS.format(got=_describe(inputs)))
        if isinstance(inputs, np.ndarray):
            if inputs.ndim != 1:
                raise InvalidInputError(NOT_TEXTS.format(got=_describe(inputs)))
            items: Sequence[object] = inputs.tolist()
        elif isinstance(inputs, (Sequence, pd.Series)):
            items = list(inputs)
        else:
            raise InvalidInputError(NOT_TEXTS.format(got=_describe(inputs)))
        if not items:
            raise InvalidInputError(EMPTY_BATCH)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise InvalidInputError(
                    NOT_A_STRING.format(index=index, value=item, type=type(item).__name__)
                )
            if not item.strip():
                raise InvalidInputError(EMPTY_TEXT.format(index=index))
            if self.max_chars is not None and len(item) > self.max_chars:
                raise InvalidInputError(
                    TOO_LONG.format(index=index, length=len(item), limit=self.max_chars)
                )
        out = np.empty(len(items), dtype=object)
        out[:] = items
        return out

    def sample(self, n: int, rng: np.random.Generator) -> NDArray[np.object_]:
        raise InvalidInputError(CANNOT_SAMPLE_TEXT)

    def to_dict(self) -> dict[str, Any]:
        return {"modality": self.modality, "max_chars": self.max_chars}


InputSpec: TypeAlias = "TabularSpec | ImageSpec | TextSpec"


def spec_from_dict(record: Mapping[str, Any]) -> TabularSpec | ImageSpec | TextSpec:
    """The spec published as ``record`` (the inverse of ``spec.to_dict()``)."""
    try:
        modality = record["modality"]
        if modality == "tabular":
            return TabularSpec(
                tuple(
                    ColumnSpec(
                        name=str(c["name"]),
                        kind=c["kind"],
                        categories=tuple(str(v) for v in c.get("categories", ())),
                        low=float(c.get("low", 0.0)),
                        high=float(c.get("high", 0.0)),
                        integer=bool(c.get("integer", False)),
                    )
                    for c in record["columns"]
                )
            )
        if modality == "image":
            return ImageSpec(
                int(record["height"]),
                int(record["width"]),
                int(record.get("channels", 0)),
                float(record["low"]),
                float(record["high"]),
            )
        if modality == "text":
            limit = record.get("max_chars")
            return TextSpec(None if limit is None else int(limit))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            BAD_SPEC_RECORD.format(problem=f"{type(exc).__name__}: {exc}")
        ) from exc
    raise InvalidInputError(
        UNKNOWN_MODALITY.format(name=record.get("modality"), available=", ".join(MODALITIES))
    )


# -- raw inputs of any modality ---------------------------------------------------------------


def n_inputs(inputs: pd.DataFrame | NDArray[Any]) -> int:
    """The number of inputs (records, images or texts)."""
    return len(inputs)


def take_inputs(
    inputs: pd.DataFrame | NDArray[Any], indices: NDArray[np.int64] | Sequence[int]
) -> pd.DataFrame | NDArray[Any]:
    """The inputs at ``indices`` (positions), in that order."""
    idx = np.asarray(indices, dtype=np.int64)
    if isinstance(inputs, pd.DataFrame):
        return inputs.iloc[idx].reset_index(drop=True)
    return inputs[idx]


def concat_inputs(parts: Sequence[pd.DataFrame | NDArray[Any]]) -> pd.DataFrame | NDArray[Any]:
    """The inputs of ``parts`` one after another (all of one modality)."""
    if not parts:
        raise InvalidInputError("concat_inputs needs at least one part.")
    frames = [p for p in parts if isinstance(p, pd.DataFrame)]
    if frames:
        return pd.concat(frames, ignore_index=True)
    return np.concatenate([np.asarray(p) for p in parts])


def inputs_digest(inputs: pd.DataFrame | NDArray[Any]) -> str:
    """SHA-256 of a batch of raw inputs, to match query logs against transcripts.

    Numeric arrays hash their shape and float64 bytes (as ``batch_digest`` always did); texts
    hash each string's UTF-8 bytes with its length; records hash their column names and values.
    """
    if isinstance(inputs, pd.DataFrame):
        digest = hashlib.sha256(b"records")
        digest.update(repr(tuple(map(str, inputs.columns))).encode())
        for column in inputs.columns:
            series = inputs[column]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                digest.update(np.ascontiguousarray(series.to_numpy(dtype=np.float64)).tobytes())
            else:
                for value in series.astype(str):
                    encoded = value.encode("utf-8")
                    digest.update(len(encoded).to_bytes(8, "little") + encoded)
        return digest.hexdigest()
    arr = np.asarray(inputs)
    if arr.dtype == object or arr.dtype.kind in "US":
        digest = hashlib.sha256(b"texts")
        for value in arr.reshape(-1).tolist():
            encoded = str(value).encode("utf-8")
            digest.update(len(encoded).to_bytes(8, "little") + encoded)
        return digest.hexdigest()
    numeric = np.ascontiguousarray(arr, dtype=np.float64)
    digest = hashlib.sha256(repr(numeric.shape).encode())
    digest.update(numeric.tobytes())
    return digest.hexdigest()


def input_spec_of(dataset: Dataset) -> TabularSpec | ImageSpec | TextSpec:
    """The input spec an owner publishes for a model of ``dataset``: its columns with the
    categories and ranges seen in the data, its image size and value range, or text."""
    if isinstance(dataset, TabularDataset):
        return TabularSpec.from_frame(
            dataset.features, categorical=dataset.categorical, numerical=dataset.numerical
        )
    if dataset.modality == "image":
        return ImageSpec.from_array(np.asarray(dataset.inputs))
    return TextSpec()
