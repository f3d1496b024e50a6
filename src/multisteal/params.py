"""Typed ``name=value`` parameters of registered components (attacks, defences, detectors).

Registries declare each component's parameters as ``{name: type}``; values arriving from the
CLI are strings, values from a config file are already typed. :func:`convert_params` checks
both against the declaration and names the problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from multisteal.errors import InvalidInputError

__all__ = ["convert_params", "parse_named_params"]

UNKNOWN_PARAM = "The {owner} has no parameter {param!r}; its parameters are: {available}."
BAD_PARAM = "The {owner}'s {param} must be {kind}, got {value!r}."
MALFORMED = (
    "Malformed {what} {text!r}: write name or name:param=value[,param=value] (e.g. {example})."
)


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


_CONVERT: Mapping[type, Callable[[str], Any]] = {int: int, float: float, bool: _to_bool, str: str}
_KIND = {int: "a whole number", float: "a number", bool: "true or false", str: "a string"}


def convert_params(
    owner: str, params: Mapping[str, Any], schema: Mapping[str, type]
) -> dict[str, Any]:
    """``params`` checked against ``schema`` (name → int, float, bool or str) and converted."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        kind = schema.get(key)
        if kind is None:
            raise InvalidInputError(
                UNKNOWN_PARAM.format(owner=owner, param=key, available=", ".join(schema) or "none")
            )
        try:
            if isinstance(value, str):
                out[key] = _CONVERT[kind](value)
            elif isinstance(value, bool):
                if kind is not bool:
                    raise ValueError(value)
                out[key] = value
            elif kind is float and isinstance(value, (int, float)):
                out[key] = float(value)
            elif isinstance(value, kind):
                out[key] = value
            else:
                raise ValueError(value)
        except ValueError:
            raise InvalidInputError(
                BAD_PARAM.format(owner=owner, param=key, kind=_KIND[kind], value=value)
            ) from None
    return out


def parse_named_params(text: str, *, what: str, example: str) -> tuple[str, dict[str, str]]:
    """``"name:a=1,b=x"`` → ``("name", {"a": "1", "b": "x"})`` (values stay strings)."""
    name, _, rest = text.strip().partition(":")
    name = name.strip()
    if not name:
        raise InvalidInputError(MALFORMED.format(what=what, text=text, example=example))
    params: dict[str, str] = {}
    if rest.strip():
        for item in rest.split(","):
            key, eq, value = item.partition("=")
            if not eq or not key.strip() or not value.strip():
                raise InvalidInputError(MALFORMED.format(what=what, text=text, example=example))
            params[key.strip()] = value.strip()
    return name, params
