"""TreeFARMS exploration: the exact Rashomon set of sparse decision trees (Xin et al. 2022).

TreeFARMS ("Exploring the Whole Rashomon Set of Sparse Decision Trees", NeurIPS 2022) enumerates
every decision tree on 0/1 features (in its own sense: majority-labelled leaves, no trivial
splits; see :class:`TreeFarmsExplorer`) whose regularised objective

    objective(t) = misclassification rate on the training rows + regularization × leaves(t)

is at most ``(1 + rashomon_multiplier) × objective(optimal tree)``, within a depth budget. The
explorer fits it on the attacker's transcript, encoded with the reference surrogate's encoder and
binarised (:class:`Binarizer`), and returns the trees' probabilities on every input set.

The ``treefarms`` package is an optional extra (``pip install 'multisteal[treefarms]'``); it is
imported only when an exploration runs.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.errors import InvalidInputError
from multisteal.rashomon.base import (
    Candidates,
    ExplorationContext,
    ExplorerBase,
    check_accepts,
    unwrap,
)

__all__ = [
    "NEEDS_TREEFARMS",
    "Binarizer",
    "Tree",
    "TreeFarmsExplorer",
    "TreeFarmsSet",
    "fit_treefarms",
    "treefarms_available",
]

NEEDS_TREEFARMS = (
    "The treefarms explorer needs the optional treefarms package: "
    "pip install 'multisteal[treefarms]'"
)
NOT_A_TREE = (
    "TreeFARMS explores decision-tree surrogates only (the 'tree' family, a scikit-learn "
    "DecisionTreeClassifier); this one is a {model}. Use the retrain explorer for other families."
)
NOT_BINARY = (
    "TreeFARMS fits binary classifiers only; the surrogate has {n} classes. Use the retrain "
    "explorer for multi-class tasks."
)
BAD_REGULARIZATION = "regularization must be in (0, 1], got {value!r}."
BAD_DEPTH = (
    "depth_budget must be an integer >= 1 (TreeFARMS counts a single leaf as depth 1, so "
    "depth_budget=4 allows 3 levels of splits), got {value!r}."
)
BAD_MULTIPLIER = "rashomon_multiplier must be a finite number > 0, got {value!r}."
BAD_MAX_MEMBERS = "max_members must be an integer >= 1, got {value!r}."
BAD_THRESHOLDS = "n_thresholds must be an integer >= 1, got {value!r}."
UNKNOWN_PROBABILITIES = "Unknown probabilities {value!r}. Available: leaf, onehot."
NO_FEATURES = (
    "No encoded feature varies on the transcript's {n} rows, so TreeFARMS has nothing to split on."
)
EMPTY_TRANSCRIPT = "TreeFARMS needs a non-empty transcript."
BAD_LABELS = "TreeFARMS needs labels 0/1 (binary class indices); got {labels}."
FIT_FAILED = "TreeFARMS failed on the transcript ({n} rows, {p} binary features): {error}"
TOO_MANY_TREES = (
    "The Rashomon set has {count} trees, too many to sample; raise regularization or lower "
    "rashomon_multiplier or depth_budget."
)
NOT_2D = "Encoded inputs must be 2-D, got shape {shape}."
SHAPE_MISMATCH = (
    "Encoded inputs have {got} columns, but the binarizer was fitted on {expected} columns."
)

Probabilities = Literal["leaf", "onehot"]
PROBABILITIES: tuple[str, ...] = ("leaf", "onehot")
_MAX_COUNT = 2**62
_TIE = 1e-9  # objectives closer than this are equal (they are multiples of 1/n and λ)


def treefarms_available() -> bool:
    """Whether the optional ``treefarms`` package is installed (it is not imported)."""
    return importlib.util.find_spec("treefarms") is not None


def _dense(X: Any) -> NDArray[np.float64]:
    """``X`` as a dense 2-D float64 array (sparse matrices are densified)."""
    if hasattr(X, "toarray"):
        X = X.toarray()
    array = np.asarray(X, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InvalidInputError(NOT_2D.format(shape=array.shape))
    return array


# ---------------------------------------------------------------------------- binarisation


@dataclass(frozen=True)
class Binarizer:
    """0/1 features from encoded columns, the input TreeFARMS needs.

    Fitted on the training rows (:meth:`fit`): a column whose values are all 0 or 1 (a one-hot
    column) is kept as the feature ``x == 1`` (``x > 0.5``); any other column gets up to
    ``n_thresholds`` features ``x <= t``. The thresholds come from the quantiles at levels
    ``k / (n_thresholds + 1)``, ``k = 1 .. n_thresholds``: each quantile ``q`` is moved to the
    midpoint between the largest training value ``<= q`` and the next larger training value
    (as scikit-learn places its split thresholds), so a threshold always separates training
    rows; a quantile at the column's maximum is dropped, and equal thresholds are kept once.
    Columns constant on the training rows give no feature.

    Attributes
    ----------
    columns : the encoded column of every binary feature, shape (F,).
    thresholds : ``t`` of every ``x <= t`` feature, NaN for a kept 0/1 column, shape (F,).
    names : a readable name of every feature (``age<=0.25``, ``sex=Male``).
    n_columns : the number of encoded columns it was fitted on.
    """

    columns: NDArray[np.int64]
    thresholds: NDArray[np.float64]
    names: tuple[str, ...]
    n_columns: int

    @classmethod
    def fit(cls, X: Any, n_thresholds: int = 4, *, names: Sequence[str] | None = None) -> Binarizer:
        """Choose the binary features of the encoded training rows ``X``.

        Parameters
        ----------
        X : encoded training rows, shape (n, p).
        n_thresholds : the most ``x <= t`` features of one non-binary column.
        names : names of the ``p`` encoded columns (``x0 .. x{p-1}`` when ``None``).

        Returns
        -------
        Binarizer
        """
        if isinstance(n_thresholds, bool) or int(n_thresholds) != n_thresholds or n_thresholds < 1:
            raise InvalidInputError(BAD_THRESHOLDS.format(value=n_thresholds))
        array = _dense(X)
        p = array.shape[1]
        labels = [f"x{j}" for j in range(p)] if names is None else [str(n) for n in names]
        if len(labels) != p:
            labels = [f"x{j}" for j in range(p)]
        levels = np.arange(1, int(n_thresholds) + 1) / (int(n_thresholds) + 1)
        columns: list[int] = []
        thresholds: list[float] = []
        out_names: list[str] = []
        for j in range(p):
            column = array[:, j]
            column = column[np.isfinite(column)]
            values = np.unique(column)
            if values.size < 2:
                continue  # constant (or empty): nothing to split on
            if np.isin(values, (0.0, 1.0)).all():
                columns.append(j)
                thresholds.append(np.nan)
                out_names.append(labels[j] if "=" in labels[j] else f"{labels[j]}==1")
                continue
            chosen: list[float] = []
            for q in np.quantile(column, levels):
                below = int(np.searchsorted(values, q, side="right")) - 1
                if below >= values.size - 1:
                    continue  # at the maximum: every training row is <= it
                below = max(below, 0)
                t = float((values[below] + values[below + 1]) / 2.0)
                if t not in chosen:
                    chosen.append(t)
            for t in sorted(chosen):
                columns.append(j)
                thresholds.append(t)
                out_names.append(f"{labels[j]}<={t:.6g}")
        return cls(
            np.asarray(columns, dtype=np.int64),
            np.asarray(thresholds, dtype=np.float64),
            tuple(out_names),
            p,
        )

    @property
    def n_features(self) -> int:
        """The number of binary features."""
        return int(self.columns.size)

    def transform(self, X: Any) -> NDArray[np.uint8]:
        """The binary features of encoded rows ``X``, shape (n, F), values 0/1.

        A kept 0/1 column gives ``x > 0.5``; a thresholded column ``x <= t`` (NaN gives 0).
        """
        array = _dense(X)
        if array.shape[1] != self.n_columns:
            raise InvalidInputError(
                SHAPE_MISMATCH.format(got=array.shape[1], expected=self.n_columns)
            )
        values = array[:, self.columns]
        kept = np.isnan(self.thresholds)
        with np.errstate(invalid="ignore"):
            out = np.where(kept[None, :], values > 0.5, values <= self.thresholds[None, :])
        return out.astype(np.uint8)


# ---------------------------------------------------------------------------- trees


@dataclass(frozen=True)
class Tree:
    """One tree of a TreeFARMS Rashomon set, evaluated with numpy.

    ``source`` is TreeFARMS' dictionary: an inner node ``{"feature": j, "true": ..., "false":
    ...}`` sends a row to ``true`` when binary feature ``j`` is 1; a leaf is ``{"prediction":
    k}``, ``k`` the index of the class among the sorted labels TreeFARMS saw (:attr:`classes`
    maps it back).
    """

    source: Mapping[str, Any]
    classes: NDArray[np.int64]

    def leaf_predictions(self) -> NDArray[np.int64]:
        """The class each leaf predicts, in the leaf order of :meth:`apply`."""
        predictions: list[int] = []
        stack: list[Mapping[str, Any]] = [self.source]
        while stack:
            node = stack.pop()
            if "prediction" in node:
                predictions.append(int(self.classes[int(node["prediction"])]))
            else:
                stack.append(node["false"])
                stack.append(node["true"])
        return np.asarray(predictions, dtype=np.int64)

    @property
    def n_leaves(self) -> int:
        """The number of leaves."""
        return int(self.leaf_predictions().size)

    def apply(self, B: NDArray[np.uint8]) -> NDArray[np.int64]:
        """The leaf (index into :meth:`leaf_predictions`) of every binarised row, shape (n,)."""
        leaf_of = np.empty(B.shape[0], dtype=np.int64)
        count = 0
        stack: list[tuple[Mapping[str, Any], NDArray[np.int64]]] = [
            (self.source, np.arange(B.shape[0], dtype=np.int64))
        ]
        while stack:
            node, rows = stack.pop()
            if "prediction" in node:
                leaf_of[rows] = count
                count += 1
                continue
            goes_true = B[rows, int(node["feature"])] == 1
            stack.append((node["false"], rows[~goes_true]))
            stack.append((node["true"], rows[goes_true]))
        return leaf_of

    def predict(self, B: NDArray[np.uint8]) -> NDArray[np.int64]:
        """The class of every binarised row, shape (n,)."""
        out: NDArray[np.int64] = self.leaf_predictions()[self.apply(B)]
        return out

    def objective(self, B: NDArray[np.uint8], y: NDArray[np.int64], regularization: float) -> float:
        """TreeFARMS' objective on ``(B, y)``: misclassification rate + regularization × leaves."""
        return float(np.mean(self.predict(B) != y)) + regularization * self.n_leaves


@dataclass(frozen=True)
class TreeFarmsSet:
    """A fitted TreeFARMS Rashomon set.

    Attributes
    ----------
    model_set : TreeFARMS' ``ModelSetContainer`` (trees by index, their metrics).
    classes : the sorted labels TreeFARMS saw (its leaf predictions index them).
    regularization : the objective's penalty per leaf.
    """

    model_set: Any
    classes: NDArray[np.int64]
    regularization: float

    @property
    def count(self) -> int:
        """The number of trees in the set."""
        return int(self.model_set.get_tree_count())

    def tree(self, index: int) -> Tree:
        """The ``index``-th tree (``0 <= index < count``)."""
        return Tree(self.model_set.get_tree_at_idx_raw(int(index)), self.classes)

    def reported_objective(self, index: int) -> float:
        """The objective TreeFARMS reports for the ``index``-th tree (float32 precision)."""
        return float(self.model_set.get_tree_metric_at_idx(int(index))["objective"])

    def optimal_index(self) -> int:
        """The first index of the trees with the smallest reported objective.

        TreeFARMS stores trees in groups of equal metrics; the groups are not sorted by
        objective, so index 0 need not be optimal.
        """
        metrics = self.model_set.available_metrics
        start = 0
        best_index, best = 0, np.inf
        for pointer, value in zip(
            metrics["metric_pointers"], metrics["metric_values"], strict=True
        ):
            objective = float(value[0])
            if objective < best - 1e-7:
                best_index, best = start, objective
            start += int(self.model_set.get_model_set(pointer)["count"])
        return best_index


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence what TreeFARMS prints (its C++ core writes to file descriptor 1)."""
    with contextlib.redirect_stdout(io.StringIO()):
        if sys.__stdout__ is not None:
            sys.__stdout__.flush()
        try:
            saved = os.dup(1)
        except (OSError, ValueError):  # no usable descriptor 1: only Python-level output
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 1)
            yield
        finally:
            with contextlib.suppress(Exception):
                import ctypes

                ctypes.CDLL(None).fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            os.close(devnull)


def _import_treefarms() -> Any:
    try:
        return importlib.import_module("treefarms")
    except ImportError:
        raise InvalidInputError(NEEDS_TREEFARMS) from None


def fit_treefarms(
    B: NDArray[np.uint8],
    y: NDArray[np.int64],
    *,
    regularization: float,
    depth_budget: int,
    rashomon_multiplier: float,
) -> TreeFarmsSet:
    """Fit TreeFARMS on binarised rows and return its Rashomon set.

    Parameters
    ----------
    B : binary features, shape (n, F), values 0/1.
    y : class indices 0/1, shape (n,).
    regularization : penalty per leaf (TreeFARMS ``regularization``).
    depth_budget : TreeFARMS ``depth_budget`` (a single leaf has depth 1).
    rashomon_multiplier : TreeFARMS ``rashomon_bound_multiplier``: the set holds every tree
        with objective <= (1 + rashomon_multiplier) × the optimal objective.

    Returns
    -------
    TreeFarmsSet
    """
    labels = np.asarray(y, dtype=np.int64)
    if labels.size == 0:
        raise InvalidInputError(EMPTY_TRANSCRIPT)
    classes = np.unique(labels)
    if not np.isin(classes, (0, 1)).all():
        raise InvalidInputError(BAD_LABELS.format(labels=classes.tolist()))
    n, p = B.shape
    if p == 0:
        raise InvalidInputError(NO_FEATURES.format(n=n))
    module = _import_treefarms()
    # Plain column names: TreeFARMS hands the frame to its C++ core as CSV text.
    frame = pd.DataFrame(np.asarray(B, dtype=np.int64), columns=[f"b{j}" for j in range(p)])
    config = {
        "regularization": float(regularization),
        "depth_budget": int(depth_budget),
        "rashomon_bound_multiplier": float(rashomon_multiplier),
        "verbose": False,
    }
    model = module.TREEFARMS(config)
    try:
        with _quiet():
            model.fit(frame, pd.Series(labels, name="class"))
    except Exception as error:  # TreeFARMS raises a bare Exception
        raise InvalidInputError(FIT_FAILED.format(n=n, p=p, error=error)) from error
    return TreeFarmsSet(model.model_set, classes, float(regularization))


# ---------------------------------------------------------------------------- explorer


def _is_tree(model: Any) -> bool:
    from sklearn.tree import DecisionTreeClassifier

    _, inner = unwrap(model)
    if isinstance(inner, DecisionTreeClassifier):
        return True
    # A tree pipeline fitted on a one-class transcript holds a DummyClassifier in its place.
    template = getattr(model, "model", None)
    return type(inner).__name__ == "DummyClassifier" and isinstance(
        template, DecisionTreeClassifier
    )


def _leaf_probabilities(
    tree: Tree, B_train: NDArray[np.uint8], y: NDArray[np.int64], how: str
) -> NDArray[np.float64]:
    """Class probabilities of every leaf, shape (leaves, 2).

    ``onehot``: the leaf's predicted class. ``leaf``: the training rows' class frequencies in
    the leaf, unless they do not decide the leaf's predicted class (a tie, a minority
    prediction, no training row), where the one-hot prediction is used: the member's decisions
    are always TreeFARMS' predictions.
    """
    predictions = tree.leaf_predictions()
    onehot = np.zeros((predictions.size, 2), dtype=np.float64)
    onehot[np.arange(predictions.size), predictions] = 1.0
    if how == "onehot":
        return onehot
    leaf_of = tree.apply(B_train)
    counts = np.zeros((predictions.size, 2), dtype=np.float64)
    np.add.at(counts, (leaf_of, y), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        frequencies = counts / totals
    # argmax with ties to class 0, as METRICS.md decides
    decides = (totals[:, 0] > 0) & (np.argmax(frequencies, axis=1) == predictions)
    out: NDArray[np.float64] = np.where(decides[:, None], frequencies, onehot)
    return out


@dataclass
class TreeFarmsExplorer(ExplorerBase):
    """Candidates from the exact Rashomon set of sparse decision trees (TreeFARMS).

    TreeFARMS is fitted on the training transcript: its queries encoded with the reference
    surrogate's encoder and binarised (:class:`Binarizer`), its answers' labels as targets.
    The set holds every tree within the depth budget whose objective (misclassification rate
    + ``regularization`` × leaves) is at most ``(1 + rashomon_multiplier)`` × the optimal
    objective, as TreeFARMS 0.2.4 defines its trees: a tree is a structure whose leaves
    predict their training majority (a tie goes to class 1), and a split whose two leaves
    predict the same class (a "trivial extension") is left out. Its trees are not ordered by
    objective. When the set has more than ``max_members`` trees, a uniform random sample of
    them (drawn with ``context.rng``, without replacement) is taken, the optimal tree always
    included; ``n_trees_in_set`` records the set's size.

    Row 0 of the candidates is the reference surrogate; every other row is one tree, whose
    probabilities on an input set are its leaves' training class frequencies (``probabilities
    ='leaf'``; one-hot where they would not decide the tree's prediction under the
    ties-to-class-0 rule: a tied or empty leaf) or its one-hot predictions (``'onehot'``), so a
    member's decisions are always TreeFARMS' predictions. Binary tasks only; decision-tree
    surrogates only (the set lives in the same model class as the reference).

    Parameters
    ----------
    regularization : penalty per leaf, in (0, 1] (TreeFARMS recommends >= 1/n_rows).
    depth_budget : TreeFARMS' depth budget, a single leaf counting as depth 1 (4: up to 3
        levels of splits).
    rashomon_multiplier : the set's bound relative to the optimal objective.
    max_members : the most trees taken from the set.
    n_thresholds : the most ``x <= t`` features of one numerical column.
    probabilities : ``leaf`` (default) or ``onehot``.
    """

    regularization: float = 0.01
    depth_budget: int = 4
    rashomon_multiplier: float = 0.05
    max_members: int = 200
    n_thresholds: int = 4
    probabilities: Probabilities = "leaf"
    name: str = field(default="treefarms", init=False)
    refits: bool = field(default=True, init=False)
    n_trees_in_set_: int | None = field(default=None, init=False, repr=False)
    n_features_: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not _is_number(self.regularization) or not 0 < self.regularization <= 1:
            raise InvalidInputError(BAD_REGULARIZATION.format(value=self.regularization))
        if not _is_count(self.depth_budget):
            raise InvalidInputError(BAD_DEPTH.format(value=self.depth_budget))
        if not _is_number(self.rashomon_multiplier) or not self.rashomon_multiplier > 0:
            raise InvalidInputError(BAD_MULTIPLIER.format(value=self.rashomon_multiplier))
        if not _is_count(self.max_members):
            raise InvalidInputError(BAD_MAX_MEMBERS.format(value=self.max_members))
        if not _is_count(self.n_thresholds):
            raise InvalidInputError(BAD_THRESHOLDS.format(value=self.n_thresholds))
        if self.probabilities not in PROBABILITIES:
            raise InvalidInputError(UNKNOWN_PROBABILITIES.format(value=self.probabilities))
        if not treefarms_available():
            raise InvalidInputError(NEEDS_TREEFARMS)

    def describe(self) -> dict[str, object]:
        """The explorer's parameters, one column each in a results table, with the size of the
        last exploration's Rashomon set (``n_trees_in_set``) and its number of binary
        features (``None`` before any exploration)."""
        return {
            "explorer": self.name,
            "regularization": self.regularization,
            "depth_budget": self.depth_budget,
            "rashomon_multiplier": self.rashomon_multiplier,
            "max_members": self.max_members,
            "n_thresholds": self.n_thresholds,
            "probabilities": self.probabilities,
            "n_trees_in_set": self.n_trees_in_set_,
            "n_binary_features": self.n_features_,
        }

    def accepts(self, model: Any) -> str | None:
        """The reason this explorer cannot explore ``model`` (missing package, not a decision
        tree, more than two classes), or ``None``."""
        if not treefarms_available():
            return NEEDS_TREEFARMS
        if not _is_tree(model):
            _, inner = unwrap(model)
            return NOT_A_TREE.format(model=type(inner).__name__)
        classes = getattr(model, "classes_", None)
        if classes is not None and len(classes) > 2:
            return NOT_BINARY.format(n=len(classes))
        return None

    def select(self, tree_set: TreeFarmsSet, rng: np.random.Generator) -> NDArray[np.int64]:
        """The indices of the trees taken from the set, sorted.

        Every tree when the set has at most ``max_members``; otherwise the optimal tree and a
        uniform sample without replacement of ``max_members - 1`` others, drawn from ``rng``.
        """
        count = tree_set.count
        if count <= self.max_members:
            return np.arange(count, dtype=np.int64)
        if count > _MAX_COUNT:
            raise InvalidInputError(TOO_MANY_TREES.format(count=count))
        optimal = tree_set.optimal_index()
        others = rng.choice(count - 1, size=self.max_members - 1, replace=False)
        others = others + (others >= optimal)  # skip the optimal index
        return np.sort(np.concatenate([[optimal], others]).astype(np.int64))

    def explore_chunks(self, context: ExplorationContext) -> Iterator[Candidates]:
        """Fit TreeFARMS on the transcript and yield the reference and the set's trees, in
        chunks of at most ``members_per_chunk`` candidates.

        ``params`` columns: ``member``, ``tree_index`` (-1 for the reference), ``objective``
        (recomputed on the transcript; NaN for the reference), ``treefarms_objective`` (as
        TreeFARMS reports it, float32 precision), ``leaves``, ``training_error``,
        ``is_optimal``, ``n_trees_in_set``, ``reference``, ``explorer``.
        """
        check_accepts(self, context.surrogate)
        names = list(context.inputs)
        reference = {
            k: np.asarray(context.surrogate.predict_proba(context.inputs[k]), dtype=np.float64)
            for k in names
        }
        n_classes = reference[names[0]].shape[1] if names else 2
        if n_classes != 2:
            raise InvalidInputError(NOT_BINARY.format(n=n_classes))
        encode, _ = unwrap(context.surrogate)
        X_train = _dense(encode(context.transcript.queries))
        y = np.asarray(context.transcript.answers.labels, dtype=np.int64)
        feature_names = getattr(
            getattr(context.surrogate, "encoder_", None), "feature_names_out_", None
        )
        binarizer = Binarizer.fit(X_train, self.n_thresholds, names=feature_names)
        B_train = binarizer.transform(X_train)
        tree_set = fit_treefarms(
            B_train,
            y,
            regularization=self.regularization,
            depth_budget=self.depth_budget,
            rashomon_multiplier=self.rashomon_multiplier,
        )
        count = tree_set.count
        self.n_trees_in_set_ = count
        self.n_features_ = binarizer.n_features
        chosen = self.select(tree_set, context.rng)
        trees = [tree_set.tree(index) for index in chosen.tolist()]
        errors = [float(np.mean(tree.predict(B_train) != y)) for tree in trees]
        objectives = [
            e + self.regularization * t.n_leaves for e, t in zip(errors, trees, strict=True)
        ]
        # The optimal tree is always taken, so the smallest objective taken is the optimum.
        optimum = min(objectives, default=np.nan)
        B_inputs = {k: binarizer.transform(encode(context.inputs[k])) for k in names}

        limit = context.members_per_chunk(n_classes)
        rows: list[dict[str, object]] = [
            {
                "member": 0,
                "tree_index": -1,
                "objective": np.nan,
                "treefarms_objective": np.nan,
                "leaves": -1,
                "training_error": np.nan,
                "is_optimal": False,
                "reference": True,
            }
        ]
        outputs: dict[str, list[NDArray[np.float64]]] = {k: [reference[k]] for k in names}
        for member, index in enumerate(chosen.tolist(), start=1):
            tree = trees[member - 1]
            probabilities = _leaf_probabilities(tree, B_train, y, self.probabilities)
            for k in names:
                outputs[k].append(probabilities[tree.apply(B_inputs[k])])
            rows.append(
                {
                    "member": member,
                    "tree_index": index,
                    "objective": objectives[member - 1],
                    "treefarms_objective": tree_set.reported_objective(index),
                    "leaves": tree.n_leaves,
                    "training_error": errors[member - 1],
                    "is_optimal": objectives[member - 1] <= optimum + _TIE,
                    "reference": False,
                }
            )
            if len(rows) >= limit:
                yield self._chunk(rows, outputs, count)
                rows, outputs = [], {k: [] for k in names}
        if rows:
            yield self._chunk(rows, outputs, count)

    def _chunk(
        self,
        rows: list[dict[str, object]],
        outputs: Mapping[str, list[NDArray[np.float64]]],
        count: int,
    ) -> Candidates:
        params = pd.DataFrame(rows)
        params["n_trees_in_set"] = count
        params["explorer"] = self.name
        return Candidates(self.name, params, {k: np.stack(v) for k, v in outputs.items()})


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, bool)
        and bool(np.isfinite(float(value)))
    )


def _is_count(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and int(value) >= 1
