"""The prediction service fuzzed from its own OpenAPI schema with schemathesis, in process (ASGI).

Every operation is called with requests generated from the published schema (and, for
``POST /v1/predict``, with requests that break it), once with a valid key (a large budget, no
rate limit) and once without one: no request may end in a server error (5xx). A third run
starts from real records and corrupts their values, which schema-shaped bodies rarely reach.
"""

from __future__ import annotations

from typing import Any

import pytest

from service_helpers import save_german_target

schemathesis = pytest.importorskip("schemathesis")

from fastapi import FastAPI  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from multisteal.service.app import create_app  # noqa: E402
from multisteal.service.store import open_store  # noqa: E402

MAX_BATCH = 64
MAX_BODY = 200_000
BUDGET = 10**9
OPERATIONS = ["POST /v1/predict", "GET /v1/info", "GET /healthz"]

FUZZ = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class Service:
    def __init__(self, app: FastAPI, key: str, records: list[dict[str, Any]]) -> None:
        self.app = app
        self.key = key
        self.records = records

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Service:
    folder = tmp_path_factory.mktemp("schema")
    target, ds, _ = save_german_target(folder)
    store_url = f"sqlite:///{folder / 'store.db'}"
    store = open_store(store_url)
    try:
        key = store.add_key("fuzzer", BUDGET, None)
    finally:
        store.close()
    app = create_app(target, store_url=store_url, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)
    records = [
        {str(k): v for k, v in row.items()}
        for row in ds.features.head(50).to_dict(orient="records")
    ]
    return Service(app, key, records)


@pytest.fixture(scope="module")
def api_schema(service: Service) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", service.app)


def _operation(api_schema: Any, label: str) -> Any:
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if operation.label == label:
            return operation
    raise AssertionError(f"the schema has no operation {label}")


def test_schema_lists_the_operations(api_schema: Any) -> None:
    """Catches: a fuzz run that silently tests nothing (the schema lost its operations)."""
    labels = {result.ok().label for result in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= labels


def test_the_key_works(service: Service) -> None:
    """Catches: a fixture whose key does not work, which would make the keyed runs vacuous."""
    with TestClient(service.app) as client:
        response = client.get("/v1/info", headers=service.headers)
    assert response.status_code == 200, response.text
    assert response.json()["budget"]["total"] == BUDGET


# Not `schemathesis.pytest.from_fixture(...).parametrize()`: with schemathesis 4.32.5 on pytest 9
# it fails on `request.node._nodeid`, which pytest 9 no longer has. Hypothesis strategies per
# operation need none of the plugin's machinery.
@pytest.mark.parametrize(
    ("label", "mode"),
    [
        ("POST /v1/predict", GenerationMode.POSITIVE),
        ("POST /v1/predict", GenerationMode.NEGATIVE),
        # Without parameters or a body, the GET operations have no negative cases to generate.
        ("GET /v1/info", GenerationMode.POSITIVE),
        ("GET /healthz", GenerationMode.POSITIVE),
    ],
)
@pytest.mark.parametrize("keyed", [True, False], ids=["with-key", "without-key"])
def test_no_server_error(
    api_schema: Any, service: Service, label: str, mode: GenerationMode, keyed: bool
) -> None:
    """Catches: a request shaped (or misshaped) from the schema that the service answers with a
    5xx, with a valid key or without one; without one, /v1/predict must stop at 401."""
    operation = _operation(api_schema, label)
    headers = service.headers if keyed else None
    statuses: set[int] = set()

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def fuzz(case: Any) -> None:
        response = case.call_and_validate(headers=headers, checks=[not_a_server_error])
        statuses.add(response.status_code)
        if not keyed and label == "POST /v1/predict":
            assert response.status_code == 401, response.text

    fuzz()
    if keyed and label == "POST /v1/predict":
        assert 401 not in statuses, "the key was not sent: the keyed run only met refusals"


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)


@st.composite
def _mutated_records(draw: st.DrawFn, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Real records, each kept, or with one value replaced by arbitrary JSON, one column
    dropped, or one unknown column added."""
    batch = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        record = dict(draw(st.sampled_from(records)))
        column = draw(st.sampled_from(sorted(record)))
        change = draw(st.sampled_from(["keep", "replace", "drop", "add"]))
        if change == "replace":
            record[column] = draw(_JSON_VALUES)
        elif change == "drop":
            del record[column]
        elif change == "add":
            record[draw(st.text(max_size=8))] = draw(_JSON_SCALARS)
        batch.append(record)
    return batch


def test_no_server_error_on_mutated_records(api_schema: Any, service: Service) -> None:
    """Catches: a record with a wrong-typed, missing or extra column that reaches the model and
    fails there (a 500) instead of being refused with a 422."""
    operation = _operation(api_schema, "POST /v1/predict")
    statuses: set[int] = set()

    @FUZZ
    @given(inputs=_mutated_records(service.records))
    def fuzz(inputs: list[dict[str, Any]]) -> None:
        case = operation.Case(body={"inputs": inputs}, media_type="application/json")
        response = case.call_and_validate(headers=service.headers, checks=[not_a_server_error])
        statuses.add(response.status_code)
        assert response.status_code in (200, 422), response.text

    fuzz()
    assert statuses == {200, 422}, statuses


@pytest.mark.parametrize(
    "body",
    [
        b'{"inputs": [{"purpose": "\\ud800"}]}',
        b'{"inputs": [{"\\udfff": 1}]}',
        b'{"\\uDC00": 1, "inputs": [{}]}',
        '{"inputs": [{"purpose": "\\ud800"}]}'.encode("utf-16"),
    ],
    ids=["value", "column", "field", "utf-16"],
)
def test_a_lone_surrogate_is_refused_with_422(service: Service, body: bytes) -> None:
    """Catches (found by probing past the fuzz runs): a JSON string escaping an unpaired UTF-16
    surrogate, which Python's json accepts but pandas, the digest and the error message cannot
    encode, answered with a 500 instead of a 422."""
    headers = {**service.headers, "Content-Type": "application/json"}
    with TestClient(service.app, raise_server_exceptions=False) as client:
        response = client.post("/v1/predict", content=body, headers=headers)
        paired = client.post(
            "/v1/predict", content=b'{"inputs": [{"purpose": "\\ud83d\\ude00"}]}', headers=headers
        )
    assert response.status_code == 422, response.text
    assert "surrogate" in response.json()["detail"]
    assert paired.status_code == 422, paired.text  # a valid pair is an unknown category, no more
    assert "surrogate" not in paired.json()["detail"]
