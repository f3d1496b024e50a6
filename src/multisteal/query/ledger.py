"""The budget ledger and the query log: every answered row is counted and recorded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.data.inputs import inputs_digest
from multisteal.errors import BudgetExceededError, InvalidInputError

__all__ = ["BudgetLedger", "QueryLog", "QueryRecord", "batch_digest"]

BAD_BUDGET = "Budget must be a positive whole number of rows, got {budget!r}."
BUDGET_EXCEEDED = (
    "Query budget exceeded: this batch has {rows} rows but only {remaining} of the budget of "
    "{total} rows remain ({used} already answered). Nothing in this batch was answered."
)


def check_budget(budget: object) -> int:
    """Return ``budget`` as an int after checking it is a positive whole number."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)) or int(budget) <= 0:
        raise InvalidInputError(BAD_BUDGET.format(budget=budget))
    return int(budget)


class BudgetLedger:
    """Counts answered rows against a budget (``None``: no limit).

    :meth:`charge` is all-or-nothing: a batch that does not fit raises
    :class:`~multisteal.errors.BudgetExceededError` and nothing is counted or answered.
    """

    def __init__(self, total: int | None) -> None:
        self.total = None if total is None else check_budget(total)
        self.used = 0

    @property
    def remaining(self) -> int | None:
        """Rows that can still be answered (``None``: unlimited)."""
        return None if self.total is None else self.total - self.used

    def check(self, rows: int) -> None:
        """Raise (counting nothing) if ``rows`` more rows do not fit in the budget."""
        if self.total is not None and self.used + rows > self.total:
            raise BudgetExceededError(
                BUDGET_EXCEEDED.format(
                    rows=rows, remaining=self.total - self.used, total=self.total, used=self.used
                )
            )

    def charge(self, rows: int) -> None:
        """Count ``rows`` answered rows, or raise if they do not fit in the budget."""
        self.check(rows)
        self.used += rows


def batch_digest(X: pd.DataFrame | NDArray[Any]) -> str:
    """SHA-256 of a query batch of any modality, to match logs against transcripts.

    A numeric array hashes its shape and float64 bytes; records and texts hash their values
    (:func:`multisteal.data.inputs.inputs_digest`).
    """
    return inputs_digest(X)


@dataclass(frozen=True)
class QueryRecord:
    """One query batch as seen by the API."""

    batch: int
    rows: int
    sha256: str
    timestamp: float
    seconds: float
    status: str  # "answered", "refused-budget" or "refused-flagged" (detector)
    used_after: int
    flagged: bool = False
    """Whether a detector had flagged the stream once this batch was answered."""


class QueryLog:
    """Append-only record of the batches an API received.

    With ``keep_inputs`` it also keeps each answered batch's inputs and the model's decisions
    on them (:meth:`answered_inputs`): what a detector such as PRADA needs to replay the stream.
    """

    def __init__(self, *, keep_inputs: bool = False) -> None:
        self._records: list[QueryRecord] = []
        self.keep_inputs = keep_inputs
        self._payloads: dict[int, tuple[Any, NDArray[np.int64]]] = {}

    def append(
        self,
        record: QueryRecord,
        *,
        inputs: Any = None,
        labels: NDArray[np.int64] | None = None,
    ) -> None:
        self._records.append(record)
        if self.keep_inputs and inputs is not None and labels is not None:
            self._payloads[record.batch] = (inputs, labels)

    def answered_inputs(self) -> list[tuple[Any, NDArray[np.int64]]]:
        """``(inputs, decisions)`` of every answered batch, in order (``keep_inputs`` only)."""
        return [self._payloads[b] for b in sorted(self._payloads)]

    @property
    def records(self) -> tuple[QueryRecord, ...]:
        return tuple(self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def rows_answered(self) -> int:
        return sum(r.rows for r in self._records if r.status == "answered")

    def to_frame(self) -> pd.DataFrame:
        """The log as a table, one row per batch."""
        columns = list(QueryRecord.__dataclass_fields__)
        return pd.DataFrame([asdict(r) for r in self._records], columns=columns)
