"""Extraction attacks: query strategies that spend a budget and return a transcript."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import Attack, Transcript, query_in_batches
from multisteal.attacks.pool import PoolAttack
from multisteal.attacks.synthetic import SyntheticAttack, sample_marginals
from multisteal.errors import InvalidInputError

__all__ = [
    "ATTACKS",
    "Attack",
    "PoolAttack",
    "SyntheticAttack",
    "Transcript",
    "make_attack",
    "query_in_batches",
    "sample_marginals",
]

ATTACKS: tuple[str, ...] = ("pool", "synthetic")
UNKNOWN_ATTACK = "Unknown attack {name!r}. Available attacks: {available}."


def make_attack(
    name: str,
    *,
    pool: NDArray[np.float64],
    feature_groups: Sequence[NDArray[np.int64]] | None = None,
    batch_size: int = 256,
) -> Attack:
    """Create the named attack from the attacker's knowledge (its pool of rows)."""
    if name == "pool":
        return PoolAttack(pool, batch_size=batch_size)
    if name == "synthetic":
        return SyntheticAttack(pool, feature_groups=feature_groups, batch_size=batch_size)
    raise InvalidInputError(UNKNOWN_ATTACK.format(name=name, available=", ".join(ATTACKS)))
