"""Attacks that hold no real inputs of the target's distribution.

* ``synthetic`` — inputs drawn from the target's published input spec (uniformly over each
  column's categories and range, or uniform-noise images): the attacker knows only the domain.
* ``marginals`` — inputs whose columns are independent draws from the pool's per-column
  marginals: the attacker knows each feature's distribution but not their dependence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, Transcript
from multisteal.errors import InvalidInputError

__all__ = ["MarginalsAttack", "SyntheticAttack", "sample_marginals"]

BAD_GROUPS = "feature_groups must cover each of the {d} columns exactly once."
NO_SPEC = (
    "The synthetic attack draws inputs from the target's published input spec, but this API "
    "publishes none (it takes encoded vectors); use the marginals attack with a pool instead."
)
NOT_TABULAR_MARGINALS = (
    "The marginals attack draws each column of a record independently; it applies to tabular "
    "pools (records or encoded vectors), not to {kind}."
)


def sample_marginals(
    pool: pd.DataFrame | NDArray[np.float64],
    n: int,
    *,
    rng: np.random.Generator,
    feature_groups: Sequence[NDArray[np.int64]] | None = None,
) -> Any:
    """Draw ``n`` rows whose features are independent draws from the pool's marginals.

    For a table of records each column is copied from an independently chosen pool row. For an
    encoded matrix each group of columns (one original feature, e.g. a one-hot block) is copied
    as a unit, so categorical blocks stay valid one-hot vectors while the joint distribution
    across features is destroyed.
    """
    if isinstance(pool, pd.DataFrame):
        columns = {
            name: pool[name].to_numpy()[rng.integers(0, len(pool), size=n)] for name in pool.columns
        }
        return pd.DataFrame(columns, columns=list(pool.columns))
    if pool.ndim != 2:
        raise InvalidInputError(NOT_TABULAR_MARGINALS.format(kind=f"arrays of shape {pool.shape}"))
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
class MarginalsAttack:
    """Query rows sampled from per-column marginals of the attacker's pool (``feature_groups``:
    column groups of an encoded pool copied as units, e.g. one-hot blocks)."""

    feature_groups: Sequence[NDArray[np.int64]] | None = None
    name: str = field(default="marginals", init=False)

    def run(self, context: AttackContext) -> Transcript:
        pool = context.require_pool(self.name)
        X = sample_marginals(
            pool, context.budget, rng=context.rng, feature_groups=self.feature_groups
        )
        return context.query(X)


@dataclass
class SyntheticAttack:
    """Query inputs drawn from the API's published input spec (no data needed).

    Against an API that publishes no spec (encoded vectors), the pool's marginals are used as
    the domain instead (the context must then have a pool).
    """

    feature_groups: Sequence[NDArray[np.int64]] | None = None
    name: str = field(default="synthetic", init=False)

    def run(self, context: AttackContext) -> Transcript:
        budget, spec = context.budget, context.input_spec
        if spec is not None:
            X: Any = spec.sample(budget, context.rng)
        elif context.pool is not None:
            X = sample_marginals(
                context.pool, budget, rng=context.rng, feature_groups=self.feature_groups
            )
        else:
            raise InvalidInputError(NO_SPEC)
        return context.query(X)
