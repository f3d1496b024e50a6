"""Extraction attacks: query strategies that spend a budget and return a transcript.

:data:`ATTACKS` is the registry: each :class:`AttackSpec` names an attack, says which input
modalities it applies to and whether it needs the attacker's pool, and builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import Attack, Transcript, query_in_batches
from multisteal.attacks.equation_solving import EquationSolvingAttack
from multisteal.attacks.pool import PoolAttack
from multisteal.attacks.synthetic import MarginalsAttack, SyntheticAttack, sample_marginals
from multisteal.errors import InvalidInputError

__all__ = [
    "ATTACKS",
    "Attack",
    "AttackSpec",
    "EquationSolvingAttack",
    "MarginalsAttack",
    "PoolAttack",
    "SyntheticAttack",
    "Transcript",
    "make_attack",
    "query_in_batches",
    "sample_marginals",
]

UNKNOWN_ATTACK = "Unknown attack {name!r}. Available attacks: {available}."
WRONG_MODALITY = "The {name} attack does not apply to {modality} inputs: {why}"


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes
    ----------
    factory : ``(pool, feature_groups, batch_size) -> Attack``.
    modalities : the input modalities it applies to, with the reason it does not apply to the
        others (``not_applicable``).
    uses_pool : whether it queries (or samples from) the attacker's pool.
    """

    name: str
    description: str
    factory: Callable[..., Attack]
    modalities: tuple[str, ...]
    uses_pool: bool
    not_applicable: str = ""

    def check_modality(self, modality: str) -> None:
        """Raise before any query when the attack cannot run on ``modality`` inputs."""
        if modality not in self.modalities:
            raise InvalidInputError(
                WRONG_MODALITY.format(name=self.name, modality=modality, why=self.not_applicable)
            )


ATTACKS: Mapping[str, AttackSpec] = {
    "pool": AttackSpec(
        "pool",
        "query inputs of the attacker's pool (in-distribution, or --pool-dataset)",
        lambda pool, feature_groups, batch_size: PoolAttack(pool, batch_size=batch_size),
        ("tabular", "image", "text"),
        uses_pool=True,
    ),
    "synthetic": AttackSpec(
        "synthetic",
        "inputs drawn from the target's published input spec (no data)",
        lambda pool, feature_groups, batch_size: SyntheticAttack(
            pool, feature_groups=feature_groups, batch_size=batch_size
        ),
        ("tabular", "image"),
        uses_pool=False,
        not_applicable=(
            "a string domain has no distribution to draw sentences from; use the pool attack "
            "(with --pool-dataset for another corpus)."
        ),
    ),
    "marginals": AttackSpec(
        "marginals",
        "records whose columns are drawn independently from the pool's marginals",
        lambda pool, feature_groups, batch_size: MarginalsAttack(
            pool, feature_groups=feature_groups, batch_size=batch_size
        ),
        ("tabular",),
        uses_pool=True,
        not_applicable="it draws the columns of records independently; use the pool attack.",
    ),
}


def make_attack(
    name: str,
    *,
    pool: pd.DataFrame | NDArray[Any],
    feature_groups: Sequence[NDArray[np.int64]] | None = None,
    batch_size: int = 256,
) -> Attack:
    """Create the named attack from the attacker's knowledge (its pool of inputs)."""
    spec = ATTACKS.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_ATTACK.format(name=name, available=", ".join(ATTACKS)))
    return spec.factory(pool, feature_groups, batch_size)
