"""Rashomon-set exploration around a stolen surrogate, and the ε-filter."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from multisteal.rashomon.base import (
    CRITERIA,
    SELECTION,
    Candidates,
    Criterion,
    EmptyRashomonSetWarning,
    ExplorationContext,
    Explorer,
    ExplorerBase,
    RashomonSet,
    candidate_losses,
    check_accepts,
    check_epsilon,
    concat_candidates,
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
    "TORCH_FAMILIES",
    "Candidates",
    "Criterion",
    "DropoutExplorer",
    "EmptyRashomonSetWarning",
    "ExplorationContext",
    "Explorer",
    "ExplorerBase",
    "ExplorerSpec",
    "RashomonSet",
    "RetrainExplorer",
    "candidate_losses",
    "check_accepts",
    "check_epsilon",
    "concat_candidates",
    "default_rates",
    "distinct_candidates",
    "perturbed_modules",
    "rashomon_set",
]


TORCH_FAMILIES: tuple[str, ...] = ("mlp", "torch-logistic", "cnn", "minilm-mlp")
"""Zoo families whose classifier is a torch network (``ModelSpec.torch``)."""


@dataclass(frozen=True)
class ExplorerSpec:
    """A registered Rashomon explorer.

    Attributes
    ----------
    factory : builds the explorer from its keyword parameters.
    families : the model-zoo families (as surrogates) it explores; ``None``: any family. The
        configuration refuses another surrogate before any work.
    reference : the paper it follows.
    """

    name: str
    description: str
    factory: Callable[..., Explorer]
    families: tuple[str, ...] | None = None
    reference: str = ""

    @property
    def needs_torch(self) -> bool:
        """Whether every family it accepts is a torch network."""
        return self.families is not None and set(self.families) <= set(TORCH_FAMILIES)

    def accepts_family(self, family: str) -> bool:
        return self.families is None or family in self.families


def _awp(**params: Any) -> Explorer:
    from multisteal.rashomon.awp import AWPExplorer

    return AWPExplorer(**params)


def _ensemble(**params: Any) -> Explorer:
    from multisteal.rashomon.ensemble import EnsembleExplorer

    return EnsembleExplorer(**params)


def _logistic(**params: Any) -> Explorer:
    from multisteal.rashomon.logistic import LogisticLevelSetExplorer

    return LogisticLevelSetExplorer(**params)


def _treefarms(**params: Any) -> Explorer:
    from multisteal.rashomon.treefarms import TreeFarmsExplorer

    return TreeFarmsExplorer(**params)


EXPLORERS: Mapping[str, ExplorerSpec] = {
    "dropout": ExplorerSpec(
        "dropout",
        "multiplicative noise on the units of the surrogate's Linear/Conv layers",
        DropoutExplorer,
        families=TORCH_FAMILIES,
        reference="Hsu et al. 2024, Dropout-based Rashomon set exploration",
    ),
    "awp": ExplorerSpec(
        "awp",
        "adversarial weight perturbation: per evaluation sample and class, the weights pushed "
        "towards that class while the ε criterion holds (a C-member channel per sample)",
        _awp,
        families=TORCH_FAMILIES,
        reference="Hsu & Calmon 2022, Rashomon Capacity",
    ),
    "retrain": ExplorerSpec(
        "retrain",
        "the surrogate's family refitted on the same transcript with other seeds",
        RetrainExplorer,
        families=None,
    ),
    "ensemble": ExplorerSpec(
        "ensemble",
        "gradient boosting / random forests refitted with other seeds and row and feature "
        "subsampling",
        _ensemble,
        families=("gboost", "forest"),
    ),
    "logistic-level-set": ExplorerSpec(
        "logistic-level-set",
        "logistic-regression weights drawn from a Laplace approximation around the fitted "
        "weights, each draw kept only inside the ε level set",
        _logistic,
        families=("torch-logistic", "logistic", "tfidf-logistic"),
    ),
    "treefarms": ExplorerSpec(
        "treefarms",
        "the exact Rashomon set of sparse decision trees (optional extra: treefarms)",
        _treefarms,
        families=("tree",),
        reference="Xin et al. 2022, Exploring the whole Rashomon set of sparse decision trees",
    ),
}
