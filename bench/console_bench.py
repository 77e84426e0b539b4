"""The console's figures (issue 27, item 5): the approver's queue page and an approval
through the console API, at 1,000 pending requests, on `datavisa serve` (its own OPA and
SQLite), over loopback HTTP with bob's bearer token, as the console's page asks them.

Two sets of 1,000 pending requests, one after the other:
  mixed  every person of the directory asking for every resource (in turns), from their
         employer's country: what an organisation's queue holds; policy offers bob those
         of his team's data (his queue is a part of the pending set);
  all    1,000 requests bob may approve (alice's, on his team's data): the most the
         queue's policy evaluation can be asked, every request judged in full.
Each is filed once through the API and copied in the store as pending rows (a person
has one pending request per resource, so only copies reach 1,000).

`queue` is GET /v1/queue?location=DE, sequential: the first page (the console's 50) and
a later one (the third, from the cursor the second gave), as the console's page asks
them; `approve` is POST /v1/requests/{id}/approve of a request the first page offered,
each approval followed by one more pending copy written in, so every approval meets
1,000 pending. Latency p50/p99/max; the goal is 100 ms p99 for every queue page of both
sets. Records of before the queue had pages (2026-12-08 and earlier) measured the whole
queue in one answer; `markdown_section` reads both.

    .venv/bin/python bench/console_bench.py            # writes bench/results/<date>-console.*
    .venv/bin/python bench/console_bench.py --quick    # a smoke run, printed only
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fixtures
from fixtures import APPROVER, RESOURCE, SUBJECT, Served
from load import percentile

from datavisa.engine.model.records import PENDING, Request
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR
from datavisa.engine.store.sqlite import Store

RESULTS = Path(__file__).resolve().parent / "results"
PENDING_COUNT = 1000
TARGET_P99_MS = 100.0  # the queue's goal at 1,000 pending (issue 27, item 5)


def _file(srv: Served) -> Request:
    """One real request, filed through the API (its decision recorded): the template."""
    answer = requests.post(
        f"{srv.url}/v1/requests",
        json={"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "bench"},
        headers=srv.auth(SUBJECT),
        timeout=30,
    )
    answer.raise_for_status()
    store = Store(srv.db)
    try:
        found = store.get(answer.json()["id"])
    finally:
        store.close()
    assert found is not None
    return found


def _mixed(template: Request, count: int) -> list[Request]:
    """Every person of the bundle's directory on every resource, in turns, each from
    their employer's country."""
    subjects = yaml.safe_load((DEFAULT_BUNDLE_DIR / "subjects.yaml").read_text())
    resources = yaml.safe_load((DEFAULT_BUNDLE_DIR / "resources.yaml").read_text())["resources"]
    entities = subjects["entities"]
    people = {k: v for k, v in subjects["subjects"].items() if v["kind"] == "person"}
    pairs = [(p, r) for r in sorted(resources) for p in sorted(people)]
    return [
        dataclasses.replace(
            template,
            id=f"mix{n:09d}",
            requester=person,
            resource=resource,
            actions=[resources[resource]["actions"][0]],
            location=entities[people[person]["entity"]]["country"],
            duration_s=(900, 1800, 3600)[n % 3],
        )
        for n, (person, resource) in ((n, pairs[n % len(pairs)]) for n in range(count))
    ]


def _copies(template: Request, count: int, prefix: str = "all") -> list[Request]:
    return [dataclasses.replace(template, id=f"{prefix}{n:09d}") for n in range(count)]


def _reset(srv: Served, rows: list[Request]) -> None:
    """The pending set is exactly `rows`."""
    store = Store(srv.db)
    try:
        with store.transaction() as db:
            db.execute("DELETE FROM requests WHERE state = ?", [PENDING])
            db["requests"].insert_all([r.to_row() for r in rows])
        have = store.db.execute(
            "SELECT count(*) FROM requests WHERE state = ?", [PENDING]
        ).fetchone()[0]
    finally:
        store.close()
    if have != len(rows):
        raise RuntimeError(f"{have} pending requests, wanted {len(rows)}")


def _summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {
        "n": len(ordered),
        "p50_ms": round(percentile(ordered, 50), 1),
        "p99_ms": round(percentile(ordered, 99), 1),
        "max_ms": round(ordered[-1], 1),
    }


def _queue(
    srv: Served, session: requests.Session, calls: int, cursor: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """`calls` times the page at `cursor` (the first page for None): its latency, and
    the last answer."""
    params = {"location": "DE"} | ({"cursor": cursor} if cursor else {})
    timings, body = [], {}
    for _ in range(calls):
        started = time.perf_counter()
        answer = session.get(f"{srv.url}/v1/queue", params=params, timeout=60)
        timings.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        body = answer.json()
    shown = {"shown": len(body["requests"]), "offered": body["total"], "bytes": len(answer.content)}
    return _summary(timings) | shown, body


def _later_cursor(srv: Served, session: requests.Session, pages: int = 2) -> str | None:
    """The cursor of the page after the first `pages` ones."""
    cursor = None
    for _ in range(pages):
        _, body = _queue(srv, session, 1, cursor)
        cursor = body["next_cursor"]
        if cursor is None:
            break
    return cursor


def _approvals(
    srv: Served, session: requests.Session, offered: dict, template: Request, calls: int
) -> dict[str, Any]:
    store = Store(srv.db)
    timings = []
    try:
        ids = [q["request"]["id"] for q in offered["requests"] if q["decision"]["allow"]][:calls]
        for n, request_id in enumerate(ids):
            started = time.perf_counter()
            answer = session.post(
                f"{srv.url}/v1/requests/{request_id}/approve", json={"location": "DE"}, timeout=60
            )
            timings.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            with store.transaction() as db:  # back to 1,000 pending for the next one
                db["requests"].insert(dataclasses.replace(template, id=f"new{n:09d}").to_row())
    finally:
        store.close()
    return _summary(timings) if timings else {"n": 0}


def measure(workdir: Path, queue_calls: int = 100, approvals: int = 50) -> dict[str, Any]:
    """Both sets, in one `datavisa serve`."""
    out: dict[str, Any] = {"pending": PENDING_COUNT, "target_queue_p99_ms": TARGET_P99_MS}
    with fixtures.served(workdir) as srv:
        template = _file(srv)
        session = requests.Session()
        session.headers.update(srv.auth(APPROVER))
        for name, rows in (
            ("mixed", _mixed(template, PENDING_COUNT)),
            ("all", _copies(template, PENDING_COUNT)),
        ):
            _reset(srv, rows)
            _queue(srv, session, 3)  # warm: connections, OPA's compiled queries
            queue, first = _queue(srv, session, queue_calls)
            later = _later_cursor(srv, session)
            out[name] = {"queue": queue}
            if later is not None:
                out[name]["queue_later"], _ = _queue(srv, session, queue_calls, later)
            out[name]["approve"] = _approvals(srv, session, first, template, approvals)
            out[name]["queue_after"], _ = _queue(srv, session, 5)  # still answers at 1,000
    out["queue_target_met"] = all(
        out[name][page]["p99_ms"] <= TARGET_P99_MS
        for name in ("mixed", "all")
        for page in ("queue", "queue_later")
        if page in out[name]
    )
    return out


_CALLS = (
    ("queue", "queue, first page"),
    ("queue_later", "queue, a later page"),
    ("approve", "approve"),
)


def markdown_section(record: dict[str, Any] | None, heading: str = "## The console") -> list[str]:
    """The console's lines of a results page: the queue's pages and an approval at 1,000
    pending, and whether the queue's goal is met."""
    if not record:
        return []
    lines = [
        "",
        heading,
        "",
        "| pending set | call | n | p50 ms | p99 ms | max ms | shown | offered to bob | bytes |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in ("mixed", "all"):
        for call, label in _CALLS:
            cell = record[name].get(call)
            if cell is None:
                continue
            if call == "queue" and "shown" not in cell:
                label = "queue, all in one answer"  # a record from before the pages
            lines.append(
                f"| {name} | {label} | {cell['n']} | {cell.get('p50_ms', '')} | "
                f"{cell.get('p99_ms', '')} | {cell.get('max_ms', '')} | "
                f"{cell.get('shown', cell.get('offered', ''))} | {cell.get('offered', '')} | "
                f"{cell.get('bytes', '')} |"
            )
    paged = "queue_later" in record["mixed"]
    judged = "every page of both sets" if paged else "the whole queue, mixed set"
    lines += [
        "",
        f"{record['pending']:,} pending requests, bob's bearer token over loopback "
        "(bench/console_bench.py). Queue goal: ≤ "
        f"{record['target_queue_p99_ms']:.0f} ms p99 at 1,000 pending, {judged}: "
        f"{'met' if record['queue_target_met'] else 'not met'}.",
    ]
    return lines


def markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Console bench, {record['date']}",
        "",
        f"`datavisa serve` (its own OPA, SQLite); load average before/after "
        f"{record['loadavg_1m']['before']}/{record['loadavg_1m']['after']} on "
        f"{record['machine'].get('cores', '?')} cores.",
        *markdown_section(record, "## The queue and an approval"),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few calls, not kept")
    args = parser.parse_args()
    before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="datavisa-console-") as tmp:
        found = measure(Path(tmp), 10 if args.quick else 100, 5 if args.quick else 50)
    record = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "machine": fixtures.machine(),
        "loadavg_1m": {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)},
        **found,
    }
    text = markdown(record)
    print(text)
    if not args.quick:
        stem = RESULTS / f"{record['date']}-console"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        stem.with_suffix(".md").write_text(text)
        print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
