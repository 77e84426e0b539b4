"""Soak: does `datavisa serve` stay flat in memory under sustained mixed load?

Starts a real `datavisa serve` (its own supervised OPA, a fresh SQLite file in a temporary
folder, 127.0.0.1 only) and drives it from a few closed-loop clients for `--minutes`
(default 10): access checks that allow and that deny, requests that are approved and then
revoked, decision-log reads, alert reads and Prometheus scrapes. Every few seconds it reads
the resident memory (VmRSS, /proc) of serve and of its OPA. It then compares the mean of
the first minute with the mean of the last: within 20 % is flat.

    .venv/bin/python bench/soak.py                 # 10 minutes; results in bench/results/
    .venv/bin/python bench/soak.py --minutes 2     # a quick run
    .venv/bin/python bench/soak.py --minutes 2 --out /tmp/soak --label before

Writes soak-<date>[-<label>].json (every sample, the counts, the verdict) and .md. Every
loop is bounded by time and by a count of calls; serve and its OPA are stopped at the end
and the temporary folder removed. bench/README.md describes the method.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this script

import fixtures
from fixtures import APPROVER, RESOURCE, SERVICE_SUBJECT, SUBJECT, Served

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout
RESULTS = PROJECT_ROOT / "bench" / "results"
FLAT = 0.20  # last-minute mean RSS within this fraction of the first minute's
WINDOW_S = 60.0  # "the first minute" and "the last minute"
MAX_CALLS = 5_000_000  # per client: a bound besides the clock
REQUESTER = "oscar"  # asks for the grants that are approved and revoked
ALLOW = {"subject": SUBJECT, "resource": RESOURCE, "action": "read", "location": "DE"}
DENIES = [  # (body, why it denies)
    ALLOW | {"location": "US"},  # outside the grant's countries
    {"subject": "carol", "resource": "eu-payments-ledger", "action": "read", "location": "DE"},
    {"subject": "oscar", "resource": RESOURCE, "action": "write", "location": "PL"},
]


class Load:
    """The clients' shared bounds and tallies."""

    def __init__(self, srv: Served, seconds: float) -> None:
        self.srv = srv
        self.deadline = time.monotonic() + seconds
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.wrong = 0
        self.first_error: str | None = None

    def going(self, made: int) -> bool:
        return made < MAX_CALLS and time.monotonic() < self.deadline

    def error(self, kind: str, why: str) -> None:
        self.errors[kind] += 1
        self.first_error = self.first_error or f"{kind}: {why}"[:300]


async def _call(
    load: Load,
    session: aiohttp.ClientSession,
    kind: str,
    method: str,
    path: str,
    who: str,
    body: dict[str, Any] | None = None,
    want: int = 200,
) -> Any:
    """One call; its JSON answer (or text), None after an error (counted)."""
    headers = load.srv.auth(who) if who else {}
    try:
        async with session.request(
            method, load.srv.url + path, json=body, headers=headers
        ) as response:
            raw = await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as e:
        load.error(kind, f"{type(e).__name__}: {e}")
        return None
    load.calls[kind] += 1
    if status != want:
        load.error(kind, f"HTTP {status}: {raw[:200]!r}")
        return None
    if response.content_type == "application/json":
        return json.loads(raw)
    return raw.decode()


async def checker(load: Load, session: aiohttp.ClientSession, offset: int) -> None:
    """Access checks: one allow, then one of the denies, and so on."""
    made = offset
    while load.going(made):
        allow = made % 2 == 0
        body = ALLOW if allow else DENIES[(made // 2) % len(DENIES)]
        answer = await _call(
            load, session, "check", "POST", "/v1/access/check", SERVICE_SUBJECT, body
        )
        if answer is not None and answer.get("allow") is not allow:
            load.wrong += 1
        made += 1


async def lifecycle(load: Load, session: aiohttp.ClientSession) -> None:
    """A grant asked for, approved (it activates and is pushed to OPA), then revoked."""
    made = 0
    while load.going(made):
        made += 1
        asked = await _call(
            load, session, "request", "POST", "/v1/requests", REQUESTER,
            {"resource": RESOURCE, "duration": "10m", "location": "DE", "reason": "soak"},
            want=201,
        )  # fmt: skip
        if asked is None:
            continue
        rid = asked["id"]
        approved = await _call(
            load, session, "approve", "POST", f"/v1/requests/{rid}/approve", APPROVER,
            {"location": "DE"},
        )  # fmt: skip
        if approved is None:
            continue
        await _call(
            load, session, "revoke", "POST", f"/v1/grants/{rid}/revoke", APPROVER,
            {"reason": "soak"},
        )  # fmt: skip


async def reader(load: Load, session: aiohttp.ClientSession) -> None:
    """What a dashboard and Prometheus read: the newest decisions, open alerts, metrics."""
    made, after = 0, 0
    while load.going(made):
        made += 1
        page = await _call(
            load, session, "log_read", "GET", f"/v1/logs?after={after}&limit=50", SERVICE_SUBJECT
        )
        if page and page.get("events"):
            after = max(after, page["events"][-1]["seq"])
        await _call(load, session, "alert_read", "GET", "/v1/alerts?state=open&limit=50",
                    SERVICE_SUBJECT)  # fmt: skip
        await _call(load, session, "metrics", "GET", "/metrics", "")
        await asyncio.sleep(0.05)  # a reader polls; it does not hammer


def _open_files(pid: int, name: str) -> int:
    """How many descriptors of `pid` are open on the database file (one a connection)."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += Path(os.readlink(fd)).name == name
        except OSError:
            continue
    return count


async def sampler(
    load: Load, pids: dict[str, int], every_s: float, started: float
) -> list[dict[str, Any]]:
    samples = []
    while True:
        sample: dict[str, Any] = {"t_s": round(time.monotonic() - started, 2)}
        for name, pid in pids.items():
            sample[f"{name}_rss_mib"] = round(fixtures.rss_mib(pid), 2)
            sample[f"{name}_cpu_s"] = round(fixtures.cpu_s(pid), 2)
        sample["serve_threads"] = len(list(Path(f"/proc/{pids['serve']}/task").iterdir()))
        sample["serve_db_files"] = _open_files(pids["serve"], load.srv.db.name)
        sample["calls"] = sum(load.calls.values())
        samples.append(sample)
        if time.monotonic() >= load.deadline:
            return samples
        await asyncio.sleep(min(every_s, max(0.0, load.deadline - time.monotonic())))


async def drive(
    srv: Served, seconds: float, checkers: int, sample_s: float
) -> tuple[Load, list[dict[str, Any]]]:
    load = Load(srv, seconds)
    pids = {"serve": srv.pid, "opa": srv.opa_pid}
    connector = aiohttp.TCPConnector(limit=checkers + 4)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        started = time.monotonic()
        sampling = asyncio.create_task(sampler(load, pids, sample_s, started))
        await asyncio.gather(
            *(checker(load, session, i) for i in range(checkers)),
            lifecycle(load, session),
            reader(load, session),
        )
        samples = await sampling
    return load, samples


def window_means(samples: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """Mean of `key` over the first and over the last WINDOW_S of the run."""
    end = samples[-1]["t_s"]
    first = [s[key] for s in samples if s["t_s"] <= WINDOW_S]
    last = [s[key] for s in samples if s["t_s"] >= end - WINDOW_S]
    return statistics.fmean(first), statistics.fmean(last)


def slope_mib_per_min(samples: list[dict[str, Any]], key: str) -> float:
    """Least-squares growth of `key` over the whole run, MiB a minute."""
    ts = [s["t_s"] for s in samples]
    if len(ts) < 2:
        return 0.0
    return statistics.linear_regression(ts, [s[key] for s in samples]).slope * 60


def database_facts(db: Path) -> dict[str, Any]:
    """What the run left in serve's database: decisions and alerts (rows and raises)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        facts: dict[str, Any] = {
            "decisions": conn.execute("SELECT count(*) FROM decision_log").fetchone()[0],
            "database_mib": round(db.stat().st_size / 2**20, 1),
        }
        columns = {row[1] for row in conn.execute("PRAGMA table_info(alerts)")}
        raises = "sum(count)" if "count" in columns else "count(*)"
        facts["alerts"] = {
            rule: {"rows": rows, "raised": raised}
            for rule, rows, raised in conn.execute(
                f"SELECT rule, count(*), {raises} FROM alerts GROUP BY rule ORDER BY rule"
            )
        }
    finally:
        conn.close()
    return facts


def run(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    machine = fixtures.machine()
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    with tempfile.TemporaryDirectory(prefix="datavisa-soak-") as tmp:
        command = None
        if args.trace:
            tracer = Path(__file__).resolve().with_name("traced_serve.py")
            command = [sys.executable, str(tracer), str(args.trace), str(args.trace_every_s)]
        with fixtures.served(Path(tmp), command) as srv:
            fixtures.real_grant(srv)
            load, samples = asyncio.run(drive(srv, seconds, args.clients, args.sample_s))
            facts = database_facts(srv.db)
    verdict: dict[str, Any] = {}
    for name in ("serve", "opa"):
        first, last = window_means(samples, f"{name}_rss_mib")
        verdict[name] = {
            "first_minute_rss_mib": round(first, 1),
            "last_minute_rss_mib": round(last, 1),
            "ratio": round(last / first, 3),
            "within_20pct": abs(last / first - 1) <= FLAT,
            "growth_mib_per_min": round(slope_mib_per_min(samples, f"{name}_rss_mib"), 2),
            "peak_rss_mib": max(s[f"{name}_rss_mib"] for s in samples),
        }
    wall = samples[-1]["t_s"]
    return {
        "date": dt.date.today().isoformat(),
        "label": args.label,
        "minutes": args.minutes,
        "plan": {
            "checkers": args.clients,
            "lifecycle_clients": 1,
            "readers": 1,
            "sample_every_s": args.sample_s,
            "window_s": WINDOW_S,
            "flat_within": FLAT,
            "max_calls_per_client": MAX_CALLS,
        },
        "machine": machine,
        "load_average_before": load_before,
        "load_average_after": Path("/proc/loadavg").read_text().split()[:3],
        "calls": dict(load.calls),
        "calls_per_s": round(sum(load.calls.values()) / wall, 1) if wall else 0.0,
        "errors": dict(load.errors),
        "first_error": load.first_error,
        "wrong_verdicts": load.wrong,
        "database": facts,
        "verdict": verdict,
        "flat": all(v["within_20pct"] for v in verdict.values()),
        "samples": samples,
    }


def markdown(record: dict[str, Any]) -> str:
    v = record["verdict"]
    lines = [
        f"# Soak {record['date']}" + (f" ({record['label']})" if record["label"] else ""),
        "",
        f"`datavisa serve` under mixed load for {record['minutes']} min "
        f"({record['plan']['checkers']} checkers, 1 lifecycle client, 1 reader) on "
        f"{record['machine']['cores']} cores, git {record['machine']['git_revision']}; "
        f"load average {' '.join(record['load_average_before'])} before, "
        f"{' '.join(record['load_average_after'])} after (the machine is shared).",
        "",
        f"**Flat: {'yes' if record['flat'] else 'no'}** (last-minute mean VmRSS within "
        f"{FLAT:.0%} of the first minute's).",
        "",
        "| process | first minute MiB | last minute MiB | ratio | within 20 % | "
        "growth MiB/min | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, one in v.items():
        lines.append(
            f"| {name} | {one['first_minute_rss_mib']} | {one['last_minute_rss_mib']} | "
            f"{one['ratio']} | {'yes' if one['within_20pct'] else 'no'} | "
            f"{one['growth_mib_per_min']} | {one['peak_rss_mib']} |"
        )
    calls = record["calls"]
    lines += [
        "",
        f"Calls: {sum(calls.values()):,} ({record['calls_per_s']}/s): "
        + ", ".join(f"{k} {n:,}" for k, n in sorted(calls.items()))
        + f". Errors: {sum(record['errors'].values())}"
        + (f" (first: `{record['first_error']}`)" if record["first_error"] else "")
        + f"; wrong verdicts: {record['wrong_verdicts']}.",
        "",
        f"Database after the run: {record['database']['decisions']:,} decisions, "
        f"{record['database']['database_mib']} MiB. Alerts (rows / times raised):",
        "",
    ]
    for rule, n in record["database"]["alerts"].items():
        lines.append(f"- {rule}: {n['rows']:,} / {n['raised']:,}")
    lines += [
        "",
        "## Samples",
        "",
        "| t s | serve MiB | OPA MiB | calls | serve threads | database connections |",
        "| --- " * 6 + "|",
    ]
    step = max(1, len(record["samples"]) // 40)
    for s in record["samples"][::step]:
        lines.append(
            f"| {s['t_s']} | {s['serve_rss_mib']} | {s['opa_rss_mib']} | {s['calls']:,} | "
            f"{s['serve_threads']} | {s['serve_db_files']} |"
        )
    return "\n".join(lines) + "\n"


def _summary_line(record: dict[str, Any], stem: str) -> None:
    """One line a run in bench/results/README.md, beside the benchmarks'."""
    v = record["verdict"]
    line = (
        f"- {record['date']} soak (bench/soak.py, {record['minutes']:g} min"
        + (f", {record['label']}" if record["label"] else "")
        + f"): serve {v['serve']['first_minute_rss_mib']} -> {v['serve']['last_minute_rss_mib']}"
        f" MiB (x{v['serve']['ratio']}), OPA {v['opa']['first_minute_rss_mib']} -> "
        f"{v['opa']['last_minute_rss_mib']} MiB (x{v['opa']['ratio']}), "
        f"flat {'yes' if record['flat'] else 'no'} (within 20 %) → {stem}.md\n"
    )
    with (RESULTS / "README.md").open("a") as summary:
        summary.write(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long (default 10)")
    parser.add_argument("--clients", type=int, default=2, help="access-check clients (2)")
    parser.add_argument("--sample-s", type=float, default=5.0, help="RSS every (5 s)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the results go")
    parser.add_argument("--label", default="", help="a suffix to the file names")
    parser.add_argument(
        "--trace", type=Path, help="run serve under tracemalloc; snapshots into this folder"
    )
    parser.add_argument("--trace-every-s", type=float, default=60.0, help="snapshot every")
    args = parser.parse_args()
    if args.minutes * 60 < 2 * WINDOW_S:
        parser.error("--minutes must be at least 2 (a first and a last minute)")
    record = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"soak-{record['date']}" + (f"-{args.label}" if args.label else "")
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(record))
    if args.out.resolve() == RESULTS.resolve():
        _summary_line(record, stem)
    for name, one in record["verdict"].items():
        print(
            f"{name}: {one['first_minute_rss_mib']} -> {one['last_minute_rss_mib']} MiB "
            f"(x{one['ratio']}, {one['growth_mib_per_min']} MiB/min)"
        )
    print(f"flat: {record['flat']}; calls {sum(record['calls'].values()):,}; "
          f"errors {sum(record['errors'].values())}; written to {args.out / stem}.md")  # fmt: skip


if __name__ == "__main__":
    main()
