"""Writing an audit's run directory (tables and arrays; the report layer adds the rest)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np

from multisteal.experiments.runner import AuditResult
from multisteal.models.io import save_model

__all__ = ["PREPROCESSOR_FILE", "RUN_FILES", "write_run"]

PREPROCESSOR_FILE = "preprocessor.joblib"
RUN_FILES = (
    "config.yaml",
    "results.csv",
    "results.parquet",
    "members.csv",
    "baselines.csv",
    "samples.npz",
    "query_log.csv",
    "timings.csv",
)


def write_run(result: AuditResult, out: str | Path) -> Path:
    """Write the resolved config, result tables, per-sample arrays and the query log to ``out``.

    Files are written to a temporary name and renamed, so an interrupted write never leaves a
    truncated file that looks complete.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)

    def atomic(name: str, write: Callable[[Path], object]) -> None:
        final = folder / name
        tmp = folder / f".{name}.partial"
        write(tmp)
        tmp.replace(final)

    atomic("config.yaml", lambda p: p.write_text(result.config.to_yaml()))
    atomic("results.csv", lambda p: result.results.to_csv(p, index=False))
    atomic("results.parquet", lambda p: result.results.to_parquet(p, index=False))
    atomic("members.csv", lambda p: result.members.to_csv(p, index=False))
    atomic("baselines.csv", lambda p: result.baselines.to_csv(p, index=False))
    atomic("query_log.csv", lambda p: result.query_log.to_csv(p, index=False))
    atomic(
        "timings.csv",
        lambda p: p.write_text(
            "step,seconds\n" + "".join(f"{k},{v:.3f}\n" for k, v in result.timings.items())
        ),
    )

    def save_npz(path: Path) -> None:
        with path.open("wb") as handle:
            np.savez_compressed(handle, **result.samples)  # type: ignore[arg-type]

    atomic("samples.npz", save_npz)
    if result.target is not None:
        target = save_model(result.target, folder / "target", metadata=result.target_metadata)
        if result.preprocessor is not None:
            joblib.dump(result.preprocessor, target / PREPROCESSOR_FILE)
    return folder
