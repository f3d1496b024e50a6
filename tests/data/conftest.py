"""Fixtures of the data tests: an isolated environment, no network, datasets loaded once."""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from multisteal.data import CACHE_ENV, DATA_ENV, TabularDataset, load_dataset
from multisteal.data._files import BUNDLED_DIR, _clear_verified_cache

_REPO = Path(__file__).resolve().parents[2]
SHARED_CANDIDATES = (_REPO / "shared" / "datasets", _REPO.parent / "shared" / "datasets")


def shared_datasets_dir() -> Path | None:
    """The folder of offline dataset copies next to the repository, if there is one."""
    for path in SHARED_CANDIDATES:
        if (path / "adult" / "adult.data").is_file():
            return path
    return None


def _no_network(*args: object, **kwargs: object) -> None:
    raise RuntimeError("tests must not touch the network")


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv(DATA_ENV, raising=False)
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    yield
    _clear_verified_cache()


def _load_bundled(name: str) -> TabularDataset:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATA_ENV, raising=False)
        return load_dataset(name, download=False)


@pytest.fixture(scope="session")
def adult() -> TabularDataset:
    return _load_bundled("adult")


@pytest.fixture(scope="session")
def compas() -> TabularDataset:
    return _load_bundled("compas")


@pytest.fixture(scope="session")
def german() -> TabularDataset:
    return _load_bundled("german_credit")


@pytest.fixture(scope="session")
def german_bytes() -> bytes:
    """The upstream bytes of german.data (from the bundled copy)."""
    with gzip.open(BUNDLED_DIR / "german.data.gz", "rb") as f:
        return f.read()
