"""The ``pool`` attack: the attacker holds unlabeled in-distribution rows and queries them."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from multisteal.attacks.base import Transcript, query_in_batches
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI
from multisteal.query.ledger import check_budget

__all__ = ["PoolAttack"]

POOL_TOO_SMALL = "The pool attack needs {budget} distinct rows but the attacker's pool has {size}."


@dataclass
class PoolAttack:
    """Query ``budget`` rows drawn without replacement from the attacker's pool."""

    pool: NDArray[np.float64]
    batch_size: int = 256
    name: str = field(default="pool", init=False)

    def run(self, api: QueryAPI, budget: int, *, rng: np.random.Generator) -> Transcript:
        budget = check_budget(budget)
        size = self.pool.shape[0]
        if budget > size:
            raise InvalidInputError(POOL_TOO_SMALL.format(budget=budget, size=size))
        rows = np.sort(rng.choice(size, size=budget, replace=False))
        return query_in_batches(
            api, np.asarray(self.pool[rows], dtype=np.float64), batch_size=self.batch_size
        )
