"""The HTTP prediction service end to end: a real uvicorn server on loopback, a saved target,
an SQLite store, and the HTTP client running the same attacks as in-process.

Each test names the wrong implementation it catches.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from multisteal.attacks import AttackContext, PoolAttack, run_attack
from multisteal.data.inputs import ImageSpec, TextSpec
from multisteal.errors import BudgetExceededError, InvalidInputError, MultistealError
from multisteal.models.io import load_model, save_model
from multisteal.models.zoo import make_pipeline
from multisteal.query.api import LocalQueryAPI
from multisteal.query.defences import make_defences, parse_defence
from multisteal.service.app import CONFIG_ENV, create_app
from multisteal.service.client import HTTPQueryAPI
from multisteal.service.store import open_store
from service_helpers import free_port, save_german_target, stop, uvicorn_command, wait_until_healthy

MAX_BATCH = 300
MAX_BODY = 400_000


class Server:
    def __init__(self, url: str, target: Path, store_url: str, records: pd.DataFrame) -> None:
        self.url = url
        self.target = target
        self.store_url = store_url
        self.records = records
        self.store = open_store(store_url)

        self.clients: list[HTTPQueryAPI] = []

    def key(self, name: str, budget: int, rate: float | None = None) -> str:
        return self.store.add_key(name, budget, rate)

    def client(self, key: str, **kwargs: Any) -> HTTPQueryAPI:
        api = HTTPQueryAPI(self.url, key, **kwargs)
        self.clients.append(api)
        return api

    def post(self, key: str | None, body: Any, **kwargs: Any) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        if isinstance(body, (bytes, str)):
            headers["Content-Type"] = "application/json"
            return httpx.post(f"{self.url}/v1/predict", content=body, headers=headers, **kwargs)
        return httpx.post(f"{self.url}/v1/predict", json=body, headers=headers, **kwargs)

    def log(self, key: str) -> pd.DataFrame:
        info = self.store.authenticate(key)
        assert info is not None
        return self.store.log(info.id)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("service")
    target, ds, _ = save_german_target(folder)
    store_url = f"sqlite:///{folder / 'store.db'}"
    port = free_port()
    config = {
        "target_dir": str(target),
        "store_url": store_url,
        "max_batch": MAX_BATCH,
        "max_body_bytes": MAX_BODY,
    }
    env = {**os.environ, CONFIG_ENV: json.dumps(config)}
    log = (folder / "uvicorn.log").open("w")
    process = subprocess.Popen(
        uvicorn_command(port, 2),
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, folder / "uvicorn.log")
        srv = Server(url, target, store_url, ds.features.reset_index(drop=True))
        yield srv
        for api in srv.clients:
            api.close()
        srv.store.close()
    finally:
        stop(process)
        log.close()


def _local(server: Server, budget: int | None = None) -> LocalQueryAPI:
    model = load_model(server.target)
    return LocalQueryAPI(model, budget=budget, input_spec=model.input_spec_)  # type: ignore[attr-defined]


# -- answers ---------------------------------------------------------------------------------


def test_http_answers_equal_in_process_answers(server: Server) -> None:
    """Catches: scores rounded or re-serialised lossily, labels/classes reordered, records
    re-ordered by column, or the policy applied twice/not at all."""
    records = server.records.iloc[:40]
    key = server.key("equal", 1000)
    api = server.client(key, batch_size=16)
    remote = api.query(records)
    local = _local(server).query(records)
    np.testing.assert_array_equal(remote.labels, local.labels)
    assert remote.scores is not None
    assert local.scores is not None
    np.testing.assert_array_equal(remote.scores, local.scores)  # bit for bit
    np.testing.assert_array_equal(remote.revealed, local.revealed)
    assert (remote.mode, remote.n_classes, remote.leaves) == ("probabilities", 2, None)
    assert api.ledger.used == 40
    assert api.ledger.remaining == 960
    assert [r.rows for r in api.log.records] == [16, 16, 8]
    logged = server.log(key)
    assert list(logged["status"]) == ["answered"] * 3
    assert list(logged["used_after"]) == [
        16,
        32,
        40,
    ]


def test_pool_attack_same_transcript_over_http(server: Server) -> None:
    """Catches: a client that reports the wrong budget (the attack draws a different sample),
    that drops or reorders batches, or whose answers differ from in-process ones."""
    pool = server.records.iloc[:200].reset_index(drop=True)
    key = server.key("pool", 120)
    api = server.client(key, batch_size=50)
    remote, stop = run_attack(
        PoolAttack(), AttackContext(api=api, rng=np.random.default_rng(3), pool=pool)
    )
    local, _ = run_attack(
        PoolAttack(),
        AttackContext(api=_local(server, 120), rng=np.random.default_rng(3), pool=pool),
    )
    assert stop == "finished"
    assert remote is not None
    assert local is not None
    pd.testing.assert_frame_equal(remote.queries, local.queries)  # type: ignore[arg-type]
    np.testing.assert_array_equal(remote.source_index, local.source_index)
    np.testing.assert_array_equal(remote.answers.scores, local.answers.scores)
    assert api.ledger.remaining == 0
    assert server.log(key)["rows"].sum() == 120


# -- keys, budgets, rates --------------------------------------------------------------------


def test_wrong_or_missing_key_is_401(server: Server) -> None:
    """Catches: an unauthenticated request answered, or a wrong key treated as missing."""
    body = {"inputs": _records(server.records.iloc[:2])}
    missing = server.post(None, body)
    wrong = server.post("not-a-key", body)
    assert missing.status_code == wrong.status_code == 401
    assert "Authorization: Bearer" in missing.json()["detail"]
    assert wrong.json()["detail"] == "Unknown API key."
    with pytest.raises(MultistealError, match="refused the API key"):
        server.client("not-a-key")


def test_spent_budget_is_403_with_remaining(server: Server) -> None:
    """Catches: a spent key still answered, or the 403 body without budget_remaining."""
    key = server.key("spent", 5)
    assert server.post(key, {"inputs": _records(server.records.iloc[:5])}).status_code == 200
    refused = server.post(key, {"inputs": _records(server.records.iloc[:1])})
    assert refused.status_code == 403
    assert refused.json()["budget_remaining"] == 0
    assert "Query budget exceeded" in refused.json()["detail"]


def test_crossing_batch_is_refused_whole(server: Server) -> None:
    """Catches: a batch that would cross the budget answered partly (its first rows) or
    charged, or the refusal not logged."""
    key = server.key("crossing", 10)
    assert server.post(key, {"inputs": _records(server.records.iloc[:6])}).status_code == 200
    refused = server.post(key, {"inputs": _records(server.records.iloc[:5])})
    assert refused.status_code == 403
    assert refused.json()["budget_remaining"] == 4
    assert "labels" not in refused.json()
    log = server.log(key)
    assert list(log["status"]) == ["answered", "refused-budget"]
    assert list(log["used_after"]) == [6, 6]
    ok = server.post(key, {"inputs": _records(server.records.iloc[:4])})
    assert ok.status_code == 200
    assert ok.json()["budget_remaining"] == 0
    # the client refuses it too, and says so with the library's error
    client_key = server.key("crossing-client", 3)
    api = server.client(client_key)
    with pytest.raises(BudgetExceededError):
        api.query(server.records.iloc[:4])
    assert len(server.log(client_key)) == 0
    assert api.ledger.used == 0


def test_concurrent_batches_never_cross_the_budget(server: Server) -> None:
    """Catches: an answer sent before (or without) the atomic charge, so that concurrent
    requests to two workers both fit into the same remainder."""
    from concurrent.futures import ThreadPoolExecutor

    key = server.key("concurrent", 50)
    body = {"inputs": _records(server.records.iloc[:10])}
    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: server.post(key, body).status_code, range(12)))
    assert sorted(codes) == [200] * 5 + [403] * 7
    log = server.log(key)
    assert (log["status"] == "answered").sum() == 5
    assert log["used_after"].max() == 50


def test_rate_limited_key_gets_429_with_retry_after(server: Server) -> None:
    """Catches: no rate limit, or a 429 without a whole-second Retry-After header."""
    key = server.key("rate", 100, rate=1.0)
    body = {"inputs": _records(server.records.iloc[:1])}
    first, second = server.post(key, body), server.post(key, body)
    assert first.status_code == 200
    assert second.status_code == 429
    assert int(second.headers["Retry-After"]) >= 1
    assert len(server.log(key)) == 1  # the limited request is neither answered nor charged


def test_client_retries_429_then_succeeds(server: Server) -> None:
    """Catches: a client that gives up (or raises) on 429 or ignores Retry-After."""
    key = server.key("retry", 100, rate=1.0)
    api = server.client(key, backoff=0.05)
    api.query(server.records.iloc[:1])
    started = time.monotonic()
    answer = api.query(server.records.iloc[1:3])
    assert len(answer) == 2
    assert api.retried >= 1
    assert time.monotonic() - started >= 0.5  # waited for the bucket, not 0.05 s
    assert api.ledger.used == 3


def test_client_retries_5xx_and_maps_errors() -> None:
    """Catches: a client that gives up on a 5xx or a dropped connection, or that turns a 422
    or 403 into a generic error without the server's message."""
    info = {
        "input_spec": TextSpec().to_dict(),
        "classes": ["a", "b"],
        "output": "label",
        "n_features": 0,
        "max_batch": 10,
        "trained_on": {},
        "budget": {"total": 10, "used": 2, "remaining": 8},
    }
    answers: Iterator[httpx.Response | httpx.ConnectError] = iter(
        [
            httpx.Response(503, json={"detail": "busy"}),
            httpx.ConnectError("down"),
            httpx.Response(
                200,
                json={
                    "labels": [1, 0],
                    "scores": None,
                    "revealed": None,
                    "mode": "label",
                    "classes": ["a", "b"],
                    "leaves": None,
                    "budget_remaining": 6,
                },
            ),
            httpx.Response(422, json={"detail": "Text item 0 is too long."}),
            httpx.Response(403, json={"detail": "Query budget exceeded.", "budget_remaining": 1}),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/info":
            return httpx.Response(200, json=info)
        assert request.headers["authorization"] == "Bearer k"
        assert json.loads(request.content)["inputs"] in (["x", "y"], ["z"])
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    waits: list[float] = []
    with HTTPQueryAPI(
        "http://service", "k", transport=httpx.MockTransport(handler), sleep=waits.append
    ) as api:
        assert (api.ledger.total, api.ledger.used, api.output_mode) == (10, 2, "label")
        answer = api.query(["x", "y"])
        assert answer.labels.tolist() == [1, 0]
        assert answer.scores is None
        assert api.retried == 2
        assert waits == [0.5, 1.0]  # exponential backoff
        assert api.ledger.remaining == 6
        with pytest.raises(InvalidInputError, match="Text item 0 is too long"):
            api.query(["z"])
        with pytest.raises(BudgetExceededError, match="Query budget exceeded"):
            api.query(["z"])
        assert api.ledger.remaining == 1
        assert [r.status for r in api.log.records] == ["answered", "refused-budget"]


# -- bad requests ----------------------------------------------------------------------------


def _expect_422(server: Server, key: str, body: Any, message: str) -> None:
    response = server.post(key, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"], response.json()["detail"]


def test_bad_inputs_are_422_with_their_message(server: Server) -> None:
    """Catches: a bad batch crashing the worker (500), answered with garbage, or refused
    without saying why; Python's lenient JSON (NaN, Infinity, 1e999) let through."""
    key = server.key("bad", 10_000)
    good = _records(server.records.iloc[:2])
    column = "credit_amount"
    unknown = [{**good[0], "salary": 1}]
    missing = [{k: v for k, v in good[0].items() if k != column}]
    wrong_type = [{**good[0], column: "lots"}]
    _expect_422(server, key, {"inputs": unknown}, "Unknown column(s) 'salary'")
    _expect_422(server, key, {"inputs": missing}, f"Missing column(s) '{column}'")
    _expect_422(server, key, {"inputs": wrong_type}, f"Column '{column}' is numerical")
    _expect_422(server, key, {"inputs": [[1, 2, 3]]}, "takes tabular records")
    _expect_422(server, key, {"inputs": [{**good[0], column: [1]}]}, "got an array")
    sentinel = json.dumps({"inputs": [{**good[0], column: 123456.789}]})
    _expect_422(server, key, sentinel.replace("123456.789", "NaN"), "literal NaN")
    inf = sentinel.replace("123456.789", "Infinity")
    _expect_422(server, key, inf, "literal Infinity")
    _expect_422(server, key, inf.replace("Infinity", "1e999"), "not finite")
    _expect_422(server, key, {"inputs": []}, "at least one input")
    _expect_422(server, key, {"inputs": good[0]}, '"inputs" must be a JSON array')
    _expect_422(server, key, [good[0]], "must be a JSON object")
    _expect_422(server, key, {"inputs": good, "extra": 1}, "unknown field(s) 'extra'")
    _expect_422(server, key, b'{"inputs": [', "not valid JSON")
    too_many = _records(server.records.iloc[: MAX_BATCH + 1])
    _expect_422(server, key, {"inputs": too_many}, f"at most {MAX_BATCH} inputs")
    assert len(server.log(key)) == 0  # nothing charged or logged
    api = server.client(key)
    with pytest.raises(InvalidInputError, match="Unknown column"):
        api.query(pd.DataFrame(unknown))
    assert api.ledger.used == 0


def test_big_body_is_413(server: Server) -> None:
    """Catches: an unbounded body read into memory (a denial of service)."""
    key = server.key("big", 10)
    body = json.dumps({"inputs": ["x" * (MAX_BODY + 10)]})
    response = server.post(key, body)
    assert response.status_code == 413
    assert str(MAX_BODY) in response.json()["detail"]


def test_image_and_text_422_messages(tmp_path: Path) -> None:
    """Catches: records accepted where images or texts are expected, wrong image shapes, NaN
    images, or non-string texts reaching the model (a 500 or a garbage answer)."""
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 1, size=(20, 6, 6))
    image_model = make_pipeline(
        "cnn", ImageSpec(6, 6, 0, 0.0, 1.0), channels=(2,), hidden=4, epochs=1, min_steps=1
    ).fit(images, np.arange(20) % 2)
    texts = ["good film", "bad film", "great plot", "awful plot"] * 3
    text_model = make_pipeline("tfidf-logistic", TextSpec(max_chars=50)).fit(
        texts, np.array([1, 0, 1, 0] * 3)
    )
    for name, model, spec in (
        ("image", image_model, ImageSpec(6, 6, 0, 0.0, 1.0)),
        ("text", text_model, TextSpec(max_chars=50)),
    ):
        save_model(model, tmp_path / name, metadata={"input_spec": spec.to_dict()})
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(store_url) as store:
        key = store.add_key("k", 100)
    headers = {"Authorization": f"Bearer {key}"}

    def detail(client: TestClient, inputs: Any) -> str:
        response = client.post("/v1/predict", json={"inputs": inputs}, headers=headers)
        assert response.status_code == 422, response.text
        return str(response.json()["detail"])

    with TestClient(create_app(tmp_path / "image", store_url=store_url)) as client:
        assert "is a record" in detail(client, [{"a": 1}])
        assert "must have shape (n, 6, 6)" in detail(client, np.zeros((1, 5, 6)).tolist())
        assert "[0, 1]" in detail(client, np.full((1, 6, 6), 2.0).tolist())
        ok = client.post("/v1/predict", json={"inputs": images[:2].tolist()}, headers=headers)
        assert ok.status_code == 200
        assert len(ok.json()["labels"]) == 2
    with TestClient(create_app(tmp_path / "text", store_url=store_url)) as client:
        assert "takes texts" in detail(client, [{"a": 1}])
        assert "takes texts" in detail(client, ["fine", 3])
        assert "at most 50" in detail(client, ["x" * 51])
        ok = client.post("/v1/predict", json={"inputs": ["good plot"]}, headers=headers)
        assert ok.status_code == 200
        assert ok.json()["classes"] == ["0", "1"]


def test_defences_and_output_policy_as_in_process(server: Server, tmp_path: Path) -> None:
    """Catches: defences skipped or applied after the output policy, the published output mode
    not reflecting the defences, or the server re-implementing a policy differently."""
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(store_url) as store:
        key = store.add_key("k", 100)
    app = create_app(
        server.target,
        store_url=store_url,
        output="rounded",
        decimals=1,
        defences=["reverse-sigmoid:beta=0.7,gamma=2", ("top-k", {"k": 1})],
    )
    model = load_model(server.target)
    chain: list[tuple[str, Mapping[str, Any]]] = [
        parse_defence("reverse-sigmoid:beta=0.7,gamma=2"),
        ("top-k", {"k": 1}),
    ]
    local = LocalQueryAPI(
        model,
        budget=None,
        output="rounded",
        decimals=1,
        defences=make_defences(chain, seed=0, model=model),
        input_spec=model.input_spec_,  # type: ignore[attr-defined]
    )
    records = _records(server.records.iloc[:30])
    expected = local.query(records)
    with TestClient(app) as client:
        assert client.get("/v1/info").json()["output"] == local.output_mode == "top-k"
        got = client.post(
            "/v1/predict", json={"inputs": records}, headers={"Authorization": f"Bearer {key}"}
        ).json()
    assert got["mode"] == expected.mode
    assert expected.scores is not None
    assert expected.revealed is not None
    np.testing.assert_array_equal(np.asarray(got["scores"]), expected.scores)
    np.testing.assert_array_equal(np.asarray(got["revealed"]), expected.revealed)
    np.testing.assert_array_equal(np.asarray(got["labels"]), expected.labels)


# -- published endpoints ---------------------------------------------------------------------


def test_info_health_and_openapi(server: Server) -> None:
    """Catches: model internals (weights, family, file hashes, classes' encoder) published in
    /v1/info, a spec the client cannot rebuild, or missing health/OpenAPI endpoints."""
    info = httpx.get(f"{server.url}/v1/info").json()
    assert set(info) == {
        "input_spec",
        "classes",
        "output",
        "n_features",
        "max_batch",
        "trained_on",
        "policy",
        "detect",
        "detect_refuse",
    }
    assert info["detect"] == "none"
    assert info["detect_refuse"] is False
    assert info["policy"] == {"output": "probabilities"}
    assert info["trained_on"] == {
        "dataset": "german_credit",
        "split": {"target_train": 500},
        "seed": 7,
        "split_seed": 11,
    }
    assert info["output"] == "probabilities"
    assert info["max_batch"] == MAX_BATCH
    assert info["n_features"] == len(info["input_spec"]["columns"])
    text = json.dumps(info)
    for internal in ("coef", "sha256", "logistic", "skops", "weights", "intercept"):
        assert internal not in text
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert {"/v1/predict", "/v1/info", "/healthz"} <= set(schema["paths"])
    assert "requestBody" in schema["paths"]["/v1/predict"]["post"]
    api = server.client(server.key("info", 50))
    assert api.input_spec.to_dict() == info["input_spec"]
    assert api.classes == tuple(info["classes"])
    assert server.client(server.key("big-batches", 5), batch_size=5000).batch_size == MAX_BATCH
    assert api.ledger.total == 50


def test_time_of_a_256_row_request(server: Server) -> None:
    """Measures one 256-row request (reported, loosely bounded)."""
    key = server.key("timing", 10_000)
    body = {"inputs": _records(server.records.iloc[:256])}
    server.post(key, body)  # warm
    started = time.perf_counter()
    response = server.post(key, body)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.json()["labels"]) == 256
    print(f"one 256-row request: {elapsed * 1000:.1f} ms")
    assert elapsed < 5.0
