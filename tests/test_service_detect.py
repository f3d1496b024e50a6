"""Detection and retried requests in the HTTP service.

PRADA watches each key's stream across worker processes and restarts, flagging it exactly where
the in-process API does; a retried request is answered once and charged once. Each test names
the wrong implementation it catches.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from multisteal.errors import BudgetExceededError, ConfigError, InvalidInputError, QueryRefusedError
from multisteal.query.api import LocalQueryAPI
from multisteal.query.detection import make_detector
from multisteal.service.store import QueryEntry, Store, hash_key, open_store
from multisteal.service.watch import DetectorWatch, decode_payload, encode_payload
from service_helpers import free_port, save_german_target, stop, wait_until_healthy

PRADA_PARAMS = {"min_distances": 50}
BATCH = 20
N_WALK = 400


def walk(features: pd.DataFrame, seed: int, n: int) -> pd.DataFrame:
    """A Jacobian-style stream of raw records: three walks from dataset records, each step
    moving one of credit_amount, duration_months or age by about half its standard deviation
    (reflected at the data's range). Its minimum distances take a handful of values, which
    PRADA flags (measured: after 168 inputs at seed 0, lowest W 0.89); natural records in
    random order are not flagged (lowest W 0.96)."""
    rng = np.random.default_rng(seed)
    columns = ["credit_amount", "duration_months", "age"]
    current = [features.iloc[i].copy() for i in rng.choice(len(features), 3, replace=False)]
    rows = []
    for t in range(n):
        record = current[t % 3]
        column = columns[rng.integers(len(columns))]
        step = max(1.0, round(float(features[column].std()) * 0.5))
        value = record[column] + step * rng.choice([-1, 1])
        low, high = features[column].min(), features[column].max()
        record[column] = (
            value if low <= value <= high else record[column] - (value - record[column])
        )
        rows.append(record.copy())
    return pd.DataFrame(rows).reset_index(drop=True)


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {str(c): (None if pd.isna(v) else v) for c, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


@dataclass
class Setup:
    target: Path
    features: pd.DataFrame
    model: Any


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    folder = tmp_path_factory.mktemp("detect")
    from multisteal.models.io import load_model

    target, ds, _ = save_german_target(folder)
    return Setup(target, ds.features, load_model(target))  # as the service loads it


def local_run(setup: Setup, stream: pd.DataFrame, *, refuse: bool) -> tuple[LocalQueryAPI, Any]:
    """The in-process reference: the same batches through LocalQueryAPI with PRADA."""
    detector = make_detector("prada", PRADA_PARAMS, model=setup.model)
    api = LocalQueryAPI(
        setup.model,
        budget=None,
        input_spec=setup.model.input_spec_,
        detectors=[detector],
        refuse_when_flagged=refuse,
    )
    for start in range(0, len(stream), BATCH):
        with contextlib.suppress(QueryRefusedError):
            api.query(stream.iloc[start : start + BATCH])
    return api, detector


def make_watch(setup: Setup) -> DetectorWatch:
    spec = setup.model.input_spec_
    return DetectorWatch(
        lambda: make_detector("prada", PRADA_PARAMS, model=setup.model), spec.validate
    )


def admit(
    store: Store,
    watch: DetectorWatch,
    setup: Setup,
    key: int,
    part: pd.DataFrame,
    *,
    refuse: bool,
    rows: int | None = None,
) -> str:
    """One batch through ``admit_batch`` as the service sends it: ``answered`` or the refusal."""
    raw = records(part)
    decisions = np.asarray(setup.model.predict(part), dtype=np.int64)
    entry = QueryEntry(
        sha256=hash_key(str(len(raw))),
        received_at=time.time(),
        inputs=encode_payload(raw, decisions),
    )
    try:
        store.admit_batch(key, rows or len(raw), entry, watch=watch, refuse_flagged=refuse)
    except QueryRefusedError:
        return "refused-flagged"
    return "answered"


# -- the store and the watch -------------------------------------------------------------------


def test_payload_round_trip_is_what_the_detector_observed(setup: Setup) -> None:
    """Catches: a payload that loses values (numbers as strings, categories re-coded) so a replayed
    batch encodes differently from the batch the first worker observed."""
    part = setup.features.iloc[:15].copy()
    raw = records(part)
    decisions = np.arange(15) % 2
    back, labels = decode_payload(encode_payload(raw, decisions))
    np.testing.assert_array_equal(labels, decisions)
    spec = setup.model.input_spec_
    from multisteal.query.perturbations import defence_features

    np.testing.assert_array_equal(
        defence_features(spec.validate(back), setup.model),
        defence_features(spec.validate(part), setup.model),
    )


@pytest.mark.parametrize("refuse", [True, False])
def test_two_workers_flag_exactly_where_the_in_process_api_does(
    setup: Setup, tmp_path: Path, refuse: bool
) -> None:
    """Two store connections (two worker processes) with their own watches take alternate
    batches of one key's stream; a third, fresh one (a restart) takes the rest. The flag, the
    batch it came with and every batch's status equal one in-process detector's.
    Catches: a worker judging only the batches it served (its detector sees half the stream),
    a restarted worker that starts from an empty detector, a flag not shared between workers,
    refusing without ``refuse`` or answering the batch that raised the flag, replaying a batch
    refused for lack of budget (the in-process detector never sees those)."""
    stream = walk(setup.features, 0, N_WALK)
    local, detector = local_run(setup, stream, refuse=refuse)
    assert detector.flagged_after is not None
    url = f"sqlite:///{tmp_path / 's.db'}"
    stores = [open_store(url), open_store(url)]
    watches = [make_watch(setup), make_watch(setup)]
    key = stores[0].add_key("attacker", 10**6)
    key_id = stores[0].authenticate(key).id  # type: ignore[union-attr]
    statuses = []
    n_batches = len(stream) // BATCH
    for i in range(n_batches * 2 // 3):
        part = stream.iloc[i * BATCH : (i + 1) * BATCH]
        statuses.append(admit(stores[i % 2], watches[i % 2], setup, key_id, part, refuse=refuse))
        if i == 2:  # a batch beyond the budget: refused and logged, never observed
            with pytest.raises(BudgetExceededError):
                admit(
                    stores[0],
                    watches[0],
                    setup,
                    key_id,
                    stream.iloc[:BATCH],
                    refuse=refuse,
                    rows=10**7,
                )
    restarted, fresh = open_store(url), make_watch(setup)
    for i in range(n_batches * 2 // 3, n_batches):
        part = stream.iloc[i * BATCH : (i + 1) * BATCH]
        statuses.append(admit(restarted, fresh, setup, key_id, part, refuse=refuse))
    expected = local.log.to_frame()
    assert statuses == list(expected["status"])
    info = restarted.key_info(key_id)
    assert info.flagged_after == detector.flagged_after
    log = restarted.log(key_id)
    assert (log["status"] == "refused-budget").sum() == 1
    log = log[log["status"] != "refused-budget"]
    assert log["flagged"].tolist() == expected["flagged"].tolist()
    assert info.used == int(expected.loc[expected["status"] == "answered", "rows"].sum())
    # both first workers replayed what the other logged; the restarted one needed the log only
    # while the stream was not yet flagged
    assert watches[0].replayed > 0
    assert watches[1].replayed > 0
    for store in (*stores, restarted):
        store.close()


def test_a_failed_transaction_is_forgotten_by_the_watch(setup: Setup, tmp_path: Path) -> None:
    """A batch whose transaction fails after the watch observed it is not in the log; the next
    batch rebuilds the detector from the log, and the flag still equals the in-process one.
    Catches: a detector that keeps the observation of a batch that was never answered, and one
    forgotten only after the store's lock is released (another thread of the worker could
    observe on top of the rolled-back batch in between)."""
    stream = walk(setup.features, 0, N_WALK)
    _, detector = local_run(setup, stream, refuse=False)
    assert detector.flagged_after is not None
    assert detector.flagged_after > 4 * BATCH  # the failure comes while the watch observes
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url)
    held: list[bool] = []

    class Watch(DetectorWatch):
        def forget(self, key_id: int) -> None:
            # another thread of the worker must not observe between the rollback and this
            held.append(store._lock._is_owned())  # type: ignore[attr-defined]
            super().forget(key_id)

    spec = setup.model.input_spec_
    watch = Watch(lambda: make_detector("prada", PRADA_PARAMS, model=setup.model), spec.validate)
    key_id = store.authenticate(store.add_key("a", 10**6)).id  # type: ignore[union-attr]
    calls = {"n": 0}

    def crash_once() -> None:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated failure before COMMIT")

    store._before_commit = crash_once
    i = 0
    while i < len(stream) // BATCH:
        part = stream.iloc[i * BATCH : (i + 1) * BATCH]
        try:
            admit(store, watch, setup, key_id, part, refuse=False)
        except RuntimeError:
            assert watch.seen(key_id) == -1  # forgotten
            continue  # the client retries the same batch
        i += 1
    assert calls["n"] == len(stream) // BATCH + 1
    assert held == [True]
    assert store.key_info(key_id).flagged_after == detector.flagged_after
    assert len(store.log(key_id)) == len(stream) // BATCH
    store.close()


def test_a_retried_request_is_answered_from_its_first_answer_and_charged_once(
    tmp_path: Path,
) -> None:
    """Catches: a retried POST (same Idempotency-Key) charged and logged twice; a replay that
    returns another batch's answer (an id reused for other inputs or another row count is
    refused); a request id that blocks a new batch of another key."""
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as store:
        a = store.authenticate(store.add_key("a", 100)).id  # type: ignore[union-attr]
        b = store.authenticate(store.add_key("b", 100)).id  # type: ignore[union-attr]
        first = QueryEntry(hash_key("x"), time.time(), request_id="r1", response=b"answer-1")
        got = store.admit_batch(a, 10, first)
        assert (got.remaining, got.replayed) == (90, None)
        again = store.admit_batch(a, 10, QueryEntry(hash_key("x"), time.time(), request_id="r1"))
        assert (again.remaining, again.replayed, again.batch) == (90, b"answer-1", got.batch)
        other = store.admit_batch(b, 10, QueryEntry(hash_key("x"), time.time(), request_id="r1"))
        assert (other.remaining, other.replayed) == (90, None)
        with pytest.raises(InvalidInputError, match="already used for another batch"):
            store.admit_batch(a, 10, QueryEntry(hash_key("other"), time.time(), request_id="r1"))
        with pytest.raises(InvalidInputError, match="already used for another batch"):
            store.admit_batch(a, 11, QueryEntry(hash_key("x"), time.time(), request_id="r1"))
        second = store.admit_batch(a, 5, QueryEntry(hash_key("y"), time.time(), request_id="r2"))
        assert second.remaining == 85
        assert store.log(a)["request_id"].tolist() == ["r1", "r2"]
        # a replay is answered even when the budget is now spent
        store.admit_batch(a, 85, QueryEntry(hash_key("z"), time.time()))
        late = store.admit_batch(a, 10, QueryEntry(hash_key("x"), time.time(), request_id="r1"))
        assert (late.remaining, late.replayed) == (0, b"answer-1")


# -- over HTTP ---------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    db: str
    process: subprocess.Popen[bytes]


def serve(setup: Setup, tmp_path: Path, db: str, *extra: str, workers: int = 2) -> Server:
    port = free_port()
    command = [sys.executable, "-c", "from multisteal.cli import main; main()", "serve"]
    command += [str(setup.target), "--port", str(port), "--workers", str(workers), "--db", db]
    command += list(extra)
    log_path = tmp_path / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    wait_until_healthy(url, process, log_path)
    return Server(url, db, process)


@pytest.fixture
def detect_server(setup: Setup, tmp_path: Path) -> Iterator[Server]:
    db = f"sqlite:///{tmp_path / 'service.db'}"
    server = serve(
        setup,
        tmp_path,
        db,
        "--detect",
        "prada",
        "--detect-param",
        "min_distances=50",
        "--detect-refuse",
    )
    yield server
    stop(server.process)


def test_prada_over_http_with_two_workers_and_a_restart(
    setup: Setup, tmp_path: Path, detect_server: Server
) -> None:
    """`multisteal serve --detect prada --detect-refuse --workers 2`: the walk is refused from
    the batch that flags it, the number of inputs answered and the flag equal the in-process
    API's; natural records from another key are all answered; after a restart the flagged key
    stays refused. Catches: detection per worker instead of per key, the flag lost on restart,
    a flag that leaks to other keys, the refusal reported as a budget refusal."""
    from multisteal.service.client import HTTPQueryAPI

    stream = walk(setup.features, 0, N_WALK)
    local, detector = local_run(setup, stream, refuse=True)
    with open_store(detect_server.db) as store:
        attacker, honest = store.add_key("attacker", 10**5), store.add_key("honest", 10**5)
    answered = 0
    with HTTPQueryAPI(detect_server.url, attacker, batch_size=BATCH) as api:
        assert api.detect == "prada"
        refusal = None
        for start in range(0, len(stream), BATCH):
            try:
                answered += len(api.query(stream.iloc[start : start + BATCH]).labels)
            except QueryRefusedError as exc:  # noqa: PERF203 (the loop ends here)
                refusal = str(exc)
                break
        assert refusal is not None
        assert "prada detector flagged" in refusal
        api.refresh()
        assert api.flagged_after == detector.flagged_after
        assert api.log.to_frame()["status"].iloc[-1] == "refused-flagged"
    assert answered == local.log.rows_answered
    with HTTPQueryAPI(detect_server.url, honest, batch_size=BATCH) as api:
        natural = setup.features.sample(300, random_state=0)
        assert len(api.query(natural).labels) == 300
        api.refresh()
        assert api.flagged_after is None
    with open_store(detect_server.db) as store:
        auditor = store.add_key("auditor-reads-flags", 10, auditor=True)
    digest = hash_key(attacker)
    seen = httpx.get(
        f"{detect_server.url}/v1/keys/{digest}", headers={"Authorization": f"Bearer {auditor}"}
    )
    assert seen.json()["flagged_after"] == detector.flagged_after
    assert seen.json()["name"] == "attacker"
    for key, status in ((honest, 403), (auditor, 200)):
        got = httpx.get(
            f"{detect_server.url}/v1/keys/{hash_key(honest)}",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert got.status_code == status
    unknown = httpx.get(
        f"{detect_server.url}/v1/keys/{'0' * 64}", headers={"Authorization": f"Bearer {auditor}"}
    )
    assert unknown.status_code == 404
    stop(detect_server.process)
    again = serve(
        setup,
        tmp_path,
        detect_server.db,
        "--detect",
        "prada",
        "--detect-param",
        "min_distances=50",
        "--detect-refuse",
    )
    try:
        response = httpx.post(
            f"{again.url}/v1/predict",
            json={"inputs": records(setup.features.iloc[:3])},
            headers={"Authorization": f"Bearer {attacker}"},
        )
        assert response.status_code == 403
        assert response.json()["refused"] == "flagged"
    finally:
        stop(again.process)
    with open_store(detect_server.db) as store:
        log = store.log(inputs=True)
    mine = log[log["key"] == "attacker"]
    assert int(mine.loc[mine["status"] == "answered", "rows"].sum()) == answered
    assert (mine["status"] == "refused-flagged").sum() == 2  # the flagging batch, the late one
    assert mine["flagged"].tolist()[-2:] == [True, True]
    assert not mine["flagged"].iloc[:-2].any()
    assert mine.loc[mine["status"] == "answered", "inputs"].notna().all()


class _LoseFirstResponse(httpx.BaseTransport):
    """Sends every request, but loses the first POST's response on its way back (the service
    answered and charged it; the client sees a dropped connection)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        if request.method == "POST" and not self.lost:
            response.read()
            self.lost += 1
            raise httpx.ReadError("connection reset while reading the answer", request=request)
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_lost_answer_is_resent_without_a_second_charge(setup: Setup, tmp_path: Path) -> None:
    """The client's retry after a lost response carries the same Idempotency-Key: the service
    answers it again from the stored answer, the budget is charged once and the log holds one
    row. Catches: retries without an idempotency key (charged twice), a new key per attempt, a
    replay that differs from the first answer."""
    from multisteal.service.client import HTTPQueryAPI

    db = f"sqlite:///{tmp_path / 'service.db'}"
    server = serve(setup, tmp_path, db, "--defence", "gaussian-noise:sigma=0.05", workers=1)
    try:
        with open_store(db) as store:
            key = store.add_key("client", 100)
        transport = _LoseFirstResponse()
        part = setup.features.iloc[:30]
        with HTTPQueryAPI(server.url, key, transport=transport, backoff=0.01) as api:
            answer = api.query(part)
            assert transport.lost == 1
            assert api.retried == 1
            assert api.ledger.remaining == 70
        with open_store(db) as store:
            log = store.log()
            assert log["rows"].tolist() == [30]
            view, _, sent_id = str(log["request_id"][0]).partition(":")
            assert view == "public"  # the view is part of the request's identity
            assert store.list_keys()[0].used == 30
        # the first answer, as stored: the noisy scores are those of the one charged answer
        again = httpx.post(
            f"{server.url}/v1/predict",
            json={"inputs": records(part)},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": sent_id},
        ).json()
        np.testing.assert_array_equal(np.asarray(again["scores"]), answer.scores)
        assert again["budget_remaining"] == 70
        bad = httpx.post(
            f"{server.url}/v1/predict",
            json={"inputs": records(part)},
            headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "x" * 201},
        )
        assert bad.status_code == 422
        assert "Idempotency-Key" in bad.json()["detail"]
    finally:
        stop(server.process)


def test_each_worker_draws_its_own_defence_noise(
    setup: Setup, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes of a 2-worker service add different noise to the same input; two
    starts of a 1-worker service (the same seed) add the same.
    Catches: every worker drawing the same noise, so the noise averages out less than the owner
    expects and an attacker who repeats a query over several connections sees repeated values;
    a 1-worker service that is not reproducible from its seed."""
    from fastapi.testclient import TestClient

    from multisteal.service.app import create_app

    db = f"sqlite:///{tmp_path / 's.db'}"
    rows = {"inputs": records(setup.features.iloc[:5])}

    def scores(workers: int, pid: int) -> list[Any]:
        monkeypatch.setattr("multisteal.service.app.os.getpid", lambda: pid)
        with open_store(db) as store:
            key = store.add_key(f"k{workers}-{pid}-{time.monotonic_ns()}", 100)
        app = create_app(
            setup.target,
            store_url=db,
            defences=["gaussian-noise:sigma=0.1"],
            seed=3,
            workers=workers,
        )
        with TestClient(app) as client:
            out = client.post(
                "/v1/predict", json=rows, headers={"Authorization": f"Bearer {key}"}
            ).json()
        return list(out["scores"])

    one = [scores(1, 101), scores(1, 202)]
    two = [scores(2, 101), scores(2, 202)]
    assert one[0] == one[1]
    assert two[0] != two[1]
    assert one[0] != two[0]


def test_an_auditor_key_gets_full_probabilities_and_is_not_watched(
    setup: Setup, detect_server: Server
) -> None:
    """An auditor's key (keys add --auditor) gets the target's own probabilities and is not
    observed by the detector (the walk that flags an attacker's key does not flag it); with
    X-Multisteal-View: public it gets what every key gets. An ordinary key may not ask for the
    full view. Catches: auditor queries counted as an attack, full probabilities for any key
    that asks, a public view that skips the output policy."""
    with open_store(detect_server.db) as store:
        auditor = store.add_key("auditor", 10**5, auditor=True)
        user = store.add_key("user", 10**5)
    stream = walk(setup.features, 0, N_WALK)
    headers = {"Authorization": f"Bearer {auditor}"}
    for start in range(0, len(stream), BATCH):
        part = stream.iloc[start : start + BATCH]
        response = httpx.post(
            f"{detect_server.url}/v1/predict", json={"inputs": records(part)}, headers=headers
        )
        assert response.status_code == 200, response.text
    np.testing.assert_allclose(
        np.asarray(response.json()["scores"]), setup.model.predict_proba(part), rtol=0, atol=0
    )
    info = httpx.get(f"{detect_server.url}/v1/info", headers=headers).json()
    assert info["auditor"] is True
    assert info.get("flagged_after") is None  # (omitted when null)
    rows = {"inputs": records(setup.features.iloc[:5])}
    public = httpx.post(
        f"{detect_server.url}/v1/predict",
        json=rows,
        headers={**headers, "X-Multisteal-View": "public"},
    ).json()
    ordinary = httpx.post(
        f"{detect_server.url}/v1/predict", json=rows, headers={"Authorization": f"Bearer {user}"}
    ).json()
    assert public["scores"] == ordinary["scores"]
    refused = httpx.post(
        f"{detect_server.url}/v1/predict",
        json=rows,
        headers={"Authorization": f"Bearer {user}", "X-Multisteal-View": "full"},
    )
    assert refused.status_code == 403
    assert "--auditor" in refused.json()["detail"]
    bad = httpx.post(
        f"{detect_server.url}/v1/predict",
        json=rows,
        headers={**headers, "X-Multisteal-View": "everything"},
    )
    assert bad.status_code == 422


_OLD_SCHEMA = (
    """CREATE TABLE keys (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE, budget INTEGER NOT NULL CHECK (budget > 0),
    used INTEGER NOT NULL DEFAULT 0 CHECK (used >= 0 AND used <= budget),
    rate_per_second REAL, batches INTEGER NOT NULL DEFAULT 0, created REAL NOT NULL)""",
    """CREATE TABLE queries (id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id INTEGER NOT NULL REFERENCES keys (id), batch INTEGER NOT NULL,
    "rows" INTEGER NOT NULL, sha256 TEXT NOT NULL, received_at REAL NOT NULL,
    answered_at REAL, status TEXT NOT NULL, flagged INTEGER NOT NULL,
    used_after INTEGER NOT NULL, inputs BLOB, UNIQUE (key_id, batch))""",
    """CREATE TABLE rate_buckets (key_id INTEGER PRIMARY KEY REFERENCES keys (id),
    tokens REAL NOT NULL, updated REAL NOT NULL)""",
)


def test_a_store_of_the_first_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    """A store written before flags, auditor keys and request ids existed opens, keeps its keys
    and log, and takes the new columns. Catches: CREATE TABLE IF NOT EXISTS leaving old tables
    without the new columns (a raw sqlite3 error on the first request or index)."""
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for statement in _OLD_SCHEMA:
            conn.execute(statement)
        conn.execute(
            "INSERT INTO keys (name, key_hash, budget, used, batches, created) "
            "VALUES ('old', ?, 100, 7, 1, 0)",
            (hash_key("the-old-key"),),
        )
        conn.execute(
            'INSERT INTO queries (key_id, batch, "rows", sha256, received_at, answered_at, '
            "status, flagged, used_after) VALUES (1, 0, 7, 'x', 0, 0, 'answered', 0, 7)"
        )
    with open_store(f"sqlite:///{path}") as store:
        old = store.authenticate("the-old-key")
        assert old is not None
        assert (old.used, old.auditor, old.flagged_after) == (7, False, None)
        entry = QueryEntry(hash_key("y"), time.time(), request_id="r", response=b"a")
        assert store.admit_batch(old.id, 3, entry).remaining == 90
        assert store.admit_batch(old.id, 3, entry).replayed == b"a"
        assert store.add_key("new", 5, auditor=True)
        assert store.log(old.id)["rows"].tolist() == [7, 3]


def test_a_flag_in_log_only_mode_is_not_told_to_the_key(setup: Setup, tmp_path: Path) -> None:
    """Without --detect-refuse the service keeps answering a flagged key and does not tell it
    (it would switch keys); an auditor key reads the flag. Catches: /v1/info showing a key
    its own flag in log-only mode."""
    from fastapi.testclient import TestClient

    from multisteal.service.app import create_app

    db = f"sqlite:///{tmp_path / 's.db'}"
    with open_store(db) as store:
        attacker = store.add_key("attacker", 10**5)
        auditor = store.add_key("auditor", 10, auditor=True)
    app = create_app(setup.target, store_url=db, detect="prada", detect_params=PRADA_PARAMS)
    stream = walk(setup.features, 0, N_WALK)
    with TestClient(app) as client:
        for start in range(0, len(stream), BATCH):
            response = client.post(
                "/v1/predict",
                json={"inputs": records(stream.iloc[start : start + BATCH])},
                headers={"Authorization": f"Bearer {attacker}"},
            )
            assert response.status_code == 200
        info = client.get("/v1/info", headers={"Authorization": f"Bearer {attacker}"}).json()
        assert "flagged_after" not in info
        assert info["budget"]["used"] == N_WALK
        flag = client.get(
            f"/v1/keys/{hash_key(attacker)}", headers={"Authorization": f"Bearer {auditor}"}
        ).json()
    _, detector = local_run(setup, stream, refuse=False)
    assert flag["flagged_after"] == detector.flagged_after is not None


def test_a_remote_audit_needs_fresh_attacker_keys_on_a_watched_service(
    setup: Setup, detect_server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a service with a detector, an attacker key that already has answers (or a flag) is
    refused before any query, naming the variable and the budget but never the key. Catches: a
    flag from an earlier audit reported as this audit's "flagged after 0"."""
    from multisteal.experiments import load_config
    from multisteal.experiments.remote import FLAGGED_KEY, NOT_FRESH, RemoteTarget

    with open_store(detect_server.db) as store:
        fresh, used, flagged = (store.add_key(n, 10**5) for n in ("fresh", "used", "flagged"))
        auditor = store.add_key("auditor", 10, auditor=True)
    httpx.post(
        f"{detect_server.url}/v1/predict",
        json={"inputs": records(setup.features.iloc[:3])},
        headers={"Authorization": f"Bearer {used}"},
    ).raise_for_status()
    stream = walk(setup.features, 0, N_WALK)
    for start in range(0, len(stream), BATCH):
        httpx.post(
            f"{detect_server.url}/v1/predict",
            json={"inputs": records(stream.iloc[start : start + BATCH])},
            headers={"Authorization": f"Bearer {flagged}"},
        )
    config = load_config(
        {
            "dataset": "german_credit",
            "budgets": [50, 60],
            "target_url": detect_server.url,
            "api_key_env": "ATTACK",
            "auditor_key_env": "AUDIT",
        }
    )
    monkeypatch.setenv("AUDIT", auditor)
    monkeypatch.setenv("ATTACK", f"{fresh},{used}")
    remote = RemoteTarget.open(config)
    remote.check_attackers([50], "ATTACK")  # the fresh key is fine
    with pytest.raises(ConfigError) as info:
        remote.check_attackers([50, 60], "ATTACK")
    assert str(info.value) == NOT_FRESH.format(env="ATTACK", which="budget 60", used=3)
    monkeypatch.setenv("ATTACK", flagged)
    remote = RemoteTarget.open(config)
    with pytest.raises(ConfigError) as info:
        remote.check_attackers([50, 60], "ATTACK")
    local, detector = local_run(setup, stream, refuse=True)
    assert str(info.value) == FLAGGED_KEY.format(
        env="ATTACK",
        which="budget 50, budget 60",
        after=detector.flagged_after,
        used=local.log.rows_answered,
    )
    assert flagged not in str(info.value)


def test_detector_settings_without_a_detector_are_refused(setup: Setup, tmp_path: Path) -> None:
    from multisteal.service.app import create_app

    db = f"sqlite:///{tmp_path / 's.db'}"
    with pytest.raises(InvalidInputError, match="no detector is: add --detect prada"):
        create_app(setup.target, store_url=db, detect_params={"delta": 0.8})
    with pytest.raises(InvalidInputError, match="needs a detector"):
        create_app(setup.target, store_url=db, detect_refuse=True)
    with pytest.raises(InvalidInputError, match="Unknown detector 'nonsense'"):
        create_app(setup.target, store_url=db, detect="nonsense")
