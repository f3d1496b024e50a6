"""Multiplicity metrics accumulated over chunks of members, and their convergence in M.

A Rashomon set of ``M = 10,000`` members on ``N = 10,000`` samples would need an
``(M, N, C)`` array of 1.6 GB for two classes; :class:`StreamingMultiplicity` never holds it.
Members arrive in chunks (``update(P_chunk)``, shape ``(B, N, C)``) and every metric of
``docs/METRICS.md`` that is a running reduction over members is accumulated:

* ambiguity against each reference — a running "some member flipped" flag per sample;
* discrepancy — each member's disagreement rate, kept per member (``M`` floats);
* disagreement — running class counts per sample;
* viable prediction range — running min and max of the true label's score;
* score variance — running count, mean and sum of squared deviations (Chan et al.'s pairwise
  update, so the result equals the two-pass variance to rounding);
* Rashomon Capacity — with ``capacity="exact"`` and two classes, only the running min and max
  of the class-1 probability (the capacity of the set is that of its two extreme members,
  :func:`~multisteal.metrics.capacity.rashomon_capacity_from_extremes`). For more classes, or
  the reference-compatible mode, capacity depends on every member, so their probabilities are
  kept (within ``max_retained_bytes``; a clear error names the size otherwise).

**Convergence.** With ``n_orders > 0`` every member draws one uniform key per *order*; the
subset at fraction ``f`` of an order holds the members whose key is below ``f`` (each member
independently with probability ``f``; the reference member — the first one seen — is in
every subset). Statistics are kept per order and per key interval (bucket), so every subset's
metric is a union of buckets: one pass over the members yields each metric as a function of
the number of members, with the spread over orders as its interval
(:func:`convergence_summary`), and whether it has settled (:func:`settled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from multisteal.errors import InvalidInputError

__all__ = [
    "CAPACITY_MODES",
    "CONVERGENCE_COLUMNS",
    "DEFAULT_FRACTIONS",
    "StreamingMultiplicity",
    "convergence_summary",
    "grows_with_members",
    "settled",
]

CapacityMode = Literal["exact", "reference", "none"]
CAPACITY_MODES: Final = ("exact", "reference", "none")
DEFAULT_FRACTIONS: Final = tuple(float(2.0**-k) for k in range(10, -1, -1))
"""Subset fractions of the convergence curves: 1/1024, 1/512, …, 1/2, 1."""
CONVERGENCE_COLUMNS: Final = ("metric", "order", "fraction", "size", "value")
DEFAULT_MAX_RETAINED_BYTES: Final = 2 * 2**30

BAD_SHAPE = (
    "A chunk of member probabilities must have shape (members, {n}, {c}) for {n} samples and "
    "{c} classes; got {shape}."
)
BAD_MODE = "capacity must be one of {modes}; got {value!r}."
BAD_FRACTIONS = (
    "fractions must be increasing, in (0, 1], contain 0.5 and end with 1; got {value!r}."
)
BAD_ORDERS = "n_orders must be an integer >= 0; got {value!r}."
BAD_MEMBER_VALUES = (
    "member value {name!r} must have one value per member of the chunk ({n}); got shape {shape}."
)
TOO_MANY_RETAINED = (
    "Rashomon Capacity ({mode} mode, {c} classes) needs every member's probabilities on every "
    "sample, which would hold {gb:.2f} GB (limit {limit_gb:.2f} GB). Use capacity 'exact' with "
    "two classes (it needs only the extreme members), fewer members or samples, capacity "
    "'none', or raise max_retained_bytes."
)
NO_MEMBERS = "No member was added; the metrics of an empty set are undefined."
MIN_MEMBERS: Final = 8
"""Fewest members in a set for a settled verdict (fewer: nothing to converge)."""
GROWING: Final = ("ambiguity[", "discrepancy[", "rashomon_capacity_mean", "viable_prediction_range")
"""Convergence metrics that can only grow as members are added (and every ``*_range``): while
unsettled, their value is a lower bound of what more members would give."""
UNKNOWN_METRIC = "No convergence curve for {name!r}; available: {available}."
RC_CONVERGENCE_ORDERS: Final = 3
"""Orders whose Rashomon Capacity curve is computed when members are retained (C > 2 or the
reference-compatible mode): each point is a full capacity computation."""


@dataclass
class _Moments:
    """Per (order, bucket, sample): member count is shared; mean and M2 of a score."""

    mean: npt.NDArray[np.float64]
    m2: npt.NDArray[np.float64]


class StreamingMultiplicity:
    """Multiplicity of a set of members, accumulated over chunks (see the module doc).

    Parameters
    ----------
    labels : array of int of shape (N,)
        True labels (for the viable prediction range and score variance).
    references : mapping of str to array of int of shape (N,)
        Reference decision vectors (``target``, ``surrogate``): ambiguity and discrepancy are
        reported against each.
    n_classes : int
        Number of classes ``C``.
    capacity : {"exact", "reference", "none"}
        Rashomon Capacity mode (``metrics.rashomon_capacity(P, method=...)``); ``none`` skips it.
    n_orders : int, default 0
        Random member orders for the convergence curves (0: none).
    fractions : sequence of float, optional
        Subset fractions of the curves, increasing and ending with 1 (default
        :data:`DEFAULT_FRACTIONS`).
    rng : numpy Generator, optional
        Draws the members' keys (needed when ``n_orders > 0``).
    max_retained_bytes : int
        Memory bound for members' probabilities kept for Rashomon Capacity (only when it needs
        them: more than two classes or the reference-compatible mode).

    Examples
    --------
    >>> P = np.array([[[0.9, 0.1], [0.4, 0.6]], [[0.6, 0.4], [0.7, 0.3]]])
    >>> acc = StreamingMultiplicity(
    ...     labels=np.array([0, 1]), references={"target": np.array([0, 1])}, n_classes=2)
    >>> acc.update(P[:1]); acc.update(P[1:])
    >>> acc.scalars()["ambiguity[target]"]
    0.5
    >>> acc.per_sample()["viable_prediction_range"].round(3)
    array([0.3, 0.3])
    """

    def __init__(
        self,
        *,
        labels: npt.ArrayLike,
        references: Mapping[str, npt.ArrayLike],
        n_classes: int,
        capacity: str = "exact",
        n_orders: int = 0,
        fractions: Sequence[float] | None = None,
        rng: np.random.Generator | None = None,
        max_retained_bytes: int = DEFAULT_MAX_RETAINED_BYTES,
    ) -> None:
        if capacity not in CAPACITY_MODES:
            raise InvalidInputError(
                BAD_MODE.format(modes=", ".join(CAPACITY_MODES), value=capacity)
            )
        if isinstance(n_orders, bool) or not isinstance(n_orders, int | np.integer) or n_orders < 0:
            raise InvalidInputError(BAD_ORDERS.format(value=n_orders))
        grid = np.asarray(DEFAULT_FRACTIONS if fractions is None else fractions, dtype=np.float64)
        if (
            grid.ndim != 1
            or grid.size == 0
            or grid[-1] != 1.0
            or grid[0] <= 0.0
            or np.any(np.diff(grid) <= 0)
            or not np.any(grid == 0.5)  # the settled verdict compares half the set with all
        ):
            raise InvalidInputError(BAD_FRACTIONS.format(value=fractions))
        self.labels = np.asarray(labels, dtype=np.int64)
        self.references = {k: np.asarray(v, dtype=np.int64) for k, v in references.items()}
        self.n_classes = int(n_classes)
        self.capacity: CapacityMode = capacity  # type: ignore[assignment]
        self.n_orders = int(n_orders)
        self.fractions = grid if self.n_orders else np.ones(1)
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.max_retained_bytes = int(max_retained_bytes)
        self.N = int(self.labels.shape[0])
        orders, J, N, C = max(1, self.n_orders), self.fractions.size, self.N, self.n_classes
        shape = (orders, J, N)
        self._count = np.zeros((orders, J), dtype=np.int64)
        self._flip = {k: np.zeros(shape, dtype=np.bool_) for k in self.references}
        self._classes = np.zeros((*shape, C), dtype=np.int32)
        self._s_min = np.full(shape, np.inf)
        self._s_max = np.full(shape, -np.inf)
        self._moments = _Moments(np.zeros(shape), np.zeros(shape))
        self._extremes = self.capacity == "exact" and C == 2
        if self._extremes:
            self._p_min = np.full(shape, np.inf)
            self._p_max = np.full(shape, -np.inf)
        self._retained: list[npt.NDArray[np.float64]] = []
        self._keys: list[npt.NDArray[np.float64]] = []  # (O, B) per chunk
        self._rates: dict[str, list[npt.NDArray[np.float64]]] = {k: [] for k in self.references}
        self._member_values: dict[str, list[npt.NDArray[np.float64]]] = {}
        self.n_members = 0

    # -- accumulation -------------------------------------------------------------------------

    def update(
        self,
        P: npt.ArrayLike,
        *,
        member_values: Mapping[str, npt.ArrayLike] | None = None,
    ) -> None:
        """Add a chunk of members.

        Parameters
        ----------
        P : array of shape (B, N, C)
            The chunk's probabilities (validated upstream; only the shape is checked here).
        member_values : mapping of str to array of shape (B,), optional
            Per-member values (fairness differences, agreement…) whose range over the set gets
            a convergence curve (``{name}_range``).
        """
        P = np.asarray(P, dtype=np.float64)
        if P.ndim != 3 or P.shape[1:] != (self.N, self.n_classes):
            raise InvalidInputError(BAD_SHAPE.format(n=self.N, c=self.n_classes, shape=P.shape))
        B = P.shape[0]
        if B == 0:
            return
        values = {k: np.asarray(v, dtype=np.float64) for k, v in (member_values or {}).items()}
        for name, array in values.items():
            if array.shape != (B,):
                raise InvalidInputError(BAD_MEMBER_VALUES.format(name=name, n=B, shape=array.shape))
        # Member-major draws: a member's keys do not depend on how the members were chunked.
        keys = self.rng.random((B, max(1, self.n_orders))).T
        if self.n_members == 0:
            keys[:, 0] = 0.0  # the reference member is in every subset
        self._keys.append(keys)
        for name, array in values.items():
            self._member_values.setdefault(name, []).append(array)
        decisions = np.argmax(P, axis=2)
        flips = {k: decisions != r[np.newaxis, :] for k, r in self.references.items()}
        for k, flip in flips.items():
            self._rates[k].append(flip.mean(axis=1))
        scores = P[:, np.arange(self.N), self.labels]
        onehot = decisions[:, :, np.newaxis] == np.arange(self.n_classes)[np.newaxis, np.newaxis, :]
        p1 = P[:, :, 1] if self._extremes else None
        buckets = (
            np.searchsorted(self.fractions, keys, side="right")
            if self.n_orders
            else np.zeros_like(keys, dtype=np.int64)
        )
        for o in range(buckets.shape[0]):
            order = np.argsort(buckets[o], kind="stable")
            sorted_buckets = buckets[o][order]
            starts = np.flatnonzero(np.r_[True, sorted_buckets[1:] != sorted_buckets[:-1]])
            js = sorted_buckets[starts]
            counts = np.diff(np.r_[starts, B])
            self._count[o, js] += counts
            for k, flip in flips.items():
                self._flip[k][o, js] |= np.logical_or.reduceat(flip[order], starts, axis=0)
            self._classes[o, js] += np.add.reduceat(onehot[order], starts, axis=0)
            s = scores[order]
            self._s_min[o, js] = np.minimum(self._s_min[o, js], np.minimum.reduceat(s, starts, 0))
            self._s_max[o, js] = np.maximum(self._s_max[o, js], np.maximum.reduceat(s, starts, 0))
            self._merge_moments(o, js, s, starts, counts)
            if p1 is not None:
                q = p1[order]
                self._p_min[o, js] = np.minimum(
                    self._p_min[o, js], np.minimum.reduceat(q, starts, 0)
                )
                self._p_max[o, js] = np.maximum(
                    self._p_max[o, js], np.maximum.reduceat(q, starts, 0)
                )
        if self.capacity != "none" and not self._extremes:
            held = sum(a.nbytes for a in self._retained) + P.nbytes
            if held > self.max_retained_bytes:
                raise InvalidInputError(
                    TOO_MANY_RETAINED.format(
                        mode=self.capacity,
                        c=self.n_classes,
                        gb=held / 2**30,
                        limit_gb=self.max_retained_bytes / 2**30,
                    )
                )
            self._retained.append(P.copy())
        self.n_members += B

    def _merge_moments(
        self,
        o: int,
        js: npt.NDArray[np.int64],
        s: npt.NDArray[np.float64],
        starts: npt.NDArray[np.intp],
        counts: npt.NDArray[np.int64],
    ) -> None:
        """Chan et al.'s update of (count, mean, M2) of every bucket ``js`` with a segment."""
        n_b = counts[:, np.newaxis].astype(np.float64)
        mean_b = np.add.reduceat(s, starts, axis=0) / n_b
        segment = np.repeat(np.arange(starts.size), counts)
        m2_b = np.add.reduceat(np.square(s - mean_b[segment]), starts, axis=0)
        n_a = (self._count[o, js] - counts)[:, np.newaxis].astype(np.float64)
        mean_a = self._moments.mean[o, js]
        delta = mean_b - mean_a
        total = n_a + n_b
        self._moments.mean[o, js] = mean_a + delta * (n_b / total)
        self._moments.m2[o, js] = self._moments.m2[o, js] + m2_b + delta**2 * (n_a * n_b / total)

    # -- results ------------------------------------------------------------------------------

    def _check_members(self) -> None:
        if self.n_members == 0:
            raise InvalidInputError(NO_MEMBERS)

    def per_member(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per member (in the order added): its disagreement rate with each reference
        (``disagreement_rate[target]``…) and the ``member_values`` given."""
        self._check_members()
        out = {f"disagreement_rate[{k}]": np.concatenate(v) for k, v in self._rates.items()}
        out.update({k: np.concatenate(v) for k, v in self._member_values.items()})
        return out

    def scalars(self) -> dict[str, float]:
        """Ambiguity and discrepancy against each reference: ``ambiguity[target]``…"""
        self._check_members()
        out: dict[str, float] = {}
        for k in self.references:
            out[f"ambiguity[{k}]"] = float(np.mean(self._flip[k][0].any(axis=0)))
            out[f"discrepancy[{k}]"] = float(np.concatenate(self._rates[k]).max())
        return out

    def per_sample(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per-sample metrics of the whole set, shape (N,) each (``ambiguous_vs_{ref}``,
        ``disagreement``, ``viable_prediction_range``, ``score_variance``,
        ``rashomon_capacity``; the latter NaN with ``capacity="none"``)."""
        self._check_members()
        stats = self._prefix_stats(0)
        last = -1
        out: dict[str, npt.NDArray[np.float64]] = {}
        for k in self.references:
            out[f"ambiguous_vs_{k}"] = stats[f"flip[{k}]"][last]
        out["disagreement"] = stats["disagreement"][last]
        out["viable_prediction_range"] = stats["viable_prediction_range"][last]
        out["score_variance"] = stats["score_variance"][last]
        if self._extremes:
            out["rashomon_capacity"] = stats["rashomon_capacity"][last]
        elif self.capacity == "none":
            out["rashomon_capacity"] = np.full(self.N, np.nan)
        else:
            out["rashomon_capacity"] = self._capacity(np.concatenate(self._retained))
        return out

    def _capacity(self, P: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        from multisteal.metrics.capacity import rashomon_capacity

        return rashomon_capacity(P, method=self.capacity)

    def _prefix_stats(self, o: int) -> dict[str, npt.NDArray[np.float64]]:
        """Per-sample statistics of every prefix (fraction) of order ``o``, shape (J, N)."""
        count = np.cumsum(self._count[o])
        out: dict[str, npt.NDArray[np.float64]] = {}
        for k in self.references:
            out[f"flip[{k}]"] = np.logical_or.accumulate(self._flip[k][o], axis=0).astype(
                np.float64
            )
        classes = np.cumsum(self._classes[o], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = classes / count[:, np.newaxis, np.newaxis]
            impurity = 1.0 - np.square(shares).sum(axis=2)
            C = self.n_classes
            out["disagreement"] = np.clip(C / (C - 1) * impurity, 0.0, 1.0)
        s_min = np.minimum.accumulate(self._s_min[o], axis=0)
        s_max = np.maximum.accumulate(self._s_max[o], axis=0)
        out["viable_prediction_range"] = s_max - s_min
        mean, m2 = self._moments.mean[o], self._moments.m2[o]
        n = self._count[o].astype(np.float64)
        cum_n = np.zeros(self.N)
        cum_mean = np.zeros(self.N)
        cum_m2 = np.zeros(self.N)
        variance = np.empty((n.size, self.N))
        for j in range(n.size):
            if n[j] > 0:
                total = cum_n + n[j]
                delta = mean[j] - cum_mean
                cum_m2 = cum_m2 + m2[j] + delta**2 * (cum_n * n[j] / total)
                cum_mean = cum_mean + delta * (n[j] / total)
                cum_n = total
            with np.errstate(invalid="ignore", divide="ignore"):
                variance[j] = cum_m2 / cum_n
        variance[s_max == s_min] = 0.0  # all members give the same score: exactly 0
        out["score_variance"] = variance
        if self._extremes:
            from multisteal.metrics.capacity import rashomon_capacity_from_extremes

            low = np.minimum.accumulate(self._p_min[o], axis=0)
            high = np.maximum.accumulate(self._p_max[o], axis=0)
            rc = np.full((n.size, self.N), np.nan)
            present = count > 0
            if present.any():
                lo, hi = low[present], high[present]
                rc[present] = rashomon_capacity_from_extremes(lo.ravel(), hi.ravel()).reshape(
                    lo.shape
                )
            out["rashomon_capacity"] = rc
        return out

    def convergence(self) -> pd.DataFrame:
        """Every metric of every subset: columns :data:`CONVERGENCE_COLUMNS`.

        One row per metric × order × fraction with at least one member; ``size`` is the
        subset's number of members. Metrics: ``ambiguity[ref]``, ``discrepancy[ref]``,
        ``disagreement_mean``, ``viable_prediction_range_mean``, ``score_variance_mean``,
        ``rashomon_capacity_mean`` and ``{value}_range`` for every member value. Empty without
        orders.
        """
        self._check_members()
        if not self.n_orders:
            return pd.DataFrame(columns=list(CONVERGENCE_COLUMNS))
        keys = np.concatenate(self._keys, axis=1)  # (O, M)
        rates = {k: np.concatenate(v) for k, v in self._rates.items()}
        member_values = {k: np.concatenate(v) for k, v in self._member_values.items()}
        retained = np.concatenate(self._retained) if self._retained else None
        columns: dict[str, list[npt.NDArray[np.float64]]] = {
            "metric": [],
            "order": [],
            "fraction": [],
            "size": [],
            "value": [],
        }
        for o in range(self.n_orders):
            stats = self._prefix_stats(o)
            size = np.cumsum(self._count[o])
            present = size > 0
            metrics: dict[str, npt.NDArray[np.float64]] = {}
            for k in self.references:
                metrics[f"ambiguity[{k}]"] = stats[f"flip[{k}]"].mean(axis=1)
            for name in ("disagreement", "viable_prediction_range", "score_variance"):
                metrics[f"{name}_mean"] = stats[name].mean(axis=1)
            if "rashomon_capacity" in stats:
                metrics["rashomon_capacity_mean"] = stats["rashomon_capacity"].mean(axis=1)
            elif retained is not None and o < RC_CONVERGENCE_ORDERS:
                rc = np.full(self.fractions.size, np.nan)
                for j, f in enumerate(self.fractions):
                    chosen = keys[o] < f
                    if chosen.any():
                        rc[j] = float(self._capacity(retained[chosen]).mean())
                metrics["rashomon_capacity_mean"] = rc
            inside = keys[o][np.newaxis, :] < self.fractions[:, np.newaxis]  # (J, M)
            for k, r in rates.items():
                metrics[f"discrepancy[{k}]"] = _masked(r, inside, np.max)
            for k, v in member_values.items():
                metrics[f"{k}_range"] = _masked(v, inside, lambda x: np.max(x) - np.min(x))
            n = int(present.sum())
            for name, value in metrics.items():
                columns["metric"].append(np.full(n, name, dtype=object))
                columns["order"].append(np.full(n, o))
                columns["fraction"].append(self.fractions[present])
                columns["size"].append(size[present])
                columns["value"].append(value[present])
        return pd.DataFrame({k: np.concatenate(v) for k, v in columns.items()})


def _masked(
    values: npt.NDArray[np.float64],
    inside: npt.NDArray[np.bool_],
    reduce: object,
) -> npt.NDArray[np.float64]:
    """``reduce`` of the finite ``values`` inside each row's mask (NaN where none)."""
    out = np.full(inside.shape[0], np.nan)
    finite = np.isfinite(values)
    for j in range(inside.shape[0]):
        chosen = values[inside[j] & finite]
        if chosen.size:
            out[j] = float(reduce(chosen))  # type: ignore[operator]
    return out


def convergence_summary(curves: pd.DataFrame, *, level: float = 0.95) -> pd.DataFrame:
    """Each metric's curve over orders: per metric and fraction, the mean subset size, the
    mean value and the central ``level`` interval of the values over orders (percentiles).

    Columns: ``metric, fraction, size, value, low, high, orders``.
    """
    if curves.empty:
        return pd.DataFrame(
            columns=["metric", "fraction", "size", "value", "low", "high", "orders"]
        )
    tail = (1.0 - level) / 2.0
    finite = curves[np.isfinite(curves["value"].to_numpy(dtype=np.float64))]
    grouped = finite.groupby(["metric", "fraction"], sort=True)["value"]
    table = grouped.agg(["mean", "count"]).rename(columns={"mean": "value", "count": "orders"})
    # (linear interpolation between order statistics, as numpy's default quantile)
    table["low"] = grouped.quantile(tail)
    table["high"] = grouped.quantile(1.0 - tail)
    table["size"] = finite.groupby(["metric", "fraction"], sort=True)["size"].mean()
    out: pd.DataFrame = table.reset_index()[
        ["metric", "fraction", "size", "value", "low", "high", "orders"]
    ]
    return out


def settled(
    curves: pd.DataFrame,
    *,
    lower_bounds: Mapping[str, float] | None = None,
    rel_tol: float = 0.05,
    abs_tol: float = 1e-3,
    min_members: int = MIN_MEMBERS,
) -> pd.DataFrame:
    """Whether each metric has settled: going from half of the members to all of them changed
    it by at most ``max(rel_tol · |value − lower bound|, abs_tol)``.

    Parameters
    ----------
    curves : the long table of :meth:`StreamingMultiplicity.convergence`.
    lower_bounds : each metric's smallest possible value (1 for Rashomon Capacity; 0 when
        absent), so the relative change is taken on the metric's excess over it.
    min_members : below this many members in the whole set no verdict is given (``settled``
        is ``None``): a set of one or two members has nothing to converge.

    Returns
    -------
    DataFrame
        One row per metric: ``value`` (the whole set), ``half`` (mean over orders of the
        half-size subsets), ``half_low`` / ``half_high`` (their 95 % interval), ``change``
        (``value − half``), ``tolerance``, ``members`` (the whole set's size) and ``settled``
        (bool, or ``None`` with fewer than ``min_members`` members).

    A metric without finite values at both fractions (a fairness range no member can carry)
    gets no row.
    """
    summary = convergence_summary(curves)
    rows: list[dict[str, object]] = []
    bounds = dict(lower_bounds or {})
    for metric, part in summary.groupby("metric", sort=True):
        part = part.sort_values("fraction")
        full = part[part["fraction"] == 1.0]
        half = part[np.isclose(part["fraction"], 0.5)]
        if full.empty or half.empty:
            continue
        value, half_value = float(full["value"].iloc[0]), float(half["value"].iloc[0])
        lower = bounds.get(str(metric), 0.0)
        tolerance = max(rel_tol * abs(value - lower), abs_tol)
        change = value - half_value
        members = round(float(full["size"].iloc[0]))
        rows.append(
            {
                "metric": metric,
                "value": value,
                "half": half_value,
                "half_low": float(half["low"].iloc[0]),
                "half_high": float(half["high"].iloc[0]),
                "change": change,
                "tolerance": tolerance,
                "members": members,
                "settled": bool(abs(change) <= tolerance) if members >= min_members else None,
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "metric",
            "value",
            "half",
            "half_low",
            "half_high",
            "change",
            "tolerance",
            "members",
            "settled",
        ],
    )


def grows_with_members(metric: str) -> bool:
    """Whether a convergence metric can only grow as members are added (ambiguity,
    discrepancy, Rashomon Capacity, viable prediction range, every range over the set);
    disagreement and score variance can also fall."""
    return metric.startswith(GROWING) or metric.endswith("_range")
