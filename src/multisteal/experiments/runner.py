"""The audit runner: data → target → query API → attack → surrogate → Rashomon set → metrics.

Every audit also carries its two baselines, measured on the same evaluation rows:

* the *explorer floor* — the same explorer, ε and criterion applied with no budget-limited
  stealing: to the target itself where the explorer can run on its family, otherwise to a
  surrogate of the attacker's architecture trained on the whole pool with full probabilities;
* the *target's own Rashomon set* — the target's family retrained on target-train with other
  seeds (the model owner's own multiplicity).

Each stage (split, target, attack, surrogate, explorer, baselines) draws from its own seed
stream (:meth:`AuditConfig.stage_seed`); with several seeds the whole audit runs once per seed,
in worker processes when ``workers > 1`` (:mod:`multisteal.experiments.repeats`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from multisteal.attacks import (
    ATTACKS,
    AttackContext,
    AttackSetting,
    Transcript,
    make_attack,
    query_in_batches,
    run_attack,
)
from multisteal.data.inputs import TabularSpec, n_inputs
from multisteal.errors import ConfigError, InvalidInputError
from multisteal.experiments.config import AuditConfig
from multisteal.experiments.data import PreparedData, prepare_data
from multisteal.experiments.evaluation import EvaluationContext, Measured
from multisteal.experiments.remote import FLOOR_NEEDS, RemoteTarget
from multisteal.experiments.targets import check_target_metadata, target_family
from multisteal.metrics import accuracy, agreement, expected_calibration_error
from multisteal.models import Classifier, load_model
from multisteal.models.pipeline import InputPipeline
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI
from multisteal.query.api import Detector, QueryAPI
from multisteal.query.defences import make_defences
from multisteal.rashomon import (
    EXPLORERS,
    Candidates,
    ExplorationContext,
    Explorer,
    candidate_losses,
)
from multisteal.rashomon.base import PROBE, SELECTION, check_accepts
from multisteal.service.client import HTTPQueryAPI
from multisteal.surrogates import LabelKind, fit_surrogate, surrogate_targets

__all__ = ["AuditResult", "PreparedData", "make_explorer", "prepare_data", "run_single_audit"]

Progress = Callable[[str], None]
"""Called with a short description before each step of the audit."""
Checkpoint = Callable[["AuditResult"], None]
"""Called with the partial result (finished budgets only) after each budget."""

CUSTOM_TARGET = (
    "The target ({cls}) is not a model family of the zoo, so the target-retrain baseline cannot "
    "retrain it: set baselines.target_members to 0 (--baseline-members 0)."
)
TOP_K_TOO_LARGE = (
    "--top-k {k} exceeds the {n} classes of the data: the API cannot reveal more scores than "
    "there are classes. Use --top-k {n} or less (with {n}, or --output probabilities, every "
    "score is revealed)."
)
NO_ANSWERS = (
    "The {attack} attack got no answer at budget {budget}: the service refused its first batch "
    "({why}). Nothing can be stolen from no answers."
)
TOO_FEW_ANSWERS = (
    "The {attack} attack got {n} answers at budget {budget} ({why}); the surrogate needs at "
    "least 2 to train on after the hold-out slice."
)
FLOOR = "explorer_floor"
OWNER = "target_retrain"
FLOOR_ON_TARGET = "target"
FLOOR_ON_POOL = "full-pool surrogate"


@dataclass
class AuditResult:
    """Everything an audit produced, as tables and arrays (no model objects but the target).

    Attributes
    ----------
    results : one row per seed × budget × ε × reference (``target`` or ``surrogate``).
    members : one row per seed × budget × ε × distinct member of the ε-Rashomon set.
    baselines : rows like ``results`` for the two baselines (column ``baseline``:
        ``explorer_floor`` or ``target_retrain``), per seed × ε × reference.
    samples : per-sample arrays, keyed ``seed{s}/b{budget}/eps{ε}/{metric}``,
        ``seed{s}/floor/eps{ε}/…``, ``seed{s}/owner/…`` plus per-seed shared arrays.
    query_log : every batch the target's APIs received, one row per batch; ``api`` says whose
        (``attacker``, one API per budget, with the configured output policy, defences and
        detector; ``honest``, the evaluation rows through that same service, for the
        ``honest_*`` columns; ``auditor``, the evaluation rows with full probabilities;
        ``baseline``, the whole pool for the explorer floor).
    convergence : every set's metrics as a function of its number of members: one row per
        seed × set (``set``: ``stolen``, ``explorer_floor``, ``target_retrain``) × budget × ε ×
        metric × fraction, with the mean subset ``size``, the mean ``value`` over random member
        orders and its 95 % interval ``low``–``high``.
    timings : seconds spent per step (keys prefixed by the seed).
    target : the first seed's target model, a raw-input model whose encoder was fitted on that
        seed's target-train rows (saved as an artifact with the run).
    target_metadata : what the artifact's ``meta.json`` records about how it was trained.
    """

    config: AuditConfig
    results: pd.DataFrame
    members: pd.DataFrame
    baselines: pd.DataFrame
    samples: dict[str, NDArray[Any]]
    query_log: pd.DataFrame
    convergence: pd.DataFrame = field(default_factory=pd.DataFrame)
    timings: dict[str, float] = field(default_factory=dict)
    target: Classifier | None = None
    target_metadata: dict[str, Any] = field(default_factory=dict)


def make_explorer(config: AuditConfig) -> Explorer:
    """The configured Rashomon explorer, from the registry (:data:`EXPLORERS`)."""
    return EXPLORERS[config.explorer.name].factory(**config.explorer_params())


def run_single_audit(
    config: AuditConfig,
    *,
    data: PreparedData | None = None,
    target: Classifier | None = None,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
    skip_budgets: frozenset[int] = frozenset(),
) -> AuditResult:
    """Run the audit of one seed (``config.seed``); see :func:`run_audit` for several.

    ``skip_budgets`` are left out (a resumed run already has them): every budget draws from
    its own streams, so the others come out exactly as in an uninterrupted run.

    ``data`` and ``target`` may be given to reuse prepared data or a fitted target. The target
    is only reached through query APIs: the attacker's (one per budget, with the configured
    output mode), the auditor's (full probabilities on the evaluation rows, budgeted to exactly
    those rows) and, for the explorer floor, the baseline's (the whole pool).
    """
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        # BLAS and OpenMP pools (scikit-learn's gradient boosting and forests) too, not torch's
        # alone: oversubscribed pools cost several times their work on few cores.
        with threadpool_limits(config.threads):
            audit = _Audit(config, progress or (lambda _msg: None), checkpoint, skip=skip_budgets)
            return audit.run(data, target)
    finally:
        torch.set_num_threads(threads)


@dataclass
class _Audit:
    config: AuditConfig
    say: Progress
    checkpoint: Checkpoint | None
    skip: frozenset[int] = frozenset()
    timings: dict[str, float] = field(default_factory=dict)
    logs: list[pd.DataFrame] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    members: list[pd.DataFrame] = field(default_factory=list)
    baselines: list[dict[str, Any]] = field(default_factory=list)
    convergence: list[pd.DataFrame] = field(default_factory=list)

    def _timed(self, name: str, clock: float) -> float:
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - clock
        return now

    def run(self, data: PreparedData | None, target: Classifier | None) -> AuditResult:
        config, say = self.config, self.say
        clock = time.perf_counter()
        say("loading data")
        data = data or prepare_data(config)
        self.data = data
        clock = self._timed("data", clock)
        spec = data.input_spec
        try:
            # Checked for every budget before any work, so no budget's results are lost to a
            # late failure.
            for budget in config.budgets:
                ATTACKS[config.attack].check(
                    AttackSetting(
                        modality=data.modality,
                        output_mode=config.answer_mode,
                        n_classes=data.dataset.n_classes,
                        budget=budget,
                        pool_size=n_inputs(data.X_pool),
                        surrogate_torch=bool(config.surrogate_family.torch),
                        input_spec=spec,
                        n_features=len(spec.columns) if isinstance(spec, TabularSpec) else 0,
                    )
                )
        except InvalidInputError as exc:
            raise ConfigError(str(exc)) from None
        if config.output == "top-k" and config.top_k > data.dataset.n_classes:
            raise ConfigError(TOP_K_TOO_LARGE.format(k=config.top_k, n=data.dataset.n_classes))
        metadata: dict[str, Any] = {}
        self.remote: RemoteTarget | None = None
        if config.target_url is not None:
            say(f"connecting to the service at {config.target_url}")
            self.remote = RemoteTarget.open(config)
            metadata = self.remote.check(config, data)
            self.remote.check_budgets(**self._remote_needs(data))
            self.remote.check_attackers(
                [b for b in config.budgets if b not in self.skip], config.api_key_env
            )
        if target is None and config.target_path is not None:
            say(f"loading target from {config.target_path}")
            metadata = check_target_metadata(config, data)
            target = load_model(config.target_path)
        if target is None and self.remote is None:
            say(f"training target ({config.target})")
            target = self._train_target(config.target, config.stage_seed("target"))
        # The family of the model actually audited: recorded with a loaded artifact, else read
        # off the model (a target passed in may not be the configured family); a remote
        # service does not publish it, so its owner's --target names it.
        self.family = str(
            metadata.get("family") or (config.target if target is None else target_family(target))
        )
        if self.family == "custom" and config.baselines.target_members:
            raise ConfigError(CUSTOM_TARGET.format(cls=type(target).__name__))
        self.target: Classifier | None = target
        self.data = data
        self.metadata = {
            **metadata,
            "family": self.family,
            "data": config.data_name,
            "seed": config.seed,
            "split": config.split.model_dump(),
            "split_seed": data.split_seed,
            "positive_class": data.dataset.positive_class,
            "modality": data.modality,
            "input_spec": data.input_spec.to_dict(),
            "classes": [str(c) for c in data.dataset.class_names],
            "data_sha256": config.data_file_sha256(),
        }
        clock = self._timed("target", clock)

        # The auditor reaches the target through its own budgeted API too: no side door.
        probe = data.probe.inputs if data.probe is not None else None
        reference_rows = (
            n_inputs(data.X_eval)
            + n_inputs(data.X_select)
            + (0 if probe is None else n_inputs(probe))
        )
        auditor: QueryAPI
        if self.remote is not None:
            auditor = self.remote.auditor(reference_rows)
        else:
            assert target is not None
            auditor = LocalQueryAPI(
                target, output="probabilities", budget=reference_rows, input_spec=data.input_spec
            )
        P_target = _scores(auditor, data.X_eval)
        self.P_select = _scores(auditor, data.X_select) if n_inputs(data.X_select) else None
        P_probe = _scores(auditor, probe) if probe is not None else None
        _close(auditor)
        self.logs.append(auditor.log.to_frame().assign(api="auditor", budget=0))
        baseline_rng = np.random.default_rng(config.stage_seed("baselines"))
        self.context = EvaluationContext.build(
            config,
            data,
            P_target,
            rng=np.random.default_rng([config.stage_seed("baselines"), 1]),
            capped=dict(getattr(getattr(target, "encoder_", None), "capped_", {}) or {}),
            P_probe=P_probe,
        )
        self.explorer = make_explorer(config)
        self.honest = self._honest_users(P_target)
        clock = self._timed("auditor", clock)

        if config.baselines.explorer_floor:
            say("baseline: explorer floor")
            self._explorer_floor()
            clock = self._timed("baseline[explorer_floor]", clock)
        if config.baselines.target_members:
            say(f"baseline: target retrained ({config.baselines.target_members} seeds)")
            self._target_retrain(baseline_rng)
            clock = self._timed("baseline[target_retrain]", clock)

        for budget in config.budgets:
            if budget in self.skip:
                continue  # finished by an earlier, interrupted run (resumed)
            self._budget(budget)
            if self.checkpoint is not None:
                self.checkpoint(self._result())
        return self._result()

    def _remote_needs(self, data: PreparedData) -> dict[str, Any]:
        """What the audit will spend of each remote key's budget (rows, by purpose)."""
        config = self.config
        n_eval = n_inputs(data.X_eval)
        return {
            "auditor": {
                "evaluation rows": n_eval,
                "selection rows": n_inputs(data.X_select),
                "bias probe": 0 if data.probe is None else n_inputs(data.probe.inputs),
                "honest users' view of the evaluation rows": n_eval,
                FLOOR_NEEDS: n_inputs(data.X_pool) if config.baselines.explorer_floor else 0,
            },
            "attacker": {b: b for b in config.budgets if b not in self.skip},
        }

    # -- the stolen sets -------------------------------------------------------------------

    def _train_target(self, family: str, seed: int) -> InputPipeline:
        """The owner's model: the family's encoder and classifier, fitted on target-train (the
        official val part, where the data have one, selects a torch model's epochs)."""
        config, data = self.config, self.data
        model = make_pipeline(
            family,
            data.input_spec,
            n_classes=data.dataset.n_classes,
            random_state=seed,
            encoder_params=config.encoder_params(),
            **config.target_params,
        )
        validation = None
        if data.X_val is not None and data.y_val is not None:
            validation = (data.X_val, data.y_val)
        return model.fit(data.X_target, data.y_target, validation=validation)

    def refit(self, part: Transcript, seed: int) -> Classifier:
        """The attacker's surrogate, with its own encoder fitted on ``part`` only."""
        return self._fit(part, seed, labels=self.config.labels)

    def _attack_fit(self, part: Transcript, seed: int) -> Classifier:
        """The surrogate an attack retrains inside its loop: the configured architecture, on
        whatever the attack's transcript holds (an attack may keep only the labels)."""
        return self._fit(part, seed, labels="auto")

    def _fit(
        self,
        part: Transcript,
        seed: int,
        *,
        labels: LabelKind,
        overrides: Mapping[str, Any] | None = None,
    ) -> Classifier:
        config = self.config
        return fit_surrogate(
            part,
            architecture=config.surrogate,
            labels=labels,
            random_state=seed,
            input_spec=self.data.input_spec,
            encoder_params=config.encoder_params(),
            **{**config.surrogate_params, **(overrides or {})},
        )

    def _budget(self, budget: int) -> None:
        config, data, say = self.config, self.data, self.say
        clock = time.perf_counter()
        say(f"budget {budget}: attack ({config.attack})")
        rng = np.random.default_rng([config.stage_seed("attack"), budget])
        detectors = self._detectors()
        api = self._service(budget, stream=budget, detectors=detectors)
        key_used = api.key_ledger.used if isinstance(api, HTTPQueryAPI) else 0
        context = AttackContext(
            api,
            rng,
            pool=data.X_pool,
            fit=self._attack_fit,
            surrogate_torch=bool(config.surrogate_family.torch),
            batch_size=config.query_batch_size,
        )
        ATTACKS[config.attack].check(context.setting())
        attack = make_attack(config.attack, **config.attack_params)
        found, stop = run_attack(attack, context)
        self.logs.append(api.log.to_frame().assign(api="attacker", budget=budget))
        why = (
            "its detector flagged the query stream"
            if stop == "refused"
            else "the attack stopped there"
        )
        if stop == "refused" and self.remote is not None and self.remote.shared_attacker:
            why += (
                " — one attacker key serves every budget, so an earlier budget's queries count "
                "too; give one key per budget (comma-separated in --api-key-env)"
            )
        if found is None:
            raise InvalidInputError(NO_ANSWERS.format(attack=config.attack, budget=budget, why=why))
        transcript = found
        if transcript.source_index is not None:  # where the queries came from (leakage checks)
            self.context.samples[f"b{budget}/query_index"] = data.pool_index[
                transcript.source_index
            ]
        if len(transcript) - round(config.holdout_fraction * len(transcript)) < 2:
            raise InvalidInputError(
                TOO_FEW_ANSWERS.format(
                    attack=config.attack, n=len(transcript), budget=budget, why=why
                )
            )
        flagged = [d.flagged_after for d in detectors if d.flagged_after is not None]
        if self.remote is not None:
            # The service's detector watches the key's whole stream: count this attack's part.
            remote_flag = self.remote.flagged_after(budget)
            if remote_flag is not None:
                flagged = [max(0, remote_flag - key_used)]
        attack_info: dict[str, Any] = {
            "queries_used": api.ledger.used,
            "attack_stop": stop,
            "flagged_after": min(flagged) if flagged else float("nan"),
            "recovered_agreement": self._recovered_agreement(attack, api, transcript),
        }
        _close(api)
        train_part, holdout = transcript.holdout_split(config.holdout_fraction, rng=rng)
        say(f"budget {budget}: surrogate ({config.surrogate})")
        surrogate = self.refit(train_part, config.stage_seed("surrogate"))
        clock = self._timed(f"attack+surrogate[{budget}]", clock)

        say(f"budget {budget}: exploring the Rashomon set ({self.explorer.name})")
        explorer_rng = np.random.default_rng([config.stage_seed("explorer"), budget])
        exploration = self._exploration(surrogate, holdout, train_part, explorer_rng)
        check_accepts(self.explorer, surrogate)
        labels = "soft" if surrogate_targets(train_part, config.labels).ndim == 2 else "hard"
        # The explorer yields chunks and the metrics consume them as they come: exploring and
        # measuring are one step (timed as explore+metrics).
        measured = self._measure(
            self.explorer.explore_chunks(exploration),
            holdout,
            key=f"b{budget}",
            extra={
                "budget": budget,
                "holdout_size": len(holdout),
                "labels": labels,
                **attack_info,
            },
            rng=np.random.default_rng([config.stage_seed("metrics"), budget]),
        )
        self.results += measured.rows
        self.members.append(measured.members.assign(budget=budget))
        self.context.samples.update(measured.arrays)
        if not measured.convergence.empty:
            self.convergence.append(measured.convergence.assign(budget=budget, set="stolen"))
        self._timed(f"explore+metrics[{budget}]", clock)

    def _recovered_agreement(self, attack: Any, api: QueryAPI, transcript: Transcript) -> float:
        """For attacks that reconstruct the model itself (``solve``: equation solving, path
        finding), the reconstruction's label agreement with the target on the evaluation rows;
        NaN for the others, or when the answers do not determine a model (e.g. equation solving
        on a target that answers a probability of 0)."""
        solve = getattr(attack, "solve", None)
        if not callable(solve):
            return float("nan")
        try:
            recovered = solve(api, transcript)
        except InvalidInputError:
            return float("nan")
        decisions = np.asarray(recovered.predict(self.data.X_eval), dtype=np.int64)
        return agreement(np.argmax(self.context.P_target, axis=1), decisions)

    def _service(
        self, budget: int, *, stream: int, detectors: tuple[Detector, ...] = ()
    ) -> QueryAPI:
        """The target as the configured service answers: output mode, defences and detectors.
        Every stream (each budget's attacker, the honest users) gets the same service — MAD's
        proxy drawn once from the ``defence`` seed — and noise of its own (one child of that
        seed per ``stream``). A remote service answers the attacker (``stream`` = its budget)
        through the attacker's key and the honest users (``stream`` 0) through the auditor's
        key's public view."""
        config = self.config
        if self.remote is not None:
            if stream == 0:
                return self.remote.auditor(budget, public=True)
            return self.remote.attacker(budget)
        assert self.target is not None
        seed = np.random.SeedSequence([config.stage_seed("defence"), stream])
        return LocalQueryAPI(
            self.target,
            output=config.output,
            budget=budget,
            k=config.top_k,
            decimals=config.decimals,
            input_spec=self.data.input_spec,
            defences=make_defences(
                config.defence_chain,
                seed=int(seed.generate_state(1)[0]),
                model=self.target,
                service_seed=config.stage_seed("defence"),
            ),
            detectors=detectors,
            refuse_when_flagged=config.detect_refuse,
        )

    def _detectors(self) -> tuple[Detector, ...]:
        config = self.config
        if config.detect == "none" or self.target is None:
            return ()  # (a remote service runs its own detector)
        from multisteal.query.detection import make_detector

        return (make_detector(config.detect, config.detect_params, model=self.target),)

    def _honest_users(self, P_target: NDArray[np.float64]) -> dict[str, float]:
        """What the service's output mode and defences cost honest users: the target's
        accuracy, calibration (top-label ECE of the answered scores; NaN when only labels are
        answered) and top-1 agreement with its own undefended decisions, as answered on the
        evaluation rows (through a service of its own, budgeted to exactly those rows)."""
        data = self.data
        api = self._service(n_inputs(data.X_eval), stream=0)
        answers = query_in_batches(api, data.X_eval, batch_size=4096).answers
        _close(api)
        self.logs.append(api.log.to_frame().assign(api="honest", budget=0))
        soft = answers.soft_targets()
        return {
            "honest_accuracy": accuracy(data.y_eval, answers.labels),
            "honest_ece": float("nan")
            if soft is None
            else expected_calibration_error(data.y_eval, soft),
            "honest_agreement": agreement(np.argmax(P_target, axis=1), answers.labels),
            "target_ece": expected_calibration_error(data.y_eval, P_target),
        }

    def _exploration(
        self,
        reference: Classifier,
        holdout: Transcript,
        train_part: Transcript,
        rng: np.random.Generator,
    ) -> ExplorationContext:
        config = self.config
        inputs: dict[str, Any] = {"holdout": holdout.queries, "evaluation": self.data.X_eval}
        if n_inputs(self.data.X_select):
            inputs[SELECTION] = self.data.X_select
        if self.data.probe is not None:
            inputs[PROBE] = self.data.probe.inputs

        def criterion_loss(chunk: Candidates) -> NDArray[np.float64]:
            losses = candidate_losses(
                chunk, holdout=holdout.answers, target_probabilities=self.P_select
            )
            if config.criterion not in losses:
                raise InvalidInputError(
                    f"The candidates have no {config.criterion!r} loss (no outputs on the rows "
                    "that criterion is measured on)."
                )
            return losses[config.criterion]

        def refit_with(part: Transcript, seed: int, params: Mapping[str, Any]) -> Classifier:
            return self._fit(part, seed, labels=config.labels, overrides=params)

        return ExplorationContext(
            surrogate=reference,
            inputs=inputs,
            transcript=train_part,
            refit=self.refit,
            rng=rng,
            refit_with=refit_with,
            criterion_loss=criterion_loss,
            epsilons=tuple(config.epsilons),
            max_chunk_bytes=int(config.chunk_mb * 2**20),
        )

    def _measure(
        self,
        chunks: Iterable[Candidates],
        holdout: Transcript | None,
        *,
        key: str,
        extra: dict[str, Any],
        rng: np.random.Generator,
    ) -> Measured:
        config = self.config
        answers = None if holdout is None else holdout.answers

        def losses_of(chunk: Candidates) -> dict[str, NDArray[np.float64]]:
            return candidate_losses(chunk, holdout=answers, target_probabilities=self.P_select)

        # ε is absolute: report the reference's loss and, for 0-1 losses, their step (1/rows).
        zero_one = config.criterion in ("transcript", "test-fidelity") or (
            config.criterion == "transcript-loss"
            and holdout is not None
            and holdout.answers.soft_targets() is None
        )
        rows = n_inputs(self.data.X_select) if config.is_split_criterion else len(holdout or ())
        return self.context.evaluate(
            chunks,
            losses_of=losses_of,
            epsilons=config.epsilons,
            criterion=config.criterion,
            key=key,
            describe=self.explorer.describe,
            extra={
                **self._labels(),
                **extra,
                "criterion_step": 1.0 / rows if zero_one and rows else float("nan"),
            },
            rng=rng,
        )

    def _labels(self) -> dict[str, Any]:
        config = self.config
        return {
            "seed": config.seed,
            "dataset": config.data_name,
            "target": self.family,
            "attack": config.attack,
            "attack_params": ",".join(f"{k}={v}" for k, v in config.attack_params.items())
            or "none",
            "output": config.output,
            "answer_mode": config.answer_mode,
            "defences": " > ".join(d.label() for d in config.defences)
            or ("not published by the service" if self.remote is not None else "none"),
            "detect": config.detect if self.remote is None else self.remote.detect,
            "target_service": "in-process" if self.remote is None else self.remote.url,
            # Each budget's attack is its own attacker in-process; a remote service's detector
            # sees one stream per key.
            "attacker_keys": "one for all budgets"
            if self.remote is not None and self.remote.shared_attacker
            else "one per budget",
            **self.honest,
            "surrogate": config.surrogate,
            "criterion": config.criterion,
            "positive_class": str(self.data.dataset.class_names[self.data.dataset.positive_class]),
        }

    # -- baselines ----------------------------------------------------------------------------

    def _explorer_floor(self) -> None:
        """The explorer, ε and criterion with no budget-limited stealing (see module doc)."""
        config, data = self.config, self.data
        size = n_inputs(data.X_pool)
        api: QueryAPI
        if self.remote is not None:
            api = self.remote.auditor(size)
        else:
            assert self.target is not None
            api = LocalQueryAPI(
                self.target, output="probabilities", budget=size, input_spec=data.input_spec
            )
        transcript = Transcript(data.X_pool, api.query(data.X_pool))
        _close(api)
        self.logs.append(api.log.to_frame().assign(api="baseline", budget=size))
        # As many held-out rows as the stolen set has at the largest budget: the floor's ε-filter
        # then has the same resolution as the set it is compared with in the summary.
        rng = np.random.default_rng([config.stage_seed("baselines"), 2])
        order = rng.permutation(len(transcript))
        # (Capped at the same share of the pool: attacks that do not query the pool may have
        # budgets larger than it.)
        n_hold = round(config.holdout_fraction * min(max(config.budgets), size))
        holdout = transcript.take(np.sort(order[:n_hold]))
        train_part = transcript.take(np.sort(order[n_hold:]))
        explorer_rng = np.random.default_rng([config.stage_seed("explorer"), 0])
        chunks: Iterator[Candidates] | None = None
        on = FLOOR_ON_TARGET
        explorer = self.explorer
        # An explorer that perturbs the model it is given runs on the target when it accepts it
        # (e.g. not hidden-layer dropout on a target without hidden layers).
        if (
            not getattr(explorer, "refits", False)
            and self.target is not None
            and explorer.accepts(self.target) is None
        ):
            chunks = explorer.explore_chunks(
                self._exploration(self.target, holdout, train_part, explorer_rng)
            )
        if chunks is None:
            on = FLOOR_ON_POOL
            reference = self.refit(train_part, self.config.stage_seed("surrogate"))
            check_accepts(explorer, reference)
            chunks = explorer.explore_chunks(
                self._exploration(reference, holdout, train_part, explorer_rng)
            )
        measured = self._measure(
            chunks,
            holdout,
            key="floor",
            extra={"budget": size, "holdout_size": len(holdout)},
            rng=np.random.default_rng([config.stage_seed("metrics"), 0]),
        )
        self._baseline(FLOOR, on, measured)

    def _target_retrain(self, rng: np.random.Generator) -> None:
        """The target's family retrained on target-train with other seeds: one set, no ε."""
        config, data = self.config, self.data
        own = config.stage_seed("target")
        seeds: list[int] = []
        while len(seeds) < config.baselines.target_members:
            seed = int(rng.integers(0, 2**31 - 1))
            if seed != own and seed not in seeds:
                seeds.append(seed)
        outputs = [self.context.P_target]
        probe_outputs = [self.context.P_probe] if self.context.P_probe is not None else None
        for seed in seeds:
            model = self._train_target(self.family, seed)
            outputs.append(np.asarray(model.predict_proba(data.X_eval), dtype=np.float64))
            if probe_outputs is not None and data.probe is not None:
                probe_outputs.append(model.predict_proba(data.probe.inputs))
        params = pd.DataFrame(
            {
                "member": range(len(seeds) + 1),
                "seed": [-1, *seeds],
                "reference": [True] + [False] * len(seeds),
            }
        )
        params["explorer"] = OWNER
        sets = {"evaluation": np.stack(outputs)}
        if probe_outputs is not None:
            sets[PROBE] = np.stack(probe_outputs)
        measured = self.context.evaluate(
            iter([Candidates(OWNER, params, sets)]),
            losses_of=None,
            epsilons=None,
            criterion=None,
            key="owner",
            describe=lambda: {"explorer": OWNER, "n_members": len(seeds)},
            extra={
                **self._labels(),
                "criterion": "none",
                "budget": n_inputs(data.X_target),
                "holdout_size": 0,
            },
            rng=np.random.default_rng([config.stage_seed("metrics"), 1]),
        )
        self._baseline(OWNER, "target", measured)

    def _baseline(self, name: str, on: str, measured: Measured) -> None:
        self.baselines += [
            {"baseline": name, "baseline_reference": on, **row} for row in measured.rows
        ]
        self.context.samples.update(measured.arrays)
        if not measured.convergence.empty:
            budget = measured.rows[0]["budget"] if measured.rows else 0
            self.convergence.append(measured.convergence.assign(budget=budget, set=name))

    def _result(self) -> AuditResult:
        def frame(parts: list[pd.DataFrame]) -> pd.DataFrame:
            return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()

        members = frame(self.members)
        if not members.empty:
            members.insert(0, "budget", members.pop("budget"))
            members.insert(0, "seed", self.config.seed)
        return AuditResult(
            config=self.config,
            results=pd.DataFrame(self.results),
            members=members,
            baselines=pd.DataFrame(self.baselines),
            samples=dict(self.context.samples),
            query_log=frame(self.logs).assign(seed=self.config.seed),
            convergence=_with_seed(frame(self.convergence), self.config.seed),
            timings=dict(self.timings),
            target=self.target,
            target_metadata=dict(self.metadata),
        )


def _close(api: QueryAPI) -> None:
    """Close an API that holds a connection (an HTTP client)."""
    close = getattr(api, "close", None)
    if callable(close):
        close()


def _scores(api: QueryAPI, X: Any, batch_size: int = 4096) -> NDArray[np.float64]:
    """The API's probabilities on ``X``, queried in batches."""
    scores = query_in_batches(api, X, batch_size=batch_size).answers.scores
    assert scores is not None  # the API answers probabilities
    return scores


def _with_seed(table: pd.DataFrame, seed: int) -> pd.DataFrame:
    if table.empty:
        return table
    out = table.copy()
    out.insert(0, "seed", seed)
    return out


def _has_module(model: object) -> bool:
    """Whether ``model`` is (or wraps) a torch network the dropout explorer can perturb."""
    try:
        return getattr(model, "module_", None) is not None
    except AttributeError:
        return False
