"""Rashomon-set exploration around a stolen surrogate, and the ε-filter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from multisteal.rashomon.base import (
    CRITERIA,
    SELECTION,
    Candidates,
    Criterion,
    EmptyRashomonSetWarning,
    ExplorationContext,
    Explorer,
    RashomonSet,
    candidate_losses,
    check_epsilon,
    distinct_candidates,
    rashomon_set,
)
from multisteal.rashomon.dropout import (
    DEFAULT_P_MAX,
    DropoutExplorer,
    default_rates,
    perturbed_modules,
)
from multisteal.rashomon.retrain import RetrainExplorer

__all__ = [
    "CRITERIA",
    "DEFAULT_P_MAX",
    "EXPLORERS",
    "SELECTION",
    "Candidates",
    "Criterion",
    "DropoutExplorer",
    "EmptyRashomonSetWarning",
    "ExplorationContext",
    "Explorer",
    "ExplorerSpec",
    "RashomonSet",
    "RetrainExplorer",
    "candidate_losses",
    "check_epsilon",
    "default_rates",
    "distinct_candidates",
    "perturbed_modules",
    "rashomon_set",
]


@dataclass(frozen=True)
class ExplorerSpec:
    """A registered Rashomon explorer.

    Attributes
    ----------
    factory : builds the explorer from its keyword parameters.
    needs_torch : whether it perturbs a torch network (the surrogate must be one).
    """

    name: str
    description: str
    factory: Callable[..., Explorer]
    needs_torch: bool


EXPLORERS: Mapping[str, ExplorerSpec] = {
    "dropout": ExplorerSpec(
        "dropout",
        "multiplicative noise on the units of the surrogate's Linear/Conv layers (Hsu et al. 2024)",
        DropoutExplorer,
        needs_torch=True,
    ),
    "retrain": ExplorerSpec(
        "retrain",
        "the surrogate's family refitted on the same transcript with other seeds",
        RetrainExplorer,
        needs_torch=False,
    ),
}
