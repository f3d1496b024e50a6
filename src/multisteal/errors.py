"""Exceptions raised by multisteal.

Every error a user can trigger with bad input is one of these classes, carrying a message that
names the problem. Message templates are module-level constants next to the code that raises
them, so tests compare them exactly.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationError",
    "BudgetExceededError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "InvalidInputError",
    "InvalidProbabilitiesError",
    "MultistealError",
    "NotFittedError",
]


class MultistealError(Exception):
    """Base class of every error multisteal raises on purpose."""


class InvalidInputError(MultistealError, ValueError):
    """An array or argument has the wrong shape, type, range or value."""


class InvalidProbabilitiesError(InvalidInputError):
    """A probability array is not finite, not in [0, 1], or its rows do not sum to 1."""


class DataError(MultistealError, ValueError):
    """A dataset cannot be loaded or does not have the expected content."""


class DatasetNotFoundError(DataError):
    """No local copy of a dataset was found and it could not be downloaded."""


class BudgetExceededError(MultistealError):
    """A query would make the query API answer more rows than its budget allows."""


class QueryRefusedError(MultistealError):
    """The query API refuses to answer any more (a detector flagged the query stream)."""


class AuthenticationError(MultistealError):
    """A prediction service refused the API key (unknown, or not allowed what it asked)."""


class ConfigError(MultistealError, ValueError):
    """A run configuration is malformed or inconsistent."""


class NotFittedError(MultistealError, AttributeError):
    """A model was used before ``fit`` was called."""
