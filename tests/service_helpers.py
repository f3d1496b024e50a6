"""Starting and stopping a real service process for the tests (shared by the service tests)."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def wait_until_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0
) -> None:
    """Poll ``/healthz`` until it answers 200; fail with the server's log if the process dies
    or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start:\n{log.read_text()}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate the server (SIGTERM), killing it if it does not exit within 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def save_german_target(folder: Path) -> tuple[Path, Any, Any]:
    """A logistic target on German credit (raw records), saved to ``folder/target`` with the
    metadata a run's target carries: ``(target folder, dataset, model)``."""
    from multisteal.data import TabularDataset, load_dataset
    from multisteal.data.inputs import input_spec_of
    from multisteal.models.io import save_model
    from multisteal.models.zoo import make_pipeline

    ds = load_dataset("german_credit")
    assert isinstance(ds, TabularDataset)
    spec = input_spec_of(ds)
    model = make_pipeline("logistic", spec, random_state=0).fit(ds.features, ds.y)
    metadata = {
        "input_spec": spec.to_dict(),
        "classes": [str(c) for c in ds.class_names],
        "data": "german_credit",
        "seed": 7,
        "split": {"target_train": 500},
        "split_seed": 11,
        "family": "logistic",
    }
    return save_model(model, folder / "target", metadata=metadata), ds, model


def uvicorn_command(port: int, workers: int) -> list[str]:
    """The command that serves ``multisteal.service.app:app_from_env`` (its settings in the
    environment) on loopback with ``workers`` worker processes."""
    import sys

    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "multisteal.service.app:app_from_env",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
