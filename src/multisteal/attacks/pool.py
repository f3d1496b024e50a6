"""The ``pool`` attack: the attacker holds unlabeled inputs (its pool) and queries them.

The pool is in-distribution (rows of the target's own dataset held by the attacker) or, in
the Knockoff setting, another dataset of the same modality (``--pool-dataset``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from multisteal.attacks.base import AttackContext, Transcript
from multisteal.data.inputs import n_inputs, take_inputs
from multisteal.errors import InvalidInputError

__all__ = ["POOL_TOO_SMALL", "PoolAttack"]

POOL_TOO_SMALL = (
    "The {name} attack needs {budget} distinct rows but the attacker's pool has {size}."
)


@dataclass
class PoolAttack:
    """Query as many inputs as the budget allows, drawn without replacement from the pool."""

    name: str = field(default="pool", init=False)

    def run(self, context: AttackContext) -> Transcript:
        pool = context.require_pool(self.name)
        budget, size = context.budget, n_inputs(pool)
        if budget > size:
            raise InvalidInputError(POOL_TOO_SMALL.format(name=self.name, budget=budget, size=size))
        rows = np.sort(context.rng.choice(size, size=budget, replace=False)).astype(np.int64)
        return context.query(take_inputs(pool, rows), source_index=rows)
