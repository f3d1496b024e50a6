"""The query API: the only way an attack touches a target."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from multisteal.data.inputs import InputSpec, n_inputs
from multisteal.errors import BudgetExceededError, InvalidInputError, QueryRefusedError
from multisteal.models.zoo import Classifier
from multisteal.query.ledger import BudgetLedger, QueryLog, QueryRecord, batch_digest
from multisteal.query.outputs import Answer, full_answer, make_output_policy

__all__ = ["Defence", "Detector", "LocalQueryAPI", "QueryAPI", "effective_output_mode"]

QUERY_NOT_2D = "Queries must be a 2-D array of shape (n_rows, {d}), got shape {shape}."
QUERY_BAD_WIDTH = "Queries have {got} features, but the target expects {d}."
QUERY_NOT_FINITE = "Queries contain NaN or infinite values."
QUERY_EMPTY = "A query batch must contain at least one row."
QUERY_NOT_NUMERIC = (
    "Queries must be numbers: a 2-D array of shape (n_rows, {d}) ({problem}). This API takes "
    "encoded vectors; give the target's input spec to take raw records, images or texts."
)
NO_WIDTH = "n_features is required when the model has no n_features_in_ attribute."
NO_LEAVES = (
    "The leaf output mode reveals the leaf that decided each input, but this model ({cls}) "
    "has no leaves: it is for decision-tree targets (--target tree)."
)
FLAGGED = (
    "The service stopped answering: its {detector} detector flagged this query stream after "
    "receiving {after} inputs, and it refuses every query once flagged."
)


@runtime_checkable
class Defence(Protocol):
    """An answer-side defence: it sees the query inputs (as validated) and the answer so far
    (full probabilities, or what earlier defences left) and returns the answer to send on.

    ``mode_after(mode)`` is the output mode its answers have when they arrive in ``mode``
    (``label-only`` turns every mode into ``label``; a perturbation keeps the mode).
    """

    @property
    def name(self) -> str: ...

    def __call__(self, inputs: Any, answer: Answer) -> Answer: ...

    def mode_after(self, mode: str) -> str: ...


@runtime_checkable
class Detector(Protocol):
    """A detector watching the stream of queries a service receives (e.g. PRADA).

    ``observe`` sees every batch that fits the budget, before it is answered (inputs and the
    model's own decisions), and returns whether the stream is flagged; ``flagged_after`` is the
    number of inputs observed when it was first flagged (``None``: not flagged).
    """

    @property
    def name(self) -> str: ...

    def observe(self, inputs: Any, labels: NDArray[np.int64]) -> bool: ...

    @property
    def flagged_after(self) -> int | None: ...


def effective_output_mode(output: str, mode_after: Sequence[Callable[[str], str]]) -> str:
    """What the answers reveal after defences (their ``mode_after``, in order) and the
    ``output`` policy."""
    mode = "probabilities"
    for step in mode_after:
        mode = step(mode)
    if output == "probabilities":
        return mode
    if mode == "label":
        return "label"
    if output == "rounded" and mode != "probabilities":
        return mode  # rounding keeps what earlier steps left (e.g. top-k)
    return output


@runtime_checkable
class QueryAPI(Protocol):
    """A prediction service seen from outside: inputs in, answers out, under a budget.

    ``input_spec`` is what the service publishes about the inputs it takes (records, images or
    texts); ``None`` for an API over already encoded float vectors.
    """

    @property
    def input_spec(self) -> InputSpec | None: ...

    @property
    def n_features(self) -> int: ...

    @property
    def n_classes(self) -> int: ...

    @property
    def output_mode(self) -> str: ...

    @property
    def ledger(self) -> BudgetLedger: ...

    @property
    def log(self) -> QueryLog: ...

    def query(self, X: Any) -> Answer: ...


class LocalQueryAPI:
    """An in-process prediction API around a fitted classifier.

    With ``input_spec`` the API takes raw inputs as a deployed model does — records, images or
    texts — and validates every batch through the spec (:mod:`multisteal.data.inputs`); the
    model is then a raw-input model (an :class:`~multisteal.models.InputPipeline`). Without it,
    the API takes 2-D float arrays of ``n_features`` columns (an encoded-vector model).

    Parameters
    ----------
    model : a fitted classifier with ``predict_proba``.
    input_spec : the inputs the API accepts (``None``: encoded float vectors).
    output : output policy name (``probabilities``, ``top-k``, ``label``, ``rounded``,
        ``leaf``).
    budget : the number of rows this API will answer in total (``None``: unlimited).
    defences : answer-side defences (:class:`Defence`), applied in order to the full answer
        before the output policy restricts it.
    detectors : detectors watching the stream of received queries (:class:`Detector`).
    refuse_when_flagged : once a detector has flagged the stream, refuse every further batch
        (:class:`~multisteal.errors.QueryRefusedError`); otherwise only record the flag.
    k, decimals : parameters of the ``top-k`` and ``rounded`` policies.
    n_features : width of a query row; read from ``model.n_features_in_`` when omitted.
    """

    def __init__(
        self,
        model: Classifier,
        *,
        output: str = "probabilities",
        budget: int | None,
        defences: Sequence[Defence] = (),
        detectors: Sequence[Detector] = (),
        refuse_when_flagged: bool = False,
        k: int = 1,
        decimals: int = 2,
        n_features: int | None = None,
        input_spec: InputSpec | None = None,
    ) -> None:
        self._model = model
        self._spec = input_spec
        self._policy = make_output_policy(output, k=k, decimals=decimals)
        self._defences = tuple(defences)
        self._output_mode = effective_output_mode(output, [d.mode_after for d in self._defences])
        if output == "leaf" and not hasattr(model, "apply"):
            raise InvalidInputError(NO_LEAVES.format(cls=type(model).__name__))
        self._detectors = tuple(detectors)
        self._refuse = refuse_when_flagged
        self._ledger = BudgetLedger(budget)
        self._log = QueryLog(keep_inputs=bool(self._detectors))
        if input_spec is not None:
            width: int | None = len(getattr(input_spec, "columns", ())) or 0
        else:
            width = n_features if n_features is not None else getattr(model, "n_features_in_", None)
        if width is None:
            raise InvalidInputError(NO_WIDTH)
        self._n_features = int(width)
        self._n_classes = len(model.classes_)

    @property
    def input_spec(self) -> InputSpec | None:
        return self._spec

    @property
    def n_features(self) -> int:
        """Columns of a query: encoded width, or the record's columns (0 for images/texts)."""
        return self._n_features

    @property
    def n_classes(self) -> int:
        return self._n_classes

    @property
    def output_mode(self) -> str:
        """What the answers reveal, after the defences: ``probabilities``, ``top-k``,
        ``rounded``, ``label`` or ``leaf``."""
        return self._output_mode

    @property
    def detectors(self) -> tuple[Detector, ...]:
        return self._detectors

    @property
    def ledger(self) -> BudgetLedger:
        return self._ledger

    @property
    def log(self) -> QueryLog:
        return self._log

    def _check(self, X: Any) -> Any:
        if self._spec is not None:
            return self._spec.validate(X)
        try:
            arr = np.asarray(X, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(
                QUERY_NOT_NUMERIC.format(d=self._n_features, problem=exc)
            ) from None
        if arr.ndim != 2:
            raise InvalidInputError(QUERY_NOT_2D.format(d=self._n_features, shape=arr.shape))
        if arr.shape[0] == 0:
            raise InvalidInputError(QUERY_EMPTY)
        if arr.shape[1] != self._n_features:
            raise InvalidInputError(QUERY_BAD_WIDTH.format(got=arr.shape[1], d=self._n_features))
        if not np.isfinite(arr).all():
            raise InvalidInputError(QUERY_NOT_FINITE)
        return arr

    def query(self, X: Any) -> Answer:
        """Answer a batch of inputs; raises BudgetExceededError (answering nothing) if it does
        not fit, InvalidInputError (naming the problem) if the inputs are not what it takes,
        and — with ``refuse_when_flagged`` — QueryRefusedError (answering nothing) once a
        detector has flagged the stream, including when this very batch makes it flag: the
        detectors see a batch before it is answered, so a flagged stream gets no further row.
        """
        arr = self._check(X)
        rows = n_inputs(arr)
        started = time.time()
        clock = time.perf_counter()
        digest = batch_digest(arr)
        batch = len(self._log)

        def refuse(status: str) -> None:
            self._log.append(
                QueryRecord(
                    batch,
                    rows,
                    digest,
                    started,
                    0.0,
                    status,
                    self._ledger.used,
                    flagged=self._flagged() is not None,
                )
            )

        if self._refuse and self._flagged() is not None:
            refuse("refused-flagged")
            self._raise_flagged()
        try:
            self._ledger.check(rows)
        except BudgetExceededError:
            refuse("refused-budget")
            raise
        probabilities = np.asarray(self._model.predict_proba(arr), dtype=np.float64)
        decisions = np.argmax(probabilities, axis=1).astype(np.int64)
        for detector in self._detectors:
            detector.observe(arr, decisions)
        now_flagged = self._flagged() is not None
        if self._refuse and now_flagged:
            refuse("refused-flagged")
            self._raise_flagged()
        leaves = None
        if self._policy.name == "leaf":
            leaves = np.asarray(self._model.apply(arr), dtype=np.int64)  # type: ignore[attr-defined]
        answer = full_answer(probabilities, leaves)
        for defence in self._defences:
            answer = defence(arr, answer)
        answer = self._policy.restrict(answer)
        self._ledger.charge(rows)  # counted once the answer exists, just before it leaves
        self._log.append(
            QueryRecord(
                batch,
                rows,
                digest,
                started,
                time.perf_counter() - clock,
                "answered",
                self._ledger.used,
                flagged=now_flagged,
            ),
            inputs=arr,
            labels=decisions,
        )
        return answer

    def _flagged(self) -> Detector | None:
        return next((d for d in self._detectors if d.flagged_after is not None), None)

    def _raise_flagged(self) -> None:
        first = self._flagged()
        assert first is not None
        raise QueryRefusedError(FLAGGED.format(detector=first.name, after=first.flagged_after))
