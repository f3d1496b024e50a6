"""The validated configuration of an audit run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from multisteal.attacks import ATTACKS, UNKNOWN_ATTACK
from multisteal.errors import ConfigError, InvalidInputError
from multisteal.models.zoo import MODELS, UNKNOWN_MODEL
from multisteal.query.ledger import BAD_BUDGET
from multisteal.rashomon.base import BAD_EPSILON
from multisteal.rashomon.dropout import DropoutExplorer

__all__ = [
    "STAGES",
    "AuditConfig",
    "BaselineConfig",
    "DropoutConfig",
    "RetrainConfig",
    "SplitConfig",
    "config_error_message",
    "load_config",
]

INVALID_CONFIG = "Invalid configuration:\n{details}"
NO_DATA = (
    "Give either a dataset name or a CSV file (with its label and sensitive columns), not both."
)
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

#: The stages of an audit that draw random numbers, each from its own seed stream.
STAGES: tuple[str, ...] = ("split", "target", "attack", "surrogate", "explorer", "baselines")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SplitConfig(_Strict):
    """Sizes of the target-train / attacker pool / evaluation parts (fractions or row counts)."""

    target_train: int | float = 0.4
    pool: int | float = 0.4
    evaluation: int | float = 0.2


class DropoutConfig(_Strict):
    """Parameters of the dropout explorer (see METRICS.md)."""

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

    n_members: int = Field(20, ge=1)
    bootstrap: bool = False


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
    label: str | None = None
    positive_label: str | None = None
    sensitive: list[str] | None = None
    categorical: list[str] | None = None
    numerical: list[str] | None = None
    encoding: str = "utf-8"
    max_categories: int | None = Field(50, ge=2)
    data_dir: Path | None = None
    split: SplitConfig = SplitConfig()

    target: str = "mlp"
    target_params: dict[str, Any] = Field(default_factory=dict)
    target_path: Path | None = None

    attack: str = "pool"
    budgets: list[int] = Field(default_factory=lambda: [250, 1000, 4000])
    output: Literal["probabilities", "top-k", "label", "rounded"] = "probabilities"
    top_k: int = Field(1, ge=1)
    decimals: int = Field(2, ge=0)
    holdout_fraction: float = 0.2

    surrogate: Literal["mlp", "logistic"] = "mlp"
    labels: Literal["auto", "hard", "soft"] = "auto"
    surrogate_params: dict[str, Any] = Field(default_factory=dict)

    explorer: Literal["dropout", "retrain"] = "dropout"
    dropout: DropoutConfig = DropoutConfig()
    retrain: RetrainConfig = RetrainConfig()
    epsilons: list[float] = Field(default_factory=lambda: [0.005, 0.01, 0.02])
    criterion: Literal["transcript", "transcript-loss", "test-fidelity", "test-loss"] = "transcript"
    selection_fraction: float = 0.5
    baselines: BaselineConfig = BaselineConfig()

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

    @field_validator("attack")
    @classmethod
    def _attack(cls, value: str) -> str:
        if value not in ATTACKS:
            raise ValueError(UNKNOWN_ATTACK.format(name=value, available=", ".join(ATTACKS)))
        return value

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
    def _csv_replaces_the_default_dataset(cls, data: Any) -> Any:
        # A configuration naming a CSV file and no dataset means the CSV, not the default Adult.
        if isinstance(data, dict) and data.get("csv") is not None and "dataset" not in data:
            return {**data, "dataset": None}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> AuditConfig:
        if self.csv is not None and self.dataset is not None:
            raise ValueError(NO_DATA)
        if self.data_dir is not None and not Path(self.data_dir).expanduser().is_dir():
            raise ValueError(NO_DATA_DIR.format(path=self.data_dir))
        if self.csv is None:
            given = {
                "label": self.label is not None,
                "sensitive": self.sensitive is not None,
                "categorical": self.categorical is not None,
                "numerical": self.numerical is not None,
                "encoding": self.encoding != "utf-8",
            }
            for option, present in given.items():
                if present:
                    raise ValueError(CSV_ONLY.format(option=option))
        _check_surrogate_params(self.surrogate_params)
        if self.csv is None and self.dataset is None:
            raise ValueError(NO_DATA)
        if self.csv is not None and (not self.label or not self.sensitive):
            raise ValueError(CSV_NEEDS_LABEL)
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
            self.explorer == "dropout"
            and self.dropout.semantics == "per-pass"
            and self.criterion.startswith("transcript")
        ):
            raise ValueError(PER_PASS_TRANSCRIPT.format(criterion=self.criterion))
        if (
            self.explorer == "dropout"
            and self.dropout.layers == "hidden"
            and (
                self.surrogate == "logistic"
                or not self.surrogate_params.get("hidden_layer_sizes", (1,))
            )
        ):
            raise ValueError(HIDDEN_LOGISTIC)
        if self.target_path is not None and len(self.seed_list) > 1:
            raise ValueError(LOADED_TARGET_SEEDS)
        return self

    @property
    def surrogate_has_hidden_layers(self) -> bool:
        """Whether the attacker's surrogate has hidden layers (the logistic one has none)."""
        if self.surrogate == "logistic":
            return False
        return bool(self.surrogate_params.get("hidden_layer_sizes", (1,)))

    @property
    def dropout_layers(self) -> Literal["all", "hidden"]:
        """The dropout layers after resolving ``auto``."""
        if self.dropout.layers != "auto":
            return self.dropout.layers
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
        return self.dataset if self.dataset is not None else Path(str(self.csv)).stem

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def config_error_message(error: ValidationError) -> str:
    """A readable message for a pydantic validation error: one line per problem."""
    lines = []
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"]) or "config"
        message = str(item["msg"]).removeprefix("Value error, ")
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


PATH_FIELDS = ("csv", "data_dir", "target_path")


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
