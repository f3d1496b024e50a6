"""Adversarial weight perturbation (AWP) exploration (Hsu & Calmon 2022).

For every evaluation sample ``n`` and class ``c``, AWP pushes the surrogate's weights to raise
class ``c``'s log-probability on ``n`` for as long as the model stays in the ε-Rashomon set,
``L(w) <= L(w0) + ε``. Sample ``n`` then has a ``C``-member channel per ε (one pushed model per
class), and the Rashomon Capacity of that channel measures how far the set can move its answer.
The candidates are of kind ``channels``: candidate ``(ε, c)`` is a *different* model on every
sample.

Algorithm (per sample ``n``, class ``c``; many pairs at once with ``torch.func``)
--------------------------------------------------------------------------------
``w`` starts at the reference weights ``w0`` (every parameter of the network: all Linear and
Conv weights and biases). ``J(w) = log softmax(f(x_n; w))_c`` is the pushed quantity. A step
moves along the normalised gradient of ``J``, by ``η · ‖w0‖`` (``η`` starts at ``step_size``;
``‖·‖`` is the L2 norm over all parameters together)::

    w' = w + η ‖w0‖ ∇J(w) / ‖∇J(w)‖

and ``w'`` is accepted iff (1) the *real* ε-criterion holds, ``L(w') <= L(w0) + ε``, where
``L`` is the audit's criterion loss (``ExplorationContext.criterion_loss``) computed from
``w'``'s outputs on the constraint set it reads (``holdout`` for the ``transcript*``
criteria, ``selection`` for the ``test-*`` ones: each is tried alone with the reference's
outputs, and both are given when neither alone suffices), and (2) the push grew,
``J(w') > J(w)``. A rejected step leaves ``w`` where it is and halves ``η`` (a backtracking
line search), so every kept iterate satisfies the constraint and the kept iterate is the last
accepted one. A pair stops early once ``p_c(x_n) >= prob_target`` or ``η`` fell below
``MIN_STEP · step_size``. No differentiable surrogate of the constraint steers the steps: the
direction is the pure ascent direction of Hsu & Calmon's code (they ascend the raw logit with
SGD and stop at the first violation; here the log-probability, normalised steps and
backtracking), and the constraint is enforced only by accepting or rejecting steps with the
real criterion.

The gradients of all pairs of a batch come from one ``vmap(grad_and_value(...))`` over their
weight copies; the candidates' outputs on the constraint set from one ``vmap`` forward (for a
convolutional network on a CPU, one plain forward per candidate, which is faster there).

The ε values are processed in increasing order and each continues from the previous one's kept
weights (``steps`` more steps, ``η`` reset to ``step_size``). A model kept for ε therefore
satisfies every larger ε' too and the push ``J`` never decreases with ε (per sample and class).

Outside an audit (``criterion_loss`` is ``None``) the loss is the mean cross-entropy of the
member's probabilities on the ``holdout`` inputs against the reference's own probabilities
there, so ``L(w) − L(w0)`` is the mean KL divergence from the reference.

Outputs
-------
Row 0 is the reference (its outputs on every input set). Row ``1 + e · C + c`` is the channel
row for ``ε_e`` and class ``c``. On every input set other than the constraint sets
(``evaluation``, ``probe`` and any other) it holds, for each sample ``n``, the probabilities at
``n`` of the model pushed for ``(n, c)`` at ``ε_e`` (each such set gets its own per-sample
pushes). On the constraint sets (``holdout``, ``selection``: never pushed per sample) a
channel row is no single model: it holds the outputs of the row's *worst* per-sample model
(largest criterion loss) — on the set the criterion reads, exactly the outputs its acceptance
was decided on; on another constraint set, that model's outputs there — so the criterion loss
of the row equals the largest loss among its models (column ``awp_max_loss``) and the ε-filter
``L(row) <= L(reference) + ε'`` keeps every row built at ``ε_e <= ε'`` — and a row built at a
larger ε only when all its models satisfy ``ε'`` as well, which is then correct.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from numpy.typing import NDArray
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from multisteal.errors import InvalidInputError
from multisteal.models.torch_base import softmax
from multisteal.rashomon.base import (
    HOLDOUT,
    SELECTION,
    Candidates,
    ExplorationContext,
    ExplorerBase,
    check_accepts,
    check_epsilon,
    unwrap,
)

__all__ = [
    "AWP_TOLERANCE",
    "CONSTRAINT_SETS",
    "MIN_STEP",
    "AWPExplorer",
]

Params = dict[str, torch.Tensor]
_CONVOLUTIONS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
LossFn = Callable[[Mapping[str, NDArray[np.float64]]], NDArray[np.float64]]

CONSTRAINT_SETS: tuple[str, ...] = (HOLDOUT, SELECTION)
"""Input sets on which the ε-criterion is measured; every other set is pushed per sample."""
MIN_STEP = 2.0**-6
"""A pair stops at an ε once its step has been halved below ``MIN_STEP · step_size``."""
AWP_TOLERANCE = 1e-12
"""Slack of the acceptance test ``L(w) <= L(w0) + ε + AWP_TOLERANCE`` (the ε-filter's own)."""

NOT_TORCH = (
    "AWP perturbs a torch network's weights; this is a {cls}. Use the retrain or ensemble explorer."
)
NO_PARAMETERS = "AWP perturbs a torch network's weights, but this {cls}'s module has none."
NO_EPSILONS = (
    "AWP builds its members for given ε values, but none were given: set the explorer's "
    "epsilons, or run it in an audit (which passes its ε values)."
)
NO_CONSTRAINT_SET = (
    "AWP needs a set to check the ε-criterion on: input set 'holdout' (or 'selection' with an "
    "audit's criterion_loss); the context has only: {available}."
)
NO_HOLDOUT = (
    "Without an audit's criterion_loss AWP measures the loss on the 'holdout' inputs (cross-"
    "entropy against the reference's probabilities), but the context has none; it has: "
    "{available}."
)
BAD_STEPS = "steps must be an integer >= 0, got {value!r}."
BAD_STEP_SIZE = "step_size must be a finite number >= 0, got {value!r}."
BAD_PROB_TARGET = "prob_target must be a number in (0, 1], got {value!r}."
BAD_BATCH = "batch must be an integer >= 1, got {value!r}."
BAD_MAX_SAMPLES = "max_samples must be None or an integer >= 1, got {value!r}."
BAD_MEMORY = "memory_bytes must be an integer >= 1, got {value!r}."
BAD_LOSS = "criterion_loss returned {got}; expected {n} finite losses, one per candidate."
UNKNOWN_EPSILON = "epsilon {epsilon} is not one of this exploration's ε values: {available}."
UNKNOWN_SET = "Input set {key!r} is not pushed per sample; pushed sets: {available}."
BAD_SAMPLE = "sample {sample} is out of range for input set {key!r} of {n} rows."
BAD_CLASS = "target_class {value} is out of range for a surrogate of {n} classes."
SKIPPED = (
    "AWP pushed {done} of the {total} samples of input set {key!r} (max_samples={cap}); the "
    "others keep the reference's probabilities in every channel row (Rashomon Capacity 1)."
)


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True)
class _Problem:
    """Everything one exploration's pushes share (built once by :meth:`AWPExplorer._prepare`)."""

    module: nn.Module
    base: Params
    buffers: Params
    norm: float
    constraint: dict[str, torch.Tensor]  # the constraint sets the criterion reads
    ref_constraint: dict[str, NDArray[np.float64]]
    extra: dict[str, torch.Tensor]  # constraint sets the criterion does not read
    ref_extra: dict[str, NDArray[np.float64]]
    samples: dict[str, torch.Tensor]
    ref_samples: dict[str, NDArray[np.float64]]
    loss: LossFn
    ref_loss: float
    epsilons: tuple[float, ...]
    classes: NDArray[np.int64]  # surrogate class of every module output (column mapping)
    n_classes: int  # classes of the surrogate's probabilities
    input_keys: tuple[str, ...]
    width: int  # floats of every layer's output for one input row
    convolutional: bool  # the module has a convolution


@dataclass(frozen=True)
class _Pushed:
    """The result of pushing ``K`` (sample, class) pairs at one ε."""

    probs: NDArray[np.float64]  # (K, C) probabilities at each pair's own sample
    loss: NDArray[np.float64]  # (K,) criterion loss of each pushed model
    constraint: dict[str, NDArray[np.float64]]  # (K, n, C) outputs on the constraint sets
    moved: NDArray[np.bool_]  # (K,) whether the model left the reference weights
    weights: Params | None  # (K, ...) pushed weights, when asked for
    worst: dict[int, Params]  # module class -> weights of its pair with the largest loss


@dataclass
class AWPExplorer(ExplorerBase):
    """Channels of per-sample, per-class adversarial weight perturbations (Hsu & Calmon 2022).

    See the module docstring for the exact algorithm and what each output row holds.

    Parameters
    ----------
    epsilons : the ε values to build members for; default ``context.epsilons`` (an audit's).
    steps : gradient steps per ε (and per sample and class); 0 reproduces the reference.
    step_size : the first step's length relative to the norm of all reference weights
        (``η`` above); halved after every rejected step.
    prob_target : a pair stops once its class has this probability on its sample (no push
        can raise it much further); 1.0 pushes as far as the constraint and ``steps`` allow.
    max_samples : at most this many samples of each pushed input set (drawn with the
        context's generator); the others keep the reference's probabilities (a warning says
        so). ``None``: all.
    batch : (sample, class) pairs pushed together (their weight copies updated at once).
    memory_bytes : bound on the working memory of one batched forward pass; the number of
        constraint rows per pass is chosen to fit.
    """

    epsilons: Sequence[float] | None = None
    steps: int = 10
    step_size: float = 0.02
    prob_target: float = 0.999
    max_samples: int | None = None
    batch: int = 256
    memory_bytes: int = 256 * 2**20
    name: str = field(default="awp", init=False)

    def __post_init__(self) -> None:
        if not _is_int(self.steps) or self.steps < 0:
            raise InvalidInputError(BAD_STEPS.format(value=self.steps))
        try:
            size = float(self.step_size)
        except (TypeError, ValueError):
            raise InvalidInputError(BAD_STEP_SIZE.format(value=self.step_size)) from None
        if not math.isfinite(size) or size < 0:
            raise InvalidInputError(BAD_STEP_SIZE.format(value=self.step_size))
        try:
            target = float(self.prob_target)
        except (TypeError, ValueError):
            raise InvalidInputError(BAD_PROB_TARGET.format(value=self.prob_target)) from None
        if not 0.0 < target <= 1.0:
            raise InvalidInputError(BAD_PROB_TARGET.format(value=self.prob_target))
        if not _is_int(self.batch) or self.batch < 1:
            raise InvalidInputError(BAD_BATCH.format(value=self.batch))
        if self.max_samples is not None and (not _is_int(self.max_samples) or self.max_samples < 1):
            raise InvalidInputError(BAD_MAX_SAMPLES.format(value=self.max_samples))
        if not _is_int(self.memory_bytes) or self.memory_bytes < 1:
            raise InvalidInputError(BAD_MEMORY.format(value=self.memory_bytes))
        if self.epsilons is not None:
            self.epsilons = tuple(check_epsilon(e) for e in self.epsilons)

    # -- the Explorer interface -------------------------------------------------------------
    def accepts(self, model: Any) -> str | None:
        """Why AWP cannot explore ``model`` (not a torch network), or ``None``."""
        _, inner = unwrap(model)
        module = getattr(inner, "module_", None)
        if not isinstance(module, nn.Module):
            return NOT_TORCH.format(cls=type(inner).__name__)
        if not any(True for _ in module.parameters()):
            return NO_PARAMETERS.format(cls=type(inner).__name__)
        return None

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, one column each in a results table."""
        return {
            "explorer": self.name,
            "steps": self.steps,
            "step_size": float(self.step_size),
            "prob_target": float(self.prob_target),
            "max_samples": self.max_samples,
        }

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """The reference and one channel row per (ε, class), in chunks of at most
        ``context.members_per_chunk(C)`` rows (all rows are computed before the first chunk:
        there are only ``1 + len(ε) · C`` of them).

        Raises
        ------
        InvalidInputError
            If the surrogate is not a torch network, no ε is given, or the context has no set
            to check the criterion on.
        """
        problem = self._prepare(context)
        C = problem.n_classes
        E = len(problem.epsilons)
        targets = [int(c) for c in problem.classes]  # pushable surrogate classes
        rows = 1 + E * len(targets)
        outputs: dict[str, NDArray[np.float64]] = {}
        references = {**problem.ref_constraint, **problem.ref_extra, **problem.ref_samples}
        for key, ref in references.items():
            outputs[key] = np.broadcast_to(ref, (rows, *ref.shape)).copy()
        worst = np.full((E, len(targets)), problem.ref_loss)
        worst_weights: dict[tuple[int, int], Params] = {}
        moved = np.zeros((E, len(targets)), dtype=np.int64)
        pushed = np.zeros(len(targets), dtype=np.int64)

        per_batch = self._pairs_per_batch(problem)
        for key, chosen in self._sample_plan(problem, context.rng).items():
            pairs = [(int(n), j) for n in chosen for j in range(len(targets))]
            for start in range(0, len(pairs), per_batch):
                part = pairs[start : start + per_batch]
                index = torch.as_tensor([n for n, _ in part], dtype=torch.long)
                cols = np.asarray([j for _, j in part], dtype=np.int64)
                results = self._push(
                    problem,
                    problem.samples[key][index],
                    torch.as_tensor(cols, dtype=torch.long),
                    problem.ref_samples[key][index.numpy()],
                )
                pushed += np.bincount(cols, minlength=len(targets))
                for e, res in enumerate(results):
                    rows_out = 1 + e * len(targets) + cols
                    outputs[key][rows_out, index.numpy()] = res.probs
                    for j in range(len(targets)):
                        mine = np.flatnonzero(cols == j)
                        if mine.size == 0:
                            continue
                        moved[e, j] += int(res.moved[mine].sum())
                        top = mine[int(np.argmax(res.loss[mine]))]
                        if res.loss[top] > worst[e, j]:
                            worst[e, j] = res.loss[top]
                            for ckey, value in res.constraint.items():
                                outputs[ckey][1 + e * len(targets) + j] = value[top]
                            if problem.extra:
                                worst_weights[e, j] = res.worst[j]
        # Constraint sets the criterion does not read: the worst model's outputs there too.
        for (e, j), weights in worst_weights.items():
            for key, X in problem.extra.items():
                outputs[key][1 + e * len(targets) + j] = self._model_probs(problem, weights, X)

        records: list[dict[str, object]] = [
            {
                "member": 0,
                "epsilon": 0.0,
                "target_class": -1,
                "reference": True,
                "awp_max_loss": problem.ref_loss,
                "awp_moved": 0.0,
            }
        ]
        for e, eps in enumerate(problem.epsilons):
            for j, c in enumerate(targets):
                records.append(
                    {
                        "member": len(records),
                        "epsilon": eps,
                        "target_class": c,
                        "reference": False,
                        "awp_max_loss": float(worst[e, j]),
                        "awp_moved": float(moved[e, j] / max(int(pushed[j]), 1)),
                    }
                )
        params = pd.DataFrame(records)
        params["explorer"] = self.name
        params["steps"] = self.steps
        params["step_size"] = float(self.step_size)
        per_chunk = context.members_per_chunk(C)
        for start in range(0, rows, per_chunk):
            stop = min(start + per_chunk, rows)
            yield Candidates(
                self.name,
                params.iloc[start:stop].reset_index(drop=True),
                {key: outputs[key][start:stop] for key in problem.input_keys},
                "channels",
            )

    def pushed_weights(
        self,
        context: ExplorationContext,
        sample: int,
        target_class: int,
        epsilon: float,
        *,
        key: str = "evaluation",
    ) -> Params:
        """The weights AWP keeps for one sample and class at one ε (for checks and plots).

        Parameters
        ----------
        context : the exploration context (the same one :meth:`explore` gets).
        sample : row of input set ``key``.
        target_class : the surrogate class pushed.
        epsilon : one of the exploration's ε values.
        key : a per-sample input set (``evaluation``, ``probe``, ...).

        Returns
        -------
        dict of str to torch.Tensor
            The pushed parameters, named as in ``module_.named_parameters()`` (load them with
            ``torch.func.functional_call`` or ``load_state_dict(..., strict=False)``).
        """
        problem = self._prepare(context)
        if key not in problem.samples:
            raise InvalidInputError(
                UNKNOWN_SET.format(key=key, available=", ".join(problem.samples))
            )
        eps = check_epsilon(epsilon)
        if eps not in problem.epsilons:
            raise InvalidInputError(
                UNKNOWN_EPSILON.format(epsilon=eps, available=list(problem.epsilons))
            )
        n = int(problem.samples[key].shape[0])
        if not _is_int(sample) or not 0 <= sample < n:
            raise InvalidInputError(BAD_SAMPLE.format(sample=sample, key=key, n=n))
        where = np.flatnonzero(problem.classes == target_class)
        if where.size == 0:
            raise InvalidInputError(BAD_CLASS.format(value=target_class, n=problem.n_classes))
        upto = problem.epsilons.index(eps) + 1
        results = self._push(
            problem,
            problem.samples[key][[sample]],
            torch.as_tensor(where[:1], dtype=torch.long),
            problem.ref_samples[key][[sample]],
            epsilons=problem.epsilons[:upto],
            keep_weights=True,
        )
        weights = results[-1].weights
        assert weights is not None
        return {name: value[0].clone() for name, value in weights.items()}

    # -- preparation ------------------------------------------------------------------------
    def _prepare(self, context: ExplorationContext) -> _Problem:
        check_accepts(self, context.surrogate)
        epsilons = self.epsilons if self.epsilons is not None else context.epsilons
        if not epsilons:
            raise InvalidInputError(NO_EPSILONS)
        eps = tuple(sorted({check_epsilon(e) for e in epsilons}))
        encode, inner = unwrap(context.surrogate)
        module = inner.module_
        assert isinstance(module, nn.Module)
        device = next(module.parameters()).device
        keys = tuple(context.inputs)
        constraint_keys = [k for k in CONSTRAINT_SETS if k in context.inputs]
        if context.criterion_loss is None and HOLDOUT not in context.inputs:
            raise InvalidInputError(NO_HOLDOUT.format(available=", ".join(keys)))
        if not constraint_keys:
            raise InvalidInputError(NO_CONSTRAINT_SET.format(available=", ".join(keys)))
        encoded = {
            k: torch.from_numpy(
                np.ascontiguousarray(encode(context.inputs[k]), dtype=np.float32)
            ).to(device)
            for k in keys
        }
        base = {n: p.detach().clone() for n, p in module.named_parameters()}
        buffers = {n: b.detach().clone() for n, b in module.named_buffers()}
        norm = float(
            torch.linalg.vector_norm(torch.cat([p.double().flatten() for p in base.values()]))
        )
        outer = context.surrogate
        n_out = self._module_outputs(module, encoded)
        classes = np.arange(n_out, dtype=np.int64)
        n_classes = n_out
        columns = getattr(outer, "columns_", None)
        total = getattr(outer, "n_classes_", None)
        pipeline = outer is not inner and columns is not None
        if pipeline and isinstance(total, int | np.integer) and int(total) != n_out:
            classes = np.asarray(columns, dtype=np.int64)
            n_classes = int(total)
        was_training = module.training
        module.eval()
        try:
            ref = {
                k: self._reference_probs(module, v, classes, n_classes) for k, v in encoded.items()
            }
            width = _activation_width(module, encoded[constraint_keys[0]])
        finally:
            module.train(was_training)
        loss = self._loss_function(context, ref)
        used = self._criterion_sets(context, constraint_keys, loss, ref)
        ref_loss = float(loss({k: ref[k][None] for k in used})[0])
        return _Problem(
            module=module,
            base=base,
            buffers=buffers,
            norm=norm,
            constraint={k: encoded[k] for k in used},
            ref_constraint={k: ref[k] for k in used},
            extra={k: encoded[k] for k in constraint_keys if k not in used},
            ref_extra={k: ref[k] for k in constraint_keys if k not in used},
            samples={k: encoded[k] for k in keys if k not in constraint_keys},
            ref_samples={k: ref[k] for k in keys if k not in constraint_keys},
            loss=loss,
            ref_loss=ref_loss,
            epsilons=eps,
            classes=classes,
            n_classes=n_classes,
            input_keys=keys,
            width=width,
            convolutional=any(isinstance(m, _CONVOLUTIONS) for m in module.modules()),
        )

    @staticmethod
    def _module_outputs(module: nn.Module, encoded: Mapping[str, torch.Tensor]) -> int:
        for value in encoded.values():
            if value.shape[0]:
                with torch.no_grad():
                    return int(module(value[:1]).shape[-1])
        raise InvalidInputError("AWP needs at least one input row.")

    @staticmethod
    def _criterion_sets(
        context: ExplorationContext,
        constraint_keys: Sequence[str],
        loss: LossFn,
        ref: Mapping[str, NDArray[np.float64]],
    ) -> list[str]:
        """The constraint sets the criterion reads: ``holdout`` without an audit's criterion;
        else the first set alone from which the criterion can be computed (each is tried with
        the reference's outputs), or all of them."""
        if context.criterion_loss is None:
            return [HOLDOUT]
        if len(constraint_keys) == 1:
            return list(constraint_keys)
        for key in constraint_keys:
            try:
                loss({key: ref[key][None]})
            except (LookupError, ValueError):  # InvalidInputError is a ValueError
                continue
            return [key]
        return list(constraint_keys)

    def _loss_function(
        self, context: ExplorationContext, ref: Mapping[str, NDArray[np.float64]]
    ) -> LossFn:
        """The criterion loss of ``K`` candidates from their outputs on the constraint sets."""
        criterion = context.criterion_loss
        if criterion is None:
            soft = ref[HOLDOUT]

            def cross_entropy(outputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
                log_p = np.log(np.clip(outputs[HOLDOUT], 1e-12, 1.0))
                out: NDArray[np.float64] = -(soft[None] * log_p).sum(axis=2).mean(axis=1)
                return out

            return cross_entropy

        name = self.name

        def audit_loss(outputs: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
            K = next(iter(outputs.values())).shape[0]
            params = pd.DataFrame({"member": np.arange(K)})
            values = np.asarray(criterion(Candidates(name, params, dict(outputs))), np.float64)
            if values.shape != (K,) or not np.isfinite(values).all():
                raise InvalidInputError(BAD_LOSS.format(got=values.shape, n=K))
            return values

        return audit_loss

    def _reference_probs(
        self, module: nn.Module, X: torch.Tensor, classes: NDArray[np.int64], n_classes: int
    ) -> NDArray[np.float64]:
        size = 8192 if X.dim() <= 2 else 1024
        with torch.no_grad():
            parts = [module(X[s : s + size]) for s in range(0, X.shape[0], size)]
        if not parts:
            return np.zeros((0, n_classes))
        return _surrogate_probs(torch.cat(parts).double().cpu().numpy(), classes, n_classes)

    def _sample_plan(
        self, problem: _Problem, rng: np.random.Generator
    ) -> dict[str, NDArray[np.int64]]:
        """The rows of every per-sample set to push (all, or ``max_samples`` drawn)."""
        plan: dict[str, NDArray[np.int64]] = {}
        for key, X in problem.samples.items():
            n = int(X.shape[0])
            if self.max_samples is None or n <= self.max_samples:
                plan[key] = np.arange(n, dtype=np.int64)
                continue
            plan[key] = np.sort(rng.choice(n, size=self.max_samples, replace=False))
            warnings.warn(
                SKIPPED.format(done=self.max_samples, total=n, key=key, cap=self.max_samples),
                UserWarning,
                stacklevel=3,
            )
        return plan

    def _pairs_per_batch(self, problem: _Problem) -> int:
        """``batch``, lowered so that ~8 copies of the weights of every pair fit in memory."""
        n_params = sum(int(p.numel()) for p in problem.base.values())
        fit = self.memory_bytes // max(1, 8 * 4 * n_params)
        return int(max(1, min(self.batch, fit)))

    # -- the push ---------------------------------------------------------------------------
    def _push(
        self,
        problem: _Problem,
        x: torch.Tensor,
        cols: torch.Tensor,
        ref_probs: NDArray[np.float64],
        *,
        epsilons: Sequence[float] | None = None,
        keep_weights: bool = False,
    ) -> list[_Pushed]:
        """Push ``K`` pairs (sample ``x[k]``, module class ``cols[k]``) through every ε.

        Returns one :class:`_Pushed` per ε (in increasing order); each ε continues from the
        weights kept at the previous one.
        """
        module = problem.module
        K = int(x.shape[0])
        n_out = int(problem.classes.size)
        onehot = torch.nn.functional.one_hot(cols, n_out).to(x.dtype).to(x.device)
        w = {n: p.unsqueeze(0).expand(K, *p.shape).clone() for n, p in problem.base.items()}
        buffers = problem.buffers

        def target(params: Params, xi: torch.Tensor, hot: torch.Tensor) -> torch.Tensor:
            logits = functional_call(module, (params, buffers), (xi.unsqueeze(0),))
            return (torch.log_softmax(logits[0], dim=-1) * hot).sum()

        def logits_at(params: Params, xs: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(module, (params, buffers), (xs,))
            return out

        ascend = vmap(grad_and_value(target))
        point = vmap(lambda params, xi: logits_at(params, xi.unsqueeze(0))[0])
        shared = vmap(logits_at, in_dims=(0, None))

        probs = ref_probs.copy()
        loss = np.full(K, problem.ref_loss)
        constraint = {
            k: np.broadcast_to(v, (K, *v.shape)).copy() for k, v in problem.ref_constraint.items()
        }
        moved = np.zeros(K, dtype=bool)
        target_cols = problem.classes[cols.numpy()]
        min_eta = float(self.step_size) * MIN_STEP
        results: list[_Pushed] = []
        was_training = module.training
        module.eval()
        try:
            for eps in problem.epsilons if epsilons is None else epsilons:
                bound = problem.ref_loss + eps + AWP_TOLERANCE
                eta = np.full(K, float(self.step_size))
                for _ in range(self.steps):
                    reached = probs[np.arange(K), target_cols] >= self.prob_target
                    active = np.flatnonzero((eta >= min_eta) & ~reached)
                    if active.size == 0:
                        break
                    idx = torch.from_numpy(active)
                    wa = {n: v[idx] for n, v in w.items()}
                    grads, value = ascend(wa, x[idx], onehot[idx])
                    with torch.no_grad():
                        gnorm = torch.sqrt(
                            torch.stack(
                                [(g.double() ** 2).flatten(1).sum(1) for g in grads.values()]
                            ).sum(0)
                        )
                        flat = (gnorm == 0).cpu().numpy()
                        eta[active[flat]] = 0.0  # a stationary point: nothing to push
                        scale = (
                            torch.from_numpy(eta[active] * problem.norm).to(gnorm.device) / gnorm
                        )
                        scale = torch.where(gnorm > 0, scale, torch.zeros_like(scale)).float()
                        cand = {
                            n: wa[n] + scale.view(-1, *([1] * (wa[n].dim() - 1))) * grads[n]
                            for n in wa
                        }
                        new_logits = point(cand, x[idx])
                        new_value = (torch.log_softmax(new_logits, dim=-1) * onehot[idx]).sum(-1)
                        grew = (new_value > value).cpu().numpy() & ~flat
                        eta[active[~grew & ~flat]] /= 2.0  # overshot: the push fell
                        if not grew.any():
                            continue
                        sel = torch.from_numpy(np.flatnonzero(grew))
                        cand = {n: v[sel] for n, v in cand.items()}
                        outs = {
                            k: self._shared_probs(shared, cand, X, problem)
                            for k, X in problem.constraint.items()
                        }
                    new_loss = problem.loss(outs)
                    ok = new_loss <= bound
                    checked = active[grew]
                    eta[checked[~ok]] /= 2.0  # left the ε-Rashomon set
                    if not ok.any():
                        continue
                    keep = checked[ok]
                    sel_ok = torch.from_numpy(np.flatnonzero(ok))
                    kt = torch.from_numpy(keep)
                    for n in w:
                        w[n][kt] = cand[n][sel_ok]
                    probs[keep] = _surrogate_probs(
                        new_logits[sel[sel_ok]].double().cpu().numpy(),
                        problem.classes,
                        problem.n_classes,
                    )
                    loss[keep] = new_loss[ok]
                    for k in constraint:
                        constraint[k][keep] = outs[k][ok]
                    moved[keep] = True
                worst: dict[int, Params] = {}
                if problem.extra:
                    col_values = cols.numpy()
                    for col in np.unique(col_values):
                        mine = np.flatnonzero(col_values == col)
                        top = int(mine[int(np.argmax(loss[mine]))])
                        worst[int(col)] = {n: v[top].clone() for n, v in w.items()}
                results.append(
                    _Pushed(
                        probs=probs.copy(),
                        loss=loss.copy(),
                        constraint={k: v.copy() for k, v in constraint.items()},
                        moved=moved.copy(),
                        weights={n: v.clone() for n, v in w.items()} if keep_weights else None,
                        worst=worst,
                    )
                )
        finally:
            module.train(was_training)
        return results

    def _model_probs(
        self, problem: _Problem, weights: Params, X: torch.Tensor
    ) -> NDArray[np.float64]:
        """Probabilities of one model (``weights``) on ``X``, shape (n, C)."""
        if X.shape[0] == 0:
            return np.zeros((0, problem.n_classes))
        rows = max(1, int(self.memory_bytes // max(1, 4 * 2 * problem.width)))
        with torch.no_grad():
            logits = torch.cat(
                [
                    functional_call(problem.module, (weights, problem.buffers), (X[s : s + rows],))
                    for s in range(0, X.shape[0], rows)
                ]
            )
        return _surrogate_probs(logits.double().cpu().numpy(), problem.classes, problem.n_classes)

    def _shared_probs(
        self,
        shared: Callable[[Params, torch.Tensor], torch.Tensor],
        cand: Params,
        X: torch.Tensor,
        problem: _Problem,
    ) -> NDArray[np.float64]:
        """Probabilities of every candidate on ``X``, shape (K, n, C), in row chunks that keep
        one forward pass within ``memory_bytes``.

        One ``vmap`` pass evaluates all candidates at once, except for a convolutional network
        on a CPU: there ``vmap``'s grouped convolutions are about 2.5 times slower than one
        plain convolution per candidate (measured on the small MNIST CNN), so the candidates
        are evaluated one after another. (For an MLP both take the same time on a CPU.)
        """
        K = next(iter(cand.values())).shape[0]
        n = int(X.shape[0])
        if n == 0:
            return np.zeros((K, 0, problem.n_classes))
        if problem.convolutional and X.device.type == "cpu":
            rows = max(1, int(self.memory_bytes // max(1, 4 * 2 * problem.width)))
            logits = torch.stack(
                [
                    torch.cat(
                        [
                            functional_call(
                                problem.module,
                                ({name: v[k] for name, v in cand.items()}, problem.buffers),
                                (X[s : s + rows],),
                            )
                            for s in range(0, n, rows)
                        ]
                    )
                    for k in range(K)
                ]
            )
        else:
            rows = max(1, int(self.memory_bytes // max(1, 4 * 2 * K * problem.width)))
            logits = torch.cat([shared(cand, X[s : s + rows]) for s in range(0, n, rows)], dim=1)
        return _surrogate_probs(logits.double().cpu().numpy(), problem.classes, problem.n_classes)


def _activation_width(module: nn.Module, X: torch.Tensor) -> int:
    """Floats of every leaf layer's output (and the input) for one row of ``X`` (hooks)."""
    sizes: list[int] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: sizes.append(int(out[0].numel())))
        for m in module.modules()
        if not list(m.children())
    ]
    try:
        if X.shape[0]:
            with torch.no_grad():
                module(X[:1])
    finally:
        for handle in handles:
            handle.remove()
    return max(1, sum(sizes) + int(X[0].numel() if X.shape[0] else 1))


def _surrogate_probs(
    logits: NDArray[np.float64], classes: NDArray[np.int64], n_classes: int
) -> NDArray[np.float64]:
    """Softmax of the module's logits, placed in the surrogate's class columns."""
    probs = softmax(logits)
    if probs.shape[-1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return probs
    out = np.zeros((*probs.shape[:-1], n_classes))
    out[..., classes] = probs
    return out
