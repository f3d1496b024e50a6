"""File resolution order, checksums and the (offline) download path."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import urllib.request
from pathlib import Path

import pytest

from multisteal.data import CACHE_ENV, DATA_ENV, DATASETS, _files, load_dataset
from multisteal.data._files import BUNDLED_DIR
from multisteal.errors import DataError, DatasetNotFoundError

GERMAN_SHA = DATASETS["german_credit"].files[0].sha256
GERMAN_URL = DATASETS["german_credit"].files[0].url


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _corrupt(data: bytes) -> bytes:
    return data.replace(b"A11", b"A12", 1)


def _german_without_bundle(monkeypatch: pytest.MonkeyPatch, url: str | None) -> None:
    """Replace the German registry entry by one with no bundled copy and the given URL."""
    spec = DATASETS["german_credit"]
    file = dataclasses.replace(spec.files[0], bundled=None, url=url)
    monkeypatch.setitem(DATASETS, "german_credit", dataclasses.replace(spec, files=(file,)))


# ------------------------------------------------------------------------- resolution order


def test_explicit_dir_wins_over_env_over_bundled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german_bytes: bytes
) -> None:
    explicit = _write(tmp_path / "explicit" / "german.data", german_bytes)
    nested = _write(tmp_path / "env" / "german_credit" / "german.data", german_bytes)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))

    assert load_dataset("german_credit", data_dir=tmp_path / "explicit").source == str(explicit)
    assert load_dataset("german_credit").source == str(nested)
    monkeypatch.delenv(DATA_ENV)
    assert load_dataset("german_credit").source == str(BUNDLED_DIR / "german.data.gz")


def test_explicit_dir_without_the_file_falls_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german_bytes: bytes
) -> None:
    env_copy = _write(tmp_path / "env" / "german.data", german_bytes)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    (tmp_path / "empty").mkdir()
    assert load_dataset("german_credit", data_dir=tmp_path / "empty").source == str(env_copy)


def test_gzip_copy_in_data_dir(tmp_path: Path, german_bytes: bytes) -> None:
    path = _write(tmp_path / "german.data.gz", gzip.compress(german_bytes))
    ds = load_dataset("german_credit", data_dir=tmp_path, download=False)
    assert ds.source == str(path)
    assert len(ds) == 1_000


def test_corrupted_local_copy_is_rejected(tmp_path: Path, german_bytes: bytes) -> None:
    bad = _corrupt(german_bytes)
    path = _write(tmp_path / "german.data", bad)
    with pytest.raises(DataError) as info:
        load_dataset("german_credit", data_dir=tmp_path)
    actual = hashlib.sha256(bad).hexdigest()
    assert str(info.value) == (
        f"Local copy {path} of german.data (dataset 'german_credit') failed its checksum: "
        f"expected SHA-256 {GERMAN_SHA}, got {actual}. Delete or replace it with the original "
        f"file from {GERMAN_URL}."
    )
    assert not isinstance(info.value, DatasetNotFoundError)


def test_corrupted_gzip_is_a_data_error(tmp_path: Path, german_bytes: bytes) -> None:
    _write(tmp_path / "german.data.gz", gzip.compress(german_bytes)[:-100])
    with pytest.raises(DataError, match=r"^Cannot read .*german\.data\.gz \(file german\.data"):
        load_dataset("german_credit", data_dir=tmp_path)


def test_checksum_is_computed_once_per_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german_bytes: bytes
) -> None:
    calls: list[Path] = []
    original = _files._sha256_of

    def counting(path: Path) -> str:
        calls.append(path)
        return original(path)

    monkeypatch.setattr(_files, "_sha256_of", counting)
    path = _write(tmp_path / "german.data", german_bytes)
    load_dataset("german_credit", data_dir=tmp_path)
    load_dataset("german_credit", data_dir=tmp_path)
    assert calls == [path]
    # A changed file is checked again.
    path.write_bytes(_corrupt(german_bytes) + b"\n")
    with pytest.raises(DataError, match="failed its checksum"):
        load_dataset("german_credit", data_dir=tmp_path)
    assert calls == [path, path]


# ---------------------------------------------------------------------------------- download


def test_download_verifies_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german_bytes: bytes
) -> None:
    source = _write(tmp_path / "remote" / "german.data", german_bytes)
    _german_without_bundle(monkeypatch, source.as_uri())
    opened: list[str] = []
    real_urlopen = urllib.request.urlopen

    def recording_urlopen(url: str, timeout: float) -> object:
        opened.append(url)
        return real_urlopen(url, timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", recording_urlopen)
    cache = tmp_path / "dl-cache"
    monkeypatch.setenv(CACHE_ENV, str(cache))

    first = load_dataset("german_credit")
    cached = cache / "german_credit" / "german.data"
    assert first.source == str(cached)
    assert cached.read_bytes() == german_bytes
    assert len(first) == 1_000
    assert opened == [source.as_uri()]
    assert list(cached.parent.iterdir()) == [cached]

    source.unlink()  # the second load must not need the remote file
    second = load_dataset("german_credit", download=False)
    assert second.source == str(cached)
    assert opened == [source.as_uri()]


def test_download_with_bad_checksum_is_discarded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, german_bytes: bytes
) -> None:
    bad = _corrupt(german_bytes)
    source = _write(tmp_path / "remote" / "german.data", bad)
    url = source.as_uri()
    _german_without_bundle(monkeypatch, url)
    with pytest.raises(DataError) as info:
        load_dataset("german_credit")
    actual = hashlib.sha256(bad).hexdigest()
    assert str(info.value) == (
        f"Downloaded german.data (dataset 'german_credit') from {url} has SHA-256 {actual}, "
        f"expected {GERMAN_SHA}. The downloaded file was discarded."
    )
    cache_dir = tmp_path / "cache" / "german_credit"
    assert not any(cache_dir.iterdir())


def test_failed_download_is_dataset_not_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = (tmp_path / "nowhere" / "german.data").as_uri()
    _german_without_bundle(monkeypatch, url)
    with pytest.raises(DatasetNotFoundError, match=r"Download from file://.* failed: ") as info:
        load_dataset("german_credit")
    assert "set the MULTISTEAL_DATA environment variable" in str(info.value)
    assert not any((tmp_path / "cache" / "german_credit").iterdir())


def test_not_found_with_download_disabled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _german_without_bundle(monkeypatch, GERMAN_URL)
    cached = tmp_path / "cache" / "german_credit" / "german.data"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("german_credit", download=False)
    assert str(info.value) == (
        f"Dataset 'german_credit': file german.data was not found. Searched: {cached}. "
        "Download is disabled (download=False). To fix, set the MULTISTEAL_DATA environment "
        "variable to a directory containing german.data (or german_credit/german.data), or "
        "pass data_dir=..."
    )


def test_not_found_lists_every_place_searched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _german_without_bundle(monkeypatch, None)
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "env"))
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("german_credit", data_dir=tmp_path / "mine")
    message = str(info.value)
    for place in (
        tmp_path / "mine" / "german.data",
        tmp_path / "mine" / "german_credit" / "german.data.gz",
        tmp_path / "env" / "german.data",
        tmp_path / "env" / "german_credit" / "german.data",
        tmp_path / "cache" / "german_credit" / "german.data",
    ):
        assert str(place) in message
    assert "No download URL is known for it." in message
