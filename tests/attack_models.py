"""Small surrogates shared by the attack tests: a constant one and a flat logistic regression,
and the ``fit(transcript, seed)`` callable that picks between them."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from multisteal.attacks import Transcript


class Constant:
    """The surrogate of a transcript holding one class: that class, always."""

    def __init__(self, label: int) -> None:
        self.classes_ = np.array([label])

    def fit(self, X: Any, y: Any) -> Constant:
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.ones((len(X), 1))


class FlatLogistic:
    """A logistic regression on flattened numeric inputs (vectors or images)."""

    def fit(self, X: Any, y: Any) -> FlatLogistic:
        self.model_ = LogisticRegression(max_iter=1000).fit(
            np.asarray(X, float).reshape(len(X), -1), y
        )
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.model_.predict_proba(np.asarray(X, float).reshape(len(X), -1))


def fit_flat(transcript: Transcript, seed: int) -> Any:
    labels = transcript.answers.labels
    if len(np.unique(labels)) < 2:
        return Constant(int(labels[0]))
    return FlatLogistic().fit(transcript.queries, labels)
