"""Experiments: validated configs and the audit runner."""

from __future__ import annotations

from multisteal.experiments.config import (
    AuditConfig,
    DropoutConfig,
    RetrainConfig,
    SplitConfig,
    config_error_message,
    load_config,
)
from multisteal.experiments.runner import (
    AuditResult,
    PreparedData,
    make_explorer,
    prepare_data,
    run_audit,
)

__all__ = [
    "AuditConfig",
    "AuditResult",
    "DropoutConfig",
    "PreparedData",
    "RetrainConfig",
    "SplitConfig",
    "config_error_message",
    "load_config",
    "make_explorer",
    "prepare_data",
    "run_audit",
]
