"""Candidates produced by an explorer, the ε-filter and the resulting Rashomon set."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal import metrics
from multisteal.attacks.base import Transcript
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import Classifier
from multisteal.query.outputs import Answer

__all__ = [
    "CRITERIA",
    "DEFAULT_CHUNK_BYTES",
    "CandidateKind",
    "Candidates",
    "Criterion",
    "EmptyRashomonSetWarning",
    "ExplorationContext",
    "Explorer",
    "ExplorerBase",
    "RashomonSet",
    "candidate_losses",
    "check_accepts",
    "check_epsilon",
    "concat_candidates",
    "distinct_candidates",
    "explore_in_memory",
    "rashomon_set",
    "unwrap",
]

Criterion = Literal["transcript", "transcript-loss", "test-fidelity", "test-loss"]
CRITERIA: tuple[str, ...] = ("transcript", "transcript-loss", "test-fidelity", "test-loss")
HOLDOUT = "holdout"
EVALUATION = "evaluation"
PROBE = "probe"
"""A bias probe (the EEC sentences for text models) every candidate is scored on."""
SELECTION = "selection"
"""Evaluation rows set aside to select members with a ``test-*`` criterion; metrics are
measured on the other evaluation rows, never on these."""

BAD_EPSILON = "epsilon must be a finite number >= 0, got {epsilon!r}."
UNKNOWN_CRITERION = "Unknown Rashomon criterion {name!r}. Available criteria: {available}."
EMPTY_HOLDOUT = (
    "The {criterion!r} criterion needs a held-out slice of the transcript, but it is empty "
    "(set holdout_fraction > 0)."
)
NO_SELECTION = (
    "The {criterion!r} criterion selects members on evaluation rows set aside for selection "
    "(input set 'selection'), but the candidates have none; metrics must not be measured on "
    "the rows that select the members."
)
MISSING_INPUT = "Candidates have no outputs for input set {key!r}; they have: {available}."
NOT_ACCEPTED = "The {explorer} explorer cannot explore a {model} surrogate: {reason}"
NO_CANDIDATES = "The explorer produced no candidates."
MIXED_CHUNKS = (
    "Candidate chunks disagree: {what}. Every chunk of one exploration must have the same input "
    "sets, classes and kind."
)
DEFAULT_CHUNK_BYTES = 256 * 2**20
"""Default memory bound of one chunk of candidate outputs (all input sets together)."""
EMPTY_SET = (
    "The ε-Rashomon set is empty (epsilon={epsilon}, criterion={criterion}); its metrics are NaN."
)


class EmptyRashomonSetWarning(UserWarning):
    """Raised (as a warning) when an ε-filter keeps no member."""


CandidateKind = Literal["models", "channels"]
"""``models``: every candidate is one model, the same on every input (its fairness, its
disagreement rate are defined). ``channels``: candidate ``m`` is a different model on every
sample (adversarial weight perturbation pushes the weights separately for each sample and
class), so only per-sample metrics are defined; row-level statistics (discrepancy, fairness of
a member, a member's agreement) are not."""


@dataclass(frozen=True)
class Candidates:
    """Candidate surrogates from an explorer, represented by their outputs.

    Attributes
    ----------
    explorer : the explorer's name.
    params : one row per candidate (explorer parameters: rate, seed, ...). Row 0 of the first
        (or only) chunk is the reference surrogate the attack produced.
    outputs : probabilities of every candidate on each named input set, shape (M, n, C).
    kind : ``models`` (default) or ``channels`` (see :data:`CandidateKind`).
    """

    explorer: str
    params: pd.DataFrame
    outputs: Mapping[str, NDArray[np.float64]]
    kind: CandidateKind = "models"

    def __post_init__(self) -> None:
        for key, array in self.outputs.items():
            if array.ndim != 3 or array.shape[0] != len(self.params):
                raise InvalidInputError(
                    f"Candidate outputs {key!r} have shape {array.shape}; expected "
                    f"({len(self.params)}, n_samples, n_classes)."
                )

    def __len__(self) -> int:
        return len(self.params)

    def output(self, key: str) -> NDArray[np.float64]:
        if key not in self.outputs:
            raise InvalidInputError(
                MISSING_INPUT.format(key=key, available=", ".join(self.outputs))
            )
        return self.outputs[key]


def concat_candidates(chunks: Iterable[Candidates]) -> Candidates:
    """One :class:`Candidates` from the chunks of an exploration, in order."""
    parts = list(chunks)
    if not parts:
        raise InvalidInputError(NO_CANDIDATES)
    first = parts[0]
    for part in parts[1:]:
        if set(part.outputs) != set(first.outputs):
            raise InvalidInputError(MIXED_CHUNKS.format(what="input sets differ"))
        if part.kind != first.kind:
            raise InvalidInputError(MIXED_CHUNKS.format(what="kinds differ"))
    if len(parts) == 1:
        return first
    params = pd.concat([p.params for p in parts], ignore_index=True)
    outputs = {k: np.concatenate([p.outputs[k] for p in parts]) for k in first.outputs}
    return Candidates(first.explorer, params, outputs, first.kind)


def unwrap(model: Any) -> tuple[Callable[[Any], Any], Any]:
    """``(encode, classifier)`` of a raw-input pipeline (``encode`` its encoder, ``classifier``
    the fitted model on encoded rows); a bare classifier is its own classifier, with the
    identity as ``encode``."""
    inner = getattr(model, "model_", None)
    encode = getattr(model, "encode", None)
    if inner is not None and callable(encode):
        return encode, inner
    return (lambda X: X), model


@dataclass(frozen=True)
class ExplorationContext:
    """Everything an explorer may use.

    Attributes
    ----------
    surrogate : the reference surrogate fitted by the attack (any classifier honouring the
        :class:`~multisteal.models.Classifier` contract; each explorer says which families it
        accepts, :meth:`Explorer.accepts`).
    inputs : named input sets on which every candidate is evaluated (at least ``holdout`` and
        ``evaluation`` in an audit): raw inputs of the surrogate's modality (records, images,
        texts) or encoded vectors, whatever the surrogate's ``predict_proba`` takes.
    transcript : the attacker's training transcript (for explorers that refit).
    refit : fits a fresh surrogate on a transcript with a given seed.
    rng : the explorer's random generator.
    refit_with : fits a fresh surrogate of the same family on a transcript with a seed and
        parameter overrides (``{"max_features": 0.8}``); ``None`` when the caller cannot.
    criterion_loss : the audit's ε-criterion loss of every candidate of a chunk, shape (M,),
        computed from their outputs on ``inputs`` (explorers that construct members under the
        constraint, such as AWP, use it to accept a member); ``None`` outside an audit.
    epsilons : the ε values the audit will filter with (AWP builds members for each).
    max_chunk_bytes : memory bound of one chunk of candidate outputs (all input sets).
    """

    surrogate: Classifier
    inputs: Mapping[str, Any]
    transcript: Transcript
    refit: Callable[[Transcript, int], Classifier]
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))
    refit_with: Callable[[Transcript, int, Mapping[str, Any]], Classifier] | None = None
    criterion_loss: Callable[[Candidates], NDArray[np.float64]] | None = None
    epsilons: tuple[float, ...] = ()
    max_chunk_bytes: int = DEFAULT_CHUNK_BYTES

    @property
    def n_rows(self) -> int:
        """Rows over all input sets (one candidate's outputs hold ``n_rows × C`` values)."""
        from multisteal.data.inputs import n_inputs

        return int(sum(n_inputs(v) for v in self.inputs.values()))

    def members_per_chunk(self, n_classes: int) -> int:
        """How many candidates' float64 outputs fit in ``max_chunk_bytes`` (at least 1)."""
        per_member = max(1, self.n_rows * n_classes * 8)
        return max(1, int(self.max_chunk_bytes // per_member))


@runtime_checkable
class Explorer(Protocol):
    """Produces candidate surrogates around a reference surrogate.

    ``families`` names the model-zoo families it accepts (``None``: any classifier), checked
    by the configuration before any work; ``accepts(model)`` checks a fitted classifier (the
    reason it cannot explore it, or ``None``). ``explore_chunks`` yields the candidates in
    memory-bounded chunks (row 0 of the first chunk is the reference); ``explore`` returns them
    all at once.
    """

    name: str

    def accepts(self, model: Classifier) -> str | None: ...

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]: ...

    def explore(self, context: ExplorationContext) -> Candidates: ...

    def describe(self) -> dict[str, object]: ...


class ExplorerBase:
    """What every explorer shares: ``explore`` is all of ``explore_chunks`` at once, after the
    ``accepts`` check. Subclasses set ``name`` and implement ``explore_chunks``, ``accepts``
    and ``describe``."""

    name: str
    refits: bool = False
    """True for explorers that fit new models on the transcript (retrain, tree ensembles,
    TreeFARMS) rather than perturb the model they are given."""

    def accepts(self, model: Classifier) -> str | None:
        """The reason this explorer cannot explore ``model``, or ``None`` (any classifier)."""
        return None

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        raise NotImplementedError  # pragma: no cover - every explorer implements it

    def explore(self, context: ExplorationContext) -> Candidates:
        """Every candidate at once (``explore_chunks`` concatenated)."""
        return explore_in_memory(self, context)  # type: ignore[arg-type]


def explore_in_memory(explorer: Explorer, context: ExplorationContext) -> Candidates:
    """All of an explorer's candidates as one :class:`Candidates`, after checking that it
    accepts the surrogate (an ``InvalidInputError`` naming the reason otherwise)."""
    check_accepts(explorer, context.surrogate)
    return concat_candidates(explorer.explore_chunks(context))


def check_accepts(explorer: Explorer, model: Classifier) -> None:
    """Raise ``InvalidInputError`` when ``explorer`` cannot explore ``model``."""
    reason = explorer.accepts(model)
    if reason is not None:
        _, inner = unwrap(model)
        raise InvalidInputError(
            NOT_ACCEPTED.format(explorer=explorer.name, model=type(inner).__name__, reason=reason)
        )


def check_epsilon(epsilon: float) -> float:
    """Return ``epsilon`` as float after checking it is finite and non-negative."""
    try:
        value = float(epsilon)
    except (TypeError, ValueError):
        raise InvalidInputError(BAD_EPSILON.format(epsilon=epsilon)) from None
    if not np.isfinite(value) or value < 0:
        raise InvalidInputError(BAD_EPSILON.format(epsilon=epsilon))
    return value


def distinct_candidates(candidates: Candidates) -> tuple[Candidates, NDArray[np.int64]]:
    """Collapse candidates that are the same model on every input the filter and metrics see.

    Two candidates are identical when their probabilities are bit-for-bit equal on every input
    set (so their decisions are too). The first of each group is kept (the reference, row 0,
    always is), in the original order.

    Returns
    -------
    (distinct, copies) : the distinct candidates, with a ``copies`` column in ``params`` (how
        many candidates each one stands for), and for every original candidate the row of the
        distinct candidate it became, shape (M,).
    """
    keys = list(candidates.outputs)
    M = len(candidates)
    first: dict[bytes, int] = {}
    kept: list[int] = []
    mapping = np.empty(M, dtype=np.int64)
    for m in range(M):
        digest = hashlib.sha256()
        for key in keys:
            digest.update(np.ascontiguousarray(candidates.outputs[key][m]).tobytes())
        fingerprint = digest.digest()
        if fingerprint not in first:
            first[fingerprint] = len(kept)
            kept.append(m)
        mapping[m] = first[fingerprint]
    index = np.asarray(kept, dtype=np.int64)
    params = candidates.params.iloc[index].reset_index(drop=True)
    params["copies"] = np.bincount(mapping, minlength=index.size)
    outputs = {key: array[index] for key, array in candidates.outputs.items()}
    return Candidates(candidates.explorer, params, outputs, candidates.kind), mapping


def _disagreement_rate(P: NDArray[np.float64], labels: NDArray[np.int64]) -> NDArray[np.float64]:
    """Label disagreement of every candidate with ``labels``, shape (M,)."""
    out: NDArray[np.float64] = 1.0 - metrics.member_agreement(metrics.decisions(P), labels)
    return out


def _cross_entropy(P: NDArray[np.float64], targets: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mean cross-entropy of every candidate's probabilities against ``targets``, shape (M,)."""
    log_p = np.log(np.clip(P, 1e-12, 1.0))
    out: NDArray[np.float64] = -(targets[None, :, :] * log_p).sum(axis=2).mean(axis=1)
    return out


def candidate_losses(
    candidates: Candidates,
    *,
    holdout: Answer | None,
    target_probabilities: NDArray[np.float64] | None,
) -> dict[str, NDArray[np.float64]]:
    """Loss of every candidate under each criterion of METRICS.md it can be computed for.

    Parameters
    ----------
    candidates : the candidates, with outputs on ``holdout`` (the held-out transcript slice)
        and, for the ``test-*`` criteria, on ``selection`` (evaluation rows set aside for
        selecting members; metrics are measured on the other rows).
    holdout : the API's answers for the held-out transcript rows.
    target_probabilities : the target's probabilities on the ``selection`` rows.

    Returns
    -------
    dict of str to array of shape (M,)
        ``transcript``: label disagreement with the answers on the held-out slice;
        ``transcript-loss``: cross-entropy against the probabilities the API revealed there
        (:meth:`~multisteal.query.Answer.soft_targets`: revealed scores kept, hidden mass spread
        evenly), or label disagreement when only labels were revealed; ``test-fidelity``:
        label disagreement with the target on the selection rows; ``test-loss``: cross-entropy
        against the target's probabilities on the selection rows.
    """
    losses: dict[str, NDArray[np.float64]] = {}
    if holdout is not None and len(holdout) and HOLDOUT in candidates.outputs:
        P_hold = candidates.output(HOLDOUT)
        losses["transcript"] = _disagreement_rate(P_hold, holdout.labels)
        soft = holdout.soft_targets()
        losses["transcript-loss"] = (
            losses["transcript"] if soft is None else _cross_entropy(P_hold, soft)
        )
    if target_probabilities is not None and SELECTION in candidates.outputs:
        P_sel = candidates.output(SELECTION)
        losses["test-fidelity"] = _disagreement_rate(P_sel, metrics.decisions(target_probabilities))
        losses["test-loss"] = _cross_entropy(P_sel, target_probabilities)
    return losses


@dataclass(frozen=True)
class RashomonSet:
    """The members of the ε-Rashomon set: ``L(m) <= L(reference) + ε`` (inclusive)."""

    epsilon: float
    criterion: str
    members: NDArray[np.int64]  # indices into the candidates
    losses: NDArray[np.float64]  # loss of every candidate under the criterion
    reference_loss: float

    @property
    def size(self) -> int:
        return int(self.members.shape[0])


def rashomon_set(
    losses: Mapping[str, NDArray[np.float64]],
    *,
    epsilon: float,
    criterion: str = "transcript",
    reference: int = 0,
) -> RashomonSet:
    """Filter candidates by the ε rule under ``criterion``; warns when the set is empty."""
    eps = check_epsilon(epsilon)
    if criterion not in CRITERIA:
        raise InvalidInputError(
            UNKNOWN_CRITERION.format(name=criterion, available=", ".join(CRITERIA))
        )
    if criterion not in losses:
        if criterion.startswith("transcript"):
            raise InvalidInputError(EMPTY_HOLDOUT.format(criterion=criterion))
        raise InvalidInputError(NO_SELECTION.format(criterion=criterion))
    values = np.asarray(losses[criterion], dtype=np.float64)
    ref = float(values[reference])
    # A tiny tolerance keeps the reference (and exact ties) inside despite float rounding.
    members = np.flatnonzero(values <= ref + eps + 1e-12).astype(np.int64)
    if members.size == 0:
        warnings.warn(
            EMPTY_SET.format(epsilon=eps, criterion=criterion),
            EmptyRashomonSetWarning,
            stacklevel=2,
        )
    return RashomonSet(eps, criterion, members, values, ref)
