"""Measuring Rashomon sets on the evaluation rows: one place for stolen sets and baselines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal import metrics
from multisteal.data.inputs import n_inputs
from multisteal.experiments import schema
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData
from multisteal.rashomon import Candidates
from multisteal.rashomon.base import PROBE

__all__ = [
    "EvaluationContext",
    "SetSelection",
    "fairness_of_members",
    "favourable",
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
        candidates: Candidates,
        losses: Mapping[str, NDArray[np.float64]],
        selections: Sequence[SetSelection],
        *,
        key: str,
        describe: Mapping[str, object],
        extra: Mapping[str, object],
    ) -> tuple[list[dict[str, Any]], pd.DataFrame, dict[str, NDArray[Any]]]:
        """Rows (per set × reference), member records and per-sample arrays of the sets.

        Row 0 of ``candidates`` is the set's reference model (the stolen surrogate, or the
        baseline's reference); ``key`` prefixes the per-sample arrays (``b1000``, ``floor``…).
        """
        data = self.data
        P = candidates.output("evaluation")
        d = metrics.decisions(P)
        # "seed" names the audit's seed in every table; a member's own seed is "member_seed".
        per_member = candidates.params.rename(columns={"seed": "member_seed"})
        for name, values in losses.items():
            per_member[f"loss[{name}]"] = values
        per_member["agreement"] = metrics.member_agreement(d, self.t)
        per_member["accuracy"] = metrics.member_accuracy(data.y_eval, d)
        per_member["probability_fidelity"] = metrics.member_probability_fidelity(P, self.P_target)
        union = np.unique(np.concatenate([s.members for s in selections] + [np.zeros(1, int)]))
        fairness = fairness_of_members(
            self.config, data, d[union], P=P[union], positive_rate=self.target_positive_rate
        )
        fairness.index = union
        per_member = per_member.join(fairness)
        if PROBE in candidates.outputs and data.probe is not None:
            for column, values in probe_gaps(candidates.output(PROBE), data).items():
                per_member[column] = values

        s = d[0]
        reference_fairness = {
            f"{column}_reference": per_member[column].to_numpy(dtype=np.float64)[0]
            for column in self.target_fairness
        }
        # Candidates arrive de-duplicated (distinct_candidates): "copies" counts the candidates
        # each distinct member stands for.
        n_candidates = int(per_member["copies"].sum())
        base: dict[str, Any] = {
            **extra,
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
            "surrogate_probability_fidelity": metrics.probability_fidelity(self.P_target, P[0]),
            **{f"explorer_{k}" if k != "explorer" else k: v for k, v in describe.items()},
            **reference_fairness,
        }
        rows: list[dict[str, Any]] = []
        member_frames: list[pd.DataFrame] = []
        arrays: dict[str, NDArray[Any]] = {f"{key}/surrogate_probabilities": P[0]}
        n_classes = P.shape[2]
        for selection in selections:
            members, eps = selection.members, selection.epsilon
            size = int(members.size)
            set_key = f"{key}/eps{eps:g}" if np.isfinite(eps) else key
            frame = per_member.iloc[members].copy()
            frame.insert(0, "epsilon", eps)
            member_frames.append(frame)
            set_row = {**base, "epsilon": eps, "set_size": size}
            set_row["set_copies"] = int(frame["copies"].sum())
            set_row.update(self._set_metrics(size, frame))
            if size:
                P_R, d_R = P[members], d[members]
                per_sample: dict[str, NDArray[Any]] = {
                    "ambiguous_vs_target": metrics.ambiguous_samples(d_R, self.t),
                    "ambiguous_vs_surrogate": metrics.ambiguous_samples(d_R, s),
                    "disagreement": metrics.disagreement(d_R, n_classes=n_classes),
                    "viable_prediction_range": metrics.viable_prediction_range(P_R, data.y_eval),
                    "score_variance": metrics.score_variance(P_R, data.y_eval),
                    "rashomon_capacity": metrics.rashomon_capacity(P_R),
                }
                for name, values in per_sample.items():
                    arrays[f"{set_key}/{name}"] = values
                set_row.update(_sample_summaries(per_sample))
                set_row.update(self._per_class(per_sample))
            for reference, r in (("target", self.t), ("surrogate", s)):
                row = {**set_row, "reference": reference}
                # The set's reference model is always a member, so ambiguity against r splits
                # into the reference's own disagreement with r plus the set's excess over it.
                infidelity = float(np.mean(s != r))
                row["reference_infidelity"] = infidelity
                if size:
                    row["ambiguity"] = metrics.ambiguity(d[members], r)
                    row["discrepancy"] = metrics.discrepancy(d[members], r)
                    row["excess_ambiguity"] = row["ambiguity"] - infidelity
                else:
                    row["ambiguity"] = row["discrepancy"] = float("nan")
                    row["excess_ambiguity"] = float("nan")
                rows.append(row)
        return rows, pd.concat(member_frames, ignore_index=True), arrays

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

    def _set_metrics(self, size: int, frame: pd.DataFrame) -> dict[str, float]:
        out: dict[str, float] = {}
        for column, target_value in self.target_probe.items():
            if column not in frame:
                continue
            values = frame[column].to_numpy(dtype=np.float64)
            out[f"{column}_target"] = target_value
            out[f"{column}_min"] = float(values.min()) if size else float("nan")
            out[f"{column}_max"] = float(values.max()) if size else float("nan")
            out[f"{column}_range"] = float(values.max() - values.min()) if size else float("nan")
        for column in ("agreement", "accuracy", "probability_fidelity"):
            values = frame[column].to_numpy(dtype=np.float64)
            out[f"set_{column}_min"] = float(values.min()) if size else float("nan")
            out[f"set_{column}_max"] = float(values.max()) if size else float("nan")
        for column, target_value in self.target_fairness.items():
            values = frame[column].to_numpy(dtype=np.float64)
            finite = values[np.isfinite(values)]
            known = bool(np.isfinite(target_value))
            summary = metrics.summarize_set(finite, target=target_value if known else 0.0)
            if not known:  # too few cells large enough to carry the metric
                summary["target"] = summary["max_gap"] = float("nan")
            for stat, value in summary.items():
                out[f"{column}_{stat}"] = float(value)
            matched = f"{column}_{MATCHED}"
            if matched in frame:
                m_values = frame[matched].to_numpy(dtype=np.float64)
                m_values = m_values[np.isfinite(m_values)]
                summary = metrics.summarize_set(m_values, target=0.0)
                for stat in ("min", "max", "range"):
                    out[f"{column}_{MATCHED}_{stat}"] = float(summary[stat])
            if column in self.target_bootstrap:
                for stat, value in self.target_bootstrap[column].items():
                    out[f"{column}_target_boot_{stat}"] = value
        return out


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
