"""Measuring Rashomon sets on the evaluation rows: one place for stolen sets and baselines."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal import metrics
from multisteal.data.inputs import n_inputs
from multisteal.errors import InvalidInputError
from multisteal.experiments import schema
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.metrics.streaming import StreamingMultiplicity, convergence_summary, settled
from multisteal.rashomon import Candidates
from multisteal.rashomon.base import EMPTY_SET, PROBE, EmptyRashomonSetWarning

__all__ = [
    "EvaluationContext",
    "Measured",
    "SetSelection",
    "fairness_of_members",
    "favourable",
    "in_rashomon_set",
    "small_cells_note",
]

MATCHED = "matched"
"""Suffix of the positive-rate-matched control: every member re-thresholded to the target's
positive rate, so its fairness differences are not a mere shift of its threshold."""


@dataclass(frozen=True)
class SetSelection:
    """One Rashomon set to measure: its ε (NaN when no filter applies) and member indices."""

    epsilon: float
    members: NDArray[np.int64]


@dataclass
class EvaluationContext:
    """What stays fixed within one seed: the evaluation rows and the target's behaviour there.

    ``target_fairness`` maps ``metric[attribute]`` to the target's value; ``target_bootstrap``
    holds the bootstrap interval of every between-group difference over evaluation rows
    (columns ``low``, ``high``, ``width``), so a set's range can be read against sampling noise.
    """

    config: AuditConfig
    data: PreparedData
    P_target: NDArray[np.float64]
    t: NDArray[np.int64]
    target_positive_rate: float
    target_fairness: dict[str, float]
    target_bootstrap: dict[str, dict[str, float]]
    samples: dict[str, NDArray[Any]]
    excluded: str
    capped: dict[str, int]
    P_probe: NDArray[np.float64] | None
    target_probe: dict[str, float]

    @classmethod
    def build(
        cls,
        config: AuditConfig,
        data: PreparedData,
        P_target: NDArray[np.float64],
        *,
        rng: np.random.Generator,
        capped: dict[str, int] | None = None,
        P_probe: NDArray[np.float64] | None = None,
    ) -> EvaluationContext:
        """``capped``: the target encoder's categoricals whose rare values were grouped;
        ``P_probe``: the target's probabilities on the bias probe's inputs (EEC)."""
        t = metrics.decisions(P_target)
        positive_rate = float(np.mean(t == data.dataset.positive_class))
        fairness = fairness_of_members(config, data, t[None, :])
        target_fairness = {str(k): float(v) for k, v in fairness.iloc[0].items()}
        boot: dict[str, dict[str, float]] = {}
        if config.fairness_bootstrap > 0:
            for attribute in data.sensitive_eval.columns:
                table = metrics.bootstrap_fairness(
                    favourable(data.y_eval, data),
                    favourable(t, data),
                    sensitive_features=data.sensitive_eval[attribute].astype(str).to_numpy(),
                    pos_label=1,
                    n_resamples=config.fairness_bootstrap,
                    rng=rng,
                    min_cell_size=config.min_group_size,
                )
                for metric, row in table.iterrows():
                    boot[f"{metric}[{attribute}]"] = {
                        k: float(row[k]) for k in ("low", "high", "width")
                    }
        samples: dict[str, NDArray[Any]] = {
            "y": data.y_eval,
            "target_decisions": t,
            "target_probabilities": P_target,
            "evaluation_index": data.evaluation_index,
            "selection_index": data.selection_index,
        }
        for column in data.sensitive_eval.columns:
            samples[f"sensitive/{column}"] = np.asarray(
                data.sensitive_eval[column].astype(str).tolist(), dtype=np.str_
            )
        excluded = small_cells_note(data, config.min_group_size)
        target_probe: dict[str, float] = {}
        if P_probe is not None and data.probe is not None:
            target_probe = {k: float(v[0]) for k, v in probe_gaps(P_probe[None], data).items()}
            samples["probe_target_probabilities"] = P_probe
        return cls(
            config,
            data,
            P_target,
            t,
            positive_rate,
            target_fairness,
            boot,
            samples,
            excluded,
            dict(capped or {}),
            P_probe,
            target_probe,
        )

    def evaluate(
        self,
        chunks: Iterable[Candidates],
        *,
        losses_of: Callable[[Candidates], Mapping[str, NDArray[np.float64]]] | None,
        epsilons: Sequence[float] | None,
        criterion: str | None,
        key: str,
        describe: Callable[[], Mapping[str, object]],
        extra: Mapping[str, object],
        rng: np.random.Generator | None = None,
    ) -> Measured:
        """Measure the Rashomon sets of a stream of candidate chunks, never holding them all.

        Chunks arrive as the explorer yields them (row 0 of the first one is the set's
        reference model: the stolen surrogate or the baseline's reference). Candidates
        identical to an earlier one on every input set are one model (``copies`` counts
        them). With ``epsilons``, every ε gives the set ``L(m) <= L(reference) + ε`` under
        ``criterion`` (``losses_of`` gives each candidate's losses); without, one set holds
        every candidate (ε NaN). ``key`` prefixes the per-sample arrays (``b1000``, ``floor``…).
        ``describe`` gives the explorer's parameters once the chunks are consumed (an explorer
        may record what its run found, e.g. the scales it accepted).
        """
        config, data = self.config, self.data
        C = data.dataset.n_classes
        selections: list[float] = list(epsilons) if epsilons is not None else [float("nan")]
        stream_rng = rng if rng is not None else np.random.default_rng(0)
        seen: dict[bytes, int] = {}
        frames: list[pd.DataFrame] = []
        copies: list[int] = []
        accumulators: list[StreamingMultiplicity] = []
        in_set: list[list[NDArray[np.int64]]] = [[] for _ in selections]
        reference_loss = float("nan")
        reference_P: NDArray[np.float64] | None = None
        kind = "models"
        measured_members = 0
        for chunk in chunks:
            kind = chunk.kind
            keep = _new_rows(chunk, seen, copies, start=measured_members)
            if not keep.size:
                continue
            chunk = _take(chunk, keep)
            B = len(chunk)
            P = chunk.output("evaluation")
            d = metrics.decisions(P)
            # "seed" and "epsilon" name the audit's; a member's own are member_seed, member_epsilon
            frame = chunk.params.rename(
                columns={"seed": "member_seed", "epsilon": "member_epsilon"}
            ).reset_index(drop=True)
            frame.index = np.arange(measured_members, measured_members + B)
            losses = dict(losses_of(chunk)) if losses_of is not None else {}
            for name, values in losses.items():
                frame[f"loss[{name}]"] = values
            if reference_P is None:
                reference_P = P[0]
                if epsilons is not None:
                    if criterion is None or criterion not in losses:
                        raise InvalidInputError(
                            f"The candidates have no {criterion!r} loss to filter them by."
                        )
                    reference_loss = float(losses[criterion][0])
                accumulators = [
                    StreamingMultiplicity(
                        labels=data.y_eval,
                        references={"target": self.t, "surrogate": metrics.decisions(P[:1])[0]},
                        n_classes=C,
                        capacity=config.capacity,
                        # A channel row is no member of a growing set: no convergence curve.
                        n_orders=config.convergence_orders if kind == "models" else 0,
                        rng=np.random.default_rng(stream_rng.integers(0, 2**63 - 1)),
                        # One memory bound for all the sets of this stream together.
                        max_retained_bytes=MAX_RETAINED_BYTES // len(selections),
                    )
                    for _ in selections
                ]
            if epsilons is None:
                masks = [np.ones(B, dtype=np.bool_)]
            else:
                assert criterion is not None
                masks = [
                    in_rashomon_set(losses[criterion], reference_loss, eps) for eps in selections
                ]
            union = np.flatnonzero(np.logical_or.reduce(masks))
            if kind == "models":
                frame["agreement"] = metrics.member_agreement(d, self.t)
                frame["accuracy"] = metrics.member_accuracy(data.y_eval, d)
                frame["probability_fidelity"] = metrics.member_probability_fidelity(
                    P, self.P_target
                )
                if union.size:
                    fairness = fairness_of_members(
                        config,
                        data,
                        d[union],
                        P=P[union],
                        positive_rate=self.target_positive_rate,
                    )
                    fairness.index = frame.index[union]
                    frame = frame.join(fairness)
                if PROBE in chunk.outputs and data.probe is not None:
                    for column, values in probe_gaps(chunk.output(PROBE), data).items():
                        frame[column] = values
            for i, mask in enumerate(masks):
                if not mask.any():
                    continue
                in_set[i].append(frame.index.to_numpy()[mask])
                member_values = (
                    {
                        column: frame[column].to_numpy(dtype=np.float64)[mask]
                        for column in [*self.target_fairness, "agreement", "accuracy"]
                        if column in frame
                    }
                    if kind == "models"
                    else {}
                )
                accumulators[i].update(P[mask], member_values=member_values)
            frames.append(frame)
            measured_members += B
        if reference_P is None:
            raise InvalidInputError("The explorer produced no candidates.")
        per_member = pd.concat(frames)
        per_member["copies"] = np.asarray(copies, dtype=np.int64)
        return self._sets(
            per_member,
            accumulators,
            [np.concatenate(m) if m else np.zeros(0, np.int64) for m in in_set],
            selections,
            reference_P=reference_P,
            kind=kind,
            key=key,
            describe=describe,
            extra={**extra, "reference_loss": reference_loss},
            criterion=criterion,
        )

    def _sets(
        self,
        per_member: pd.DataFrame,
        accumulators: Sequence[StreamingMultiplicity],
        in_set: Sequence[NDArray[np.int64]],
        selections: Sequence[float],
        *,
        reference_P: NDArray[np.float64],
        kind: str,
        key: str,
        describe: Callable[[], Mapping[str, object]],
        extra: Mapping[str, object],
        criterion: str | None,
    ) -> Measured:
        data = self.data
        s = metrics.decisions(reference_P[np.newaxis])[0]
        reference_fairness = {
            f"{column}_reference": (
                float(per_member[column].iloc[0]) if column in per_member else float("nan")
            )
            for column in self.target_fairness
        }
        n_candidates = int(per_member["copies"].sum())
        base: dict[str, Any] = {
            **extra,
            "candidate_kind": kind,
            "capacity_mode": self.config.capacity,
            "convergence_orders": self.config.convergence_orders if kind == "models" else 0,
            "n_candidates": n_candidates,
            "n_distinct": len(per_member),
            "n_duplicates": n_candidates - len(per_member),
            "evaluation_rows": len(data.y_eval),
            "n_classes": data.dataset.n_classes,
            "min_group_size": self.config.min_group_size,
            "fairness_excluded_cells": self.excluded,
            "data_notes": "; ".join(n.rstrip(".") for n in data.dataset.notes) or "none",
            "capped_categories": "; ".join(
                f"{column} ({n} values → {self.config.max_categories})"
                for column, n in self.capped.items()
            )
            or "none",
            "modality": data.modality,
            "sensitive_attributes": ", ".join(map(str, data.sensitive_eval.columns)) or "none",
            "pool_dataset": self.config.pool_dataset or "none",
            "data_source": self.config.data_source,
            "pool_size": n_inputs(data.X_pool),
            "target_accuracy": metrics.accuracy(data.y_eval, self.t),
            "surrogate_accuracy": metrics.accuracy(data.y_eval, s),
            "surrogate_agreement": metrics.agreement(self.t, s),
            "surrogate_probability_fidelity": metrics.probability_fidelity(
                self.P_target, reference_P
            ),
            **{f"explorer_{k}" if k != "explorer" else k: v for k, v in describe().items()},
            **reference_fairness,
        }
        rows: list[dict[str, Any]] = []
        member_frames: list[pd.DataFrame] = []
        curves: list[pd.DataFrame] = []
        arrays: dict[str, NDArray[Any]] = {f"{key}/surrogate_probabilities": reference_P}
        for eps, members, accumulator in zip(selections, in_set, accumulators, strict=True):
            size = int(members.size)
            if size == 0 and np.isfinite(eps):
                warnings.warn(
                    EMPTY_SET.format(epsilon=eps, criterion=criterion),
                    EmptyRashomonSetWarning,
                    stacklevel=3,
                )
            set_key = f"{key}/eps{eps:g}" if np.isfinite(eps) else key
            frame = per_member.loc[members].copy()
            frame.insert(0, "epsilon", eps)
            member_frames.append(frame)
            set_row = {**base, "epsilon": eps, "set_size": size}
            set_row["set_copies"] = int(frame["copies"].sum())
            set_row.update(self._set_metrics(size, frame, kind))
            scalars: dict[str, float] = {}
            if size:
                per_sample = accumulator.per_sample()
                scalars = accumulator.scalars()
                for name, values in per_sample.items():
                    arrays[f"{set_key}/{name}"] = values
                set_row.update(_sample_summaries(per_sample))
                set_row.update(self._per_class(per_sample))
                curve = accumulator.convergence()
                if not curve.empty:
                    summary = convergence_summary(curve)
                    summary.insert(0, "epsilon", eps)
                    curves.append(summary)
                    # Against the target, ambiguity and discrepancy never fall below the
                    # reference's own infidelity (it is in every subset): the exploration's
                    # part is the excess over it.
                    infidelity = float(np.mean(s != self.t))
                    floors = {
                        **LOWER_BOUNDS,
                        "ambiguity[target]": infidelity,
                        "discrepancy[target]": infidelity,
                    }
                    for _, verdict in settled(curve, lower_bounds=floors).iterrows():
                        # NaN: too few members for a verdict
                        set_row[f"settled[{verdict['metric']}]"] = (
                            float("nan") if verdict["settled"] is None else bool(verdict["settled"])
                        )
                        set_row[f"change_from_half[{verdict['metric']}]"] = float(verdict["change"])
            for reference, r in (("target", self.t), ("surrogate", s)):
                row = {**set_row, "reference": reference}
                # The set's reference model is always a member, so ambiguity against r splits
                # into the reference's own disagreement with r plus the set's excess over it.
                infidelity = float(np.mean(s != r))
                row["reference_infidelity"] = infidelity
                if size:
                    row["ambiguity"] = scalars[f"ambiguity[{reference}]"]
                    # A channel row is a different model on every sample: no disagreement rate.
                    row["discrepancy"] = (
                        scalars[f"discrepancy[{reference}]"] if kind == "models" else float("nan")
                    )
                    row["excess_ambiguity"] = row["ambiguity"] - infidelity
                else:
                    row["ambiguity"] = row["discrepancy"] = float("nan")
                    row["excess_ambiguity"] = float("nan")
                rows.append(row)
        convergence = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame()
        return Measured(rows, pd.concat(member_frames, ignore_index=True), arrays, convergence)

    def _per_class(self, per_sample: Mapping[str, NDArray[Any]]) -> dict[str, float]:
        """Multiplicity among the evaluation rows of each true class (e.g. among malignant
        cases): ambiguity against the target, mean disagreement and Rashomon Capacity."""
        out: dict[str, float] = {}
        y = self.data.y_eval
        sources = {
            "ambiguity_vs_target": "ambiguous_vs_target",
            "disagreement_mean": "disagreement",
            "rashomon_capacity_mean": "rashomon_capacity",
        }
        for c, name in enumerate(self.data.dataset.class_names):
            rows = y == c
            if not rows.any():
                continue
            for stat, source in sources.items():
                out[schema.per_class_column(stat, str(name))] = float(
                    np.mean(per_sample[source][rows])
                )
            out[schema.per_class_column("class_rows", str(name))] = float(rows.sum())
        return out

    def _set_metrics(self, size: int, frame: pd.DataFrame, kind: str) -> dict[str, float]:
        out: dict[str, float] = {}
        if kind != "models":  # a channel row is no single model: no per-member statistics
            size = 0
        for column, target_value in self.target_probe.items():
            if column not in frame:
                continue
            values = frame[column].to_numpy(dtype=np.float64)
            out[f"{column}_target"] = target_value
            out[f"{column}_min"] = float(values.min()) if size else float("nan")
            out[f"{column}_max"] = float(values.max()) if size else float("nan")
            out[f"{column}_range"] = float(values.max() - values.min()) if size else float("nan")
        for column in ("agreement", "accuracy", "probability_fidelity"):
            values = frame[column].to_numpy(dtype=np.float64) if column in frame else np.zeros(0)
            out[f"set_{column}_min"] = float(values.min()) if size else float("nan")
            out[f"set_{column}_max"] = float(values.max()) if size else float("nan")
        for column, target_value in self.target_fairness.items():
            values = (
                frame[column].to_numpy(dtype=np.float64)
                if column in frame and size
                else np.zeros(0)
            )
            finite = values[np.isfinite(values)]
            known = bool(np.isfinite(target_value))
            summary = metrics.summarize_set(finite, target=target_value if known else 0.0)
            if not known:  # too few cells large enough to carry the metric
                summary["target"] = summary["max_gap"] = float("nan")
            for stat, value in summary.items():
                out[f"{column}_{stat}"] = float(value)
            matched = f"{column}_{MATCHED}"
            if matched in frame and size:
                m_values = frame[matched].to_numpy(dtype=np.float64)
                m_values = m_values[np.isfinite(m_values)]
                summary = metrics.summarize_set(m_values, target=0.0)
                for stat in ("min", "max", "range"):
                    out[f"{column}_{MATCHED}_{stat}"] = float(summary[stat])
            if column in self.target_bootstrap:
                for stat, value in self.target_bootstrap[column].items():
                    out[f"{column}_target_boot_{stat}"] = value
        return out


MAX_RETAINED_BYTES = 2 * 2**30
"""Members' probabilities kept for Rashomon Capacity (more than two classes, or the reference
mode), over all the ε-sets of one exploration together."""
LOWER_BOUNDS: dict[str, float] = {"rashomon_capacity_mean": 1.0}
"""Smallest possible value of a convergence metric other than 0 (settling is judged on the
excess over it)."""


@dataclass(frozen=True)
class Measured:
    """What measuring one stream of candidates gives: result rows (per set × reference),
    member records, per-sample arrays and the convergence curves of every set."""

    rows: list[dict[str, Any]]
    members: pd.DataFrame
    arrays: dict[str, NDArray[Any]]
    convergence: pd.DataFrame


def in_rashomon_set(
    losses: NDArray[np.float64], reference_loss: float, epsilon: float
) -> NDArray[np.bool_]:
    """``L(m) <= L(reference) + ε`` (METRICS.md), with the same tiny tolerance as
    :func:`~multisteal.rashomon.rashomon_set` so the reference and exact ties stay inside."""
    out: NDArray[np.bool_] = np.asarray(losses) <= reference_loss + epsilon + 1e-12
    return out


def _new_rows(
    chunk: Candidates, seen: dict[bytes, int], copies: list[int], *, start: int
) -> NDArray[np.int64]:
    """Rows of ``chunk`` that are not a copy of an earlier candidate (bit-identical outputs on
    every input set); a copy increments its original's count in ``copies``."""
    keys = list(chunk.outputs)
    keep: list[int] = []
    for m in range(len(chunk)):
        digest = hashlib.sha256()
        for name in keys:
            digest.update(np.ascontiguousarray(chunk.outputs[name][m]).tobytes())
        fingerprint = digest.digest()
        if fingerprint in seen:
            copies[seen[fingerprint]] += 1
            continue
        seen[fingerprint] = start + len(keep)
        copies.append(1)
        keep.append(m)
    return np.asarray(keep, dtype=np.int64)


def _take(chunk: Candidates, rows: NDArray[np.int64]) -> Candidates:
    if rows.size == len(chunk):
        return chunk
    return Candidates(
        chunk.explorer,
        chunk.params.iloc[rows].reset_index(drop=True),
        {k: v[rows] for k, v in chunk.outputs.items()},
        chunk.kind,
    )


def _sample_summaries(per_sample: Mapping[str, NDArray[Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("disagreement", "viable_prediction_range", "score_variance", "rashomon_capacity"):
        threshold = metrics.RC_THRESHOLD if name == "rashomon_capacity" else 0.0
        for stat, value in metrics.summarize(per_sample[name], threshold=threshold).items():
            out[f"{name}_{stat}"] = float(value)
    return out


def favourable(labels: NDArray[np.int64], data: PreparedData) -> NDArray[np.int64]:
    """1 where ``labels`` is the favourable class, else 0: fairness compares the favourable
    class against the rest (for two classes this is the usual binary view)."""
    out: NDArray[np.int64] = (labels == data.dataset.positive_class).astype(np.int64)
    return out


def small_cells_note(data: PreparedData, min_cell_size: int) -> str:
    """The cells left out of fairness differences, e.g. ``race=Asian (7 rows)``, or ``none``."""
    parts: list[str] = []
    for attribute in data.sensitive_eval.columns:
        cells = metrics.small_cells(
            favourable(data.y_eval, data),
            sensitive_features=data.sensitive_eval[attribute].astype(str).to_numpy(),
            pos_label=1,
            min_cell_size=min_cell_size,
        )
        for family, groups in cells.items():
            for group, n in groups.items():
                what = {"group": "rows", "positives": "positives", "negatives": "negatives"}
                parts.append(f"{attribute}={group} ({n} {what.get(family, family)})")
    return "; ".join(parts) or "none"


def fairness_of_members(
    config: AuditConfig,
    data: PreparedData,
    d: NDArray[np.int64],
    *,
    P: NDArray[np.float64] | None = None,
    positive_rate: float | None = None,
) -> pd.DataFrame:
    """Fairness of each member (rows) per ``metric[attribute]`` (columns).

    Each between-group difference uses only the cells large enough to carry it (groups for
    demographic parity and accuracy, label-conditioned cells for TPR/FPR/equalized odds; at
    least ``min_group_size`` rows). Every metric compares the favourable class against the
    rest (:func:`favourable`), so any number of classes works; per-group accuracy is that of
    the favourable-versus-rest decision. With ``P``, the positive-rate-matched control is added as
    ``metric[attribute]_matched``: every member re-thresholded to ``positive_rate`` (the
    target's positive rate on the evaluation rows).
    """
    pos_label = data.dataset.positive_class
    matched_d: NDArray[np.int64] | None = None
    if P is not None and positive_rate is not None:
        matched_d = metrics.rate_matched_decisions(
            P, positive_rate=positive_rate, pos_label=pos_label
        )
    frames = [pd.DataFrame(index=range(len(d)))]  # no sensitive attribute: no column
    for attribute in data.sensitive_eval.columns:
        groups = data.sensitive_eval[attribute].astype(str).to_numpy()

        def table(decisions: NDArray[np.int64], groups: NDArray[Any] = groups) -> pd.DataFrame:
            return metrics.member_fairness(
                favourable(data.y_eval, data),
                favourable(decisions, data),
                sensitive_features=groups,
                pos_label=1,
                method=config.fairness_method,
                min_cell_size=config.min_group_size,
            )

        every = table(d)
        renamed = {
            name: schema.fairness_column(name, attribute) for name in metrics.FAIRNESS_METRICS
        }
        for column in every.columns.difference(list(metrics.FAIRNESS_METRICS)):
            # "accuracy[Female]" -> "group_accuracy[sex=Female]"
            renamed[column] = f"group_accuracy[{attribute}={str(column)[len('accuracy[') : -1]}]"
        frames.append(every.rename(columns=renamed))
        if matched_d is not None:
            matched = table(matched_d)[list(metrics.FAIRNESS_METRICS)]
            frames.append(
                matched.rename(
                    columns={
                        n: f"{schema.fairness_column(n, attribute)}_{MATCHED}"
                        for n in matched.columns
                    }
                )
            )
    return pd.concat([f.reset_index(drop=True) for f in frames], axis=1)


PROBE_NONE = ("", "none", "nan")


def probe_gaps(P: NDArray[np.float64], data: PreparedData) -> dict[str, NDArray[np.float64]]:
    """Per member, the bias probe's gaps between groups, for each attribute of the probe.

    For an attribute with two groups A < B (sorted names; rows without a group — EEC's
    sentences with no race — are left out) the gaps are signed, A − B: ``eec.rate_gap`` in the
    rate of the favourable decision and ``probe_score_gap`` in the mean favourable probability.
    With more groups they are the largest minus the smallest group value. Shape ``(M,)`` each.
    """
    assert data.probe is not None
    pos = data.dataset.positive_class
    decided = (metrics.decisions(P) == pos).astype(np.float64)
    scores = P[:, :, pos]
    out: dict[str, NDArray[np.float64]] = {}
    for attribute in data.probe.groups.columns:
        groups = data.probe.groups[attribute].astype(str).to_numpy()
        names = sorted(g for g in set(groups.tolist()) if g.strip().lower() not in PROBE_NONE)
        if len(names) < 2:
            continue
        rates = np.stack([decided[:, groups == g].mean(axis=1) for g in names], axis=1)
        means = np.stack([scores[:, groups == g].mean(axis=1) for g in names], axis=1)
        if len(names) == 2:
            label = f"{names[0]}-{names[1]}"
            rate_gap, score_gap = rates[:, 0] - rates[:, 1], means[:, 0] - means[:, 1]
        else:
            label = "max-min"
            rate_gap = rates.max(axis=1) - rates.min(axis=1)
            score_gap = means.max(axis=1) - means.min(axis=1)
        out[schema.probe_column(data.probe.name, "rate_gap", attribute, label)] = rate_gap
        out[schema.probe_column(data.probe.name, "score_gap", attribute, label)] = score_gap
    return out
