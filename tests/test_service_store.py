"""The service's durable store: API keys, exact budgets under concurrency, crash safety.

Each test names the wrong implementation it catches. The concurrency and crash tests run real
processes (``multiprocessing`` spawn), so the module imports nothing heavy: each child imports
this module to find its target function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multisteal.errors import BudgetExceededError, InvalidInputError
from multisteal.service.store import (
    BAD_URL,
    QueryEntry,
    Store,
    hash_key,
    open_store,
)

SPAWN = multiprocessing.get_context("spawn")
N_PROCESSES = 8


def entry(tag: str = "", inputs: bytes | None = None) -> QueryEntry:
    return QueryEntry(sha256=hash_key(tag), received_at=time.time(), inputs=inputs)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


# -- keys ----------------------------------------------------------------------------------------


def test_add_and_authenticate_stores_only_the_hash(sqlite_url: str, tmp_path: Path) -> None:
    """Catches: the key stored in plain text; authenticate accepting a wrong key."""
    with open_store(sqlite_url) as store:
        key = store.add_key("alice", 100, rate=5.0)
        other = store.add_key("bob", 7)
        info = store.authenticate(key)
        assert info is not None
        assert (info.name, info.budget, info.used, info.remaining) == ("alice", 100, 0, 100)
        assert info.rate_per_second == 5.0
        bob = store.authenticate(other)
        assert bob is not None
        assert bob.name == "bob"
        assert bob.rate_per_second is None
        assert store.authenticate(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
        assert store.authenticate("") is None
        assert store.authenticate(hash_key(key)) is None  # the digest is not a key
        assert len(key) >= 43
        assert key != other
        on_disk = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        assert key.encode() not in on_disk
        assert other.encode() not in on_disk
        assert hash_key(key).encode() in on_disk


def test_duplicate_name_bad_budget_rate_and_url_are_clear_errors(sqlite_url: str) -> None:
    """Catches: a second key silently replacing the first; budgets of 0, -1, 1.5 or True."""
    with open_store(sqlite_url) as store:
        first = store.add_key("alice", 10)
        with pytest.raises(InvalidInputError, match="named 'alice' already exists"):
            store.add_key("alice", 20)
        assert store.authenticate(first) is not None
        assert [k.name for k in store.list_keys()] == ["alice"]
        for budget in (0, -1, 1.5, True, "10"):
            with pytest.raises(InvalidInputError, match="positive whole number"):
                store.add_key("carol", budget)  # type: ignore[arg-type]
        for rate in (0, -2.0, float("inf"), float("nan"), "fast"):
            with pytest.raises(InvalidInputError, match="rate limit"):
                store.add_key("carol", 10, rate=rate)  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="non-empty string"):
            store.add_key("  ", 10)
        key_id = store.list_keys()[0].id
        for rows in (0, -3, 2.0, True):
            with pytest.raises(InvalidInputError, match="positive whole number of rows"):
                store.charge_and_log(key_id, rows, entry())  # type: ignore[arg-type]
        with pytest.raises(InvalidInputError, match="No API key has id 999"):
            store.charge_and_log(999, 1, entry())
        with pytest.raises(InvalidInputError, match="No API key has id 999"):
            store.remaining(999)
        assert store.remaining(key_id) == 10
    for url in ("mysql://u@h/db", "sqlite://relative.db", "sqlite:///", "store.db", "http://x"):
        with pytest.raises(InvalidInputError, match="accepted forms") as caught:
            open_store(url)
        assert str(caught.value) == BAD_URL.format(url=url)
    with pytest.raises(InvalidInputError, match="synchronous"):
        open_store(sqlite_url + "?synchronous=off")


# -- budgets -------------------------------------------------------------------------------------


def test_charge_exactly_to_the_budget(sqlite_url: str) -> None:
    """Catches: an off-by-one (``<`` for ``<=``) that refuses the batch reaching the budget."""
    with open_store(sqlite_url) as store:
        store.add_key("alice", 10)
        key_id = store.list_keys()[0].id
        assert store.charge_and_log(key_id, 4, entry("a")) == 6
        assert store.charge_and_log(key_id, 6, entry("b")) == 0
        assert store.remaining(key_id) == 0
        with pytest.raises(BudgetExceededError, match="only 0 of the budget of 10 rows remain"):
            store.charge_and_log(key_id, 1, entry("c"))
        log = store.log(key_id)
        assert log["status"].tolist() == ["answered", "answered", "refused-budget"]
        assert log["batch"].tolist() == [0, 1, 2]
        assert log["used_after"].tolist() == [4, 10, 10]
        assert log["sha256"].tolist() == [hash_key(t) for t in "abc"]
        assert log["answered_at"].notna().tolist() == [True, True, False]
        assert store.key_info(key_id).used == 10


def test_crossing_batch_is_refused_whole_and_logged(sqlite_url: str) -> None:
    """Catches: a partial batch answered (charging min(rows, remaining)) and a refused batch
    charged or left out of the log."""
    with open_store(sqlite_url) as store:
        store.add_key("alice", 10)
        store.add_key("bob", 5)
        alice, bob = (k.id for k in store.list_keys())
        assert store.charge_and_log(alice, 7, entry()) == 3
        with pytest.raises(BudgetExceededError, match="has 5 rows but only 3 of the budget"):
            store.charge_and_log(alice, 5, entry("crossing"))
        assert store.remaining(alice) == 3
        assert store.remaining(bob) == 5  # one key's budget is not another's
        last = store.log(alice).iloc[-1]
        assert (last["status"], last["rows"], last["used_after"]) == ("refused-budget", 5, 7)
        assert last["sha256"] == hash_key("crossing")
        assert store.charge_and_log(alice, 3, entry()) == 0
        store.log_refusal(bob, 2, entry(inputs=b"\x01\x02"), "refused-flagged")
        with pytest.raises(InvalidInputError, match="refused"):
            store.log_refusal(bob, 2, entry(), "answered")
        full = store.log(inputs=True)
        assert full["key"].tolist() == ["alice", "alice", "alice", "bob"]
        assert full["inputs"].tolist()[-1] == b"\x01\x02"
        assert full.groupby("key")["batch"].apply(list).to_dict() == {
            "alice": [0, 1, 2],
            "bob": [0],
        }
        answered = full[full["status"] == "answered"]
        assert int(answered["rows"].sum()) == 10
        assert store.remaining(bob) == 5


def test_charge_is_committed_before_it_returns(sqlite_url: str) -> None:
    """Catches: the log written after the answer, or a charge left uncommitted (another
    connection must see both the charge and the row as soon as the call returns)."""
    with open_store(sqlite_url) as writer, open_store(sqlite_url) as reader:
        writer.add_key("alice", 10)
        key_id = writer.list_keys()[0].id
        writer.charge_and_log(key_id, 3, entry("x", inputs=b"payload"))
        assert reader.remaining(key_id) == 7
        log = reader.log(key_id, inputs=True)
        assert log["rows"].tolist() == [3]
        assert log["inputs"].tolist() == [b"payload"]


# -- concurrency ---------------------------------------------------------------------------------


def planned_batches(seed: int, index: int, n_batches: int, max_rows: int) -> list[int]:
    rng = random.Random(seed * 1000 + index)
    return [rng.randint(1, max_rows) for _ in range(n_batches)]


def hammer(
    url: str,
    key_id: int,
    seed: int,
    n_batches: int,
    max_rows: int,
    n_threads: int,
    barrier: Any,
    results: Any,
) -> None:
    """A worker process: ``n_threads`` connections each send ``n_batches`` random batches;
    after its first refusal a connection sends one-row batches until one is refused too, so
    the budget ends exhausted exactly whenever demand exceeds it. Puts the rows answered."""
    answered: list[int] = []
    lock = threading.Lock()

    def one_connection(index: int) -> None:
        mine = 0
        with open_store(url) as store:
            barrier.wait()
            for rows in planned_batches(seed, index, n_batches, max_rows):
                try:
                    store.charge_and_log(key_id, rows, entry(f"{seed}-{index}-{mine}"))
                except BudgetExceededError:
                    break
                mine += rows
            else:
                with lock:
                    answered.append(mine)
                return
            while True:
                try:
                    store.charge_and_log(key_id, 1, entry())
                except BudgetExceededError:
                    break
                mine += 1
        with lock:
            answered.append(mine)

    threads = [threading.Thread(target=one_connection, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results.put(sum(answered) if len(answered) == n_threads else -1)


def run_hammer(
    url: str,
    key_id: int,
    *,
    n_processes: int,
    n_threads: int,
    n_batches: int,
    max_rows: int,
) -> tuple[list[int], int]:
    """Run the workers; return the rows each process got answered and the planned demand."""
    barrier = SPAWN.Barrier(n_processes * n_threads)
    results = SPAWN.Queue()
    processes = [
        SPAWN.Process(
            target=hammer,
            args=(url, key_id, seed, n_batches, max_rows, n_threads, barrier, results),
        )
        for seed in range(n_processes)
    ]
    for process in processes:
        process.start()
    answered = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    demand = sum(
        sum(planned_batches(seed, index, n_batches, max_rows))
        for seed in range(n_processes)
        for index in range(n_threads)
    )
    return answered, demand


def check_exact(store: Store, key_id: int, budget: int, demand: int, answered: list[int]) -> None:
    """The invariants of an exact budget, from the workers' side and from the log."""
    assert -1 not in answered  # every connection finished
    log = store.log(key_id)
    ok = log[log["status"] == "answered"]
    total = int(ok["rows"].sum())
    assert total <= budget  # never over budget, not by one row
    assert total == min(budget, demand)
    assert sum(answered) == total  # every answer the workers got is in the log, and only those
    assert store.key_info(key_id).used == total
    # In commit order, each answered batch's used_after is the running total: no lost update.
    assert ok["used_after"].tolist() == ok["rows"].cumsum().tolist()
    assert sorted(log["batch"]) == list(range(len(log)))  # the per-key sequence has no gaps
    refused = log[log["status"] == "refused-budget"]
    assert (refused["used_after"] + refused["rows"] > budget).all()


@pytest.mark.parametrize("over_budget", [True, False], ids=["demand>budget", "demand<budget"])
def test_processes_never_exceed_the_budget_sqlite(sqlite_url: str, over_budget: bool) -> None:
    """Eight spawned processes hammer one key. Catches: a read-then-write race (check the
    remaining budget, then UPDATE used = new value: lost updates and overspending), a partial
    batch answered at the edge of the budget, and a log row missing for an answered batch."""
    n_batches, max_rows = 12, 25
    budget = 1000 if over_budget else 100_000
    with open_store(sqlite_url) as store:
        store.add_key("target", budget)
        key_id = store.list_keys()[0].id
        answered, demand = run_hammer(
            sqlite_url,
            key_id,
            n_processes=N_PROCESSES,
            n_threads=1,
            n_batches=n_batches,
            max_rows=max_rows,
        )
        assert (demand > budget) == over_budget
        check_exact(store, key_id, budget, demand, answered)
        if over_budget:
            assert store.remaining(key_id) == 0


# -- crash safety --------------------------------------------------------------------------------


def charge_then_die(url: str, key_id: int, before: int) -> None:
    """Charge ``before`` batches of 2 rows, then SIGKILL this process inside the next
    transaction, after its UPDATE and INSERT and before its COMMIT."""
    store = open_store(url)
    for _ in range(before):
        store.charge_and_log(key_id, 2, entry())
    store._before_commit = lambda: os.kill(os.getpid(), signal.SIGKILL)
    store.charge_and_log(key_id, 5, entry("doomed"))
    raise AssertionError("unreachable: the hook kills the process")


def check_crash_leaves_store_consistent(url: str) -> None:
    with open_store(url) as store:
        store.add_key("alice", 50)
        key_id = store.list_keys()[0].id
        child = SPAWN.Process(target=charge_then_die, args=(url, key_id, 3))
        child.start()
        child.join(timeout=60)
        assert child.exitcode == -signal.SIGKILL
    with open_store(url) as store:  # reopen: SQLite recovers its WAL here
        log = store.log(key_id)
        assert log["status"].tolist() == ["answered"] * 3
        assert hash_key("doomed") not in set(log["sha256"])
        assert store.key_info(key_id).used == int(log["rows"].sum()) == 6
        # The dead process's lock is gone: the store takes writes again.
        assert store.charge_and_log(key_id, 44, entry()) == 0
        assert store.log(key_id)["batch"].tolist() == [0, 1, 2, 3]


def test_sigkill_inside_a_transaction_leaves_the_store_consistent_sqlite(sqlite_url: str) -> None:
    """Catches: the charge committed in one transaction and the log row in another (a crash
    between them leaves rows counted but not logged), and a charge surviving its dead process."""
    check_crash_leaves_store_consistent(sqlite_url)


# -- rate limits ---------------------------------------------------------------------------------


def test_rate_limit_is_a_token_bucket_shared_by_connections(sqlite_url: str) -> None:
    """Catches: a per-process (in-memory) bucket, which would let each worker take its own
    burst, and a refused request that still takes a token."""
    with open_store(sqlite_url) as one, open_store(sqlite_url) as two:
        one.add_key("limited", 10, rate=2.0)
        one.add_key("free", 10)
        limited, free = (k.id for k in one.list_keys())
        assert one.check_rate(limited, 100.0) is None
        assert two.check_rate(limited, 100.0) is None  # the burst of 2 is shared
        assert one.check_rate(limited, 100.0) == pytest.approx(0.5)
        assert two.check_rate(limited, 100.25) == pytest.approx(0.25)  # refusals take nothing
        assert one.check_rate(limited, 100.5) is None
        assert two.check_rate(limited, 100.5) == pytest.approx(0.5)
        assert one.check_rate(limited, 90.0) == pytest.approx(0.5)  # clock skew: no refill
        assert one.check_rate(limited, 200.0) is None  # refilled to the burst, not beyond
        assert one.check_rate(limited, 200.0) is None
        assert one.check_rate(limited, 200.0) is not None
        assert all(one.check_rate(free, 100.0) is None for _ in range(20))
        with pytest.raises(InvalidInputError, match="No API key"):
            one.check_rate(12345, 100.0)


# -- PostgreSQL ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_bin() -> Path | None:
    for name in ("initdb", "pg_ctl"):
        if shutil.which(name) is None and not Path("/usr/local/bin", name).exists():
            break
    else:
        found = shutil.which("pg_ctl") or "/usr/local/bin/pg_ctl"
        return Path(found).resolve().parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return versions[-1].parent if versions else None


@contextlib.contextmanager
def _postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL server on a free loopback port; yields its admin URL.

    initdb refuses to run as root, so as root the server runs as the ``nobody`` user (its
    data folder is made in /tmp and handed to that user). Without server binaries, the
    ``pgserver`` package is tried; the test is skipped only when neither can start one.
    """
    bindir = _postgres_bin()
    if bindir is None:
        if importlib.util.find_spec("pgserver") is None:
            pytest.skip("no PostgreSQL server: neither initdb/pg_ctl nor the pgserver package")
        import pgserver  # type: ignore[import-not-found,unused-ignore]

        with tempfile.TemporaryDirectory(prefix="multisteal-pgserver-") as folder:
            server = pgserver.get_server(folder, cleanup_mode="stop")
            yield str(server.get_uri())
        return
    user: str | None = None
    root = tempfile.mkdtemp(prefix="multisteal-pg-")
    try:
        if os.geteuid() == 0:
            user = "nobody"
            try:
                shutil.chown(root, user=user)
            except (LookupError, PermissionError) as exc:
                pytest.skip(f"running as root and cannot hand a data folder to 'nobody': {exc}")
        data = Path(root, "data")

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(bindir / args[0]), *args[1:]],
                user=user,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        made = run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
        if made.returncode != 0:
            pytest.skip(f"initdb could not make a PostgreSQL cluster: {made.stderr.strip()}")
        port = _free_port()
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c max_connections=40"
        log = str(Path(root, "server.log"))
        started = run("pg_ctl", "-D", str(data), "-o", options, "-l", log, "-w", "start")
        if started.returncode != 0:
            pytest.skip(f"pg_ctl could not start PostgreSQL: {Path(log).read_text()[-2000:]}")
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[str]:
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg 3 is not installed (pip install 'psycopg[binary]')")
    with _postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh database on the module's server for each test."""
    import psycopg

    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name).lower()[:50]
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    return postgres_server.rsplit("/", 1)[0] + "/" + name


def test_postgres_keys_budget_and_refusal(postgres_url: str) -> None:
    """The same contract on PostgreSQL. Catches: dialect slips (placeholders, RETURNING,
    booleans, bytes) and a duplicate name surfacing as a driver error."""
    with open_store(postgres_url) as store:
        key = store.add_key("alice", 10, rate=1.0)
        with pytest.raises(InvalidInputError, match="already exists"):
            store.add_key("alice", 10)
        info = store.authenticate(key)
        assert info is not None
        assert store.authenticate(key + "x") is None
        assert store.charge_and_log(info.id, 7, entry(inputs=b"\x00")) == 3
        with pytest.raises(BudgetExceededError, match="only 3 of the budget of 10"):
            store.charge_and_log(info.id, 4, entry())
        assert store.charge_and_log(info.id, 3, entry()) == 0
        log = store.log(info.id, inputs=True)
        assert log["status"].tolist() == ["answered", "refused-budget", "answered"]
        assert log["inputs"].tolist() == [b"\x00", None, None]
        assert log["flagged"].dtype == bool
        assert store.check_rate(info.id, 5.0) is None
        assert store.check_rate(info.id, 5.0) == pytest.approx(1.0)
    with open_store(postgres_url) as again:  # the schema is created idempotently
        assert again.remaining(info.id) == 0


def test_replicas_never_exceed_the_budget_postgres(postgres_url: str) -> None:
    """Two "replicas" (processes), each with four connections, hammer one key. Catches the
    read-then-write race, which READ COMMITTED does not prevent: a SELECT of the remaining
    budget followed by an UPDATE lets two transactions spend the same rows."""
    budget = 1000
    with open_store(postgres_url) as store:
        store.add_key("target", budget)
        key_id = store.list_keys()[0].id
        answered, demand = run_hammer(
            postgres_url, key_id, n_processes=2, n_threads=4, n_batches=12, max_rows=25
        )
        assert demand > budget
        check_exact(store, key_id, budget, demand, answered)
        assert store.remaining(key_id) == 0


def test_sigkill_inside_a_transaction_leaves_the_store_consistent_postgres(
    postgres_url: str,
) -> None:
    """Catches: a charge that survives its client dying before COMMIT (e.g. autocommit)."""
    check_crash_leaves_store_consistent(postgres_url)
