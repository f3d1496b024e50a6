"""The HTTP prediction service: a saved target behind API keys, budgets and rate limits.

:func:`create_app` builds a FastAPI application around a target saved by the audit runner
(``RUN_DIR/target``) and a durable :mod:`~multisteal.service.store`. Each request to
``POST /v1/predict`` goes through, in order:

1. authentication (``Authorization: Bearer KEY``; 401 otherwise);
2. the key's rate limit (429 with ``Retry-After``);
3. reading the body (413 beyond ``max_body_bytes``) and validating it through the target's
   published input spec (422 naming the problem);
4. a check that the batch fits what remains of the key's budget (403, logged as
   ``refused-budget``; a batch that would cross the budget is refused whole);
5. the prediction, through the defences and the output policy of :mod:`multisteal.query`;
6. :meth:`~multisteal.service.store.Store.admit_batch`, which in one committed transaction
   holding the key's lock replays a retried request (same ``Idempotency-Key``) from its stored
   answer, lets the detector (``detect``, :mod:`multisteal.service.watch`) observe the batch,
   and charges and logs it (403 if a concurrent request spent the budget meanwhile, or if the
   detector flagged the stream and ``detect_refuse`` is set: nothing is answered);
7. the answer.

With several worker processes (``workers``), each draws its defences' noise from its own
stream (the ``seed``, its process id and fresh entropy), so two workers never add the same
noise; what the defences share (MAD's proxy) still comes from ``seed`` alone. With one worker
the answers are reproducible from ``seed`` — so replicas of one worker each need their own
``seed``. (Run under ``uvicorn --workers N`` directly, pass ``workers`` too.)

Run it with uvicorn, one store connection per worker process::

    MULTISTEAL_SERVICE_CONFIG='{"target_dir": "runs/x/target", "store_url": "sqlite:///s.db"}' \\
        uvicorn --factory multisteal.service.app:app_from_env --workers 4
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from numpy.typing import NDArray
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from multisteal.data.inputs import InputSpec, TabularSpec, n_inputs
from multisteal.errors import BudgetExceededError, InvalidInputError, QueryRefusedError
from multisteal.models.io import load_model, read_metadata
from multisteal.models.zoo import Classifier
from multisteal.query.api import Defence, effective_output_mode
from multisteal.query.defences import make_defences, parse_defence
from multisteal.query.detection import DETECTORS, make_detector
from multisteal.query.ledger import batch_digest
from multisteal.query.outputs import Answer, full_answer, make_output_policy
from multisteal.service.store import BUDGET_EXCEEDED, KeyInfo, QueryEntry, Store, open_store
from multisteal.service.watch import DetectorWatch, encode_payload

__all__ = ["CONFIG_ENV", "app_from_env", "create_app"]

CONFIG_ENV = "MULTISTEAL_SERVICE_CONFIG"
"""Environment variable holding :func:`create_app`'s arguments as JSON (:func:`app_from_env`)."""
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024

NO_SPEC = (
    "The target at {path} publishes no input spec (meta.json has no 'input_spec' and the model "
    "carries none): the service takes raw records, images or texts, so it needs one."
)
NO_LEAVES = (
    "The leaf output mode reveals the leaf that decided each input, but this target has no "
    "leaves: it is for decision-tree targets."
)
BAD_MAX_BATCH = "max_batch must be a positive whole number, got {value!r}."
BAD_MAX_BODY = "max_body_bytes must be a positive whole number, got {value!r}."
BAD_WORKERS = "workers must be a positive whole number, got {value!r}."
UNKNOWN_DETECTOR = "Unknown detector {name!r}: the service takes detect='none' or one of {names}."
REFUSE_WITHOUT_DETECTOR = "--detect-refuse (detect_refuse) needs a detector: --detect prada."
PARAMS_WITHOUT_DETECTOR = (
    "--detect-param values (detect_params) are given but no detector is: add --detect prada."
)
FLAGGED = (
    "The service's {detector} detector flagged this key's query stream after {after} inputs; "
    "it refuses every further query from this key. Nothing in this batch was answered."
)
AUDITORS_ONLY = "Only auditor keys (multisteal keys add NAME --auditor) may see other keys."
NO_SUCH_KEY = "No key of this service has this SHA-256."
NOT_A_DIGEST = "Name a key by the SHA-256 of the key: 64 lowercase hexadecimal digits."
_HEX64 = re.compile(r"[0-9a-f]{64}")
BAD_VIEW = "The X-Multisteal-View header must be 'public' or 'full'; got {got!r}."
NOT_AUDITOR = (
    "This key may only have the service's public answers; full probabilities (X-Multisteal-View: "
    "full) are for auditor keys (multisteal keys add NAME --auditor)."
)
BAD_IDEMPOTENCY_KEY = (
    "The Idempotency-Key header must be 1 to 200 visible ASCII characters (no spaces), such as "
    "a UUID; got {got!r}."
)
NO_CONFIG = (
    "Set {env} to a JSON object of create_app's arguments, e.g. "
    '{{"target_dir": "runs/x/target", "store_url": "sqlite:///service.db"}}.'
)
BAD_CONFIG = "{env} is not a valid JSON object of create_app's arguments ({problem})."

MISSING_KEY = "Missing API key: send the header 'Authorization: Bearer <key>'."
WRONG_KEY = "Unknown API key."
RATE_LIMITED = "Rate limit exceeded for this API key: retry in {seconds} s."
BODY_TOO_LARGE = "The request body is larger than this service's limit of {limit} bytes."
NOT_JSON = "The request body is not valid JSON ({problem})."
NON_FINITE_LITERAL = (
    "The request body holds the literal {name}, which is not JSON: inputs must be finite numbers."
)
NON_FINITE_NUMBER = "The request body holds the number {text}, which is not finite as a float."
HUGE_INT = "The request body holds the integer {text}, which does not fit in 64 bits."
LONE_SURROGATE = (
    "The request body holds a string with a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff "
    "escape), which is not valid Unicode."
)
BAD_BODY = 'The request body must be a JSON object {{"inputs": [...]}}; got {got}.'
EXTRA_FIELDS = 'The request body has unknown field(s) {fields}; it takes only "inputs".'
INPUTS_NOT_LIST = '"inputs" must be a JSON array; got {got}.'
EMPTY_INPUTS = "A query batch must contain at least one input."
BATCH_TOO_LARGE = "A batch may hold at most {limit} inputs; this one holds {n}."
RECORD_EXPECTED = (
    "Input {index} is {got}, but this target takes tabular records: JSON objects "
    "{{column: value}} with the columns {columns}."
)
BAD_RECORD_VALUE = (
    "Input {index}, column {column!r}: a value must be a number, a string or null; got {got}."
)
IMAGE_EXPECTED = (
    "Input {index} is a record (a JSON object), but this target takes images: nested arrays of "
    "numbers of shape {shape}."
)
TEXT_EXPECTED = "Input {index} is {got}, but this target takes texts: JSON strings."

_INT64 = 2**63
# A UTF-8 body can hold an unpaired surrogate only through a "\\udXXX" escape; json also reads
# UTF-16/32 bodies (a NUL among their first 4 bytes), which are always checked.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class PredictResponse(BaseModel):
    """The answer to a batch (``scores``/``revealed`` as the output policy leaves them)."""

    labels: list[int]
    scores: list[list[float]] | None
    revealed: list[list[bool]] | None
    mode: str
    classes: list[str]
    leaves: list[int] | None
    budget_remaining: int


class KeyStatusResponse(BaseModel):
    """Another key's budget and flag, as an auditor sees it."""

    name: str
    budget: int
    used: int
    flagged_after: int | None


class ErrorResponse(BaseModel):
    """A refusal and its reason."""

    detail: str


class BudgetResponse(BaseModel):
    """A refusal for lack of budget: nothing in the batch was answered."""

    detail: str
    budget_remaining: int
    refused: str


class InfoResponse(BaseModel):
    """What the service publishes about the target: never model internals."""

    input_spec: dict[str, Any]
    classes: list[str]
    output: str
    n_features: int
    max_batch: int
    trained_on: dict[str, Any]
    policy: dict[str, Any]
    detect: str
    detect_refuse: bool
    budget: dict[str, int] | None = None
    flagged_after: int | None = None
    auditor: bool | None = None


_PREDICT_BODY: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": (
                "A client-chosen id of this batch, resent unchanged with every retry: a retried "
                "batch already answered is answered again from the stored answer and charged once."
            ),
            "schema": {"type": "string", "minLength": 1, "maxLength": 200},
        },
        {
            "name": "X-Multisteal-View",
            "in": "header",
            "required": False,
            "description": (
                "'public': the service's answers (output policy and defences); 'full': the "
                "target's full probabilities, for auditor keys only (their default)."
            ),
            "schema": {"type": "string", "enum": ["public", "full"]},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["inputs"],
                    "additionalProperties": False,
                    "properties": {
                        "inputs": {
                            "type": "array",
                            "minItems": 1,
                            "description": (
                                "Tabular records as objects {column: value} with the dataset's "
                                "raw column names, images as nested arrays of numbers, or "
                                "texts as strings (see GET /v1/info)."
                            ),
                            "items": {},
                        }
                    },
                }
            }
        },
    },
}


class _RefusedError(Exception):
    """A request answered with an error status instead of a prediction."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"detail": self.detail, **self.extra}, status_code=self.status, headers=self.headers
        )


@dataclass
class _Service:
    """One worker's state: the target (loaded once), its store connection and defences."""

    model: Classifier
    spec: InputSpec
    classes: list[str]
    output: str
    output_mode: str
    k: int
    decimals: int
    defence_chain: tuple[tuple[str, dict[str, Any]], ...]
    seed: int
    max_batch: int
    max_body_bytes: int
    trained_on: dict[str, Any]
    store_url: str
    detect: str = "none"
    detect_params: dict[str, Any] = field(default_factory=dict)
    detect_refuse: bool = False
    workers: int = 1
    store: Store | None = None
    defences: tuple[Defence, ...] = ()
    watch: DetectorWatch | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> None:
        """Per worker process: its store connection, defences and detectors."""
        self.store = open_store(self.store_url)
        noise = self.seed
        if self.workers > 1:  # each worker its own noise stream (process id and fresh entropy)
            salt = int.from_bytes(os.urandom(8), "little")
            noise = int(np.random.SeedSequence([self.seed, os.getpid(), salt]).generate_state(1)[0])
        self.defences = tuple(
            make_defences(self.defence_chain, seed=noise, model=self.model, service_seed=self.seed)
        )
        if self.detect != "none":
            self.watch = DetectorWatch(
                lambda: make_detector(self.detect, self.detect_params, model=self.model),
                self.spec.validate,
            )

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    @property
    def n_features(self) -> int:
        return len(self.spec.columns) if isinstance(self.spec, TabularSpec) else 0

    def info(self) -> dict[str, Any]:
        return {
            "input_spec": self.spec.to_dict(),
            "classes": list(self.classes),
            "output": self.output_mode,
            "n_features": self.n_features,
            "max_batch": self.max_batch,
            "trained_on": dict(self.trained_on),
            "policy": self.policy(),
            "detect": self.detect,
            "detect_refuse": self.detect_refuse,
        }

    def policy(self) -> dict[str, Any]:
        """The output policy and its parameter (what every answer shows anyway)."""
        out: dict[str, Any] = {"output": self.output}
        if self.output == "top-k":
            out["k"] = self.k
        if self.output == "rounded":
            out["decimals"] = self.decimals
        return out

    # -- the steps of a request ------------------------------------------------------------

    def _store(self) -> Store:
        assert self.store is not None, "the service's store is opened at startup"
        return self.store

    def authenticate(self, authorization: str | None) -> KeyInfo:
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise _RefusedError(401, MISSING_KEY, headers={"WWW-Authenticate": "Bearer"})
        info = self._store().authenticate(key.strip())
        if info is None:
            raise _RefusedError(401, WRONG_KEY, headers={"WWW-Authenticate": "Bearer"})
        return info

    def key_by_digest(self, digest: str) -> KeyInfo:
        """The key whose SHA-256 is ``digest`` (404 otherwise)."""
        if not _HEX64.fullmatch(digest):
            raise _RefusedError(422, NOT_A_DIGEST)
        info = self._store().key_by_digest(digest)
        if info is None:
            raise _RefusedError(404, NO_SUCH_KEY)
        return info

    def admit(self, authorization: str | None) -> KeyInfo:
        """Authenticate the request and take a token from its key's rate bucket."""
        info = self.authenticate(authorization)
        wait = self._store().check_rate(info.id)
        if wait is not None:
            seconds = max(1, math.ceil(wait))
            raise _RefusedError(
                429,
                RATE_LIMITED.format(seconds=seconds),
                headers={"Retry-After": str(seconds)},
            )
        return info

    def validate(self, body: bytes) -> tuple[list[Any], Any]:
        """The request's JSON inputs and the same validated through the input spec (422
        otherwise)."""
        payload = _parse_json(body)
        if not isinstance(payload, dict):
            raise _RefusedError(422, BAD_BODY.format(got=_json_kind(payload)))
        extra = sorted(set(payload) - {"inputs"})
        if extra:
            raise _RefusedError(422, EXTRA_FIELDS.format(fields=", ".join(map(repr, extra))))
        if "inputs" not in payload:
            raise _RefusedError(422, BAD_BODY.format(got="an object without 'inputs'"))
        inputs = payload["inputs"]
        if not isinstance(inputs, list):
            raise _RefusedError(422, INPUTS_NOT_LIST.format(got=_json_kind(inputs)))
        if not inputs:
            raise _RefusedError(422, EMPTY_INPUTS)
        if len(inputs) > self.max_batch:
            raise _RefusedError(422, BATCH_TOO_LARGE.format(limit=self.max_batch, n=len(inputs)))
        self._check_items(inputs)
        try:
            return inputs, self.spec.validate(inputs)
        except InvalidInputError as exc:
            raise _RefusedError(422, str(exc)) from None

    def _check_items(self, inputs: list[Any]) -> None:
        """What the spec's own validation would report less clearly for JSON inputs."""
        if isinstance(self.spec, TabularSpec):
            columns = ", ".join(self.spec.names)
            for index, item in enumerate(inputs):
                if not isinstance(item, dict):
                    raise _RefusedError(
                        422,
                        RECORD_EXPECTED.format(index=index, got=_json_kind(item), columns=columns),
                    )
                for column, value in item.items():
                    if value is not None and not isinstance(value, (str, int, float)):
                        raise _RefusedError(
                            422,
                            BAD_RECORD_VALUE.format(
                                index=index, column=column, got=_json_kind(value)
                            ),
                        )
        elif self.spec.modality == "image":
            shape = ["n", *getattr(self.spec, "shape", ())]
            for index, item in enumerate(inputs):
                if isinstance(item, dict):
                    raise _RefusedError(422, IMAGE_EXPECTED.format(index=index, shape=shape))
        else:
            for index, item in enumerate(inputs):
                if not isinstance(item, str):
                    raise _RefusedError(
                        422, TEXT_EXPECTED.format(index=index, got=_json_kind(item))
                    )

    def predict(self, inputs: Any, *, full: bool = False) -> tuple[Answer, NDArray[np.int64]]:
        """The answer the output policy and the defences leave (as ``LocalQueryAPI`` does) —
        with ``full``, the target's own probabilities — and the model's own decisions (what a
        detector observes)."""
        policy = make_output_policy(
            "probabilities" if full else self.output, k=self.k, decimals=self.decimals
        )
        with self.lock:  # defences draw from their own random streams
            probabilities = np.asarray(self.model.predict_proba(inputs), dtype=np.float64)
            leaves = None
            if policy.name == "leaf":
                leaves = np.asarray(self.model.apply(inputs), dtype=np.int64)  # type: ignore[attr-defined]
            answer = full_answer(probabilities, leaves)
            for defence in () if full else self.defences:
                answer = defence(inputs, answer)
        decisions = np.argmax(probabilities, axis=1).astype(np.int64)
        return policy.restrict(answer), decisions

    def answer(
        self,
        key: KeyInfo,
        raw: list[Any],
        inputs: Any,
        received_at: float,
        request_id: str | None = None,
        full: bool = False,
    ) -> dict[str, Any]:
        """Answer a validated batch for ``key`` (``full``: an auditor's full probabilities,
        neither defended nor observed by the detector)."""
        store = self._store()
        rows = n_inputs(inputs)
        # The view is part of the request's identity: the same id asked in another view is
        # another request.
        if request_id is not None:
            request_id = f"{'full' if full else 'public'}:{request_id}"
        entry = QueryEntry(
            sha256=batch_digest(inputs), received_at=received_at, request_id=request_id
        )
        if request_id is None:  # refuse early what cannot be answered (a retry may be replayed)
            current = store.key_info(key.id)
            entry = replace(entry, flagged=current.flagged_after is not None)
            if self.detect_refuse and current.flagged_after is not None:
                store.log_refusal(key.id, rows, entry, "refused-flagged")
                raise self._flagged(current.flagged_after, current.remaining)
            if rows > current.remaining:
                store.log_refusal(key.id, rows, entry, "refused-budget")
                message = BUDGET_EXCEEDED.format(
                    rows=rows, remaining=current.remaining, total=current.budget, used=current.used
                )
                raise _RefusedError(
                    403, message, extra={"budget_remaining": current.remaining, "refused": "budget"}
                )
        answer, decisions = self.predict(inputs, full=full)
        out: dict[str, Any] = {
            "labels": answer.labels.tolist(),
            "scores": None if answer.scores is None else answer.scores.tolist(),
            "revealed": None if answer.revealed is None else answer.revealed.tolist(),
            "mode": answer.mode,
            "classes": list(self.classes),
            "leaves": None if answer.leaves is None else answer.leaves.tolist(),
        }
        watch = None if key.auditor else self.watch  # an auditor's queries are not an attack
        if watch is not None:
            entry = replace(entry, inputs=encode_payload(raw, decisions))
        if request_id is not None:
            entry = replace(entry, response=zlib.compress(json.dumps(out).encode("utf-8"), 1))
        try:
            admitted = store.admit_batch(
                key.id, rows, entry, watch=watch, refuse_flagged=self.detect_refuse
            )
        except BudgetExceededError as exc:
            raise _RefusedError(
                403,
                str(exc),
                extra={"budget_remaining": store.remaining(key.id), "refused": "budget"},
            ) from None
        except QueryRefusedError:
            current = store.key_info(key.id)
            raise self._flagged(current.flagged_after, current.remaining) from None
        except InvalidInputError as exc:  # an Idempotency-Key reused for another batch
            assert entry.request_id is not None
            shown = entry.request_id.partition(":")[2]
            raise _RefusedError(422, str(exc).replace(entry.request_id, shown)) from None
        if admitted.replayed is not None:
            out = json.loads(zlib.decompress(admitted.replayed))
        out["budget_remaining"] = int(admitted.remaining)
        return out

    def _flagged(self, after: int | None, remaining: int) -> _RefusedError:
        name = self.watch.name if self.watch is not None else "query-stream"
        return _RefusedError(
            403,
            FLAGGED.format(detector=name, after=after),
            extra={"budget_remaining": remaining, "refused": "flagged"},
        )


def _json_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _parse_json(body: bytes) -> Any:
    """Strict JSON: NaN/Infinity literals, overflowing floats and huge integers are refused."""

    def constant(name: str) -> Any:
        raise _RefusedError(422, NON_FINITE_LITERAL.format(name=name))

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise _RefusedError(422, NON_FINITE_NUMBER.format(text=text))
        return value

    def integer(text: str) -> int:
        if len(text) > 20 or not -_INT64 <= int(text) < _INT64:
            raise _RefusedError(422, HUGE_INT.format(text=text[:30]))
        return int(text)

    try:
        payload = json.loads(body, parse_constant=constant, parse_float=number, parse_int=integer)
        if b"\x00" in body[:4] or _SURROGATE_ESCAPE.search(body):
            # Python's json accepts "\ud800", but such a string cannot be encoded (for pandas,
            # the digest or the error message that would echo it): refuse it here.
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except _RefusedError:
        raise
    except UnicodeEncodeError:
        raise _RefusedError(422, LONE_SURROGATE) from None
    except RecursionError:
        raise _RefusedError(422, NOT_JSON.format(problem="nested too deeply")) from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise _RefusedError(422, NOT_JSON.format(problem=exc)) from None
    return payload


async def _read_body(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise _RefusedError(413, BODY_TOO_LARGE.format(limit=limit))
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise _RefusedError(413, BODY_TOO_LARGE.format(limit=limit))
    return bytes(body)


def _full_view(key: KeyInfo, value: str | None) -> bool:
    """Whether the request gets the target's full probabilities (auditor keys, by default)."""
    if value is None:
        return key.auditor
    if value not in ("public", "full"):
        raise _RefusedError(422, BAD_VIEW.format(got=value[:40]))
    if value == "full" and not key.auditor:
        raise _RefusedError(403, NOT_AUDITOR, extra={"refused": "view"})
    return value == "full"


def _idempotency_key(value: str | None) -> str | None:
    """The request's ``Idempotency-Key`` (``None``: none sent); 422 when malformed."""
    if value is None:
        return None
    if not 1 <= len(value) <= 200 or not all(" " < c <= "~" for c in value):
        raise _RefusedError(422, BAD_IDEMPOTENCY_KEY.format(got=value[:40]))
    return value


def _positive(value: object, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(message.format(value=value))
    return value


def create_app(
    target_dir: str | Path,
    *,
    store_url: str,
    output: str = "probabilities",
    k: int = 1,
    decimals: int = 2,
    defences: Sequence[str | tuple[str, Mapping[str, Any]]] = (),
    seed: int = 0,
    max_batch: int = 1024,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    detect: str = "none",
    detect_params: Mapping[str, Any] | None = None,
    detect_refuse: bool = False,
    workers: int = 1,
) -> FastAPI:
    """The prediction service for the target saved in ``target_dir``.

    Parameters
    ----------
    target_dir : str or Path
        A target artifact (``RUN_DIR/target``) whose ``meta.json`` publishes its input spec.
    store_url : str
        The store of keys, budgets and the log (:func:`~multisteal.service.store.open_store`);
        each worker process opens its own connection at startup.
    output, k, decimals : the output policy (:func:`~multisteal.query.outputs.make_output_policy`).
    defences : the defence chain, in order: ``"name:param=value"`` strings (as ``--defence``
        takes them) or ``(name, params)`` pairs
        (:func:`~multisteal.query.defences.make_defences`, seeded with ``seed``).
    max_batch : the most inputs one request may hold.
    max_body_bytes : the largest request body accepted (413 beyond).
    detect, detect_params : a query-stream detector per key (``"prada"``,
        :mod:`multisteal.query.detection`, with its parameters) or ``"none"``; it observes every
        batch that fits the budget before it is answered, across workers and replicas
        (:mod:`multisteal.service.watch`).
    detect_refuse : once a key's stream is flagged, refuse its every further batch (403);
        otherwise the flag is only logged.
    workers : the number of worker processes serving this app (each draws its own defence
        noise when above 1).

    Returns
    -------
    FastAPI
        The application (``POST /v1/predict``, ``GET /v1/info``, ``GET /healthz``).
    """
    folder = Path(target_dir)
    metadata: dict[str, Any] = dict(read_metadata(folder).get("metadata", {}))
    model = load_model(folder)
    spec: InputSpec | None = getattr(model, "input_spec_", None)
    if spec is None:
        raise InvalidInputError(NO_SPEC.format(path=folder))
    policy = make_output_policy(output, k=k, decimals=decimals)  # checks output, k, decimals
    if policy.name == "leaf" and not hasattr(model, "apply"):
        raise InvalidInputError(NO_LEAVES)
    chain = tuple(
        parse_defence(d) if isinstance(d, str) else (str(d[0]), dict(d[1])) for d in defences
    )
    modes = [d.mode_after for d in make_defences(chain, seed=seed, model=model)]
    n_classes = len(model.classes_)
    saved = metadata.get("classes")
    classes = (
        [str(c) for c in saved]
        if isinstance(saved, list) and len(saved) == n_classes
        else [str(c) for c in range(n_classes)]
    )
    if detect != "none" and detect not in DETECTORS:
        raise InvalidInputError(
            UNKNOWN_DETECTOR.format(name=detect, names=", ".join(map(repr, DETECTORS)))
        )
    if detect_refuse and detect == "none":
        raise InvalidInputError(REFUSE_WITHOUT_DETECTOR)
    if detect_params and detect == "none":
        raise InvalidInputError(PARAMS_WITHOUT_DETECTOR)
    params = dict(detect_params or {})
    if detect != "none":
        make_detector(detect, params, model=model)  # checks the parameters now
    trained_on = {
        name: metadata[key]
        for name, key in (
            ("dataset", "data"),
            ("split", "split"),
            ("seed", "seed"),
            ("split_seed", "split_seed"),
        )
        if key in metadata
    }
    service = _Service(
        model=model,
        spec=spec,
        classes=classes,
        output=output,
        output_mode=effective_output_mode(output, modes),
        k=k,
        decimals=decimals,
        defence_chain=chain,
        seed=seed,
        max_batch=_positive(max_batch, BAD_MAX_BATCH),
        max_body_bytes=_positive(max_body_bytes, BAD_MAX_BODY),
        trained_on=trained_on,
        store_url=store_url,
        detect=detect,
        detect_params=params,
        detect_refuse=bool(detect_refuse),
        workers=_positive(workers, BAD_WORKERS),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(service.open)
        try:
            yield
        finally:
            await run_in_threadpool(service.close)

    app = FastAPI(
        title="multisteal prediction service",
        description="A model behind API keys, per-key budgets and rate limits.",
        lifespan=lifespan,
    )

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info", response_model=InfoResponse, response_model_exclude_none=True)
    def info(request: Request) -> Any:
        """The published input spec, classes and output mode; with a valid key, its budget."""
        out = service.info()
        authorization = request.headers.get("authorization")
        if authorization:
            try:
                key = service.authenticate(authorization)
            except _RefusedError as refused:
                return refused.response()
            out["budget"] = {"total": key.budget, "used": key.used, "remaining": key.remaining}
            # A stream flagged in log-only mode is not told so (it would switch keys); a
            # refused stream is told by the refusal anyway, and auditors see every key.
            if key.auditor or service.detect_refuse:
                out["flagged_after"] = key.flagged_after
            out["auditor"] = key.auditor
        return out

    @app.get(
        "/v1/keys/{key_sha256}",
        response_model=KeyStatusResponse,
        responses={401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}},
    )
    def key_status(key_sha256: str, request: Request) -> Any:
        """For auditor keys: another key's budget and flag, named by the SHA-256 of the key
        (what the store keeps; the auditor who holds that key can compute it)."""
        try:
            key = service.authenticate(request.headers.get("authorization"))
            if not key.auditor:
                raise _RefusedError(403, AUDITORS_ONLY)
            other = service.key_by_digest(key_sha256)
        except _RefusedError as refused:
            return refused.response()
        return {
            "name": other.name,
            "budget": other.budget,
            "used": other.used,
            "flagged_after": other.flagged_after,
        }

    @app.post(
        "/v1/predict",
        response_model=PredictResponse,
        openapi_extra=_PREDICT_BODY,
        responses={
            401: {"model": ErrorResponse},
            403: {"model": BudgetResponse},
            413: {"model": ErrorResponse},
            422: {"model": ErrorResponse},
            429: {"model": ErrorResponse},
        },
    )
    async def predict(request: Request) -> Any:
        """Answer a batch of inputs, charged to the key's budget and logged."""
        received_at = time.time()
        try:
            key = await run_in_threadpool(service.admit, request.headers.get("authorization"))
            request_id = _idempotency_key(request.headers.get("idempotency-key"))
            full = _full_view(key, request.headers.get("x-multisteal-view"))
            body = await _read_body(request, service.max_body_bytes)
            raw, inputs = await run_in_threadpool(service.validate, body)
            out = await run_in_threadpool(
                service.answer, key, raw, inputs, received_at, request_id, full
            )
        except _RefusedError as refused:
            return refused.response()
        return JSONResponse(out)

    app.state.service = service
    return app


def app_from_env() -> FastAPI:
    """:func:`create_app` with the arguments in the JSON environment variable
    :data:`CONFIG_ENV` (for ``uvicorn --factory``, which starts each worker from it)."""
    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise InvalidInputError(NO_CONFIG.format(env=CONFIG_ENV))
    try:
        config = json.loads(raw)
        if not isinstance(config, dict):
            raise TypeError("not an object")
        target_dir = config.pop("target_dir")
        defences = [
            d if isinstance(d, str) else (str(d[0]), dict(d[1])) for d in config.pop("defences", [])
        ]
        return create_app(target_dir, defences=defences, **config)
    except (ValueError, TypeError, KeyError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(BAD_CONFIG.format(env=CONFIG_ENV, problem=exc)) from None
