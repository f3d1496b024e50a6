"""Shared fixtures: small, fast problems with known structure."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
import torch

torch.set_num_threads(1)
# Sentence embeddings and downloads are cached in a folder of this test session, not the user's.
os.environ.setdefault("MULTISTEAL_CACHE", tempfile.mkdtemp(prefix="multisteal-tests-"))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def blobs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """600 rows, 5 features, a linearly separable-ish binary label."""
    X = rng.normal(size=(600, 5))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(np.int64)
    return X, y
