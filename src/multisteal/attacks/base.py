"""What every attack returns (a transcript) and the protocol it implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data.inputs import concat_inputs, n_inputs, take_inputs
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI
from multisteal.query.outputs import Answer

__all__ = ["Attack", "Transcript", "query_in_batches"]

BAD_HOLDOUT = "holdout_fraction must be in [0, 1), got {fraction}."
HOLDOUT_TOO_SMALL = (
    "A transcript of {n} rows cannot keep a hold-out slice of {fraction:.0%} and still train on "
    "at least 2 rows."
)


@dataclass(frozen=True)
class Transcript:
    """The attacker's record: the inputs it sent and the answers it got (aligned).

    ``queries`` are raw inputs of any modality (a DataFrame of records, an image array, an
    object array of texts) or, against an encoded-vector API, a float matrix.
    """

    queries: pd.DataFrame | NDArray[Any]
    answers: Answer
    source_index: NDArray[np.int64] | None = None
    """Positions in the attacker's pool of the queried inputs (``None`` when they were made up,
    e.g. drawn from the input spec)."""

    def __post_init__(self) -> None:
        if n_inputs(self.queries) != len(self.answers):
            raise InvalidInputError(
                f"Transcript has {n_inputs(self.queries)} queries but {len(self.answers)} answers."
            )

    def __len__(self) -> int:
        return n_inputs(self.queries)

    def take(self, indices: NDArray[np.int64]) -> Transcript:
        """The transcript restricted to ``indices``."""
        source = None if self.source_index is None else self.source_index[indices]
        return Transcript(take_inputs(self.queries, indices), self.answers.take(indices), source)

    def holdout_split(
        self, fraction: float, *, rng: np.random.Generator
    ) -> tuple[Transcript, Transcript]:
        """Split into (train, held-out) parts; the held-out part has ``round(fraction * n)`` rows.

        The attacker fits its surrogate on the train part and keeps the held-out part to check
        candidate surrogates (the ``transcript`` Rashomon criterion).
        """
        if not 0.0 <= fraction < 1.0:
            raise InvalidInputError(BAD_HOLDOUT.format(fraction=fraction))
        n = len(self)
        n_hold = round(fraction * n)
        if n - n_hold < 2:
            raise InvalidInputError(HOLDOUT_TOO_SMALL.format(n=n, fraction=fraction))
        order = rng.permutation(n)
        return self.take(np.sort(order[n_hold:])), self.take(np.sort(order[:n_hold]))


@runtime_checkable
class Attack(Protocol):
    """An extraction attack: a query strategy that spends ``budget`` rows of ``api``."""

    name: str

    def run(self, api: QueryAPI, budget: int, *, rng: np.random.Generator) -> Transcript: ...


def query_in_batches(
    api: QueryAPI, X: pd.DataFrame | NDArray[Any], *, batch_size: int
) -> Transcript:
    """Send the inputs ``X`` to ``api`` in batches and collect the transcript."""
    n = n_inputs(X)
    answers: list[Answer] = []
    parts = []
    for start in range(0, n, batch_size):
        part = take_inputs(X, np.arange(start, min(start + batch_size, n)))
        answers.append(api.query(part))
        parts.append(part)
    return Transcript(concat_inputs(parts) if len(parts) > 1 else parts[0], _concat(answers))


def _concat(answers: list[Answer]) -> Answer:
    first = answers[0]
    return Answer(
        labels=np.concatenate([a.labels for a in answers]),
        scores=None
        if first.scores is None
        else np.concatenate([a.scores for a in answers if a.scores is not None]),
        revealed=None
        if first.revealed is None
        else np.concatenate([a.revealed for a in answers if a.revealed is not None]),
        mode=first.mode,
        n_classes=first.n_classes,
    )
