"""Result-column names, defined once: the runner writes them and the report reads them.

Columns that carry a parameter (an attribute, a class, a probe group) are built by the
functions here and recognised by the matching ``parse_*`` functions, so the writer and the
reader cannot drift apart.
"""

from __future__ import annotations

import re

__all__ = [
    "SET_KEYS",
    "fairness_column",
    "parse_fairness_target",
    "parse_per_class",
    "parse_probe_target",
    "per_class_column",
    "probe_column",
]

#: The columns that identify one Rashomon set of one seed in ``results.csv``.
SET_KEYS = ("budget", "epsilon", "reference")

PER_CLASS_STATS = (
    "ambiguity_vs_target",
    "disagreement_mean",
    "rashomon_capacity_mean",
    "class_rows",
)
PROBE_KINDS = ("rate_gap", "score_gap")

_FAIRNESS_TARGET = re.compile(r"^(?P<metric>[a-z_]+)\[(?P<attribute>[^\]]+)\]_target$")
_PER_CLASS = re.compile(r"^ambiguity_vs_target\[class=(?P<name>.+)\]$")
_PROBE_TARGET = re.compile(r"^(?P<column>[a-z0-9]+\.(?:rate|score)_gap\[.+\])_target$")


def fairness_column(metric: str, attribute: str) -> str:
    """``demographic_parity_difference[sex]``: a between-group difference per member; the set
    columns append ``_target``, ``_min``, ``_max``, ``_range``, … to it."""
    return f"{metric}[{attribute}]"


def parse_fairness_target(column: str) -> tuple[str, str] | None:
    """``(metric, attribute)`` of a ``metric[attribute]_target`` column, else ``None``."""
    match = _FAIRNESS_TARGET.match(column)
    return None if match is None else (match["metric"], match["attribute"])


def per_class_column(stat: str, class_name: str) -> str:
    """``ambiguity_vs_target[class=malignant]``: a multiplicity statistic among the evaluation
    rows of one true class (``stat`` one of :data:`PER_CLASS_STATS`)."""
    return f"{stat}[class={class_name}]"


def parse_per_class(column: str) -> str | None:
    """The class name of an ``ambiguity_vs_target[class=…]`` column, else ``None``."""
    match = _PER_CLASS.match(column)
    return None if match is None else match["name"]


def probe_column(probe: str, kind: str, attribute: str, groups: str) -> str:
    """``eec.rate_gap[gender:female-male]``: a bias probe's gap per member. The dot keeps the
    probe's columns apart from group-fairness columns (``metric[attribute]``)."""
    return f"{probe}.{kind}[{attribute}:{groups}]"


def parse_probe_target(column: str) -> str | None:
    """The gap column of a ``<probe>.<kind>[…]_target`` column, else ``None``."""
    match = _PROBE_TARGET.match(column)
    return None if match is None else match["column"]
