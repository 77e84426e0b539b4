"""Supervised grants in a real PostgreSQL (issue 33, item 7): how long from a supervisor's
lease running out to the grant's login being refused and its open session ended, and
from a supervisor rejoining to a login that works.

A throwaway cluster (cli/local_postgres.py), the shipped policy with a short lease and
grace (1 s each: bench data only), the engine in process with the PostgreSQL sink and
the supervision timer running, as `datavisa serve` runs them. One supervised grant; each
round the holder opens a session, the supervisor stops renewing (a kill -9 of the watch,
as the store sees it), and the bench polls until:

- lapse → login refused: a new login as the grant's role fails, timed from the lease's
  own expiry instant (held_until);
- lapse → sessions ended: the open session's next statement fails, from the same instant
  (policy's grace is in it: the goal is p99 ≤ grace + 1 s);
- rejoin → login works: `join` returns (the pause is undone through the outbox) and a
  new login reads a table, from the call (goal p99 ≤ 200 ms).

Run alone: `.venv/bin/python bench/supervision_bench.py [--count N]`; `bench/run.py`
runs it as a step.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from postgres_bench import APPROVER, GOAL_P99_MS, HOLDER, HOME, RESOURCE, _summary, run

from datavisa.cli.local_postgres import LocalPostgres, PostgresUnavailable
from datavisa.engine.connectors.postgresql import Connection, PostgresSink
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import credentials
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store
from datavisa.engine.supervision import Supervision, SupervisionTimer

SUPERVISOR = "erin"  # a security officer: may supervise any team's data
GRACE_S = 1
SUPERVISION = (
    "supervised:\n  required:\n    resources:\n      eu-customer-analytics: [write]\n"
    f"  supervisors: [security_officer, data_owner]\n  lease_s: 1\n  heartbeat_s: 1\n"
    f"  grace_s: {GRACE_S}\n"
)
POLL_S = 0.005
GIVE_UP_S = 30.0


def measure(count: int) -> dict[str, Any] | None:
    """`count` lapses and rejoins; None where PostgreSQL is not installed."""
    try:
        cluster = LocalPostgres().start()
    except PostgresUnavailable as e:
        print(f"skipping the supervision benchmark: {e}", file=sys.stderr)
        return None
    try:
        analytics = cluster.create_database("analytics")
        with psycopg.connect(analytics, autocommit=True) as db:
            db.execute("CREATE TABLE customers (id int PRIMARY KEY, email text)")
            db.execute("CREATE TABLE orders (id int PRIMARY KEY, customer int, total numeric)")
        with tempfile.TemporaryDirectory(prefix="datavisa-supbench-") as tmp:
            work = Path(tmp)
            data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, work / "data"))
            (data / "supervision.yaml").write_text(SUPERVISION)
            tarball = bundle.build(POLICY_DIR, data, work / "b.tar.gz", "bench")
            with OpaProcess(tarball) as opa:
                store = Store(work / "datavisa.db")
                log = DecisionLog(store, b"bench-key")
                engine = Engine(store, opa.client(), revision="bench", log=log)
                sink = PostgresSink({"analytics": Connection("analytics", cluster.dsn())},
                                    store, engine.opa, log, "bench")  # fmt: skip
                engine.grants.sinks.append(sink)
                engine.grants.sync()
                supervision = Supervision(engine)
                timer = SupervisionTimer(supervision).start()
                try:
                    return _run(engine, supervision, count)
                finally:
                    timer.stop()
                    sink.close()
                    store.close()
    finally:
        cluster.stop()


def _logs_in(url: str) -> bool:
    try:
        with psycopg.connect(url, autocommit=True) as db:
            db.execute("SELECT count(*) FROM customers").fetchone()
    except psycopg.OperationalError:
        return False
    return True


def _open(session: psycopg.Connection) -> bool:
    try:
        session.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _run(engine: Engine, supervision: Supervision, count: int) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    req = engine.request(HOLDER, RESOURCE, ["read", "write"], 3600, HOME, "bench")
    grant_id = engine.approve(req.id, APPROVER, HOME).id
    held_until = supervision.join(grant_id, SUPERVISOR, HOME)["held_until"]
    url = credentials(engine, grant_id, HOLDER, HOME)["url"]
    refused, ended, rejoined = [], [], []
    for _ in range(count):
        session = psycopg.connect(url, autocommit=True)
        refused_at = ended_at = None
        deadline = time.monotonic() + GIVE_UP_S
        while refused_at is None or ended_at is None:
            if time.monotonic() > deadline:
                raise SystemExit("the grant was not paused: the supervision timer is broken")
            now = time.time()
            if now > held_until:  # the lease ran out: poll what the holder sees
                if ended_at is None and not _open(session):
                    ended_at = time.time()
                if refused_at is None and not _logs_in(url):
                    refused_at = time.time()
            time.sleep(POLL_S)
        session.close()
        refused.append((refused_at - held_until) * 1000)
        ended.append((ended_at - held_until) * 1000)

        started = time.perf_counter()
        held_until = supervision.join(grant_id, SUPERVISOR, HOME)["held_until"]
        if not _logs_in(url):
            raise SystemExit("login refused after the supervisor rejoined: the sink is broken")
        rejoined.append((time.perf_counter() - started) * 1000)
    engine.revoke(grant_id, APPROVER, "bench over")
    goal_lapse_ms = (GRACE_S + 1) * 1000.0
    result = {
        "lapse_to_login_refused": _summary(refused),
        "lapse_to_sessions_ended": _summary(ended),
        "rejoin_to_login": _summary(rejoined),
        "grace_s": GRACE_S,
        "goal_lapse_p99_ms": goal_lapse_ms,
        "goal_rejoin_p99_ms": GOAL_P99_MS,
        "loadavg_1m": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
        "cores": os.cpu_count(),
    }
    result["goal_met"] = (
        result["lapse_to_login_refused"]["p99_ms"] <= goal_lapse_ms
        and result["lapse_to_sessions_ended"]["p99_ms"] <= goal_lapse_ms
        and result["rejoin_to_login"]["p99_ms"] <= GOAL_P99_MS
    )
    return result


def markdown(result: dict[str, Any] | None) -> list[str]:
    """The report's section (bench/report.py), when it ran."""
    if not result:
        return []
    rows = [
        ("lease ran out → login refused", result["lapse_to_login_refused"], "goal_lapse_p99_ms"),
        ("lease ran out → open session ended", result["lapse_to_sessions_ended"],
         "goal_lapse_p99_ms"),
        ("supervisor rejoins → login works", result["rejoin_to_login"], "goal_rejoin_p99_ms"),
    ]  # fmt: skip
    lines = [
        "",
        "## Supervised grants in PostgreSQL",
        "",
        "| path | p50 ms | p99 ms | goal p99 ms |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {result[goal]:.0f} |"
              for name, s, goal in rows]  # fmt: skip
    lines += [
        "",
        f"{result['rejoin_to_login']['count']} lapses and rejoins of one supervised grant, "
        f"grace {result['grace_s']} s (the lapse paths include it), on a throwaway cluster "
        "(bench/supervision_bench.py); goals "
        + ("met" if result["goal_met"] else "**not met**")
        + ".",
    ]
    return lines


if __name__ == "__main__":
    run(measure, __doc__, 50, "lapses and rejoins")
