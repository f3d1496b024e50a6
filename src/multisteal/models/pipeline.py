"""Raw-input models: an encoder (raw records, images or sentences → numbers) and a classifier,
fitted and saved as one artifact.

A deployed model takes raw inputs, so a target is an :class:`InputPipeline`: its encoder is
fitted on the owner's training rows and never leaves the target. The attacker's surrogate is
an :class:`InputPipeline` too, with an encoder of its own fitted on attacker-side data only
(the queries of its transcript).

Encoders follow the scikit-learn transformer contract (``fit(X)`` returns ``self``,
``transform(X)``):

* :class:`~multisteal.data.TabularPreprocessor` — one-hot and standardise records;
* :class:`ImageEncoder` — images ``(n, H, W[, C])`` → standardised ``(n, C, H, W)`` float32;
* scikit-learn's ``TfidfVectorizer`` — sentences → sparse TF-IDF vectors;
* :class:`EmbeddingEncoder` — sentences → frozen all-MiniLM-L6-v2 embeddings (cached on disk).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone

from multisteal.errors import InvalidInputError, NotFittedError

__all__ = ["EmbeddingEncoder", "ImageEncoder", "InputPipeline", "soft_target_rows"]

NOT_FITTED = "This {cls} is not fitted yet: call fit before {method}."
IMAGE_RANK = "ImageEncoder takes images of shape (n, H, W) or (n, H, W, C); got shape {shape}."
IMAGE_SIZE = "ImageEncoder was fitted on images of shape {expected}; got images of shape {got}."
NO_MODULE = "{cls} has no torch module: its classifier is a {model}."
NO_APPLY = "{cls} has no leaves: its classifier is a {model}, not a decision tree."


class ImageEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Images ``(n, H, W)`` or ``(n, H, W, C)`` → float32 ``(n, C, H, W)``, standardised per
    channel with the mean and standard deviation of the images it was fitted on."""

    def fit(self, X: ArrayLike, y: object = None) -> ImageEncoder:
        images = self._channels_last(X)
        values = images.reshape(-1, images.shape[-1]).astype(np.float64)
        self.mean_ = values.mean(axis=0)
        std = values.std(axis=0)
        self.scale_ = np.where(std > 0, std, 1.0)
        self.image_shape_ = tuple(int(v) for v in np.asarray(X).shape[1:])
        return self

    @staticmethod
    def _channels_last(X: ArrayLike) -> NDArray[Any]:
        images = np.asarray(X)
        if images.ndim == 3:
            return images[..., None]
        if images.ndim != 4:
            raise InvalidInputError(IMAGE_RANK.format(shape=images.shape))
        return images

    def transform(self, X: ArrayLike) -> NDArray[np.float32]:
        if not hasattr(self, "mean_"):
            raise NotFittedError(NOT_FITTED.format(cls=type(self).__name__, method="transform"))
        shape = tuple(np.asarray(X).shape[1:])
        if shape != self.image_shape_:
            raise InvalidInputError(IMAGE_SIZE.format(expected=self.image_shape_, got=shape))
        images = self._channels_last(X).astype(np.float64)
        scaled = (images - self.mean_) / self.scale_
        return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2), dtype=np.float32)


class EmbeddingEncoder(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Sentences → embeddings of a frozen sentence encoder (all-MiniLM-L6-v2).

    Nothing is learned (``fit`` only records that it ran); embeddings are cached on disk by
    model and text hash (:class:`multisteal.models.text.SentenceEmbedder`), so a second run
    does not re-encode. The embedding model is never perturbed by a Rashomon explorer: only the
    classifier on top of it is.
    """

    def __init__(self, model: str = "all-MiniLM-L6-v2", cache_dir: str | None = None) -> None:
        self.model = model
        self.cache_dir = cache_dir

    def fit(self, X: object, y: object = None) -> EmbeddingEncoder:
        self.fitted_ = True
        return self

    def transform(self, X: object) -> NDArray[np.float32]:
        from multisteal.models.text import SentenceEmbedder

        texts = [str(t) for t in np.asarray(X, dtype=object).reshape(-1)]
        embedder = getattr(self, "_embedder", None)
        if embedder is None:  # one per encoder: it keeps the cache index in memory
            if self.cache_dir is None:  # the default cache folder
                embedder = SentenceEmbedder(model_name=self.model)
            else:
                embedder = SentenceEmbedder(self.cache_dir, model_name=self.model)
            self._embedder = embedder
        return np.asarray(embedder.embed(texts), dtype=np.float32)


def soft_target_rows(
    encoded: Any, soft: NDArray[np.float64]
) -> tuple[Any, NDArray[np.int64], NDArray[np.float64]]:
    """Rows, labels and weights that turn soft targets into a weighted hard-label problem.

    Each row is repeated once per class with a non-zero target probability, labelled with that
    class and weighted by the probability: the weighted log-loss then equals the cross-entropy
    against the soft targets, so any classifier with ``sample_weight`` learns from them.
    """
    rows, classes = np.nonzero(soft > 0)
    taken = encoded[rows]
    return taken, classes.astype(np.int64), soft[rows, classes]


class InputPipeline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """An encoder and a classifier as one model that takes raw inputs.

    ``fit(X, y)`` fits a clone of ``encoder`` on ``X`` and a clone of ``model`` on the encoded
    rows. ``y`` is class indices ``(n,)`` or soft targets ``(n, C)``: torch models train on
    soft targets directly, other models through :func:`soft_target_rows`.

    Attributes (after fit): ``encoder_``, ``model_``, ``classes_``.
    """

    def __init__(self, encoder: Any, model: Any, *, n_classes: int | None = None) -> None:
        self.encoder = encoder
        self.model = model
        self.n_classes = n_classes

    def fit(
        self,
        X: Any,
        y: ArrayLike,
        *,
        validation: tuple[Any, ArrayLike] | None = None,
        **fit_params: Any,
    ) -> InputPipeline:
        """Fit the encoder on ``X`` and the classifier on the encoded ``X``.

        ``validation`` — raw inputs and labels — selects the epochs of a torch classifier
        (the weights of the epoch with the lowest validation loss are kept); other classifiers
        ignore it.
        """
        encoder = clone(self.encoder).fit(X)
        model = clone(self.model)
        encoded = encoder.transform(X)
        targets = np.asarray(y)
        if validation is not None and _takes_soft(model):
            fit_params = {
                **fit_params,
                "X_val": encoder.transform(validation[0]),
                "y_val": np.asarray(validation[1]),
            }
        seen_classes = (
            np.flatnonzero(targets.sum(axis=0) > 0) if targets.ndim == 2 else np.unique(targets)
        )
        if not _takes_soft(model) and seen_classes.size < 2:
            # A transcript that holds one class only (a skewed or tiny budget): scikit-learn's
            # classifiers refuse it, and the only model that fits it answers that class.
            from sklearn.dummy import DummyClassifier

            model = DummyClassifier(strategy="prior")
            model.fit(np.zeros((len(targets), 1)), np.full(len(targets), seen_classes[0]))
            encoded = None
        elif targets.ndim == 2 and not _takes_soft(model):
            rows, labels, weights = soft_target_rows(encoded, targets.astype(np.float64))
            model.fit(rows, labels, sample_weight=weights, **fit_params)
        else:
            model.fit(encoded, targets, **fit_params)
        self.encoder_ = encoder
        self.model_ = model
        seen = np.asarray(model.classes_).astype(np.int64)
        n_classes = self.n_classes
        if n_classes is None:
            n_classes = targets.shape[1] if targets.ndim == 2 else max(int(seen.max()) + 1, 2)
        self.n_classes_ = int(n_classes)
        # A transcript may lack a class: the model's columns are placed at their class index.
        self.columns_ = seen
        return self

    @classmethod
    def from_fitted(
        cls, encoder: Any, model: Any, *, n_classes: int, columns: NDArray[np.int64]
    ) -> InputPipeline:
        """A fitted pipeline from a fitted encoder and classifier (a loaded artifact)."""
        pipeline = cls(encoder, model, n_classes=n_classes)
        pipeline.encoder_ = encoder
        pipeline.model_ = model
        pipeline.n_classes_ = int(n_classes)
        pipeline.columns_ = np.asarray(columns, dtype=np.int64)
        return pipeline

    def _check(self, method: str) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(NOT_FITTED.format(cls=type(self).__name__, method=method))

    @property
    def classes_(self) -> NDArray[Any]:
        self._check("classes_")
        return np.arange(self.n_classes_)

    @property
    def module_(self) -> Any:
        """The classifier's torch module (what dropout perturbs); the encoder is not in it."""
        self._check("module_")
        module = getattr(self.model_, "module_", None)
        if module is None:
            raise AttributeError(
                NO_MODULE.format(cls=type(self).__name__, model=type(self.model_).__name__)
            )
        return module

    @property
    def random_state(self) -> Any:
        """The classifier's seed (read by the retrain explorer)."""
        return getattr(self.model, "random_state", None)

    def encode(self, X: Any) -> Any:
        """The classifier's inputs for raw inputs ``X`` (checked against ``input_spec_`` when
        the pipeline carries the spec its owner published, as a loaded target does)."""
        self._check("encode")
        spec = getattr(self, "input_spec_", None)
        if spec is not None:
            X = spec.validate(X)
        return self.encoder_.transform(X)

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        self._check("predict_proba")
        encoded = self.encode(X)
        if type(self.model_).__name__ == "DummyClassifier":  # one class seen: constant answers
            encoded = np.zeros((encoded.shape[0], 1))
        scores = np.asarray(self.model_.predict_proba(encoded), dtype=np.float64)
        if scores.shape[1] == self.n_classes_:
            return scores
        out = np.zeros((scores.shape[0], self.n_classes_), dtype=np.float64)
        out[:, self.columns_] = scores
        return out

    def predict(self, X: Any) -> NDArray[np.int64]:
        out: NDArray[np.int64] = np.argmax(self.predict_proba(X), axis=1).astype(np.int64)
        return out

    @property
    def apply(self) -> Callable[[Any], NDArray[np.int64]]:
        """``apply(X)``: the id of the leaf that decides each raw input, ``(n,)`` int64.

        Only a pipeline whose fitted classifier has leaves (a decision tree) has it: for any
        other classifier, and before ``fit``, reading it raises ``AttributeError``, so
        ``hasattr(pipeline, "apply")`` says whether a leaf-revealing API can serve it.
        """
        self._check("apply")  # NotFittedError is an AttributeError
        leaves = getattr(self.model_, "apply", None)
        if leaves is None:
            raise AttributeError(
                NO_APPLY.format(cls=type(self).__name__, model=type(self.model_).__name__)
            )

        def apply(X: Any) -> NDArray[np.int64]:
            return np.asarray(leaves(self.encode(X)), dtype=np.int64)

        return apply


def _takes_soft(model: Any) -> bool:
    """Torch classifiers train on soft targets (they have a ``min_steps`` training loop)."""
    return hasattr(model, "min_steps")
