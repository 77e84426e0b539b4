"""What judging decisions by the alert rules costs OPA, per decision (issue 18, item 6).

The monitor (engine/monitoring/monitor.py) judges the decision log as it grows: batches of
records, each with its history, asked of `datavisa.monitor` in one OPA query. Its cost
hides in the OPA CPU column of the engine's cells, beside the access decisions', so it is
measured here on its own: an engine on a fresh SQLite file and an OPA of the same kind
records `count` access checks (asked as the server asks them, in coalesced batches), then
the monitor judges them all, and the OPA process's CPU time over that, divided by the
decisions judged, is the figure. The same is measured for asking the checks themselves,
for scale.

    .venv/bin/python bench/monitor_cost.py [--count 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from fixtures import cpu_s, own_cpu_s

from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.decision import Check
from datavisa.engine.monitoring.monitor import Monitor
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

BATCH = 32  # checks asked together, as the server coalesces them at 32 clients
SUBJECTS = 50  # distinct subjects asking, so the history the rules read varies
LOCATIONS = ("DE", "FR", "US", "IN")  # allowed, allowed, denied abroad, denied abroad


def _checks(first: int, count: int) -> list[Check]:
    """Checks `first` to `first + count`, made when asked: a Check's answer is due within
    the OPA timeout of its making (asked_at), so checks made all at once up front would be
    past due after a couple of seconds of a slow machine, and denied without asking OPA
    (policy_unavailable, no input logged): neither asking nor judging would be measured."""
    return [
        Check(
            f"user-{i % SUBJECTS}@example.com",
            "eu-customer-analytics",
            "read",
            LOCATIONS[i % len(LOCATIONS)],
            {},
            "bench-service",
        )
        for i in range(first, first + count)
    ]


def measure(workdir: Path, count: int = 2000) -> dict[str, Any]:
    """OPA and engine CPU per decision: asking `count` access checks, then judging them."""
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, workdir / "monitor.tar.gz", "bench")
    with OpaProcess(tarball) as opa:
        assert opa.pid is not None
        store, client = Store(workdir / "monitor.db"), opa.client()
        engine = Engine(store, client, revision="bench", log=DecisionLog(store, b"bench"))
        engine.grants.sync()
        monitor = Monitor(engine.log, client)  # judges what is logged from now on
        opa_before, own_before, wall = cpu_s(opa.pid), own_cpu_s(), time.perf_counter()
        unasked = 0
        for at in range(0, count, BATCH):
            decisions = engine.check_many(_checks(at, min(BATCH, count - at)))
            unasked += sum(d.codes == ["policy_unavailable"] for d in decisions)
        asked = _spent(opa.pid, opa_before, own_before, wall, count)
        if unasked:
            raise SystemExit(f"{unasked} of {count} checks got no answer from OPA in time")
        opa_before, own_before, wall = cpu_s(opa.pid), own_cpu_s(), time.perf_counter()
        alerts = monitor.run_once()
        judged = _spent(opa.pid, opa_before, own_before, wall, count)
        monitor.stop()
        store.close()
        client.close()
    return {
        "decisions": count,
        "batch": BATCH,
        "asking": asked,
        "judging": judged,
        "alerts_raised": len(alerts),
    }


def _spent(opa_pid: int, opa_before: float, own_before: float, wall: float, n: int) -> dict:
    return {
        "opa_cpu_us_per_decision": round((cpu_s(opa_pid) - opa_before) / n * 1e6, 1),
        "engine_cpu_us_per_decision": round((own_cpu_s() - own_before) / n * 1e6, 1),
        "wall_us_per_decision": round((time.perf_counter() - wall) / n * 1e6, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="decisions asked and judged")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datavisa-monitor-") as tmp:
        print(json.dumps(measure(Path(tmp), args.count), indent=1))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
