"""Retraining exploration: refit the surrogate on the same transcript with other seeds."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from multisteal.errors import InvalidInputError
from multisteal.rashomon.base import Candidates, ExplorationContext, ExplorerBase

__all__ = ["SEED_HIGH", "RetrainExplorer", "reference_seed"]

BAD_N_MEMBERS = "n_members must be >= 1, got {n}."
SEED_HIGH = 2**31 - 1  # member seeds are drawn uniformly from 0 .. SEED_HIGH - 1


def reference_seed(surrogate: object) -> int | None:
    """The seed the reference surrogate was fitted with, or ``None`` when it is unknown.

    Parameters
    ----------
    surrogate : the reference surrogate; its ``random_state`` attribute is read.

    Returns
    -------
    int or None
        ``random_state`` as an int; ``0`` when it is ``None`` (``TorchMLPClassifier`` seeds
        its generator with 0 then); ``None`` when the attribute is missing or not an integer.
    """
    missing = object()
    state = getattr(surrogate, "random_state", missing)
    if state is missing:
        return None
    if state is None:
        return 0
    if isinstance(state, (int, np.integer)) and not isinstance(state, bool):
        return int(state)
    return None


@dataclass
class RetrainExplorer(ExplorerBase):
    """Candidates refitted on the training transcript with seeds drawn from the audit's RNG.

    Member seeds are distinct draws from ``context.rng`` in ``0 .. SEED_HIGH - 1``, and never
    the reference surrogate's own seed (``reference_seed``), so no member is a copy of the
    reference. Seeds change initialisation and shuffling; with ``bootstrap=True`` each
    candidate is also fitted on a bootstrap resample (with replacement) of the transcript.

    Parameters
    ----------
    n_members : number of refitted candidates (besides the reference).
    bootstrap : fit each candidate on a bootstrap resample of the transcript.
    """

    n_members: int = 20
    bootstrap: bool = False
    name: str = field(default="retrain", init=False)
    refits: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if self.n_members < 1:
            raise InvalidInputError(BAD_N_MEMBERS.format(n=self.n_members))

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, one column each in a results table."""
        return {"explorer": self.name, "n_members": self.n_members, "bootstrap": self.bootstrap}

    def member_seeds(self, rng: np.random.Generator, exclude: int | None) -> list[int]:
        """``n_members`` distinct seeds drawn from ``rng``, none equal to ``exclude``.

        Parameters
        ----------
        rng : the generator the seeds are drawn from.
        exclude : a seed that must not occur (the reference surrogate's), or ``None``.

        Returns
        -------
        list of int
            Distinct seeds in ``0 .. SEED_HIGH - 1``, in the order drawn; a seed that collides
            with ``exclude`` or an earlier one is redrawn.
        """
        seeds: list[int] = []
        taken = set() if exclude is None else {exclude}
        while len(seeds) < self.n_members:
            for value in rng.integers(0, SEED_HIGH, size=self.n_members - len(seeds)):
                seed = int(value)
                if seed not in taken:
                    taken.add(seed)
                    seeds.append(seed)
        return seeds

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """Refit ``n_members`` candidates, in chunks of at most ``members_per_chunk`` members;
        row 0 of the first chunk is the reference (seed ``-1`` in ``params``)."""
        names = list(context.inputs)
        n = len(context.transcript)
        seeds = self.member_seeds(context.rng, reference_seed(context.surrogate))
        outputs: dict[str, list[np.ndarray]] = {k: [] for k in names}
        rows: list[dict[str, object]] = []
        limit = 0
        for i, seed in enumerate([-1, *seeds]):
            if i == 0:
                model = context.surrogate
            else:
                transcript = context.transcript
                if self.bootstrap:
                    transcript = transcript.take(np.sort(context.rng.integers(0, n, size=n)))
                model = context.refit(transcript, seed)
            for k in names:
                outputs[k].append(np.asarray(model.predict_proba(context.inputs[k])))
            rows.append({"member": i, "seed": seed, "reference": i == 0})
            if not limit:
                limit = context.members_per_chunk(outputs[names[0]][0].shape[1])
            if len(rows) >= limit or i == len(seeds):
                yield self._chunk(rows, outputs)
                rows, outputs = [], {k: [] for k in names}

    def _chunk(
        self, rows: list[dict[str, object]], outputs: dict[str, list[np.ndarray]]
    ) -> Candidates:
        params = pd.DataFrame(rows)
        params["explorer"] = self.name
        params["bootstrap"] = self.bootstrap
        return Candidates(self.name, params, {k: np.stack(v) for k, v in outputs.items()})
