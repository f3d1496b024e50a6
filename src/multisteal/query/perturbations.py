"""Score-perturbing defences: they change the revealed scores, not only how many are shown.

Each class is a :class:`~multisteal.query.api.Defence`: ``defence(inputs, answer) -> answer``
with a ``name`` (its :data:`~multisteal.query.defences.DEFENCES` key) and ``mode_after``.
Label-only answers (``scores is None``) pass through every one of them unchanged.

* :class:`GaussianNoise` — add N(0, σ²) to the revealed probabilities;
* :class:`ReverseSigmoid` — Lee, Edwards, Molloy & Srivastava, "Defending against NN model
  stealing attacks using deceptive perturbations", IEEE S&P Workshops 2019;
* :class:`HighConfidence` — hide every score below a cutoff;
* :class:`MAD` — maximising angular deviation, Orekondy, Schiele & Fritz, "Prediction
  Poisoning: Towards Defenses Against DNN Model Stealing Attacks", ICLR 2020.

Rows where every score is revealed are returned as distributions (non-negative, summing to 1).
A row that an earlier defence left partly hidden (``top-k``, ``high-confidence``) keeps its
hidden entries at 0; its revealed entries are clipped to at least 0 and scaled down only if they
sum to more than 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from multisteal.errors import InvalidInputError
from multisteal.query.outputs import Answer

__all__ = [
    "MAD",
    "GaussianNoise",
    "HighConfidence",
    "ReverseSigmoid",
    "angular_deviation",
    "defence_features",
    "mad_candidates",
    "reverse_sigmoid",
]

BAD_SIGMA = "gaussian-noise needs a finite sigma >= 0, got {value!r}."
BAD_BETA = "reverse-sigmoid needs a finite beta > 0, got {value!r}."
BAD_GAMMA = "reverse-sigmoid needs a finite gamma > 0, got {value!r}."
BAD_CUTOFF = "high-confidence needs 0 < cutoff <= 1, got {value!r}."
BAD_EPSILON = "mad needs a finite epsilon >= 0 (an L1 distance), got {value!r}."
MAD_NEEDS_FULL = (
    "The mad defence perturbs whole probability vectors, but its answers arrive as {mode} "
    "(some scores hidden): place mad before top-k and high-confidence in the defence chain."
)
MAD_WIDTH = (
    "The mad defence's proxy model was built for {expected} input features, but this batch "
    "encodes to {got}."
)
NOT_NUMERIC = (
    "The defender needs the queries as numbers ({problem}): give the target model (one with "
    "an encode method) or an encode function so records, images or texts can be encoded."
)

_CLIP = 1e-6  # reverse sigmoid: y is clipped to [1e-6, 1 - 1e-6] before the logit


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def defence_features(
    inputs: Any, model: Any = None, encode: Callable[[Any], Any] | None = None
) -> NDArray[np.float64]:
    """The defender's view of a query batch as a dense ``(n, d)`` float matrix.

    ``encode(inputs)`` when given, else ``model.encode(inputs)`` when the model has one (an
    :class:`~multisteal.models.InputPipeline`: records, images or texts → the classifier's
    inputs), else the inputs themselves. Sparse encodings are densified and image tensors
    flattened to one row per input.
    """
    if encode is not None:
        encoded = encode(inputs)
    elif model is not None and hasattr(model, "encode"):
        encoded = model.encode(inputs)
    else:
        encoded = inputs
    if sparse.issparse(encoded):
        encoded = encoded.toarray()
    try:
        arr = np.asarray(encoded, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(NOT_NUMERIC.format(problem=exc)) from None
    if arr.ndim == 0:
        raise InvalidInputError(NOT_NUMERIC.format(problem="got a scalar"))
    if arr.ndim == 1:
        return arr.reshape(-1, 1)
    return arr.reshape(arr.shape[0], -1)


def _masked_argmax(scores: NDArray[np.float64], revealed: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Argmax over the revealed entries of each row (ties to the lowest class index)."""
    out: NDArray[np.int64] = np.argmax(np.where(revealed, scores, -np.inf), axis=1).astype(np.int64)
    return out


def _renormalise(
    perturbed: NDArray[np.float64],
    original: NDArray[np.float64],
    revealed: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Clip to >= 0 (hidden entries 0) and rescale: fully revealed rows to a sum of 1, partly
    revealed rows only when their sum exceeds 1. A row that clips to all zeros becomes the
    one-hot of its largest perturbed entry — never the unperturbed ``original``, which would
    hand the attacker the exact probabilities on those rows."""
    clipped = np.where(revealed, np.clip(perturbed, 0.0, None), 0.0)
    total = clipped.sum(axis=1, keepdims=True)
    full = revealed.all(axis=1, keepdims=True)
    scale = np.where(full, total, np.maximum(total, 1.0))
    safe = np.where(total > 0, scale, 1.0)
    top = np.zeros_like(clipped)
    top[np.arange(len(top)), _masked_argmax(perturbed, revealed)] = 1.0
    out: NDArray[np.float64] = np.where(total > 0, clipped / safe, top)
    return out


def _with(answer: Answer, scores: NDArray[np.float64], labels: NDArray[np.int64]) -> Answer:
    return Answer(
        labels=labels,
        scores=scores,
        revealed=answer.revealed,
        mode=answer.mode,
        n_classes=answer.n_classes,
        leaves=answer.leaves,
    )


@dataclass
class GaussianNoise:
    """Add N(0, σ²) noise to every revealed probability, clip at 0 and renormalise.

    A row whose noisy scores all clip to 0 becomes the one-hot of its largest noisy entry (never
    the exact probabilities). The answer's labels become
    the argmax of the answered scores: the service answers its noisy decision, so honest users
    pay for this defence in accuracy. The noise comes from the defence's own generator
    (``np.random.default_rng(seed)``), so a defence built with the same seed answers the same
    sequence of batches identically.
    """

    sigma: float = 0.1
    seed: int = 0
    name: str = field(default="gaussian-noise", init=False)
    _rng: np.random.Generator = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not _finite(self.sigma) or self.sigma < 0:
            raise InvalidInputError(BAD_SIGMA.format(value=self.sigma))
        self._rng = np.random.default_rng(self.seed)

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        if answer.scores is None or answer.revealed is None:
            return answer
        noise = self._rng.normal(0.0, self.sigma, size=answer.scores.shape)
        scores = _renormalise(answer.scores + noise, answer.scores, answer.revealed)
        return _with(answer, scores, _masked_argmax(scores, answer.revealed))

    def mode_after(self, mode: str) -> str:
        return mode


def reverse_sigmoid(y: NDArray[np.float64], *, beta: float, gamma: float) -> NDArray[np.float64]:
    """The raw reverse-sigmoid perturbation ``y − β·(s(γ·s⁻¹(y)) − ½)`` of Lee et al. (2019),
    elementwise, with ``y`` clipped to ``[1e-6, 1 − 1e-6]`` (before clipping at 0 and the
    renormalisation α)."""
    clipped = np.clip(y, _CLIP, 1.0 - _CLIP)
    logit = np.log(clipped) - np.log1p(-clipped)
    sig = 0.5 * (1.0 + np.tanh(0.5 * gamma * logit))  # s(γ·z), overflow-free
    out: NDArray[np.float64] = clipped - beta * (sig - 0.5)
    return out


@dataclass(frozen=True)
class ReverseSigmoid:
    """The reverse-sigmoid perturbation (Lee, Edwards, Molloy & Srivastava 2019).

    Each revealed score ``y`` (clipped to ``[1e-6, 1 − 1e-6]``) becomes
    ``ŷ = α·(y − β·(s(γ·s⁻¹(y)) − ½))`` with ``s`` the sigmoid, negative entries clipped to 0
    and ``α`` renormalising the row (see the module docstring for partly revealed rows; a row
    that clips to all zeros becomes a one-hot vector, then the argmax guarantee below).

    Argmax-preserving guarantee: the perturbation is not monotone once ``β·γ > 1`` (its slope at
    ``y = ½`` is ``1 − β·γ``), so the raw formula can change which class scores highest. When
    the perturbed argmax differs from the original one — the decision (``answer.labels``) when
    its score is revealed, else the argmax of the revealed scores — the two entries are swapped,
    so the answered argmax is always the original one (the decision and the labels are
    unchanged). Should an exact tie with a lower class index remain after the swap, the kept
    entry is raised by one unit in the last place.
    """

    beta: float = 0.7
    gamma: float = 1.0
    name: str = field(default="reverse-sigmoid", init=False)

    def __post_init__(self) -> None:
        if not _finite(self.beta) or self.beta <= 0:
            raise InvalidInputError(BAD_BETA.format(value=self.beta))
        if not _finite(self.gamma) or self.gamma <= 0:
            raise InvalidInputError(BAD_GAMMA.format(value=self.gamma))

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        if answer.scores is None or answer.revealed is None:
            return answer
        revealed = answer.revealed
        rows = np.arange(len(answer))
        raw = reverse_sigmoid(answer.scores, beta=self.beta, gamma=self.gamma)
        scores = _renormalise(raw, answer.scores, revealed)
        label_shown = revealed[rows, answer.labels]
        original = np.where(
            label_shown, answer.labels, _masked_argmax(answer.scores, revealed)
        ).astype(np.int64)
        moved = _masked_argmax(scores, revealed)
        swap = np.flatnonzero(moved != original)
        if swap.size:
            a, b = moved[swap], original[swap]
            kept = scores[swap, a].copy()
            scores[swap, a] = scores[swap, b]
            scores[swap, b] = kept
            tied = swap[_masked_argmax(scores[swap], revealed[swap]) != b]
            if tied.size:
                top = original[tied]
                scores[tied, top] = np.nextafter(scores[tied, top], np.inf)
        return _with(answer, scores, answer.labels)

    def mode_after(self, mode: str) -> str:
        return mode


@dataclass(frozen=True)
class HighConfidence:
    """Hide (``revealed=False``, score 0) every score below ``cutoff``; the decision's own
    score always stays revealed (if it was). The answer becomes a partial vector, as under
    ``top-k``: its mode is ``top-k`` when it arrives as ``probabilities`` or ``rounded``."""

    cutoff: float = 0.5
    name: str = field(default="high-confidence", init=False)

    def __post_init__(self) -> None:
        if not _finite(self.cutoff) or not 0 < self.cutoff <= 1:
            raise InvalidInputError(BAD_CUTOFF.format(value=self.cutoff))

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        if answer.scores is None or answer.revealed is None:
            return answer
        rows = np.arange(len(answer))
        keep = answer.scores >= self.cutoff
        keep[rows, answer.labels] = True
        revealed = keep & answer.revealed
        return Answer(
            labels=answer.labels,
            scores=np.where(revealed, answer.scores, 0.0),
            revealed=revealed,
            mode=self.mode_after(answer.mode),
            n_classes=answer.n_classes,
            leaves=answer.leaves,
        )

    def mode_after(self, mode: str) -> str:
        return "top-k" if mode in ("probabilities", "rounded") else mode


def _unit(v: NDArray[np.float64]) -> NDArray[np.float64]:
    """``v / ‖v‖`` along the last axis; a zero vector stays zero."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    out: NDArray[np.float64] = np.divide(v, norm, out=np.zeros_like(v), where=norm > 0)
    return out


MAX_ARGMAX_CLASSES = 12
"""MAD with ``keep_argmax`` enumerates all ``2^(C−1)`` argmax-preserving vertices up to this
many classes."""


def mad_candidates(
    original: NDArray[np.int64], n_classes: int, *, keep_argmax: bool
) -> NDArray[np.float64]:
    """The vertices MAD chooses from, ``(n, m, C)``.

    Without ``keep_argmax``: the ``C`` one-hot vertices of the simplex (the same for every
    row). With it: the vertices of the part of the simplex where each row's argmax ``c`` stays
    the argmax — the uniform mixtures ``(1/|S|)·Σ_{k∈S} e_k`` over every set ``S`` of classes
    that contains ``c`` (``2^(C−1)`` of them; the MAD-argmax objective is maximised over that
    polytope, whose maximum of a convex objective lies at a vertex). Above
    :data:`MAX_ARGMAX_CLASSES` classes only the sets of at most two classes are used.
    """
    n = original.shape[0]
    eye = np.eye(n_classes)
    if not keep_argmax:
        return np.broadcast_to(eye, (n, n_classes, n_classes))
    others = n_classes - 1
    if n_classes <= MAX_ARGMAX_CLASSES:
        masks = ((np.arange(2**others)[:, None] >> np.arange(others)[None, :]) & 1).astype(float)
    else:
        masks = np.vstack([np.zeros((1, others)), np.eye(others)])
    out = np.empty((n, masks.shape[0], n_classes))
    for c in np.unique(original):
        rest = [k for k in range(n_classes) if k != c]
        vertices = np.zeros((masks.shape[0], n_classes))
        vertices[:, rest] = masks
        vertices[:, c] = 1.0
        vertices /= vertices.sum(axis=1, keepdims=True)
        out[original == c] = vertices
    return out


def angular_deviation(
    candidates: NDArray[np.float64], y: NDArray[np.float64], proxy: NDArray[np.float64]
) -> NDArray[np.float64]:
    """MAD's objective ``‖u(ỹ) − u(y)‖²`` with ``u(v) = (v − p̂)/‖v − p̂‖`` in class space, for
    candidates ``(n, m, C)``, answers ``y`` ``(n, C)`` and proxy probabilities ``p̂`` ``(n, C)``:
    ``(n, m)``. A zero difference has ``u = 0``."""
    u_y = _unit(y - proxy)[:, None, :]
    u_c = _unit(candidates - proxy[:, None, :])
    out: NDArray[np.float64] = ((u_c - u_y) ** 2).sum(axis=-1)
    return out


@dataclass
class MAD:
    """Prediction poisoning by maximising angular deviation (Orekondy, Schiele & Fritz 2020).

    MAD answers ``ỹ`` close to the true probabilities ``y`` (``‖ỹ − y‖₁ ≤ ε``) whose gradient
    signal for the attacker's model points as far as possible from the true one. The defender
    does not know the attacker's model; its proxy is a linear softmax model
    ``p̂ = softmax(Wᵀx̃)`` with random weights ``W`` (``N(0, 1/(d+1))``, drawn once from ``seed``)
    on the target's encoded inputs ``x̃ = (x, 1)`` (:func:`defence_features`).

    Why class space suffices. With ``G = ∇_W log p̂`` the Jacobian (one column per class), an
    answer ``v`` on the simplex moves the attacker's weights along ``Gv``. For the linear
    softmax, ``∂ log p̂_k / ∂W = x̃ ⊗ (e_k − p̂)``, so
    ``Gv = Σ_k v_k · x̃ ⊗ (e_k − p̂) = x̃ ⊗ (v − p̂ · Σ_k v_k) = x̃ ⊗ (v − p̂)`` because ``Σ_k v_k
    = 1``. Then ``‖Gv‖ = ‖x̃‖·‖v − p̂‖`` and the unit vector is
    ``Gv/‖Gv‖ = (x̃/‖x̃‖) ⊗ u(v)`` with ``u(v) = (v − p̂)/‖v − p̂‖``. The inner product of two
    such unit vectors is ``⟨x̃/‖x̃‖, x̃/‖x̃‖⟩·⟨u(ỹ), u(y)⟩ = ⟨u(ỹ), u(y)⟩`` (``x̃ ≠ 0`` thanks to
    its bias entry), so the paper's objective
    ``‖Gỹ/‖Gỹ‖ − Gy/‖Gy‖‖² = 2 − 2⟨u(ỹ), u(y)⟩ = ‖u(ỹ) − u(y)‖²`` depends only on
    ``ỹ − p̂`` against ``y − p̂`` in class space — the input only enters through ``p̂``.

    The answer (the paper's heuristic): the candidate vertex ``ỹ*`` with the largest objective
    (:func:`mad_candidates`; ties to the first), then ``ỹ = y + α(ỹ* − y)`` with the largest
    ``α ∈ [0, 1]`` such that ``‖ỹ − y‖₁ ≤ ε``: ``α = min(1, ε/‖ỹ* − y‖₁)``. With
    ``keep_argmax`` the candidates keep the argmax of ``y`` and, should the answer's argmax
    still differ (a tie at ``α = 1``), ``α`` is shrunk by bisection to the largest value that
    keeps it. Each row of ``ỹ`` stays a distribution (a convex combination of two); the labels
    are its argmax. ``ε = 0`` returns the answer unchanged.

    MAD needs whole probability vectors: an answer with hidden scores raises
    :class:`~multisteal.errors.InvalidInputError` (and so does :meth:`mode_after` for
    ``top-k``), so place it before ``top-k`` and ``high-confidence``.
    """

    epsilon: float = 0.5
    keep_argmax: bool = False
    seed: int = 0
    model: Any = field(default=None, repr=False, compare=False)
    name: str = field(default="mad", init=False)
    weights_: NDArray[np.float64] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not _finite(self.epsilon) or self.epsilon < 0:
            raise InvalidInputError(BAD_EPSILON.format(value=self.epsilon))

    def proxy_probabilities(self, inputs: Any, n_classes: int) -> NDArray[np.float64]:
        """The proxy model's probabilities ``p̂`` for a query batch, ``(n, n_classes)``."""
        X = defence_features(inputs, self.model)
        X = np.hstack([X, np.ones((X.shape[0], 1))])
        if self.weights_ is None:
            rng = np.random.default_rng(self.seed)
            self.weights_ = rng.standard_normal((X.shape[1], n_classes)) / np.sqrt(X.shape[1])
        if self.weights_.shape != (X.shape[1], n_classes):
            raise InvalidInputError(
                MAD_WIDTH.format(expected=self.weights_.shape[0] - 1, got=X.shape[1] - 1)
            )
        logits = X @ self.weights_
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out: NDArray[np.float64] = e / e.sum(axis=1, keepdims=True)
        return out

    def choose(self, y: NDArray[np.float64], proxy: NDArray[np.float64]) -> NDArray[np.float64]:
        """Each row's vertex ``ỹ*`` (the candidate with the largest angular deviation)."""
        original = np.argmax(y, axis=1).astype(np.int64)
        candidates = mad_candidates(original, y.shape[1], keep_argmax=self.keep_argmax)
        best = np.argmax(angular_deviation(candidates, y, proxy), axis=1)
        out: NDArray[np.float64] = candidates[np.arange(y.shape[0]), best]
        return out

    def __call__(self, inputs: Any, answer: Answer) -> Answer:
        if answer.scores is None or answer.revealed is None:
            return answer
        if not answer.revealed.all():
            raise InvalidInputError(MAD_NEEDS_FULL.format(mode=answer.mode))
        if self.epsilon == 0:
            return answer
        y = answer.scores
        target = self.choose(y, self.proxy_probabilities(inputs, y.shape[1]))
        step = target - y
        l1 = np.abs(step).sum(axis=1, keepdims=True)
        alpha = np.minimum(1.0, np.divide(self.epsilon, l1, out=np.ones_like(l1), where=l1 > 0))
        scores = y + alpha * step
        if self.keep_argmax:
            scores = self._keep_argmax(y, step, alpha, scores)
        return _with(answer, scores, np.argmax(scores, axis=1).astype(np.int64))

    @staticmethod
    def _keep_argmax(
        y: NDArray[np.float64],
        step: NDArray[np.float64],
        alpha: NDArray[np.float64],
        scores: NDArray[np.float64],
    ) -> NDArray[np.float64]:
        """Shrink α by bisection on rows whose argmax moved. The answers whose argmax is the
        original class form a convex set containing ``y``, so the α that keep it form an
        interval ``[0, α_max]``: bisection finds its end (to 2⁻⁶⁰)."""
        original = np.argmax(y, axis=1)
        bad = np.flatnonzero(np.argmax(scores, axis=1) != original)
        if not bad.size:
            return scores
        lo = np.zeros(bad.size)
        hi = alpha[bad, 0].copy()
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            trial = y[bad] + mid[:, None] * step[bad]
            ok = np.argmax(trial, axis=1) == original[bad]
            lo = np.where(ok, mid, lo)
            hi = np.where(ok, hi, mid)
        out = scores.copy()
        out[bad] = y[bad] + lo[:, None] * step[bad]
        return out

    def mode_after(self, mode: str) -> str:
        if mode in ("probabilities", "rounded", "label"):
            return mode
        raise InvalidInputError(MAD_NEEDS_FULL.format(mode=mode))
