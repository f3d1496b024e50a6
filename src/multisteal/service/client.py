"""A :class:`~multisteal.query.api.QueryAPI` over HTTP: attacks run against a live service.

:class:`HTTPQueryAPI` reads what the service publishes (``GET /v1/info``) and sends batches to
``POST /v1/predict``, so any attack that runs against a :class:`~multisteal.query.LocalQueryAPI`
runs unchanged against a deployed :mod:`multisteal.service.app`.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pandas as pd

from multisteal.data.inputs import InputSpec, TabularSpec, n_inputs, spec_from_dict, take_inputs
from multisteal.errors import (
    AuthenticationError,
    BudgetExceededError,
    InvalidInputError,
    MultistealError,
    QueryRefusedError,
)
from multisteal.query.ledger import BudgetLedger, QueryLog, QueryRecord, batch_digest
from multisteal.query.outputs import Answer

__all__ = ["HTTPQueryAPI"]

BAD_BATCH_SIZE = "batch_size must be a positive whole number, got {value!r}."
BAD_VIEW = "view must be None, 'public' or 'full', got {value!r}."
BAD_RETRIES = "retries must be a whole number >= 0, got {value!r}."
UNAUTHORISED = "The service at {url} refused the API key ({detail})."
INVALID = "The service at {url} refused the inputs: {detail}"
TOO_LARGE = (
    "The service at {url} refused a batch of {rows} inputs as too large ({detail}); "
    "use a smaller batch_size."
)
GAVE_UP = "The service at {url} did not answer after {attempts} attempts: {problem}"
UNEXPECTED = "The service at {url} answered {status}: {detail}"
NOT_JSONABLE = (
    "The inputs cannot be sent as JSON ({problem}): they must hold finite numbers, strings or "
    "missing values."
)
NO_BUDGET = (
    "The service at {url} did not report this key's budget in /v1/info; it must be a "
    "multisteal service."
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None  # a missing value: JSON null
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _payload(inputs: Any, spec: InputSpec | None) -> list[Any]:
    """The inputs as the wire format's JSON values."""
    if isinstance(inputs, pd.DataFrame):
        columns = [str(c) for c in inputs.columns]
        return [
            {c: _jsonable(v) for c, v in zip(columns, row, strict=True)}
            for row in inputs.itertuples(index=False, name=None)
        ]
    if isinstance(spec, TabularSpec) and isinstance(inputs, list):
        return [{str(c): _jsonable(v) for c, v in dict(r).items()} for r in inputs]
    if isinstance(inputs, np.ndarray):
        if inputs.dtype == object:
            return [_jsonable(v) for v in inputs.tolist()]
        out: list[Any] = inputs.tolist()
        return out
    return [_jsonable(v) if not isinstance(v, (list, dict)) else v for v in inputs]


class HTTPQueryAPI:
    """The query API of a multisteal prediction service, reached over HTTP.

    Parameters
    ----------
    url : str
        The service's base URL (``http://host:port``).
    api_key : str
        The key sent as ``Authorization: Bearer``.
    batch_size : int
        The most inputs sent in one request (at most the service's ``max_batch``).
    retries : int
        How many times a request is retried after a 429, a 5xx or a connection error (with
        exponential backoff from ``backoff`` seconds; a 429's ``Retry-After`` is honoured).
    backoff : float
        The first retry's wait, in seconds.
    timeout : float
        Seconds to wait for each response.
    budget : int or None
        The most rows this client will have answered (its own :attr:`ledger`, e.g. one
        attack's budget out of a larger key); ``None``: the key's remaining budget.
    view : {'public', 'full'} or None
        Sent as ``X-Multisteal-View``: an auditor key's ``public`` answers (the service's
        output policy and defences) instead of its default full probabilities; ``None``: the
        key's default.
    transport : httpx.BaseTransport or None
        A custom transport (tests).

    A batch is charged to the key when the service answers it. :meth:`query` refuses (raising
    :class:`~multisteal.errors.BudgetExceededError`, sending nothing) a batch larger than the
    remaining budget as last reported; the service is the authority and refuses whole any
    request that would cross it.
    """

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch_size: int = 256,
        retries: int = 5,
        backoff: float = 0.5,
        timeout: float = 30.0,
        budget: int | None = None,
        view: str | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InvalidInputError(BAD_BATCH_SIZE.format(value=batch_size))
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(BAD_RETRIES.format(value=retries))
        if view not in (None, "public", "full"):
            raise InvalidInputError(BAD_VIEW.format(value=view))
        self.url = url.rstrip("/")
        self._own = None if budget is None else BudgetLedger(budget)
        self.batch_size = batch_size
        self.retries = retries
        self.backoff = float(backoff)
        self.retried = 0
        """Requests re-sent so far (after a 429, a 5xx or a connection error)."""
        self._sleep = sleep
        headers = {"Authorization": f"Bearer {api_key}"}
        if view is not None:
            headers["X-Multisteal-View"] = view
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=timeout,
            transport=transport,
        )
        try:
            info = self._json(self._send("GET", "/v1/info"))
            self._read_info(info)
        except BaseException:
            self._client.close()
            raise
        self._log = QueryLog()

    def _read_info(self, info: dict[str, Any]) -> None:
        self.info = dict(info)
        """What ``GET /v1/info`` published (input spec, classes, output, ``trained_on``, ...)."""
        self._spec: InputSpec = spec_from_dict(info["input_spec"])
        self.classes: tuple[str, ...] = tuple(str(c) for c in info["classes"])
        self._output_mode = str(info["output"])
        self._n_features = int(info["n_features"])
        self.max_batch = int(info["max_batch"])
        self.batch_size = min(self.batch_size, self.max_batch)  # the service's own limit
        self.trained_on: dict[str, Any] = dict(info.get("trained_on") or {})
        budget = info.get("budget")
        if not isinstance(budget, dict):
            raise MultistealError(NO_BUDGET.format(url=self.url))
        self.key_ledger = BudgetLedger(int(budget["total"]))
        """The key's budget on the service (``total``/``used``/``remaining``), as last
        reported."""
        self.key_ledger.used = int(budget["used"])
        self.auditor = bool(info.get("auditor", False))
        """Whether the key is an auditor's (full probabilities by default)."""
        self.detect = str(info.get("detect", "none"))
        flagged = info.get("flagged_after")
        self.flagged_after: int | None = int(flagged) if isinstance(flagged, int) else None
        """Inputs the service's detector had observed when it flagged this key's stream, as
        last known (``None``: not flagged, or the service does not say); see
        :meth:`refresh`."""

    def refresh(self) -> None:
        """Re-read the key's budget and flag from ``GET /v1/info``."""
        self._read_info(self._json(self._send("GET", "/v1/info")))

    # -- the QueryAPI protocol -------------------------------------------------------------

    @property
    def input_spec(self) -> InputSpec:
        return self._spec

    @property
    def n_features(self) -> int:
        return self._n_features

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def output_mode(self) -> str:
        return self._output_mode

    @property
    def ledger(self) -> BudgetLedger:
        """This client's budget: its own (``budget``), else the key's as the service last
        reported it."""
        return self.key_ledger if self._own is None else self._own

    @property
    def log(self) -> QueryLog:
        """This client's batches (one record per request)."""
        return self._log

    def query(self, X: Any) -> Answer:
        """Answer ``X`` (records, images or texts), in requests of at most ``batch_size``."""
        rows = len(X)
        if rows == 0:
            return self._query_batch(X)  # the service names the problem (422)
        self.key_ledger.check(rows)  # refuse locally what the service would refuse
        if self._own is not None:
            self._own.check(rows)
        parts: list[Answer] = []
        for start in range(0, rows, self.batch_size):
            index = np.arange(start, min(start + self.batch_size, rows))
            part = take_inputs(X, index) if isinstance(X, (pd.DataFrame, np.ndarray)) else None
            items = X[start : start + self.batch_size] if part is None else part
            parts.append(self._query_batch(items))
        return _join(parts, self.n_classes)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HTTPQueryAPI:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- requests --------------------------------------------------------------------------

    def _query_batch(self, inputs: Any) -> Answer:
        try:
            body = json.dumps({"inputs": _payload(inputs, self._spec)}, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(NOT_JSONABLE.format(problem=exc)) from None
        rows = n_inputs(inputs)
        try:
            digest = batch_digest(inputs)
        except (TypeError, ValueError):
            digest = ""
        started, clock = time.time(), time.perf_counter()
        batch = len(self._log)
        # One id per batch, sent again with every retry: the service answers a retried batch
        # it already answered from its stored answer and charges it once.
        response = self._send(
            "POST",
            "/v1/predict",
            content=body.encode("utf-8"),
            headers={"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex},
        )
        if response.status_code == 403:
            detail = self._json(response)
            self._update(detail.get("budget_remaining"))
            flagged = detail.get("refused") == "flagged"
            if detail.get("refused") == "view":
                raise AuthenticationError(
                    UNAUTHORISED.format(url=self.url, detail=detail.get("detail"))
                )
            self._log.append(
                QueryRecord(
                    batch,
                    rows,
                    digest,
                    started,
                    0.0,
                    "refused-flagged" if flagged else "refused-budget",
                    self.ledger.used,
                    flagged=flagged,
                )
            )
            if flagged:
                raise QueryRefusedError(str(detail.get("detail")))
            raise BudgetExceededError(str(detail.get("detail")))
        out = self._json(response)
        self._update(out["budget_remaining"])
        if self._own is not None:
            self._own.used += rows
        self._log.append(
            QueryRecord(
                batch,
                rows,
                digest,
                started,
                time.perf_counter() - clock,
                "answered",
                self.ledger.used,
            )
        )
        scores, revealed, leaves = out.get("scores"), out.get("revealed"), out.get("leaves")
        return Answer(
            labels=np.asarray(out["labels"], dtype=np.int64).reshape(-1),
            scores=None
            if scores is None
            else np.asarray(scores, dtype=np.float64).reshape(rows, -1),
            revealed=None
            if revealed is None
            else np.asarray(revealed, dtype=bool).reshape(rows, -1),
            mode=str(out["mode"]),
            n_classes=self.n_classes,
            leaves=None if leaves is None else np.asarray(leaves, dtype=np.int64).reshape(-1),
        )

    def _update(self, remaining: object) -> None:
        if isinstance(remaining, int) and self.key_ledger.total is not None:
            self.key_ledger.used = self.key_ledger.total - remaining

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried after a 429, a 5xx or a connection error."""
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
            wait = self.backoff * 2**attempt
            try:
                response = self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                status = response.status_code
                if status == 429:
                    problem = f"429 {self._detail(response)}"
                    after = response.headers.get("retry-after", "")
                    if after.isdigit():
                        wait = max(float(after), 0.0)
                elif status >= 500:
                    problem = f"{status} {self._detail(response)}"
                else:
                    return self._check(response, kwargs)
            if attempt < self.retries:
                self._sleep(wait)
        raise MultistealError(
            GAVE_UP.format(url=self.url, attempts=self.retries + 1, problem=problem)
        )

    def _check(self, response: httpx.Response, kwargs: dict[str, Any]) -> httpx.Response:
        status = response.status_code
        if status in (200, 403):
            return response
        detail = self._detail(response)
        if status == 401:
            raise AuthenticationError(UNAUTHORISED.format(url=self.url, detail=detail))
        if status == 422:
            raise InvalidInputError(INVALID.format(url=self.url, detail=detail))
        if status == 413:
            rows = len(json.loads(kwargs.get("content", b'{"inputs": []}'))["inputs"])
            raise InvalidInputError(TOO_LARGE.format(url=self.url, rows=rows, detail=detail))
        raise MultistealError(UNEXPECTED.format(url=self.url, status=status, detail=detail))

    @staticmethod
    def _detail(response: httpx.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:500]
        if isinstance(body, dict) and "detail" in body:
            return str(body["detail"])
        return str(body)[:500]

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise MultistealError(
                UNEXPECTED.format(
                    url=self.url, status=response.status_code, detail=response.text[:500]
                )
            )
        return body


def _join(parts: list[Answer], n_classes: int) -> Answer:
    if len(parts) == 1:
        return parts[0]

    def stack(values: list[Any]) -> Any:
        return None if any(v is None for v in values) else np.concatenate(values)

    return Answer(
        labels=np.concatenate([p.labels for p in parts]),
        scores=stack([p.scores for p in parts]),
        revealed=stack([p.revealed for p in parts]),
        mode=parts[0].mode,
        n_classes=n_classes,
        leaves=stack([p.leaves for p in parts]),
    )
