"""The attacker's own numeric view of raw inputs, for clustering and distances.

Attacks that group or compare pool inputs (the clusters of Knockoff Nets' adaptive strategy)
need numbers; the attacker builds them from what it holds — its pool and the published input
spec — never from the target's own encoder:

* records (:class:`~multisteal.data.inputs.TabularSpec`): one-hot over the categories the spec
  lists, numbers scaled to ``[0, 1]`` by the spec's ``(low, high)`` range;
* images (:class:`~multisteal.data.inputs.ImageSpec`): flattened, scaled to ``[0, 1]`` by the
  spec's value range;
* texts (:class:`~multisteal.data.inputs.TextSpec`): TF-IDF of word 1–2-grams fitted on the
  pool, reduced by a truncated SVD to at most ``text_dims`` dimensions (deterministic);
* encoded vectors (no spec): as they are, each column standardised over the pool.

The view is lenient where the API is strict: a pool input the API would refuse (a number
outside the spec's range, an unknown category, a missing value) still gets a place — numbers
are scaled all the same (beyond ``[0, 1]``), an unknown category gets an all-zero block, a
missing number sits at the middle of its range — and the API refuses it only if it is queried.

:func:`surrogate_probabilities` is the other view attacks use: the attacker's surrogate's class
probabilities, one column per class index.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data.inputs import MISSING_VALUE, ImageSpec, InputSpec, TabularSpec
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import Classifier

__all__ = [
    "BAD_SURROGATE_OUTPUT",
    "BAD_TEXT_DIMS",
    "EMPTY_POOL",
    "attacker_features",
    "surrogate_probabilities",
]

EMPTY_POOL = "The attacker's pool is empty: there is nothing to describe."
BAD_TEXT_DIMS = "text_dims must be a whole number >= 1, got {value!r}."
BAD_SURROGATE_OUTPUT = (
    "The surrogate answered probabilities of shape {shape} for classes {classes}; an attack "
    "needs one column per class index 0..{c} - 1."
)
NOT_NUMBERS = "The attacker's pool of {kind} must hold numbers."
NOT_RECORDS = "The attacker's pool must be a table of records with the columns {columns}."
MISSING_POOL_COLUMNS = (
    "The attacker's pool lacks the column(s) {missing}; the target takes the columns: {columns}."
)
BAD_IMAGE_POOL = "The attacker's pool of images has shape {shape}; the target takes {expected}."
_SVD_SEED = 0  # the SVD's seed is fixed: the same pool always gives the same features


def attacker_features(
    pool: pd.DataFrame | NDArray[Any], spec: InputSpec | None, *, text_dims: int = 64
) -> NDArray[np.float64]:
    """A float matrix ``(n, k)`` describing each pool input (see the module docstring).

    Parameters
    ----------
    pool : raw inputs of the spec's modality (records, images, texts), or encoded vectors when
        ``spec`` is ``None``.
    spec : the published input spec (``None``: the inputs are float vectors).
    text_dims : the most dimensions kept for texts.

    Examples
    --------
    >>> import numpy as np
    >>> attacker_features(np.array([[1.0, 10.0], [3.0, 10.0]]), None)
    array([[-1.,  0.],
           [ 1.,  0.]])
    """
    if isinstance(text_dims, bool) or not isinstance(text_dims, int) or text_dims < 1:
        raise InvalidInputError(BAD_TEXT_DIMS.format(value=text_dims))
    if len(pool) == 0:
        raise InvalidInputError(EMPTY_POOL)
    if spec is None:
        return _standardised(_numbers(pool, "vectors").reshape(len(pool), -1))
    if isinstance(spec, TabularSpec):
        return _records(pool, spec)
    if isinstance(spec, ImageSpec):
        images = _numbers(pool, "images")
        if images.shape[1:] != spec.shape:
            raise InvalidInputError(
                BAD_IMAGE_POOL.format(shape=images.shape, expected=("n", *spec.shape))
            )
        flat = images.reshape(len(images), -1)
        middle = (spec.low + spec.high) / 2.0
        scaled = (np.where(np.isfinite(flat), flat, middle) - spec.low) / (spec.high - spec.low)
        return np.asarray(scaled, dtype=np.float64)
    texts = np.asarray([str(item) for item in np.asarray(pool, dtype=object).reshape(-1)])
    return _texts(texts, text_dims)


def _numbers(pool: pd.DataFrame | NDArray[Any], kind: str) -> NDArray[np.float64]:
    try:
        return np.asarray(pool, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(NOT_NUMBERS.format(kind=kind)) from None


def _standardised(X: NDArray[np.float64]) -> NDArray[np.float64]:
    finite = np.isfinite(X)
    counts = finite.sum(axis=0)
    safe = np.where(finite, X, 0.0)
    mean = safe.sum(axis=0) / np.maximum(counts, 1)
    std = np.sqrt((np.where(finite, X - mean, 0.0) ** 2).sum(axis=0) / np.maximum(counts, 1))
    out: NDArray[np.float64] = np.where(finite, X - mean, 0.0) / np.where(std > 0, std, 1.0)
    return out


def _records(pool: pd.DataFrame | NDArray[Any], spec: TabularSpec) -> NDArray[np.float64]:
    if not isinstance(pool, pd.DataFrame):
        raise InvalidInputError(NOT_RECORDS.format(columns=", ".join(spec.names)))
    missing = [name for name in spec.names if name not in pool.columns]
    if missing:
        raise InvalidInputError(
            MISSING_POOL_COLUMNS.format(
                missing=", ".join(map(repr, missing)), columns=", ".join(spec.names)
            )
        )
    blocks: list[NDArray[np.float64]] = []
    for column in spec.columns:
        values = pool[column.name]
        if column.kind == "numerical":
            numbers = pd.to_numeric(values, errors="coerce").to_numpy(
                dtype=np.float64, na_value=np.nan
            )
            span = column.high - column.low
            scaled = (numbers - column.low) / span if span > 0 else np.zeros_like(numbers)
            blocks.append(np.where(np.isfinite(scaled), scaled, 0.5)[:, None])
        else:
            labels = values.astype(object).where(values.notna(), MISSING_VALUE).astype(str)
            codes = pd.Index(column.categories).get_indexer(pd.Index(labels))  # -1: unknown
            onehot = np.zeros((len(pool), len(column.categories)))
            known = codes >= 0
            onehot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(onehot)
    return np.hstack(blocks) if blocks else np.zeros((len(pool), 0))


def _texts(texts: NDArray[np.object_], dims: int) -> NDArray[np.float64]:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    words = TfidfVectorizer(
        ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"(?u)\b\w+\b", dtype=np.float64
    )
    try:
        tfidf = words.fit_transform(texts.tolist())
    except ValueError:  # no word in any text (only punctuation): characters instead
        chars = TfidfVectorizer(
            analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, dtype=np.float64
        )
        tfidf = chars.fit_transform(texts.tolist())
    k = min(dims, tfidf.shape[1] - 1, tfidf.shape[0] - 1)
    if k < 1:
        return np.asarray(tfidf.toarray(), dtype=np.float64)
    svd = TruncatedSVD(n_components=k, random_state=_SVD_SEED)
    return np.asarray(svd.fit_transform(tfidf), dtype=np.float64)


def surrogate_probabilities(
    model: Classifier, inputs: pd.DataFrame | NDArray[Any], n_classes: int
) -> NDArray[np.float64]:
    """The surrogate's class probabilities ``(n, n_classes)``, one column per class index.

    A surrogate fitted on a transcript that lacks a class may answer fewer columns; they are
    placed at their class index (read from ``classes_``) and the missing classes get 0.
    """
    proba = np.asarray(model.predict_proba(inputs), dtype=np.float64)
    classes = np.asarray(getattr(model, "classes_", np.arange(proba.shape[-1])))
    if (
        proba.ndim != 2
        or classes.shape != (proba.shape[1],)
        or not np.issubdtype(classes.dtype, np.integer)
        or len(np.unique(classes)) != len(classes)
        or classes.min(initial=0) < 0
        or classes.max(initial=0) >= n_classes
    ):
        raise InvalidInputError(
            BAD_SURROGATE_OUTPUT.format(shape=proba.shape, classes=classes.tolist(), c=n_classes)
        )
    if np.array_equal(classes, np.arange(n_classes)):
        return proba
    out = np.zeros((proba.shape[0], n_classes))
    out[:, classes] = proba
    return out
