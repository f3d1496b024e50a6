"""Rashomon-set exploration around a stolen surrogate, and the ε-filter."""

from __future__ import annotations

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
    "SELECTION",
    "Candidates",
    "Criterion",
    "DropoutExplorer",
    "EmptyRashomonSetWarning",
    "ExplorationContext",
    "Explorer",
    "RashomonSet",
    "RetrainExplorer",
    "candidate_losses",
    "check_epsilon",
    "default_rates",
    "distinct_candidates",
    "perturbed_modules",
    "rashomon_set",
]
