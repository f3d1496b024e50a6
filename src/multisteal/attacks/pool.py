"""The ``pool`` attack: the attacker holds unlabeled inputs (its pool) and queries them.

The pool is in-distribution (rows of the target's own dataset held by the attacker) or, in
the Knockoff setting, another dataset of the same modality (``--pool-dataset``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import Transcript, query_in_batches
from multisteal.data.inputs import n_inputs, take_inputs
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI
from multisteal.query.ledger import check_budget

__all__ = ["PoolAttack"]

POOL_TOO_SMALL = "The pool attack needs {budget} distinct rows but the attacker's pool has {size}."


@dataclass
class PoolAttack:
    """Query ``budget`` inputs drawn without replacement from the attacker's pool."""

    pool: pd.DataFrame | NDArray[Any]
    batch_size: int = 256
    name: str = field(default="pool", init=False)

    def run(self, api: QueryAPI, budget: int, *, rng: np.random.Generator) -> Transcript:
        budget = check_budget(budget)
        size = n_inputs(self.pool)
        if budget > size:
            raise InvalidInputError(POOL_TOO_SMALL.format(budget=budget, size=size))
        rows = np.sort(rng.choice(size, size=budget, replace=False))
        transcript = query_in_batches(api, take_inputs(self.pool, rows), batch_size=self.batch_size)
        return replace(transcript, source_index=rows.astype(np.int64))
