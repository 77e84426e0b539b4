"""Grants in a real MariaDB: how long from approve to credentials that work, and from
revoke to the holder's open session being killed, on loopback — beside PostgreSQL's
(bench/postgres_bench.py, whose figures it is measured as).

A throwaway server (cli/local_mariadb.py), the shipped policy with a resource targeting
it, the engine in process with the MariaDB sink, as `datavisa serve` runs it:

- approve → usable: `approve` returns (the account is made through the outbox), the
  holder asks for credentials (an access decision) and reads a table as the account;
- revoke → killed: the holder's session is open; `revoke` returns when the server
  confirmed (sessions killed, account dropped); the session's next statement fails.

Run alone: `.venv/bin/python bench/mariadb_bench.py [--count N]`; `bench/run.py` runs it
as a step. The goal is p99 ≤ 200 ms for each.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pymysql
from postgres_bench import APPROVER, HOLDER, HOME, connector_result, run

from datavisa.cli.local_mariadb import LocalMariadb, MariadbUnavailable
from datavisa.engine.connectors.mariadb import Connection, MariadbSink
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import credentials
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

RESOURCE = "bench-support-tickets"
TARGET = (
    f"\n  {RESOURCE}:\n    region: aws:eu-central-1\n    tier: confidential\n    tags: [pd]\n"
    "    team: analytics\n    actions: [read]\n"
    "    target: {kind: mariadb, connection: support, database: support, tables: [tickets]}\n"
)


def measure(count: int) -> dict[str, Any] | None:
    """Both paths, `count` grants each; None where MariaDB is not installed."""
    try:
        server = LocalMariadb().start()
    except MariadbUnavailable as e:
        print(f"skipping the MariaDB benchmark: {e}", file=sys.stderr)
        return None
    try:
        server.create_database("support")
        with server.connect("support") as db, db.cursor() as cur:
            cur.execute("CREATE TABLE tickets (id int PRIMARY KEY, body text)")
        with tempfile.TemporaryDirectory(prefix="datavisa-mdbbench-") as tmp:
            work = Path(tmp)
            data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, work / "data"))
            resources = data / "resources.yaml"
            resources.write_text(resources.read_text().rstrip("\n") + TARGET)
            tarball = bundle.build(POLICY_DIR, data, work / "b.tar.gz", "bench")
            with OpaProcess(tarball) as opa:
                store = Store(work / "datavisa.db")
                log = DecisionLog(store, b"bench-key")
                engine = Engine(store, opa.client(), revision="bench", log=log)
                sink = MariadbSink({"support": Connection("support", server.dsn())}, store,
                                   engine.opa, log, "bench")  # fmt: skip
                engine.grants.sinks.append(sink)
                engine.grants.sync()
                try:
                    return _run(engine, count)
                finally:
                    sink.close()
                    store.close()
    finally:
        server.stop()


def _run(engine: Engine, count: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    usable, killed = [], []
    for _ in range(count):
        req = engine.request(HOLDER, RESOURCE, ["read"], 600, HOME, "bench")
        started = time.perf_counter()
        engine.approve(req.id, APPROVER, HOME)
        env = credentials(engine, req.id, HOLDER, HOME)["env"]
        session = pymysql.connect(
            host=env["MYSQL_HOST"], port=int(env["MYSQL_TCP_PORT"]), user=env["MYSQL_USER"],
            password=env["MYSQL_PWD"], database=env["MYSQL_DATABASE"], autocommit=True,
        )  # fmt: skip
        with session.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM tickets")
        usable.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        engine.revoke(req.id, APPROVER, "bench")
        try:
            with session.cursor() as cur:
                cur.execute("SELECT 1")
            raise SystemExit("the session outlived the revoke: the connector is broken")
        except pymysql.OperationalError:
            killed.append((time.perf_counter() - started) * 1000)
        finally:
            session.close()
    return connector_result(usable, killed, load_before)


if __name__ == "__main__":
    run(measure, __doc__, 100, "grants per path")
