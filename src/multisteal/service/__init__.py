"""The HTTP prediction service: a durable store of API keys, budgets and the query log; the
FastAPI app (:mod:`multisteal.service.app`, ``multisteal serve``) and its client
(:class:`multisteal.service.client.HTTPQueryAPI`), imported from their modules so that the store
needs no web framework.

:mod:`multisteal.service.store` keeps what a multi-process, multi-replica service must share:
who may query (API keys, stored only as hashes), how many rows each key may still have answered
(exactly, under concurrency and across crashes), each key's request rate, and an append-only log
of every batch received.
"""

from __future__ import annotations

from multisteal.service.store import (
    QUERY_STATUSES,
    KeyInfo,
    PostgresStore,
    QueryEntry,
    SQLiteStore,
    Store,
    hash_key,
    open_store,
)

__all__ = [
    "QUERY_STATUSES",
    "KeyInfo",
    "PostgresStore",
    "QueryEntry",
    "SQLiteStore",
    "Store",
    "hash_key",
    "open_store",
]
