"""Text datasets: :class:`TextDataset`, the SST-2 / Rotten Tomatoes / EEC parsers and
:func:`load_text_csv`."""

from __future__ import annotations

import csv
import gzip
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from multisteal.data._csv import (
    FILE_NOT_FOUND_MSG,
    LABEL_NOT_FOUND_MSG,
    MISSING_CATEGORY,
    NO_ROWS_MSG,
    POSITIVE_LABEL_NOT_FOUND_MSG,
    SENSITIVE_IS_LABEL_MSG,
    SENSITIVE_NOT_FOUND_MSG,
    SINGLE_CLASS_MSG,
    read_csv_checked,
)
from multisteal.data._dataset import _check_labelled_rows, _subset_indices
from multisteal.errors import DataError, DatasetNotFoundError

__all__ = [
    "TextDataset",
    "load_text_csv",
    "parse_eec",
    "parse_rotten_tomatoes",
    "parse_sst2",
]

# ----------------------------------------------------------------------- TextDataset's checks

BAD_TEXTS_MSG = (
    "Dataset {name!r}: texts must be a 1-D numpy array of dtype object holding str; got "
    "{description}."
)
BAD_TEXT_ITEM_MSG = (
    "Dataset {name!r}: text {index} is {problem}; every text must be a non-empty str."
)

# --------------------------------------------------------------------------- the benchmarks

MISSING_COLUMNS_MSG = "Dataset {dataset!r}: {file} lacks the columns: {columns}."
UNEXPECTED_VALUES_MSG = (
    "Dataset {dataset!r}: column {column!r} of {file} has unexpected values: {values}."
)

SENTIMENT_CLASSES = ("negative", "positive")
# rt-polarity.pos/.neg are Latin-1 text, except for a few bytes 0x85, 0x91, 0x96, 0x97 that are
# Windows-1252 punctuation (…, ‘, –, —), C1 control characters in ISO-8859-1. cp1252 is
# Latin-1 for every other byte these files hold, so it decodes them both right.
RT_ENCODING = "cp1252"
SST2_NOTES = (
    "SST-2 has no sensitive attributes (movie-review phrases, no author data); probe group "
    "disparities with the eec dataset.",
    "parts['test'] is GLUE's dev set (GLUE's test labels are hidden).",
)
RT_NOTES = (
    "Rotten Tomatoes has no sensitive attributes and no official split.",
    "The files are Latin-1 text with Windows-1252 punctuation (e.g. 0x97, an em dash); they "
    "are decoded as cp1252.",
)
EEC_CLASSES = ("anger", "fear", "joy", "none", "sadness")
EEC_NONE = "none"
EEC_NOTES = (
    "The Equity Evaluation Corpus is a template bias probe (Kiritchenko & Mohammad, 2018): "
    "8,640 generated sentences that differ only in the person's gender or race, not a sample "
    "of natural text. Train a sentiment model elsewhere (e.g. sst2) and compare its scores "
    "across groups.",
    "The labels are emotion categories (anger, fear, joy, sadness; 'none' for the neutral "
    "templates), not sentiment.",
    "Race 'none' marks sentences whose person is a noun phrase (e.g. 'my sister') with no race.",
)

# ------------------------------------------------------------------------- load_text_csv

TEXT_COLUMN_NOT_FOUND_MSG = (
    "Text column {column!r} not found in {file}. Available columns: {columns}."
)
TEXT_IS_LABEL_MSG = "Column {column!r} of {file} cannot be both the text and the label."
SENSITIVE_IS_TEXT_MSG = (
    "Column {column!r} of {file} cannot be both the text and a sensitive attribute."
)
EMPTY_TEXTS_MSG = (
    "Text column {column!r} of {file} has {count} empty text(s), the first in row {row} (the "
    "header is row 1); every text must be non-empty."
)
MISSING_TEXT_LABELS_MSG = (
    "Label column {label!r} of {file} is empty in {count} row(s), the first in row {row} (the "
    "header is row 1); drop or fill those rows first."
)

_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True, eq=False)
class TextDataset:
    """A text classification dataset.

    Attributes:
        name: short dataset name (e.g. ``"sst2"``).
        texts: 1-D ``np.ndarray`` of dtype ``object`` holding one non-empty ``str`` per example.
        y: ``int64`` array of shape ``(n,)`` with class indices ``0 .. n_classes - 1``.
        sensitive: one column per sensitive attribute, string group labels; it may have no
            columns.
        class_names: readable name of each class index.
        source: where the data was read from (file paths).
        positive_class: index of the favourable outcome used by fairness metrics.
        parts: the official split (sorted ``int64`` row positions keyed among ``"train"``,
            ``"val"``, ``"test"``), or ``None``.
        notes: remarks on the data.
    """

    name: str
    texts: np.ndarray
    y: np.ndarray
    sensitive: pd.DataFrame
    class_names: tuple[str, ...]
    source: str
    positive_class: int
    parts: Mapping[str, np.ndarray] | None = None
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        texts = self.texts
        if not isinstance(texts, np.ndarray) or texts.ndim != 1 or texts.dtype != object:
            description = (
                f"shape {texts.shape} and dtype {texts.dtype}"
                if isinstance(texts, np.ndarray)
                else type(texts).__name__
            )
            raise DataError(BAD_TEXTS_MSG.format(name=self.name, description=description))
        for index, text in enumerate(texts.tolist()):
            if not isinstance(text, str):
                problem = f"not a str but {type(text).__name__} {text!r}"
            elif not text.strip():
                problem = "empty" if not text else f"blank ({text!r})"
            else:
                continue
            raise DataError(BAD_TEXT_ITEM_MSG.format(name=self.name, index=index, problem=problem))
        _check_labelled_rows(
            self.name,
            inputs="texts",
            n=len(texts),
            y=self.y,
            sensitive=self.sensitive,
            class_names=self.class_names,
            positive_class=self.positive_class,
            parts=self.parts,
        )

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def modality(self) -> Literal["text"]:
        """``"text"``."""
        return "text"

    @property
    def inputs(self) -> np.ndarray:
        """The model inputs: :attr:`texts`."""
        return self.texts

    @property
    def n_classes(self) -> int:
        """Number of classes (``len(class_names)``)."""
        return len(self.class_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> TextDataset:
        """Return the texts at ``indices`` (positions); ``parts`` is ``None`` in the result."""
        idx = _subset_indices(indices, len(self))
        return TextDataset(
            name=self.name,
            texts=self.texts[idx],
            y=self.y[idx],
            sensitive=self.sensitive.iloc[idx].reset_index(drop=True),
            class_names=self.class_names,
            source=self.source,
            positive_class=self.positive_class,
            parts=None,
            notes=self.notes,
        )


def _object_array(values: Sequence[str] | pd.Series) -> np.ndarray:
    texts = np.empty(len(values), dtype=object)
    texts[:] = list(values)
    return texts


def _no_sensitive(n: int) -> pd.DataFrame:
    return pd.DataFrame(index=pd.RangeIndex(n))


def _require_columns(dataset: str, path: Path, raw: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in raw.columns]
    if missing:
        raise DataError(
            MISSING_COLUMNS_MSG.format(dataset=dataset, file=path.name, columns=", ".join(missing))
        )


def _check_values(
    dataset: str, path: Path, column: str, values: pd.Series, allowed: Sequence[str]
) -> None:
    unexpected = sorted(set(values.unique()) - set(allowed))
    if unexpected:
        raise DataError(
            UNEXPECTED_VALUES_MSG.format(
                dataset=dataset,
                column=column,
                file=path.name,
                values=", ".join(repr(v) for v in unexpected[:10]),
            )
        )


# --------------------------------------------------------------------------------- SST-2


def _read_sst2_tsv(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(
        path,
        sep="\t",
        quoting=csv.QUOTE_NONE,
        dtype=str,
        keep_default_na=False,
        encoding="utf-8",
    )
    _require_columns("sst2", path, raw, ("sentence", "label"))
    _check_values("sst2", path, "label", raw["label"], ("0", "1"))
    return raw


def parse_sst2(paths: Mapping[str, Path], source: str) -> TextDataset:
    """SST-2 as distributed by GLUE: train.tsv (67,349) then dev.tsv (872, the test part).

    The sentences are lower-cased and tokenised; the space before the tab that ends every
    sentence of the files is stripped. GLUE's test.tsv has no labels and is not used.
    """
    train = _read_sst2_tsv(paths["train.tsv"])
    dev = _read_sst2_tsv(paths["dev.tsv"])
    n_train, n_dev = len(train), len(dev)
    sentences = pd.concat([train["sentence"], dev["sentence"]], ignore_index=True).str.rstrip()
    labels = pd.concat([train["label"], dev["label"]], ignore_index=True).astype(np.int64)
    return TextDataset(
        name="sst2",
        texts=_object_array(sentences),
        y=labels.to_numpy(dtype=np.int64),
        sensitive=_no_sensitive(n_train + n_dev),
        class_names=SENTIMENT_CLASSES,
        source=source,
        positive_class=1,
        parts={
            "train": np.arange(n_train, dtype=np.int64),
            "test": np.arange(n_train, n_train + n_dev, dtype=np.int64),
        },
        notes=SST2_NOTES,
    )


# ----------------------------------------------------------------------- Rotten Tomatoes


def _read_lines(path: Path, encoding: str) -> list[str]:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    lines = raw.decode(encoding).split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip() for line in lines]


def parse_rotten_tomatoes(paths: Mapping[str, Path], source: str) -> TextDataset:
    """Pang & Lee's sentence polarity v1.0: rt-polarity.neg (5,331) then .pos (5,331).

    One sentence per line, lower-cased and tokenised; trailing whitespace is stripped. No
    official split (10-fold cross-validation is the usual protocol).
    """
    negative = _read_lines(paths["rt-polarity.neg"], RT_ENCODING)
    positive = _read_lines(paths["rt-polarity.pos"], RT_ENCODING)
    y = np.concatenate(
        [np.zeros(len(negative), dtype=np.int64), np.ones(len(positive), dtype=np.int64)]
    )
    return TextDataset(
        name="rotten_tomatoes",
        texts=_object_array(negative + positive),
        y=y,
        sensitive=_no_sensitive(len(y)),
        class_names=SENTIMENT_CLASSES,
        source=source,
        positive_class=1,
        notes=RT_NOTES,
    )


# ------------------------------------------------------------------------------------ EEC


def parse_eec(paths: Mapping[str, Path], source: str) -> TextDataset:
    """The Equity Evaluation Corpus: 8,640 template sentences, labelled with their emotion."""
    path = paths["Equity-Evaluation-Corpus.csv"]
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    _require_columns("eec", path, raw, ("Sentence", "Gender", "Race", "Emotion"))
    emotion = raw["Emotion"].str.strip().replace("", EEC_NONE)
    _check_values("eec", path, "Emotion", emotion, EEC_CLASSES)
    gender = raw["Gender"].str.strip()
    _check_values("eec", path, "Gender", gender, ("female", "male"))
    race = raw["Race"].str.strip().replace("", EEC_NONE)
    return TextDataset(
        name="eec",
        texts=_object_array(raw["Sentence"]),
        y=emotion.map(EEC_CLASSES.index).to_numpy(dtype=np.int64),
        sensitive=pd.DataFrame({"gender": gender, "race": race}).astype(object),
        class_names=EEC_CLASSES,
        source=source,
        positive_class=EEC_CLASSES.index("joy"),
        notes=EEC_NOTES,
    )


# ---------------------------------------------------------------------- a user's own CSV


def _read_text_csv(file_path: Path, encoding: str) -> pd.DataFrame:
    """The CSV with every value as a string (empty cells as ``""``), errors as ``DataError``."""
    raw = read_csv_checked(file_path, encoding, dtype=str, keep_default_na=False)
    filled: pd.DataFrame = raw.fillna("")
    return filled


def load_text_csv(
    path: str | os.PathLike[str],
    *,
    text_column: str,
    label: str,
    sensitive: str | Sequence[str] = (),
    positive_label: object = None,
    encoding: str = "utf-8",
    name: str | None = None,
) -> TextDataset:
    """Load a CSV file with a header row, one text per row, as a :class:`TextDataset`.

    Args:
        path: the CSV file (any compression pandas infers from the suffix).
        text_column: the column holding the texts; every text must be non-empty. Texts are
            kept exactly as written.
        label: the label column; any number of classes (at least two). Class names are the
            distinct values in sorted order (numerically when every label is an integer), and
            ``y`` holds their indices. An empty label is an error.
        sensitive: the sensitive attribute column(s); their values become string group
            labels, an empty one the group ``"missing"``. Default: none.
        positive_label: the favourable label; ``positive_class`` is its class index. Without
            it, ``positive_class`` is the last class in sorted order.
        encoding: the file's text encoding (``utf-8`` by default; e.g. ``latin-1``).
        name: dataset name; defaults to the file name without suffix.

    Raises:
        DatasetNotFoundError: the file does not exist.
        DataError: empty or malformed file, unknown column, a column used twice, empty texts,
            empty labels, a single class, or an unknown ``positive_label``.
    """
    file_path = Path(path)
    file = file_path.name
    if not file_path.is_file():
        raise DatasetNotFoundError(FILE_NOT_FOUND_MSG.format(path=file_path))
    raw = _read_text_csv(file_path, encoding)
    columns = ", ".join(raw.columns)
    if text_column not in raw.columns:
        raise DataError(
            TEXT_COLUMN_NOT_FOUND_MSG.format(column=text_column, file=file, columns=columns)
        )
    if label not in raw.columns:
        raise DataError(LABEL_NOT_FOUND_MSG.format(label=label, file=file, columns=columns))
    if text_column == label:
        raise DataError(TEXT_IS_LABEL_MSG.format(column=label, file=file))
    sensitive_columns = [sensitive] if isinstance(sensitive, str) else list(sensitive)
    for column in sensitive_columns:
        if column == label:
            raise DataError(SENSITIVE_IS_LABEL_MSG.format(column=column, file=file))
        if column == text_column:
            raise DataError(SENSITIVE_IS_TEXT_MSG.format(column=column, file=file))
        if column not in raw.columns:
            raise DataError(
                SENSITIVE_NOT_FOUND_MSG.format(column=column, file=file, columns=columns)
            )
    if len(raw) == 0:
        raise DataError(NO_ROWS_MSG.format(file=file))

    texts = raw[text_column]
    empty = (texts.str.strip() == "").to_numpy()
    if empty.any():
        raise DataError(
            EMPTY_TEXTS_MSG.format(
                column=text_column, file=file, count=int(empty.sum()), row=int(np.argmax(empty)) + 2
            )
        )
    labels = raw[label].str.strip()
    missing = (labels == "").to_numpy()
    if missing.any():
        raise DataError(
            MISSING_TEXT_LABELS_MSG.format(
                label=label, file=file, count=int(missing.sum()), row=int(np.argmax(missing)) + 2
            )
        )
    if all(_INTEGER.fullmatch(v) for v in labels):
        numbers = labels.astype(np.int64)
        values_int, codes = np.unique(numbers.to_numpy(), return_inverse=True)
        names = tuple(str(v) for v in values_int.tolist())
    else:
        values_str, codes = np.unique(labels.to_numpy(dtype=str), return_inverse=True)
        names = tuple(str(v) for v in values_str.tolist())
    if len(names) < 2:
        raise DataError(SINGLE_CLASS_MSG.format(label=label, file=file, value=repr(names[0])))
    positive_class = len(names) - 1
    if positive_label is not None:
        if str(positive_label) not in names:
            raise DataError(
                POSITIVE_LABEL_NOT_FOUND_MSG.format(
                    value=positive_label, label=label, file=file, values=", ".join(names)
                )
            )
        positive_class = names.index(str(positive_label))
    groups = pd.DataFrame(
        {c: raw[c].where(raw[c].str.strip() != "", MISSING_CATEGORY) for c in sensitive_columns},
        index=pd.RangeIndex(len(raw)),
    ).astype(object)
    return TextDataset(
        name=name if name is not None else file.split(".")[0],
        texts=_object_array(texts),
        y=np.asarray(codes, dtype=np.int64).reshape(-1),
        sensitive=groups,
        class_names=names,
        source=str(file_path),
        positive_class=positive_class,
    )
