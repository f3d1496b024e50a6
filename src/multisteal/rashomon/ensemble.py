"""Tree-ensemble exploration: refit gradient boosting or random forests on subsamples of the
transcript, with other seeds and per-split feature subsampling."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)

from multisteal.attacks.base import Transcript
from multisteal.errors import InvalidInputError
from multisteal.models.zoo import Classifier
from multisteal.rashomon.base import Candidates, ExplorationContext, ExplorerBase, unwrap
from multisteal.rashomon.retrain import RetrainExplorer, reference_seed

__all__ = ["ENSEMBLE_TYPES", "EnsembleExplorer", "MemberFit", "feature_share"]

ENSEMBLE_TYPES: tuple[type, ...] = (
    HistGradientBoostingClassifier,
    GradientBoostingClassifier,
    RandomForestClassifier,
    ExtraTreesClassifier,
)
"""The fitted classifiers this explorer accepts (the zoo's ``gboost`` and ``forest``)."""

BAD_N_MEMBERS = "n_members must be >= 1, got {n}."
BAD_ROW_FRACTION = "row_fraction must be in (0, 1], got {value!r}."
BAD_MAX_FEATURES = "max_features must be in (0, 1], got {value!r}."
NOT_ENSEMBLE = (
    "the ensemble explorer refits tree ensembles (gboost: HistGradientBoostingClassifier or "
    "GradientBoostingClassifier; forest: RandomForestClassifier or ExtraTreesClassifier); use "
    "the retrain explorer for other families."
)
NO_REFIT_WITH = (
    "max_features={value} needs the audit to refit with parameter overrides "
    "(context.refit_with), but it cannot; use max_features=1.0 (no feature subsampling)."
)
NO_ROWS = "row_fraction={fraction} leaves no transcript row to fit on ({n} rows)."


def feature_share(classifier: Any) -> float:
    """The fraction of the features a fitted tree ensemble considers at each split.

    Parameters
    ----------
    classifier : a fitted classifier of :data:`ENSEMBLE_TYPES`.

    Returns
    -------
    float
        ``max_features`` resolved against the number of features the classifier was fitted
        on: ``None`` (or ``1.0``) is 1; ``"sqrt"`` / ``"log2"`` are ``max(1, int(f(D))) / D``;
        an int ``k`` is ``k / D``; a float is itself.
    """
    value = getattr(classifier, "max_features", None)
    n_features = int(getattr(classifier, "n_features_in_", 0) or 0)
    if value is None:
        return 1.0
    if isinstance(value, str):
        if n_features <= 0:
            return 1.0
        fn = math.sqrt if value == "sqrt" else math.log2
        return max(1, int(fn(n_features))) / n_features
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return 1.0 if n_features <= 0 else min(1.0, int(value) / n_features)
    return float(value)


@dataclass(frozen=True)
class MemberFit:
    """One refitted member and how it was fitted.

    Attributes
    ----------
    model : the fitted member.
    seed : its seed.
    n_rows : transcript rows it was fitted on (with repeats under bootstrap).
    n_unique_rows : distinct transcript rows among them.
    max_features : the ``max_features`` value passed to the family (``None``: the
        reference's own setting, unchanged).
    feature_share : the fraction of the features considered at each split.
    """

    model: Classifier
    seed: int
    n_rows: int
    n_unique_rows: int
    max_features: float | None
    feature_share: float


@dataclass
class EnsembleExplorer(ExplorerBase):
    """Tree ensembles refitted on row subsamples of the transcript with feature subsampling.

    Each member is the reference's family (``gboost``: scikit-learn's histogram gradient
    boosting; ``forest``: a random forest) refitted by the audit (``context.refit_with``) on

    * a random subsample of ``round(row_fraction · n)`` transcript rows, drawn without
      replacement (with replacement when ``bootstrap``);
    * a seed drawn like the retrain explorer's (:meth:`RetrainExplorer.member_seeds`): distinct,
      and never the reference's own seed;
    * per-split feature subsampling: ``max_features`` is a fraction **of the reference's own
      per-split feature share** (:func:`feature_share`) — gradient boosting considers every
      feature by default (share 1), so a member considers ``max_features`` of them; a random
      forest with ``max_features="sqrt"`` considers ``sqrt(D)/D`` of them, a member
      ``max_features · sqrt(D)/D``. ``max_features=1.0`` keeps the reference's setting
      unchanged.

    With ``row_fraction=1``, ``bootstrap=False``, ``max_features=1.0`` and the reference's seed,
    a member is the reference itself (:meth:`fit_member`).

    Parameters
    ----------
    n_members : number of refitted candidates (besides the reference, row 0).
    row_fraction : fraction of the transcript rows each member is fitted on, in (0, 1].
    max_features : fraction of the reference's per-split feature share, in (0, 1].
    bootstrap : draw the rows with replacement.
    """

    n_members: int = 20
    row_fraction: float = 0.8
    max_features: float = 0.8
    bootstrap: bool = False
    name: str = field(default="ensemble", init=False)
    refits: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if self.n_members < 1:
            raise InvalidInputError(BAD_N_MEMBERS.format(n=self.n_members))
        fraction = float(self.row_fraction)
        if not np.isfinite(fraction) or not 0.0 < fraction <= 1.0:
            raise InvalidInputError(BAD_ROW_FRACTION.format(value=self.row_fraction))
        share = float(self.max_features)
        if not np.isfinite(share) or not 0.0 < share <= 1.0:
            raise InvalidInputError(BAD_MAX_FEATURES.format(value=self.max_features))

    def accepts(self, model: Classifier) -> str | None:
        """``None`` for a tree ensemble of :data:`ENSEMBLE_TYPES` (bare or in a pipeline), the
        reason otherwise."""
        _, inner = unwrap(model)
        if isinstance(inner, ENSEMBLE_TYPES):
            return None
        return NOT_ENSEMBLE

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, one column each in a results table."""
        return {
            "explorer": self.name,
            "n_members": self.n_members,
            "row_fraction": float(self.row_fraction),
            "max_features": float(self.max_features),
            "bootstrap": self.bootstrap,
        }

    def _rows(self, n: int, rng: np.random.Generator) -> NDArray[np.int64] | None:
        """Sorted row indices of one member's subsample; ``None``: every row, in order."""
        size = round(float(self.row_fraction) * n)
        if size < 1:
            raise InvalidInputError(NO_ROWS.format(fraction=self.row_fraction, n=n))
        if self.bootstrap:
            return np.sort(rng.integers(0, n, size=size)).astype(np.int64)
        if size >= n:
            return None
        return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)

    def fit_member(
        self, context: ExplorationContext, seed: int, rng: np.random.Generator
    ) -> MemberFit:
        """Refit one member with ``seed`` on a row subsample drawn from ``rng``.

        Parameters
        ----------
        context : the exploration context (its surrogate, transcript and refit functions).
        seed : the member's seed.
        rng : the generator the row subsample is drawn from.

        Returns
        -------
        MemberFit
            The fitted member and its subsample sizes and feature share.
        """
        transcript: Transcript = context.transcript
        n = len(transcript)
        rows = self._rows(n, rng)
        if rows is not None:
            transcript = transcript.take(rows)
        _, inner = unwrap(context.surrogate)
        reference_share = feature_share(inner)
        factor = float(self.max_features)
        if factor == 1.0:
            model = context.refit(transcript, seed)
            value: float | None = None
            share = reference_share
        else:
            if context.refit_with is None:
                raise InvalidInputError(NO_REFIT_WITH.format(value=self.max_features))
            share = factor * reference_share
            value = share
            overrides: Mapping[str, Any] = {"max_features": share}
            model = context.refit_with(transcript, seed, overrides)
        n_rows = n if rows is None else int(rows.size)
        n_unique = n if rows is None else int(np.unique(rows).size)
        return MemberFit(model, seed, n_rows, n_unique, value, share)

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """Refit ``n_members`` members; chunks of at most ``members_per_chunk`` candidates.

        Row 0 of the first chunk is the reference (``reference`` True, ``seed`` its own seed or
        ``-1`` when unknown). ``params`` records per member its seed, ``n_rows`` and
        ``n_unique_rows`` (the subsample), ``max_features`` (the value passed to the family;
        NaN: the reference's own) and ``feature_share``.
        """
        names = list(context.inputs)
        reference = context.surrogate
        _, inner = unwrap(reference)
        ref_seed = reference_seed(reference)
        n = len(context.transcript)
        first = {k: np.asarray(reference.predict_proba(context.inputs[k])) for k in names}
        n_classes = int(next(iter(first.values())).shape[-1]) if first else 1
        per_chunk = context.members_per_chunk(n_classes)
        seeds = RetrainExplorer(n_members=self.n_members).member_seeds(context.rng, ref_seed)
        common = {
            "explorer": self.name,
            "row_fraction": float(self.row_fraction),
            "bootstrap": self.bootstrap,
        }
        rows: list[dict[str, object]] = [
            {
                "member": 0,
                "seed": -1 if ref_seed is None else ref_seed,
                "reference": True,
                "n_rows": n,
                "n_unique_rows": n,
                "max_features": float("nan"),
                "feature_share": feature_share(inner),
                **common,
            }
        ]
        outputs: dict[str, list[NDArray[np.float64]]] = {k: [first[k]] for k in names}
        for i, seed in enumerate(seeds, start=1):
            fit = self.fit_member(context, seed, context.rng)
            for k in names:
                outputs[k].append(np.asarray(fit.model.predict_proba(context.inputs[k])))
            rows.append(
                {
                    "member": i,
                    "seed": seed,
                    "reference": False,
                    "n_rows": fit.n_rows,
                    "n_unique_rows": fit.n_unique_rows,
                    "max_features": (
                        float("nan") if fit.max_features is None else fit.max_features
                    ),
                    "feature_share": fit.feature_share,
                    **common,
                }
            )
            if len(rows) >= per_chunk:
                yield self._chunk(rows, outputs)
                rows, outputs = [], {k: [] for k in names}
        if rows:
            yield self._chunk(rows, outputs)

    def _chunk(
        self, rows: list[dict[str, object]], outputs: Mapping[str, list[NDArray[np.float64]]]
    ) -> Candidates:
        stacked = {k: np.stack(v).astype(np.float64, copy=False) for k, v in outputs.items()}
        return Candidates(self.name, pd.DataFrame(rows), stacked)
