"""The HTTP service under crashes and replicas: real uvicorn process groups on loopback.

Each test names the wrong implementation it catches.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from multisteal.errors import BudgetExceededError, MultistealError
from multisteal.query.ledger import batch_digest
from multisteal.service.app import CONFIG_ENV
from multisteal.service.client import HTTPQueryAPI
from multisteal.service.store import open_store
from service_helpers import free_port, save_german_target, uvicorn_command, wait_until_healthy
from test_service_store import _postgres_server


class Target:
    def __init__(self, path: Path, records: pd.DataFrame) -> None:
        self.path = path
        self.records = records

    def batch(self, seed: int, rows: int) -> pd.DataFrame:
        """``rows`` distinct records drawn by ``seed`` (distinct batches, distinct digests)."""
        index = np.random.default_rng(seed).choice(len(self.records), rows, replace=False)
        return self.records.iloc[index].reset_index(drop=True)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Target:
    folder = tmp_path_factory.mktemp("crash-target")
    path, ds, _ = save_german_target(folder)
    return Target(path, ds.features.reset_index(drop=True))


def _kill_group(process: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    """Signal the server's whole process group (the uvicorn master and its workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, sig)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def serving(
    target: Target, store_url: str, folder: Path, name: str, workers: int
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A uvicorn server in its own session (process group); yields its URL and process."""
    port = free_port()
    config = {"target_dir": str(target.path), "store_url": store_url, "max_batch": 300}
    env = {**os.environ, CONFIG_ENV: json.dumps(config)}
    log_path = folder / f"{name}.log"
    command = uvicorn_command(port, workers)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_healthy(url, process, log_path)
            yield url, process
        finally:
            if process.poll() is None:
                _kill_group(process, signal.SIGTERM)
            else:  # the master is gone; its workers must not outlive the test
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)


def _post(url: str, key: str, batch: pd.DataFrame) -> httpx.Response:
    body = {"inputs": json.loads(batch.to_json(orient="records"))}
    return httpx.post(
        f"{url}/v1/predict", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


# -- a crash in the middle of an attack ----------------------------------------------------------


def test_sigkill_during_an_attack_keeps_log_and_budget(target: Target, tmp_path: Path) -> None:
    """Catches: an answer sent before its charge and log row are committed (a batch the
    client holds but the log lacks), a charge and its log row written in separate commits
    (``used`` disagreeing with the log after the crash), a budget held in worker memory
    (reset by the restart), and a crossing batch answered in part after the restart."""
    budget, rows = 2000, 64  # 2000 = 31 * 64 + 16: the last full batch crosses the budget
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(store_url) as store:
        key = store.add_key("attacker", budget)
        info = store.authenticate(key)
        assert info is not None
        key_id = info.id

    received: list[tuple[int, str]] = []  # (rows, digest) of each batch the client got
    sent: list[str] = []  # the digest of every batch the client sent, answered or not
    failures: list[BaseException] = []
    enough = threading.Event()

    def attack(url: str) -> None:
        with HTTPQueryAPI(url, key, batch_size=rows, retries=0, timeout=30) as api:
            seed = 0
            while True:
                batch = target.batch(seed, rows)
                seed += 1
                sent.append(batch_digest(batch))
                try:
                    api.query(batch)
                except MultistealError as exc:  # the server died under the request
                    failures.append(exc)
                    return
                received.append((rows, batch_digest(batch)))
                if len(received) >= 4:
                    enough.set()
                if len(received) > 25:  # the kill never came: leave the budget unspent
                    return

    with serving(target, store_url, tmp_path, "first", workers=2) as (url, process):
        client = threading.Thread(target=attack, args=(url,))
        client.start()
        assert enough.wait(timeout=120), "the client got no answers"
        _kill_group(process, signal.SIGKILL)
        client.join(timeout=60)
        assert not client.is_alive()
    assert len(failures) == 1, "the client's request to a killed server must fail"
    assert 4 <= len(received) <= 25

    # the store after the crash, read before anything else touches it
    with open_store(store_url) as store:
        log = store.log(key_id)
        used = store.key_info(key_id).used
        remaining = store.remaining(key_id)
    answered = log[log["status"] == "answered"]
    assert set(log["status"]) == {"answered"}
    # Every batch the client holds is logged, in order; at most one more (the in-flight
    # batch, committed just before the kill) may be logged without reaching the client.
    logged = answered["sha256"].tolist()
    assert logged[: len(received)] == [d for _, d in received]
    assert len(received) <= len(logged) <= len(received) + 1
    if len(logged) > len(received):
        assert logged[-1] == sent[len(received)]
    assert answered["rows"].tolist() == [rows] * len(logged)
    assert used == int(answered["rows"].sum())
    assert remaining == budget - used
    assert answered["used_after"].tolist() == [rows * (i + 1) for i in range(len(logged))]
    assert log["batch"].tolist() == list(range(len(log)))

    # the restarted server continues from the store's count, exactly
    with (
        serving(target, store_url, tmp_path, "second", workers=2) as (url, _),
        HTTPQueryAPI(url, key, batch_size=rows, retries=0) as api,
    ):
        assert (api.ledger.total, api.ledger.used) == (budget, used)
        seed = 1000
        while (api.ledger.remaining or 0) >= rows:
            api.query(target.batch(seed, rows))
            seed += 1
        left = budget % rows
        assert api.ledger.remaining == left
        with pytest.raises(BudgetExceededError):  # the client refuses locally, sending nothing
            api.query(target.batch(seed, rows))
        crossing = _post(url, key, target.batch(seed + 1, rows))  # the service refuses whole
        assert crossing.status_code == 403
        assert crossing.json()["budget_remaining"] == left
        last = _post(url, key, target.batch(seed + 2, left))
        assert last.status_code == 200
        assert last.json()["budget_remaining"] == 0
        assert _post(url, key, target.batch(seed + 3, 1)).status_code == 403

    with open_store(store_url) as store:
        log = store.log(key_id)
        assert store.remaining(key_id) == 0
        assert store.key_info(key_id).used == budget
    answered = log[log["status"] == "answered"]
    assert int(answered["rows"].sum()) == budget
    refused = log[log["status"] == "refused-budget"]
    assert refused["rows"].tolist() == [rows, 1]
    assert refused["used_after"].tolist() == [budget - left, budget]
    assert log["batch"].tolist() == list(range(len(log)))


# -- replicas sharing one PostgreSQL budget ------------------------------------------------------


@pytest.fixture(scope="module")
def postgres_admin_url() -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg 3 is not installed (pip install 'psycopg[binary]')")
    with _postgres_server() as url:
        yield url


def test_two_replicas_share_one_postgres_budget(
    target: Target, tmp_path: Path, postgres_admin_url: str
) -> None:
    """Eight clients, four on each of two replicas (2 workers each) sharing one PostgreSQL
    store. Catches: a budget checked per replica or per worker (in memory, or read then
    written without a row lock: a lost update lets the replicas answer more than the budget),
    an off-by-one at the boundary (305 allows 30 ten-row batches, never 31), and a crossing
    batch answered in part (5 rows) instead of refused whole."""
    import psycopg

    with psycopg.connect(postgres_admin_url, autocommit=True) as admin:
        admin.execute('DROP DATABASE IF EXISTS "crash_replicas"')
        admin.execute('CREATE DATABASE "crash_replicas"')
    store_url = postgres_admin_url.rsplit("/", 1)[0] + "/crash_replicas"
    with (
        serving(target, store_url, tmp_path, "replica-a", workers=2) as (url_a, _),
        serving(target, store_url, tmp_path, "replica-b", workers=2) as (url_b, _),
    ):
        _eight_clients_share_one_budget(target, store_url, [url_a] * 4 + [url_b] * 4)


def test_eight_clients_on_four_workers_share_one_sqlite_budget(
    target: Target, tmp_path: Path
) -> None:
    """Eight concurrent clients sharing one key against one server with four worker processes
    on the default SQLite store. Catches: the same bugs as the PostgreSQL test, across the
    worker processes of one machine (each with its own connection)."""
    store_url = f"sqlite:///{tmp_path / 'service.db'}"
    with serving(target, store_url, tmp_path, "four-workers", workers=4) as (url, _):
        _eight_clients_share_one_budget(target, store_url, [url] * 8)


def _eight_clients_share_one_budget(target: Target, store_url: str, urls: list[str]) -> None:
    """Each client (its own connection) sends ten-row batches with one key of budget 305
    until refused; exactly 305 rows are answered, never 306, and the log says so."""
    budget, rows = 305, 10
    with open_store(store_url) as store:
        key = store.add_key("shared", budget)
        info = store.authenticate(key)
        assert info is not None
        key_id = info.id
    n = len(urls)
    answered: list[list[str]] = [[] for _ in range(n)]
    refusals: list[int] = [0] * n
    sent_refused: list[int] = [0] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def client(index: int, url: str) -> None:
        try:
            with HTTPQueryAPI(url, key, batch_size=rows, retries=0) as api:
                start.wait(timeout=60)
                seed = 10_000 * (index + 1)
                while True:
                    batch = target.batch(seed, rows)
                    seed += 1
                    try:
                        api.query(batch)
                    except BudgetExceededError:
                        refusals[index] += 1
                        # a 403 from the service, or refused locally (the last answer
                        # reported fewer than 10 rows left): only the first is logged
                        sent_refused[index] = sum(
                            r.status == "refused-budget" for r in api.log.records
                        )
                        return
                    answered[index].append(batch_digest(batch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i, urls[i])) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert refusals == [1] * n
    assert sum(len(a) for a in answered) * rows == budget - budget % rows
    # the 5 rows still left are answered, by either server; then nothing more
    assert _post(urls[-1], key, target.batch(1, budget % rows)).status_code == 200
    assert _post(urls[0], key, target.batch(2, 1)).status_code == 403

    with open_store(store_url) as store:
        log = store.log(key_id)
        assert store.remaining(key_id) == 0
        assert store.key_info(key_id).used == budget
    ok = log[log["status"] == "answered"]
    assert int(ok["rows"].sum()) == budget
    assert sorted(ok["used_after"].tolist()) == [*range(rows, budget, rows), budget]
    got = sorted(d for a in answered for d in a)
    assert sorted(ok["sha256"].tolist()[:-1]) == got  # the last is the 5-row batch
    refused = log[log["status"] == "refused-budget"]
    assert refused["rows"].tolist() == [rows] * sum(sent_refused) + [1]
    assert set(sent_refused) <= {0, 1}
    assert sorted(log["batch"].tolist()) == list(range(len(log)))
