from __future__ import annotations

import numpy as np
import pytest

from multisteal.attacks import AttackContext, PoolAttack
from multisteal.errors import InvalidInputError
from multisteal.models import train_target
from multisteal.query import LocalQueryAPI
from multisteal.surrogates import NO_SOFT_LABELS, fit_surrogate, surrogate_targets


@pytest.fixture
def transcripts(blobs, rng):
    X, y = blobs
    target = train_target("logistic", X[:300], y[:300])
    out = {}
    for mode in ("probabilities", "label", "top-k", "rounded"):
        api = LocalQueryAPI(target, output=mode, budget=300, decimals=1)
        out[mode] = PoolAttack().run(AttackContext(api, np.random.default_rng(0), pool=X[300:]))
    return target, X, out


def test_targets_follow_the_output_mode(transcripts) -> None:
    _, _, t = transcripts
    assert surrogate_targets(t["label"]).ndim == 1
    soft = surrogate_targets(t["probabilities"])
    np.testing.assert_allclose(soft, t["probabilities"].answers.scores)
    np.testing.assert_array_equal(
        surrogate_targets(t["probabilities"], "hard"), t["probabilities"].answers.labels
    )
    with pytest.raises(InvalidInputError) as info:
        surrogate_targets(t["label"], "soft")
    assert str(info.value) == NO_SOFT_LABELS.format(mode="label")


@pytest.mark.parametrize("architecture", ["mlp", "logistic"])
@pytest.mark.parametrize("mode", ["probabilities", "label"])
def test_surrogate_reaches_high_fidelity(transcripts, architecture, mode) -> None:
    target, X, t = transcripts
    surrogate = fit_surrogate(t[mode], architecture=architecture, random_state=0)
    agreement = (surrogate.predict(X[:300]) == target.predict(X[:300])).mean()
    assert agreement > 0.93
    assert surrogate.n_classes_ == 2


def test_unknown_surrogate(transcripts) -> None:
    _, _, t = transcripts
    with pytest.raises(InvalidInputError, match="Unknown surrogate architecture 'xgboost'"):
        fit_surrogate(t["label"], architecture="xgboost")
