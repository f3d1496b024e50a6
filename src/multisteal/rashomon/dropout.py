"""Dropout-based Rashomon exploration (Hsu et al. 2024), with both semantics of METRICS.md."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import nn

from multisteal.errors import InvalidInputError
from multisteal.models.mlp import softmax
from multisteal.rashomon.base import Candidates, ExplorationContext

__all__ = [
    "DEFAULT_P_MAX",
    "LAYER_CHOICES",
    "DropoutExplorer",
    "DropoutLayers",
    "default_rates",
    "perturbed_modules",
]

DropoutKind = Literal["bernoulli", "gaussian"]
Semantics = Literal["per-member", "per-pass"]
DropoutLayers = Literal["all", "hidden"]
LAYER_CHOICES: tuple[str, ...] = ("all", "hidden")
DEFAULT_P_MAX: dict[str, float] = {"bernoulli": 0.2, "gaussian": 0.6}
_PERTURBED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

UNKNOWN_KIND = "Unknown dropout kind {kind!r}. Available: bernoulli, gaussian."
UNKNOWN_SEMANTICS = "Unknown dropout semantics {name!r}. Available: per-member, per-pass."
BAD_RATE = "Dropout rates must be in [0, 1) for bernoulli and >= 0 for gaussian; got {rate}."
BAD_P_MAX = (
    "p_max must be in (0, 1) for bernoulli and > 0 for gaussian (the largest rate of the grid); "
    "got {p_max}."
)
BAD_MEMBERS = "members_per_rate must be >= 1, got {n}."
NOT_TORCH = (
    "The dropout explorer needs a torch surrogate (a fitted module_ attribute); got {cls}. "
    "Use the retrain explorer for other model families."
)
NO_LAYERS = "The surrogate has no Linear or Conv layer to perturb."
UNKNOWN_LAYERS = "Unknown dropout layers {layers!r}. Available: all, hidden."
NO_HIDDEN_LAYERS = (
    "dropout layers='hidden' needs a surrogate with at least one hidden Linear/Conv layer; "
    "this one has only its output layer. Use layers='all' or the retrain explorer."
)


def default_rates(
    kind: str, *, p_max: float | None = None, n_rates: int = 21
) -> NDArray[np.float64]:
    """The default rate grid ``linspace(0, p_max, n_rates)`` (p_max 0.2 bernoulli, 0.6 gaussian)."""
    if kind not in DEFAULT_P_MAX:
        raise InvalidInputError(UNKNOWN_KIND.format(kind=kind))
    top = DEFAULT_P_MAX[kind] if p_max is None else p_max
    return np.linspace(0.0, top, n_rates)


def perturbed_modules(module: nn.Module, layers: str = "all") -> list[nn.Module]:
    """The layers whose outputs dropout perturbs.

    Parameters
    ----------
    module : the surrogate's torch module.
    layers : ``all`` (every Linear / Conv layer, the last one included) or ``hidden`` (every
        Linear / Conv layer except the last one in module order, i.e. the output layer of a
        ``Sequential``).

    Returns
    -------
    list of nn.Module
        The perturbed layers in module order; empty when there is none (no Linear / Conv layer
        at all, or only the output layer with ``layers="hidden"``).

    Raises
    ------
    InvalidInputError
        If ``layers`` is not one of ``LAYER_CHOICES``.
    """
    if layers not in LAYER_CHOICES:
        raise InvalidInputError(UNKNOWN_LAYERS.format(layers=layers))
    found: list[nn.Module] = [m for m in module.modules() if isinstance(m, _PERTURBED)]
    return found[:-1] if layers == "hidden" else found


def _unit_noise(
    shape: tuple[int, ...], kind: str, rate: float, generator: torch.Generator
) -> torch.Tensor:
    if kind == "bernoulli":
        if rate == 0.0:
            return torch.ones(shape)
        keep = (torch.rand(shape, generator=generator) >= rate).float()
        return keep / (1.0 - rate)
    return 1.0 + rate * torch.randn(shape, generator=generator)


@contextmanager
def _noise_hooks(
    layers: Sequence[nn.Module], noise: Callable[[nn.Module, torch.Tensor], torch.Tensor]
) -> Iterator[None]:
    handles = [
        layer.register_forward_hook(lambda mod, _inp, out: out * noise(mod, out))
        for layer in layers
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@dataclass
class DropoutExplorer:
    """Candidates from random multiplicative noise on the units of Linear/Conv outputs.

    Parameters
    ----------
    kind : ``bernoulli`` (zero a unit with probability p, scale survivors by 1/(1−p)) or
        ``gaussian`` (multiply each unit by 1 + p·z, z ~ N(0, 1)).
    semantics : ``per-member`` (default; one fixed noise pattern per unit for all samples, so
        each member is one well-defined model) or ``per-pass`` (fresh noise for every element
        of every sample in every forward pass, as in the published code; a member is a pass).
    rates : the rate grid; default ``linspace(0, p_max, n_rates)``.
    members_per_rate : candidates drawn at each rate; all are pooled and filtered later.
    layers : ``all`` (every Linear/Conv output, the output layer included) or ``hidden`` (every
        Linear/Conv output except the last such layer in module order, the output layer).
    """

    kind: DropoutKind = "bernoulli"
    semantics: Semantics = "per-member"
    rates: Sequence[float] | None = None
    p_max: float | None = None
    n_rates: int = 21
    members_per_rate: int = 10
    layers: DropoutLayers = "all"
    batch_size: int = 8192
    name: str = field(default="dropout", init=False)

    def __post_init__(self) -> None:
        if self.kind not in DEFAULT_P_MAX:
            raise InvalidInputError(UNKNOWN_KIND.format(kind=self.kind))
        if self.semantics not in ("per-member", "per-pass"):
            raise InvalidInputError(UNKNOWN_SEMANTICS.format(name=self.semantics))
        if self.layers not in LAYER_CHOICES:
            raise InvalidInputError(UNKNOWN_LAYERS.format(layers=self.layers))
        if self.members_per_rate < 1:
            raise InvalidInputError(BAD_MEMBERS.format(n=self.members_per_rate))
        if self.rates is None and self.p_max is not None:
            p_max = float(self.p_max)
            if not np.isfinite(p_max) or p_max <= 0 or (self.kind == "bernoulli" and p_max >= 1):
                raise InvalidInputError(BAD_P_MAX.format(p_max=self.p_max))
        for rate in self.grid():
            if rate < 0 or (self.kind == "bernoulli" and rate >= 1):
                raise InvalidInputError(BAD_RATE.format(rate=rate))

    def grid(self) -> NDArray[np.float64]:
        if self.rates is not None:
            return np.asarray(self.rates, dtype=np.float64)
        return default_rates(self.kind, p_max=self.p_max, n_rates=self.n_rates)

    def describe(self) -> dict[str, object]:
        grid = self.grid()
        return {
            "explorer": self.name,
            "dropout_kind": self.kind,
            "dropout_semantics": self.semantics,
            "dropout_layers": self.layers,
            "rate_min": float(grid.min()),
            "rate_max": float(grid.max()),
            "n_rates": int(grid.size),
            "members_per_rate": self.members_per_rate,
        }

    def explore(self, context: ExplorationContext) -> Candidates:
        module = getattr(context.surrogate, "module_", None)
        if not isinstance(module, nn.Module):
            raise InvalidInputError(NOT_TORCH.format(cls=type(context.surrogate).__name__))
        layers = perturbed_modules(module, self.layers)
        if not layers:
            if perturbed_modules(module, "all"):
                raise InvalidInputError(NO_HIDDEN_LAYERS)
            raise InvalidInputError(NO_LAYERS)
        names = list(context.inputs)
        # A raw-input surrogate encodes its inputs first (its encoder — a frozen sentence
        # encoder included — is not perturbed); dropout acts on the classifier's module only.
        encode = getattr(context.surrogate, "encode", None)
        arrays = [
            np.asarray(
                encode(context.inputs[k]) if encode is not None else context.inputs[k],
                dtype=np.float32,
            )
            for k in names
        ]
        sizes = [a.shape[0] for a in arrays]
        X = torch.from_numpy(np.concatenate(arrays))
        rows: list[dict[str, object]] = [{"member": 0, "rate": 0.0, "draw": -1, "reference": True}]
        outputs = [self._forward(module, X, None)]
        seeds = context.rng.integers(0, 2**63 - 1, size=(self.grid().size, self.members_per_rate))
        for i, rate in enumerate(self.grid()):
            for j in range(self.members_per_rate):
                generator = torch.Generator().manual_seed(int(seeds[i, j]))
                outputs.append(self._forward(module, X, (float(rate), generator, layers)))
                rows.append(
                    {"member": len(rows), "rate": float(rate), "draw": j, "reference": False}
                )
        stacked = np.stack(outputs)
        split = np.cumsum(sizes)[:-1]
        parts = np.split(stacked, split, axis=1)
        params = pd.DataFrame(rows)
        params["explorer"] = self.name
        params["dropout_kind"] = self.kind
        params["dropout_semantics"] = self.semantics
        params["dropout_layers"] = self.layers
        return Candidates(self.name, params, dict(zip(names, parts, strict=True)))

    def _forward(
        self,
        module: nn.Module,
        X: torch.Tensor,
        noise: tuple[float, torch.Generator, list[nn.Module]] | None,
    ) -> NDArray[np.float64]:
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                if noise is None:
                    logits = self._batched(module, X)
                else:
                    logits = self._noisy_forward(module, X, *noise)
        finally:
            module.train(was_training)
        return softmax(logits.double().numpy())

    def _noisy_forward(
        self,
        module: nn.Module,
        X: torch.Tensor,
        rate: float,
        generator: torch.Generator,
        layers: list[nn.Module],
    ) -> torch.Tensor:
        kind = self.kind
        if self.semantics == "per-member":
            # One fixed pattern per unit (per channel for Conv), drawn once for this member.
            fixed: dict[int, torch.Tensor] = {}
            for layer in layers:
                weight = layer.weight
                assert isinstance(weight, torch.Tensor)
                units = int(weight.shape[0])  # out_features / out_channels
                fixed[id(layer)] = _unit_noise((units,), kind, rate, generator)

            def noise(layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
                pattern = fixed[id(layer)]
                shape = [1] * out.dim()
                shape[1] = pattern.shape[0]
                return pattern.view(shape)

        else:

            def noise(layer: nn.Module, out: torch.Tensor) -> torch.Tensor:
                return _unit_noise(tuple(out.shape), kind, rate, generator)

        with _noise_hooks(layers, noise):
            return self._batched(module, X)

    def _batched(self, module: nn.Module, X: torch.Tensor) -> torch.Tensor:
        """One forward pass over ``X`` in batches of ``batch_size`` rows (at most 1,024 images
        at a time: a convolution's activations are much larger than a row's)."""
        size = self.batch_size if X.dim() <= 2 else min(self.batch_size, 1024)
        return torch.cat([module(X[s : s + size]) for s in range(0, len(X), size)])
