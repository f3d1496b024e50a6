"""Detectors watching a prediction API's query stream.

PRADA (Juuti, Szyller, Marchal & Asokan, "PRADA: Protecting against DNN Model Stealing
Attacks", EuroS&P 2019) flags a stream whose minimum distances to earlier queries stop looking
normally distributed: natural queries scatter, while synthetic attack queries (a few seeds and
many small ``x ± λ·sign(·)`` steps) sit at a handful of regular distances from what came before.

For each class ``c`` PRADA keeps a growing set ``G_c`` of queries, the distances ``D_{G_c}``
that let them in (starting as ``[0]``) and a threshold ``T_c`` (starting at 0); for each query
``x`` with the model's decision ``c``:

* ``G_c`` empty: ``x`` joins ``G_c``;
* otherwise ``d_min`` = the smallest L2 distance from ``x`` to ``G_c`` (on the defender's
  encoding: :func:`~multisteal.query.perturbations.defence_features`) is appended to the global
  list ``D``; if ``d_min > T_c``, ``x`` joins ``G_c``, ``d_min`` joins ``D_{G_c}`` and
  ``T_c ← max(T_c, mean(D_{G_c}) − std(D_{G_c}))`` (population std: it never decreases);
* once ``|D|`` exceeds ``min_distances``, the Shapiro–Wilk statistic ``W`` of the last ≤ 5,000
  values of ``D`` — values beyond 3 standard deviations of their mean left out — is computed
  after every query, and ``W < delta`` flags the stream (``W`` = 0 when those distances are
  all equal: a perfectly regular stream).

These are the paper's Algorithm 1 and its authors' implementation (the initial 0, the
never-decreasing threshold and the outlier removal come from the latter; it tests from 100
distances on, the default here waits for 200, see below).

Thresholds (defaults): ``delta = 0.9``, ``min_distances = 200``. Measured (``tests/test_prada.py``
and the issue-8 notes):

* natural Adult pool streams of 1,500 records (logistic and MLP targets, 13 seeds): the lowest
  ``W`` was 0.926, the last values 0.98. Testing from 100 distances on, the lowest was 0.867
  (at query 131): the early tests are noisy, hence 200;
* natural PneumoniaMNIST pool streams of 1,000 images (CNN target, 3 seeds): lowest ``W`` 0.93;
* the Jacobian attacker (Papernot et al. 2017, ``attacks.jacobian``) on PneumoniaMNIST fell to
  ``W`` = 0.56-0.73 and was flagged at every seed tried;
* on Adult the same attacker was **not** flagged: its distances stay as normal as natural
  records' (lowest ``W`` 0.956 and 0.968 on two seeds). Random walks of ``x ± 0.5·sign(·)``
  steps from 3 seed records are flagged (``tests/test_prada.py``).

The paper tunes ``delta`` per dataset; raise it (or lower ``min_distances``) for earlier
detection at the price of false alarms on natural streams.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import stats

from multisteal.errors import InvalidInputError
from multisteal.params import convert_params, parse_named_params
from multisteal.query.api import Detector
from multisteal.query.perturbations import defence_features

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_MIN_DISTANCES",
    "DETECTORS",
    "PRADA",
    "DetectorSpec",
    "make_detector",
    "parse_detector",
]

DEFAULT_DELTA = 0.9
DEFAULT_MIN_DISTANCES = 200
SHAPIRO_WINDOW = 5000  # scipy's Shapiro–Wilk p-values are only accurate up to 5,000 values
_CHUNK = 512  # queries whose pairwise distances are computed at once

BAD_DELTA = "prada needs 0 < delta <= 1 (a Shapiro–Wilk threshold), got {value!r}."
BAD_MIN_DISTANCES = "prada needs min_distances >= 3 (Shapiro–Wilk needs 3 values), got {value!r}."
BAD_LABELS = "The detector got {n} inputs but {m} decisions: give one decision per input."
UNKNOWN_DETECTOR = "Unknown detector {name!r}. Available detectors: {available}."


class _Group:
    """One class's growing set ``G_c``: its points (a buffer that doubles) and the running
    mean and variance of ``D_{G_c}`` (Welford)."""

    def __init__(self, width: int) -> None:
        self.points = np.empty((16, width))
        self.sq_norms = np.empty(16)
        self.size = 0
        # D_{G_c} starts as {0} and T_c at 0, as in the authors' implementation
        self.n_dist = 1
        self.mean = 0.0
        self.m2 = 0.0
        self.t = 0.0

    def add(self, x: NDArray[np.float64]) -> None:
        if self.size == self.points.shape[0]:
            self.points = np.vstack([self.points, np.empty_like(self.points)])
            self.sq_norms = np.concatenate([self.sq_norms, np.empty_like(self.sq_norms)])
        self.points[self.size] = x
        self.sq_norms[self.size] = x @ x
        self.size += 1

    def add_distance(self, d: float) -> None:
        self.n_dist += 1
        delta = d - self.mean
        self.mean += delta / self.n_dist
        self.m2 += delta * (d - self.mean)
        self.t = max(self.t, self.mean - math.sqrt(max(self.m2 / self.n_dist, 0.0)))

    def threshold(self) -> float:
        """``T_c = max(T_c, mean(D_{G_c}) − std(D_{G_c}))``: it never decreases."""
        return self.t


def _distances(
    A: NDArray[np.float64], B: NDArray[np.float64], b_sq: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Pairwise L2 distances ``(len(A), len(B))`` from squared norms and one matrix product."""
    a_sq = np.einsum("ij,ij->i", A, A)
    sq = a_sq[:, None] + b_sq[None, :] - 2.0 * (A @ B.T)
    out: NDArray[np.float64] = np.sqrt(np.clip(sq, 0.0, None))
    return out


class PRADA:
    """The PRADA detector (Juuti et al. 2019); see the module docstring for the algorithm.

    Parameters
    ----------
    model : the target; its ``encode`` (an :class:`~multisteal.models.InputPipeline`) maps
        queries to the defender's encoding. Without one the queries must be numbers.
    delta : flag when the Shapiro–Wilk ``W`` of the distances falls below it.
    min_distances : ``W`` is only computed once ``D`` holds this many distances.
    encode : a function from a query batch to its encoding, used instead of ``model.encode``.

    Attributes
    ----------
    distances_ : the global list ``D`` of minimum distances, in query order.
    history_ : ``(queries observed, W)`` after every query once ``|D| ≥ min_distances``.
    n_queries_ : the number of queries observed.
    """

    name = "prada"

    def __init__(
        self,
        model: Any = None,
        delta: float = DEFAULT_DELTA,
        min_distances: int = DEFAULT_MIN_DISTANCES,
        encode: Callable[[Any], Any] | None = None,
    ) -> None:
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise InvalidInputError(BAD_DELTA.format(value=delta))
        if not (math.isfinite(delta) and 0 < delta <= 1):
            raise InvalidInputError(BAD_DELTA.format(value=delta))
        if (
            isinstance(min_distances, bool)
            or not isinstance(min_distances, (int, np.integer))
            or min_distances < 3
        ):
            raise InvalidInputError(BAD_MIN_DISTANCES.format(value=min_distances))
        self.model = model
        self.delta = float(delta)
        self.min_distances = int(min_distances)
        self.encode = encode
        self.distances_: list[float] = []
        self.history_: list[tuple[int, float]] = []
        self.n_queries_ = 0
        self._groups: dict[int, _Group] = {}
        self._flagged_after: int | None = None

    @property
    def flagged_after(self) -> int | None:
        """The number of queries observed when the stream was first flagged (``None``: never)."""
        return self._flagged_after

    @property
    def growing_sets(self) -> dict[int, NDArray[np.float64]]:
        """Each class's growing set ``G_c`` (a copy, one row per kept query)."""
        return {c: g.points[: g.size].copy() for c, g in sorted(self._groups.items())}

    @property
    def last_w(self) -> float | None:
        """The latest Shapiro–Wilk statistic (``None`` before ``min_distances`` distances)."""
        return self.history_[-1][1] if self.history_ else None

    def observe(self, inputs: Any, labels: NDArray[np.int64]) -> bool:
        """Add a batch of queries (in order) with the model's decisions on them; return whether
        the stream has been flagged."""
        X = defence_features(inputs, self.model, self.encode)
        decisions = np.asarray(labels).astype(np.int64).reshape(-1)
        if decisions.shape[0] != X.shape[0]:
            raise InvalidInputError(BAD_LABELS.format(n=X.shape[0], m=decisions.shape[0]))
        for start in range(0, X.shape[0], _CHUNK):
            self._observe_chunk(X[start : start + _CHUNK], decisions[start : start + _CHUNK])
        return self._flagged_after is not None

    def _observe_chunk(self, X: NDArray[np.float64], labels: NDArray[np.int64]) -> None:
        # Classes do not interact: each class's queries run through its growing set in order
        # (distances to the existing set and within the chunk come from matrix products); the
        # distances are then merged into D in query order.
        d_min = np.full(X.shape[0], np.nan)
        for c in np.unique(labels):
            rows = np.flatnonzero(labels == c)
            d_min[rows] = self._run_class(int(c), X[rows])
        for d in d_min:
            self.n_queries_ += 1
            if np.isnan(d):
                if self.history_:
                    self.history_.append((self.n_queries_, self.history_[-1][1]))
                continue
            self.distances_.append(float(d))
            if len(self.distances_) > self.min_distances:
                w = _shapiro_w(self.distances_[-SHAPIRO_WINDOW:])
                self.history_.append((self.n_queries_, w))
                if w < self.delta and self._flagged_after is None:
                    self._flagged_after = self.n_queries_

    def _run_class(self, c: int, X: NDArray[np.float64]) -> NDArray[np.float64]:
        """The growing-set step for class ``c``'s queries ``X`` in order; each query's
        ``d_min`` (NaN for a query that found ``G_c`` empty).

        Nearest points are found from matrix products (squared norms); the distance to the
        nearest one is then recomputed exactly, so repeated queries give exactly 0.
        """
        group = self._groups.get(c)
        if group is None:
            group = self._groups[c] = _Group(X.shape[1])
        n = X.shape[0]
        # each query's nearest point of G_c as it grows: first in the set before this chunk
        # (index >= 0), then among this chunk's queries that joined it (index -1 - i)
        nearest = np.full(n, np.inf)
        nearest_at = np.zeros(n, dtype=np.int64)
        if group.size:
            existing = _distances(X, group.points[: group.size], group.sq_norms[: group.size])
            nearest_at = existing.argmin(axis=1)
            nearest = existing[np.arange(n), nearest_at]
        within = _distances(X, X, np.einsum("ij,ij->i", X, X))
        out = np.full(n, np.nan)
        for i in range(n):
            if group.size:
                j = int(nearest_at[i])
                point = group.points[j] if j >= 0 else X[-1 - j]
                diff = X[i] - point
                d = math.sqrt(float(diff @ diff))
                out[i] = d
                if d <= group.threshold():
                    continue
                group.add_distance(d)
            group.add(X[i])
            closer = within[:, i] < nearest
            nearest[closer] = within[closer, i]
            nearest_at[closer] = -1 - i
        return out


def _shapiro_w(values: list[float]) -> float:
    """Shapiro–Wilk ``W`` of ``values``; 0 when they are all equal (scipy warns there), up to
    rounding (a spread below 1e-9 of their size)."""
    arr = np.asarray(values)
    # outliers beyond 3 standard deviations are left out, as in the authors' implementation
    spread = arr.std()
    if spread > 0:
        arr = arr[np.abs(arr - arr.mean()) <= 3.0 * spread]
    if arr.size < 3 or np.ptp(arr) <= 1e-9 * np.abs(arr).max():
        return 0.0
    return float(stats.shapiro(arr).statistic)


@dataclass(frozen=True)
class DetectorSpec:
    """A registered detector: its parameters (name → type) and how to build it.

    ``factory(params, model=...)`` gets the typed parameters and the target model (whose
    ``encode`` gives the defender's view of the queries).
    """

    name: str
    description: str
    params: Mapping[str, type]
    factory: Callable[..., Detector] = field(repr=False)

    def convert(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """``params`` checked against this detector's parameters, converted to their types and
        their values checked (by building the detector once)."""
        converted = convert_params(f"{self.name} detector", params, self.params)
        self.factory(converted, model=None)
        return converted


DETECTORS: Mapping[str, DetectorSpec] = {
    "prada": DetectorSpec(
        "prada",
        "PRADA (Juuti et al. 2019): flag when the Shapiro-Wilk W of the queries' minimum "
        f"distances falls below delta (default {DEFAULT_DELTA}, after {DEFAULT_MIN_DISTANCES} "
        "distances)",
        {"delta": float, "min_distances": int},
        lambda params, model: PRADA(model, **params),
    ),
}


def parse_detector(text: str) -> tuple[str, dict[str, str]]:
    """``"prada:delta=0.9"`` → ``("prada", {"delta": "0.9"})``; the name and parameters are
    checked against :data:`DETECTORS`."""
    name, params = parse_named_params(text, what="detector", example="prada:delta=0.9")
    spec = DETECTORS.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_DETECTOR.format(name=name, available=", ".join(DETECTORS)))
    spec.convert(params)
    return name, params


def make_detector(name: str, params: Mapping[str, Any] | None = None, *, model: Any) -> Detector:
    """The named detector with ``params`` (strings or values), watching ``model``'s service."""
    spec = DETECTORS.get(name)
    if spec is None:
        raise InvalidInputError(UNKNOWN_DETECTOR.format(name=name, available=", ".join(DETECTORS)))
    return spec.factory(spec.convert(params or {}), model=model)
