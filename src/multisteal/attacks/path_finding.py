"""Path-finding extraction of decision trees from the leaf ids a tree service reveals.

Tramèr, Zhang, Juels, Reiter & Ristenpart, "Stealing Machine Learning Models via Prediction
APIs", USENIX Security 2016, section 4.2 (Algorithm 1, "path finding"). BigML answered every
prediction with the identifier of the leaf that made it; the attack uses those ids to map out
the tree's leaves one at a time.

An axis-aligned tree cuts its input space into boxes, one per leaf. On raw records (through the
published :class:`~multisteal.data.inputs.TabularSpec`) each split tests one column, so a leaf's
box is, per numerical column, an interval of values and, per categorical column, a set of
categories; a record is in the leaf exactly when each of its values is in the leaf's set for
that column. Hence from one record ``x`` in leaf ``L``, changing one column at a time and keeping
the others finds the whole box of ``L``:

* a numerical column: first its two ends of the range (most columns a leaf does not test keep
  ``L`` across the range: two queries); otherwise a binary search between the last value that
  keeps ``L`` and the first that leaves it, exact over whole numbers for an integer column and
  to ``epsilon`` times the range for a real-valued one (the paper's line search);
* a categorical column: every other category (the paper's category split).

Each answer whose leaf id has not been seen is a new leaf, explored from that record in turn
(a breadth-first queue; a cache of answered records means no record is sent twice). The
searches of every leaf being explored advance together: one step sends one probe for each of
them in one batch.

A leaf whose box no explored line crosses is not found that way, so once the queue is empty the
attack draws records from the spec (without querying them) and checks that each falls in a
known box; it queries a few that do not, explores the leaves they reveal, and stops when a
whole draw is covered, the budget is spent, or ``max_rounds`` draws were made.

The attack spends at most the budget left on the API's ledger, and returns the transcript of
everything it sent. :func:`recover_tree` (or :meth:`PathFindingAttack.solve`) turns a
transcript into a :class:`RecoveredTree`: each leaf's box is the smallest box holding the
records answered with its id (a subset of the true box, equal to it once the leaf was
explored, up to ``epsilon`` on real-valued columns), and a record is answered with the label of
its box, or of the nearest box when it falls in none (an unexplored region or a gap narrower
than ``epsilon``).

Only records: an image or a text has no columns with ranges or category sets to search
along, and the zoo's image and text models are not trees (they reveal no leaf ids).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from multisteal.attacks.base import AttackContext, AttackSetting, Transcript, concat_answers
from multisteal.data.inputs import InputSpec, TabularSpec, concat_inputs
from multisteal.errors import InvalidInputError
from multisteal.query.api import QueryAPI

__all__ = [
    "LeafBox",
    "PathFindingAttack",
    "RecoveredTree",
    "check_path_finding",
    "recover_tree",
]

NEEDS_LEAVES = (
    "The path-finding attack follows the leaf ids a tree service reveals, but this API answers "
    "in {mode!r} mode. It needs --output leaf (against a tree target, --target tree)."
)
NOT_RECORDS = (
    "The path-finding attack searches the boxes of a tree along the columns of records; these "
    "inputs are {modality}."
)
NO_SPEC = (
    "The path-finding attack searches each column over the range or categories the input spec "
    "publishes, but this API publishes none (it takes encoded vectors)."
)
NO_BUDGET = "The path-finding attack needs a budget of at least 1 query; the budget is {budget}."
BAD_EPSILON = "The path-finding attack's epsilon must be in (0, 1), got {value!r}."
BAD_COUNT = "The path-finding attack's {name} must be a whole number >= 1, got {value!r}."
EMPTY_TRANSCRIPT = "A tree cannot be recovered from an empty transcript."


def check_path_finding(setting: AttackSetting) -> None:
    """Raise ``InvalidInputError`` before any query when the attack cannot run in ``setting``."""
    if setting.modality != "tabular":
        raise InvalidInputError(NOT_RECORDS.format(modality=setting.modality))
    if setting.output_mode != "leaf":
        raise InvalidInputError(NEEDS_LEAVES.format(mode=setting.output_mode))
    _records_spec(setting.input_spec)
    if setting.budget < 1:
        raise InvalidInputError(NO_BUDGET.format(budget=setting.budget))


def _records_spec(spec: InputSpec | None) -> TabularSpec:
    if spec is None:
        raise InvalidInputError(NO_SPEC)
    if not isinstance(spec, TabularSpec):
        raise InvalidInputError(NOT_RECORDS.format(modality=spec.modality))
    return spec


# --------------------------------------------------------------------------- records as points


@dataclass(frozen=True)
class _Codec:
    """Records ↔ points: a float row per record, a numerical column's value as it is and a
    categorical column's value as its index in the spec's categories."""

    spec: TabularSpec

    def to_points(self, records: Any) -> NDArray[np.float64]:
        frame = self.spec.validate(records)
        points = np.empty((len(frame), len(self.spec.columns)), dtype=np.float64)
        for j, column in enumerate(self.spec.columns):
            values = frame[column.name]
            if column.kind == "numerical":
                points[:, j] = values.to_numpy(dtype=np.float64)
            else:
                codes = pd.Categorical(values, categories=list(column.categories)).codes
                points[:, j] = codes
        return points

    def to_records(self, points: NDArray[np.float64]) -> pd.DataFrame:
        out: dict[str, Any] = {}
        for j, column in enumerate(self.spec.columns):
            if column.kind == "numerical":
                out[column.name] = points[:, j].copy()
            else:
                categories = np.asarray(column.categories, dtype=object)
                out[column.name] = categories[points[:, j].astype(np.intp)]
        return pd.DataFrame(out, columns=list(self.spec.names))


# --------------------------------------------------------------------------- the recovered tree


@dataclass(frozen=True)
class LeafBox:
    """One recovered leaf: its label, per numerical column the interval ``(low, high)`` of
    values it holds (inclusive), per categorical column the set of categories it holds."""

    label: int
    intervals: Mapping[str, tuple[float, float]]
    categories: Mapping[str, frozenset[str]]


@dataclass(frozen=True, eq=False)
class RecoveredTree:
    """The stolen tree: a box and a label per leaf id, over raw records of ``spec``.

    Attributes
    ----------
    leaf_ids, labels : (L,) int64 — each box's leaf id (the target's) and label.
    low, high : (L, n_columns) float64 — each box's interval per numerical column (NaN in the
        categorical columns).
    allowed : (L, total categories) bool — per box, the categories it holds, column after
        column in the spec's order.
    """

    spec: TabularSpec
    leaf_ids: NDArray[np.int64]
    labels: NDArray[np.int64]
    low: NDArray[np.float64]
    high: NDArray[np.float64]
    allowed: NDArray[np.bool_]
    n_classes: int

    @property
    def classes_(self) -> NDArray[np.int64]:
        return np.arange(self.n_classes, dtype=np.int64)

    @property
    def n_leaves(self) -> int:
        return int(self.leaf_ids.shape[0])

    def _distances(self, points: NDArray[np.float64]) -> NDArray[np.float64]:
        """(n, L): how far each point is outside each box (0: inside). A numerical column
        counts its distance as a fraction of its range, a category outside the box counts 1."""
        n = points.shape[0]
        out = np.zeros((n, self.n_leaves), dtype=np.float64)
        offset = 0
        for j, column in enumerate(self.spec.columns):
            if column.kind == "numerical":
                width = column.high - column.low
                scale = width if width > 0 else 1.0
                values = points[:, j : j + 1]
                below = np.clip(self.low[None, :, j] - values, 0.0, None)
                above = np.clip(values - self.high[None, :, j], 0.0, None)
                out += (below + above) / scale
            else:
                codes = points[:, j].astype(np.intp) + offset
                out += ~self.allowed[:, codes].T
                offset += len(column.categories)
        return out

    def _locate(self, X: Any) -> NDArray[np.intp]:
        """The box of each record: the one holding it, else the nearest (first on ties)."""
        points = _Codec(self.spec).to_points(X)
        out: NDArray[np.intp] = np.argmin(self._distances(points), axis=1)
        return out

    def covers(self, X: Any) -> NDArray[np.bool_]:
        """(n,) bool — whether each record lies in one of the recovered boxes."""
        points = _Codec(self.spec).to_points(X)
        out: NDArray[np.bool_] = (self._distances(points) == 0).any(axis=1)
        return out

    def apply(self, X: Any) -> NDArray[np.int64]:
        """(n,) int64 — the target's leaf id of each record's box."""
        return self.leaf_ids[self._locate(X)]

    def predict(self, X: Any) -> NDArray[np.int64]:
        """(n,) int64 — the label of each record's box."""
        return self.labels[self._locate(X)]

    def predict_proba(self, X: Any) -> NDArray[np.float64]:
        """(n, n_classes) float64 — one-hot on :meth:`predict` (a leaf answers one label)."""
        labels = self.predict(X)
        out = np.zeros((labels.shape[0], self.n_classes), dtype=np.float64)
        out[np.arange(labels.shape[0]), labels] = 1.0
        return out

    def boxes(self) -> dict[int, LeafBox]:
        """Each leaf id's box, in readable form."""
        out: dict[int, LeafBox] = {}
        for i, leaf in enumerate(self.leaf_ids):
            intervals: dict[str, tuple[float, float]] = {}
            categories: dict[str, frozenset[str]] = {}
            offset = 0
            for j, column in enumerate(self.spec.columns):
                if column.kind == "numerical":
                    intervals[column.name] = (float(self.low[i, j]), float(self.high[i, j]))
                else:
                    held = self.allowed[i, offset : offset + len(column.categories)]
                    categories[column.name] = frozenset(
                        c for c, keep in zip(column.categories, held, strict=True) if keep
                    )
                    offset += len(column.categories)
            out[int(leaf)] = LeafBox(int(self.labels[i]), intervals, categories)
        return out


class _Boxes:
    """The smallest box around the answered points of each leaf id, grown as answers come."""

    def __init__(self, spec: TabularSpec) -> None:
        self._spec = spec
        self._numeric = np.array([c.kind == "numerical" for c in spec.columns], dtype=bool)
        sizes = [len(c.categories) if c.kind == "categorical" else 0 for c in spec.columns]
        self._offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self._n_categories = int(sum(sizes))
        self._index: dict[int, int] = {}
        self._labels: list[int] = []
        self._low: list[NDArray[np.float64]] = []
        self._high: list[NDArray[np.float64]] = []
        self._allowed: list[NDArray[np.bool_]] = []

    def add(
        self, points: NDArray[np.float64], leaves: NDArray[np.int64], labels: NDArray[np.int64]
    ) -> None:
        categorical = ~self._numeric
        for point, leaf, label in zip(points, leaves, labels, strict=True):
            key = int(leaf)
            i = self._index.get(key)
            if i is None:
                self._index[key] = len(self._labels)
                self._labels.append(int(label))
                numbers = np.where(self._numeric, point, np.nan)
                self._low.append(numbers.copy())
                self._high.append(numbers.copy())
                self._allowed.append(np.zeros(self._n_categories, dtype=bool))
                i = self._index[key]
            np.fmin(self._low[i], np.where(self._numeric, point, np.nan), out=self._low[i])
            np.fmax(self._high[i], np.where(self._numeric, point, np.nan), out=self._high[i])
            codes = point[categorical].astype(np.intp) + self._offsets[categorical]
            self._allowed[i][codes] = True

    def __len__(self) -> int:
        return len(self._index)

    def model(self, n_classes: int) -> RecoveredTree:
        if not self._index:
            raise InvalidInputError(EMPTY_TRANSCRIPT)
        n_columns = len(self._spec.columns)
        return RecoveredTree(
            spec=self._spec,
            leaf_ids=np.fromiter(self._index, dtype=np.int64, count=len(self._index)),
            labels=np.asarray(self._labels, dtype=np.int64),
            low=np.vstack(self._low).reshape(-1, n_columns),
            high=np.vstack(self._high).reshape(-1, n_columns),
            allowed=np.vstack(self._allowed).reshape(-1, self._n_categories),
            n_classes=n_classes,
        )


def recover_tree(spec: TabularSpec, transcript: Transcript, *, n_classes: int) -> RecoveredTree:
    """The tree a transcript of leaf answers reveals (see the module docstring)."""
    leaves = transcript.answers.leaves
    if leaves is None:
        raise InvalidInputError(NEEDS_LEAVES.format(mode=transcript.answers.mode))
    boxes = _Boxes(spec)
    boxes.add(_Codec(spec).to_points(transcript.queries), leaves, transcript.answers.labels)
    return boxes.model(n_classes)


# --------------------------------------------------------------------------- the searches


@dataclass
class _EdgeSearch:
    """One end of a leaf's interval in one numerical column, from a point inside the leaf."""

    leaf: int
    base: NDArray[np.float64]
    column: int
    end: float  # the end of the column's range on this side
    integer: bool
    tolerance: float
    inside: float = field(init=False)  # the farthest value known to keep the leaf
    outside: float | None = field(default=None, init=False)  # the nearest known to leave it
    probe: float = field(init=False)

    def __post_init__(self) -> None:
        self.inside = float(self.base[self.column])
        self.probe = self.end

    def propose(self) -> NDArray[np.float64]:
        point = self.base.copy()
        point[self.column] = self.probe
        return point[None, :]

    def consume(self, leaves: NDArray[np.int64]) -> bool:
        """Take the probe's answer; return whether the edge is found."""
        if int(leaves[0]) == self.leaf:
            self.inside = self.probe
        else:
            self.outside = self.probe
        if self.inside == self.end or self.outside is None:
            return True
        gap = abs(self.outside - self.inside)
        step = math.copysign(1.0, self.outside - self.inside)
        if self.integer:
            if gap <= 1:
                return True
            probe = self.inside + step * (gap // 2)
        else:
            if gap <= self.tolerance:
                return True
            probe = (self.inside + self.outside) / 2
        if probe in (self.inside, self.outside):  # no representable value in between
            return True
        self.probe = probe
        return False


@dataclass
class _CategorySweep:
    """Every other category of one categorical column, from a point inside the leaf."""

    base: NDArray[np.float64]
    column: int
    n_categories: int

    def propose(self) -> NDArray[np.float64]:
        own = int(self.base[self.column])
        others = [c for c in range(self.n_categories) if c != own]
        points = np.repeat(self.base[None, :], len(others), axis=0)
        points[:, self.column] = others
        return points

    def consume(self, leaves: NDArray[np.int64]) -> bool:
        return True


_Task = _EdgeSearch | _CategorySweep


class _Explorer:
    """The attack's state: the answered points (cached), the boxes, the queue of searches."""

    def __init__(self, context: AttackContext, spec: TabularSpec, epsilon: float) -> None:
        self._context = context
        self._spec = spec
        self._codec = _Codec(spec)
        self._epsilon = epsilon
        self.boxes = _Boxes(spec)
        self._cache: dict[bytes, int] = {}
        self._queued: set[int] = set()
        self._tasks: list[_Task] = []
        self._new: list[_Task] = []
        self._parts: list[Transcript] = []
        self.exhausted = False  # the budget ran out before a batch could be sent whole

    def _searches(self, leaf: int, base: NDArray[np.float64]) -> list[_Task]:
        tasks: list[_Task] = []
        for j, column in enumerate(self._spec.columns):
            if column.kind == "categorical":
                if len(column.categories) > 1:
                    tasks.append(_CategorySweep(base, j, len(column.categories)))
                continue
            low, high = column.low, column.high
            if column.integer:
                low, high = float(math.ceil(low)), float(math.floor(high))
            tolerance = self._epsilon * (column.high - column.low)
            for end in (low, high):
                search = _EdgeSearch(leaf, base, j, end, column.integer, tolerance)
                if search.inside != end:
                    tasks.append(search)
        return tasks

    def ask(self, points: NDArray[np.float64]) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """The leaf of each point (cached, or queried in one batch within the budget) and
        whether it was answered. A point of a leaf not seen before queues its exploration."""
        points = points + 0.0  # one key for 0.0 and -0.0
        keys = [row.tobytes() for row in points]
        fresh: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._cache and key not in fresh:
                fresh[key] = i
        if fresh:
            rows = np.fromiter(fresh.values(), dtype=np.intp, count=len(fresh))
            affordable = min(rows.size, self._context.budget)
            if affordable < rows.size:
                self.exhausted = True
            rows = rows[:affordable]
            if rows.size:
                self._send(points[rows], [keys[i] for i in rows])
        answered = np.array([key in self._cache for key in keys], dtype=bool)
        leaves = np.array([self._cache.get(key, -1) for key in keys], dtype=np.int64)
        return leaves, answered

    def _send(self, points: NDArray[np.float64], keys: list[bytes]) -> None:
        transcript = self._context.query(self._codec.to_records(points))
        leaves = transcript.answers.leaves
        if leaves is None:
            raise InvalidInputError(NEEDS_LEAVES.format(mode=transcript.answers.mode))
        self._parts.append(transcript)
        self.boxes.add(points, leaves, transcript.answers.labels)
        for point, key, leaf in zip(points, keys, leaves, strict=True):
            self._cache[key] = int(leaf)
            if int(leaf) not in self._queued:  # a new leaf: explore it from this point
                self._queued.add(int(leaf))
                self._new.extend(self._searches(int(leaf), point))

    def explore(self) -> None:
        """Advance every queued search by one probe per batch until none is left."""
        self._tasks.extend(self._new)
        self._new = []
        while self._tasks and not self.exhausted:
            proposals = [task.propose() for task in self._tasks]
            leaves, answered = self.ask(np.vstack(proposals))
            if not answered.all():
                self.exhausted = True
                return
            remaining: list[_Task] = []
            start = 0
            for task, proposed in zip(self._tasks, proposals, strict=True):
                stop = start + proposed.shape[0]
                if not task.consume(leaves[start:stop]):
                    remaining.append(task)
                start = stop
            self._tasks = remaining + self._new
            self._new = []

    def transcript(self) -> Transcript:
        if not self._parts:
            raise InvalidInputError(NO_BUDGET.format(budget=self._context.budget))
        if len(self._parts) == 1:
            return self._parts[0]
        return Transcript(
            concat_inputs([part.queries for part in self._parts]),
            concat_answers([part.answers for part in self._parts]),
        )


# --------------------------------------------------------------------------- the attack


@dataclass
class PathFindingAttack:
    """Map out a decision tree's leaves from the leaf ids its API reveals (see the module
    docstring).

    Parameters
    ----------
    epsilon : the precision of the search on a real-valued column, as a fraction of its range
        (integer columns are searched exactly).
    check_samples : records drawn from the spec (not queried) per coverage check.
    seeds_per_round : uncovered records of a check that are queried to seed new exploration.
    max_rounds : the most coverage checks made.
    """

    epsilon: float = 1e-3
    check_samples: int = 10_000
    seeds_per_round: int = 16
    max_rounds: int = 100
    name: str = field(default="path-finding", init=False)

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon < 1.0:
            raise InvalidInputError(BAD_EPSILON.format(value=self.epsilon))
        for name in ("check_samples", "seeds_per_round", "max_rounds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidInputError(BAD_COUNT.format(name=name, value=value))

    def run(self, context: AttackContext) -> Transcript:
        """Explore the tree within ``context.budget`` and return everything queried."""
        check_path_finding(context.setting())
        spec = _records_spec(context.input_spec)
        codec = _Codec(spec)
        explorer = _Explorer(context, spec, self.epsilon)
        for _ in range(self.max_rounds):
            if explorer.exhausted or context.budget < 1:
                break
            sample = codec.to_points(spec.sample(self.check_samples, context.rng))
            if len(explorer.boxes):
                known = explorer.boxes.model(context.api.n_classes)
                sample = sample[~(known._distances(sample) == 0).any(axis=1)]
            if sample.shape[0] == 0:
                break  # every record drawn lies in a known box
            explorer.ask(sample[: self.seeds_per_round])
            explorer.explore()
        return explorer.transcript()

    def solve(self, api: QueryAPI, transcript: Transcript) -> RecoveredTree:
        """The tree ``transcript`` reveals, over the records ``api`` takes."""
        return recover_tree(_records_spec(api.input_spec), transcript, n_classes=api.n_classes)
