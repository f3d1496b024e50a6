"""TabularPreprocessor: one-hot + standard scaling, fitted on target-train rows only."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from multisteal.data import TabularDataset, TabularPreprocessor, split_dataset
from multisteal.errors import InvalidInputError, NotFittedError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "color": ["red", "blue", "red", "green", None],
            "size": [1.0, 2.0, 3.0, 4.0, 10.0],
            "flag": [True, False, True, True, False],
            "count": [5, 5, 5, 7, 9],
        }
    )


def _check_groups(pre: TabularPreprocessor) -> None:
    covered = np.concatenate([idx for _, idx in pre.feature_groups_])
    np.testing.assert_array_equal(np.sort(covered), np.arange(pre.n_features_out_))
    assert len(covered) == pre.n_features_out_
    assert [name for name, _ in pre.feature_groups_] == list(pre.feature_names_in_)
    for name, idx in pre.feature_groups_:
        assert idx.dtype == np.int64
        if name in pre.categorical_:
            assert len(idx) == len(pre.categories_[name])
            assert [pre.feature_names_out_[i] for i in idx] == [
                f"{name}={c}" for c in pre.categories_[name]
            ]
        else:
            assert len(idx) == 1
            assert pre.feature_names_out_[idx[0]] == name


def test_fit_transform_small_frame() -> None:
    X = _frame()
    pre = TabularPreprocessor().fit(X)
    assert pre.categorical_ == ("color", "flag")
    assert pre.numerical_ == ("size", "count")
    assert pre.categories_ == {
        "color": ("blue", "green", "missing", "red"),
        "flag": ("False", "True"),
    }
    assert pre.feature_names_out_ == (
        "color=blue",
        "color=green",
        "color=missing",
        "color=red",
        "size",
        "flag=False",
        "flag=True",
        "count",
    )
    out = pre.transform(X)
    assert out.dtype == np.float32
    assert out.shape == (5, 8)
    np.testing.assert_array_equal(
        out[:, :4], [[0, 0, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0], [0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(pre.get_feature_names_out(), np.array(pre.feature_names_out_))
    _check_groups(pre)
    np.testing.assert_array_equal(pre.fit_transform(X), out)


def test_fitted_on_train_only(german: TabularDataset) -> None:
    features = german.features
    s = split_dataset(german.y, sizes=(0.5, 0.3, 0.2), seed=0)
    train = features.iloc[s.target_train].reset_index(drop=True)
    other = features.iloc[s.evaluation].reset_index(drop=True).copy()
    other.loc[0, "purpose"] = "a purpose seen only outside train"

    pre = TabularPreprocessor().fit(train)
    out = pre.transform(other)
    purpose = dict(pre.feature_groups_)["purpose"]
    assert "a purpose seen only outside train" not in pre.categories_["purpose"]
    np.testing.assert_array_equal(out[0, purpose], 0.0)
    np.testing.assert_array_equal(out[1:, purpose].sum(axis=1), 1.0)

    # scaling statistics are the train mean and population std, computed by hand
    for j, column in enumerate(pre.numerical_):
        values = train[column].to_numpy()
        assert pre.mean_[j] == pytest.approx(values.mean())
        assert pre.scale_[j] == pytest.approx(values.std())
        (idx,) = dict(pre.feature_groups_)[column]
        expected = (other[column].to_numpy() - values.mean()) / values.std()
        np.testing.assert_allclose(out[:, idx], expected, rtol=1e-5, atol=1e-5)
    train_out = pre.transform(train)
    num_idx = [int(dict(pre.feature_groups_)[c][0]) for c in pre.numerical_]
    np.testing.assert_allclose(train_out[:, num_idx].mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(train_out[:, num_idx].std(axis=0), 1.0, atol=1e-5)
    _check_groups(pre)


@pytest.mark.parametrize(("fixture", "n_out"), [("adult", 91), ("compas", 15), ("german", 61)])
def test_output_width_on_full_datasets(
    fixture: str, n_out: int, request: pytest.FixtureRequest
) -> None:
    ds: TabularDataset = request.getfixturevalue(fixture)
    pre = TabularPreprocessor(categorical=ds.categorical, numerical=ds.numerical).fit(ds.features)
    assert pre.n_features_out_ == n_out
    assert pre.feature_names_in_ == tuple(ds.features.columns)
    _check_groups(pre)
    # default inference finds the same kinds of columns
    assert TabularPreprocessor().fit(ds.features).feature_names_out_ == pre.feature_names_out_


def test_constant_column_gets_unit_scale() -> None:
    pre = TabularPreprocessor().fit(pd.DataFrame({"x": [2.0, 2.0, 2.0]}))
    assert pre.scale_.tolist() == [1.0]
    np.testing.assert_array_equal(pre.transform(pd.DataFrame({"x": [3.0]})), [[1.0]])


def test_explicit_columns_and_ignored_extras() -> None:
    X = _frame()
    pre = TabularPreprocessor(categorical=["count"], numerical=["size"]).fit(X)
    assert pre.feature_names_in_ == ("size", "count")
    assert pre.feature_names_out_ == ("size", "count=5", "count=7", "count=9")
    out = pre.transform(X.assign(extra=1))
    assert out.shape == (5, 4)


def test_missing_numerical_is_an_error() -> None:
    X = _frame()
    X.loc[[1, 3], "size"] = np.nan
    with pytest.raises(InvalidInputError) as info:
        TabularPreprocessor().fit(X)
    assert str(info.value) == (
        "Numerical column 'size' has 2 missing value(s); impute or drop them before preprocessing."
    )
    pre = TabularPreprocessor().fit(_frame())
    with pytest.raises(InvalidInputError, match="Numerical column 'size' has 2 missing"):
        pre.transform(X)


def test_not_numeric_overlap_and_missing_column() -> None:
    X = _frame()
    with pytest.raises(InvalidInputError) as info:
        TabularPreprocessor(categorical=["flag"]).fit(X)
    assert str(info.value) == (
        "Numerical column 'color' has non-numeric values; list it in `categorical` instead."
    )
    with pytest.raises(InvalidInputError) as info:
        TabularPreprocessor(categorical=["size"], numerical=["size"]).fit(X)
    assert str(info.value) == "Columns listed as both categorical and numerical: size."
    pre = TabularPreprocessor().fit(X)
    with pytest.raises(InvalidInputError) as info:
        pre.transform(X.drop(columns="flag"))
    assert str(info.value) == (
        "Column 'flag' not found in the data. Available columns: color, size, count."
    )
    with pytest.raises(InvalidInputError, match="expects a pandas DataFrame; got ndarray"):
        pre.transform(X.to_numpy())  # type: ignore[arg-type]


def test_not_fitted_and_estimator_contract() -> None:
    pre = TabularPreprocessor(categorical=["color", "flag"])
    assert not any(k.endswith("_") for k in vars(pre))
    with pytest.raises(NotFittedError) as info:
        pre.transform(_frame())
    assert str(info.value) == (
        "This TabularPreprocessor is not fitted yet; call fit(features) first."
    )
    assert pre.get_params() == {
        "categorical": ["color", "flag"],
        "numerical": None,
        "max_categories": None,
    }
    copy = clone(pre)
    assert copy.get_params() == pre.get_params()
    assert copy.fit(_frame()) is copy
    with pytest.raises(InvalidInputError, match=r"cannot be fitted on 0 rows"):
        TabularPreprocessor().fit(_frame().iloc[:0])


def test_non_string_column_names() -> None:
    X = pd.DataFrame({0: ["a", "b"], 1: [1.0, 3.0]})
    pre = TabularPreprocessor().fit(X)
    assert pre.feature_names_out_ == ("0=a", "0=b", "1")
    np.testing.assert_array_equal(pre.transform(X), [[1, 0, -1], [0, 1, 1]])


def test_transform_empty_frame() -> None:
    pre = TabularPreprocessor().fit(_frame())
    assert pre.transform(_frame().iloc[:0]).shape == (0, pre.n_features_out_)


def test_max_categories_keeps_the_most_frequent_and_groups_the_rest() -> None:
    import pandas as pd

    from multisteal.data import TabularPreprocessor

    values = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 3 + [f"rare{i}" for i in range(10)]
    frame = pd.DataFrame({"text": values, "x": range(len(values))})
    pre = TabularPreprocessor(categorical=["text"], numerical=["x"], max_categories=4)
    out = pre.fit_transform(frame)
    # a, b and the tie c/d broken by name (c); everything else is "(other)".
    assert pre.categories_["text"] == ("(other)", "a", "b", "c")
    assert pre.capped_ == {"text": 14}
    assert out.shape == (len(values), 1 + 4)
    other = pre.feature_names_out_.index("text=(other)")
    assert out[:, other].sum() == 3 + 10  # the d rows and the rare ones
    unseen = pre.transform(pd.DataFrame({"text": ["zzz"], "x": [0]}))
    assert unseen[0, other] == 1.0  # a value never seen also falls in "(other)"
    assert TabularPreprocessor(categorical=["text"], numerical=["x"]).fit(frame).capped_ == {}
