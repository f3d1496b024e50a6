"""load_csv for a user's own data, and TabularDataset's own checks."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multisteal.data import TabularDataset, load_csv, registry, splits
from multisteal.errors import DataError, DatasetNotFoundError, InvalidInputError

CSV = """\
age,gender,city,member,score,approved
25,F,Paris,True,1.5,yes
40,M,,False,2.5,no
33,F,Rome,True,,yes
51,M,Paris,False,0.5,no
"""


def _write(tmp_path: Path, text: str, name: str = "data.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_happy_path(tmp_path: Path) -> None:
    path = _write(tmp_path, CSV)
    ds = load_csv(path, label="approved", sensitive="gender")
    assert ds.name == "data"
    assert ds.source == str(path)
    assert len(ds) == 4
    assert ds.class_names == ("no", "yes")
    assert ds.positive_class == 1
    np.testing.assert_array_equal(ds.y, [1, 0, 1, 0])
    assert ds.y.dtype == np.int64
    assert list(ds.features.columns) == ["age", "gender", "city", "member", "score"]
    assert ds.categorical == ("gender", "city", "member")
    assert ds.numerical == ("age", "score")
    assert ds.features["city"].tolist() == ["Paris", "missing", "Rome", "Paris"]
    assert ds.features["member"].tolist() == ["True", "False", "True", "False"]
    assert ds.features["age"].dtype == np.float64
    assert np.isnan(ds.features["score"].iloc[2])  # kept; the preprocessor rejects it
    assert ds.sensitive["gender"].tolist() == ["F", "M", "F", "M"]
    assert "gender" in ds.features  # sensitive attributes stay features


def test_positive_label_becomes_class_one(tmp_path: Path) -> None:
    path = _write(tmp_path, CSV)
    ds = load_csv(
        path,
        label="approved",
        sensitive=["gender", "city"],
        name="mine",
        positive_label="no",
        categorical=["gender", "city", "member", "age"],
    )
    assert ds.name == "mine"
    assert ds.class_names == ("yes", "no")
    assert ds.positive_class == 1
    np.testing.assert_array_equal(ds.y, [0, 1, 0, 1])
    assert ds.categorical == ("age", "gender", "city", "member")
    assert ds.features["age"].tolist() == ["25", "40", "33", "51"]
    assert ds.sensitive["city"].tolist() == ["Paris", "missing", "Rome", "Paris"]


def test_multiclass_numeric_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "x,g,y\n1,a,2\n2,b,0\n3,a,1\n4,b,2\n")
    ds = load_csv(path, label="y", sensitive="g")
    assert ds.class_names == ("0", "1", "2")
    np.testing.assert_array_equal(ds.y, [2, 0, 1, 2])
    assert ds.positive_class == 2
    assert load_csv(path, label="y", sensitive="g", positive_label=1).positive_class == 1


def test_label_not_found(tmp_path: Path) -> None:
    path = _write(tmp_path, "a,b,c\n1,2,3\n")
    with pytest.raises(DataError) as info:
        load_csv(path, label="income", sensitive="a")
    assert str(info.value) == (
        "Label column 'income' not found in data.csv. Available columns: a, b, c."
    )


def test_sensitive_not_found(tmp_path: Path) -> None:
    path = _write(tmp_path, CSV)
    with pytest.raises(DataError) as info:
        load_csv(path, label="approved", sensitive=["gender", "sex"])
    assert str(info.value) == (
        "Sensitive column 'sex' not found in data.csv. Available columns: "
        "age, gender, city, member, score, approved."
    )
    with pytest.raises(DataError) as info:
        load_csv(path, label="approved", sensitive="approved")
    assert str(info.value) == (
        "Column 'approved' of data.csv cannot be both the label and a sensitive attribute."
    )


def test_empty_file_and_header_only(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_csv(_write(tmp_path, ""), label="y", sensitive="g")
    assert str(info.value) == "data.csv is empty."
    with pytest.raises(DataError) as info:
        load_csv(_write(tmp_path, "x,g,y\n", "head.csv"), label="y", sensitive="g")
    assert str(info.value) == "head.csv has a header but no data rows."


def test_single_class(tmp_path: Path) -> None:
    path = _write(tmp_path, "x,g,y\n1,a,ok\n2,b,ok\n")
    with pytest.raises(DataError) as info:
        load_csv(path, label="y", sensitive="g")
    assert str(info.value) == (
        "Label column 'y' in data.csv has a single class ('ok'); at least two classes are needed."
    )


def test_missing_labels(tmp_path: Path) -> None:
    path = _write(tmp_path, "x,g,y\n1,a,1\n2,b,\n3,a,0\n4,b,\n")
    with pytest.raises(DataError) as info:
        load_csv(path, label="y", sensitive="g")
    assert str(info.value) == (
        "Label column 'y' in data.csv has 2 missing value(s); drop or fill those rows first."
    )


def test_other_errors(tmp_path: Path) -> None:
    path = _write(tmp_path, CSV)
    with pytest.raises(DataError) as info:
        load_csv(path, label="approved", sensitive="gender", positive_label="maybe")
    assert str(info.value) == (
        "positive_label 'maybe' is not a value of label column 'approved' in data.csv. "
        "Values: no, yes."
    )
    # Naming some columns categorical leaves the kind of the others to be inferred.
    named = load_csv(path, label="approved", sensitive="gender", categorical=["gender"])
    assert "city" in named.categorical
    assert "gender" in named.categorical
    with pytest.raises(DataError, match=r"Categorical column 'zip' not found in data\.csv"):
        load_csv(path, label="approved", sensitive="gender", categorical=["zip"])
    with pytest.raises(DatasetNotFoundError, match=r"^CSV file .*nope\.csv does not exist\.$"):
        load_csv(tmp_path / "nope.csv", label="approved", sensitive="gender")
    with pytest.raises(DataError, match="has no feature columns besides the label 'y'"):
        load_csv(_write(tmp_path, "y\n0\n1\n", "only.csv"), label="y", sensitive=[])


def _tiny(**changes: object) -> TabularDataset:
    fields: dict[str, object] = {
        "name": "tiny",
        "features": pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]}),
        "y": np.array([0, 1], dtype=np.int64),
        "sensitive": pd.DataFrame({"a": ["x", "y"]}),
        "class_names": ("neg", "pos"),
        "categorical": ("a",),
        "numerical": ("b",),
        "source": "memory",
        "positive_class": 1,
    }
    fields.update(changes)
    return TabularDataset(**fields)  # type: ignore[arg-type]


def test_dataset_validation() -> None:
    assert len(_tiny()) == 2
    with pytest.raises(DataError, match=r"y must be a 1-D int64 array with values in 0\.\.1"):
        _tiny(y=np.array([0, 2]))
    with pytest.raises(DataError, match="y must be a 1-D int64 array"):
        _tiny(y=np.array([0.0, 1.0]))
    with pytest.raises(DataError, match="features have 2 rows but sensitive has 1 rows"):
        _tiny(sensitive=pd.DataFrame({"a": ["x"]}))
    with pytest.raises(DataError, match=r"categorical \+ numerical columns must list"):
        _tiny(numerical=())
    with pytest.raises(DataError, match=r"positive_class must be a class index in 0\.\.1; got 2"):
        _tiny(positive_class=2)
    with pytest.raises(InvalidInputError, match="subset indices must be a 1-D array"):
        _tiny().subset(np.array([0, 2]))
    with pytest.raises(InvalidInputError, match="subset indices must be a 1-D array"):
        _tiny().subset(np.array([0.0]))


@pytest.mark.parametrize("module", [registry, splits])
def test_doctests(module: object) -> None:
    result = doctest.testmod(module, raise_on_error=False)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
