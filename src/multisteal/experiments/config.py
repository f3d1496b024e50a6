"""The validated configuration of an audit run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import numpy as np
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from multisteal.attacks import ATTACKS, UNKNOWN_ATTACK, AttackSpec
from multisteal.errors import ConfigError, InvalidInputError
from multisteal.models.zoo import MODELS, UNKNOWN_MODEL, models_for, resolve_model_name
from multisteal.query.api import effective_output_mode
from multisteal.query.defences import DEFENCES, UNKNOWN_DEFENCE, parse_defence
from multisteal.query.ledger import BAD_BUDGET
from multisteal.rashomon import EXPLORERS
from multisteal.rashomon.base import BAD_EPSILON
from multisteal.rashomon.dropout import DropoutExplorer
from multisteal.surrogates import SURROGATES, UNKNOWN_SURROGATE

__all__ = [
    "STAGES",
    "AuditConfig",
    "BaselineConfig",
    "DefenceConfig",
    "DropoutConfig",
    "RetrainConfig",
    "SplitConfig",
    "config_error_message",
    "load_config",
]

INVALID_CONFIG = "Invalid configuration:\n{details}"
NO_DATA = (
    "Give one source of data: a dataset name (--dataset), a CSV file of records (--csv), an "
    "image file (--images FILE.npz) or a text CSV (--text-csv); not several."
)
TEXT_CSV_NEEDS = "A text CSV needs --text-column (the texts) and --label (the label column)."
NOT_FOR_IMAGES = (
    "{option} does not apply to --images: the .npz file holds the labels (y) and the groups "
    "(groups)."
)
WRONG_MODALITY = (
    "{role} {name!r} takes {modalities} inputs, but {data} holds {modality} inputs. Choose one "
    "of: {available}."
)
NEEDS_TORCH = (
    "The {explorer} explorer perturbs a torch network, and the surrogate {name!r} is not one. "
    "Use --explorer retrain, or a torch surrogate for {modality} data: {available}."
)
WRONG_FAMILY = (
    "The {explorer} explorer explores {families} surrogates; the surrogate {name!r} is the "
    "{family} family. Explorers for it: {others}."
)
PROBE_TEXT_ONLY = (
    "The EEC probe scores sentences, so it applies to text models; these data are {modality}. "
    "Leave --probe at auto (or none)."
)
WRONG_SOURCE = "{option} applies to {where}, not to {source}."
SOURCE_NAMES = {
    "dataset": "a bundled dataset",
    "csv": "a CSV of records (--csv)",
    "images": "an image file (--images)",
    "text_csv": "a text CSV (--text-csv)",
}
OPTION_SOURCES = {
    "label": "a CSV file (--csv or --text-csv)",
    "sensitive": "a CSV file (--csv or --text-csv)",
    "encoding": "a CSV file (--csv or --text-csv)",
    "categorical": "a CSV of records (--csv)",
    "numerical": "a CSV of records (--csv)",
    "text_column": "a text CSV (--text-csv)",
}
CSV_NEEDS_LABEL = (
    "A CSV file needs --label (the label column) and --sensitive (one or more sensitive columns)."
)
BAD_HOLDOUT = "holdout_fraction must be in (0, 1) for the 'transcript' criterion, got {value}."
NO_BUDGETS = "At least one budget is needed."
EMPTY_HOLDOUT_BUDGET = (
    "Budget {budget} with a held-out share of {fraction:g} keeps no held-out row, which the "
    "{criterion!r} criterion needs: use larger budgets, a larger --holdout, or a test-* criterion."
)
NO_EPSILONS = "At least one epsilon is needed."
NO_SEEDS = "At least one seed is needed."
DUPLICATE_SEEDS = "seeds must be distinct, got {seeds}."
UNKNOWN_STAGE = "Unknown seed stage {name!r}. Stages: {available}."
PER_PASS_TRANSCRIPT = (
    "Per-pass dropout cannot be filtered with the {criterion!r} criterion: every pass draws fresh "
    "noise, so a pass's loss on the held-out transcript says nothing about the same pass on the "
    "evaluation rows. Use --dropout-semantics per-member, or a test-* criterion."
)
LOADED_TARGET_SEEDS = (
    "A saved target (--load-target) was trained on one seed's split; with several seeds its "
    "training rows would overlap other seeds' evaluation rows. Run one seed at a time."
)
BAD_SELECTION = "selection_fraction must be in (0, 1), got {value}."
NEGATIVE_SEED = "Seeds must be whole numbers >= 0, got {seed}."
NO_DATA_DIR = "data_dir {path} is not an existing folder."
CSV_ONLY = "{option} applies to a CSV file (--csv), not to a bundled dataset."
HIDDEN_LOGISTIC = (
    "Dropout on hidden layers needs a surrogate with hidden layers; the logistic surrogate has "
    "only its output layer. Use --dropout-layers all, --surrogate mlp or the retrain explorer."
)

RETRAIN_WITHOUT_NAME = (
    "A retrain: section is given but no explorer is named, so the default (dropout) would run "
    "and ignore it. Write explorer: {name: retrain, ...} (or explorer: retrain)."
)
LEGACY_AND_UNION = (
    "Give the explorer's parameters inside explorer: {name: ..., ...}, not in a separate "
    "dropout: or retrain: section as well."
)

#: The stages of an audit that draw random numbers, each from its own seed stream.
DETECT_PARAMS_WITHOUT_DETECTOR = (
    "detect_params are given but no detector is (detect: none); set detect: prada."
)
STAGES: tuple[str, ...] = (
    "split",
    "target",
    "attack",
    "surrogate",
    "explorer",
    "baselines",
    "defence",
    "metrics",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


DEFAULT_BUDGETS = (250, 1000, 4000)
#: The sizes when none are given: of all rows, or (official split) of the official parts.
DEFAULT_SPLIT = (0.4, 0.4, 0.2)
DEFAULT_OFFICIAL_SPLIT = (0.5, 0.5, 1.0)


class SplitConfig(_Strict):
    """Sizes of the target-train / attacker pool / evaluation parts (fractions or row counts).

    Without an official split (``official`` false, or the data have none) the sizes are of all
    rows (default 0.4 / 0.4 / 0.2). With the dataset's official split (``official`` unset and
    the data have one — MedMNIST, SST-2 — or true), target-train and pool are drawn from the
    official train part (default 0.5 / 0.5 of it, stratified and seeded), the evaluation rows
    from the official test part (default all of it) and the official val part selects the
    target's epochs.
    """

    target_train: int | float | None = None
    pool: int | float | None = None
    evaluation: int | float | None = None
    official: bool | None = None

    def sizes(self, official: bool) -> tuple[int | float, int | float, int | float]:
        """The three sizes, the unset ones from the defaults of the split's kind."""
        defaults = DEFAULT_OFFICIAL_SPLIT if official else DEFAULT_SPLIT
        given = (self.target_train, self.pool, self.evaluation)
        t, p, e = (d if v is None else v for v, d in zip(given, defaults, strict=True))
        return t, p, e


class DropoutConfig(_Strict):
    """Parameters of the dropout explorer (see METRICS.md)."""

    name: Literal["dropout"] = "dropout"
    kind: Literal["bernoulli", "gaussian"] = "bernoulli"
    semantics: Literal["per-member", "per-pass"] = "per-member"
    # "auto": "hidden" when the surrogate has hidden layers, else "all" (the measurements behind
    # this default are in docs/exploration-defaults.md).
    layers: Literal["auto", "all", "hidden"] = "auto"
    p_max: float | None = None
    n_rates: int = Field(21, ge=1)
    rates: list[float] | None = None  # an explicit grid; overrides p_max and n_rates

    @model_validator(mode="after")
    def _valid_grid(self) -> DropoutConfig:
        try:
            DropoutExplorer(
                kind=self.kind,
                semantics=self.semantics,
                layers="all" if self.layers == "auto" else self.layers,
                rates=self.rates,
                p_max=self.p_max,
                n_rates=self.n_rates,
                members_per_rate=self.members_per_rate,
            )
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        return self

    members_per_rate: int = Field(10, ge=1)


class RetrainConfig(_Strict):
    """Parameters of the retrain explorer."""

    name: Literal["retrain"] = "retrain"
    n_members: int = Field(20, ge=1)
    bootstrap: bool = False


class AWPConfig(_Strict):
    """Parameters of the adversarial-weight-perturbation explorer (Hsu & Calmon 2022)."""

    name: Literal["awp"] = "awp"
    steps: int = Field(10, ge=0)
    step_size: float = Field(0.02, ge=0)
    prob_target: float = Field(0.999, gt=0, le=1)
    max_samples: int | None = Field(None, ge=1)
    batch: int = Field(256, ge=1)


class EnsembleConfig(_Strict):
    """Parameters of the ensemble explorer (gradient boosting, random forests)."""

    name: Literal["ensemble"] = "ensemble"
    n_members: int = Field(20, ge=1)
    row_fraction: float = Field(0.8, gt=0, le=1)
    # A fraction of the reference's own feature share (1.0: the reference's setting).
    max_features: float = Field(0.8, gt=0, le=1)
    bootstrap: bool = False


class LogisticLevelSetConfig(_Strict):
    """Parameters of the logistic level-set explorer (Laplace draws inside the ε level set)."""

    name: Literal["logistic-level-set"] = "logistic-level-set"
    scales: list[float] | None = None  # each >= 0; None: the adaptive search
    n_scales: int = Field(5, ge=1)
    members_per_scale: int = Field(10, ge=1)
    max_tries: int = Field(10, ge=1)
    min_acceptance: float = Field(0.2, gt=0, le=1)
    pilot_draws: int = Field(16, ge=1)
    max_full_dim: int = Field(1024, ge=1)
    damping: float = Field(1e-8, ge=0)

    @field_validator("scales")
    @classmethod
    def _scales(cls, value: list[float] | None) -> list[float] | None:
        if value is not None and (not value or any(not v >= 0 for v in value)):
            raise ValueError("scales must be a non-empty list of numbers >= 0")
        return value


class TreeFarmsConfig(_Strict):
    """Parameters of the TreeFARMS explorer (optional extra ``treefarms``)."""

    name: Literal["treefarms"] = "treefarms"
    regularization: float = Field(0.01, gt=0, le=1)
    # A lone leaf has depth 1, so 3 allows two levels of splits; 4 (three levels) takes 30-45 s
    # per exploration on Adult or German credit, 3 about 1 s.
    depth_budget: int = Field(3, ge=1)
    rashomon_multiplier: float = Field(0.05, gt=0)
    max_members: int = Field(200, ge=1)
    n_thresholds: int = Field(4, ge=1)
    probabilities: Literal["leaf", "onehot"] = "leaf"


ExplorerConfig = Annotated[
    DropoutConfig
    | AWPConfig
    | RetrainConfig
    | EnsembleConfig
    | LogisticLevelSetConfig
    | TreeFarmsConfig,
    Field(discriminator="name"),
]
"""An explorer's configuration; ``name`` says which (see ``multisteal explorers``)."""

EXPLORER_CONFIGS: dict[str, type[_Strict]] = {
    str(model.model_fields["name"].default): model
    for model in (
        DropoutConfig,
        AWPConfig,
        RetrainConfig,
        EnsembleConfig,
        LogisticLevelSetConfig,
        TreeFarmsConfig,
    )
}
"""Each explorer's parameters (pydantic model), by explorer name."""


def explorer_parameters(name: str) -> dict[str, str]:
    """``{parameter: "type, default value"}`` of an explorer's configuration."""
    out: dict[str, str] = {}
    for key, field in EXPLORER_CONFIGS[name].model_fields.items():
        if key == "name":
            continue
        annotation = field.annotation
        if get_origin(annotation) is Literal:
            kind = "one of " + ", ".join(str(v) for v in get_args(annotation))
        else:
            kind = getattr(annotation, "__name__", None) or str(annotation)
        out[key] = f"{kind.replace('typing.', '')}, default {field.default!r}"
    return out


class DefenceConfig(_Strict):
    """One answer-side defence: its registry name and parameters (``query.defences``)."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, data: Any) -> Any:
        if isinstance(data, str):
            try:
                name, params = parse_defence(data)
            except InvalidInputError as exc:
                raise ValueError(str(exc)) from None
            return {"name": name, "params": params}
        return data

    @field_validator("name")
    @classmethod
    def _known(cls, value: str) -> str:
        if value not in DEFENCES:
            raise ValueError(UNKNOWN_DEFENCE.format(name=value, available=", ".join(DEFENCES)))
        return value

    @field_validator("params")
    @classmethod
    def _params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = str(info.data.get("name"))
        if name not in DEFENCES:
            return value
        try:
            return DEFENCES[name].convert(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    def label(self) -> str:
        """``name`` or ``name:param=value,...`` (the CLI form)."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={v}" for k, v in self.params.items())


class BaselineConfig(_Strict):
    """The two baselines every audit carries (METRICS.md, "Seeds and baselines").

    ``explorer_floor``: the same explorer, ε and criterion applied with no budget-limited
    stealing (to the target itself where the explorer can run on its family, else to a
    surrogate trained on the whole pool with full probabilities). ``target_members``: copies
    of the target's family retrained on target-train with other seeds (0 turns it off).
    """

    explorer_floor: bool = True
    target_members: int = Field(5, ge=0)


class AuditConfig(_Strict):
    """Everything one audit needs; ``config.yaml`` of a run is this object, resolved."""

    dataset: str | None = "adult"
    csv: Path | None = None
    images: Path | None = None
    text_csv: Path | None = None
    text_column: str | None = None
    label: str | None = None
    positive_label: str | None = None
    sensitive: list[str] | None = None
    categorical: list[str] | None = None
    numerical: list[str] | None = None
    encoding: str = "utf-8"
    max_categories: int | None = Field(50, ge=2)
    data_dir: Path | None = None
    split: SplitConfig = SplitConfig()

    pool_dataset: str | None = None
    probe: Literal["auto", "eec", "none"] = "auto"

    # Unset: the modality's default (tabular mlp/mlp, image cnn/cnn, text tfidf-logistic/
    # minilm-mlp); resolved when the configuration is built, so config.yaml records it.
    target: str = "mlp"
    target_params: dict[str, Any] = Field(default_factory=dict)
    target_path: Path | None = None
    # A remote target: a multisteal prediction service (`multisteal serve`) reached over HTTP.
    # The keys are read from these environment variables and never written anywhere.
    target_url: str | None = None
    api_key_env: str | None = None
    auditor_key_env: str | None = None

    attack: str = "pool"
    attack_params: dict[str, Any] = Field(default_factory=dict)
    # The largest batch an attack sends in one request (a detector refusing the stream refuses
    # the whole batch that made it flag).
    query_batch_size: int = Field(256, ge=1)
    budgets: list[int] = Field(default_factory=lambda: list(DEFAULT_BUDGETS))
    output: Literal["probabilities", "top-k", "label", "rounded", "leaf"] = "probabilities"
    top_k: int = Field(1, ge=1)
    decimals: int = Field(2, ge=0)
    # Answer-side defences in the order the service applies them (before the output policy);
    # "name" or "name:param=value,..." strings, or {name, params} mappings.
    defences: list[DefenceConfig] = Field(default_factory=list)
    detect: Literal["none", "prada"] = "none"
    detect_params: dict[str, Any] = Field(default_factory=dict)
    detect_refuse: bool = False
    holdout_fraction: float = 0.2

    surrogate: str = "mlp"
    labels: Literal["auto", "hard", "soft"] = "auto"
    surrogate_params: dict[str, Any] = Field(default_factory=dict)

    # One explorer and its parameters, told apart by "name" (a discriminated union). The older
    # form — explorer: dropout, with dropout: {...} / retrain: {...} beside it — is accepted.
    explorer: ExplorerConfig = Field(default_factory=DropoutConfig)
    epsilons: list[float] = Field(default_factory=lambda: [0.005, 0.01, 0.02])
    criterion: Literal["transcript", "transcript-loss", "test-fidelity", "test-loss"] = "transcript"
    selection_fraction: float = 0.5
    baselines: BaselineConfig = BaselineConfig()
    # Rashomon Capacity: "exact" (the converged capacity; for two classes from the two extreme
    # members) or "reference" (the published code's stop rule: 1,000 Blahut–Arimoto steps).
    capacity: Literal["exact", "reference"] = "exact"
    # Random member orders behind each metric's convergence curve (0 turns the curves off).
    convergence_orders: int = Field(20, ge=0)
    # Memory bound of one chunk of candidate outputs handed from the explorer to the metrics.
    chunk_mb: float = Field(256.0, gt=0)

    fairness_method: Literal["vectorised", "fairlearn"] = "vectorised"
    min_group_size: int = Field(20, ge=0)
    fairness_bootstrap: int = Field(1000, ge=0)
    seed: int = Field(0, ge=0)
    seeds: list[int] | None = None
    stage_seeds: dict[str, int] = Field(default_factory=dict)
    workers: int = Field(1, ge=1)
    threads: int = Field(2, ge=1)

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        if value not in MODELS:
            raise ValueError(UNKNOWN_MODEL.format(name=value, available=", ".join(MODELS)))
        return value

    @field_validator("surrogate")
    @classmethod
    def _surrogate(cls, value: str) -> str:
        if value not in SURROGATES:
            raise ValueError(UNKNOWN_SURROGATE.format(name=value, available=", ".join(SURROGATES)))
        return value

    @field_validator("attack")
    @classmethod
    def _attack(cls, value: str) -> str:
        if value not in ATTACKS:
            raise ValueError(UNKNOWN_ATTACK.format(name=value, available=", ".join(ATTACKS)))
        return value

    @field_validator("attack_params")
    @classmethod
    def _attack_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        attack = str(info.data.get("attack"))
        if attack not in ATTACKS:
            return value  # the attack's own error is reported
        try:
            return ATTACKS[attack].convert(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("detect_params")
    @classmethod
    def _detect_params(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        detect = str(info.data.get("detect"))
        if detect in ("None", "none"):
            if value:
                raise ValueError(DETECT_PARAMS_WITHOUT_DETECTOR)
            return value
        from multisteal.query.detection import DETECTORS

        try:
            converted: dict[str, Any] = DETECTORS[detect].convert(value)
            return converted
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("budgets")
    @classmethod
    def _budgets(cls, value: list[int]) -> list[int]:
        if not value:
            raise ValueError(NO_BUDGETS)
        for budget in value:
            if budget <= 0:
                raise ValueError(BAD_BUDGET.format(budget=budget))
        return sorted(set(value))

    @field_validator("epsilons")
    @classmethod
    def _epsilons(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError(NO_EPSILONS)
        for eps in value:
            if not eps >= 0 or eps == float("inf"):
                raise ValueError(BAD_EPSILON.format(epsilon=eps))
        return sorted(set(value))

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        if not value:
            raise ValueError(NO_SEEDS)
        if len(set(value)) < len(value):
            raise ValueError(DUPLICATE_SEEDS.format(seeds=value))
        if min(value) < 0:
            raise ValueError(NEGATIVE_SEED.format(seed=min(value)))
        return list(value)

    @field_validator("stage_seeds")
    @classmethod
    def _stage_seeds(cls, value: dict[str, int]) -> dict[str, int]:
        for name, seed in value.items():
            if name not in STAGES:
                raise ValueError(UNKNOWN_STAGE.format(name=name, available=", ".join(STAGES)))
            if seed < 0:
                raise ValueError(NEGATIVE_SEED.format(seed=seed))
        return value

    @model_validator(mode="before")
    @classmethod
    def _explorer_union(cls, data: Any) -> Any:
        # The older form names the explorer and gives each explorer's parameters beside it.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        legacy = {k: out.pop(k) for k in EXPLORERS if k in out}
        explorer = out.get("explorer")
        if explorer is None and "retrain" in legacy:
            # without a name the explorer is dropout, and a retrain section would be ignored
            raise ValueError(RETRAIN_WITHOUT_NAME)
        if isinstance(explorer, str) or (explorer is None and legacy):
            name = explorer or "dropout"
            params = legacy.get(name) or {}
            out["explorer"] = {**(params if isinstance(params, dict) else {}), "name": name}
        elif legacy:
            raise ValueError(LEGACY_AND_UNION)
        return out

    @model_validator(mode="before")
    @classmethod
    def _modality_defaults(cls, data: Any) -> Any:
        # A configuration naming a file and no dataset means the file, not the default Adult;
        # unset target and surrogate are the modality's defaults.
        if not isinstance(data, dict):
            return data
        out = dict(data)
        if any(out.get(k) is not None for k in FILE_SOURCES) and "dataset" not in out:
            out["dataset"] = None
        modality = _modality_of(out)
        split = out.get("split")
        given = split if isinstance(split, dict) else {}
        sizes = _dataset_split(out)
        official = given.get("official") is not False
        if sizes is not None and official and all(given.get(k) is None for k in SIZE_KEYS):
            out["split"] = {**given, **dict(zip(SIZE_KEYS, sizes, strict=True))}
        budgets = _dataset_budgets(out)
        if out.get("budgets") is None:
            out["budgets"] = list(budgets if budgets is not None else DEFAULT_BUDGETS)
        defaults = MODALITY_DEFAULTS.get(modality, {})
        for key, value in defaults.items():
            if out.get(key) is None:
                out[key] = value
        return out

    @model_validator(mode="after")
    def _consistent(self) -> AuditConfig:
        sources = [self.dataset, self.csv, self.images, self.text_csv]
        if sum(s is not None for s in sources) != 1:
            raise ValueError(NO_DATA)
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise ValueError(NO_DATA_DIR.format(path=self.data_dir))
        given = {
            "label": self.label is not None,
            "sensitive": self.sensitive is not None,
            "categorical": self.categorical is not None,
            "numerical": self.numerical is not None,
            "encoding": self.encoding != "utf-8",
            "text_column": self.text_column is not None,
        }
        allowed = {
            "csv": {"label", "sensitive", "categorical", "numerical", "encoding"},
            "text_csv": {"label", "sensitive", "encoding", "text_column"},
        }
        source = next(k for k in (*FILE_SOURCES, "dataset") if getattr(self, k) is not None)
        for option, present in given.items():
            if present and option not in allowed.get(source, set()):
                if source == "images":
                    raise ValueError(NOT_FOR_IMAGES.format(option=option))
                if source == "dataset" and option != "text_column":
                    raise ValueError(CSV_ONLY.format(option=option))
                raise ValueError(
                    WRONG_SOURCE.format(
                        option=option, where=OPTION_SOURCES[option], source=SOURCE_NAMES[source]
                    )
                )
        if self.csv is not None and (not self.label or not self.sensitive):
            raise ValueError(CSV_NEEDS_LABEL)
        if self.text_csv is not None and (not self.label or not self.text_column):
            raise ValueError(TEXT_CSV_NEEDS)
        modality = self.modality
        for role, name, surrogate in (
            ("Target", self.target, False),
            ("Surrogate", self.surrogate, True),
        ):
            family = MODELS[resolve_model_name(name, surrogate=surrogate)]
            if modality not in family.modalities:
                raise ValueError(
                    WRONG_MODALITY.format(
                        role=role,
                        name=name,
                        modalities="/".join(family.modalities),
                        data=self.data_name,
                        modality=modality,
                        available=", ".join(models_for(modality)),
                    )
                )
        spec = EXPLORERS[self.explorer.name]
        if spec.needs_torch and not self.surrogate_family.torch:
            torch_ones = [n for n in models_for(modality) if MODELS[n].torch]
            raise ValueError(
                NEEDS_TORCH.format(
                    explorer=spec.name,
                    name=self.surrogate,
                    modality=modality,
                    available=", ".join(torch_ones),
                )
            )
        if not spec.accepts_family(self.surrogate_family.name):
            assert spec.families is not None
            fitting = [
                e for e, x in EXPLORERS.items() if x.accepts_family(self.surrogate_family.name)
            ]
            raise ValueError(
                WRONG_FAMILY.format(
                    explorer=spec.name,
                    families=", ".join(spec.families),
                    name=self.surrogate,
                    family=self.surrogate_family.name,
                    others=", ".join(fitting),
                )
            )
        if self.probe == "eec" and modality != "text":
            raise ValueError(PROBE_TEXT_ONLY.format(modality=modality))
        try:
            self.attack_spec.check_modality(modality)
            self.attack_spec.check_config(
                self.answer_mode, surrogate_torch=bool(self.surrogate_family.torch)
            )
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        if self.surrogate_family.name in ("mlp", "torch-logistic", "minilm-mlp"):
            _check_surrogate_params(self.surrogate_params)
        if self.criterion.startswith("transcript") and not 0 < self.holdout_fraction < 1:
            raise ValueError(BAD_HOLDOUT.format(value=self.holdout_fraction))
        if self.criterion.startswith("transcript"):
            smallest = min(self.budgets)
            if round(self.holdout_fraction * smallest) < 1:
                raise ValueError(
                    EMPTY_HOLDOUT_BUDGET.format(
                        budget=smallest, fraction=self.holdout_fraction, criterion=self.criterion
                    )
                )
        if not 0 < self.selection_fraction < 1:
            raise ValueError(BAD_SELECTION.format(value=self.selection_fraction))
        if (
            isinstance(self.explorer, DropoutConfig)
            and self.explorer.semantics == "per-pass"
            and self.criterion.startswith("transcript")
        ):
            raise ValueError(PER_PASS_TRANSCRIPT.format(criterion=self.criterion))
        if (
            isinstance(self.explorer, DropoutConfig)
            and self.explorer.layers == "hidden"
            and self.surrogate_family.name in ("torch-logistic", "mlp", "minilm-mlp")
            and not self.surrogate_has_hidden_layers
        ):
            raise ValueError(HIDDEN_LOGISTIC)
        if self.target_path is not None and len(self.seed_list) > 1:
            raise ValueError(LOADED_TARGET_SEEDS)
        self._check_remote()
        return self

    def _check_remote(self) -> None:
        envs = {"api_key_env": self.api_key_env, "auditor_key_env": self.auditor_key_env}
        if self.target_url is None:
            given = [name for name, value in envs.items() if value is not None]
            if given:
                raise ValueError(KEYS_WITHOUT_URL.format(fields=", ".join(given)))
            return
        if not self.target_url.startswith(("http://", "https://")):
            raise ValueError(BAD_TARGET_URL.format(url=self.target_url))
        missing = [name for name, value in envs.items() if not value]
        if missing:
            raise ValueError(REMOTE_KEYS_MISSING.format(fields=", ".join(missing)))
        for name, value in envs.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(value)):
                # (not echoed: it may be the key itself, given instead of the variable's name)
                raise ValueError(BAD_KEY_ENV.format(field=name, option=name.replace("_", "-")))
        if self.api_key_env == self.auditor_key_env:
            raise ValueError(SAME_KEY_ENV.format(env=self.api_key_env))
        if self.target_path is not None:
            raise ValueError(URL_AND_PATH)
        if len(self.seed_list) > 1:
            raise ValueError(REMOTE_TARGET_SEEDS)
        if self.defences or self.detect != "none":
            raise ValueError(REMOTE_DEFENCES)

    @property
    def data_source(self) -> str:
        """Where the data come from: ``dataset`` (bundled), ``csv``, ``images`` or
        ``text_csv``."""
        return next((k for k in FILE_SOURCES if getattr(self, k) is not None), "dataset")

    @property
    def modality(self) -> str:
        """The input modality of the data: ``tabular``, ``image`` or ``text``."""
        return _modality_of(self.model_dump())

    @property
    def attack_spec(self) -> AttackSpec:
        """The registry entry (:class:`~multisteal.attacks.AttackSpec`) of the attack."""
        return ATTACKS[self.attack]

    @property
    def defence_chain(self) -> list[tuple[str, dict[str, Any]]]:
        """The defences as ``(name, params)`` in the order the service applies them."""
        return [(d.name, dict(d.params)) for d in self.defences]

    @property
    def answer_mode(self) -> str:
        """What the attacker's answers reveal after the defences and the output policy."""
        return effective_output_mode(
            self.output, [DEFENCES[d.name].mode_after for d in self.defences]
        )

    @property
    def surrogate_family(self) -> Any:
        """The zoo entry (:class:`~multisteal.models.ModelSpec`) of the surrogate."""
        return MODELS[resolve_model_name(self.surrogate, surrogate=True)]

    @property
    def surrogate_has_hidden_layers(self) -> bool:
        """Whether the attacker's surrogate has hidden layers (the logistic one has none)."""
        if self.surrogate_family.name == "torch-logistic":
            return False
        return bool(self.surrogate_params.get("hidden_layer_sizes", (1,)))

    @property
    def split_sizes(self) -> tuple[int | float, int | float, int | float]:
        """The split sizes of all rows (no official split)."""
        return self.split.sizes(False)

    def probe_enabled(self, modality: str) -> bool:
        """Whether the EEC bias probe is scored (``auto``: for text data)."""
        return self.probe == "eec" or (self.probe == "auto" and modality == "text")

    def data_file_sha256(self) -> str | None:
        """The SHA-256 of the data file (a CSV, image or text file; ``None`` for a bundled
        dataset, whose files are checked against the registry)."""
        import hashlib

        path = next((getattr(self, k) for k in FILE_SOURCES if getattr(self, k) is not None), None)
        if path is None:
            return None
        digest = hashlib.sha256()
        with Path(path).open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def explorer_params(self) -> dict[str, Any]:
        """The keyword parameters of the configured explorer (see ``EXPLORERS``)."""
        params = self.explorer.model_dump(exclude={"name"})
        if isinstance(self.explorer, DropoutConfig):
            params["layers"] = self.dropout_layers
        if isinstance(self.explorer, LogisticLevelSetConfig):
            params["labels"] = self.labels  # the targets the surrogate was trained on
        return params

    def encoder_params(self) -> dict[str, Any]:
        """Parameters of the encoders of target and surrogate pipelines."""
        return {"max_categories": self.max_categories}

    @property
    def dropout_layers(self) -> Literal["all", "hidden"]:
        """The dropout layers after resolving ``auto`` (``all`` for another explorer)."""
        if not isinstance(self.explorer, DropoutConfig):
            return "all"
        if self.explorer.layers != "auto":
            return self.explorer.layers
        return "hidden" if self.surrogate_has_hidden_layers else "all"

    @property
    def seed_list(self) -> list[int]:
        """The seeds the audit runs, one full audit each (``seeds``, else ``[seed]``)."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    def for_seed(self, seed: int) -> AuditConfig:
        """This configuration for one of its seeds (a single-seed audit)."""
        return self.model_copy(update={"seed": seed, "seeds": None})

    def stage_seed(self, stage: str) -> int:
        """The seed of one stage: its override in ``stage_seeds``, else drawn from ``seed``.

        Every stage draws from its own child of ``SeedSequence(seed)``, so changing one stage's
        seed reproduces every other stage exactly.
        """
        if stage not in STAGES:
            raise ConfigError(UNKNOWN_STAGE.format(name=stage, available=", ".join(STAGES)))
        if stage in self.stage_seeds:
            return int(self.stage_seeds[stage])
        child = np.random.SeedSequence(self.seed).spawn(len(STAGES))[STAGES.index(stage)]
        return int(child.generate_state(1)[0])

    @property
    def is_split_criterion(self) -> bool:
        """Whether the criterion selects on evaluation rows (``test-*``): then a selection part
        of the evaluation rows is set aside, and metrics are measured on the rest."""
        return self.criterion.startswith("test-")

    @property
    def data_name(self) -> str:
        if self.dataset is not None:
            return self.dataset
        path = next(getattr(self, k) for k in FILE_SOURCES if getattr(self, k) is not None)
        return Path(str(path)).stem

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


UNKNOWN_EXPLORER = "Unknown explorer {name!r}. Available explorers: {available}."
KEYS_WITHOUT_URL = "{fields} name API keys of a remote target: give --target-url (target_url) too."
BAD_TARGET_URL = "target_url must be an http:// or https:// URL, got {url!r}."
REMOTE_KEYS_MISSING = (
    "A remote target (target_url) needs two API keys, each in an environment variable: set "
    "{fields} (--api-key-env for the attacker's key, --auditor-key-env for the auditor's)."
)
SAME_KEY_ENV = (
    "--api-key-env and --auditor-key-env (api_key_env, auditor_key_env) are both {env!r}: the "
    "attacker and the auditor need two keys, each with its own budget."
)
BAD_KEY_ENV = (
    "--{option} ({field}) takes the NAME of an environment variable that holds the key (letters, "
    "digits and underscores, e.g. ATTACKER_KEY), not the key itself."
)
URL_AND_PATH = "Give either target_url (a live service) or target_path (a saved target), not both."
REMOTE_TARGET_SEEDS = (
    "A remote target is one trained model: audit it with one seed (the --seed it was trained "
    "with, as its /v1/info says), not several."
)
REMOTE_DEFENCES = (
    "A remote target applies its own defences and detector (multisteal serve --defence ... "
    "--detect ...): leave defences and detect unset here."
)


def config_error_message(error: ValidationError) -> str:
    """A readable message for a pydantic validation error: one line per problem.

    A problem inside the explorer's parameters is located by the explorer's name
    (``dropout.n_rates``), as the older form of the configuration wrote it.
    """
    lines = []
    for item in error.errors():
        loc = [str(p) for p in item["loc"]]
        if len(loc) >= 2 and loc[0] == "explorer" and loc[1] in EXPLORERS:
            loc = loc[1:]
        where = ".".join(loc) or "config"
        message = str(item["msg"]).removeprefix("Value error, ")
        raw_loc = [str(p) for p in item["loc"]]
        if (
            item["type"] == "extra_forbidden"
            and len(raw_loc) == 3
            and raw_loc[0] == "explorer"
            and raw_loc[1] in EXPLORER_CONFIGS
        ):
            known = ", ".join(explorer_parameters(raw_loc[1]))
            message = f"not a parameter of the {raw_loc[1]} explorer; its parameters: {known}"
        if item["type"] == "union_tag_invalid":
            tag = (item.get("ctx") or {}).get("tag")
            message = UNKNOWN_EXPLORER.format(name=tag, available=", ".join(EXPLORERS))
        lines.append(f"- {where}: {message}")
    return INVALID_CONFIG.format(details="\n".join(lines))


BAD_SURROGATE_PARAMS = "surrogate_params: {error}"


def _check_surrogate_params(surrogate: dict[str, Any]) -> None:
    """Unknown model parameters are refused now, not after the target has been trained."""
    from multisteal.models.mlp import TorchMLPClassifier

    try:
        TorchMLPClassifier(**surrogate)
    except TypeError as exc:
        raise ValueError(BAD_SURROGATE_PARAMS.format(error=exc)) from None


PATH_FIELDS = ("csv", "images", "text_csv", "data_dir", "target_path")
FILE_SOURCES: tuple[str, ...] = ("csv", "images", "text_csv")
MODALITY_DEFAULTS: dict[str, dict[str, str]] = {
    "tabular": {"target": "mlp", "surrogate": "mlp"},
    "image": {"target": "cnn", "surrogate": "cnn"},
    "text": {"target": "tfidf-logistic", "surrogate": "minilm-mlp"},
}


SIZE_KEYS = ("target_train", "pool", "evaluation")


def _registry_entry(data: dict[str, Any]) -> Any:
    from multisteal.data.registry import DATASETS

    name = data.get("dataset", "adult")
    if any(data.get(k) is not None for k in FILE_SOURCES) or name is None:
        return None
    return DATASETS.get(str(name))


def _dataset_split(data: dict[str, Any]) -> tuple[int | float, ...] | None:
    """A bundled dataset's own default split sizes (e.g. SST-2's), if it has any."""
    spec = _registry_entry(data)
    return None if spec is None else spec.default_split


def _dataset_budgets(data: dict[str, Any]) -> tuple[int, ...] | None:
    """A bundled dataset's own default budgets (e.g. BreastMNIST's small pool), if any."""
    spec = _registry_entry(data)
    return None if spec is None else spec.default_budgets


def _modality_of(data: dict[str, Any]) -> str:
    """The modality a configuration mapping's data source has."""
    if data.get("images") is not None:
        return "image"
    if data.get("text_csv") is not None:
        return "text"
    if data.get("csv") is not None:
        return "tabular"
    from multisteal.data.registry import DATASETS

    name = data.get("dataset", "adult")
    spec = DATASETS.get(str(name)) if name is not None else None
    return str(getattr(spec, "modality", "tabular"))


def _absolute_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The mapping with relative ``csv``/``data_dir``/``target_path`` resolved against ``base``,
    so a written ``config.yaml`` works from any directory."""
    out = dict(data)
    for name in PATH_FIELDS:
        value = out.get(name)
        if isinstance(value, (str, Path)) and str(value):
            path = Path(value).expanduser()
            out[name] = str(path if path.is_absolute() else (base / path).resolve())
    return out


def load_config(source: dict[str, Any] | str | Path) -> AuditConfig:
    """Build an :class:`AuditConfig` from a mapping or a YAML file; raises ConfigError.

    Relative paths (``csv``, ``data_dir``, ``target_path``) are resolved against the YAML
    file's folder, or the working directory for a mapping, and kept absolute.
    """
    base = Path.cwd()
    if isinstance(source, (str, Path)):
        path = Path(source)
        base = path.resolve().parent
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"Cannot read configuration {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(
                f"Configuration {path} must be a YAML mapping, got {type(data).__name__}."
            )
        source = data
    try:
        return AuditConfig.model_validate(_absolute_paths(source, base))
    except ValidationError as exc:
        raise ConfigError(config_error_message(exc)) from exc
