"""Retraining exploration: refit the surrogate on the same transcript with other seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from multisteal.errors import InvalidInputError
from multisteal.rashomon.base import Candidates, ExplorationContext

__all__ = ["RetrainExplorer"]

BAD_N_MEMBERS = "n_members must be >= 1, got {n}."


@dataclass
class RetrainExplorer:
    """Candidates refitted with seeds ``seed_offset + 1 .. seed_offset + n_members``.

    Seeds change initialisation and shuffling; with ``bootstrap=True`` each candidate is also
    fitted on a bootstrap resample (with replacement) of the training transcript.
    """

    n_members: int = 20
    bootstrap: bool = False
    seed_offset: int = 1000
    name: str = field(default="retrain", init=False)

    def __post_init__(self) -> None:
        if self.n_members < 1:
            raise InvalidInputError(BAD_N_MEMBERS.format(n=self.n_members))

    def describe(self) -> dict[str, object]:
        return {"explorer": self.name, "n_members": self.n_members, "bootstrap": self.bootstrap}

    def explore(self, context: ExplorationContext) -> Candidates:
        names = list(context.inputs)
        outputs: dict[str, list[np.ndarray]] = {
            k: [context.surrogate.predict_proba(context.inputs[k])] for k in names
        }
        rows: list[dict[str, object]] = [{"member": 0, "seed": -1, "reference": True}]
        n = len(context.transcript)
        for i in range(1, self.n_members + 1):
            transcript = context.transcript
            if self.bootstrap:
                transcript = transcript.take(np.sort(context.rng.integers(0, n, size=n)))
            seed = self.seed_offset + i
            model = context.refit(transcript, seed)
            for k in names:
                outputs[k].append(model.predict_proba(context.inputs[k]))
            rows.append({"member": i, "seed": seed, "reference": False})
        params = pd.DataFrame(rows)
        params["explorer"] = self.name
        params["bootstrap"] = self.bootstrap
        return Candidates(self.name, params, {k: np.stack(v) for k, v in outputs.items()})
