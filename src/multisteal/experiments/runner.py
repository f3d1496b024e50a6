"""The audit runner: data → target → query API → attack → surrogate → Rashomon set → metrics."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from multisteal import metrics
from multisteal.attacks import Transcript, make_attack
from multisteal.attacks.pool import POOL_TOO_SMALL
from multisteal.data import (
    TabularDataset,
    TabularPreprocessor,
    load_csv,
    load_dataset,
    split_dataset,
)
from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig
from multisteal.models import Classifier, TorchMLPClassifier, load_model, train_target
from multisteal.query import LocalQueryAPI
from multisteal.rashomon import (
    Candidates,
    DropoutExplorer,
    ExplorationContext,
    Explorer,
    RetrainExplorer,
    candidate_losses,
    rashomon_set,
)
from multisteal.surrogates import fit_surrogate

__all__ = ["AuditResult", "PreparedData", "make_explorer", "prepare_data", "run_audit"]

Progress = Callable[[str], None]
"""Called with a short description before each step of the audit."""
Checkpoint = Callable[["AuditResult"], None]
"""Called with the partial result (finished budgets only) after each budget."""


@dataclass(frozen=True)
class PreparedData:
    """A dataset split and encoded for an audit (encoder fitted on target-train only)."""

    dataset: TabularDataset
    preprocessor: TabularPreprocessor
    X_target: NDArray[np.float64]
    y_target: NDArray[np.int64]
    X_pool: NDArray[np.float64]
    X_eval: NDArray[np.float64]
    y_eval: NDArray[np.int64]
    sensitive_eval: pd.DataFrame
    feature_groups: tuple[NDArray[np.int64], ...]


@dataclass
class AuditResult:
    """Everything an audit produced, as tables and arrays (no model objects).

    Attributes
    ----------
    results : one row per budget × ε × reference (``target`` or ``surrogate``).
    members : one row per budget × ε × member of the ε-Rashomon set.
    samples : per-sample arrays, keyed ``b{budget}/eps{ε}/{metric}`` plus shared arrays.
    query_log : every batch the target's APIs received, one row per batch; ``api`` says whose
        (``attacker``, one API per budget, or ``auditor``, the evaluation-set probabilities).
    timings : seconds spent per step.
    target : the target model (saved as an artifact with the run; never used by metrics).
    preprocessor : the encoder fitted on target-train rows (saved next to the target, so the
        artifact can score raw rows of the dataset).
    """

    config: AuditConfig
    results: pd.DataFrame
    members: pd.DataFrame
    samples: dict[str, NDArray[Any]]
    query_log: pd.DataFrame
    timings: dict[str, float] = field(default_factory=dict)
    target: Classifier | None = None
    preprocessor: TabularPreprocessor | None = None


def prepare_data(config: AuditConfig) -> PreparedData:
    """Load the configured data, split it and fit the encoder on the target-train part."""
    if config.csv is not None:
        dataset = load_csv(
            config.csv, label=str(config.label), sensitive=list(config.sensitive or [])
        )
    else:
        dataset = load_dataset(str(config.dataset), data_dir=config.data_dir)
    split = config.split
    splits = split_dataset(
        dataset.y, sizes=(split.target_train, split.pool, split.evaluation), seed=config.seed
    )
    features = dataset.features
    pre = TabularPreprocessor(
        categorical=list(dataset.categorical), numerical=list(dataset.numerical)
    ).fit(features.iloc[splits.target_train])

    def encode(idx: NDArray[np.int64]) -> NDArray[np.float64]:
        return np.asarray(pre.transform(features.iloc[idx]), dtype=np.float64)

    return PreparedData(
        dataset=dataset,
        preprocessor=pre,
        X_target=encode(splits.target_train),
        y_target=dataset.y[splits.target_train],
        X_pool=encode(splits.pool),
        X_eval=encode(splits.evaluation),
        y_eval=dataset.y[splits.evaluation],
        sensitive_eval=dataset.sensitive.iloc[splits.evaluation].reset_index(drop=True),
        feature_groups=tuple(np.asarray(cols, dtype=np.int64) for _, cols in pre.feature_groups_),
    )


def make_explorer(config: AuditConfig) -> Explorer:
    """The configured Rashomon explorer."""
    if config.explorer == "dropout":
        d = config.dropout
        return DropoutExplorer(
            kind=d.kind,
            semantics=d.semantics,
            rates=d.rates,
            p_max=d.p_max,
            n_rates=d.n_rates,
            members_per_rate=d.members_per_rate,
        )
    r = config.retrain
    return RetrainExplorer(n_members=r.n_members, bootstrap=r.bootstrap)


def run_audit(
    config: AuditConfig,
    *,
    data: PreparedData | None = None,
    target: Classifier | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
) -> AuditResult:
    """Run the full audit described by ``config``.

    ``checkpoint``, when given, is called with the partial result after every budget, so a
    caller can persist finished budgets before a later one fails or is interrupted.

    ``data`` and ``target`` may be given to reuse prepared data or a fitted target; otherwise
    they are built from the configuration. The target is only reached through query APIs:
    the attacker's (one per budget, with the configured output mode) and the auditor's (full
    probabilities on the evaluation set, budgeted to exactly that set).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run_audit(
            config, data=data, target=target, progress=progress, checkpoint=checkpoint
        )
    finally:
        torch.set_num_threads(threads)


def _run_audit(
    config: AuditConfig,
    *,
    data: PreparedData | None,
    target: Classifier | None,
    progress: Progress | None,
    checkpoint: Checkpoint | None,
) -> AuditResult:
    say = progress or (lambda _msg: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    say("loading data")
    data = data or prepare_data(config)
    timings["data"] = time.perf_counter() - clock
    if config.attack == "pool" and max(config.budgets) > len(data.X_pool):
        # Checked before any work, so no budget's results are lost to a late failure.
        raise ConfigError(POOL_TOO_SMALL.format(budget=max(config.budgets), size=len(data.X_pool)))

    clock = time.perf_counter()
    if target is None and config.target_path is not None:
        say(f"loading target from {config.target_path}")
        target = load_model(config.target_path)
    if target is None:
        say(f"training target ({config.target})")
        target = train_target(
            config.target,
            data.X_target,
            data.y_target,
            random_state=config.seed,
            **config.target_params,
        )
    timings["target"] = time.perf_counter() - clock

    # The auditor reaches the target through its own budgeted API too: no side door.
    auditor = LocalQueryAPI(target, output="probabilities", budget=len(data.X_eval))
    P_target = auditor.query(data.X_eval).scores
    assert P_target is not None
    logs: list[pd.DataFrame] = [
        auditor.log.to_frame().assign(api="auditor", budget=len(data.X_eval))
    ]
    context = _AuditContext.build(config, data, P_target)

    def refit(part: Transcript, seed: int) -> TorchMLPClassifier:
        return fit_surrogate(
            part,
            architecture=config.surrogate,
            labels=config.labels,
            random_state=seed,
            **config.surrogate_params,
        )

    explorer = make_explorer(config)
    results: list[dict[str, Any]] = []
    members: list[pd.DataFrame] = []
    for budget in config.budgets:
        rng = np.random.default_rng([config.seed, budget])
        clock = time.perf_counter()
        say(f"budget {budget}: attack ({config.attack})")
        api = LocalQueryAPI(
            target, output=config.output, budget=budget, k=config.top_k, decimals=config.decimals
        )
        attack = make_attack(config.attack, pool=data.X_pool, feature_groups=data.feature_groups)
        transcript = attack.run(api, budget, rng=rng)
        logs.append(api.log.to_frame().assign(api="attacker", budget=budget))
        train_part, holdout = transcript.holdout_split(config.holdout_fraction, rng=rng)

        say(f"budget {budget}: surrogate ({config.surrogate})")
        surrogate = refit(train_part, config.seed)
        timings[f"attack+surrogate[{budget}]"] = time.perf_counter() - clock

        clock = time.perf_counter()
        say(f"budget {budget}: exploring the Rashomon set ({explorer.name})")
        candidates = explorer.explore(
            ExplorationContext(
                surrogate=surrogate,
                inputs={"holdout": holdout.queries, "evaluation": data.X_eval},
                transcript=train_part,
                refit=refit,
                rng=rng,
            )
        )
        timings[f"explore[{budget}]"] = time.perf_counter() - clock

        clock = time.perf_counter()
        say(f"budget {budget}: metrics over {len(candidates)} candidates")
        rows, member_rows, arrays = context.evaluate(
            candidates, holdout.answers.labels, budget=budget, explorer=explorer
        )
        results += rows
        members.append(member_rows)
        context.samples.update(arrays)
        timings[f"metrics[{budget}]"] = time.perf_counter() - clock
        if checkpoint is not None:
            checkpoint(
                _result(config, data, results, members, context.samples, logs, timings, target)
            )

    return _result(config, data, results, members, context.samples, logs, timings, target)


def _result(
    config: AuditConfig,
    data: PreparedData,
    results: list[dict[str, Any]],
    members: list[pd.DataFrame],
    samples: dict[str, NDArray[Any]],
    logs: list[pd.DataFrame],
    timings: dict[str, float],
    target: Classifier,
) -> AuditResult:
    return AuditResult(
        config=config,
        results=pd.DataFrame(results),
        members=pd.concat(members, ignore_index=True),
        samples=dict(samples),
        query_log=pd.concat(logs, ignore_index=True),
        timings=dict(timings),
        target=target,
        preprocessor=data.preprocessor,
    )


@dataclass
class _AuditContext:
    """What stays fixed across budgets: the evaluation set and the target's behaviour on it."""

    config: AuditConfig
    data: PreparedData
    P_target: NDArray[np.float64]
    t: NDArray[np.int64]
    target_fairness: dict[str, float]
    samples: dict[str, NDArray[Any]]
    excluded: str

    @classmethod
    def build(
        cls, config: AuditConfig, data: PreparedData, P_target: NDArray[np.float64]
    ) -> _AuditContext:
        t = metrics.decisions(P_target)
        target_fairness = {
            str(k): float(v)
            for k, v in _fairness(data, t[None, :], config.fairness_method, config.min_group_size)
            .iloc[0]
            .items()
        }
        samples: dict[str, NDArray[Any]] = {
            "y": data.y_eval,
            "target_decisions": t,
            "target_probabilities": P_target,
        }
        for column in data.sensitive_eval.columns:
            samples[f"sensitive/{column}"] = np.asarray(
                data.sensitive_eval[column].astype(str).tolist(), dtype=np.str_
            )
        excluded = "; ".join(
            f"{attribute}={group} ({n})"
            for attribute, groups in small_groups(
                data.sensitive_eval, config.min_group_size
            ).items()
            for group, n in groups.items()
        )
        return cls(config, data, P_target, t, target_fairness, samples, excluded or "none")

    def evaluate(
        self,
        candidates: Candidates,
        holdout_labels: NDArray[np.int64],
        *,
        budget: int,
        explorer: Explorer,
    ) -> tuple[list[dict[str, Any]], pd.DataFrame, dict[str, NDArray[Any]]]:
        config, data = self.config, self.data
        P = candidates.output("evaluation")
        d = metrics.decisions(P)
        losses = candidate_losses(
            candidates, holdout_labels=holdout_labels, target_probabilities=self.P_target
        )
        largest = rashomon_set(losses, epsilon=max(config.epsilons), criterion=config.criterion)
        # Per-candidate records; fairness only for candidates in the largest set.
        per_member = candidates.params.copy()
        for name, values in losses.items():
            per_member[f"loss[{name}]"] = values
        per_member["agreement"] = metrics.member_agreement(d, self.t)
        per_member["accuracy"] = metrics.member_accuracy(data.y_eval, d)
        per_member["probability_fidelity"] = metrics.member_probability_fidelity(P, self.P_target)
        fairness = _fairness(
            data, d[largest.members], config.fairness_method, config.min_group_size
        )
        fairness.index = largest.members
        per_member = per_member.join(fairness)

        s = d[0]
        surrogate_fairness = {
            f"{column}_surrogate": per_member[column].to_numpy(dtype=np.float64)[0]
            for column in self.target_fairness
        }
        base: dict[str, Any] = {
            "dataset": config.data_name,
            "target": config.target,
            "attack": config.attack,
            "output": config.output,
            "surrogate": config.surrogate,
            "criterion": config.criterion,
            "budget": budget,
            "n_candidates": len(candidates),
            "holdout_size": int(holdout_labels.size),
            "min_group_size": config.min_group_size,
            "fairness_excluded_groups": self.excluded,
            "target_accuracy": metrics.accuracy(data.y_eval, self.t),
            "surrogate_accuracy": metrics.accuracy(data.y_eval, s),
            "surrogate_agreement": metrics.agreement(self.t, s),
            "surrogate_probability_fidelity": metrics.probability_fidelity(self.P_target, P[0]),
            **{
                f"explorer_{k}" if k != "explorer" else k: v for k, v in explorer.describe().items()
            },
            **surrogate_fairness,
        }
        rows: list[dict[str, Any]] = []
        member_frames: list[pd.DataFrame] = []
        arrays: dict[str, NDArray[Any]] = {f"b{budget}/surrogate_probabilities": P[0]}
        n_classes = P.shape[2]
        for eps in config.epsilons:
            R = rashomon_set(losses, epsilon=eps, criterion=config.criterion)
            key = f"b{budget}/eps{eps:g}"
            frame = per_member.iloc[R.members].copy()
            frame.insert(0, "epsilon", eps)
            frame.insert(0, "budget", budget)
            member_frames.append(frame)
            set_row = {**base, "epsilon": eps, "set_size": R.size}
            set_row.update(self._set_metrics(R.size, frame))
            if R.size:
                P_R, d_R = P[R.members], d[R.members]
                per_sample: dict[str, NDArray[Any]] = {
                    "ambiguous_vs_target": metrics.ambiguous_samples(d_R, self.t),
                    "ambiguous_vs_surrogate": metrics.ambiguous_samples(d_R, s),
                    "disagreement": metrics.disagreement(d_R, n_classes=n_classes),
                    "viable_prediction_range": metrics.viable_prediction_range(P_R, data.y_eval),
                    "score_variance": metrics.score_variance(P_R, data.y_eval),
                    "rashomon_capacity": metrics.rashomon_capacity(P_R),
                }
                for name, values in per_sample.items():
                    arrays[f"{key}/{name}"] = values
                set_row.update(_sample_summaries(per_sample))
            for reference, r in (("target", self.t), ("surrogate", s)):
                row = {**set_row, "reference": reference}
                if R.size:
                    row["ambiguity"] = metrics.ambiguity(d[R.members], r)
                    row["discrepancy"] = metrics.discrepancy(d[R.members], r)
                else:
                    row["ambiguity"] = row["discrepancy"] = float("nan")
                rows.append(row)
        return rows, pd.concat(member_frames, ignore_index=True), arrays

    def _set_metrics(self, size: int, frame: pd.DataFrame) -> dict[str, float]:
        out: dict[str, float] = {}
        for column in ("agreement", "accuracy", "probability_fidelity"):
            values = frame[column].to_numpy(dtype=np.float64)
            out[f"set_{column}_min"] = float(values.min()) if size else float("nan")
            out[f"set_{column}_max"] = float(values.max()) if size else float("nan")
        for column, target_value in self.target_fairness.items():
            values = frame[column].to_numpy(dtype=np.float64)
            summary = metrics.summarize_set(values, target=target_value)
            for stat, value in summary.items():
                out[f"{column}_{stat}"] = float(value)
        return out


def _sample_summaries(per_sample: Mapping[str, NDArray[Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name in ("disagreement", "viable_prediction_range", "score_variance", "rashomon_capacity"):
        threshold = metrics.RC_THRESHOLD if name == "rashomon_capacity" else 0.0
        for stat, value in metrics.summarize(per_sample[name], threshold=threshold).items():
            out[f"{name}_{stat}"] = float(value)
    return out


def small_groups(sensitive: pd.DataFrame, min_group_size: int) -> dict[str, dict[str, int]]:
    """Groups with fewer than ``min_group_size`` rows, per attribute: ``{attr: {group: n}}``."""
    out: dict[str, dict[str, int]] = {}
    for attribute in sensitive.columns:
        counts = sensitive[attribute].astype(str).value_counts()
        small = counts[counts < min_group_size]
        out[str(attribute)] = {str(g): int(n) for g, n in sorted(small.items())}
    return out


def _fairness(
    data: PreparedData, d: NDArray[np.int64], method: str, min_group_size: int = 0
) -> pd.DataFrame:
    """Fairness of each member (rows) per metric[attribute] (columns).

    Between-group differences leave out groups with fewer than ``min_group_size`` evaluation
    rows (their rates are too noisy to compare: one flipped decision moves them by > 1/n);
    per-group accuracy is reported for every group.
    """
    excluded = small_groups(data.sensitive_eval, min_group_size)
    pos_label = data.dataset.positive_class
    frames = []
    for attribute in data.sensitive_eval.columns:
        groups = data.sensitive_eval[attribute].astype(str).to_numpy()
        every = metrics.member_fairness(
            data.y_eval, d, sensitive_features=groups, pos_label=pos_label, method=method
        )
        keep = ~np.isin(groups, list(excluded[str(attribute)]))
        differences = every
        if not keep.all():
            differences = metrics.member_fairness(
                data.y_eval[keep],
                d[:, keep],
                sensitive_features=groups[keep],
                pos_label=pos_label,
                method=method,
            )
        renamed = {name: f"{name}[{attribute}]" for name in metrics.FAIRNESS_METRICS}
        for column in every.columns.difference(list(metrics.FAIRNESS_METRICS)):
            # "accuracy[Female]" -> "group_accuracy[sex=Female]"
            renamed[column] = f"group_accuracy[{attribute}={str(column)[len('accuracy[') : -1]}]"
        frames.append(differences[list(metrics.FAIRNESS_METRICS)].rename(columns=renamed))
        frames.append(every.drop(columns=list(metrics.FAIRNESS_METRICS)).rename(columns=renamed))
    return pd.concat([f.reset_index(drop=True) for f in frames], axis=1)
