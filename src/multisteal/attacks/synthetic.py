"""The ``synthetic`` attack: rows drawn from per-feature marginals of the pool, no real rows."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import Transcript, query_in_batches
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI
from multisteal.query.ledger import check_budget

__all__ = ["SyntheticAttack", "sample_marginals"]

BAD_GROUPS = "feature_groups must cover each of the {d} columns exactly once."


def sample_marginals(
    pool: NDArray[np.float64],
    n: int,
    *,
    rng: np.random.Generator,
    feature_groups: Sequence[NDArray[np.int64]] | None = None,
) -> NDArray[np.float64]:
    """Draw ``n`` rows whose features are independent draws from the pool's marginals.

    Each group of columns (one original feature, e.g. a one-hot block) is copied as a unit from
    an independently chosen pool row, so categorical blocks stay valid one-hot vectors while the
    joint distribution across features is destroyed.
    """
    d = pool.shape[1]
    groups = (
        [np.array([j]) for j in range(d)]
        if feature_groups is None
        else [np.asarray(g) for g in feature_groups]
    )
    covered = np.sort(np.concatenate(groups)) if groups else np.array([], dtype=np.int64)
    if covered.shape[0] != d or not np.array_equal(covered, np.arange(d)):
        raise InvalidInputError(BAD_GROUPS.format(d=d))
    out = np.empty((n, d), dtype=np.float64)
    for cols in groups:
        donors = rng.integers(0, pool.shape[0], size=n)
        out[:, cols] = pool[donors][:, cols]
    return out


@dataclass
class SyntheticAttack:
    """Query rows sampled from per-feature marginals of the attacker's pool."""

    pool: NDArray[np.float64]
    feature_groups: Sequence[NDArray[np.int64]] | None = None
    batch_size: int = 256
    name: str = field(default="synthetic", init=False)

    def run(self, api: QueryAPI, budget: int, *, rng: np.random.Generator) -> Transcript:
        budget = check_budget(budget)
        X = sample_marginals(self.pool, budget, rng=rng, feature_groups=self.feature_groups)
        return query_in_batches(api, X, batch_size=self.batch_size)
