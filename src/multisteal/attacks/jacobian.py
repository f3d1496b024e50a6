"""Jacobian-based dataset augmentation.

Papernot, McDaniel, Goodfellow, Jha, Celik & Swami, "Practical Black-Box Attacks against
Machine Learning", AsiaCCS 2017, section 4 (Algorithm 1) and section 6 (periodic step size,
reservoir sampling).

The attacker holds a small seed set ``S_0`` of inputs (drawn from its pool) and grows it one
*substitute training epoch* ``ρ`` at a time:

1. query the oracle on the new inputs of ``S_ρ`` (its answered label is ``Õ(x)``);
2. fit the substitute ``F`` on everything answered so far (``context.fit_surrogate``);
3. ``S_{ρ+1} = S_ρ ∪ {x + λ_ρ · sign(J_F(x)[Õ(x)]) : x ∈ S_ρ}`` with the periodic step size
   ``λ_ρ = λ · (−1)^⌊ρ/τ⌋``.

The set doubles every epoch; when the inputs to augment outnumber the rows left on the
budget, a uniformly random subset of them (as many as the budget still allows) is augmented,
as Papernot et al.'s reservoir sampling keeps later epochs small. The attack stops when the
budget is spent exactly.

``J_F(x)[k]`` is the gradient of the substitute network's output (its logit) for class ``k``
with respect to its encoded input (torch autograd, the module in eval mode). The API takes raw
inputs only, so the step is mapped back to the raw domain:

* numerical columns move by ``λ_ρ · (high − low) · sign(∂F/∂column)``: the encoder
  standardises with a positive scale, so the encoded gradient's sign is the raw one; integer
  columns move by that step rounded to a whole number, and by at least one unit (so a small
  range does not round the step away); values are clipped to ``[low, high]``;
* categorical columns take a discrete step: a move from the current category ``c`` to ``k``
  changes the one-hot input by ``e_k − e_c``, so to first order the logit changes by
  ``g_k − g_c``. For ``λ_ρ > 0`` the record moves to the category with the largest gradient
  component when it exceeds the current category's (for ``λ_ρ < 0`` the smallest, when below);
  otherwise it keeps its category. Only categories the published spec lists and the
  surrogate's encoder has a column for are candidates (a category the encoder never saw
  encodes as zeros: its component counts as 0);
* images move by ``λ_ρ · (high − low) · sign(gradient)`` per pixel (the encoder's
  ``(n, C, H, W)`` layout is turned back into the API's channels-last one) and are clipped to
  the value range;
* against an API that takes encoded vectors: ``x + λ_ρ · sign(gradient)``, as in the paper.

Text is not applicable: strings are discrete and have no gradient step. The attack works on
label-only answers (Papernot et al.'s setting) and on every score mode: it only uses the
answered labels to pick the gradient's class, while the substitute trains on whatever the
answers reveal. It needs a torch surrogate (it follows the surrogate's gradients).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, Transcript, concat_answers
from multisteal.data.inputs import (
    ImageSpec,
    InputSpec,
    TabularSpec,
    concat_inputs,
    n_inputs,
    take_inputs,
)
from multisteal.data.preprocessing import OTHER_CATEGORY
from multisteal.errors import InvalidInputError

__all__ = [
    "BAD_LAMBDA",
    "BAD_MAX_ROUNDS",
    "BAD_SEED_SIZE",
    "BAD_TAU",
    "CATEGORIES_MISMATCH",
    "LABEL_NOT_IN_SURROGATE",
    "NOT_TEXT",
    "NO_BUDGET",
    "NO_FEATURE_GROUPS",
    "NO_TORCH_MODULE",
    "POOL_TOO_SMALL_FOR_SEED",
    "SEED_TOO_SMALL",
    "SHAPE_MISMATCH",
    "JacobianAttack",
    "jacobian_augment",
    "label_gradients",
    "step_size",
]

NAME = "jacobian"
BAD_LAMBDA = "The jacobian attack's lambda_ must be a finite number > 0; got {value!r}."
BAD_TAU = "The jacobian attack's tau must be a whole number >= 1; got {value!r}."
BAD_SEED_SIZE = (
    "The jacobian attack's seed_size must be a whole number >= 1 or None; got {value!r}."
)
BAD_MAX_ROUNDS = "The jacobian attack's max_rounds must be a whole number >= 1; got {value!r}."
NOT_TEXT = (
    "The jacobian attack steps inputs along the sign of the surrogate's gradient, and strings "
    "are discrete: text inputs have no such step. Use the pool attack for text."
)
NO_BUDGET = "The jacobian attack has no budget to spend: the API's ledger has 0 rows left."
POOL_TOO_SMALL_FOR_SEED = (
    "The jacobian attack seeds with {seed} inputs of the attacker's pool, but the pool has "
    "{size}; lower seed_size."
)
SEED_TOO_SMALL = (
    "A seed set of {seed} inputs doubles to at most {reach} queries in max_rounds={rounds} "
    "augmentation rounds, fewer than the budget of {budget}; raise seed_size or max_rounds "
    "(the attacker's pool holds {size} inputs)."
)
NO_TORCH_MODULE = (
    "The jacobian attack follows the gradients of the attacker's surrogate, but the surrogate "
    "it was given ({model}) has no torch module; use a torch surrogate (mlp, logistic / "
    "torch-logistic, cnn)."
)
LABEL_NOT_IN_SURROGATE = (
    "The oracle answered class {label}, but the surrogate's network has {width} outputs for the "
    "classes {classes}: its gradient for that class does not exist."
)
NO_FEATURE_GROUPS = (
    "The jacobian attack maps the surrogate's gradient back to record columns through its "
    "encoder's feature_groups_, but the encoder ({encoder}) has none, or no group for column "
    "{column!r}."
)
CATEGORIES_MISMATCH = (
    "The surrogate's encoder ({encoder}) lists {known} categories for column {column!r} but "
    "gives it {width} encoded columns: the jacobian attack cannot tell which column is which "
    "category."
)
SHAPE_MISMATCH = (
    "The surrogate's encoded inputs have shape {encoded}, which does not match the raw inputs' "
    "shape {raw}: the jacobian attack cannot map its gradient back to the API's inputs."
)

_GRADIENT_BATCH = 1024


def step_size(lambda_: float, tau: int, rho: int) -> float:
    """Papernot et al.'s periodic step size ``λ_ρ = λ · (−1)^⌊ρ/τ⌋``.

    >>> [step_size(0.1, 2, rho) for rho in range(5)]
    [0.1, 0.1, -0.1, -0.1, 0.1]
    """
    return lambda_ * (-1.0) ** (rho // tau)


def _torch_module(surrogate: Any) -> torch.nn.Module:
    try:
        module = surrogate.module_
    except AttributeError:
        module = None
    if not isinstance(module, torch.nn.Module):
        model = getattr(surrogate, "model_", surrogate)  # a pipeline: name its classifier
        raise InvalidInputError(NO_TORCH_MODULE.format(model=type(model).__name__))
    return module


def _encode(surrogate: Any, X: pd.DataFrame | NDArray[Any]) -> NDArray[np.float32]:
    """The surrogate network's inputs for raw inputs ``X`` (bare networks take ``X`` itself)."""
    encode = getattr(surrogate, "encode", None)
    encoded = encode(X) if callable(encode) else np.asarray(X, dtype=np.float64)
    return np.asarray(encoded, dtype=np.float32)


def _output_columns(surrogate: Any, labels: NDArray[np.int64], width: int) -> NDArray[np.int64]:
    """The network's output column for each answered label (a pipeline whose classifier saw
    only some classes places them at ``columns_``)."""
    classes = getattr(surrogate, "columns_", None)
    known = (
        np.asarray(classes, dtype=np.int64)
        if classes is not None and len(classes) == width
        else np.arange(width, dtype=np.int64)
    )
    position = {int(c): j for j, c in enumerate(known)}
    out = np.empty(labels.shape[0], dtype=np.int64)
    for i, label in enumerate(labels.tolist()):
        column = position.get(int(label))
        if column is None:
            raise InvalidInputError(
                LABEL_NOT_IN_SURROGATE.format(
                    label=int(label), width=width, classes=", ".join(map(str, known.tolist()))
                )
            )
        out[i] = column
    return out


def label_gradients(
    surrogate: Any, encoded: NDArray[np.float32], labels: NDArray[np.int64]
) -> NDArray[np.float64]:
    """``J_F(x)[label]``: the gradient of the surrogate network's output (logit) for each
    row's ``label`` with respect to its encoded input; same shape as ``encoded``."""
    module = _torch_module(surrogate)
    module.eval()
    out = np.empty(encoded.shape, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    for start in range(0, encoded.shape[0], _GRADIENT_BATCH):
        stop = min(start + _GRADIENT_BATCH, encoded.shape[0])
        x = torch.tensor(encoded[start:stop], dtype=torch.float32, requires_grad=True)
        logits = module(x)
        columns = _output_columns(surrogate, labels[start:stop], int(logits.shape[1]))
        picked = logits.gather(1, torch.from_numpy(columns)[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, x)
        out[start:stop] = grad.detach().double().numpy()
    return out


def jacobian_augment(
    surrogate: Any,
    X: pd.DataFrame | NDArray[Any],
    labels: NDArray[np.int64],
    *,
    step: float,
    spec: InputSpec | None,
) -> pd.DataFrame | NDArray[Any]:
    """``x + step · sign(J_F(x)[label])`` for each raw input of ``X``, mapped back to the raw
    domain of ``spec`` (see the module docstring); ``step`` may be negative."""
    if spec is not None and spec.modality == "text":
        raise InvalidInputError(NOT_TEXT)
    encoded = _encode(surrogate, X)
    grad = label_gradients(surrogate, encoded, labels)
    if isinstance(spec, TabularSpec):
        return _step_records(surrogate, spec.validate(X), encoded, grad, step, spec)
    if isinstance(spec, ImageSpec):
        return _step_images(np.asarray(X), grad, step, spec)
    raw = np.asarray(X, dtype=np.float64)
    if grad.shape != raw.shape:
        raise InvalidInputError(SHAPE_MISMATCH.format(encoded=grad.shape, raw=raw.shape))
    out: NDArray[np.float64] = raw + step * np.sign(grad)
    return out


def _step_images(
    images: NDArray[Any], grad: NDArray[np.float64], step: float, spec: ImageSpec
) -> NDArray[np.float64]:
    if grad.ndim != 4:
        raise InvalidInputError(SHAPE_MISMATCH.format(encoded=grad.shape, raw=images.shape))
    channels_last = grad.transpose(0, 2, 3, 1)
    if spec.channels == 0:
        channels_last = channels_last[..., 0]
    if channels_last.shape != images.shape:
        raise InvalidInputError(SHAPE_MISMATCH.format(encoded=grad.shape, raw=images.shape))
    moved = images.astype(np.float64) + step * (spec.high - spec.low) * np.sign(channels_last)
    out: NDArray[np.float64] = np.clip(moved, spec.low, spec.high)
    return out


def _step_records(
    surrogate: Any,
    frame: pd.DataFrame,
    encoded: NDArray[np.float32],
    grad: NDArray[np.float64],
    step: float,
    spec: TabularSpec,
) -> pd.DataFrame:
    encoder = getattr(surrogate, "encoder_", None)
    groups = dict(getattr(encoder, "feature_groups_", ()))
    out: dict[str, Any] = {}
    for column in spec.columns:
        cols = groups.get(column.name)
        if cols is None:
            raise InvalidInputError(
                NO_FEATURE_GROUPS.format(encoder=type(encoder).__name__, column=column.name)
            )
        cols = np.asarray(cols, dtype=np.int64)
        g = grad[:, cols]
        if column.kind == "numerical":
            values = frame[column.name].to_numpy(dtype=np.float64)
            direction = np.sign(g[:, 0])
            span = column.high - column.low
            if column.integer:
                units = max(1.0, math.floor(abs(step) * span + 0.5))
                moved = values + math.copysign(units, step) * direction
            else:
                moved = values + step * span * direction
            out[column.name] = np.clip(moved, column.low, column.high)
        else:
            known = tuple(getattr(encoder, "categories_", {}).get(column.name, ()))
            if len(known) != cols.shape[0]:
                raise InvalidInputError(
                    CATEGORIES_MISMATCH.format(
                        encoder=type(encoder).__name__,
                        known=len(known),
                        column=column.name,
                        width=cols.shape[0],
                    )
                )
            out[column.name] = _step_categories(
                frame[column.name].to_numpy(dtype=object),
                g,
                encoded[:, cols].astype(np.float64),
                known,
                allowed=set(column.categories),
                capped=column.name in getattr(encoder, "capped_", {}),
                step=step,
            )
    return pd.DataFrame(out, columns=list(spec.names))


def _step_categories(
    values: NDArray[Any],
    g: NDArray[np.float64],
    onehot: NDArray[np.float64],
    known: tuple[str, ...],
    *,
    allowed: set[str],
    capped: bool,
    step: float,
) -> NDArray[Any]:
    """Each record's category after a discrete step along the one-hot gradient ``g``."""
    candidates = [
        j
        for j, category in enumerate(known)
        if category in allowed and not (capped and category == OTHER_CATEGORY)
    ]
    if not candidates:
        return values
    names = np.asarray([known[j] for j in candidates], dtype=object)
    sub = g[:, candidates]
    current = (g * onehot).sum(axis=1)  # the current category's component (0 if unknown)
    rows = np.arange(g.shape[0])
    if step > 0:
        pick = np.argmax(sub, axis=1)
        better = sub[rows, pick] > current
    else:
        pick = np.argmin(sub, axis=1)
        better = sub[rows, pick] < current
    out: NDArray[Any] = np.where(better, names[pick], values).astype(object)
    return out


def _join(first: Transcript, second: Transcript) -> Transcript:
    return Transcript(
        concat_inputs([first.queries, second.queries]),
        concat_answers([first.answers, second.answers]),
    )


@dataclass
class JacobianAttack:
    """Papernot et al.'s Jacobian-based dataset augmentation (see the module docstring).

    Parameters
    ----------
    lambda_ : the step size ``λ`` (a fraction of each column's or pixel's range; the step
        itself for encoded vectors). Papernot et al. use 0.1.
    tau : the period ``τ`` of the step's sign flips, ``λ_ρ = λ · (−1)^⌊ρ/τ⌋`` (3 in the paper).
    seed_size : the inputs drawn from the pool as the seed set ``S_0``; ``None``: 10 per class,
        or more when needed for ``max_rounds`` doublings to reach the budget
        (``⌈budget / 2^max_rounds⌉``), at most the budget and the pool.
    max_rounds : the most substitute epochs ``ρ`` (each fits the surrogate once); the seed set
        must double to the budget within them (6 in the paper).
    """

    lambda_: float = 0.1
    tau: int = 3
    seed_size: int | None = None
    max_rounds: int = 6
    name: str = field(default=NAME, init=False)

    def __post_init__(self) -> None:
        if isinstance(self.lambda_, bool) or not (
            isinstance(self.lambda_, int | float)
            and math.isfinite(self.lambda_)
            and self.lambda_ > 0
        ):
            raise InvalidInputError(BAD_LAMBDA.format(value=self.lambda_))
        if not _whole(self.tau, 1):
            raise InvalidInputError(BAD_TAU.format(value=self.tau))
        if self.seed_size is not None and not _whole(self.seed_size, 1):
            raise InvalidInputError(BAD_SEED_SIZE.format(value=self.seed_size))
        if not _whole(self.max_rounds, 1):
            raise InvalidInputError(BAD_MAX_ROUNDS.format(value=self.max_rounds))

    def initial_size(self, budget: int, n_classes: int, pool_size: int) -> int:
        """The size of the seed set ``S_0`` (raises when it cannot reach ``budget``)."""
        needed = math.ceil(budget / (1 << self.max_rounds))
        if self.seed_size is None:
            seed = min(max(10 * n_classes, needed), budget, pool_size)
        else:
            seed = min(self.seed_size, budget)
            if seed > pool_size:
                raise InvalidInputError(POOL_TOO_SMALL_FOR_SEED.format(seed=seed, size=pool_size))
        if seed < needed:
            raise InvalidInputError(
                SEED_TOO_SMALL.format(
                    seed=seed,
                    reach=seed * (1 << self.max_rounds),
                    rounds=self.max_rounds,
                    budget=budget,
                    size=pool_size,
                )
            )
        return seed

    def run(self, context: AttackContext) -> Transcript:
        """Query the seed set, then augment it until the budget is spent exactly."""
        spec = context.input_spec
        if spec is not None and spec.modality == "text":
            raise InvalidInputError(NOT_TEXT)
        pool = context.require_pool(self.name)
        budget = context.budget
        if budget < 1:
            raise InvalidInputError(NO_BUDGET)
        size = n_inputs(pool)
        seed = self.initial_size(budget, context.api.n_classes, size)
        rows = np.sort(context.rng.choice(size, size=seed, replace=False)).astype(np.int64)
        transcript = context.query(take_inputs(pool, rows), source_index=rows)
        rho = 0
        while (remaining := context.budget) > 0:
            surrogate = context.fit_surrogate(
                self.name, transcript, int(context.rng.integers(2**31 - 1))
            )
            n = len(transcript)
            chosen = (
                np.arange(n, dtype=np.int64)
                if n <= remaining
                else np.sort(context.rng.choice(n, size=remaining, replace=False)).astype(np.int64)
            )
            augmented = jacobian_augment(
                surrogate,
                take_inputs(transcript.queries, chosen),
                transcript.answers.labels[chosen],
                step=step_size(self.lambda_, self.tau, rho),
                spec=spec,
            )
            transcript = _join(transcript, context.query(augmented))
            rho += 1
        return transcript


def _whole(value: object, low: int) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool) and int(value) >= low
