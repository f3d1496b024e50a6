"""The three tabular benchmarks: contents checked against their PROVENANCE.md."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multisteal.data import (
    DATA_ENV,
    DATASETS,
    TabularDataset,
    available_datasets,
    load_dataset,
)
from multisteal.data._files import BUNDLED_DIR
from multisteal.data.registry import UNKNOWN_DATASET_MSG
from multisteal.errors import DataError

from .conftest import shared_datasets_dir


def _counts(values: pd.Series | np.ndarray) -> dict[str, int]:
    uniques, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
    return {str(u): int(c) for u, c in zip(uniques, counts, strict=True)}


def _check_common(ds: TabularDataset) -> None:
    n = len(ds)
    assert ds.y.dtype == np.int64
    assert ds.y.shape == (n,)
    assert ds.n_classes == 2
    assert set(np.unique(ds.y)) == {0, 1}
    assert len(ds.sensitive) == n
    assert isinstance(ds.features.index, pd.RangeIndex)
    assert list(ds.features.columns) == [
        c for c in ds.features.columns if c in ds.categorical or c in ds.numerical
    ]
    assert set(ds.categorical) | set(ds.numerical) == set(ds.features.columns)
    for column in ds.numerical:
        assert ds.features[column].dtype == np.float64
        assert not ds.features[column].isna().any()
    for column in ds.categorical:
        assert pd.api.types.is_string_dtype(ds.features[column])
        assert not ds.features[column].isna().any()
    for column in ds.sensitive.columns:
        assert pd.api.types.is_string_dtype(ds.sensitive[column])
    assert ds.source


def test_adult(adult: TabularDataset) -> None:
    _check_common(adult)
    assert len(adult) == 32_561 + 16_281 == 48_842
    assert adult.class_names == ("<=50K", ">50K")
    assert adult.positive_class == 1
    assert _counts(adult.y) == {"0": 24_720 + 12_435, "1": 7_841 + 3_846}
    assert list(adult.sensitive.columns) == ["sex", "race"]
    assert _counts(adult.sensitive["sex"]) == {"Female": 16_192, "Male": 32_650}
    assert _counts(adult.sensitive["race"]) == {
        "White": 27_816 + 13_946,
        "Black": 3_124 + 1_561,
        "Asian-Pac-Islander": 1_039 + 480,
        "Amer-Indian-Eskimo": 311 + 159,
        "Other": 271 + 135,
    }
    # Sensitive attributes stay in the features.
    assert (adult.features["sex"] == adult.sensitive["sex"]).all()
    assert "fnlwgt" not in adult.features
    assert "income" not in adult.features
    # '?' is its own category: 2,399 + 1,221 records have one.
    unknown = adult.features[["workclass", "occupation", "native_country"]] == "missing"
    assert int(unknown.any(axis=1).sum()) == 2_399 + 1_221
    assert not (adult.features[list(adult.categorical)] == "?").any().any()
    assert len(adult.numerical) == 5


def test_compas(compas: TabularDataset) -> None:
    _check_common(compas)
    assert len(compas) == 7_214
    assert compas.class_names == ("no_recid", "recid")
    assert compas.positive_class == 0  # favourable outcome: no recidivism
    assert _counts(compas.y) == {"0": 3_963, "1": 3_251}
    assert list(compas.sensitive.columns) == ["race", "sex"]
    assert _counts(compas.sensitive["race"]) == {
        "African-American": 3_696,
        "Caucasian": 2_454,
        "Hispanic": 637,
        "Other": 377,
        "Asian": 32,
        "Native American": 18,
    }
    assert _counts(compas.sensitive["sex"]) == {"Male": 5_819, "Female": 1_395}
    assert list(compas.features.columns) == [
        "sex",
        "age",
        "race",
        "juv_fel_count",
        "juv_misd_count",
        "juv_other_count",
        "priors_count",
        "c_charge_degree",
    ]
    forbidden = {"decile_score", "score_text", "v_decile_score", "is_recid", "two_year_recid"}
    assert not forbidden & set(compas.features.columns)
    assert _counts(compas.features["c_charge_degree"]) == {"F": 4_666, "M": 2_548}


def test_german_credit(german: TabularDataset) -> None:
    _check_common(german)
    assert len(german) == 1_000
    assert german.class_names == ("bad", "good")
    assert german.positive_class == 1
    assert _counts(german.y) == {"0": 300, "1": 700}
    assert list(german.sensitive.columns) == ["sex", "age_group"]
    assert _counts(german.sensitive["sex"]) == {"female": 310, "male": 690}
    age = german.features["age"].to_numpy()
    assert _counts(german.sensitive["age_group"]) == {
        "age>=25": int((age >= 25).sum()),
        "age<25": int((age < 25).sum()),
    }
    assert int((age > 25).sum()) == 810  # the binarisation quoted in PROVENANCE.md
    assert len(german.numerical) == 7
    assert len(german.categorical) == 13
    assert _counts(german.features["personal_status_sex"]) == {
        "male: divorced/separated": 50,
        "female: divorced/separated/married": 310,
        "male: single": 548,
        "male: married/widowed": 92,
    }
    assert _counts(german.features["foreign_worker"]) == {"yes": 963, "no": 37}
    # every A-code is decoded
    codes = german.features[list(german.categorical)].apply(lambda s: s.str.fullmatch(r"A\d+"))
    assert not codes.any().any()


@pytest.mark.parametrize("name", ["adult", "compas", "german_credit"])
def test_from_multisteal_data_env(
    name: str,
    monkeypatch: pytest.MonkeyPatch,
    adult: TabularDataset,
    compas: TabularDataset,
    german: TabularDataset,
) -> None:
    shared = shared_datasets_dir()
    if shared is None:
        pytest.skip("the shared offline dataset folder is absent")
    monkeypatch.setenv(DATA_ENV, str(shared))
    ds = load_dataset(name, download=False)
    bundled = {"adult": adult, "compas": compas, "german_credit": german}[name]
    for path in ds.source.split(", "):
        assert Path(path).parent == shared / name
    assert all(str(BUNDLED_DIR) in p for p in bundled.source.split(", "))
    pd.testing.assert_frame_equal(ds.features, bundled.features)
    pd.testing.assert_frame_equal(ds.sensitive, bundled.sensitive)
    np.testing.assert_array_equal(ds.y, bundled.y)


def test_unknown_dataset_message() -> None:
    with pytest.raises(DataError) as info:
        load_dataset("foo")
    assert str(info.value) == (
        "Unknown dataset 'foo'. Available datasets: adult, breastmnist, compas, eec, "
        "german_credit, pneumoniamnist, rotten_tomatoes, sst2."
    )
    assert str(info.value) == UNKNOWN_DATASET_MSG.format(
        name="foo", available=", ".join(available_datasets())
    )


def test_registry_entries() -> None:
    assert available_datasets() == (
        "adult",
        "breastmnist",
        "compas",
        "eec",
        "german_credit",
        "pneumoniamnist",
        "rotten_tomatoes",
        "sst2",
    )
    readme = (BUNDLED_DIR / "README.md").read_text(encoding="utf-8")
    # The image and text entries are checked in test_data_images_text.py.
    for name, spec in ((n, s) for n, s in DATASETS.items() if s.modality == "tabular"):
        assert spec.name == name
        assert spec.license
        assert spec.citation
        assert spec.homepage.startswith("https://")
        for file in spec.files:
            assert file.url is not None
            assert file.url.startswith("https://")
            assert file.url.endswith(file.name)
            assert file.sha256 in readme
            assert file.bundled is not None
            bundled = BUNDLED_DIR / file.bundled
            raw = bundled.read_bytes()
            # gzip -n: no file name and a zero timestamp, so the copies are reproducible
            assert raw[:2] == b"\x1f\x8b"
            assert raw[3] & 0x08 == 0
            assert raw[4:8] == b"\x00\x00\x00\x00"
            assert hashlib.sha256(gzip.decompress(raw)).hexdigest() == file.sha256


def test_bundled_copies_are_small() -> None:
    # Every bundled copy together (tabular, MedMNIST, SST-2, Rotten Tomatoes, EEC): under 9 MB.
    total = sum(p.stat().st_size for p in BUNDLED_DIR.iterdir() if p.name != "README.md")
    assert total < 9_000_000


def test_subset_and_len(german: TabularDataset) -> None:
    part = german.subset(np.array([3, 1, 999]))
    assert len(part) == 3
    assert part.n_classes == 2
    assert list(part.y) == [german.y[3], german.y[1], german.y[999]]
    assert part.features.iloc[2].equals(german.features.iloc[999])
    assert part.sensitive.iloc[0].equals(german.sensitive.iloc[3])
    assert isinstance(part.features.index, pd.RangeIndex)
    assert len(german.subset([])) == 0
