"""Image and text datasets: the registered ones (checked against their PROVENANCE.md), a user's
own .npz and text CSV, the Dataset protocol and every error message."""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from multisteal.data import (
    DATA_ENV,
    DATASETS,
    Dataset,
    ImageDataset,
    TabularDataset,
    TextDataset,
    load_dataset,
    load_image_npz,
    load_text_csv,
)
from multisteal.data import _csv as csv_module
from multisteal.data import _dataset as dataset_module
from multisteal.data import _images as images_module
from multisteal.data import _text as text_module
from multisteal.data._files import BUNDLED_DIR
from multisteal.errors import DataError, DatasetNotFoundError, InvalidInputError

from .conftest import shared_datasets_dir

NEW_DATASETS = ("breastmnist", "pneumoniamnist", "sst2", "rotten_tomatoes", "eec")


def _load(name: str) -> Dataset:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(DATA_ENV, raising=False)
        return load_dataset(name, download=False)


@pytest.fixture(scope="module")
def breast() -> ImageDataset:
    ds = _load("breastmnist")
    assert isinstance(ds, ImageDataset)
    return ds


@pytest.fixture(scope="module")
def pneumonia() -> ImageDataset:
    ds = _load("pneumoniamnist")
    assert isinstance(ds, ImageDataset)
    return ds


@pytest.fixture(scope="module")
def sst2() -> TextDataset:
    ds = _load("sst2")
    assert isinstance(ds, TextDataset)
    return ds


@pytest.fixture(scope="module")
def rotten() -> TextDataset:
    ds = _load("rotten_tomatoes")
    assert isinstance(ds, TextDataset)
    return ds


@pytest.fixture(scope="module")
def eec() -> TextDataset:
    ds = _load("eec")
    assert isinstance(ds, TextDataset)
    return ds


def _counts(values: pd.Series | np.ndarray) -> dict[str, int]:
    uniques, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(u): int(c) for u, c in zip(uniques, counts, strict=True)}


def _message(error: type[Exception], call: Callable[[], object]) -> str:
    with pytest.raises(error) as info:
        call()
    return str(info.value)


def _bundled_bytes(name: str) -> bytes:
    raw = (BUNDLED_DIR / name).read_bytes()
    return gzip.decompress(raw) if name.endswith(".gz") else raw


# ------------------------------------------------------------------------ the benchmarks


def _check_common(ds: Dataset, parts: dict[str, int] | None) -> None:
    n = len(ds)
    assert isinstance(ds, Dataset)
    assert ds.modality == DATASETS[ds.name].modality
    assert ds.y.dtype == np.int64
    assert ds.y.shape == (n,)
    assert set(np.unique(ds.y)) == set(range(ds.n_classes))
    assert len(ds.sensitive) == n
    assert isinstance(ds.sensitive.index, pd.RangeIndex)
    for column in ds.sensitive.columns:
        assert pd.api.types.is_string_dtype(ds.sensitive[column])
    assert len(ds.inputs) == n
    assert ds.source
    assert str(BUNDLED_DIR) in ds.source
    if parts is None:
        assert ds.parts is None
        return
    assert ds.parts is not None
    assert {k: len(v) for k, v in ds.parts.items()} == parts
    start = 0
    for key in ("train", "val", "test"):  # concatenated in this order
        if key in parts:
            rows = ds.parts[key]
            assert rows.dtype == np.int64
            np.testing.assert_array_equal(rows, np.arange(start, start + parts[key]))
            start += parts[key]
    assert start == n


def _check_medmnist(ds: ImageDataset, file: str, sizes: dict[str, int]) -> None:
    _check_common(ds, sizes)
    assert ds.inputs is ds.images
    assert ds.images.dtype == np.uint8
    assert ds.images.shape == (sum(sizes.values()), 28, 28)
    assert ds.image_shape == (28, 28)
    assert ds.sensitive.shape == (len(ds), 0)
    assert ds.notes == (images_module.MEDMNIST_NOTE,)
    with np.load(BUNDLED_DIR / file, allow_pickle=False) as raw:
        for part in ("train", "val", "test"):
            assert ds.parts is not None
            rows = ds.parts[part]
            np.testing.assert_array_equal(ds.images[rows], raw[f"{part}_images"])
            np.testing.assert_array_equal(ds.y[rows], raw[f"{part}_labels"].ravel())


def test_breastmnist(breast: ImageDataset) -> None:
    _check_medmnist(breast, "breastmnist.npz", {"train": 546, "val": 78, "test": 156})
    assert breast.class_names == ("malignant", "normal or benign")
    assert breast.positive_class == 1  # favourable for the patient
    parts = breast.parts
    assert parts is not None
    assert _counts(breast.y[parts["train"]]) == {"0": 147, "1": 399}
    assert _counts(breast.y[parts["val"]]) == {"0": 21, "1": 57}
    assert _counts(breast.y[parts["test"]]) == {"0": 42, "1": 114}


def test_pneumoniamnist(pneumonia: ImageDataset) -> None:
    _check_medmnist(pneumonia, "pneumoniamnist.npz", {"train": 4_708, "val": 524, "test": 624})
    assert pneumonia.class_names == ("normal", "pneumonia")
    assert pneumonia.positive_class == 0  # favourable for the patient
    parts = pneumonia.parts
    assert parts is not None
    assert _counts(pneumonia.y[parts["train"]]) == {"0": 1_214, "1": 3_494}
    assert _counts(pneumonia.y[parts["val"]]) == {"0": 135, "1": 389}
    assert _counts(pneumonia.y[parts["test"]]) == {"0": 234, "1": 390}


def _check_texts(ds: TextDataset) -> None:
    assert ds.inputs is ds.texts
    assert ds.texts.dtype == object
    assert ds.texts.ndim == 1
    assert all(isinstance(t, str) and t.strip() for t in ds.texts)


def test_sst2(sst2: TextDataset) -> None:
    _check_common(sst2, {"train": 67_349, "test": 872})
    _check_texts(sst2)
    assert len(sst2) == 67_349 + 872
    assert sst2.class_names == ("negative", "positive")
    assert sst2.positive_class == 1
    assert sst2.sensitive.shape == (len(sst2), 0)
    assert sst2.notes == text_module.SST2_NOTES
    parts = sst2.parts
    assert parts is not None
    assert _counts(sst2.y[parts["train"]]) == {"0": 29_780, "1": 37_569}
    assert _counts(sst2.y[parts["test"]]) == {"0": 428, "1": 444}
    # the space before the tab is stripped
    assert sst2.texts[0] == "hide new secretions from the parental units"
    assert sst2.texts[67_349] == "it 's a charming and often affecting journey ."
    assert not any(t != t.rstrip() for t in sst2.texts)


def test_rotten_tomatoes(rotten: TextDataset) -> None:
    _check_common(rotten, None)
    _check_texts(rotten)
    assert len(rotten) == 5_331 + 5_331
    assert rotten.class_names == ("negative", "positive")
    assert rotten.positive_class == 1
    np.testing.assert_array_equal(rotten.y, np.repeat([0, 1], 5_331))
    assert rotten.sensitive.shape == (len(rotten), 0)
    assert rotten.notes == text_module.RT_NOTES
    assert rotten.texts[0] == "simplistic , silly and tedious ."
    assert rotten.texts[5_330] == "enigma is well-made , but it's just too dry and too placid ."
    assert rotten.texts[-1] == (
        "provides a porthole into that noble , trembling incoherence that defines us all ."
    )


def test_rotten_tomatoes_latin1_round_trips(rotten: TextDataset) -> None:
    pos = _bundled_bytes("rt-polarity.pos.gz")
    neg = _bundled_bytes("rt-polarity.neg.gz")
    spanish = (
        "'compleja e intelectualmente retadora , el ladrón de orquídeas es uno de esos filmes "
        "que vale la pena ver precisamente por su originalidad . '"
    )
    assert spanish in set(rotten.texts[rotten.y == 1])
    # the file's bytes are Latin-1: ó is the single byte 0xf3
    assert spanish.encode("latin-1") in pos
    assert b"ladr\xf3n" in pos
    # 0x97 is a Windows-1252 em dash, not a C1 control character
    dash = [t for t in rotten.texts if "bryan adams contributes a slew of songs" in t]
    assert len(dash) == 1
    assert "\u2014 a few potential hits" in dash[0]
    assert dash[0].encode("cp1252") in pos
    assert not any("\x80" <= c <= "\x9f" for t in rotten.texts for c in t)
    # every line round-trips to the file's bytes
    for raw, label in ((neg, 0), (pos, 1)):
        lines = [t.encode("cp1252") for t in rotten.texts[rotten.y == label]]
        assert [line.rstrip() for line in raw.split(b"\n")[:-1]] == lines


def test_eec(eec: TextDataset) -> None:
    _check_common(eec, None)
    _check_texts(eec)
    assert len(eec) == 8_640
    assert eec.class_names == ("anger", "fear", "joy", "none", "sadness")
    assert eec.positive_class == eec.class_names.index("joy")
    assert _counts(eec.y) == {"0": 2_100, "1": 2_100, "2": 2_100, "3": 240, "4": 2_100}
    assert list(eec.sensitive.columns) == ["gender", "race"]
    assert _counts(eec.sensitive["gender"]) == {"female": 4_320, "male": 4_320}
    assert _counts(eec.sensitive["race"]) == {
        "African-American": 2_880,
        "European": 2_880,
        "none": 2_880,
    }
    assert eec.notes == text_module.EEC_NOTES
    assert any("bias probe" in note for note in eec.notes)
    assert any("not sentiment" in note for note in eec.notes)
    assert eec.texts[0] == "Alonzo feels angry."
    assert eec.sensitive.iloc[0].tolist() == ["male", "African-American"]


def test_registry_entries_of_new_datasets() -> None:
    readme = (BUNDLED_DIR / "README.md").read_text(encoding="utf-8")
    assert DATASETS["breastmnist"].modality == "image"
    assert DATASETS["pneumoniamnist"].modality == "image"
    for name in ("sst2", "rotten_tomatoes", "eec"):
        assert DATASETS[name].modality == "text"
    for name in ("adult", "compas", "german_credit"):
        assert DATASETS[name].modality == "tabular"
    for name in NEW_DATASETS:
        spec = DATASETS[name]
        assert spec.name == name
        assert spec.license
        assert spec.citation
        assert spec.description
        assert spec.homepage.startswith("https://")
        for file in spec.files:
            assert file.url is not None
            assert file.url.startswith("https://")
            assert file.sha256 in readme
            assert file.bundled is not None
            assert file.bundled in readme
            raw = (BUNDLED_DIR / file.bundled).read_bytes()
            if file.bundled.endswith(".gz"):
                # gzip -n: no file name and a zero timestamp, so the copies are reproducible
                assert raw[:2] == b"\x1f\x8b"
                assert raw[3] & 0x08 == 0
                assert raw[4:8] == b"\x00\x00\x00\x00"
                raw = gzip.decompress(raw)
            else:
                assert file.bundled == file.name  # the upstream file itself
            assert hashlib.sha256(raw).hexdigest() == file.sha256
    assert DATASETS["breastmnist"].files[0].url == (
        "https://zenodo.org/records/10519652/files/breastmnist.npz?download=1"
    )


@pytest.mark.parametrize("name", NEW_DATASETS)
def test_from_multisteal_data_env(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = shared_datasets_dir()
    if shared is None or not (shared / name).is_dir():
        pytest.skip("the shared offline dataset folder is absent")
    monkeypatch.setenv(DATA_ENV, str(shared))
    ds = load_dataset(name, download=False)
    bundled = _load(name)
    for path in ds.source.split(", "):
        assert Path(path).parent == shared / name
    assert type(ds) is type(bundled)
    np.testing.assert_array_equal(ds.inputs, bundled.inputs)
    np.testing.assert_array_equal(ds.y, bundled.y)
    pd.testing.assert_frame_equal(ds.sensitive, bundled.sensitive)


def test_gzip_npz_in_data_dir(tmp_path: Path) -> None:
    (tmp_path / "breastmnist.npz.gz").write_bytes(
        gzip.compress((BUNDLED_DIR / "breastmnist.npz").read_bytes())
    )
    ds = load_dataset("breastmnist", data_dir=tmp_path, download=False)
    assert ds.source == str(tmp_path / "breastmnist.npz.gz")
    assert len(ds) == 780


# ------------------------------------------------------------ the protocol and subsets


def test_protocol(breast: ImageDataset, sst2: TextDataset, german: TabularDataset) -> None:
    for ds in (breast, sst2, german):
        assert isinstance(ds, Dataset)
    assert not isinstance(object(), Dataset)
    assert german.modality == "tabular"
    assert german.inputs is german.features
    assert german.parts is None
    assert breast.modality == "image"
    assert sst2.modality == "text"


def test_subset_keeps_types(breast: ImageDataset, sst2: TextDataset, eec: TextDataset) -> None:
    part = breast.subset(np.array([3, 1, 779]))
    assert isinstance(part, ImageDataset)
    assert len(part) == 3
    assert part.parts is None
    assert part.sensitive.shape == (3, 0)
    np.testing.assert_array_equal(part.images[2], breast.images[779])
    assert list(part.y) == [breast.y[3], breast.y[1], breast.y[779]]
    assert (part.name, part.class_names, part.positive_class, part.notes, part.source) == (
        breast.name,
        breast.class_names,
        breast.positive_class,
        breast.notes,
        breast.source,
    )
    assert len(breast.subset([])) == 0

    texts = sst2.subset([67_349, 0])
    assert isinstance(texts, TextDataset)
    assert texts.parts is None
    assert texts.texts.tolist() == [sst2.texts[67_349], sst2.texts[0]]
    assert texts.notes == sst2.notes

    groups = eec.subset(np.arange(10, 20))
    assert isinstance(groups, TextDataset)
    assert isinstance(groups.sensitive.index, pd.RangeIndex)
    assert groups.sensitive["race"].tolist() == eec.sensitive["race"].iloc[10:20].tolist()
    assert isinstance(eec.subset([-1]), TextDataset)


@pytest.mark.parametrize(
    "make",
    [
        lambda n: [n],
        lambda n: [-n - 1],
        lambda n: [[0, 1]],
        lambda n: [0.5],
        lambda n: 3,
    ],
)
def test_subset_rejects_bad_indices(
    breast: ImageDataset, sst2: TextDataset, make: Callable[[int], Any]
) -> None:
    datasets: tuple[Dataset, ...] = (breast, sst2)
    for ds in datasets:
        with pytest.raises(InvalidInputError) as info:
            ds.subset(make(len(ds)))
        assert str(info.value) == dataset_module.BAD_SUBSET_MSG.format(n=len(ds))


def test_tabular_parts(german: TabularDataset) -> None:
    from dataclasses import replace

    parts = {"train": np.arange(0, 800, dtype=np.int64), "test": np.arange(800, 1000)}
    with_parts = replace(german, parts=parts)
    assert with_parts.parts is parts
    assert with_parts.subset([0, 1]).parts is None
    message = _message(DataError, lambda: replace(german, parts={"dev": parts["train"]}))
    assert message == dataset_module.BAD_PARTS_MSG.format(
        name="german_credit", last=999, problem="unknown part 'dev'"
    )


# ------------------------------------------------------------------ ImageDataset's checks


def _image_kwargs(**changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "name": "imgs",
        "images": np.zeros((4, 5, 6), dtype=np.uint8),
        "y": np.array([0, 1, 0, 1], dtype=np.int64),
        "sensitive": pd.DataFrame({"g": ["a", "b", "a", "b"]}),
        "class_names": ("no", "yes"),
        "source": "memory",
        "positive_class": 1,
    }
    kwargs.update(changes)
    return kwargs


def test_image_dataset_accepts_valid_inputs() -> None:
    ds = ImageDataset(**_image_kwargs(images=np.ones((4, 3, 3, 3), dtype=np.float32)))
    assert ds.image_shape == (3, 3, 3)
    assert ds.n_classes == 2
    ds = ImageDataset(**_image_kwargs(parts={"train": np.array([0, 2]), "test": np.array([1, 3])}))
    assert ds.parts is not None


@pytest.mark.parametrize(
    ("images", "description"),
    [
        (np.zeros((4, 5)), "shape (4, 5) and dtype float64"),
        (np.zeros((4, 1, 2, 3, 1)), "shape (4, 1, 2, 3, 1) and dtype float64"),
        (np.zeros((4, 0, 2)), "shape (4, 0, 2) and dtype float64"),
        (np.full((4, 2, 2), "a"), "shape (4, 2, 2) and dtype <U1"),
        (np.zeros((4, 2, 2), dtype=complex), "shape (4, 2, 2) and dtype complex128"),
        ([[[0]]] * 4, "list"),
    ],
)
def test_image_dataset_rejects_bad_images(images: Any, description: str) -> None:
    message = _message(DataError, lambda: ImageDataset(**_image_kwargs(images=images)))
    assert message == images_module.BAD_IMAGES_MSG.format(name="imgs", description=description)


def test_image_dataset_rejects_non_finite_images() -> None:
    images = np.zeros((4, 2, 2))
    images[2, 0, 1] = np.nan
    images[3, 1, 1] = np.inf
    message = _message(DataError, lambda: ImageDataset(**_image_kwargs(images=images)))
    assert message == images_module.NON_FINITE_IMAGES_MSG.format(name="imgs", count=2, index=2)


@pytest.mark.parametrize(
    ("changes", "template", "fields"),
    [
        (
            {"y": np.array([0, 1, 0], dtype=np.int64)},
            dataset_module.INPUTS_LENGTH_MISMATCH_MSG,
            {"inputs": "images", "n_inputs": 4, "part": "y", "n_other": 3},
        ),
        (
            {"sensitive": pd.DataFrame({"g": ["a"]})},
            dataset_module.INPUTS_LENGTH_MISMATCH_MSG,
            {"inputs": "images", "n_inputs": 4, "part": "sensitive", "n_other": 1},
        ),
        ({"y": np.array([0, 1, 0, 2], dtype=np.int64)}, dataset_module.BAD_LABELS_MSG, {"last": 1}),
        ({"y": np.array([0, 1, 0, 1])[:, None]}, dataset_module.BAD_LABELS_MSG, {"last": 1}),
        ({"y": np.array([0.0, 1.0, 0.0, 1.0])}, dataset_module.BAD_LABELS_MSG, {"last": 1}),
        ({"positive_class": 2}, dataset_module.BAD_POSITIVE_CLASS_MSG, {"last": 1, "value": 2}),
        (
            {"positive_class": True},
            dataset_module.BAD_POSITIVE_CLASS_MSG,
            {"last": 1, "value": True},
        ),
        ({"class_names": ("a",)}, dataset_module.BAD_CLASS_NAMES_MSG, {"value": ("a",)}),
        ({"class_names": ("a", "a")}, dataset_module.BAD_CLASS_NAMES_MSG, {"value": ("a", "a")}),
        ({"class_names": ["a", "b"]}, dataset_module.BAD_CLASS_NAMES_MSG, {"value": ["a", "b"]}),
        ({"sensitive": None}, dataset_module.BAD_SENSITIVE_MSG, {"kind": "NoneType"}),
    ],
)
def test_image_dataset_checks(
    changes: dict[str, Any], template: str, fields: dict[str, Any]
) -> None:
    message = _message(DataError, lambda: ImageDataset(**_image_kwargs(**changes)))
    assert message == template.format(name="imgs", **fields)


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ({"dev": np.array([0])}, "unknown part 'dev'"),
        ({"train": [0, 1]}, "part 'train' is not a 1-D int64 array"),
        ({"train": np.array([0, 1], dtype=np.int32)}, "part 'train' is not a 1-D int64 array"),
        ({"train": np.array([0, 4])}, "part 'train' has positions outside 0..3"),
        ({"train": np.array([-1, 0])}, "part 'train' has positions outside 0..3"),
        ({"train": np.array([1, 0])}, "part 'train' is not sorted without repeats"),
        ({"train": np.array([1, 1])}, "part 'train' is not sorted without repeats"),
        (
            {"train": np.array([0, 1]), "test": np.array([1, 2])},
            "part 'test' shares rows with another part",
        ),
        ([np.array([0])], "got list"),
    ],
)
def test_image_dataset_checks_parts(parts: Any, problem: str) -> None:
    message = _message(DataError, lambda: ImageDataset(**_image_kwargs(parts=parts)))
    assert message == dataset_module.BAD_PARTS_MSG.format(name="imgs", last=3, problem=problem)


# ------------------------------------------------------------------- TextDataset's checks


def _texts(*values: object) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = list(values)
    return array


def _text_kwargs(**changes: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "name": "txt",
        "texts": _texts("good", "bad", "fine"),
        "y": np.array([1, 0, 1], dtype=np.int64),
        "sensitive": pd.DataFrame(index=pd.RangeIndex(3)),
        "class_names": ("neg", "pos"),
        "source": "memory",
        "positive_class": 1,
    }
    kwargs.update(changes)
    return kwargs


@pytest.mark.parametrize(
    ("texts", "description"),
    [
        (np.array(["a", "b", "c"]), "shape (3,) and dtype <U1"),
        (_texts("a", "b", "c", "d").reshape(2, 2), "shape (2, 2) and dtype object"),
        (["a", "b", "c"], "list"),
    ],
)
def test_text_dataset_rejects_bad_arrays(texts: Any, description: str) -> None:
    message = _message(DataError, lambda: TextDataset(**_text_kwargs(texts=texts)))
    assert message == text_module.BAD_TEXTS_MSG.format(name="txt", description=description)


@pytest.mark.parametrize(
    ("texts", "index", "problem"),
    [
        (_texts("a", "", "c"), 1, "empty"),
        (_texts("a", "b", "  "), 2, "blank ('  ')"),
        (_texts(None, "b", "c"), 0, "not a str but NoneType None"),
        (_texts("a", float("nan"), "c"), 1, "not a str but float nan"),
        (_texts("a", b"b", "c"), 1, "not a str but bytes b'b'"),
    ],
)
def test_text_dataset_rejects_bad_texts(texts: np.ndarray, index: int, problem: str) -> None:
    message = _message(DataError, lambda: TextDataset(**_text_kwargs(texts=texts)))
    assert message == text_module.BAD_TEXT_ITEM_MSG.format(name="txt", index=index, problem=problem)


def test_text_dataset_checks_labels() -> None:
    message = _message(
        DataError, lambda: TextDataset(**_text_kwargs(y=np.array([1, 0], dtype=np.int64)))
    )
    assert message == dataset_module.INPUTS_LENGTH_MISMATCH_MSG.format(
        name="txt", inputs="texts", n_inputs=3, part="y", n_other=2
    )


# ---------------------------------------------------------------------- a user's own .npz


@pytest.fixture
def user_npz(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = np.array([f"class_{i}" for i in range(10)])
    y = labels[np.r_[np.arange(10), rng.integers(0, 10, 30)]]
    x = rng.integers(0, 256, size=(len(y), 20, 24, 3), dtype=np.uint8)
    groups = np.where(np.arange(len(y)) % 3 == 0, "site A", "site B")
    path = tmp_path / "my-images.npz"
    np.savez_compressed(path, x=x, y=y, groups=groups)
    return path, x, y, groups


def test_user_npz(user_npz: tuple[Path, np.ndarray, np.ndarray, np.ndarray]) -> None:
    path, x, y, groups = user_npz
    ds = load_image_npz(path)
    assert isinstance(ds, ImageDataset)
    assert isinstance(ds, Dataset)
    assert ds.name == "my-images"
    assert ds.source == str(path)
    assert ds.class_names == tuple(f"class_{i}" for i in range(10))
    assert ds.n_classes == 10
    assert ds.positive_class == 9  # the last class without positive_label
    assert ds.image_shape == (20, 24, 3)
    np.testing.assert_array_equal(ds.images, x)
    assert [ds.class_names[i] for i in ds.y] == y.tolist()
    assert ds.y.dtype == np.int64
    assert list(ds.sensitive.columns) == ["group"]
    assert ds.sensitive["group"].tolist() == groups.tolist()
    assert ds.parts is None
    assert ds.notes == ()
    assert load_image_npz(path, positive_label="class_3", name="mine").positive_class == 3
    part = ds.subset([0, 5])
    assert isinstance(part, ImageDataset)
    assert part.sensitive["group"].tolist() == [groups[0], groups[5]]


def test_user_npz_integer_labels_and_options(tmp_path: Path) -> None:
    path = tmp_path / "digits.npz"
    y = np.array([[10], [2], [2], [10], [7]])  # (n, 1) like MedMNIST; numeric sort
    np.savez(path, x=np.linspace(0, 1, 5 * 8 * 8).reshape(5, 8, 8), y=y, positive_label=7)
    ds = load_image_npz(path)
    assert ds.class_names == ("2", "7", "10")
    np.testing.assert_array_equal(ds.y, [2, 0, 0, 2, 1])
    assert ds.positive_class == 1  # from the file's positive_label
    assert load_image_npz(path, positive_label=10).positive_class == 2  # the argument wins
    assert ds.sensitive.shape == (5, 0)
    assert ds.notes == (images_module.NO_GROUPS_NOTE,)
    assert ds.images.dtype == np.float64

    gz = tmp_path / "digits.npz.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert load_image_npz(gz).name == "digits"

    path = tmp_path / "bytes.npz"
    np.savez(path, x=np.zeros((2, 2, 2)), y=np.array([b"cat", b"dog"]), groups=np.array([1, 2]))
    ds = load_image_npz(path)
    assert ds.class_names == ("cat", "dog")
    assert ds.sensitive["group"].tolist() == ["1", "2"]


def _npz(tmp_path: Path, name: str = "bad.npz", **arrays: Any) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_user_npz_file_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nope.npz"
    assert _message(DatasetNotFoundError, lambda: load_image_npz(missing)) == (
        images_module.NPZ_NOT_FOUND_MSG.format(path=missing)
    )
    text = tmp_path / "text.npz"
    text.write_text("x,y\n1,2\n", encoding="utf-8")
    assert _message(DataError, lambda: load_image_npz(text)) == images_module.NOT_NPZ_MSG.format(
        file="text.npz", problem="not a zip archive"
    )
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros((2, 3, 3)))
    assert _message(DataError, lambda: load_image_npz(single)) == (
        images_module.NOT_NPZ_MSG.format(file="single.npz", problem="it is a single .npy array")
    )
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 20)
    assert _message(DataError, lambda: load_image_npz(broken)).startswith(
        "broken.npz is not a NumPy .npz archive ("
    )


def test_user_npz_needs_pickle(tmp_path: Path) -> None:
    path = _npz(tmp_path, x=np.zeros((2, 2, 2)), y=np.array(["a", 1], dtype=object))
    assert _message(DataError, lambda: load_image_npz(path)) == (
        images_module.NEEDS_PICKLE_MSG.format(key="y", file="bad.npz")
    )
    assert "allow_pickle=False" in images_module.NEEDS_PICKLE_MSG


X = np.zeros((3, 4, 4), dtype=np.uint8)
Y = np.array([0, 1, 1])


@pytest.mark.parametrize(
    ("arrays", "template", "fields"),
    [
        ({"y": Y}, images_module.MISSING_ARRAY_MSG, {"key": "x", "found": "y"}),
        (
            {"x": X, "labels": Y},
            images_module.MISSING_ARRAY_MSG,
            {"key": "y", "found": "labels, x"},
        ),
        ({"x": X[0], "y": Y}, images_module.NPZ_IMAGE_SHAPE_MSG, {"shape": (4, 4)}),
        (
            {"x": X[..., None, None], "y": Y},
            images_module.NPZ_IMAGE_SHAPE_MSG,
            {"shape": (3, 4, 4, 1, 1)},
        ),
        ({"x": X[:, :0], "y": Y}, images_module.NPZ_IMAGE_SHAPE_MSG, {"shape": (3, 0, 4)}),
        ({"x": X.astype(str), "y": Y}, images_module.NPZ_IMAGE_DTYPE_MSG, {"dtype": "<U3"}),
        ({"x": X[:0], "y": Y[:0]}, images_module.NPZ_NO_IMAGES_MSG, {}),
        ({"x": X, "y": np.zeros((3, 2))}, images_module.NPZ_LABELS_SHAPE_MSG, {"shape": (3, 2)}),
        ({"x": X, "y": Y.astype(float)}, images_module.NPZ_LABELS_DTYPE_MSG, {"dtype": "float64"}),
        ({"x": X, "y": Y[:2]}, images_module.NPZ_LENGTH_MSG, {"n_x": 3, "key": "y", "n_other": 2}),
        (
            {"x": X, "y": Y, "groups": np.array(["a", "b"])},
            images_module.NPZ_LENGTH_MSG,
            {"n_x": 3, "key": "groups", "n_other": 2},
        ),
        (
            {"x": X, "y": Y, "groups": np.array([["a"], ["b"], ["c"]])},
            images_module.NPZ_GROUPS_MSG,
            {"shape": (3, 1), "dtype": "<U1"},
        ),
        (
            {"x": X, "y": Y, "groups": np.array([0.5, 1.0, 2.0])},
            images_module.NPZ_GROUPS_MSG,
            {"shape": (3,), "dtype": "float64"},
        ),
        ({"x": X, "y": np.array([4, 4, 4])}, images_module.NPZ_SINGLE_CLASS_MSG, {"value": "'4'"}),
        (
            {"x": X, "y": Y, "positive_label": 2},
            images_module.NPZ_POSITIVE_LABEL_MSG,
            {"value": 2, "values": "0, 1"},
        ),
        (
            {"x": X, "y": Y, "positive_label": np.array([0, 1])},
            images_module.NPZ_BAD_POSITIVE_LABEL_MSG,
            {"shape": (2,), "dtype": "int64"},
        ),
    ],
)
def test_user_npz_errors(
    tmp_path: Path, arrays: dict[str, Any], template: str, fields: dict[str, Any]
) -> None:
    path = _npz(tmp_path, **arrays)
    assert _message(DataError, lambda: load_image_npz(path)) == template.format(
        file="bad.npz", **fields
    )


def test_user_npz_non_finite(tmp_path: Path) -> None:
    x = np.zeros((4, 2, 2), dtype=np.float32)
    x[1, 0, 0] = np.inf
    x[3] = np.nan
    path = _npz(tmp_path, x=x, y=np.array([0, 1, 0, 1]))
    assert _message(DataError, lambda: load_image_npz(path)) == (
        images_module.NPZ_NON_FINITE_MSG.format(file="bad.npz", count=5, index=1)
    )
    path = _npz(tmp_path, "ok.npz", x=np.zeros((2, 2, 2)), y=np.array([0, 1]))
    assert _message(DataError, lambda: load_image_npz(path, positive_label="2")) == (
        images_module.NPZ_POSITIVE_LABEL_MSG.format(value="2", file="ok.npz", values="0, 1")
    )


# --------------------------------------------------------------------- a user's own text CSV

TEXT_CSV = '''\
id,review,stars,gender,country
1,"Great film, loved it",5,F,FR
2,Terrible.,1,M,
3,"It was ""ok""",3,F,US
4,Meh,1,,US
5,NA,10,M,FR
'''


def _write(tmp_path: Path, text: str, name: str = "reviews.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_user_text_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, TEXT_CSV)
    ds = load_text_csv(path, text_column="review", label="stars", sensitive=["gender", "country"])
    assert isinstance(ds, TextDataset)
    assert isinstance(ds, Dataset)
    assert ds.name == "reviews"
    assert ds.source == str(path)
    assert ds.texts.tolist() == ["Great film, loved it", "Terrible.", 'It was "ok"', "Meh", "NA"]
    assert ds.texts.dtype == object
    assert ds.class_names == ("1", "3", "5", "10")  # integer labels sort numerically
    np.testing.assert_array_equal(ds.y, [2, 0, 1, 0, 3])
    assert ds.positive_class == 3
    assert ds.sensitive["gender"].tolist() == ["F", "M", "F", "missing", "M"]
    assert ds.sensitive["country"].tolist() == ["FR", "missing", "US", "US", "FR"]
    assert ds.parts is None
    assert ds.modality == "text"

    ds = load_text_csv(path, text_column="review", label="stars", positive_label=3, name="x")
    assert ds.name == "x"
    assert ds.sensitive.shape == (5, 0)
    assert ds.positive_class == 1

    part = ds.subset([1])
    assert isinstance(part, TextDataset)
    assert part.texts.tolist() == ["Terrible."]


def test_user_text_csv_encoding(tmp_path: Path) -> None:
    path = _write(tmp_path, "text,label\ncafé crème,a\nnaïve,b\n", encoding="latin-1")
    ds = load_text_csv(path, text_column="text", label="label", encoding="latin-1")
    assert ds.texts.tolist() == ["café crème", "naïve"]
    message = _message(DataError, lambda: load_text_csv(path, text_column="text", label="label"))
    assert message.startswith("reviews.csv is not valid utf-8 text (byte 0xe9 at position ")
    assert message.endswith("); give its encoding, e.g. --encoding latin-1.")
    assert _message(
        DataError, lambda: load_text_csv(path, text_column="text", label="label", encoding="nope")
    ) == csv_module.UNKNOWN_ENCODING_MSG.format(encoding="nope", file="reviews.csv")


def test_user_text_csv_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, TEXT_CSV)
    columns = "id, review, stars, gender, country"

    def load(**kwargs: Any) -> Callable[[], object]:
        options: dict[str, Any] = {"text_column": "review", "label": "stars"}
        options.update(kwargs)
        return lambda: load_text_csv(path, **options)

    missing = tmp_path / "nope.csv"
    assert _message(
        DatasetNotFoundError, lambda: load_text_csv(missing, text_column="a", label="b")
    ) == csv_module.FILE_NOT_FOUND_MSG.format(path=missing)
    assert _message(DataError, load(text_column="body")) == (
        text_module.TEXT_COLUMN_NOT_FOUND_MSG.format(
            column="body", file="reviews.csv", columns=columns
        )
    )
    assert _message(DataError, load(label="rating")) == csv_module.LABEL_NOT_FOUND_MSG.format(
        label="rating", file="reviews.csv", columns=columns
    )
    assert _message(DataError, load(label="review")) == text_module.TEXT_IS_LABEL_MSG.format(
        column="review", file="reviews.csv"
    )
    assert _message(DataError, load(sensitive="stars")) == (
        csv_module.SENSITIVE_IS_LABEL_MSG.format(column="stars", file="reviews.csv")
    )
    assert _message(DataError, load(sensitive=["gender", "review"])) == (
        text_module.SENSITIVE_IS_TEXT_MSG.format(column="review", file="reviews.csv")
    )
    assert _message(DataError, load(sensitive="age")) == (
        csv_module.SENSITIVE_NOT_FOUND_MSG.format(column="age", file="reviews.csv", columns=columns)
    )
    assert _message(DataError, load(positive_label="4")) == (
        csv_module.POSITIVE_LABEL_NOT_FOUND_MSG.format(
            value="4", label="stars", file="reviews.csv", values="1, 3, 5, 10"
        )
    )
    assert _message(DataError, load(text_column="country")) == (
        text_module.EMPTY_TEXTS_MSG.format(column="country", file="reviews.csv", count=1, row=3)
    )
    assert _message(DataError, load(text_column="review", label="gender")) == (
        text_module.MISSING_TEXT_LABELS_MSG.format(
            label="gender", file="reviews.csv", count=1, row=5
        )
    )


@pytest.mark.parametrize(
    ("text", "template", "fields"),
    [
        ("", csv_module.EMPTY_FILE_MSG, {}),
        ("text,label\n", csv_module.NO_ROWS_MSG, {}),
        ("text,label\na,x\nb,x\n", csv_module.SINGLE_CLASS_MSG, {"label": "label", "value": "'x'"}),
        (
            "text,label\na,x\n   ,y\n,x\n",
            text_module.EMPTY_TEXTS_MSG,
            {"column": "text", "count": 2, "row": 3},
        ),
        (
            "text,label\na,x\nb, \nc,y\n",
            text_module.MISSING_TEXT_LABELS_MSG,
            {"label": "label", "count": 1, "row": 3},
        ),
        ("text,label,text\na,x,b\n", csv_module.DUPLICATE_COLUMNS_MSG, {"columns": "text"}),
    ],
)
def test_user_text_csv_file_errors(
    tmp_path: Path, text: str, template: str, fields: dict[str, Any]
) -> None:
    path = _write(tmp_path, text, name="t.csv")
    message = _message(DataError, lambda: load_text_csv(path, text_column="text", label="label"))
    assert message == template.format(file="t.csv", **fields)


def test_user_text_csv_malformed(tmp_path: Path) -> None:
    path = _write(tmp_path, "text,label\na,x\nb,y,z,w\n", name="t.csv")
    message = _message(DataError, lambda: load_text_csv(path, text_column="text", label="label"))
    assert message.startswith("t.csv is not a well-formed CSV file (")
