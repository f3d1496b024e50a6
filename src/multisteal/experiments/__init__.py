"""Experiments: validated configs, the audit runner, its baselines and repeats over seeds."""

from __future__ import annotations

from multisteal.experiments.config import (
    STAGES,
    AuditConfig,
    BaselineConfig,
    DropoutConfig,
    RetrainConfig,
    SplitConfig,
    config_error_message,
    load_config,
)
from multisteal.experiments.data import PreparedData, prepare_data
from multisteal.experiments.repeats import combine_results, run_audit
from multisteal.experiments.runner import AuditResult, make_explorer, run_single_audit

__all__ = [
    "STAGES",
    "AuditConfig",
    "AuditResult",
    "BaselineConfig",
    "DropoutConfig",
    "PreparedData",
    "RetrainConfig",
    "SplitConfig",
    "combine_results",
    "config_error_message",
    "load_config",
    "make_explorer",
    "prepare_data",
    "run_audit",
    "run_single_audit",
]
