"""A transfer check beside an access check: p50 and p99 of each through `datavisa serve`,
one client, sequential keep-alive POSTs, alternating, so both see the same machine.

The access check is the bench's allow (bench/run.py ALLOW); the transfer check names a
resource and a target region no approved transfer covers, so it is a deny
(`no_approved_transfer`) after the same work: the store read, one OPA query, one commit
of the decision log. Both go by the fast lane and coalescing (engine/api/fastlane.py,
engine/policy/coalesce.py).

    .venv/bin/python bench/transfer_bench.py [--count N]   # these rows alone, printed
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import requests
from fixtures import RESOURCE, SERVICE_SUBJECT, SUBJECT, Served

ACCESS = {"subject": SUBJECT, "resource": RESOURCE, "action": "read", "location": "DE"}
TRANSFER = {"resource": RESOURCE, "target_region": "aws:ap-southeast-1"}
WARM = 50  # the first requests of each warm connections and caches


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def measure(srv: Served, count: int) -> dict[str, Any]:
    """p50 and p99 of each check, and the transfer check's p50 over the access check's."""
    asks = {"access": ("/v1/access/check", ACCESS), "transfer": ("/v1/transfers/check", TRANSFER)}
    took: dict[str, list[float]] = {name: [] for name in asks}
    with requests.Session() as session:
        session.headers.update(srv.auth(SERVICE_SUBJECT))
        for i in range(count + WARM):
            for name, (path, body) in asks.items():
                started = time.perf_counter()
                response = session.post(srv.url + path, json=body, timeout=10)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"{path} answered {response.status_code}: {response.text}")
                if i >= WARM:
                    took[name].append(elapsed)
    cells = {
        name: {"p50_ms": round(_pct(v, 50), 3), "p99_ms": round(_pct(v, 99), 3)}
        for name, v in took.items()
    }
    ratio = cells["transfer"]["p50_ms"] / cells["access"]["p50_ms"]
    return {"count": count, **cells, "transfer_vs_access_p50": round(ratio, 3)}


def markdown(record: dict[str, Any] | None) -> list[str]:
    """The rows of the bench report, if measured."""
    if not record:
        return []
    access, transfer = record["access"], record["transfer"]
    return [
        "",
        "## A transfer check beside an access check",
        "",
        "| check | p50 ms | p99 ms |",
        "| --- | --- | --- |",
        f"| POST /v1/access/check | {access['p50_ms']:.2f} | {access['p99_ms']:.2f} |",
        f"| POST /v1/transfers/check | {transfer['p50_ms']:.2f} | {transfer['p99_ms']:.2f} |",
        "",
        f"{record['count']:,} sequential checks each, one client, alternating: the transfer "
        f"check's p50 is {record['transfer_vs_access_p50']:.2f} times the access check's "
        "(bench/transfer_bench.py).",
    ]


def main() -> None:
    """These rows alone, against a `datavisa serve` of their own (bench/fixtures.py)."""
    import tempfile
    from pathlib import Path

    import fixtures

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="checks of each kind")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="datavisa-transfer-") as tmp,
        fixtures.served(Path(tmp)) as srv,
    ):
        fixtures.real_grant(srv)
        print(json.dumps(measure(srv, args.count), indent=1))


if __name__ == "__main__":
    main()
