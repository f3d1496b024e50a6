"""Inputs per second through the HTTP prediction service against the in-process API.

A logistic target on German credit (raw records, the tabular encoder) is saved, served by
``multisteal serve`` with 1 and 4 uvicorn workers on loopback (SQLite store, synchronous=FULL,
beside the target), and queried by ``--clients`` concurrent ``HTTPQueryAPI`` clients, each with
its own key, at batch sizes 64, 256 and 1,024. The in-process ``LocalQueryAPI`` answers the same
batches in the same run. Every HTTP answer is compared with the in-process one.

    python benchmarks/bench_service.py [--requests 40] [--clients 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pandas as pd

from multisteal.data import load_dataset
from multisteal.data.inputs import input_spec_of
from multisteal.models import save_model
from multisteal.models.zoo import make_pipeline
from multisteal.query.api import LocalQueryAPI
from multisteal.service.client import HTTPQueryAPI
from multisteal.service.store import open_store


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def start(target: Path, workers: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-c", "from multisteal.cli import main; main()", "serve"]
    command += [str(target), "--port", str(port), "--workers", str(workers)]
    command += ["--max-batch", "1024"]
    process = subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="requests per client and size")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    args = parser.parse_args()
    ds = load_dataset("german_credit")
    spec = input_spec_of(ds)
    model = make_pipeline("logistic", spec, random_state=0).fit(ds.features, ds.y)
    rng = np.random.default_rng(0)
    records = ds.features.reset_index(drop=True)
    batches = {
        size: records.iloc[rng.integers(0, len(records), size=size)].reset_index(drop=True)
        for size in args.sizes
    }
    rows = []
    local = LocalQueryAPI(model, budget=None, input_spec=spec)
    for size, batch in batches.items():
        started = time.perf_counter()
        for _ in range(args.requests):
            local.query(batch)
        seconds = time.perf_counter() - started
        rows.append(("in-process", "-", size, args.requests * size / seconds, 0.0))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        target = save_model(
            model, folder / "run" / "target", metadata={"input_spec": spec.to_dict()}
        )
        db = f"sqlite:///{folder / 'run' / 'service.db'}"
        for workers in args.workers:
            process, url = start(target, workers, folder / f"serve{workers}.log")
            try:
                with open_store(db) as store:
                    keys = [
                        store.add_key(f"w{workers}-c{c}", budget=10**9) for c in range(args.clients)
                    ]
                clients = [HTTPQueryAPI(url, key, batch_size=1024) for key in keys]
                for size, batch in batches.items():
                    expected = local.query(batch)

                    want = expected.scores
                    assert want is not None

                    def work(
                        api: HTTPQueryAPI, batch: pd.DataFrame = batch, want: np.ndarray = want
                    ) -> float:
                        worst = 0.0
                        for _ in range(args.requests):
                            scores = api.query(batch).scores
                            assert scores is not None
                            worst = max(worst, float(np.abs(scores - want).max()))
                        return worst

                    clients[0].query(batch)  # warm every path once
                    started = time.perf_counter()
                    with ThreadPoolExecutor(len(clients)) as pool:
                        worst = max(pool.map(work, clients))
                    seconds = time.perf_counter() - started
                    total = len(clients) * args.requests * size
                    rows.append(("HTTP", str(workers), size, total / seconds, worst))
                for api in clients:
                    api.close()
            finally:
                process.terminate()
                process.wait(timeout=30)
    print(
        f"German credit logistic target, {args.clients} concurrent clients × {args.requests} "
        f"requests per batch size; {os.cpu_count()} CPUs; SQLite store (synchronous=FULL)"
    )
    print()
    print("| API | workers | batch | inputs / s | HTTP / in-process | largest difference |")
    print("|---|---|---|---:|---:|---:|")
    base = {size: rate for api, _, size, rate, _ in rows if api == "in-process"}
    for api, workers, size, rate, worst in rows:
        print(
            f"| {api} | {workers} | {size} | {rate:,.0f} | {rate / base[size]:.2f} | {worst:.1e} |"
        )


if __name__ == "__main__":
    main()
