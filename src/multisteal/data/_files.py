"""Finding, verifying and downloading dataset files.

Resolution order for each file of a dataset:

1. the explicit ``data_dir`` argument,
2. the directory in the ``MULTISTEAL_DATA`` environment variable,
3. the compact copy bundled with the package (``multisteal/data/bundled``),
4. the download cache (``$MULTISTEAL_CACHE/<dataset>/`` or ``~/.cache/multisteal/<dataset>/``),
5. a download from the canonical URL (only when ``download=True``).

In directories 1 and 2 a file is accepted as ``<dir>/<file>`` or ``<dir>/<dataset>/<file>``,
each either plain or gzip-compressed (``<file>.gz``). The SHA-256 of the (decompressed) bytes of
every file is checked against the registry; a local copy that fails the check is an error, not
skipped. A check is done once per process for each path (as long as the file's size and
modification time are unchanged).
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from multisteal.errors import DataError, DatasetNotFoundError

__all__ = [
    "BUNDLED_DIR",
    "CACHE_ENV",
    "DATA_ENV",
    "FileSpec",
    "cache_root",
    "resolve_file",
]

DATA_ENV = "MULTISTEAL_DATA"
CACHE_ENV = "MULTISTEAL_CACHE"
BUNDLED_DIR = Path(__file__).resolve().parent / "bundled"
DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 20

CHECKSUM_MISMATCH_MSG = (
    "Local copy {path} of {file} (dataset {dataset!r}) failed its checksum: expected SHA-256 "
    "{expected}, got {actual}. Delete or replace it with the original file from {url}."
)
DOWNLOAD_CHECKSUM_MSG = (
    "Downloaded {file} (dataset {dataset!r}) from {url} has SHA-256 {actual}, expected "
    "{expected}. The downloaded file was discarded."
)
UNREADABLE_MSG = "Cannot read {path} (file {file} of dataset {dataset!r}): {reason}."
NOT_FOUND_MSG = (
    "Dataset {dataset!r}: file {file} was not found. Searched: {searched}. {download}"
    "To fix, set the {env} environment variable to a directory containing {file} "
    "(or {dataset}/{file}), or pass data_dir=..."
)
DOWNLOAD_DISABLED = "Download is disabled (download=False). "
DOWNLOAD_FAILED = "Download from {url} failed: {reason}. "
NO_URL = "No download URL is known for it. "


@dataclass(frozen=True)
class FileSpec:
    """One file of a dataset.

    Attributes:
        name: the file name as published upstream (e.g. ``"adult.data"``).
        sha256: hex SHA-256 of the file's (uncompressed) bytes.
        url: canonical download URL, or ``None`` when there is none.
        bundled: name of the gzip-compressed copy in ``multisteal/data/bundled``, or ``None``.
    """

    name: str
    sha256: str
    url: str | None = None
    bundled: str | None = None


# (path, size, mtime_ns) of files whose checksum already matched in this process.
_VERIFIED: set[tuple[str, int, int]] = set()


def _clear_verified_cache() -> None:
    """Forget which files were verified (for tests)."""
    _VERIFIED.clear()


def cache_root() -> Path:
    """Root of the download cache: ``$MULTISTEAL_CACHE`` or ``~/.cache/multisteal``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "multisteal"


def _open_maybe_gzip(path: Path) -> gzip.GzipFile | IO[bytes]:
    if path.suffix == ".gz":
        return gzip.GzipFile(path, "rb")
    return path.open("rb")


def _iter_chunks(stream: gzip.GzipFile | IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with _open_maybe_gzip(path) as stream:
        for chunk in _iter_chunks(stream):
            digest.update(chunk)
    return digest.hexdigest()


def _verify_local(path: Path, spec: FileSpec, dataset: str) -> None:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return
    try:
        actual = _sha256_of(path)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(
            UNREADABLE_MSG.format(path=path, file=spec.name, dataset=dataset, reason=exc)
        ) from exc
    if actual != spec.sha256:
        raise DataError(
            CHECKSUM_MISMATCH_MSG.format(
                path=path,
                file=spec.name,
                dataset=dataset,
                expected=spec.sha256,
                actual=actual,
                url=spec.url or "the dataset's source",
            )
        )
    _VERIFIED.add(key)


def _candidates(directory: Path, spec: FileSpec, dataset: str) -> list[Path]:
    paths = []
    for folder in (directory, directory / dataset):
        paths += [folder / spec.name, folder / f"{spec.name}.gz"]
    return paths


def _download(spec: FileSpec, dataset: str, url: str, target: Path) -> None:
    """Download ``url`` to ``target``, keeping it only when its SHA-256 matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    try:
        with (
            urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
            partial.open("wb") as out,
        ):
            for chunk in _iter_chunks(response):
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    actual = digest.hexdigest()
    if actual != spec.sha256:
        partial.unlink(missing_ok=True)
        raise DataError(
            DOWNLOAD_CHECKSUM_MSG.format(
                file=spec.name, dataset=dataset, url=url, actual=actual, expected=spec.sha256
            )
        )
    os.replace(partial, target)
    stat = target.stat()
    _VERIFIED.add((str(target.resolve()), stat.st_size, stat.st_mtime_ns))


def resolve_file(
    spec: FileSpec,
    dataset: str,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = True,
) -> Path:
    """Return the path of a verified local copy of ``spec`` (see the module docstring)."""
    searched: list[Path] = []
    directories = []
    if data_dir is not None:
        directories.append(Path(data_dir).expanduser())
    env = os.environ.get(DATA_ENV)
    if env:
        directories.append(Path(env).expanduser())
    for directory in directories:
        for path in _candidates(directory, spec, dataset):
            searched.append(path)
            if path.is_file():
                _verify_local(path, spec, dataset)
                return path
    if spec.bundled is not None:
        path = BUNDLED_DIR / spec.bundled
        searched.append(path)
        if path.is_file():
            _verify_local(path, spec, dataset)
            return path
    cached = cache_root() / dataset / spec.name
    searched.append(cached)
    if cached.is_file():
        _verify_local(cached, spec, dataset)
        return cached

    if spec.url is None:
        reason = NO_URL
    elif not download:
        reason = DOWNLOAD_DISABLED
    else:
        try:
            _download(spec, dataset, spec.url, cached)
        except (OSError, http.client.HTTPException) as exc:
            reason = DOWNLOAD_FAILED.format(url=spec.url, reason=exc)
        else:
            return cached
    raise DatasetNotFoundError(
        NOT_FOUND_MSG.format(
            dataset=dataset,
            file=spec.name,
            searched=", ".join(str(p) for p in searched),
            download=reason,
            env=DATA_ENV,
        )
    )
