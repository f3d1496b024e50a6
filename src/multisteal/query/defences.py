"""Answer-side defences of a prediction API, composable in a stated order.

A defence (:class:`~multisteal.query.api.Defence`) receives the query inputs and the answer so
far — the model's full probabilities, or what the defences before it left — and returns the
answer to pass on. The API applies its defences in the order given, then its output policy.

Registered defences (:data:`DEFENCES`, CLI ``--defence name:param=value``):

* ``rounding`` (``decimals``) — round every revealed score;
* ``top-k`` (``k``) — reveal only the ``k`` largest scores;
* ``label-only`` — reveal only the decision;
* ``gaussian-noise`` (``sigma``) — add Gaussian noise to the probabilities;
* ``reverse-sigmoid`` (``beta``, ``gamma``) — Lee et al. 2019;
* ``high-confidence`` (``cutoff``) — hide scores below a cutoff;
* ``mad`` (``epsilon``, ``keep_argmax``) — MAD prediction poisoning, Orekondy et al. 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from multisteal.errors import InvalidInputError
from multisteal.models.zoo import Classifier
from multisteal.params import convert_params, parse_named_params
from multisteal.query.api import Defence
from multisteal.query.outputs import Answer, LabelOnly, Rounded, TopK
from multisteal.query.perturbations import MAD, GaussianNoise, HighConfidence, ReverseSigmoid

__all__ = [
    "DEFENCES",
    "DefenceSpec",
    "LabelOnlyDefence",
    "RoundingDefence",
    "TopKDefence",
    "make_defence",
    "make_defences",
    "parse_defence",
]

UNKNOWN_DEFENCE = "Unknown defence {name!r}. Available defences: {available}."


@dataclass(frozen=True)
class RoundingDefence:
    """Round every revealed score to ``decimals`` decimal places."""

    decimals: int = 2
    name: str = field(default="rounding", init=False)

    def __post_init__(self) -> None:
        Rounded(self.decimals)  # checks decimals

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        # as a defence it rounds the scores and leaves the rest (a tree's leaf ids) as it was
        return replace(Rounded(self.decimals).restrict(answer), leaves=answer.leaves)

    def mode_after(self, mode: str) -> str:
        return "rounded" if mode == "probabilities" else mode


@dataclass(frozen=True)
class TopKDefence:
    """Reveal only the ``k`` largest of the scores still revealed."""

    k: int = 1
    name: str = field(default="top-k", init=False)

    def __post_init__(self) -> None:
        TopK(self.k)  # checks k

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        return replace(TopK(self.k).restrict(answer), leaves=answer.leaves)

    def mode_after(self, mode: str) -> str:
        return "top-k" if mode in ("probabilities", "rounded") else mode


@dataclass(frozen=True)
class LabelOnlyDefence:
    """Reveal only the decision."""

    name: str = field(default="label-only", init=False)

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        return LabelOnly().restrict(answer)

    def mode_after(self, mode: str) -> str:
        return "label"


@dataclass(frozen=True)
class DefenceSpec:
    """A registered defence: its parameters (name → type) and how to build it.

    ``factory(params, seed, model, service_seed)`` gets the typed parameters, a seed for the
    defence's random stream (noise: a fresh draw per answer stream), the target model (MAD
    needs its encoder) and the seed of the deployed service itself (what every client of the
    service shares, such as MAD's proxy model).
    """

    name: str
    description: str
    params: Mapping[str, type]
    factory: Callable[..., Defence]

    def mode_after(self, mode: str) -> str:
        """The output mode this defence's answers have when they arrive in ``mode``."""
        return self.factory({}, 0, None, 0).mode_after(mode)

    def convert(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against this defence's parameters, converted to their types and
        their values checked (by building the defence once: a bad value fails here, at
        configuration time, not after the target is trained)."""
        converted = convert_params(f"{self.name} defence", params, self.params)
        self.factory(converted, 0, None, 0)
        return converted


DEFENCES: Mapping[str, DefenceSpec] = {
    "rounding": DefenceSpec(
        "rounding",
        "round every revealed score to `decimals` places",
        {"decimals": int},
        lambda params, seed, model, service_seed: RoundingDefence(**params),
    ),
    "top-k": DefenceSpec(
        "top-k",
        "reveal only the k largest scores",
        {"k": int},
        lambda params, seed, model, service_seed: TopKDefence(**params),
    ),
    "label-only": DefenceSpec(
        "label-only",
        "reveal only the decision",
        {},
        lambda params, seed, model, service_seed: LabelOnlyDefence(),
    ),
    "gaussian-noise": DefenceSpec(
        "gaussian-noise",
        "add N(0, sigma^2) noise to the probabilities (clipped and renormalised)",
        {"sigma": float},
        lambda params, seed, model, service_seed: GaussianNoise(**params, seed=seed),
    ),
    "reverse-sigmoid": DefenceSpec(
        "reverse-sigmoid",
        "reverse sigmoid perturbation (Lee et al. 2019), argmax kept",
        {"beta": float, "gamma": float},
        lambda params, seed, model, service_seed: ReverseSigmoid(**params),
    ),
    "high-confidence": DefenceSpec(
        "high-confidence",
        "hide every score below `cutoff` (the decision's is always shown)",
        {"cutoff": float},
        lambda params, seed, model, service_seed: HighConfidence(**params),
    ),
    "mad": DefenceSpec(
        "mad",
        "MAD prediction poisoning (Orekondy et al. 2020), L1 change at most epsilon",
        {"epsilon": float, "keep_argmax": bool},
        lambda params, seed, model, service_seed: MAD(**params, seed=service_seed, model=model),
    ),
}


def parse_defence(text: str) -> tuple[str, dict[str, str]]:
    """``"reverse-sigmoid:beta=0.7,gamma=2"`` → ``("reverse-sigmoid", {"beta": "0.7", ...})``;
    the name and parameters are checked against :data:`DEFENCES`."""
    name, params = parse_named_params(text, what="defence", example="reverse-sigmoid:beta=0.7")
    spec = DEFENCES.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_DEFENCE.format(name=name, available=", ".join(DEFENCES)))
    spec.convert(params)
    return name, params


def make_defence(
    name: str,
    params: Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    model: Classifier | None,
    service_seed: int | None = None,
) -> Defence:
    """The named defence with ``params`` (strings or values), for ``model``'s service.

    ``seed`` seeds the defence's random stream; ``service_seed`` (default ``seed``) what the
    deployed service fixes once for all its clients (MAD's proxy model)."""
    spec = DEFENCES.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_DEFENCE.format(name=name, available=", ".join(DEFENCES)))
    return spec.factory(
        spec.convert(params or {}),
        seed,
        model,
        seed if service_seed is None else service_seed,
    )


def make_defences(
    chain: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    seed: int,
    model: Classifier,
    service_seed: int | None = None,
) -> list[Defence]:
    """Defences in the order given. Each draws its random stream from ``seed`` (one child per
    position) and what the service shares from ``service_seed`` (default ``seed``; one child per
    position): two answer streams of one service (two budgets, the attacker and honest users)
    share MAD's proxy but not their noise."""
    service = seed if service_seed is None else service_seed
    seeds = np.random.SeedSequence(seed).generate_state(max(len(chain), 1))
    shared = np.random.SeedSequence(service).generate_state(max(len(chain), 1))
    return [
        make_defence(name, params, seed=int(seeds[i]), model=model, service_seed=int(shared[i]))
        for i, (name, params) in enumerate(chain)
    ]
