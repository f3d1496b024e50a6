"""multisteal: model stealing through the lens of model multiplicity."""

from __future__ import annotations

__version__ = "0.1.0"
