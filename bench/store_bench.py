"""Engine throughput by store, in the same run: one `datavisa serve` on SQLite, one on
PostgreSQL, and two on one PostgreSQL database (the clients spread over both).

The work is the access check a service asks (POST /v1/access/check with a service token):
each one is decided by the engine's OPA and written to the decision log, the hash chain
every engine on a store appends to in turn, so it measures the shared write path. The
same clients (threads with keep-alive sessions) for the same seconds on each setup; the
figures are checks per second and the latency percentiles, and the ratios between setups.

    .venv/bin/python bench/store_bench.py --seconds 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.api.tokens import SERVICE, TokenStore
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.policy.process import free_port, stop_process

DATAVISA = Path(sys.executable).with_name("datavisa")
CHECK = {"subject": "alice", "resource": "eu-customer-analytics", "action": "read",
         "location": "DE"}  # fmt: skip
START_TIMEOUT_S = 60.0


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def _serve(db: str, log: Path) -> Iterator[str]:
    port = free_port()
    out = log.open("w")
    env = {**os.environ, KEY_ENV: "bench-log-key"}
    proc = subprocess.Popen(
        [str(DATAVISA), "serve", "--db", db, "--listen", f"127.0.0.1:{port}"],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve on {db} did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        stop_process(proc)
        out.close()


def _load(urls: list[str], token: str, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` threads, client i on urls[i % len(urls)], for `seconds` after a warm-up."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start, stop = threading.Barrier(clients + 1), threading.Event()

    def client(i: int) -> None:
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        url = urls[i % len(urls)] + "/v1/access/check"
        for _ in range(20):  # warm-up: connections, caches
            session.post(url, json=CHECK, timeout=10)
        start.wait()
        while not stop.is_set():
            began = time.perf_counter()
            answer = session.post(url, json=CHECK, timeout=10)
            if answer.status_code != 200 or "allow" not in answer.json():
                errors[i] += 1
            latencies[i].append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    every = sorted(x for one in latencies for x in one)

    def pct(q: float) -> float:
        return round(every[min(len(every) - 1, int(q * len(every)))] * 1000, 2)

    return {
        "engines": len(urls),
        "clients": clients,
        "checks": len(every),
        "errors": sum(errors),
        "checks_per_s": round(len(every) / elapsed, 1),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def _service_token(db: str) -> str:
    tokens = TokenStore(db)
    try:
        return tokens.issue("bench-pep", SERVICE)[0]
    finally:
        tokens.close()


def measure(work: Path, seconds: float = 10.0, clients: int = 8) -> dict[str, Any]:
    """Checks per second and latency on each setup, and the ratios to one SQLite engine."""
    out: dict[str, Any] = {"seconds": seconds}
    with LocalPostgres(settings={"fsync": "on", "synchronous_commit": "on"}) as pg:
        setups = {
            "sqlite_1": (str(work / "store-bench.db"), 1),
            "postgresql_1": (pg.create_database("bench_one"), 1),
            "postgresql_2": (pg.create_database("bench_two"), 2),
        }
        for name, (db, engines) in setups.items():
            token = _service_token(db)
            with contextlib.ExitStack() as stack:
                urls = [
                    stack.enter_context(_serve(db, work / f"{name}-{i}.log"))
                    for i in range(engines)
                ]
                out[name] = _load(urls, token, clients, seconds)
            print(f"  store {name}: {out[name]}", flush=True)
    base = out["sqlite_1"]["checks_per_s"] or 1.0
    out["ratio_postgresql_1_to_sqlite"] = round(out["postgresql_1"]["checks_per_s"] / base, 2)
    out["ratio_postgresql_2_to_sqlite"] = round(out["postgresql_2"]["checks_per_s"] / base, 2)
    return out


_SETUPS = (
    ("sqlite_1", "one engine, SQLite"),
    ("postgresql_1", "one engine, PostgreSQL"),
    ("postgresql_2", "two engines, one PostgreSQL"),
)


def markdown(store: dict[str, Any]) -> list[str]:
    """The results as a section of the bench report."""
    lines = [
        "",
        "## Engine throughput by store (access checks, each logged)",
        "",
        "| setup | checks/s | p50 ms | p99 ms | errors |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, name in _SETUPS:
        cell = store[key]
        lines.append(
            f"| {name} | {cell['checks_per_s']:,.0f} | {cell['p50_ms']:.2f} | "
            f"{cell['p99_ms']:.2f} | {cell['errors']} |"
        )
    lines += [
        "",
        f"{store['sqlite_1']['clients']} clients for {store['seconds']:g} s on each setup, in "
        f"the same run; PostgreSQL / SQLite: {store['ratio_postgresql_1_to_sqlite']:.2f} with "
        f"one engine, {store['ratio_postgresql_2_to_sqlite']:.2f} with two "
        "(bench/store_bench.py).",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    import tempfile

    with tempfile.TemporaryDirectory(prefix="datavisa-store-bench-") as tmp:
        print(json.dumps(measure(Path(tmp), args.seconds, args.clients), indent=2))


if __name__ == "__main__":
    main()
