"""The query API: the only way an attack touches a target."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from multisteal.data.inputs import InputSpec, n_inputs
from multisteal.errors import BudgetExceededError, InvalidInputError
from multisteal.models.zoo import Classifier
from multisteal.query.ledger import BudgetLedger, QueryLog, QueryRecord, batch_digest
from multisteal.query.outputs import Answer, OutputPolicy, make_output_policy

__all__ = ["Defence", "LocalQueryAPI", "QueryAPI"]

QUERY_NOT_2D = "Queries must be a 2-D array of shape (n_rows, {d}), got shape {shape}."
QUERY_BAD_WIDTH = "Queries have {got} features, but the target expects {d}."
QUERY_NOT_FINITE = "Queries contain NaN or infinite values."
QUERY_EMPTY = "A query batch must contain at least one row."
QUERY_NOT_NUMERIC = (
    "Queries must be numbers: a 2-D array of shape (n_rows, {d}) ({problem}). This API takes "
    "encoded vectors; give the target's input spec to take raw records, images or texts."
)
NO_WIDTH = "n_features is required when the model has no n_features_in_ attribute."

Defence = Callable[[NDArray[np.float64]], NDArray[np.float64]]
"""A defence maps the model's probabilities (n, C) to perturbed probabilities (n, C)."""


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
    output : output policy name (``probabilities``, ``top-k``, ``label``, ``rounded``) or a
        callable ``probabilities -> Answer``.
    budget : the number of rows this API will answer in total (``None``: unlimited).
    defences : callables applied in order to the probabilities before the output policy.
    k, decimals : parameters of the ``top-k`` and ``rounded`` policies.
    n_features : width of a query row; read from ``model.n_features_in_`` when omitted.
    """

    def __init__(
        self,
        model: Classifier,
        *,
        output: str | OutputPolicy = "probabilities",
        budget: int | None,
        defences: Sequence[Defence] = (),
        k: int = 1,
        decimals: int = 2,
        n_features: int | None = None,
        input_spec: InputSpec | None = None,
    ) -> None:
        self._model = model
        self._spec = input_spec
        self._policy = (
            make_output_policy(output, k=k, decimals=decimals)
            if isinstance(output, str)
            else output
        )
        self._output_mode = output if isinstance(output, str) else getattr(output, "name", "custom")
        self._defences = tuple(defences)
        self._ledger = BudgetLedger(budget)
        self._log = QueryLog()
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
        return self._output_mode

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
        not fit, InvalidInputError (naming the problem) if the inputs are not what it takes."""
        arr = self._check(X)
        rows = n_inputs(arr)
        started = time.time()
        clock = time.perf_counter()
        digest = batch_digest(arr)
        batch = len(self._log)
        try:
            self._ledger.charge(rows)
        except BudgetExceededError:
            self._log.append(
                QueryRecord(batch, rows, digest, started, 0.0, "refused", self._ledger.used)
            )
            raise
        probabilities = np.asarray(self._model.predict_proba(arr), dtype=np.float64)
        for defence in self._defences:
            probabilities = defence(probabilities)
        answer = self._policy(probabilities)
        self._log.append(
            QueryRecord(
                batch,
                rows,
                digest,
                started,
                time.perf_counter() - clock,
                "answered",
                self._ledger.used,
            )
        )
        return answer
