"""Raw inputs and input specs: validation per modality, sampling, the published form, and the
query API taking what the model takes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from multisteal.data import inputs as msg
from multisteal.data.inputs import (
    ColumnSpec,
    ImageSpec,
    TabularSpec,
    TextSpec,
    concat_inputs,
    inputs_digest,
    spec_from_dict,
    take_inputs,
)
from multisteal.errors import InvalidInputError
from multisteal.models.pipeline import ImageEncoder, InputPipeline, soft_target_rows
from multisteal.models.zoo import make_pipeline
from multisteal.query import LocalQueryAPI

SPEC = TabularSpec(
    (
        ColumnSpec("age", "numerical", low=17, high=90, integer=True),
        ColumnSpec("sex", "categorical", ("Female", "Male")),
        ColumnSpec("hours", "numerical", low=1, high=99),
    )
)


def _records(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {"age": [20, 30, 40, 50][:n], "sex": ["Male", "Female"] * (n // 2), "hours": [40.0] * n}
    )


def _message(spec: object, inputs: object) -> str:
    with pytest.raises(InvalidInputError) as info:
        spec.validate(inputs)  # type: ignore[attr-defined]
    return str(info.value)


def test_records_are_returned_in_the_spec_order() -> None:
    frame = _records()[["hours", "sex", "age"]]
    out = SPEC.validate(frame)
    assert list(out.columns) == ["age", "sex", "hours"]
    assert out["age"].dtype == np.float64
    # a list of {column: value} objects is records too
    out2 = SPEC.validate([{"age": 20, "sex": "Male", "hours": 3}])
    assert out2.iloc[0].tolist() == [20.0, "Male", 3.0]


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        (
            _records().assign(colour="red"),
            msg.UNKNOWN_COLUMNS.format(unknown="'colour'", columns="age, sex, hours"),
        ),
        (
            _records().drop(columns="sex"),
            msg.MISSING_COLUMNS.format(missing="'sex'", columns="age, sex, hours"),
        ),
        (
            _records().assign(age=["20", 30, 40, 50]),
            msg.NOT_NUMERIC.format(column="age", row=0, value="20", type="str"),
        ),
        (
            _records().assign(hours=[40.0, np.inf, 1.0, 2.0]),
            msg.NOT_FINITE_VALUE.format(column="hours", row=1, value=np.inf),
        ),
        (
            _records().assign(age=[20, 30, 400, 50]),
            msg.OUT_OF_RANGE.format(column="age", row=2, value=400.0, low=17.0, high=90.0),
        ),
        (
            _records().assign(sex=["Male", "Female", "Other", "Male"]),
            msg.UNKNOWN_CATEGORY.format(
                column="sex", row=2, value="Other", count=2, shown="Female, Male"
            ),
        ),
        (
            np.zeros((3, 3)),
            msg.NOT_RECORDS.format(
                columns="age, sex, hours", got="an array of shape (3, 3) and dtype float64"
            ),
        ),
        (_records().iloc[:0], msg.EMPTY_BATCH),
    ],
)
def test_tabular_validation_names_the_problem(inputs: object, expected: str) -> None:
    assert _message(SPEC, inputs) == expected


GREY = ImageSpec(28, 28)
RGB = ImageSpec(20, 24, 3, 0.0, 1.0)


@pytest.mark.parametrize(
    ("spec", "inputs", "expected"),
    [
        (
            GREY,
            np.zeros((2, 28, 27)),
            msg.BAD_IMAGE_SHAPE.format(expected="(n, 28, 28)", shape=(2, 28, 27)),
        ),
        (
            GREY,
            np.zeros((2, 28, 28, 1)),
            msg.BAD_IMAGE_SHAPE.format(expected="(n, 28, 28)", shape=(2, 28, 28, 1)),
        ),
        (
            RGB,
            np.zeros((2, 20, 24)),
            msg.BAD_IMAGE_SHAPE.format(expected="(n, 20, 24, 3)", shape=(2, 20, 24)),
        ),
        (GREY, np.full((1, 28, 28), "a"), msg.NOT_NUMERIC_IMAGES.format(dtype="<U1")),
        (
            GREY,
            _records(),
            msg.NOT_IMAGES.format(
                expected="(n, 28, 28)", got="a table of records with columns age, sex, hours"
            ),
        ),
        (
            RGB,
            np.where(np.arange(2)[:, None, None, None] == 1, np.nan, np.zeros((2, 20, 24, 3))),
            msg.NOT_FINITE_IMAGES.format(index=1),
        ),
        (
            GREY,
            np.full((3, 28, 28), 300.0),
            msg.IMAGE_OUT_OF_RANGE.format(low=0.0, high=255.0, index=0, value=300.0),
        ),
        (GREY, np.zeros((0, 28, 28)), msg.EMPTY_BATCH),
        (
            GREY,
            [[[0] * 28] * 28, [[0] * 27] * 28],
            msg.NOT_IMAGES.format(expected="(n, 28, 28)", got="nested lists of unequal lengths"),
        ),
    ],
)
def test_image_validation_names_the_problem(spec: ImageSpec, inputs: object, expected: str) -> None:
    assert _message(spec, inputs) == expected


def test_images_as_nested_lists_are_accepted() -> None:
    images = GREY.validate(np.zeros((2, 28, 28), dtype=np.uint8).tolist())
    assert images.shape == (2, 28, 28)


@pytest.mark.parametrize(
    ("inputs", "expected"),
    [
        ("a single sentence", msg.SINGLE_STRING),
        (["fine", 3], msg.NOT_A_STRING.format(index=1, value=3, type="int")),
        (["fine", "  "], msg.EMPTY_TEXT.format(index=1)),
        ([], msg.EMPTY_BATCH),
        (_records(), msg.NOT_TEXTS.format(got="a table of records with columns age, sex, hours")),
        (
            np.array([["a", "b"]]),
            msg.NOT_TEXTS.format(got="an array of shape (1, 2) and dtype <U1"),
        ),
    ],
)
def test_text_validation_names_the_problem(inputs: object, expected: str) -> None:
    assert _message(TextSpec(), inputs) == expected


def test_text_length_limit_and_canonical_form() -> None:
    assert _message(TextSpec(max_chars=5), ["short", "too long"]) == msg.TOO_LONG.format(
        index=1, length=8, limit=5
    )
    out = TextSpec().validate(("a", "b"))
    assert out.dtype == object
    assert out.tolist() == ["a", "b"]


def test_specs_round_trip_through_their_published_form() -> None:
    for spec in (SPEC, GREY, RGB, TextSpec(max_chars=200)):
        assert spec_from_dict(spec.to_dict()) == spec


def test_sampling_stays_in_the_domain(rng: np.random.Generator) -> None:
    records = SPEC.sample(500, rng)
    SPEC.validate(records)  # every draw is accepted
    assert set(records["sex"]) == {"Female", "Male"}
    assert np.all(records["age"] == np.round(records["age"]))  # integer column
    images = RGB.sample(5, rng)
    assert RGB.validate(images).shape == (5, 20, 24, 3)
    with pytest.raises(InvalidInputError) as info:
        TextSpec().sample(3, rng)
    assert str(info.value) == msg.CANNOT_SAMPLE_TEXT


def test_take_concat_and_digest_work_on_every_modality() -> None:
    records, images = _records(), np.arange(4 * 2 * 2).reshape(4, 2, 2)
    texts = np.array(["a", "bb", "ccc", "d"], dtype=object)
    for inputs in (records, images, texts):
        first, rest = take_inputs(inputs, [0, 1]), take_inputs(inputs, [2, 3])
        again = concat_inputs([first, rest])
        assert inputs_digest(again) == inputs_digest(inputs)
        assert inputs_digest(first) != inputs_digest(rest)
    # texts: the boundary between strings counts ("ab","c" is not "a","bc")
    assert inputs_digest(np.array(["ab", "c"], dtype=object)) != inputs_digest(
        np.array(["a", "bc"], dtype=object)
    )


def test_image_encoder_standardises_channels_first() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(50, 6, 5, 3)).astype(np.uint8)
    encoded = ImageEncoder().fit(images).transform(images)
    assert encoded.shape == (50, 3, 6, 5)
    assert encoded.dtype == np.float32
    np.testing.assert_allclose(encoded.mean(axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(encoded.std(axis=(0, 2, 3)), 1.0, atol=1e-4)
    # pixel (i, j) of channel c moves to [c, i, j]
    raw = images[7, 2, 4, 1]
    enc = ImageEncoder().fit(images)
    expected = (raw - enc.mean_[1]) / enc.scale_[1]
    assert encoded[7, 1, 2, 4] == pytest.approx(expected, rel=1e-5)


def test_soft_targets_become_a_weighted_hard_problem() -> None:
    X = np.array([[1.0], [2.0]])
    soft = np.array([[0.25, 0.75], [1.0, 0.0]])
    rows, labels, weights = soft_target_rows(X, soft)
    assert rows.tolist() == [[1.0], [1.0], [2.0]]
    assert labels.tolist() == [0, 1, 0]
    assert weights.tolist() == [0.25, 0.75, 1.0]


def test_a_pipeline_missing_a_class_still_answers_every_class(rng: np.random.Generator) -> None:
    texts = np.array(["good film", "bad film", "great", "awful"] * 5, dtype=object)
    y = np.array([2, 0, 2, 0] * 5)  # class 1 never seen
    model = make_pipeline("tfidf-logistic", TextSpec(), n_classes=3).fit(texts, y)
    P = model.predict_proba(np.array(["good", "bad"], dtype=object))
    assert P.shape == (2, 3)
    np.testing.assert_array_equal(P[:, 1], 0.0)
    assert P[0, 2] > P[0, 0]
    assert P[1, 0] > P[1, 2]


def test_the_query_api_validates_raw_inputs_and_logs_them(rng: np.random.Generator) -> None:
    records = SPEC.sample(200, rng)
    y = (records["hours"] > 50).astype(int).to_numpy()
    model = make_pipeline("logistic", SPEC).fit(records, y)
    assert isinstance(model, InputPipeline)
    api = LocalQueryAPI(model, budget=10, input_spec=SPEC)
    answer = api.query(records.iloc[:4])
    np.testing.assert_allclose(answer.scores, model.predict_proba(records.iloc[:4]))
    assert api.log.records[0].sha256 == inputs_digest(SPEC.validate(records.iloc[:4]))
    with pytest.raises(InvalidInputError, match="Unknown column"):
        api.query(records.iloc[:2].assign(extra=1))
    assert api.ledger.used == 4  # a refused batch costs nothing


def test_saved_raw_input_models_score_raw_inputs(tmp_path, rng: np.random.Generator) -> None:
    from multisteal.models import load_model, save_model

    records = SPEC.sample(120, rng)
    y_rec = (records["hours"] > 50).astype(int).to_numpy()
    images = rng.integers(0, 256, size=(60, 8, 8)).astype(np.uint8)
    y_img = (images[:, :, :4].mean(axis=(1, 2)) > images[:, :, 4:].mean(axis=(1, 2))).astype(int)
    texts = np.array(["a good film", "a bad film", "great fun", "dull and bad"] * 10, dtype=object)
    y_txt = np.array([1, 0, 1, 0] * 10)
    cases = [
        ("mlp", SPEC, records, y_rec),
        ("gboost", SPEC, records, y_rec),
        ("cnn", ImageSpec(8, 8), images, y_img),
        ("tfidf-logistic", TextSpec(), texts, y_txt),
    ]
    for k, (family, spec, X, y) in enumerate(cases):
        model = make_pipeline(
            family, spec, random_state=0, **({"epochs": 2} if family == "cnn" else {})
        )
        model.fit(X, y)
        loaded = load_model(save_model(model, tmp_path / f"m{k}"))
        assert isinstance(loaded, InputPipeline), family
        np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_record_edge_cases_are_named_plainly() -> None:
    whole = _records().assign(age=[20, 30.5, 40, 50])
    assert _message(SPEC, whole) == msg.NOT_WHOLE.format(column="age", row=1, value=30.5)
    twice = pd.concat([_records(), _records()[["age"]]], axis=1)
    assert _message(SPEC, twice) == msg.DUPLICATE_INPUT_COLUMNS.format(columns="'age'")
    numbers = TabularSpec((ColumnSpec("code", "categorical", ("1", "2")),))
    text = _message(numbers, pd.DataFrame({"code": np.array([1.5])}))
    assert "holds 1.5," in text  # not np.float64(1.5)


def test_a_loaded_target_checks_raw_inputs_against_its_published_spec(tmp_path) -> None:
    from multisteal.models import load_model, save_model

    texts = np.array(["a good film", "a bad film"] * 5, dtype=object)
    model = make_pipeline("tfidf-logistic", TextSpec()).fit(texts, np.array([1, 0] * 5))
    folder = save_model(model, tmp_path / "t", metadata={"input_spec": TextSpec().to_dict()})
    loaded = load_model(folder)
    with pytest.raises(InvalidInputError) as info:
        loaded.predict_proba("one sentence")
    assert str(info.value) == msg.SINGLE_STRING
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts))
