"""Candidates produced by an explorer, the ε-filter and the resulting Rashomon set."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Mapping
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
    "Candidates",
    "Criterion",
    "EmptyRashomonSetWarning",
    "ExplorationContext",
    "Explorer",
    "RashomonSet",
    "candidate_losses",
    "check_epsilon",
    "distinct_candidates",
    "rashomon_set",
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
EMPTY_SET = (
    "The ε-Rashomon set is empty (epsilon={epsilon}, criterion={criterion}); its metrics are NaN."
)


class EmptyRashomonSetWarning(UserWarning):
    """Raised (as a warning) when an ε-filter keeps no member."""


@dataclass(frozen=True)
class Candidates:
    """Candidate surrogates from an explorer, represented by their outputs.

    Attributes
    ----------
    explorer : the explorer's name.
    params : one row per candidate (explorer parameters: rate, seed, ...). Row 0 is the
        reference surrogate the attack produced.
    outputs : probabilities of every candidate on each named input set, shape (M, n, C).
    """

    explorer: str
    params: pd.DataFrame
    outputs: Mapping[str, NDArray[np.float64]]

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


@dataclass(frozen=True)
class ExplorationContext:
    """Everything an explorer may use.

    Attributes
    ----------
    surrogate : the reference surrogate fitted by the attack (any classifier; explorers that
        need more — a torch module — check for it and say so).
    inputs : named input sets on which every candidate is evaluated (at least ``holdout`` and
        ``evaluation`` in an audit): raw inputs of the surrogate's modality (records, images,
        texts) or encoded vectors, whatever the surrogate's ``predict_proba`` takes.
    transcript : the attacker's training transcript (for explorers that refit).
    refit : fits a fresh surrogate on a transcript with a given seed.
    rng : the explorer's random generator.
    """

    surrogate: Classifier
    inputs: Mapping[str, Any]
    transcript: Transcript
    refit: Callable[[Transcript, int], Classifier]
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


@runtime_checkable
class Explorer(Protocol):
    """Produces candidate surrogates around a reference surrogate."""

    name: str

    def explore(self, context: ExplorationContext) -> Candidates: ...

    def describe(self) -> dict[str, object]: ...


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
    return Candidates(candidates.explorer, params, outputs), mapping


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
