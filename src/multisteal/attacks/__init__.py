"""Extraction attacks: query strategies that spend a budget and return a transcript.

:data:`ATTACKS` is the registry. Each :class:`AttackSpec` names an attack, builds it from its
parameters, and owns its checks (:meth:`AttackSpec.check`): the modalities and output modes it
applies to, whether it needs the attacker's pool (and how much of it), whether it retrains a
surrogate in its loop, and anything particular to the method. The audit runs these checks
before any work; :func:`run_registered` runs them again on the live API before any query.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multisteal.attacks.activethief import ActiveThiefAttack
from multisteal.attacks.base import (
    Attack,
    AttackContext,
    AttackSetting,
    Transcript,
    concat_answers,
    query_in_batches,
    run_attack,
)
from multisteal.attacks.equation_solving import EquationSolvingAttack, check_equation_solving
from multisteal.attacks.jacobian import JacobianAttack
from multisteal.attacks.knockoff import KnockoffAdaptive, KnockoffRandom
from multisteal.attacks.label_only import AdaptiveRetrainingAttack, check_label_only_retraining
from multisteal.attacks.path_finding import PathFindingAttack, check_path_finding
from multisteal.attacks.pool import POOL_TOO_SMALL, PoolAttack
from multisteal.attacks.synthetic import MarginalsAttack, SyntheticAttack, sample_marginals
from multisteal.errors import InvalidInputError
from multisteal.params import convert_params
from multisteal.query.outputs import OUTPUT_MODES

__all__ = [
    "ATTACKS",
    "ActiveThiefAttack",
    "AdaptiveRetrainingAttack",
    "Attack",
    "AttackContext",
    "AttackSetting",
    "AttackSpec",
    "EquationSolvingAttack",
    "JacobianAttack",
    "KnockoffAdaptive",
    "KnockoffRandom",
    "MarginalsAttack",
    "PathFindingAttack",
    "PoolAttack",
    "SyntheticAttack",
    "Transcript",
    "concat_answers",
    "make_attack",
    "query_in_batches",
    "run_attack",
    "run_registered",
    "sample_marginals",
]

UNKNOWN_ATTACK = "Unknown attack {name!r}. Available attacks: {available}."
WRONG_MODALITY = "The {name} attack does not apply to {modality} inputs: {why}"
WRONG_OUTPUT = (
    "The {name} attack does not work on answers in {mode!r} mode ({why}); it takes: {modes}."
)
NEEDS_POOL = (
    "The {name} attack draws its queries from the attacker's pool, but the attacker has none."
)
NEEDS_TORCH = (
    "The {name} attack follows the gradients of the attacker's surrogate, which must be a torch "
    "network (mlp, torch-logistic/logistic, cnn, minilm-mlp); use --surrogate mlp (or cnn)."
)
SCORE_MODES = ("probabilities", "top-k", "rounded", "label")
ALL_MODES = OUTPUT_MODES


@dataclass(frozen=True)
class AttackSpec:
    """A registered attack.

    Attributes
    ----------
    factory : ``(**params) -> Attack``; ``params`` declares the parameters (name → type).
    modalities : the input modalities it applies to (``not_applicable`` says why not others).
    output_modes : the answer modes it works on (``output_why``: why not the others).
    needs_pool : whether it draws queries from the attacker's pool; ``pool_per_query``: whether
        every query is a distinct pool input (so the pool must hold the whole budget).
    needs_fit : whether it retrains the attacker's surrogate in its loop; ``needs_torch``:
        whether that surrogate must be a torch network (it follows its gradients).
    extra_check : anything else particular to the method (raises ``InvalidInputError``).
    """

    name: str
    description: str
    factory: Callable[..., Attack]
    modalities: tuple[str, ...] = ("tabular", "image", "text")
    not_applicable: str = ""
    output_modes: tuple[str, ...] = SCORE_MODES
    output_why: str = ""
    needs_pool: bool = False
    pool_per_query: bool = False
    needs_fit: bool = False
    needs_torch: bool = False
    params: Mapping[str, type] = field(default_factory=dict)
    extra_check: Callable[[AttackSetting], object] | None = None
    reference: str = ""

    def check_modality(self, modality: str) -> None:
        """Raise before any query when the attack cannot run on ``modality`` inputs."""
        if modality not in self.modalities:
            raise InvalidInputError(
                WRONG_MODALITY.format(name=self.name, modality=modality, why=self.not_applicable)
            )

    def check_config(self, output_mode: str, *, surrogate_torch: bool) -> None:
        """The checks a configuration allows before any data is loaded: the answers' mode and
        the surrogate's kind (:meth:`check` does all of them on a live setting)."""
        self._check_output(output_mode)
        if self.needs_torch and not surrogate_torch:
            raise InvalidInputError(NEEDS_TORCH.format(name=self.name))

    def _check_output(self, mode: str) -> None:
        if mode not in self.output_modes:
            raise InvalidInputError(
                WRONG_OUTPUT.format(
                    name=self.name,
                    mode=mode,
                    why=self.output_why or "it needs what those answers hide",
                    modes=", ".join(self.output_modes),
                )
            )

    def check(self, setting: AttackSetting) -> None:
        """Raise ``InvalidInputError`` naming the problem when the attack cannot run in
        ``setting`` (called before any query)."""
        self.check_modality(setting.modality)
        self._check_output(setting.output_mode)
        if self.needs_pool and setting.pool_size is None:
            raise InvalidInputError(NEEDS_POOL.format(name=self.name))
        if (
            self.pool_per_query
            and setting.pool_size is not None
            and setting.budget > setting.pool_size
        ):
            raise InvalidInputError(
                POOL_TOO_SMALL.format(name=self.name, budget=setting.budget, size=setting.pool_size)
            )
        if self.needs_torch and setting.surrogate_torch is False:
            raise InvalidInputError(NEEDS_TORCH.format(name=self.name))
        if self.extra_check is not None:
            self.extra_check(setting)

    def convert(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against the attack's parameters, converted to their types and
        their values checked (by building the attack once: a bad value such as an unknown
        ActiveThief strategy fails at configuration time)."""
        converted = convert_params(f"{self.name} attack", params, self.params)
        self.factory(**converted)
        return converted


ATTACKS: Mapping[str, AttackSpec] = {
    "pool": AttackSpec(
        "pool",
        "query inputs of the attacker's pool (in-distribution, or --pool-dataset)",
        PoolAttack,
        output_modes=ALL_MODES,
        needs_pool=True,
        pool_per_query=True,
    ),
    "synthetic": AttackSpec(
        "synthetic",
        "inputs drawn from the target's published input spec (no data)",
        SyntheticAttack,
        modalities=("tabular", "image"),
        not_applicable=(
            "a string domain has no distribution to draw sentences from; use the pool attack "
            "(with --pool-dataset for another corpus)."
        ),
        output_modes=ALL_MODES,
    ),
    "marginals": AttackSpec(
        "marginals",
        "records whose columns are drawn independently from the pool's marginals",
        MarginalsAttack,
        modalities=("tabular",),
        not_applicable="it draws the columns of records independently; use the pool attack.",
        output_modes=ALL_MODES,
        needs_pool=True,
    ),
    "equation-solving": AttackSpec(
        "equation-solving",
        "solve for a logistic/softmax target's weights from d + 1 (c·(d + 1)) answers",
        EquationSolvingAttack,
        modalities=("tabular",),
        not_applicable=(
            "it solves for the weights of a model linear in the attacker's encoding of records; "
            "images and texts have no such encoding."
        ),
        output_modes=("probabilities",),
        output_why="it solves equations in the answered probabilities",
        extra_check=check_equation_solving,
        reference="Tramèr et al., USENIX Security 2016",
    ),
    "path-finding": AttackSpec(
        "path-finding",
        "map a decision tree's leaves (boxes) from the leaf ids its API reveals",
        PathFindingAttack,
        modalities=("tabular",),
        not_applicable=(
            "it searches a tree's boxes along the columns of records (each column's range or "
            "categories); images and texts have no such columns, and the zoo's image and text "
            "models are not trees (they reveal no leaf ids)."
        ),
        output_modes=("leaf",),
        output_why="it follows the leaf id of each answer; use --target tree --output leaf",
        params={"epsilon": float, "check_samples": int, "seeds_per_round": int, "max_rounds": int},
        extra_check=check_path_finding,
        reference="Tramèr et al., USENIX Security 2016 (section 4.2, Algorithm 1)",
    ),
    "jacobian": AttackSpec(
        "jacobian",
        "Jacobian-based dataset augmentation: grow a seed set from the pool along the sign of "
        "the surrogate's gradient for the oracle's label (periodic step size)",
        JacobianAttack,
        modalities=("tabular", "image"),
        not_applicable=(
            "it steps inputs along the sign of the surrogate's gradient, and strings are "
            "discrete; use the pool attack for text."
        ),
        output_modes=ALL_MODES,
        needs_pool=True,
        needs_fit=True,
        needs_torch=True,
        params={"lambda_": float, "tau": int, "seed_size": int, "max_rounds": int},
        reference="Papernot et al., AsiaCCS 2017",
    ),
    "knockoff-random": AttackSpec(
        "knockoff-random",
        "Knockoff Nets' random strategy: pool inputs drawn uniformly without replacement",
        KnockoffRandom,
        output_modes=ALL_MODES,
        needs_pool=True,
        pool_per_query=True,
        reference="Orekondy, Schiele & Fritz, CVPR 2019",
    ),
    "knockoff-adaptive": AttackSpec(
        "knockoff-adaptive",
        "Knockoff Nets' adaptive strategy: a gradient bandit over k-means clusters of the pool, "
        "rewarded by answer certainty, diversity and the surrogate's loss",
        KnockoffAdaptive,
        output_modes=ALL_MODES,
        needs_pool=True,
        pool_per_query=True,
        needs_fit=True,
        params={
            "n_clusters": int,
            "rounds": int,
            "learning_rate": float,
            "reward": str,
            "window": int,
        },
        reference="Orekondy, Schiele & Fritz, CVPR 2019",
    ),
    "activethief": AttackSpec(
        "activethief",
        "ActiveThief: a random seed set, then rounds of active learning on the pool "
        "(--strategy uncertainty, margin or k-center on the surrogate's probabilities)",
        ActiveThiefAttack,
        output_modes=ALL_MODES,
        needs_pool=True,
        pool_per_query=True,
        needs_fit=True,
        params={"strategy": str, "rounds": int, "initial_fraction": float},
        reference="Pal et al., AAAI 2020",
    ),
    "label-only-retraining": AttackSpec(
        "label-only-retraining",
        "random domain queries, then rounds querying the candidates nearest the label-trained "
        "surrogate's decision boundary (smallest top-1 − top-2 margin)",
        AdaptiveRetrainingAttack,
        modalities=("tabular", "image", "text"),
        output_modes=ALL_MODES,
        needs_fit=True,
        params={"rounds": int, "initial_fraction": float, "candidates_per_query": int},
        extra_check=check_label_only_retraining,
        reference="Tramèr et al., USENIX Security 2016 (section 5)",
    ),
}


def make_attack(name: str, **params: Any) -> Attack:
    """Create the named attack with its parameters (strings from the CLI are converted)."""
    spec = ATTACKS.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_ATTACK.format(name=name, available=", ".join(ATTACKS)))
    return spec.factory(**spec.convert(params))


def run_registered(
    name: str, context: AttackContext, **params: Any
) -> tuple[Transcript | None, str]:
    """Check the named attack against the live context, then run it (:func:`run_attack`)."""
    spec = ATTACKS.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_ATTACK.format(name=name, available=", ".join(ATTACKS)))
    spec.check(context.setting())
    return run_attack(spec.factory(**spec.convert(params)), context)
