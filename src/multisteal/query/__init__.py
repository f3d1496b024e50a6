"""Query layer: the API protocol, output policies, budget ledger and query log."""

from __future__ import annotations

from multisteal.query.api import Defence, LocalQueryAPI, QueryAPI
from multisteal.query.ledger import BudgetLedger, QueryLog, QueryRecord, batch_digest, check_budget
from multisteal.query.outputs import (
    OUTPUT_MODES,
    Answer,
    LabelOnly,
    OutputPolicy,
    Probabilities,
    Rounded,
    TopK,
    make_output_policy,
)

__all__ = [
    "OUTPUT_MODES",
    "Answer",
    "BudgetLedger",
    "Defence",
    "LabelOnly",
    "LocalQueryAPI",
    "OutputPolicy",
    "Probabilities",
    "QueryAPI",
    "QueryLog",
    "QueryRecord",
    "Rounded",
    "TopK",
    "batch_digest",
    "check_budget",
    "make_output_policy",
]
