"""Logistic-regression exploration: parameter vectors sampled inside the ε level set of the
training loss around the fitted weights (Laplace approximation, filtered by the ε criterion).

The surrogate is a linear softmax (or, for scikit-learn's binary model, sigmoid) classifier:
scikit-learn's ``LogisticRegression`` (``coef_``, ``intercept_``) or the torch logistic
regression (a :class:`~multisteal.models.TorchMLPClassifier` whose ``module_`` is a single
``nn.Linear``), bare or inside an :class:`~multisteal.models.InputPipeline`.

Method
------
1. The training objective is the mean cross-entropy over the encoded transcript plus the L2
   penalty the model was fitted with, written per row:

   * scikit-learn (``lbfgs``, ``newton-*``, ``sag``, ``saga``; L2 or none) minimises
     ``C·Σ_i loss_i + ½‖W‖²`` (the intercept is not penalised), i.e. per row
     ``mean_i loss_i + ‖W‖² / (2·C·n)``: the penalty's Hessian is ``1/(C·n)`` on the weights
     and 0 on the intercepts. Soft targets are fitted as weighted rows whose weights add up
     to ``n`` (:func:`~multisteal.models.pipeline.soft_target_rows`), so ``n`` is the
     transcript's length either way;
   * the torch logistic is trained by Adam with ``weight_decay`` ``λ`` added to the gradient
     of every parameter (bias included): ``mean_i loss_i + (λ/2)·‖θ‖²``, Hessian ``λ·I``.

2. Its Hessian ``H`` at the fitted parameters ``θ̂``: with ``p_i`` the model's probabilities,
   ``H = (1/n) Σ_i (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + penalty`` (``x̃ = [x, 1]`` with an
   intercept; for the binary sigmoid model one logit and ``p_i(1−p_i)``). The cross-entropy's
   Hessian does not depend on the targets when each target row sums to 1 (soft or hard
   alike): the targets the surrogate was trained on enter only through the gradient, reported
   as a check that ``θ̂`` is a minimum (``newton_decrement`` = ``½ gᵀH⁻¹g``, the decrease a
   Newton step would still make).
   Up to ``max_full_dim`` parameters the full Hessian is used; above (TF-IDF: up to 50,000
   features per class) its diagonal (``hessian: "diagonal"`` in :meth:`describe`).

3. Draws ``θ = θ̂ + s·L⁻ᵀz`` with ``z ~ N(0, I)`` and ``H = LLᵀ`` (``N(θ̂, s²H⁻¹)``; with
   the diagonal, ``θ_j = θ̂_j + s·z_j/√H_jj``). A softmax over ``K`` classes is unchanged when
   the same vector is added to every class's parameters; where that direction is not
   penalised (the intercepts of scikit-learn's multinomial model; everything when the torch
   model has no weight decay) ``H`` is singular along it, so it is given the mean curvature
   and every draw is projected off it (the probabilities are the same, ``θ`` stays bounded:
   the draws' covariance is ``H``'s pseudo-inverse there). ``damping`` (relative to the mean
   curvature, added to the diagonal) keeps the factorisation stable.

4. A draw is accepted only if it meets the ε criterion,
   ``context.criterion_loss(draw) ≤ reference loss + max(context.epsilons)``; rejected draws
   are redrawn, up to ``max_tries`` draws per member. Without a criterion (outside an audit,
   or no ε) every draw is accepted and :meth:`describe` says so (``filtered`` False).

5. Scales ``s``: the given ``scales``, or an adaptive search (the default). It starts at
   ``s₀ = √(2ε/P)`` (``P`` free parameters, ``ε`` the largest ε or 0.01): there the
   expected quadratic increase of the training objective, ``½s²·tr(H⁻¹H) = ½s²P``, is ε.
   ``s`` is doubled while at least ``min_acceptance`` of ``pilot_draws`` draws meet the
   criterion (halved until they do, when ``s₀`` already fails), then the boundary between
   the last passing and the first failing scale is refined by two geometric bisections; the
   largest passing ``s`` is the top of a geometric grid of ``n_scales`` scales, each half
   the next. Without a criterion the top is ``s₀``.

Members' outputs are computed directly and vectorised: each input set is encoded once, the
reference's logits computed once by the model itself, and for a whole batch of draws
``logits = reference logits + X·ΔWᵀ + Δb`` followed by the model's own link (softmax, or
scikit-learn's ``[1 − expit(d), expit(d)]`` for a binary model) and the pipeline's column
placement for classes missing from the transcript. A draw with ``Δθ = 0`` (``s = 0``) thus
gives the reference's probabilities bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.special import expit
from sklearn.linear_model import LogisticRegression
from torch import nn

from multisteal.attacks.base import Transcript
from multisteal.errors import InvalidInputError
from multisteal.models.torch_base import TorchClassifier
from multisteal.models.zoo import Classifier
from multisteal.rashomon.base import Candidates, ExplorationContext, ExplorerBase, unwrap
from multisteal.surrogates import LabelKind, surrogate_targets

__all__ = [
    "HessianKind",
    "LaplaceApproximation",
    "LinearView",
    "LogisticLevelSetExplorer",
    "fit_laplace",
    "linear_view",
]

HessianKind = Literal["full", "diagonal"]
Link = Literal["sigmoid", "softmax"]

NOT_LINEAR = (
    "the logistic-level-set explorer samples the weights of a logistic regression "
    "(scikit-learn LogisticRegression, or the torch logistic: a TorchMLPClassifier with "
    "hidden_layer_sizes=()); use the dropout or retrain explorer for other families."
)
NOT_FITTED_LINEAR = "the logistic regression is not fitted."
ONE_CLASS = "the surrogate saw one class only (a constant model has no weights to sample)."
L1_PENALTY = (
    "its {penalty} penalty is not twice differentiable, so the loss has no Hessian at the "
    "fitted weights."
)
LIBLINEAR = (
    "the liblinear solver penalises the intercept (and fits one-vs-rest for more than two "
    "classes), an objective this explorer does not model; refit with lbfgs (the zoo's default)."
)
OVR = "a one-vs-rest logistic regression is not one softmax model."
CLASS_WEIGHT = (
    "class_weight reweights the training rows in a way the explorer cannot recover from the "
    "transcript."
)
BAD_SCALE = "scales must be finite and >= 0, got {scales!r}."
BAD_COUNT = "{name} must be >= 1, got {value!r}."
BAD_FRACTION = "min_acceptance must be in (0, 1], got {value!r}."
BAD_DAMPING = "damping must be finite and >= 0, got {value!r}."
BAD_TRANSCRIPT = (
    "The transcript's encoded queries have {got} features, but the surrogate's weights have "
    "{expected}."
)
NO_TRANSCRIPT = (
    "The logistic-level-set explorer needs the transcript the surrogate was fitted on (the "
    "Hessian of its training loss); the context has none."
)
NOT_FACTORISED = "The Hessian of the training objective could not be factorised."
UNFILTERED_NO_CRITERION = "no criterion_loss (outside an audit): every draw was accepted"
UNFILTERED_NO_EPSILON = "no epsilons given: every draw was accepted"
MAX_SEARCH_STEPS = 20
"""Doublings (or halvings) the adaptive scale search tries at most."""
REFINE_STEPS = 2
"""Geometric bisections between the last passing and the first failing scale."""
SEARCH_EPSILON = 0.01
"""ε that sets the search's starting scale when the audit gives none (or only ε = 0)."""


# -- the linear model -------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearView:
    """A fitted logistic regression as weights, a link and a penalty.

    Attributes
    ----------
    weights : free weights, shape (K, D): one row per free logit (``K = 1`` for
        scikit-learn's binary model, the number of classes otherwise).
    intercepts : shape (K,); zeros without an intercept.
    fit_intercept : whether the intercepts are parameters.
    link : ``sigmoid`` (one logit ``d``; probabilities ``[1 − expit(d), expit(d)]``, as
        scikit-learn's binary model) or ``softmax`` over the ``K`` logits.
    l2_weights, l2_intercepts : the Hessian of the penalty of the per-row objective on each
        weight and each intercept.
    float32 : the model computes on float32 inputs (the torch logistic).
    logits : the model's own logits for encoded rows, shape (n, K), in the precision the
        model computes them in (float32 for a scikit-learn model fitted on float32 rows).
    family : ``sklearn`` or ``torch``.
    """

    weights: NDArray[np.float64]
    intercepts: NDArray[np.float64]
    fit_intercept: bool
    link: Link
    l2_weights: float
    l2_intercepts: float
    float32: bool
    logits: Callable[[Any], NDArray[np.floating[Any]]]
    family: str

    @property
    def n_free(self) -> int:
        """Free logits ``K``."""
        return int(self.weights.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.weights.shape[1])

    @property
    def width(self) -> int:
        """Parameters per free logit: ``D`` (+1 with an intercept)."""
        return self.n_features + int(self.fit_intercept)

    @property
    def n_parameters(self) -> int:
        return self.n_free * self.width

    @property
    def theta(self) -> NDArray[np.float64]:
        """The fitted parameters as a (K, width) array (intercept last)."""
        if not self.fit_intercept:
            return self.weights.copy()
        return np.concatenate([self.weights, self.intercepts[:, None]], axis=1)

    def penalty(self) -> NDArray[np.float64]:
        """The penalty's Hessian (diagonal) per parameter column, shape (width,)."""
        out = np.full(self.width, self.l2_weights, dtype=np.float64)
        if self.fit_intercept:
            out[-1] = self.l2_intercepts
        return out

    def gauge_columns(self) -> NDArray[np.int64]:
        """Parameter columns along which adding the same value to every class changes nothing
        and costs no penalty (a softmax's null directions); empty for the sigmoid link."""
        if self.link == "sigmoid" or self.n_free < 2:
            return np.zeros(0, dtype=np.int64)
        return np.flatnonzero(self.penalty() == 0).astype(np.int64)

    def probabilities(self, logits: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
        """The model's probabilities from its logits (..., K), exactly as its predict_proba."""
        if self.link == "sigmoid":
            p1 = expit(logits[..., 0])
            return np.stack([1 - p1, p1], axis=-1)
        return _softmax(logits)


def _softmax(logits: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """Softmax over the last axis in the logits' precision, with the same operations as
    scikit-learn's and :func:`multisteal.models.torch_base.softmax` (so bit for bit equal)."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    out: NDArray[np.floating[Any]] = exp / exp.sum(axis=-1, keepdims=True)
    return out


def _torch_linear(inner: Any) -> nn.Linear | None:
    module = getattr(inner, "module_", None)
    if isinstance(module, nn.Linear):
        return module
    if isinstance(module, nn.Sequential) and len(module) == 1 and isinstance(module[0], nn.Linear):
        return module[0]
    return None


def _sklearn_penalty(model: LogisticRegression) -> str | None:
    """scikit-learn's effective penalty (``l2``, ``l1``, ``elasticnet`` or ``None``)."""
    penalty = getattr(model, "penalty", "deprecated")
    C = float(model.C)
    if penalty == "deprecated":
        ratio = getattr(model, "l1_ratio", 0.0)
        if ratio is None or ratio == 0:
            resolved: str | None = "l2"
        elif ratio == 1:
            resolved = "l1"
        else:
            resolved = "elasticnet"
        return None if math.isinf(C) else resolved
    if penalty is None or penalty == "none":
        return None
    return str(penalty)


def _reason(inner: Any) -> str | None:
    """Why ``inner`` is not a logistic regression this explorer can sample, or ``None``."""
    if type(inner).__name__ == "DummyClassifier":
        return ONE_CLASS
    if isinstance(inner, LogisticRegression):
        if not hasattr(inner, "coef_"):
            return NOT_FITTED_LINEAR
        if inner.solver == "liblinear":
            return LIBLINEAR
        if getattr(inner, "multi_class", "auto") == "ovr" and len(inner.classes_) > 2:
            return OVR
        penalty = _sklearn_penalty(inner)
        if penalty not in ("l2", None):
            return L1_PENALTY.format(penalty=penalty)
        if inner.class_weight is not None:
            return CLASS_WEIGHT
        return None
    if isinstance(inner, TorchClassifier):
        if not hasattr(inner, "module_"):
            return NOT_FITTED_LINEAR
        return None if _torch_linear(inner) is not None else NOT_LINEAR
    return NOT_LINEAR


def linear_view(model: Classifier, n_rows: int) -> LinearView:
    """The fitted logistic regression inside ``model`` (bare or in a pipeline).

    Parameters
    ----------
    model : the surrogate.
    n_rows : transcript rows it was fitted on (scikit-learn's penalty is scaled by them).

    Raises
    ------
    InvalidInputError
        If the classifier is not a logistic regression this explorer can sample.
    """
    _, inner = unwrap(model)
    reason = _reason(inner)
    if reason is not None:
        raise InvalidInputError(reason)
    if isinstance(inner, LogisticRegression):
        coef = np.asarray(inner.coef_, dtype=np.float64)
        intercept = np.broadcast_to(
            np.asarray(inner.intercept_, dtype=np.float64), (coef.shape[0],)
        ).copy()
        penalty = _sklearn_penalty(inner)
        l2 = 0.0 if penalty is None else 1.0 / (float(inner.C) * max(int(n_rows), 1))

        def sk_logits(X: Any) -> NDArray[np.float64]:
            # In the model's own precision: a model fitted on float32 rows (the tabular
            # encoder's) has float32 weights and answers in float32.
            d = np.asarray(inner.decision_function(X))
            return d[:, None] if d.ndim == 1 else d

        return LinearView(
            weights=coef,
            intercepts=intercept,
            fit_intercept=bool(inner.fit_intercept),
            link="sigmoid" if coef.shape[0] == 1 else "softmax",
            l2_weights=l2,
            l2_intercepts=0.0,
            float32=False,
            logits=sk_logits,
            family="sklearn",
        )
    layer = _torch_linear(inner)
    assert layer is not None
    decay = float(getattr(inner, "weight_decay", 0.0) or 0.0)
    bias = layer.bias

    def torch_logits(X: Any) -> NDArray[np.float64]:
        return np.asarray(inner.logits(X), dtype=np.float64)

    weights = layer.weight.detach().double().numpy().copy()
    return LinearView(
        weights=weights,
        intercepts=(
            np.zeros(weights.shape[0]) if bias is None else bias.detach().double().numpy().copy()
        ),
        fit_intercept=bias is not None,
        link="softmax",
        l2_weights=decay,
        l2_intercepts=decay,
        float32=True,
        logits=torch_logits,
        family="torch",
    )


def _matrix(X: Any, float32: bool) -> Any:
    """Encoded rows as float64 (CSR when sparse), rounded through float32 for a torch model."""
    if sp.issparse(X):
        out = sp.csr_matrix(X, dtype=np.float64)
        if float32:
            out.data = out.data.astype(np.float32).astype(np.float64)
        return out
    arr = np.asarray(X, dtype=np.float64)
    if float32:
        arr = arr.astype(np.float32).astype(np.float64)
    return arr


def _with_ones(X: Any) -> Any:
    if sp.issparse(X):
        return sp.hstack([X, np.ones((X.shape[0], 1))], format="csr")
    return np.concatenate([X, np.ones((X.shape[0], 1))], axis=1)


def _curvatures(p: NDArray[np.float64], link: Link) -> NDArray[np.float64]:
    """Per-row Hessian of the cross-entropy wrt the free logits, shape (n, K, K)."""
    if link == "sigmoid":
        p1 = p[:, 1]
        out: NDArray[np.float64] = (p1 * (1 - p1))[:, None, None]
        return out
    eye = np.eye(p.shape[1])
    full: NDArray[np.float64] = p[:, :, None] * eye[None] - p[:, :, None] * p[:, None, :]
    return full


def _full_hessian(
    Xt: Any, curv: NDArray[np.float64], penalty: NDArray[np.float64], n: int
) -> NDArray[np.float64]:
    """``(1/n) Σ_i S_i ⊗ x̃_i x̃_iᵀ`` plus the penalty, shape (K·width, K·width)."""
    K, width = curv.shape[1], Xt.shape[1]
    P = K * width
    H = np.zeros((P, P))
    for k in range(K):
        for m in range(k, K):
            w = curv[:, k, m] / n
            if sp.issparse(Xt):
                block = np.asarray((Xt.T @ Xt.multiply(w[:, None])).todense())
            else:
                block = (Xt * w[:, None]).T @ Xt
            H[k * width : (k + 1) * width, m * width : (m + 1) * width] = block
            if m != k:
                H[m * width : (m + 1) * width, k * width : (k + 1) * width] = block.T
    H[np.diag_indices(P)] += np.tile(penalty, K)
    return H


def _full_factor(
    H: NDArray[np.float64], gauge: NDArray[np.int64], K: int, width: int, damping: float
) -> tuple[NDArray[np.float64], float]:
    """The lower Cholesky factor of the precision (``H``, its null softmax directions given
    the mean curvature, plus damping) and the absolute damping used."""
    P = H.shape[0]
    precision = H.copy()
    mean_curv = float(np.mean(np.diag(H))) or 1.0
    for j in gauge:
        idx = np.arange(K) * width + j
        precision[np.ix_(idx, idx)] += mean_curv / K
    absolute = float(damping) * mean_curv
    for _ in range(16):
        factor = _cholesky(precision + absolute * np.eye(P))
        if factor is not None:
            return factor, absolute
        absolute = max(absolute * 10.0, 1e-12 * mean_curv)
    raise InvalidInputError(NOT_FACTORISED)  # pragma: no cover - a large ridge factorises


def _cholesky(A: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """The lower Cholesky factor of ``A``, or ``None`` when ``A`` is not positive definite."""
    try:
        return np.asarray(np.linalg.cholesky(A), dtype=np.float64)
    except np.linalg.LinAlgError:
        return None


def _diagonal_hessian(
    Xt: Any, curv: NDArray[np.float64], penalty: NDArray[np.float64], n: int
) -> NDArray[np.float64]:
    """The diagonal of :func:`_full_hessian` without forming it, shape (K·width,)."""
    K = curv.shape[1]
    sq = Xt.multiply(Xt) if sp.issparse(Xt) else Xt * Xt
    diag = np.empty((K, Xt.shape[1]))
    for k in range(K):
        diag[k] = np.asarray(sq.T @ (curv[:, k, k] / n)).ravel() + penalty
    out: NDArray[np.float64] = diag.ravel()
    return out


# -- the Laplace approximation ------------------------------------------------------------
@dataclass(frozen=True)
class LaplaceApproximation:
    """``N(θ̂, s²H⁻¹)`` around a fitted logistic regression.

    Attributes
    ----------
    view : the model's weights, link and penalty.
    kind : ``full`` or ``diagonal`` Hessian.
    hessian : the training objective's Hessian at ``θ̂`` (mean cross-entropy plus penalty),
        shape (P, P) for ``full``, (P,) (its diagonal) for ``diagonal``; parameters in the
        order of ``view.theta.ravel()`` (class-major, intercept last in each class).
    factor : for ``full`` the lower Cholesky factor ``L`` of the precision actually used
        (``hessian`` with the softmax's null directions given the mean curvature, plus
        damping); for ``diagonal`` ``1/√(precision)``.
    gauge : parameter columns projected off every draw (see ``LinearView.gauge_columns``).
    damping : the absolute damping added to the precision's diagonal.
    newton_decrement : ``½ gᵀH⁻¹g`` at ``θ̂`` with the gradient ``g`` of the objective on the
        targets of ``labels`` (NaN when they could not be matched to the model's classes).
    """

    view: LinearView
    kind: HessianKind
    hessian: NDArray[np.float64]
    factor: NDArray[np.float64]
    gauge: NDArray[np.int64]
    damping: float
    newton_decrement: float

    @property
    def n_parameters(self) -> int:
        """Free parameters (the softmax's null directions excluded)."""
        return self.view.n_parameters - int(self.gauge.size)

    def draw(self, rng: np.random.Generator, scale: float, size: int) -> NDArray[np.float64]:
        """``size`` parameter offsets ``Δθ ~ N(0, scale²·H⁻¹)``, shape (size, K, width).

        ``scale = 0`` gives exact zeros (the random numbers are still drawn, so the generator
        advances the same way at every scale).
        """
        K, width = self.view.n_free, self.view.width
        z = rng.standard_normal((size, K * width))
        if self.kind == "full":
            # θ − θ̂ = L⁻ᵀ z: covariance L⁻ᵀL⁻¹ = (LLᵀ)⁻¹ = H⁻¹.
            delta = scipy.linalg.solve_triangular(self.factor, z.T, lower=True, trans="T").T
        else:
            delta = z * self.factor[None, :]
        out: NDArray[np.float64] = (float(scale) * delta).reshape(size, K, width)
        if self.gauge.size:
            out[:, :, self.gauge] -= out[:, :, self.gauge].mean(axis=1, keepdims=True)
        return out

    def covariance(self) -> NDArray[np.float64]:
        """The covariance of :meth:`draw` at scale 1 (full: (P, P); diagonal: (P,))."""
        if self.kind == "diagonal":
            out: NDArray[np.float64] = self.factor**2
            return out
        inv = scipy.linalg.cho_solve((self.factor, True), np.eye(self.factor.shape[0]))
        if self.gauge.size:
            K, width = self.view.n_free, self.view.width
            proj = np.eye(K * width)
            for j in self.gauge:
                idx = np.arange(K) * width + j
                proj[np.ix_(idx, idx)] -= 1.0 / K
            inv = proj @ inv @ proj.T
        return np.asarray(inv, dtype=np.float64)


def _targets_in_model_classes(
    transcript: Transcript, labels: LabelKind, model: Any, inner: Any
) -> NDArray[np.float64] | None:
    """The surrogate's training targets as distributions over the model's classes, or None."""
    targets = surrogate_targets(transcript, labels)
    if targets.ndim == 1:
        n_classes = max(int(transcript.answers.n_classes), int(targets.max()) + 1)
        full = np.zeros((targets.shape[0], n_classes))
        full[np.arange(targets.shape[0]), targets.astype(np.int64)] = 1.0
    else:
        full = targets
    columns = getattr(model, "columns_", None)
    if columns is None:
        columns = np.asarray(inner.classes_)
    columns = np.asarray(columns).astype(np.int64)
    if columns.size and (columns.max() >= full.shape[1] or columns.min() < 0):
        return None
    q = full[:, columns] if columns.size != full.shape[1] else full
    total = q.sum(axis=1, keepdims=True)
    if not np.allclose(total, 1.0, atol=1e-6):
        return None
    return q


def fit_laplace(
    model: Classifier,
    transcript: Transcript,
    *,
    max_full_dim: int = 1024,
    damping: float = 1e-8,
    labels: LabelKind = "auto",
) -> LaplaceApproximation:
    """The Laplace approximation of ``model``'s training objective on ``transcript``.

    Parameters
    ----------
    model : the fitted logistic regression (bare, or an ``InputPipeline``).
    transcript : the transcript it was fitted on (its queries are encoded by the model's
        encoder).
    max_full_dim : the full Hessian up to this many parameters, its diagonal above.
    damping : added to the precision's diagonal, relative to its mean curvature.
    labels : the targets the surrogate was trained on (``auto``: soft when the answers carry
        scores), for the ``newton_decrement`` check only.

    Returns
    -------
    LaplaceApproximation
    """
    if transcript is None or len(transcript) == 0:
        raise InvalidInputError(NO_TRANSCRIPT)
    encode, inner = unwrap(model)
    n = len(transcript)
    view = linear_view(model, n)
    X = _matrix(encode(transcript.queries), view.float32)
    if X.shape[1] != view.n_features:
        raise InvalidInputError(BAD_TRANSCRIPT.format(got=X.shape[1], expected=view.n_features))
    probs = view.probabilities(view.logits(X)).astype(np.float64)
    curv = _curvatures(probs, view.link)  # (n, K, K)
    Xt = _with_ones(X) if view.fit_intercept else X
    K, width = view.n_free, view.width
    P = K * width
    penalty = view.penalty()
    kind: HessianKind = "full" if max_full_dim >= P else "diagonal"
    gauge = view.gauge_columns()
    hessian: NDArray[np.float64]
    factor: NDArray[np.float64]
    if kind == "full":
        hessian = _full_hessian(Xt, curv, penalty, n)
        factor, absolute = _full_factor(hessian, gauge, K, width, damping)
    else:
        hessian = _diagonal_hessian(Xt, curv, penalty, n)
        absolute = float(damping) * (float(hessian.mean()) or 1.0)
        factor = 1.0 / np.sqrt(np.maximum(hessian + absolute, 1e-300))
        gauge = np.zeros(0, dtype=np.int64)
    decrement = float("nan")
    q = _targets_in_model_classes(transcript, labels, model, inner)
    if q is not None and q.shape == probs.shape:
        resid = (probs[:, 1] - q[:, 1])[:, None] if view.link == "sigmoid" else probs - q
        grad = np.asarray(Xt.T @ resid).T / n + view.theta * penalty[None, :]  # (K, width)
        g = grad.ravel()
        if kind == "full":
            sol = scipy.linalg.cho_solve((factor, True), g)
            decrement = 0.5 * float(g @ sol)
        else:
            decrement = 0.5 * float(np.sum(g * g * factor * factor))
    return LaplaceApproximation(view, kind, hessian, factor, gauge, absolute, decrement)


# -- members' outputs -------------------------------------------------------------------------
@dataclass
class _Members:
    """Vectorised outputs of perturbed copies of the reference on every input set."""

    view: LinearView
    names: list[str]
    encoded: dict[str, Any]
    reference_logits: dict[str, NDArray[np.floating[Any]]]
    n_classes: int
    columns: NDArray[np.int64] | None

    @classmethod
    def build(cls, model: Classifier, view: LinearView, inputs: Mapping[str, Any]) -> _Members:
        encode, _ = unwrap(model)
        names = list(inputs)
        encoded: dict[str, Any] = {}
        logits: dict[str, NDArray[np.floating[Any]]] = {}
        for k in names:
            raw = encode(inputs[k])
            logits[k] = view.logits(raw)
            encoded[k] = _matrix(raw, view.float32)
        n_model = 2 if view.link == "sigmoid" else view.n_free
        n_classes = int(getattr(model, "n_classes_", n_model))
        columns = getattr(model, "columns_", None)
        cols = None if columns is None else np.asarray(columns, dtype=np.int64)
        return cls(view, names, encoded, logits, max(n_classes, n_model), cols)

    def outputs(self, delta: NDArray[np.float64] | None) -> dict[str, NDArray[np.float64]]:
        """Probabilities of each offset ``Δθ`` (B, K, width) on every input set, (B, n, C);
        ``None``: the reference alone (B = 1)."""
        out: dict[str, NDArray[np.float64]] = {}
        view = self.view
        for k in self.names:
            ref = self.reference_logits[k]
            if delta is None:
                logits = ref[None]
            else:
                B, K, _ = delta.shape
                dW = delta[:, :, : view.n_features].reshape(B * K, view.n_features)
                shift = np.asarray(self.encoded[k] @ dW.T).reshape(ref.shape[0], B, K)
                shift = shift.transpose(1, 0, 2)
                if view.fit_intercept:
                    shift = shift + delta[:, None, :, -1]
                # Members are computed in the reference's precision, as the model would be.
                logits = (ref[None] + shift).astype(ref.dtype, copy=False)
            probs = view.probabilities(logits).astype(np.float64, copy=False)
            out[k] = self._place(probs)
        return out

    def _place(self, probs: NDArray[np.float64]) -> NDArray[np.float64]:
        """Columns at their class index, as ``InputPipeline.predict_proba`` does."""
        if probs.shape[-1] == self.n_classes or self.columns is None:
            return probs
        placed = np.zeros((*probs.shape[:-1], self.n_classes), dtype=np.float64)
        placed[..., self.columns] = probs
        return placed


# -- the explorer -------------------------------------------------------------------------------
@dataclass
class LogisticLevelSetExplorer(ExplorerBase):
    """Logistic regressions sampled inside the ε level set around the fitted weights.

    See the module docstring for the method. Row 0 of the first chunk is the reference
    (``scale`` 0, ``reference`` True); every other candidate is an accepted draw, with its
    ``scale``, ``draw`` (index among the accepted draws of its scale) and ``draws`` (how many
    draws it took, rejected ones included) in ``params``. The acceptance rate of every scale,
    the scale search and the Hessian used are in :meth:`describe` (and ``last_``) after an
    exploration.

    Parameters
    ----------
    scales : the scales ``s`` (``N(θ̂, s²H⁻¹)``); ``None`` (default): the adaptive search.
    n_scales : scales of the adaptive grid (each half the next).
    members_per_scale : accepted members wanted at each scale.
    max_tries : draws per wanted member at most (a scale stops after
        ``members_per_scale · max_tries`` draws, with fewer members if it must).
    min_acceptance : the adaptive search's pass mark (fraction of pilot draws accepted).
    pilot_draws : draws per scale tried by the adaptive search.
    max_full_dim : the full Hessian up to this many parameters, its diagonal above.
    damping : relative damping of the Hessian (see :func:`fit_laplace`).
    labels : the targets the surrogate was trained on (for the Newton-decrement check).
    """

    scales: Sequence[float] | None = None
    n_scales: int = 5
    members_per_scale: int = 10
    max_tries: int = 10
    min_acceptance: float = 0.2
    pilot_draws: int = 16
    max_full_dim: int = 1024
    damping: float = 1e-8
    labels: LabelKind = "auto"
    name: str = field(default="logistic-level-set", init=False)
    refits: bool = field(default=False, init=False)
    last_: dict[str, object] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for label, value in (
            ("n_scales", self.n_scales),
            ("members_per_scale", self.members_per_scale),
            ("max_tries", self.max_tries),
            ("pilot_draws", self.pilot_draws),
            ("max_full_dim", self.max_full_dim),
        ):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(BAD_COUNT.format(name=label, value=value))
        if self.scales is not None:
            grid = np.asarray(list(self.scales), dtype=np.float64)
            if grid.size == 0 or not np.isfinite(grid).all() or (grid < 0).any():
                raise InvalidInputError(BAD_SCALE.format(scales=self.scales))
        if not 0.0 < float(self.min_acceptance) <= 1.0:
            raise InvalidInputError(BAD_FRACTION.format(value=self.min_acceptance))
        if not np.isfinite(self.damping) or self.damping < 0:
            raise InvalidInputError(BAD_DAMPING.format(value=self.damping))

    def accepts(self, model: Classifier) -> str | None:
        """``None`` for a logistic regression it can sample, the reason otherwise."""
        _, inner = unwrap(model)
        return _reason(inner)

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, and after an exploration what it found (``hessian``
        kind, scales used, acceptance per scale, whether draws were filtered)."""
        out: dict[str, object] = {
            "explorer": self.name,
            "scales": "adaptive" if self.scales is None else ",".join(map(str, self.scales)),
            "n_scales": self.n_scales if self.scales is None else len(list(self.scales)),
            "members_per_scale": self.members_per_scale,
            "max_tries": self.max_tries,
            "min_acceptance": float(self.min_acceptance),
            "pilot_draws": self.pilot_draws,
            "max_full_dim": self.max_full_dim,
            "damping": float(self.damping),
            # Known once the surrogate is seen: "full" up to max_full_dim parameters.
            "hessian": "full or diagonal",
        }
        out.update(self.last_)
        return out

    # -- the search and the draws -----------------------------------------------------------
    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """Accepted draws at every scale, in chunks of at most ``members_per_chunk``."""
        model = context.surrogate
        laplace = fit_laplace(
            model,
            context.transcript,
            max_full_dim=self.max_full_dim,
            damping=self.damping,
            labels=self.labels,
        )
        members = _Members.build(model, laplace.view, context.inputs)
        per_chunk = context.members_per_chunk(members.n_classes)
        draw_bytes = 16 * laplace.view.n_parameters
        batch_cap = max(1, min(per_chunk, int(context.max_chunk_bytes // max(draw_bytes, 1))))
        reference = members.outputs(None)
        common: dict[str, object] = {"explorer": self.name, "hessian": laplace.kind}

        epsilons = tuple(float(e) for e in context.epsilons)
        filtered = context.criterion_loss is not None and bool(epsilons)
        note = ""
        ref_loss = float("nan")
        bound = float("inf")
        if context.criterion_loss is None:
            note = UNFILTERED_NO_CRITERION
        elif not epsilons:
            note = UNFILTERED_NO_EPSILON
        if filtered:
            assert context.criterion_loss is not None
            ref_row = pd.DataFrame([{"member": 0, "scale": 0.0, "reference": True, **common}])
            ref_loss = float(context.criterion_loss(Candidates(self.name, ref_row, reference))[0])
            bound = ref_loss + max(epsilons) + 1e-12

        def accepted(delta: NDArray[np.float64]) -> tuple[NDArray[np.bool_], dict[str, Any]]:
            outputs = members.outputs(delta)
            if not filtered:
                return np.ones(delta.shape[0], dtype=bool), outputs
            assert context.criterion_loss is not None
            rows = pd.DataFrame({"member": np.arange(delta.shape[0]), "reference": False})
            losses = np.asarray(context.criterion_loss(Candidates(self.name, rows, outputs)))
            return losses <= bound, outputs

        # Independent streams (the search's, then one per scale) so that the members do not
        # depend on how draws are batched (the memory bound), only on the audit's generator.
        search_rng = context.rng.spawn(1)[0]
        search: list[tuple[float, float]] = []
        eps_base = max(epsilons) if epsilons and max(epsilons) > 0 else SEARCH_EPSILON
        start = math.sqrt(2.0 * eps_base / max(laplace.n_parameters, 1))
        if self.scales is not None:
            grid = [float(s) for s in self.scales]
        else:
            top = start
            if filtered:
                top = self._search(start, search_rng, laplace, accepted, batch_cap, search)
            grid = [top * 2.0 ** (i - (self.n_scales - 1)) for i in range(self.n_scales)]
        scale_rngs = context.rng.spawn(len(grid))

        rows: list[dict[str, object]] = [
            {"member": 0, "scale": 0.0, "draw": -1, "draws": 0, "reference": True, **common}
        ]
        buffer: dict[str, list[NDArray[np.float64]]] = {k: [reference[k]] for k in members.names}
        acceptance: dict[float, float] = {}
        produced: dict[float, int] = {}
        member = 1
        for scale, rng in zip(grid, scale_rngs, strict=True):
            want = self.members_per_scale
            budget = want * self.max_tries
            used = hits = since = got = 0
            while got < want and used < budget:
                # Enough draws for the members still wanted at the acceptance rate seen so far.
                rate = hits / used if used else 1.0
                needed = math.ceil((want - got) / max(rate, 1.0 / self.max_tries))
                size = max(1, min(batch_cap, budget - used, needed))
                ok, outputs = accepted(laplace.draw(rng, scale, size))
                for b in range(size):
                    if got >= want:  # draws past the last member wanted are not counted
                        break
                    used += 1
                    since += 1
                    if not ok[b]:
                        continue
                    hits += 1
                    for k in members.names:
                        buffer[k].append(outputs[k][b : b + 1])
                    rows.append(
                        {
                            "member": member,
                            "scale": float(scale),
                            "draw": got,
                            "draws": since,
                            "reference": False,
                            **common,
                        }
                    )
                    member += 1
                    got += 1
                    since = 0
                    if len(rows) >= per_chunk:
                        yield self._chunk(rows, buffer)
                        rows, buffer = [], {k: [] for k in members.names}
            acceptance[float(scale)] = hits / used if used else float("nan")
            produced[float(scale)] = got
        if rows:
            yield self._chunk(rows, buffer)
        rates = [r for r in acceptance.values() if np.isfinite(r)]
        self.last_ = {
            "hessian": laplace.kind,
            "n_parameters": laplace.n_parameters,
            "damping_absolute": laplace.damping,
            "newton_decrement": laplace.newton_decrement,
            "filtered": filtered,
            "filter_note": note,
            "reference_loss": ref_loss,
            "epsilon_max": max(epsilons) if epsilons else float("nan"),
            "scale_start": start,
            "scale_min": float(min(grid)),
            "scale_max": float(max(grid)),
            "scales_used": ",".join(f"{s:.6g}" for s in grid),
            "acceptance_by_scale": ",".join(f"{s:.6g}={r:.3f}" for s, r in acceptance.items()),
            "members_by_scale": ",".join(f"{s:.6g}={m}" for s, m in produced.items()),
            "acceptance_min": float(min(rates)) if rates else float("nan"),
            "acceptance_mean": float(np.mean(rates)) if rates else float("nan"),
            "scale_search": ",".join(f"{s:.6g}={r:.3f}" for s, r in search),
        }

    def _search(
        self,
        start: float,
        rng: np.random.Generator,
        laplace: LaplaceApproximation,
        accepted: Callable[[NDArray[np.float64]], tuple[NDArray[np.bool_], Any]],
        batch_cap: int,
        trace: list[tuple[float, float]],
    ) -> float:
        """The largest scale (doubling from ``start``) at which at least ``min_acceptance``
        of ``pilot_draws`` draws meet the criterion; halving when ``start`` fails."""

        def rate(scale: float) -> float:
            hits = 0
            done = 0
            while done < self.pilot_draws:
                size = min(batch_cap, self.pilot_draws - done)
                ok, _ = accepted(laplace.draw(rng, scale, size))
                hits += int(ok.sum())
                done += size
            value = hits / self.pilot_draws
            trace.append((scale, value))
            return value

        passing = start
        failing: float | None = None
        if rate(start) >= self.min_acceptance:
            for _ in range(MAX_SEARCH_STEPS):
                if rate(passing * 2.0) < self.min_acceptance:
                    failing = passing * 2.0
                    break
                passing *= 2.0
        else:
            failing = start
            for _ in range(MAX_SEARCH_STEPS):
                passing = failing / 2.0
                if rate(passing) >= self.min_acceptance:
                    break
                failing = passing
            else:
                return passing  # nothing passes: the smallest scale tried
        if failing is not None:  # geometric bisection between the last pass and first failure
            for _ in range(REFINE_STEPS):
                middle = math.sqrt(passing * failing)
                if rate(middle) >= self.min_acceptance:
                    passing = middle
                else:
                    failing = middle
        return passing

    def _chunk(
        self, rows: list[dict[str, object]], buffer: Mapping[str, list[NDArray[np.float64]]]
    ) -> Candidates:
        outputs = {k: np.concatenate(v, axis=0) for k, v in buffer.items()}
        return Candidates(self.name, pd.DataFrame(rows), outputs)
