"""A durable store of API keys, per-key budgets, rate limits and the query log.

The prediction service runs as several worker processes, possibly on several replicas; they
share one store, and the store alone decides whether a batch may be answered. Two backends sit
behind one interface (:class:`Store`), chosen by :func:`open_store`'s URL:

``sqlite:///PATH``
    An embedded file (the default for one machine). WAL journal, so readers never block the
    single writer; a busy timeout, so concurrent writers queue instead of failing; and
    ``synchronous=FULL`` by default, so a transaction that returned is on disk even after a
    power loss. ``synchronous=NORMAL`` (``sqlite:///PATH?synchronous=normal``) is also safe
    against a crash of any process in WAL mode, and the database stays consistent after a power
    loss, but the last commits before it may be rolled back: rows whose answers already left
    would be un-counted and a key could then exceed its budget. The budget must hold, so FULL
    is the default; NORMAL trades that for fewer fsyncs.
``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME``
    A PostgreSQL server shared by replicas (psycopg 3; ``postgres://`` and
    ``postgresql+psycopg://`` are accepted too).

Atomicity
---------
:meth:`Store.charge_and_log` charges a batch with one conditional statement::

    UPDATE keys SET used = used + :rows, batches = batches + 1
    WHERE id = :key AND used + :rows <= budget RETURNING used, budget, batches

and inserts the batch's log row in the same transaction, committed before the method returns.
There is no read-then-write window: the budget test and the increment are one statement. On
SQLite the transaction is ``BEGIN IMMEDIATE`` (the write lock is taken first, so writers
serialise; WAL discards a transaction without its commit frame, so a process killed before
``COMMIT`` leaves nothing behind). On PostgreSQL (READ COMMITTED) the UPDATE locks the key's
row; a concurrent UPDATE of the same key waits for that transaction and then re-evaluates its
``WHERE`` against the committed row, so two batches can never both fit into the same remainder;
a backend whose client dies before ``COMMIT`` has its transaction rolled back. The schema also
carries ``CHECK (used <= budget)``, a second guard that no code path can bypass.

A batch that does not fit is refused whole: nothing is charged, a ``refused-budget`` row is
logged in its own transaction, and :class:`~multisteal.errors.BudgetExceededError` says how
many rows remain.

Rate limits
-----------
:meth:`Store.check_rate` is a token bucket persisted in the ``rate_buckets`` table, so every
worker and replica draws from the same bucket: a key with ``rate_per_second = r`` holds at most
``max(1, r)`` tokens, refilled at ``r`` per second; each request takes one token, and a request
that finds less than one is told how many seconds to wait (an HTTP 429 ``Retry-After``). The
bucket is read and written in one transaction (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL:
``SELECT ... FOR UPDATE``).

One :class:`Store` object holds one database connection and serialises its own calls with a
lock, so threads of one process may share it; each process opens its own store (do not share
one across ``fork``).
"""

from __future__ import annotations

import abc
import contextlib
import hashlib
import hmac
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

from multisteal.errors import (
    BudgetExceededError,
    InvalidInputError,
    MultistealError,
    QueryRefusedError,
)

if TYPE_CHECKING:
    import pandas as pd
    import psycopg

__all__ = [
    "QUERY_STATUSES",
    "Admitted",
    "KeyInfo",
    "PostgresStore",
    "QueryEntry",
    "SQLiteStore",
    "Store",
    "StreamWatch",
    "hash_key",
    "open_store",
]

QUERY_STATUSES = ("answered", "refused-budget", "refused-flagged")
"""The statuses of a logged batch."""

BAD_URL = (
    "Cannot open a store at {url!r}: the accepted forms are 'sqlite:///PATH' (a database file; "
    "'sqlite:////abs/path.db' for an absolute path, optionally '?synchronous=full|normal') and "
    "'postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME' ('postgres://' and "
    "'postgresql+psycopg://' are accepted too)."
)
BAD_SQLITE_OPTION = (
    "Unknown option {option!r} in the SQLite store URL {url!r}: the only option is "
    "'synchronous=full' (the default) or 'synchronous=normal'."
)
NO_PSYCOPG = (
    "A PostgreSQL store needs psycopg 3, which is not installed: pip install 'psycopg[binary]'."
)
CANNOT_CONNECT = "Cannot open the store at {url}: {problem}"
NOT_WAL = (
    "The SQLite store {path} could not be switched to WAL mode (journal_mode is {mode!r}); "
    "it must be on a local file system."
)
BAD_NAME = "An API key's name must be a non-empty string, got {name!r}."
DUPLICATE_NAME = "An API key named {name!r} already exists: choose another name."
BAD_BUDGET = "Budget must be a positive whole number of rows, got {budget!r}."
BAD_RATE = (
    "A rate limit must be a positive, finite number of requests per second (or None for no "
    "limit), got {rate!r}."
)
BAD_ROWS = "A batch must have a positive whole number of rows, got {rows!r}."
BAD_KEY_ID = "An API key id must be a whole number, got {key_id!r}."
UNKNOWN_KEY = "No API key has id {key_id}."
BAD_REFUSAL = "A refused batch's status is 'refused-budget' or 'refused-flagged', got {status!r}."
BUDGET_EXCEEDED = (
    "Query budget exceeded: this batch has {rows} rows but only {remaining} of the budget of "
    "{total} rows remain ({used} already answered). Nothing in this batch was answered."
)
CLOSED = "This store is closed."
REUSED_REQUEST_ID = (
    "The Idempotency-Key {request_id!r} was already used for another batch of this key; send a "
    "new key with every new batch (and the same one only when retrying the same batch)."
)
BAD_SCHEMA = "The store at {url} could not be opened or upgraded: {problem}"
FLAGGED = (
    "The service's detector flagged this key's query stream after {after} inputs; it refuses "
    "every further query from this key."
)
BUDGET_GUARD = (
    "Key {key_id}'s budget changed inside a transaction that held its lock: the store is "
    "inconsistent (the budget guard refused the charge)."
)

LOG_COLUMNS = (
    "id",
    "key_id",
    "key",
    "batch",
    "rows",
    "sha256",
    "received_at",
    "answered_at",
    "status",
    "flagged",
    "used_after",
    "request_id",
)
"""Columns of :meth:`Store.log` (plus ``inputs`` when asked for)."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS keys (
        id {serial},
        name TEXT NOT NULL UNIQUE,
        key_hash TEXT NOT NULL UNIQUE,
        budget {int} NOT NULL CHECK (budget > 0),
        used {int} NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= budget),
        rate_per_second {real} CHECK (rate_per_second IS NULL OR rate_per_second > 0),
        batches {int} NOT NULL DEFAULT 0,
        flagged_after {int},
        auditor {bool} NOT NULL DEFAULT FALSE,
        created {real} NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS queries (
        id {serial},
        key_id {int} NOT NULL REFERENCES keys (id),
        batch {int} NOT NULL,
        "rows" {int} NOT NULL CHECK ("rows" > 0),
        sha256 TEXT NOT NULL,
        received_at {real} NOT NULL,
        answered_at {real},
        status TEXT NOT NULL
            CHECK (status IN ('answered', 'refused-budget', 'refused-flagged')),
        flagged {bool} NOT NULL,
        used_after {int} NOT NULL,
        inputs {blob},
        request_id TEXT,
        response {blob},
        UNIQUE (key_id, batch)
    )""",
    """CREATE TABLE IF NOT EXISTS rate_buckets (
        key_id {int} PRIMARY KEY REFERENCES keys (id),
        tokens {real} NOT NULL,
        updated {real} NOT NULL
    )""",
)
_SQLITE_TYPES = {
    "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    "int": "INTEGER",
    "real": "REAL",
    "bool": "INTEGER",
    "blob": "BLOB",
}
_POSTGRES_TYPES = {
    "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    "int": "BIGINT",
    "real": "DOUBLE PRECISION",
    "bool": "BOOLEAN",
    "blob": "BYTEA",
}
_SCHEMA_LOCK_ID = 0x6D756C7469  # pg_advisory_xact_lock id serialising schema creation

_CHARGE = (
    "UPDATE keys SET used = used + ?, batches = batches + 1 WHERE id = ? AND used + ? <= budget "
    "RETURNING used, budget, batches"
)
_COUNT_REFUSED = (
    "UPDATE keys SET batches = batches + 1 WHERE id = ? RETURNING used, budget, batches"
)
_INSERT_QUERY = (
    'INSERT INTO queries (key_id, batch, "rows", sha256, received_at, answered_at, status, '
    "flagged, used_after, inputs, request_id, response) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Created after the tables (and the columns added to older stores).
_INDEXES = (
    # A retried request (same Idempotency-Key) is answered from its first answer, never twice.
    """CREATE UNIQUE INDEX IF NOT EXISTS queries_request ON queries (key_id, request_id)
        WHERE request_id IS NOT NULL AND status = 'answered'""",
)
# The batches a detector observed (answered, or refused because they raised the flag), in order.
_PENDING = (
    "SELECT batch, inputs FROM queries WHERE key_id = ? AND batch > ? AND inputs IS NOT NULL "
    "AND status <> 'refused-budget' ORDER BY batch"
)
# Columns added since the first schema: (table, column, definition), added to older stores.
_ADDED_COLUMNS = (
    ("keys", "flagged_after", "{int}"),
    ("keys", "auditor", "{bool} NOT NULL DEFAULT FALSE"),
    ("queries", "request_id", "TEXT"),
    ("queries", "response", "{blob}"),
)
_KEY_COLUMNS = "id, name, budget, used, rate_per_second, created, flagged_after, auditor"


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key: what the store keeps instead of the key.

    Parameters
    ----------
    key : str
        The API key as the client sends it.

    Returns
    -------
    str
        64 lowercase hex digits.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    """An API key as the store knows it (never the key itself).

    Attributes
    ----------
    id : int
        The key's id, used by every other method.
    name : str
        Its unique, human-readable name.
    budget : int
        Rows it may have answered in total.
    used : int
        Rows answered so far.
    rate_per_second : float or None
        Requests per second it may make (``None``: no limit).
    created : float
        When it was added (seconds since the epoch).
    flagged_after : int or None
        Inputs a detector had observed when it flagged the key's stream (``None``: never).
    auditor : bool
        An auditor's key: answered with the target's full probabilities, without defences or
        detection, unless it asks for the public answers (``multisteal audit
        --auditor-key-env``).
    """

    id: int
    name: str
    budget: int
    used: int
    rate_per_second: float | None
    created: float
    flagged_after: int | None = None
    auditor: bool = False

    @property
    def remaining(self) -> int:
        """Rows that can still be answered."""
        return self.budget - self.used


@dataclass(frozen=True)
class QueryEntry:
    """What the service logs about one batch, besides its key and row count.

    Attributes
    ----------
    sha256 : str
        Digest of the batch's inputs (:func:`multisteal.query.ledger.batch_digest`).
    received_at : float
        When the batch arrived (seconds since the epoch).
    answered_at : float or None
        When its answer was ready; ``None`` lets :meth:`Store.charge_and_log` use the time of
        the charge. Refused batches are logged without it.
    flagged : bool
        Whether a detector had flagged the key's stream once this batch was seen.
    inputs : bytes or None
        An optional payload (serialised inputs, decisions) for a detector such as PRADA that
        replays the stream (:class:`StreamWatch`); the store keeps it as opaque bytes.
    request_id : str or None
        The client's ``Idempotency-Key``: a retried request with the same id is answered from
        the first one's stored ``response`` and charged once (:meth:`Store.admit_batch`).
    response : bytes or None
        The answer as sent (kept only for answered batches with a ``request_id``).
    """

    sha256: str
    received_at: float
    answered_at: float | None = None
    flagged: bool = False
    inputs: bytes | None = None
    request_id: str | None = None
    response: bytes | None = None


class StreamWatch(Protocol):
    """A query-stream detector kept per key, in step with the log (see
    :meth:`Store.admit_batch`).

    Each worker process holds its own detectors; the log is the stream of record. Before a
    batch is judged, the watch is handed the payloads of the key's batches it has not seen yet
    (logged by other workers or replicas, or before a restart), in log order, so every worker's
    detector has seen exactly the logged stream.
    """

    def seen(self, key_id: int) -> int:
        """The last batch number of the key this watch has observed (-1: none)."""
        ...

    def observe(
        self, key_id: int, pending: Sequence[tuple[int, bytes]], batch: int, payload: bytes
    ) -> int | None:
        """Observe the ``pending`` ``(batch, payload)`` pairs, then the new ``batch``; return
        the number of inputs observed when the stream was first flagged (``None``: not)."""
        ...

    def catch_up(self, key_id: int, pending: Sequence[tuple[int, bytes]]) -> None:
        """Observe the ``pending`` ``(batch, payload)`` pairs it has not seen, in order."""
        ...

    def forget(self, key_id: int) -> None:
        """Drop the key's detector (its observations may not match the log any more)."""
        ...


@dataclass(frozen=True)
class Admitted:
    """A batch the store let through (:meth:`Store.admit_batch`).

    Attributes
    ----------
    remaining : int
        Rows the key may still have answered.
    batch : int
        The batch's number in the key's log.
    flagged : bool
        Whether the key's stream is flagged (the answer still left: ``refuse_flagged`` off).
    replayed : bytes or None
        For a retried request already answered (same ``request_id``), the stored response,
        sent again without a new charge; ``None`` for a new batch.
    """

    remaining: int
    batch: int
    flagged: bool = False
    replayed: bytes | None = None


class _Cursor(Protocol):
    def fetchone(self) -> Any: ...

    def fetchall(self) -> Any: ...


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidInputError(BAD_NAME.format(name=name))
    return name


def _check_budget(budget: object) -> int:
    if isinstance(budget, bool) or not hasattr(budget, "__index__"):
        raise InvalidInputError(BAD_BUDGET.format(budget=budget))
    value = int(budget.__index__())
    if value <= 0:
        raise InvalidInputError(BAD_BUDGET.format(budget=budget))
    return value


def _check_rate(rate: object) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise InvalidInputError(BAD_RATE.format(rate=rate))
    if not math.isfinite(rate) or rate <= 0:
        raise InvalidInputError(BAD_RATE.format(rate=rate))
    return float(rate)


def _check_rows(rows: object) -> int:
    if isinstance(rows, bool) or not hasattr(rows, "__index__"):
        raise InvalidInputError(BAD_ROWS.format(rows=rows))
    value = int(rows.__index__())
    if value <= 0:
        raise InvalidInputError(BAD_ROWS.format(rows=rows))
    return value


def _query_row(
    key_id: int,
    batch: int,
    rows: int,
    record: QueryEntry,
    answered_at: float | None,
    status: str,
    used: int,
) -> tuple[object, ...]:
    """The parameters of one ``queries`` row, in :data:`_INSERT_QUERY`'s order."""
    return (
        key_id,
        batch,
        rows,
        record.sha256,
        record.received_at,
        answered_at,
        status,
        bool(record.flagged),
        used,
        record.inputs,
        record.request_id,
        record.response if status == "answered" else None,
    )


def _check_key_id(key_id: object) -> int:
    if isinstance(key_id, bool) or not hasattr(key_id, "__index__"):
        raise InvalidInputError(BAD_KEY_ID.format(key_id=key_id))
    return int(key_id.__index__())


def _bucket_size(rate: float) -> float:
    """Tokens a key's bucket holds: one second of its rate, and at least one request."""
    return max(1.0, rate)


class Store(abc.ABC):
    """API keys, budgets, rate limits and the query log, shared by every worker.

    Open one with :func:`open_store`; use it as a context manager or call :meth:`close`.
    Every method that changes the store commits before it returns.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()
        self._closed = False
        self._before_commit: Callable[[], None] | None = None
        """Test hook: called inside :meth:`charge_and_log`'s transaction, after the charge
        and the log row are written and before COMMIT (to simulate a crash there)."""

    # -- backend -------------------------------------------------------------------------------

    @abc.abstractmethod
    def _exec(self, sql: str, params: Sequence[object] = ()) -> _Cursor:
        """Run one statement (``?`` placeholders) on the connection."""

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A write transaction: committed on normal exit, rolled back on an exception."""

    @abc.abstractmethod
    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        """Exception types the driver raises for a UNIQUE violation."""

    @property
    @abc.abstractmethod
    def _for_update(self) -> str:
        """Row-lock suffix of a SELECT inside a write transaction."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Close the connection."""

    def _create_schema(self, types: dict[str, str]) -> None:
        """Create the tables (a new store), or add the columns an older store lacks."""
        for statement in _SCHEMA:
            self._exec(statement.format(**types))
        for table, column, definition in _ADDED_COLUMNS:
            if column not in self._columns(table):
                self._exec(f"ALTER TABLE {table} ADD COLUMN {column} {definition.format(**types)}")
        for statement in _INDEXES:
            self._exec(statement.format(**types))

    @abc.abstractmethod
    def _columns(self, table: str) -> set[str]:
        """The column names of ``table``."""

    @abc.abstractmethod
    def _ensure_connected(self) -> None:
        """Reconnect if the connection was lost (a no-op for an embedded database)."""

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise MultistealError(CLOSED)
            self._ensure_connected()
            with self._transaction():
                yield

    @contextlib.contextmanager
    def _read(self) -> Iterator[None]:
        with self._lock:
            if self._closed:
                raise MultistealError(CLOSED)
            self._ensure_connected()
            yield

    # -- keys ----------------------------------------------------------------------------------

    def add_key(
        self, name: str, budget: int, rate: float | None = None, *, auditor: bool = False
    ) -> str:
        """Create an API key and return it; this is the only time the key is seen.

        Parameters
        ----------
        name : str
            A unique, non-empty name for the key.
        budget : int
            Rows the key may have answered in total (positive).
        rate : float or None
            Requests per second the key may make (``None``: no limit).
        auditor : bool
            An auditor's key (:attr:`KeyInfo.auditor`).

        Returns
        -------
        str
            The new key (``secrets.token_urlsafe(32)``); the store keeps only its SHA-256.

        Raises
        ------
        InvalidInputError
            The name is empty or taken, the budget is not a positive whole number, or the rate
            is not a positive finite number.
        """
        name = _check_name(name)
        total = _check_budget(budget)
        per_second = _check_rate(rate)
        key = secrets.token_urlsafe(32)
        try:
            with self._write():
                self._exec(
                    "INSERT INTO keys (name, key_hash, budget, used, rate_per_second, batches, "
                    "auditor, created) VALUES (?, ?, ?, 0, ?, 0, ?, ?)",
                    (name, hash_key(key), total, per_second, bool(auditor), time.time()),
                )
        except self._unique_violations():
            raise InvalidInputError(DUPLICATE_NAME.format(name=name)) from None
        return key

    def authenticate(self, key: object) -> KeyInfo | None:
        """The key's record, or ``None`` when ``key`` is not a key of this store.

        The key is looked up by its SHA-256 digest, so how long the look-up takes says nothing
        about how close a guess was; the stored digest is compared again in constant time.

        Parameters
        ----------
        key : str
            The key the client sent.

        Returns
        -------
        KeyInfo or None
        """
        if not isinstance(key, str) or not key:
            return None
        digest = hash_key(key)
        with self._read():
            row = self._exec(
                f"SELECT {_KEY_COLUMNS}, key_hash FROM keys WHERE key_hash = ?", (digest,)
            ).fetchone()
        if row is None or not hmac.compare_digest(str(row[8]), digest):
            return None
        return _key_info(row)

    def key_by_digest(self, digest: str) -> KeyInfo | None:
        """The record of the key whose SHA-256 (:func:`hash_key`) is ``digest``, if any."""
        with self._read():
            row = self._exec(
                f"SELECT {_KEY_COLUMNS} FROM keys WHERE key_hash = ?", (str(digest),)
            ).fetchone()
        return None if row is None else _key_info(row)

    def key_info(self, key_id: int) -> KeyInfo:
        """The record of key ``key_id``.

        Raises
        ------
        InvalidInputError
            No key has this id.
        """
        key_id = _check_key_id(key_id)
        with self._read():
            row = self._exec(f"SELECT {_KEY_COLUMNS} FROM keys WHERE id = ?", (key_id,)).fetchone()
        if row is None:
            raise InvalidInputError(UNKNOWN_KEY.format(key_id=key_id))
        return _key_info(row)

    def list_keys(self) -> list[KeyInfo]:
        """Every key's record, by id."""
        with self._read():
            rows = self._exec(f"SELECT {_KEY_COLUMNS} FROM keys ORDER BY id").fetchall()
        return [_key_info(row) for row in rows]

    def remaining(self, key_id: int) -> int:
        """Rows key ``key_id`` may still have answered.

        Raises
        ------
        InvalidInputError
            No key has this id.
        """
        return self.key_info(key_id).remaining

    # -- charging and logging ------------------------------------------------------------------

    def charge_and_log(self, key_id: int, rows: int, record: QueryEntry) -> int:
        """Count ``rows`` answered rows against the key's budget and log the batch, atomically.

        The budget test, the increment and the log row are one transaction, committed before
        this returns: call it once the answer exists and send the answer only after it returns,
        so that no answer leaves without being counted and logged. A crash before the commit
        leaves neither the charge nor the row.

        Parameters
        ----------
        key_id : int
            The key charged.
        rows : int
            Rows in the batch (positive).
        record : QueryEntry
            Digest, times, flag and optional input payload of the batch.

        Returns
        -------
        int
            Rows the key may still have answered after this batch.

        Raises
        ------
        BudgetExceededError
            The batch does not fit in what remains: nothing is charged (the batch is refused
            whole) and a ``refused-budget`` row is logged.
        InvalidInputError
            ``rows`` is not a positive whole number, or no key has this id.
        """
        return self.admit_batch(key_id, rows, record).remaining

    def admit_batch(
        self,
        key_id: int,
        rows: int,
        record: QueryEntry,
        *,
        watch: StreamWatch | None = None,
        refuse_flagged: bool = False,
    ) -> Admitted:
        """Decide a batch whose answer is ready, charge it and log it, in one transaction.

        The key's row is locked first (SQLite: the write lock of ``BEGIN IMMEDIATE``;
        PostgreSQL: ``SELECT ... FOR UPDATE``), so the steps below see every batch committed
        before and no other batch of the key can interleave:

        1. a ``record.request_id`` already answered: its stored response is returned
           (:attr:`Admitted.replayed`), nothing is charged or logged (a retried request);
        2. the key's stream already flagged and ``refuse_flagged``: refused
           (``refused-flagged``, :class:`~multisteal.errors.QueryRefusedError`);
        3. the batch does not fit in the budget: refused whole (``refused-budget``,
           :class:`~multisteal.errors.BudgetExceededError`);
        4. with a ``watch`` (and ``record.inputs``, its payload) on a stream not yet flagged:
           the watch catches up on the key's logged batches it has not seen, then observes
           this one; if it flags, the key's ``flagged_after`` is stored (every worker and
           replica then knows) and, with ``refuse_flagged``, the batch is refused;
        5. otherwise the batch is charged (with the conditional ``UPDATE`` of
           :meth:`charge_and_log`) and logged as ``answered``; the transaction commits before
           this returns, so the answer may leave.

        Refusals are logged (in the same transaction) before the error is raised. If anything
        fails after the watch observed the batch, the watch forgets the key and rebuilds it
        from the log next time.

        Parameters
        ----------
        key_id, rows, record : as for :meth:`charge_and_log`.
        watch : StreamWatch or None
            The worker's detectors (``None``: no detection).
        refuse_flagged : bool
            Refuse every batch of a flagged stream (otherwise only log the flag).

        Returns
        -------
        Admitted
        """
        key_id = _check_key_id(key_id)
        rows = _check_rows(rows)
        with self._lock:  # (re-entrant: _write takes it again) held until the watch is settled
            return self._admit(key_id, rows, record, watch, refuse_flagged)

    def _catch_up(self, key_id: int, watch: StreamWatch) -> None:
        """Replay the key's logged batches the watch has not seen, outside any write
        transaction: a fresh or restarted worker rebuilds a long stream without holding the
        database's write lock; the transaction then replays only what arrived meanwhile."""
        with self._read():
            flagged = self._exec(
                "SELECT flagged_after FROM keys WHERE id = ?", (key_id,)
            ).fetchone()
            if flagged is None or flagged[0] is not None:
                return  # unknown key (refused below) or flagged: nothing more to observe
            pending = self._exec(_PENDING, (key_id, watch.seen(key_id))).fetchall()
        if pending:
            try:
                watch.catch_up(key_id, [(int(b), bytes(p)) for b, p in pending])
            except BaseException:
                watch.forget(key_id)
                raise

    def _admit(
        self,
        key_id: int,
        rows: int,
        record: QueryEntry,
        watch: StreamWatch | None,
        refuse_flagged: bool,
    ) -> Admitted:
        if watch is not None and record.inputs is not None:
            self._catch_up(key_id, watch)
        observed = False
        refusal: tuple[str, int, int, int | None] | None = None
        try:
            with self._write():
                got = self._exec(
                    "SELECT used, budget, batches, flagged_after FROM keys WHERE id = ?"
                    + self._for_update,
                    (key_id,),
                ).fetchone()
                if got is None:
                    raise InvalidInputError(UNKNOWN_KEY.format(key_id=key_id))
                used, budget, batch = (int(v) for v in got[:3])
                flagged_after = None if got[3] is None else int(got[3])
                if record.request_id is not None:
                    stored = self._exec(
                        'SELECT response, batch, sha256, "rows" FROM queries WHERE key_id = ? '
                        "AND request_id = ? AND status = 'answered'",
                        (key_id, record.request_id),
                    ).fetchone()
                    if stored is not None:
                        if (str(stored[2]), int(stored[3])) != (record.sha256, rows):
                            raise InvalidInputError(
                                REUSED_REQUEST_ID.format(request_id=record.request_id)
                            )
                        return Admitted(
                            budget - used,
                            int(stored[1]),
                            flagged_after is not None,
                            b"" if stored[0] is None else bytes(stored[0]),
                        )
                status = None
                if refuse_flagged and flagged_after is not None:
                    status = "refused-flagged"
                elif used + rows > budget:
                    status = "refused-budget"
                elif watch is not None and flagged_after is None and record.inputs is not None:
                    pending = self._exec(_PENDING, (key_id, watch.seen(key_id))).fetchall()
                    observed = True
                    flagged_after = watch.observe(
                        key_id, [(int(b), bytes(p)) for b, p in pending], batch, record.inputs
                    )
                    if flagged_after is not None:
                        self._exec(
                            "UPDATE keys SET flagged_after = ? WHERE id = ?",
                            (flagged_after, key_id),
                        )
                        if refuse_flagged:
                            status = "refused-flagged"
                entry = replace(record, flagged=flagged_after is not None)
                if status is not None:
                    self._exec(_COUNT_REFUSED, (key_id,))
                    self._exec(
                        _INSERT_QUERY, _query_row(key_id, batch, rows, entry, None, status, used)
                    )
                    refusal = (status, used, budget, flagged_after)
                else:
                    charged = self._exec(_CHARGE, (rows, key_id, rows)).fetchone()
                    if charged is None:  # cannot happen: the row is locked and was checked
                        raise MultistealError(BUDGET_GUARD.format(key_id=key_id))
                    used = int(charged[0])
                    answered = time.time() if record.answered_at is None else record.answered_at
                    self._exec(
                        _INSERT_QUERY,
                        _query_row(key_id, batch, rows, entry, answered, "answered", used),
                    )
                    if self._before_commit is not None:
                        self._before_commit()
        except BaseException:
            if observed and watch is not None:
                watch.forget(key_id)
            raise
        if refusal is None:
            return Admitted(budget - used, batch, flagged_after is not None)
        status, used, budget, flagged_after = refusal
        if status == "refused-budget":
            raise BudgetExceededError(
                BUDGET_EXCEEDED.format(rows=rows, remaining=budget - used, total=budget, used=used)
            )
        raise QueryRefusedError(FLAGGED.format(after=flagged_after))

    def log_refusal(
        self, key_id: int, rows: int, record: QueryEntry, status: str = "refused-flagged"
    ) -> None:
        """Log a batch that was refused without being charged (e.g. a flagged stream).

        Parameters
        ----------
        key_id : int
            The key that sent the batch.
        rows : int
            Rows in the batch.
        record : QueryEntry
            Digest, time, flag and optional payload of the batch.
        status : {'refused-flagged', 'refused-budget'}
            Why it was refused.

        Raises
        ------
        InvalidInputError
            Bad ``rows`` or ``status``, or no key has this id.
        """
        if status not in QUERY_STATUSES[1:]:
            raise InvalidInputError(BAD_REFUSAL.format(status=status))
        self._log_refused(_check_key_id(key_id), _check_rows(rows), record, status)

    def _log_refused(
        self, key_id: int, rows: int, record: QueryEntry, status: str
    ) -> tuple[int, int]:
        with self._write():
            got = self._exec(_COUNT_REFUSED, (key_id,)).fetchone()
            if got is None:
                raise InvalidInputError(UNKNOWN_KEY.format(key_id=key_id))
            used, budget, batches = (int(v) for v in got)
            self._exec(
                _INSERT_QUERY, _query_row(key_id, batches - 1, rows, record, None, status, used)
            )
        return used, budget

    # -- rate limiting -------------------------------------------------------------------------

    def check_rate(self, key_id: int, now: float | None = None) -> float | None:
        """Take one request from the key's token bucket, or say how long to wait.

        Parameters
        ----------
        key_id : int
            The key making the request.
        now : float or None
            The time of the request (seconds since the epoch; ``None``: ``time.time()``).
            A ``now`` earlier than the bucket's last update counts as no time passed.

        Returns
        -------
        float or None
            ``None`` if the request may go ahead (a token was taken), else the seconds until a
            token is available (nothing taken): a 429 answer's ``Retry-After``.

        Raises
        ------
        InvalidInputError
            No key has this id.
        """
        key_id = _check_key_id(key_id)
        at = time.time() if now is None else float(now)
        with self._write():
            row = self._exec("SELECT rate_per_second FROM keys WHERE id = ?", (key_id,)).fetchone()
            if row is None:
                raise InvalidInputError(UNKNOWN_KEY.format(key_id=key_id))
            if row[0] is None:
                return None
            rate = float(row[0])
            size = _bucket_size(rate)
            self._exec(
                "INSERT INTO rate_buckets (key_id, tokens, updated) VALUES (?, ?, ?) "
                "ON CONFLICT (key_id) DO NOTHING",
                (key_id, size, at),
            )
            tokens, updated = self._exec(
                f"SELECT tokens, updated FROM rate_buckets WHERE key_id = ?{self._for_update}",
                (key_id,),
            ).fetchone()
            tokens = min(size, float(tokens) + max(0.0, at - float(updated)) * rate)
            wait = None if tokens >= 1.0 else (1.0 - tokens) / rate
            if wait is None:
                tokens -= 1.0
            self._exec(
                "UPDATE rate_buckets SET tokens = ?, updated = ? WHERE key_id = ?",
                (tokens, max(at, float(updated)), key_id),
            )
        return wait

    # -- reading the log -----------------------------------------------------------------------

    def log(self, key_id: int | None = None, *, inputs: bool = False) -> pd.DataFrame:
        """The query log, one row per batch, in the order the batches were logged.

        Parameters
        ----------
        key_id : int or None
            Only this key's batches (``None``: every key's).
        inputs : bool
            Add the ``inputs`` payload column (bytes or ``None``).

        Returns
        -------
        pandas.DataFrame
            Columns :data:`LOG_COLUMNS` (``key`` is the key's name), plus ``inputs``.
        """
        import pandas as pd

        columns = [*LOG_COLUMNS, *(["inputs"] if inputs else [])]
        sql = (
            'SELECT q.id, q.key_id, k.name, q.batch, q."rows", q.sha256, q.received_at, '
            "q.answered_at, q.status, q.flagged, q.used_after, q.request_id"
            + (", q.inputs" if inputs else "")
            + " FROM queries q JOIN keys k ON k.id = q.key_id"
        )
        params: tuple[object, ...] = ()
        if key_id is not None:
            sql += " WHERE q.key_id = ?"
            params = (_check_key_id(key_id),)
        with self._read():
            rows = self._exec(sql + " ORDER BY q.id", params).fetchall()
        if inputs:
            rows = [(*row[:-1], None if row[-1] is None else bytes(row[-1])) for row in rows]
        frame = pd.DataFrame.from_records(list(rows), columns=columns)
        for column in ("id", "key_id", "batch", "rows", "used_after"):
            frame[column] = frame[column].astype("int64")
        for column in ("received_at", "answered_at"):
            frame[column] = frame[column].astype("float64")
        frame["flagged"] = frame["flagged"].astype(bool)
        return frame

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"{type(self).__name__}({_redact(self.url)!r}, {state})"


def _key_info(row: Sequence[Any]) -> KeyInfo:
    return KeyInfo(
        id=int(row[0]),
        name=str(row[1]),
        budget=int(row[2]),
        used=int(row[3]),
        rate_per_second=None if row[4] is None else float(row[4]),
        created=float(row[5]),
        flagged_after=None if row[6] is None else int(row[6]),
        auditor=bool(row[7]),
    )


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


class SQLiteStore(Store):
    """The store in an SQLite file (WAL, busy timeout, ``synchronous`` FULL by default).

    Parameters
    ----------
    path : str or Path
        The database file, created with its schema if missing.
    synchronous : {'FULL', 'NORMAL'}
        SQLite's ``synchronous`` setting (see the module's documentation).
    busy_timeout : float
        Seconds a writer waits for the write lock before failing.
    url : str or None
        The URL it was opened from (for ``repr``).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 60.0,
        url: str | None = None,
    ) -> None:
        super().__init__(url if url is not None else f"sqlite:///{path}")
        self.path = Path(path)
        if synchronous.upper() not in ("FULL", "NORMAL"):
            raise InvalidInputError(
                BAD_SQLITE_OPTION.format(option=f"synchronous={synchronous}", url=self.url)
            )
        try:
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise MultistealError(CANNOT_CONNECT.format(url=self.url, problem=exc)) from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = self._set_wal(busy_timeout)
            if mode != "wal":
                raise MultistealError(NOT_WAL.format(path=self.path, mode=mode))
            self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
            self._conn.execute("PRAGMA foreign_keys = ON")
            with self._transaction():
                self._create_schema(_SQLITE_TYPES)
        except sqlite3.Error as exc:
            self._conn.close()
            raise MultistealError(BAD_SCHEMA.format(url=self.url, problem=exc)) from None
        except BaseException:
            self._conn.close()
            raise

    def _set_wal(self, busy_timeout: float) -> str:
        # Switching to WAL needs a moment of exclusive access; several processes opening a new
        # file at once may find it locked even with a busy handler, so retry until the timeout.
        deadline = time.monotonic() + busy_timeout
        mode = self._try_wal(give_up=False)
        while mode is None:
            time.sleep(0.01)
            mode = self._try_wal(give_up=time.monotonic() > deadline)
        return mode

    def _try_wal(self, *, give_up: bool) -> str | None:
        try:
            return str(self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or give_up:
                raise
            return None

    def _ensure_connected(self) -> None:
        pass  # an embedded database has no connection to lose

    def _exec(self, sql: str, params: Sequence[object] = ()) -> _Cursor:
        return self._conn.execute(sql, params)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock now (waiting up to busy_timeout), so a
        # transaction never has to upgrade a read lock, which could fail with SQLITE_BUSY.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        try:
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,)

    def _columns(self, table: str) -> set[str]:
        return {str(row[1]) for row in self._exec(f"PRAGMA table_info({table})").fetchall()}

    @property
    def _for_update(self) -> str:
        return ""  # BEGIN IMMEDIATE already holds the database's write lock

    def _close(self) -> None:
        self._conn.close()


class PostgresStore(Store):
    """The store in a PostgreSQL database (psycopg 3), shared by several replicas.

    Parameters
    ----------
    url : str
        A ``postgresql://`` connection URL.
    connect_timeout : float
        Seconds to wait for the server when connecting.
    """

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        super().__init__(url)
        try:
            import psycopg
        except ImportError:
            raise MultistealError(NO_PSYCOPG) from None
        self._psycopg = psycopg
        self._conninfo = url
        self._connect_timeout = connect_timeout
        self._conn: psycopg.Connection[tuple[Any, ...]] = self._connect()
        try:
            with self._transaction():
                self._exec("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_ID,))
                self._create_schema(_POSTGRES_TYPES)
        except psycopg.Error as exc:
            self._conn.close()
            raise MultistealError(
                BAD_SCHEMA.format(url=_redact(self.url), problem=str(exc).strip())
            ) from None
        except BaseException:
            self._conn.close()
            raise

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        try:
            return self._psycopg.connect(
                self._conninfo,
                autocommit=True,
                connect_timeout=max(1, math.ceil(self._connect_timeout)),
            )
        except self._psycopg.Error as exc:
            raise MultistealError(
                CANNOT_CONNECT.format(url=_redact(self.url), problem=str(exc).strip())
            ) from None

    def _exec(self, sql: str, params: Sequence[object] = ()) -> _Cursor:
        return self._conn.execute(sql.replace("?", "%s"), params)

    def _ensure_connected(self) -> None:
        if self._conn.broken:  # the server restarted or the network dropped: reconnect
            self._conn = self._connect()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._conn.transaction():
            yield

    def _unique_violations(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.errors.UniqueViolation,)

    def _columns(self, table: str) -> set[str]:
        rows = self._exec(
            "SELECT column_name FROM information_schema.columns WHERE table_name = ? "
            "AND table_schema = current_schema()",
            (table,),
        ).fetchall()
        return {str(row[0]) for row in rows}

    @property
    def _for_update(self) -> str:
        return " FOR UPDATE"

    def _close(self) -> None:
        self._conn.close()


def open_store(url: str) -> Store:
    """Open (creating its schema if needed) the store at ``url``.

    Parameters
    ----------
    url : str
        ``sqlite:///PATH`` (``sqlite:////abs/path.db`` for an absolute path; option
        ``?synchronous=full|normal``) or ``postgresql://USER[:PASSWORD]@HOST[:PORT]/DBNAME``
        (also ``postgres://`` and ``postgresql+psycopg://``).

    Returns
    -------
    Store
        A :class:`SQLiteStore` or a :class:`PostgresStore`.

    Raises
    ------
    InvalidInputError
        The URL has none of the accepted forms.
    MultistealError
        The database cannot be opened (psycopg missing, server unreachable).
    """
    if not isinstance(url, str):
        raise InvalidInputError(BAD_URL.format(url=url))
    if url.startswith("sqlite:///"):
        rest = url[len("sqlite:///") :]
        path, _, query = rest.partition("?")
        if not path or path == ":memory:" or path.endswith("/"):
            raise InvalidInputError(BAD_URL.format(url=url))
        synchronous = "FULL"
        for option, values in parse_qs(query, keep_blank_values=True, separator="&").items():
            value = values[-1].upper()
            if option != "synchronous" or value not in ("FULL", "NORMAL"):
                raise InvalidInputError(
                    BAD_SQLITE_OPTION.format(option=f"{option}={values[-1]}", url=url)
                )
            synchronous = value
        return SQLiteStore(path, synchronous=synchronous, url=url)
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres", "postgresql+psycopg") and rest:
        return PostgresStore("postgresql://" + rest)
    raise InvalidInputError(BAD_URL.format(url=_redact(url)))
