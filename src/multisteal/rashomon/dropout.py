"""Dropout-based Rashomon exploration (Hsu et al. 2024), with both semantics of METRICS.md.

Evaluation
----------
The published code runs one forward pass per member with hooks that multiply the output of
every perturbed layer by its noise (:func:`hooked_forward`, kept as the reference). Here the
work all members share is done once and the members are evaluated together:

* The inputs are encoded once, and everything up to the *pre-noise* output of the first
  perturbed layer (the prefix) is computed once for all members.
* **Per member**, when the layers between the first perturbed layer and the next ``Linear`` /
  ``Conv`` layer are positively homogeneous and act on every channel alone (ReLU, LeakyReLU,
  max- and average-pooling, Flatten, Identity, Dropout in eval mode), the first mask folds into
  the weights of that next layer: ``f(h·m) = f(h)·m`` for ``m >= 0``, so
  ``W f(h·m) = (W·m) f(h)``, and a group of members is one matrix product (or one
  convolution) of the shared ``f(h)`` with their stacked weights ``[W·m_1 | W·m_2 | …]``. A
  Gaussian mask can be negative: ``f(h·m) = f(h)·max(m, 0) + f(−h)·max(−m, 0)`` (two products).
  The layers after it run on a leading member dimension (``Linear`` on ``(K·R, H)``, ``Conv``
  on ``(K·R, C, H, W)``), each perturbed output multiplied by the members' masks. Without a
  fold (tanh, GELU between the layers, or a perturbed output layer) the members start from
  the shared pre-noise output. Groups of members and blocks of rows are bounded by
  ``max_activation_bytes``; the groups are fixed before the output chunks are cut (a group
  straddling two chunks is evaluated again), so chunking never changes a candidate. Draws with
  identical masks (frequent with a few units) are evaluated once and copied: the same model
  gets bit-identical outputs.
* **Per pass**, with Bernoulli noise whose first perturbed layer feeds a ``Linear`` layer of at
  most 8 units through element-wise positively homogeneous layers (ReLU, LeakyReLU, Flatten,
  Identity), only the dropped elements are touched: ``(A⊙keep/(1−p)) Wᵀ = (A Wᵀ − S Wᵀ)/(1−p)``
  where ``A Wᵀ`` and the products ``A[i, f]·W[u, f]`` are shared and ``S`` holds the ~``p``
  share of dropped entries of ``A``: a gather and a row-wise sum per unit. The other layers
  get fresh noise element by element.
* A surrogate that is not a ``Sequential`` of known per-sample layers is evaluated by
  :func:`hooked_forward`, one hooked pass per member, with the same random numbers.

Random numbers
--------------
Member seeds are one draw ``context.rng.integers(0, 2**63 - 1, size=(n_rates,
members_per_rate))`` (:meth:`DropoutExplorer.member_seeds`); member ``1 + i·members_per_rate
+ j`` of the candidates is draw ``j`` at rate ``i`` and uses ``seeds[i, j]``.

* Per member (:func:`member_masks`): ``np.random.default_rng(seed)`` draws, for every perturbed
  layer in module order, one value per unit (``out_features`` / ``out_channels``):
  Bernoulli ``random(units) >= p`` (kept), mask ``keep / (1 − p)``; Gaussian
  ``1 + p · standard_normal(units)``. The masks of ``layers="hidden"`` are those of
  ``layers="all"`` without the last one.
* Per pass (:func:`pass_noise`): perturbed layer ``l`` (its position among the perturbed
  layers) has the stream ``np.random.default_rng([seed, l])`` over its output elements for all
  rows (the input sets concatenated in their order, each sample's elements in C order).
  Bernoulli: the dropped elements are found by geometric gaps ``1 + floor(E · s)``,
  ``s = 1 / −log(1 − p)``, ``E ~ Exp(1)`` (``standard_exponential``), which drops every
  element independently with probability ``p``; survivors are scaled by ``1/(1 − p)``.
  Gaussian: ``1 + p · z`` with ``z = standard_normal(dtype=float32)`` per element. A stream
  gives the same numbers however the rows are split into blocks.

Rate-0 members draw nothing: their noise is exactly 1, so they are the reference model and get
its outputs.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812 - the usual name
from numpy.typing import NDArray
from torch import nn

from multisteal.errors import InvalidInputError
from multisteal.models.torch_base import softmax
from multisteal.models.zoo import Classifier
from multisteal.rashomon.base import (
    Candidates,
    ExplorationContext,
    ExplorerBase,
    check_accepts,
    unwrap,
)

__all__ = [
    "DEFAULT_ACTIVATION_BYTES",
    "DEFAULT_P_MAX",
    "LAYER_CHOICES",
    "DropoutExplorer",
    "DropoutLayers",
    "default_rates",
    "hooked_forward",
    "layer_units",
    "member_masks",
    "pass_noise",
    "perturbed_modules",
]

DropoutKind = Literal["bernoulli", "gaussian"]
Semantics = Literal["per-member", "per-pass"]
DropoutLayers = Literal["all", "hidden"]
LAYER_CHOICES: tuple[str, ...] = ("all", "hidden")
DEFAULT_P_MAX: dict[str, float] = {"bernoulli": 0.2, "gaussian": 0.6}
DEFAULT_ACTIVATION_BYTES = 128 * 2**20
"""Default memory bound of the activations of the members evaluated together."""
SEED_HIGH = 2**63 - 1  # member seeds are drawn from 0 .. SEED_HIGH - 1
_PERTURBED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_CONV: dict[type[nn.Module], Callable[..., torch.Tensor]] = {
    nn.Conv1d: F.conv1d,
    nn.Conv2d: F.conv2d,
    nn.Conv3d: F.conv3d,
}
_CONV_DIMS: dict[type[nn.Module], int] = {nn.Conv1d: 1, nn.Conv2d: 2, nn.Conv3d: 3}
_DROPOUTS = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.FeatureAlphaDropout,
)
# Layers whose output at a positive multiple of a channel is that multiple of its output
# (each channel alone): a per-unit mask before them folds into the next Linear / Conv layer.
_HOMOGENEOUS = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.Identity,
    nn.Flatten,
    nn.Unflatten,
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    *_DROPOUTS,
)
# The same element by element: a per-element mask before them folds too (per-pass noise).
_ELEMENTWISE = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Flatten, nn.Unflatten, *_DROPOUTS)
# Layers that treat every sample alone, so members can share their batch dimension.
_PER_SAMPLE = (
    *_PERTURBED,
    *_HOMOGENEOUS,
    nn.Tanh,
    nn.GELU,
    nn.Sigmoid,
    nn.SiLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.Softplus,
    nn.Hardtanh,
    nn.ReLU6,
    nn.Mish,
    nn.LayerNorm,
)

_SOFTMAX_SLAB = 2**15  # rows of probabilities computed together
_SPARSE_UNITS = 8  # per-pass sparse fold into a Linear layer of at most this many units

UNKNOWN_KIND = "Unknown dropout kind {kind!r}. Available: bernoulli, gaussian."
UNKNOWN_SEMANTICS = "Unknown dropout semantics {name!r}. Available: per-member, per-pass."
BAD_RATE = "Dropout rates must be in [0, 1) for bernoulli and >= 0 for gaussian; got {rate}."
BAD_P_MAX = (
    "p_max must be in (0, 1) for bernoulli and > 0 for gaussian (the largest rate of the grid); "
    "got {p_max}."
)
BAD_MEMBERS = "members_per_rate must be >= 1, got {n}."
BAD_BYTES = "max_activation_bytes must be >= 1, got {n}."
NOT_TORCH = (
    "dropout perturbs a torch network (a fitted module_ attribute, as TorchMLPClassifier and "
    "TorchCNNClassifier have). Use the retrain, ensemble or logistic explorer for other model "
    "families."
)
NO_LAYERS = "The surrogate has no Linear or Conv layer to perturb."
UNKNOWN_LAYERS = "Unknown dropout layers {layers!r}. Available: all, hidden."
NO_HIDDEN_LAYERS = (
    "dropout layers='hidden' needs a surrogate with at least one hidden Linear/Conv layer; "
    "this one has only its output layer. Use layers='all' or the retrain explorer."
)
BAD_MASKS = "hooked_forward got {got} masks for {expected} perturbed layers."

Masks = Sequence[torch.Tensor] | Callable[[int, torch.Tensor], torch.Tensor]
"""Noise for :func:`hooked_forward`: one tensor per perturbed layer (a 1-D mask of one value
per unit, or a multiplier with the layer's output shape for all rows), or a callable
``(layer position, output) -> multiplier``."""


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


def layer_units(layers: Sequence[nn.Module]) -> list[int]:
    """The number of units of every layer (``out_features`` / ``out_channels``)."""
    units = []
    for layer in layers:
        weight = layer.weight
        assert isinstance(weight, torch.Tensor)
        units.append(int(weight.shape[0]))
    return units


def _scale(rate: float) -> float:
    """The survivors' factor ``1/(1 − p)`` of Bernoulli noise, as float32."""
    return float(np.float32(1.0 / (1.0 - rate)))


def member_masks(seed: int, units: Sequence[int], kind: str, rate: float) -> list[torch.Tensor]:
    """The fixed per-unit noise of one per-member draw.

    Parameters
    ----------
    seed : the member's seed (:meth:`DropoutExplorer.member_seeds`).
    units : units of every perturbed layer in module order (:func:`layer_units`).
    kind : ``bernoulli`` or ``gaussian``.
    rate : the dropout rate ``p`` (Bernoulli) or the standard deviation (Gaussian).

    Returns
    -------
    list of torch.Tensor
        One float32 mask of shape ``(units[l],)`` per layer, drawn in layer order from
        ``np.random.default_rng(seed)``: Bernoulli ``(random(u) >= p) / (1 − p)`` (all ones
        when ``p`` is 0), Gaussian ``1 + p · standard_normal(u)``. A layer's mask multiplies
        its output unit by unit (channel by channel for a convolution) on every sample.
    """
    if kind not in DEFAULT_P_MAX:
        raise InvalidInputError(UNKNOWN_KIND.format(kind=kind))
    rng = np.random.default_rng(seed)
    masks = []
    for size in units:
        if kind == "bernoulli":
            if rate == 0.0:
                values = np.ones(size, dtype=np.float32)
            else:
                keep = rng.random(size) >= rate
                values = keep.astype(np.float32) * np.float32(_scale(rate))
        else:
            values = (1.0 + rate * rng.standard_normal(size)).astype(np.float32)
        masks.append(torch.from_numpy(values))
    return masks


class _NoiseStream:
    """The per-pass noise of one perturbed layer in one pass, consumed block by block.

    Bernoulli: the positions of the dropped elements, by geometric gaps; Gaussian: standard
    normal values. The numbers depend only on ``(seed, layer)`` and the order of the elements,
    not on how they are split into blocks.
    """

    def __init__(self, seed: int, layer: int, kind: str, rate: float) -> None:
        self.rng = np.random.default_rng([int(seed), int(layer)])
        self.kind = kind
        self.rate = float(rate)
        self.offset = 0  # elements consumed so far
        self.last = -1  # absolute position of the last dropped element drawn
        self.pending: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        dropping = kind == "bernoulli" and self.rate > 0.0
        self.gap_scale = -1.0 / math.log1p(-self.rate) if dropping else 0.0

    def dropped(self, n: int) -> NDArray[np.int64]:
        """Positions (from the start of the block) of the dropped elements among the next
        ``n`` elements, increasing."""
        end = self.offset + n
        parts: list[NDArray[np.int64]] = []
        while self.rate > 0.0:
            if self.pending.size:
                cut = int(np.searchsorted(self.pending, end))
                parts.append(self.pending[:cut])
                self.pending = self.pending[cut:]
                if self.pending.size:
                    break
            expected = (end - self.last) * self.rate
            count = int(expected + 6.0 * math.sqrt(expected) + 16)
            # gap = 1 + floor(E · (1 / -log(1 - p))), E ~ Exp(1) (truncation is floor: E >= 0)
            gaps = self.rng.standard_exponential(count)
            gaps *= self.gap_scale
            if self.gap_scale > 2.0**30:  # p < 1e-9: keep the positions within int64
                np.minimum(gaps, 2.0**40, out=gaps)
            positions = gaps.astype(np.int64)
            positions += 1
            positions[0] += self.last
            np.cumsum(positions, out=positions)
            self.pending = positions
            self.last = int(positions[-1])
        start = self.offset
        self.offset = end
        if not parts:
            return np.empty(0, dtype=np.int64)
        out = parts[0] if len(parts) == 1 else np.concatenate(parts)
        out -= start  # (consumed: no longer pending)
        return out

    def normal(self, n: int) -> NDArray[np.float32]:
        """The next ``n`` standard normal values (float32)."""
        self.offset += n
        return self.rng.standard_normal(n, dtype=np.float32)

    def multiplier(self, shape: Sequence[int]) -> torch.Tensor:
        """The noise of the next ``prod(shape)`` elements as a float32 multiplier."""
        n = int(np.prod(shape))
        if self.kind == "bernoulli":
            out = torch.full((n,), _scale(self.rate), dtype=torch.float32)
            out[torch.from_numpy(self.dropped(n))] = 0.0
        else:
            out = torch.from_numpy(self.normal(n)).mul_(self.rate).add_(1.0)
        return out.view(*shape)

    def apply(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` times the noise of its next ``z.numel()`` elements (a new tensor)."""
        if self.kind == "bernoulli":
            out = z * _scale(self.rate)
            out.view(-1)[torch.from_numpy(self.dropped(z.numel()))] = 0.0
            return out
        noise = torch.from_numpy(self.normal(z.numel())).view(z.shape)
        return z * noise.mul_(self.rate).add_(1.0)


def pass_noise(
    seed: int, shapes: Sequence[Sequence[int]], kind: str, rate: float
) -> list[torch.Tensor]:
    """The per-pass noise of one pass, as multipliers of every perturbed layer's output.

    Parameters
    ----------
    seed : the pass's seed (:meth:`DropoutExplorer.member_seeds`).
    shapes : the output shape of every perturbed layer for all rows, ``(n_rows, *sample)``,
        in module order.
    kind, rate : as in :func:`member_masks`.

    Returns
    -------
    list of torch.Tensor
        float32 multipliers of those shapes: the noise the explorer applies (see the module's
        "Random numbers"), for :func:`hooked_forward`.
    """
    if kind not in DEFAULT_P_MAX:
        raise InvalidInputError(UNKNOWN_KIND.format(kind=kind))
    out = []
    for position, shape in enumerate(shapes):
        if rate == 0.0:
            out.append(torch.ones(tuple(shape)))
        else:
            out.append(_NoiseStream(seed, position, kind, rate).multiplier(tuple(shape)))
    return out


def _unit_view(mask: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-unit mask ``(U,)`` shaped to multiply outputs of ``ndim`` dimensions on dim 1."""
    return mask.view(1, -1, *([1] * (ndim - 2)))


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def hooked_forward(
    module: nn.Module,
    X: torch.Tensor | NDArray[Any],
    masks: Masks,
    *,
    layers: str = "all",
    batch_size: int | None = None,
) -> torch.Tensor:
    """One forward pass with forward hooks multiplying each perturbed layer's output by its noise
    (the published code's way; the reference the batched evaluation is tested against).

    Parameters
    ----------
    module : the network (evaluated in eval mode, without gradients; its mode is restored).
    X : the inputs, float32.
    masks : one tensor per layer of ``perturbed_modules(module, layers)``: a 1-D mask of one
        value per unit (broadcast over samples and positions, dim 1 of the output), or a
        multiplier of the output's shape for all rows of ``X``; or a callable ``(position,
        output) -> multiplier`` called in every batch (fresh noise, as the published code).
    layers : ``all`` or ``hidden`` (:func:`perturbed_modules`).
    batch_size : rows per forward pass (all at once by default); the hooks see each batch.

    Returns
    -------
    torch.Tensor
        The module's outputs (logits), float32, one row per row of ``X``.
    """
    targets = perturbed_modules(module, layers)
    if not callable(masks) and len(masks) != len(targets):
        raise InvalidInputError(BAD_MASKS.format(got=len(masks), expected=len(targets)))
    inputs = torch.as_tensor(X, dtype=torch.float32)
    rows = (0, 0)

    def noise(position: int, out: torch.Tensor) -> torch.Tensor:
        if callable(masks):
            return masks(position, out)
        mask = masks[position]
        if mask.dim() == 1:
            return _unit_view(mask, out.dim())
        return mask[rows[0] : rows[1]]

    def hook(position: int) -> Callable[[nn.Module, Any, torch.Tensor], torch.Tensor]:
        return lambda _module, _inputs, out: out * noise(position, out)

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(targets)]
    outputs = []
    size = max(1, len(inputs) if batch_size is None else int(batch_size))
    try:
        with _eval_mode(module):
            for start in range(0, len(inputs), size):
                rows = (start, min(start + size, len(inputs)))
                outputs.append(module(inputs[rows[0] : rows[1]]))
    finally:
        for handle in handles:
            handle.remove()
    if not outputs:
        return torch.zeros((0,))
    return torch.cat(outputs)


# -- the plan of a batched evaluation -------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    """How the members of a ``Sequential`` are evaluated together.

    Attributes
    ----------
    steps : the leaf layers in order (nested ``Sequential`` flattened).
    perturbed : step indices of the perturbed layers.
    shapes : per-sample output shape of every step.
    fold : index of the layer the first mask folds into (per member), or ``None``.
    channel_map : for every input feature (Linear) or channel (Conv) of ``steps[fold]``, the
        unit of the first perturbed layer it comes from.
    sparse : per-pass Bernoulli noise of the first perturbed layer folds element by element
        into ``steps[fold]`` (a Linear layer).
    """

    steps: tuple[nn.Module, ...]
    perturbed: tuple[int, ...]
    shapes: tuple[tuple[int, ...], ...]
    fold: int | None
    channel_map: torch.Tensor | None
    sparse: bool

    @property
    def first(self) -> int:
        return self.perturbed[0]

    def numel(self, index: int) -> int:
        return int(np.prod(self.shapes[index]))


def _leaves(module: nn.Module) -> list[nn.Module] | None:
    """The layers of a ``Sequential`` (nested ones flattened) in order, or ``None`` when one
    is not a known per-sample layer (subclasses, with their own ``forward``, are not)."""
    if type(module) is nn.Sequential:
        out: list[nn.Module] = []
        for child in module:
            found = _leaves(child)
            if found is None:
                return None
            out += found
        return out
    if type(module) not in _PER_SAMPLE:
        return None
    if isinstance(module, nn.Flatten) and module.start_dim == 0:
        return None
    if isinstance(module, nn.Unflatten) and module.dim == 0:
        return None
    return [module]


def _plan(module: nn.Module, targets: Sequence[nn.Module], sample: Sequence[int]) -> _Plan | None:
    """The plan for ``module`` on samples of shape ``sample``, or ``None`` when it is not a
    ``Sequential`` of known per-sample layers (it is then evaluated by hooked passes)."""
    steps = _leaves(module)
    if not steps or len({id(s) for s in steps}) != len(steps):
        return None
    ids = {id(t) for t in targets}
    perturbed = tuple(i for i, step in enumerate(steps) if id(step) in ids)
    if len(perturbed) != len(targets):
        return None
    shapes: list[tuple[int, ...]] = []
    try:
        with _eval_mode(module):
            z = torch.zeros((1, *sample))
            for step in steps:
                z = step(z)
                shapes.append(tuple(int(d) for d in z.shape[1:]))
    except (RuntimeError, ValueError, TypeError, IndexError):
        return None
    if len(shapes[-1]) != 1:
        return None
    for index, units in zip(perturbed, layer_units(targets), strict=True):
        if not shapes[index] or shapes[index][0] != units:
            return None
    fold, channel_map, sparse = _fold(steps, perturbed[0], shapes)
    return _Plan(tuple(steps), perturbed, tuple(shapes), fold, channel_map, sparse)


def _fold(
    steps: Sequence[nn.Module], first: int, shapes: Sequence[tuple[int, ...]]
) -> tuple[int | None, torch.Tensor | None, bool]:
    """The layer the first perturbed layer's mask folds into, its channel map, and whether
    per-element noise folds too (see :class:`_Plan`)."""
    for index in range(first + 1, len(steps)):
        layer = steps[index]
        if isinstance(layer, _PERTURBED):
            break
        if not isinstance(layer, _HOMOGENEOUS):
            return None, None, False
    else:
        return None, None, False
    between = steps[first + 1 : index]
    in_shape = shapes[index - 1]
    if isinstance(layer, nn.Linear):
        if len(in_shape) != 1:
            return None, None, False
    elif not (
        isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d))
        and layer.groups == 1
        and layer.padding_mode == "zeros"
        and len(in_shape) == _CONV_DIMS[type(layer)] + 1
    ):
        return None, None, False
    # Which unit of the first layer every input of the fold layer comes from: pass the unit
    # indices through the layers in between (they keep a constant channel constant).
    units = shapes[first]
    ids = torch.arange(units[0], dtype=torch.float64).view(1, -1, *([1] * (len(units) - 1)))
    mapped = ids.expand(1, *units).contiguous()
    with torch.no_grad():
        for step in between:
            mapped = step(mapped)
    mapped = mapped[0]
    if not torch.equal(mapped, mapped.round()):
        return None, None, False
    if not isinstance(layer, nn.Linear):
        flat = mapped.reshape(mapped.shape[0], -1)
        if not torch.equal(flat, flat[:, :1].expand_as(flat)):
            return None, None, False
        mapped = flat[:, 0]
    channel_map = mapped.long()
    sparse = (
        isinstance(layer, nn.Linear)
        and layer.out_features <= _SPARSE_UNITS
        and all(isinstance(s, _ELEMENTWISE) for s in between)
    )
    return index, channel_map, sparse


def _bias(layer: nn.Module) -> torch.Tensor | None:
    bias = getattr(layer, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def _weighted(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: Any) -> torch.Tensor:
    """``layer`` applied to ``x`` with other weights (and bias)."""
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    conv = _CONV[type(layer)]
    return conv(x, weight, bias, layer.stride, layer.padding, layer.dilation, 1)


def _dropped_products(products: torch.Tensor, dropped: NDArray[np.int64]) -> NDArray[np.float32]:
    """The dropped entries' share of a Linear layer's product, row by row.

    ``products`` holds ``A[i, f] · W[u, f]`` with shape ``(U, R, F)`` (every unit ``u`` of the
    layer, input ``A`` of ``R`` rows); ``dropped`` the sorted flat positions ``i·F + f`` of the
    dropped entries of ``A``. Returns ``S @ W.T`` of shape ``(R, U)``, ``S`` holding the
    dropped entries of ``A`` (zero elsewhere): a gather and a segment sum per unit.
    """
    units, rows, width = products.shape
    bounds = np.searchsorted(dropped, np.arange(rows + 1, dtype=np.int64) * width)
    starts = bounds[:-1]
    empty = starts == bounds[1:]
    flat = products.numpy().reshape(units, -1)
    out = np.empty((rows, units), dtype=np.float32)
    picked = np.zeros(dropped.size + 1, dtype=np.float32)  # a trailing 0: rows may be empty
    for unit in range(units):
        np.take(flat[unit], dropped, out=picked[:-1])
        sums = np.add.reduceat(picked, starts)  # row by row (the positions are sorted)
        sums[empty] = 0.0
        out[:, unit] = sums
    return out


@dataclass
class _Shared:
    """What every member shares on one block of rows."""

    h0: torch.Tensor | None = None  # the first perturbed layer's pre-noise output
    plus: torch.Tensor | None = None  # f(h0): the fold layer's input without noise
    minus: torch.Tensor | None = None  # f(−h0), for Gaussian masks (they may be negative)
    base: torch.Tensor | None = None  # plus @ W_fold.T (sparse per-pass fold)
    products: torch.Tensor | None = None  # plus[i, f] * W_fold[u, f], shape (U, R, F)

    def nbytes(self) -> int:
        parts = (self.h0, self.plus, self.minus, self.base, self.products)
        return sum(t.numel() * t.element_size() for t in parts if t is not None)


class _Batched:
    """Evaluates members of one exploration on the rows ``X`` along a :class:`_Plan`."""

    def __init__(
        self,
        plan: _Plan,
        X: torch.Tensor,
        *,
        kind: str,
        semantics: str,
        budget: int,
        batch_size: int,
    ) -> None:
        self.plan = plan
        self.X = X
        self.kind = kind
        self.semantics = semantics
        self.position = {index: q for q, index in enumerate(plan.perturbed)}
        steps, fold = plan.steps, plan.fold
        self.sparse = semantics == "per-pass" and kind == "bernoulli" and plan.sparse
        self.folds = semantics == "per-member" and fold is not None
        start = plan.first if not (self.folds or self.sparse) else fold
        assert start is not None
        widest = max(plan.numel(i) for i in range(start, len(steps)))
        per_row = 3 * 4 * widest  # a member's activations on one row, with temporaries
        self.rows = max(1, min(len(X), int(batch_size), budget // per_row))
        self.weight_bytes = 0
        if self.folds:
            assert fold is not None
            weight = steps[fold].weight
            assert isinstance(weight, torch.Tensor)
            self.weight_bytes = 4 * weight.numel() * (2 if kind == "gaussian" else 1)
        self.members = max(1, budget // (self.rows * per_row + self.weight_bytes))
        self.cache: dict[int, _Shared] | None = {}
        self.buffer = torch.empty(0)
        self.budget = budget

    def blocks(self) -> Iterator[tuple[int, int, _Shared]]:
        """``(start, stop, shared)`` for every block of rows; the shared parts are kept for
        the next chunk when all of them fit in the budget."""
        for start in range(0, len(self.X), self.rows):
            stop = min(start + self.rows, len(self.X))
            shared = None if self.cache is None else self.cache.get(start)
            if shared is None:
                shared = self._shared(self.X[start:stop])
                if self.cache is not None:
                    self.cache[start] = shared
                    if sum(s.nbytes() for s in self.cache.values()) > self.budget:
                        self.cache = None
            yield start, stop, shared

    def cached_blocks(self) -> list[tuple[int, int, _Shared]] | None:
        """Every block, when the shared parts of all of them fit in the budget (else
        ``None``)."""
        out = []
        for block in self.blocks():
            if self.cache is None:
                return None
            out.append(block)
        return out

    def _shared(self, x: torch.Tensor) -> _Shared:
        plan = self.plan
        # (a copy when a layer before the first Linear / Conv layer may work in place)
        h = x if plan.first == 0 else x.clone()
        for step in plan.steps[: plan.first + 1]:
            h = step(h)
        if not (self.folds or self.sparse):
            return _Shared(h0=h)
        assert plan.fold is not None
        between = plan.steps[plan.first + 1 : plan.fold]
        minus = None
        if self.folds and self.kind == "gaussian":
            minus = -h  # before the layers in between, which may work in place on h
            for step in between:
                minus = step(minus)
            minus = minus.contiguous()
        plus = h
        for step in between:
            plus = step(plus)
        if self.sparse:
            weight = plan.steps[plan.fold].weight
            assert isinstance(weight, torch.Tensor)
            plus = plus.contiguous()
            products = (plus.unsqueeze(0) * weight.unsqueeze(1)).contiguous()
            return _Shared(base=plus @ weight.T, products=products)
        return _Shared(plus=plus.contiguous(), minus=minus)

    def _masked(self, z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``z`` of shape ``(K·R, U, …)`` times the members' masks ``(K, U)``."""
        k = mask.shape[0]
        view = z.view(k, -1, *z.shape[1:])
        return (view * mask.view(k, 1, -1, *([1] * (z.dim() - 2)))).view(z.shape)

    def members_logits(self, shared: _Shared, masks: Sequence[torch.Tensor]) -> torch.Tensor:
        """Logits of ``K`` per-member draws on one block, shape ``(K, R, C)``; ``masks``
        holds every perturbed layer's masks, shape ``(K, units)``."""
        plan = self.plan
        k = masks[0].shape[0]
        if self.folds:
            assert plan.fold is not None
            assert plan.channel_map is not None
            assert shared.plus is not None
            layer = plan.steps[plan.fold]
            weight = layer.weight
            assert isinstance(weight, torch.Tensor)
            expanded = masks[0][:, plan.channel_map]  # (K, inputs of the fold layer)
            rows = shared.plus.shape[0]
            shape = (k, 1, -1, *([1] * (weight.dim() - 2)))
            bias = _bias(layer)
            bias = None if bias is None else bias.repeat(k)

            def stacked(mask: torch.Tensor) -> torch.Tensor:
                return (weight.unsqueeze(0) * mask.view(shape)).reshape(-1, *weight.shape[1:])

            positive = expanded if self.kind == "bernoulli" else expanded.clamp(min=0.0)
            negative = None
            if shared.minus is not None and bool((expanded < 0).any()):
                negative = stacked((-expanded).clamp(min=0.0))
            out_shape = plan.shapes[plan.fold]
            fold_mask = masks[self.position[plan.fold]] if plan.fold in self.position else None
            if isinstance(layer, nn.Linear):
                # (K·U, R) = stacked weights @ inputsᵀ: every member's units are rows of
                # contiguous values, so the logits (K, R, C) below are a cheap view.
                weights = stacked(positive)
                size = weights.shape[0] * rows
                if self.buffer.numel() < size:  # reused: fresh large arrays cost page faults
                    self.buffer = torch.empty(size)
                z = torch.mm(weights, shared.plus.T, out=self.buffer[:size].view(-1, rows))
                if negative is not None:
                    assert shared.minus is not None
                    z.addmm_(negative, shared.minus.T)
                if bias is not None:
                    z += bias[:, None]
                by_member = z.view(k, -1, rows)
                if fold_mask is not None:
                    by_member *= fold_mask.view(k, -1, 1)
                if plan.fold == len(plan.steps) - 1:
                    return by_member.transpose(1, 2)  # the output layer: (K, R, C), a view
                z = by_member.transpose(1, 2).reshape(k * rows, *out_shape)
            else:
                z = _weighted(layer, shared.plus, stacked(positive), bias)
                if negative is not None:
                    assert shared.minus is not None
                    z = z + _weighted(layer, shared.minus, negative, None)
                by_row = z.view(rows, k, *out_shape)  # the members of every row side by side
                if fold_mask is not None:
                    by_row = by_row * fold_mask.view(1, k, -1, *([1] * (len(out_shape) - 1)))
                z = by_row.transpose(0, 1).reshape(k * rows, *out_shape)
            start = plan.fold
        else:
            assert shared.h0 is not None
            h0 = shared.h0
            rows = h0.shape[0]
            mask = masks[0].view(k, 1, -1, *([1] * (h0.dim() - 2)))
            z = (h0.unsqueeze(0) * mask).reshape(k * rows, *h0.shape[1:])
            start = plan.first
        for index in range(start + 1, len(plan.steps)):
            z = plan.steps[index](z)
            if index in self.position:
                z = self._masked(z, masks[self.position[index]])
        return z.view(k, rows, *z.shape[1:])

    def pass_logits(self, shared: _Shared, streams: Sequence[_NoiseStream]) -> torch.Tensor:
        """Logits of one per-pass draw on one block, shape ``(R, C)``; ``streams`` holds the
        pass's noise of every perturbed layer, consumed in row order."""
        plan = self.plan
        if self.sparse:
            assert plan.fold is not None
            assert shared.products is not None
            assert shared.base is not None
            layer = plan.steps[plan.fold]
            dropped = streams[0].dropped(shared.products[0].numel())
            z = shared.base
            if dropped.size:
                z = z - torch.from_numpy(_dropped_products(shared.products, dropped))
            z = z * _scale(streams[0].rate)
            bias = _bias(layer)
            if bias is not None:
                z = z + bias
            start = plan.fold
            if start in self.position:
                z = streams[self.position[start]].apply(z)
        else:
            assert shared.h0 is not None
            z = streams[0].apply(shared.h0)
            start = plan.first
        for index in range(start + 1, len(plan.steps)):
            z = plan.steps[index](z)
            if index in self.position:
                z = streams[self.position[index]].apply(z)
        return z


# -- the explorer ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Draw:
    member: int  # global candidate index
    rate: float
    draw: int
    seed: int


@dataclass
class DropoutExplorer(ExplorerBase):
    """Candidates from random multiplicative noise on the units of Linear/Conv outputs.

    Parameters
    ----------
    kind : ``bernoulli`` (zero a unit with probability p, scale survivors by 1/(1−p)) or
        ``gaussian`` (multiply each unit by 1 + p·z, z ~ N(0, 1)).
    semantics : ``per-member`` (default; one fixed noise pattern per unit for all samples, so
        each member is one well-defined model) or ``per-pass`` (fresh noise for every element
        of every sample in every forward pass, as in the published code; a member is a pass).
    rates : the rate grid; default ``linspace(0, p_max, n_rates)``.
    p_max, n_rates : the default grid's largest rate and size.
    members_per_rate : candidates drawn at each rate; all are pooled and filtered later.
    layers : ``all`` (every Linear/Conv output, the output layer included) or ``hidden`` (every
        Linear/Conv output except the last such layer in module order, the output layer).
    batch_size : rows evaluated together (at most).
    max_activation_bytes : memory bound of the activations of the members evaluated together.

    Notes
    -----
    How members are evaluated together and how the noise is drawn from ``context.rng`` is
    described in the module's docstring (:mod:`multisteal.rashomon.dropout`).
    """

    kind: DropoutKind = "bernoulli"
    semantics: Semantics = "per-member"
    rates: Sequence[float] | None = None
    p_max: float | None = None
    n_rates: int = 21
    members_per_rate: int = 10
    layers: DropoutLayers = "all"
    batch_size: int = 8192
    max_activation_bytes: int = DEFAULT_ACTIVATION_BYTES
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
        if self.max_activation_bytes < 1:
            raise InvalidInputError(BAD_BYTES.format(n=self.max_activation_bytes))
        if self.rates is None and self.p_max is not None:
            p_max = float(self.p_max)
            if not np.isfinite(p_max) or p_max <= 0 or (self.kind == "bernoulli" and p_max >= 1):
                raise InvalidInputError(BAD_P_MAX.format(p_max=self.p_max))
        for rate in self.grid():
            if rate < 0 or (self.kind == "bernoulli" and rate >= 1):
                raise InvalidInputError(BAD_RATE.format(rate=rate))

    def grid(self) -> NDArray[np.float64]:
        """The rates, in order."""
        if self.rates is not None:
            return np.asarray(self.rates, dtype=np.float64)
        return default_rates(self.kind, p_max=self.p_max, n_rates=self.n_rates)

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, one column each in a results table."""
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

    def accepts(self, model: Classifier) -> str | None:
        """``None`` for a torch surrogate (a fitted ``module_``, also behind a raw-input
        pipeline) with a layer to perturb; otherwise the reason (:data:`NOT_TORCH`,
        :data:`NO_HIDDEN_LAYERS`, :data:`NO_LAYERS`)."""
        _, inner = unwrap(model)
        module = getattr(inner, "module_", None)
        if not isinstance(module, nn.Module):
            return NOT_TORCH
        if not perturbed_modules(module, self.layers):
            return NO_HIDDEN_LAYERS if perturbed_modules(module, "all") else NO_LAYERS
        return None

    def member_seeds(self, rng: np.random.Generator) -> NDArray[np.int64]:
        """The seeds of all draws, shape ``(n_rates, members_per_rate)``: one draw from
        ``rng`` (the explorer's first and only use of it)."""
        shape = (self.grid().size, self.members_per_rate)
        seeds: NDArray[np.int64] = rng.integers(0, SEED_HIGH, size=shape, dtype=np.int64)
        return seeds

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """The candidates in chunks of at most ``context.members_per_chunk(C)`` members.

        Row 0 of the first chunk is the reference (rate 0, draw −1, exactly the surrogate's
        outputs); then ``members_per_rate`` draws per rate, rate by rate. ``params`` has the
        columns member (global index), rate, draw, reference, explorer, dropout_kind,
        dropout_semantics and dropout_layers.

        Raises
        ------
        InvalidInputError
            If the surrogate is not a torch network, or has no layer to perturb.
        """
        check_accepts(self, context.surrogate)
        encode, inner = unwrap(context.surrogate)
        module = inner.module_
        assert isinstance(module, nn.Module)
        targets = perturbed_modules(module, self.layers)
        if not targets:
            if perturbed_modules(module, "all"):
                raise InvalidInputError(NO_HIDDEN_LAYERS)
            raise InvalidInputError(NO_LAYERS)
        return self._chunks(context, encode, inner, module, targets)

    def _chunks(
        self,
        context: ExplorationContext,
        encode: Callable[[Any], Any],
        inner: Any,
        module: nn.Module,
        targets: list[nn.Module],
    ) -> Iterator[Candidates]:
        names = list(context.inputs)
        encoded = [np.asarray(encode(context.inputs[k]), dtype=np.float32) for k in names]
        reference = [
            _widen(np.asarray(inner.predict_proba(x), dtype=np.float64), context.surrogate)
            if len(x)
            else None
            for x in encoded
        ]
        n_classes = next((r.shape[1] for r in reference if r is not None), 0)
        if n_classes == 0:
            n_classes = int(getattr(context.surrogate, "n_classes_", 2))
        sizes = [len(x) for x in encoded]
        starts = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        full = [x for x in encoded if len(x)]
        X = torch.from_numpy(np.concatenate(full)) if full else torch.zeros((0,))
        ref_all = (
            np.concatenate([r for r in reference if r is not None])
            if full
            else np.zeros((0, n_classes))
        )
        seeds = self.member_seeds(context.rng)
        draws = [
            _Draw(1 + i * self.members_per_rate + j, float(rate), j, int(seeds[i, j]))
            for i, rate in enumerate(self.grid())
            for j in range(self.members_per_rate)
        ]
        evaluator = _Evaluator(self, module, targets, X, context.surrogate)
        per_chunk = context.members_per_chunk(n_classes)
        evaluator.prepare(draws, per_chunk, n_classes)
        total = 1 + len(draws)
        for start in range(0, total, per_chunk):
            stop = min(start + per_chunk, total)
            chunk = draws[max(0, start - 1) : stop - 1]  # draw d is member d + 1
            # torch's allocator maps large blocks with huge pages: far fewer page faults
            # than a fresh numpy array when the outputs are first written
            shape = (stop - start, len(X), n_classes)
            outputs: NDArray[np.float64] = torch.empty(shape, dtype=torch.float64).numpy()
            rows: list[dict[str, object]] = []
            if start == 0:
                outputs[0] = ref_all
                rows.append({"member": 0, "rate": 0.0, "draw": -1, "reference": True})
            for d in chunk:
                rows.append(
                    {"member": d.member, "rate": d.rate, "draw": d.draw, "reference": False}
                )
            if len(X):
                evaluator.fill(chunk, outputs, start, ref_all)
            params = pd.DataFrame(rows)
            params["explorer"] = self.name
            params["dropout_kind"] = self.kind
            params["dropout_semantics"] = self.semantics
            params["dropout_layers"] = self.layers
            parts = {name: outputs[:, starts[i] : starts[i + 1]] for i, name in enumerate(names)}
            yield Candidates(self.name, params, parts)


def _widen(probs: NDArray[np.float64], surrogate: Any) -> NDArray[np.float64]:
    """Probabilities of the classifier's classes placed at their class index, when the
    surrogate (a raw-input pipeline) knows more classes than its classifier saw."""
    n_classes = getattr(surrogate, "n_classes_", None)
    columns = getattr(surrogate, "columns_", None)
    if n_classes is None or columns is None or probs.shape[-1] == n_classes:
        return probs
    out = np.zeros((*probs.shape[:-1], int(n_classes)), dtype=np.float64)
    out[..., np.asarray(columns, dtype=np.int64)] = probs
    return out


def _softmax(logits: torch.Tensor, out: NDArray[np.float64] | None = None) -> NDArray[np.float64]:
    """Softmax over the last axis in float64, into ``out`` when given (a loop over few
    classes: numpy's reductions over a short last axis are slow)."""
    z = logits.numpy()
    n_classes = z.shape[-1]
    if n_classes > 16 or n_classes == 0:
        probs = softmax(z.astype(np.float64))
        if out is None:
            return probs
        out[...] = probs
        return out
    if out is None:
        out = np.empty(z.shape, dtype=np.float64)
    # Class by class (z[..., c] is contiguous in the layouts the evaluation produces), in slabs
    # along the first axis so the temporaries stay small (and in cache).
    flat_z = z.reshape(-1, *z.shape[-2:]) if z.ndim >= 2 else z.reshape(1, 1, -1)
    flat_out = out.reshape(flat_z.shape)
    step = max(1, _SOFTMAX_SLAB // max(1, flat_z.shape[1]))
    for s in range(0, flat_z.shape[0], step):
        _softmax_slab(flat_z[s : s + step], flat_out[s : s + step])
    return out


def _softmax_slab(z: NDArray[np.float32], out: NDArray[np.float64]) -> None:
    classes = [z[..., c] for c in range(z.shape[-1])]
    top = classes[0].astype(np.float64)
    for column in classes[1:]:
        np.maximum(top, column, out=top)
    total = np.zeros_like(top)
    shifted = np.empty_like(top)
    for c, column in enumerate(classes):
        np.subtract(column, top, out=shifted)
        np.exp(shifted, out=shifted)
        total += shifted
        out[..., c] = shifted
    np.reciprocal(total, out=total)
    for c in range(len(classes)):
        out[..., c] *= total


def _write(out: NDArray[np.float64], logits: torch.Tensor, surrogate: Any) -> None:
    """The probabilities of ``logits`` into ``out`` (placed at their classes, :func:`_widen`)."""
    if logits.shape[-1] == out.shape[-1]:
        _softmax(logits, out)
    else:
        out[...] = _widen(_softmax(logits), surrogate)


class _Evaluator:
    """Fills the outputs of the draws of one chunk (batched along a plan, or by hooked
    passes when the network has none).

    Per member, the draws to compute are split into fixed groups evaluated together, the same
    whatever the output chunks: a group that straddles two chunks is evaluated again (the same
    computation, so the same bits), and chunking never changes a candidate.
    """

    def __init__(
        self,
        explorer: DropoutExplorer,
        module: nn.Module,
        targets: list[nn.Module],
        X: torch.Tensor,
        surrogate: Any,
    ) -> None:
        self.explorer = explorer
        self.module = module
        self.units = layer_units(targets)
        self.X = X
        self.surrogate = surrogate
        self.kind = explorer.kind
        self.per_member = explorer.semantics == "per-member"
        plan = _plan(module, targets, tuple(X.shape[1:])) if len(X) else None
        self.batched = (
            None
            if plan is None
            else _Batched(
                plan,
                X,
                kind=self.kind,
                semantics=explorer.semantics,
                budget=explorer.max_activation_bytes,
                batch_size=explorer.batch_size,
            )
        )
        self.original: dict[int, int] = {}  # a copy's member -> the member it copies
        self.group: dict[int, int] = {}  # a computed member -> its group
        self.groups: list[list[_Draw]] = []
        self.later: dict[int, int] = {}  # an original -> the last chunk holding a copy of it
        self.cache: dict[int, NDArray[np.float64]] = {}
        self.room = 0  # how many originals' outputs the cache may hold
        self.per_chunk = 1

    def prepare(self, draws: Sequence[_Draw], per_chunk: int, n_classes: int) -> None:
        """Group the per-member draws. Draws with identical masks (frequent with small layers)
        are computed once and copied, so they get bit-identical outputs (and count as one
        model); originals with copies in later chunks are cached within
        ``max_activation_bytes`` (beyond it, their group is evaluated again)."""
        self.per_chunk = per_chunk
        if not self.per_member:
            return
        first: dict[bytes, int] = {}
        computed: list[_Draw] = []
        for d in draws:
            if d.rate == 0.0:
                continue
            masks = self._masks(d)
            digest = hashlib.sha256(b"".join(m.numpy().tobytes() for m in masks)).digest()
            original = first.setdefault(digest, d.member)
            if original == d.member:
                computed.append(d)
            else:
                self.original[d.member] = original
                if d.member // per_chunk != original // per_chunk:
                    self.later[original] = d.member // per_chunk
        size = 1 if self.batched is None else self.batched.members
        self.groups = [computed[s : s + size] for s in range(0, len(computed), size)]
        self.group = {d.member: g for g, group in enumerate(self.groups) for d in group}
        per_member = max(1, len(self.X) * n_classes * 8)
        self.room = self.explorer.max_activation_bytes // per_member

    def _masks(self, draw: _Draw) -> list[torch.Tensor]:
        return member_masks(draw.seed, self.units, self.kind, draw.rate)

    def fill(
        self,
        chunk: Sequence[_Draw],
        outputs: NDArray[np.float64],
        offset: int,
        reference: NDArray[np.float64],
    ) -> None:
        """Write the outputs of ``chunk`` (global members ``offset + row``) into ``outputs``."""
        stop = offset + len(outputs)
        needed: set[int] = set()  # computed members whose outputs this chunk needs
        for d in chunk:
            if d.rate == 0.0:
                outputs[d.member - offset] = reference  # noise exactly 1: the reference
            else:
                original = self.original.get(d.member, d.member)
                if original >= offset or original not in self.cache:
                    needed.add(original)
        extra: dict[int, NDArray[np.float64]] = {}
        with _eval_mode(self.module):
            if not self.per_member:
                self._fill_passes([d for d in chunk if d.rate != 0.0], outputs, offset)
            elif needed:
                groups = sorted({self.group[m] for m in needed})
                outside = {m for m in needed if not offset <= m < stop}
                extra = self._fill_members(
                    [self.groups[g] for g in groups], outputs, offset, outside
                )
        for d in chunk:
            if d.member not in self.original:
                continue
            original = self.original[d.member]
            if offset <= original < stop:
                outputs[d.member - offset] = outputs[original - offset]
            elif original in extra:
                outputs[d.member - offset] = extra[original]
            else:
                outputs[d.member - offset] = self.cache[original]
        index = offset // self.per_chunk
        for member in [m for m in self.cache if self.later[m] <= index]:
            del self.cache[member]  # no later chunk copies it
        for d in chunk:
            if d.member in self.later and len(self.cache) < self.room:
                self.cache[d.member] = outputs[d.member - offset].copy()

    def _fill_members(
        self,
        groups: Sequence[Sequence[_Draw]],
        outputs: NDArray[np.float64],
        offset: int,
        outside: set[int],
    ) -> dict[int, NDArray[np.float64]]:
        """Evaluate whole groups (the same groups whatever the chunks, so the same bits);
        members of the chunk go to ``outputs``, those in ``outside`` (originals of copies in
        the chunk) are returned, the others are dropped."""
        stop = offset + len(outputs)
        n_classes = outputs.shape[-1]
        extra = {m: np.empty((len(self.X), n_classes)) for m in outside}

        def target(member: int) -> NDArray[np.float64] | None:
            if offset <= member < stop:
                row: NDArray[np.float64] = outputs[member - offset]
                return row
            return extra.get(member)

        batched = self.batched
        if batched is None:
            for group in groups:
                for d in group:
                    out = target(d.member)
                    if out is None:
                        continue
                    logits = hooked_forward(
                        self.module,
                        self.X,
                        self._masks(d),
                        layers=self.explorer.layers,
                        batch_size=self._hooked_rows(),
                    )
                    _write(out, logits, self.surrogate)
            return extra
        stacked = []
        for group in groups:
            masks = [self._masks(d) for d in group]
            stacked.append([torch.stack([m[q] for m in masks]) for q in range(len(self.units))])
        for start, end, shared in batched.blocks():
            for group, group_masks in zip(groups, stacked, strict=True):
                logits = batched.members_logits(shared, group_masks)
                first = group[0].member
                inside = all(offset <= d.member < stop for d in group)
                contiguous = group[-1].member - first == len(group) - 1
                if inside and contiguous:
                    rows = outputs[first - offset : first - offset + len(group), start:end]
                    _write(rows, logits, self.surrogate)
                else:
                    for i, d in enumerate(group):
                        out = target(d.member)
                        if out is not None:
                            _write(out[start:end], logits[i], self.surrogate)
        return extra

    def _fill_passes(
        self,
        draws: Sequence[_Draw],
        outputs: NDArray[np.float64],
        offset: int,
    ) -> None:
        def streams(d: _Draw) -> list[_NoiseStream]:
            return [_NoiseStream(d.seed, q, self.kind, d.rate) for q in range(len(self.units))]

        batched = self.batched
        if batched is None:
            for d in draws:
                own = streams(d)

                def noise(q: int, out: torch.Tensor, own: list[_NoiseStream] = own) -> torch.Tensor:
                    return own[q].multiplier(tuple(out.shape))

                logits = hooked_forward(
                    self.module,
                    self.X,
                    noise,
                    layers=self.explorer.layers,
                    batch_size=self._hooked_rows(),
                )
                _write(outputs[d.member - offset], logits, self.surrogate)
            return
        blocks = batched.cached_blocks()
        if blocks is not None:  # pass by pass: a pass's streams live for one pass
            for d in draws:
                own = streams(d)
                for start, stop, shared in blocks:
                    logits = batched.pass_logits(shared, own)
                    _write(outputs[d.member - offset, start:stop], logits, self.surrogate)
            return
        every = {d.member: streams(d) for d in draws}  # block by block, sharing each block
        for start, stop, shared in batched.blocks():
            for d in draws:
                logits = batched.pass_logits(shared, every[d.member])
                _write(outputs[d.member - offset, start:stop], logits, self.surrogate)

    def _hooked_rows(self) -> int:
        size = self.explorer.batch_size
        return size if self.X.dim() <= 2 else min(size, 1024)
