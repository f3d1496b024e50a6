"""Small surrogates shared by the attack tests: a constant one and a flat logistic regression,
and the ``fit(transcript, seed)`` callable that picks between them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from multisteal.attacks import Transcript
from multisteal.data.inputs import TabularSpec, TextSpec
from multisteal.models.zoo import make_pipeline


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


def fit_text(transcript: Transcript, seed: int) -> Any:
    """A TF-IDF logistic surrogate on the transcript's labels."""
    model = make_pipeline("tfidf-logistic", TextSpec(), n_classes=2, random_state=seed)
    return model.fit(transcript.queries, transcript.answers.labels)


def text_problem() -> tuple[np.ndarray, Any]:
    """60 short reviews (10 phrasings, 6 copies each, numbered) and a TF-IDF target on them."""
    good = ["a good film", "great fun", "good actors", "a fun plot", "great and good"]
    bad = ["a dull film", "bad plot", "long and dull", "bad actors", "dull and bad"]
    texts = np.array([f"{s} {i}" for i in range(6) for s in good + bad], dtype=object)
    target = make_pipeline("tfidf-logistic", TextSpec(), n_classes=2).fit(
        texts, np.tile([1] * 5 + [0] * 5, 6)
    )
    return texts, target


def record_problem() -> tuple[pd.DataFrame, TabularSpec, Any]:
    """200 records (a category and a number), their spec and a logistic target on them."""
    rng = np.random.default_rng(0)
    pool = pd.DataFrame(
        {"kind": rng.choice(["a", "b", "c"], size=200), "x": rng.uniform(0.0, 10.0, size=200)}
    )
    spec = TabularSpec.from_frame(pool, categorical=["kind"], numerical=["x"])
    labels = ((pool["kind"] == "a") | (pool["x"] > 7)).astype(int)
    return pool, spec, make_pipeline("logistic", spec).fit(pool, labels)
