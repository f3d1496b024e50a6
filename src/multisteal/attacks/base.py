"""What every attack returns (a transcript), what it is given (an :class:`AttackContext`) and
the protocol it implements.

An attack touches the target only through ``context.api``. It reads its budget from the API's
ledger (:attr:`AttackContext.budget`), trains any surrogate it needs inside its loop through
``context.fit`` (the auditor's surrogate trainer: the attack never imports one), and sends its
queries through :meth:`AttackContext.query`, which also keeps every answered batch: when the API
refuses to answer further (a detector flagged the stream) the transcript so far is not lost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data.inputs import InputSpec, concat_inputs, n_inputs, take_inputs
from multisteal.errors import InvalidInputError, QueryRefusedError
from multisteal.models.zoo import Classifier
from multisteal.query.api import QueryAPI
from multisteal.query.outputs import Answer

__all__ = [
    "Attack",
    "AttackContext",
    "AttackSetting",
    "Transcript",
    "concat_answers",
    "join_transcripts",
    "query_in_batches",
    "run_attack",
]

UNBUDGETED = (
    "Attacks spend a budget read off the API's ledger, but this API has no budget; create it "
    "with budget=N."
)
NO_FIT = (
    "The {name} attack trains a surrogate inside its loop and needs the context's fit "
    "callable (AttackContext(fit=...)); none was given."
)
NO_TRANSCRIPTS = "join_transcripts needs at least one transcript."
NO_POOL = "The {name} attack draws its queries from the attacker's pool, but no pool was given."

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


@dataclass(frozen=True)
class AttackSetting:
    """What an attack's registry entry checks before any query is sent (see
    :meth:`multisteal.attacks.AttackSpec.check`).

    ``output_mode`` is what the API effectively reveals after its defences (``probabilities``,
    ``top-k``, ``rounded``, ``label`` or ``leaf``); ``pool_size`` is ``None`` without a pool;
    ``surrogate_torch`` says whether the attacker's surrogate is a torch network (``None``:
    unknown, e.g. no surrogate trainer).
    """

    modality: str
    output_mode: str
    n_classes: int
    budget: int
    pool_size: int | None = None
    surrogate_torch: bool | None = None
    input_spec: InputSpec | None = None
    n_features: int = 0


Fit = Callable[[Transcript, int], Classifier]
"""``fit(transcript, seed) -> fitted surrogate``: the attacker's surrogate trainer."""


@dataclass
class AttackContext:
    """Everything an attack may use: the API, its own random stream, the attacker's pool (raw
    inputs of the target's modality, or ``None``) and a surrogate trainer.

    Parameters
    ----------
    api : the target's query API (its ledger holds the budget).
    rng : the attack's random stream.
    pool : the attacker's unlabeled inputs, if it has any.
    fit : ``fit(transcript, seed)`` returning a fitted surrogate (attacks that retrain in their
        loop); ``surrogate_torch`` says whether it returns a torch network.
    batch_size : the largest batch sent in one request.
    """

    api: QueryAPI
    rng: np.random.Generator
    pool: pd.DataFrame | NDArray[Any] | None = None
    fit: Fit | None = None
    surrogate_torch: bool | None = None
    batch_size: int = 256
    answered: list[Transcript] = field(default_factory=list, init=False, repr=False)

    @property
    def input_spec(self) -> InputSpec | None:
        return self.api.input_spec

    @property
    def budget(self) -> int:
        """The rows the API will still answer (read off its ledger)."""
        remaining = self.api.ledger.remaining
        if remaining is None:
            raise InvalidInputError(UNBUDGETED)
        return int(remaining)

    def setting(self) -> AttackSetting:
        """This context as the registry's checks see it."""
        spec = self.api.input_spec
        return AttackSetting(
            modality="tabular" if spec is None else spec.modality,
            output_mode=self.api.output_mode,
            n_classes=self.api.n_classes,
            budget=self.budget,
            pool_size=None if self.pool is None else n_inputs(self.pool),
            surrogate_torch=self.surrogate_torch,
            input_spec=spec,
            n_features=self.api.n_features,
        )

    def require_pool(self, name: str) -> pd.DataFrame | NDArray[Any]:
        if self.pool is None:
            raise InvalidInputError(NO_POOL.format(name=name))
        return self.pool

    def fit_surrogate(self, name: str, transcript: Transcript, seed: int) -> Classifier:
        """The attacker's surrogate fitted on ``transcript`` (via the context's ``fit``)."""
        if self.fit is None:
            raise InvalidInputError(NO_FIT.format(name=name))
        return self.fit(transcript, seed)

    def query(
        self, X: pd.DataFrame | NDArray[Any], source_index: NDArray[np.int64] | None = None
    ) -> Transcript:
        """Send ``X`` in batches of ``batch_size`` and return its transcript. Every answered
        batch is also kept in :attr:`answered` as soon as it is answered (see
        :meth:`transcript`)."""
        sent: list[Transcript] = []
        for batch in _batches(self.api, X, self.batch_size, source_index):
            self.answered.append(batch)
            sent.append(batch)
        return join_transcripts(sent)

    def transcript(self) -> Transcript | None:
        """Everything answered so far through :meth:`query`, in order (``None``: nothing)."""
        return join_transcripts(self.answered) if self.answered else None


@runtime_checkable
class Attack(Protocol):
    """An extraction attack: a query strategy that spends the budget left on
    ``context.api``'s ledger (or less) and returns its transcript."""

    name: str

    def run(self, context: AttackContext) -> Transcript: ...


def run_attack(attack: Attack, context: AttackContext) -> tuple[Transcript | None, str]:
    """Run ``attack``; returns ``(transcript, stop)``. ``stop`` is ``"finished"``, or
    ``"refused"`` when the API stopped answering (a detector flagged the stream): the
    transcript is then everything answered before, with the pool positions of what came from
    the pool. (An attack that asks for more than its budget is a bug, and its error is raised.)
    """
    try:
        return attack.run(context), "finished"
    except QueryRefusedError:
        return context.transcript(), "refused"


def _batches(
    api: QueryAPI,
    X: pd.DataFrame | NDArray[Any],
    batch_size: int,
    source_index: NDArray[np.int64] | None = None,
) -> Iterator[Transcript]:
    """Send ``X`` to ``api`` in batches, yielding each batch's transcript once answered."""
    n = n_inputs(X)
    for start in range(0, n, batch_size):
        rows = np.arange(start, min(start + batch_size, n))
        part = take_inputs(X, rows)
        yield Transcript(
            part, api.query(part), None if source_index is None else source_index[rows]
        )


def query_in_batches(
    api: QueryAPI, X: pd.DataFrame | NDArray[Any], *, batch_size: int
) -> Transcript:
    """Send the inputs ``X`` to ``api`` in batches and collect the transcript."""
    return join_transcripts(list(_batches(api, X, batch_size)))


def join_transcripts(parts: Sequence[Transcript]) -> Transcript:
    """One transcript of ``parts`` in order (their source indices joined when all have one)."""
    if not parts:
        raise InvalidInputError(NO_TRANSCRIPTS)
    if len(parts) == 1:
        return parts[0]
    sources = [p.source_index for p in parts]
    joined = (
        None
        if any(s is None for s in sources)
        else np.concatenate([s for s in sources if s is not None]).astype(np.int64)
    )
    return Transcript(
        concat_inputs([p.queries for p in parts]),
        concat_answers([p.answers for p in parts]),
        joined,
    )


def concat_answers(answers: list[Answer]) -> Answer:
    """One answer from several batches' answers (in order)."""
    first = answers[0]
    return Answer(
        labels=np.concatenate([a.labels for a in answers]),
        scores=None
        if first.scores is None
        else np.concatenate([a.scores for a in answers if a.scores is not None]),
        revealed=None
        if first.revealed is None
        else np.concatenate([a.revealed for a in answers if a.revealed is not None]),
        leaves=None
        if first.leaves is None
        else np.concatenate([a.leaves for a in answers if a.leaves is not None]),
        mode=first.mode,
        n_classes=first.n_classes,
    )
