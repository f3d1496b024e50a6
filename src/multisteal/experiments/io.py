"""Writing an audit's run directory (tables and arrays; the report layer adds the rest)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from multisteal.errors import ConfigError
from multisteal.experiments.config import AuditConfig, load_config
from multisteal.experiments.runner import AuditResult
from multisteal.models.io import save_model

__all__ = [
    "INPUTS_FILE",
    "RUN_FILES",
    "check_resumable",
    "file_sha256",
    "read_result",
    "write_run",
]

INPUTS_FILE = "inputs.json"
NOT_A_RUN = "--resume needs a multisteal run in {out}, but {file} is missing or unreadable."
CONFIG_CHANGED = (
    "--resume needs the same configuration as the run in {out}; these settings differ: "
    "{fields}. Run with the same settings, or start anew with --force."
)
INPUT_CHANGED = (
    "--resume: {csv} changed since the run in {out} started (SHA-256 {now} instead of {then}). "
    "Start anew with --force."
)
#: Settings that change how a run is computed, not what it computes.
EXECUTION_ONLY = ("workers", "threads", "chunk_mb")

CONVERGENCE_HEADER = (
    "seed",
    "epsilon",
    "metric",
    "fraction",
    "size",
    "value",
    "low",
    "high",
    "orders",
    "budget",
    "set",
)
RUN_FILES = (
    "config.yaml",
    "results.csv",
    "results.parquet",
    "members.csv",
    "baselines.csv",
    "samples.npz",
    "query_log.csv",
    "convergence.csv",
    "timings.csv",
)


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _inputs(config: AuditConfig) -> dict[str, str]:
    """What a run reads besides its configuration, with checksums (``--resume`` checks them)."""
    out: dict[str, str] = {}
    for name in ("csv", "images", "text_csv"):  # the data file, whatever its kind
        path = getattr(config, name)
        if path is not None:
            out |= {name: str(path), f"{name}_sha256": file_sha256(path)}
    if config.target_path is not None and (Path(config.target_path) / "meta.json").is_file():
        meta = Path(config.target_path) / "meta.json"
        out |= {"target": str(config.target_path), "target_sha256": file_sha256(meta)}
    return out


def check_resumable(config: AuditConfig, out: str | Path) -> None:
    """Refuse ``--resume`` into ``out`` unless it holds a run of the same configuration (all
    but the execution settings) on the same input file."""
    folder = Path(out)
    try:
        saved = load_config(folder / "config.yaml")
    except (ConfigError, OSError):
        raise ConfigError(NOT_A_RUN.format(out=folder, file="config.yaml")) from None
    old = saved.model_dump(mode="json", exclude=set(EXECUTION_ONLY))
    new = config.model_dump(mode="json", exclude=set(EXECUTION_ONLY))
    changed = sorted(k for k in new if old.get(k) != new[k])
    if changed:
        raise ConfigError(CONFIG_CHANGED.format(out=folder, fields=", ".join(changed)))
    now = _inputs(config)
    if now:
        try:
            then = json.loads((folder / INPUTS_FILE).read_text())
        except (OSError, json.JSONDecodeError):
            raise ConfigError(NOT_A_RUN.format(out=folder, file=INPUTS_FILE)) from None
        for key in ("csv", "target"):
            digest = f"{key}_sha256"
            if digest in now and now[digest] != then.get(digest):
                raise ConfigError(
                    INPUT_CHANGED.format(
                        csv=now[key], out=folder, now=now[digest], then=then.get(digest)
                    )
                )


def read_result(config: AuditConfig, out: str | Path) -> dict[int, AuditResult]:
    """The finished work of a run directory, per seed, to resume it (:func:`run_audit`)."""
    folder = Path(out)

    def table(name: str) -> pd.DataFrame:
        path = folder / name
        try:
            if name.endswith(".parquet"):
                return pd.read_parquet(path)
            return pd.read_csv(path)
        except pd.errors.EmptyDataError:
            return pd.DataFrame()  # written empty (e.g. no baselines): nothing was lost
        except (ValueError, OSError, UnicodeDecodeError):
            raise ConfigError(NOT_A_RUN.format(out=folder, file=name)) from None

    results = table("results.parquet")
    if results.empty:
        return {}
    members, baselines, log = table("members.csv"), table("baselines.csv"), table("query_log.csv")
    timings = table("timings.csv")
    convergence = table("convergence.csv") if (folder / "convergence.csv").is_file() else None
    for name, frame in (("members.csv", members), ("query_log.csv", log)):
        if frame.empty or "seed" not in frame:
            raise ConfigError(NOT_A_RUN.format(out=folder, file=name))
    try:
        with np.load(folder / "samples.npz") as archive:
            samples = {key: archive[key] for key in archive.files}
    except (OSError, ValueError):
        raise ConfigError(NOT_A_RUN.format(out=folder, file="samples.npz")) from None
    parts: dict[int, AuditResult] = {}
    for seed in sorted(int(s) for s in results["seed"].unique()):
        prefix = f"seed{seed}/"

        def rows(frame: pd.DataFrame, seed: int = seed) -> pd.DataFrame:
            if frame.empty or "seed" not in frame:
                return pd.DataFrame()
            return frame[frame["seed"] == seed].reset_index(drop=True)

        parts[seed] = AuditResult(
            config=config.for_seed(seed),
            results=rows(results),
            members=rows(members),
            baselines=rows(baselines),
            samples={k[len(prefix) :]: v for k, v in samples.items() if k.startswith(prefix)},
            query_log=rows(log),
            convergence=rows(convergence) if convergence is not None else pd.DataFrame(),
            timings={
                str(step)[len(prefix) :]: float(sec)
                for step, sec in zip(
                    timings.get("step", []), timings.get("seconds", []), strict=True
                )
                if str(step).startswith(prefix)
            },
        )
    return parts


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
    if _inputs(result.config) and not (folder / INPUTS_FILE).is_file():
        # Recorded once, when the run starts writing: --resume checks the file is unchanged.
        atomic(INPUTS_FILE, lambda p: p.write_text(json.dumps(_inputs(result.config), indent=2)))
    atomic("results.csv", lambda p: result.results.to_csv(p, index=False))
    atomic("results.parquet", lambda p: result.results.to_parquet(p, index=False))
    atomic("members.csv", lambda p: result.members.to_csv(p, index=False))
    atomic("baselines.csv", lambda p: result.baselines.to_csv(p, index=False))
    atomic("query_log.csv", lambda p: result.query_log.to_csv(p, index=False))
    convergence = result.convergence
    if convergence.empty:  # a header, so the file reads back as an empty table
        convergence = pd.DataFrame(columns=list(CONVERGENCE_HEADER))
    atomic("convergence.csv", lambda p: convergence.to_csv(p, index=False))
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
        save_model(
            result.target,
            folder / "target",
            metadata=result.target_metadata,
        )
    return folder
