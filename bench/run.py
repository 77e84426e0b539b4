"""Decision speed and scale, side by side: OPA direct, the engine, the CLI, one `opa eval` each.

One run, one machine, the same inputs for every path:
  (a) OPA's REST API queried directly (POST /v1/data/datavisa/access/decision);
  (b) the engine's POST /v1/access/check, through `datavisa serve` with a service token;
  (c) `datavisa check` from the CLI, one process a decision (remote mode when it has it);
  (d) the naive baseline: one `opa eval` process a decision, bundle and grants from files.
and beside them (t) OPA answering a one-line policy (`allow := true`) on the same kind of OPA
process (the engine's OpaProcess: same flags, same decision logging), the limit of any
decision asked over HTTP here, at 1 and 32 clients, so that targets are ratios of one run.
Latency (p50 / p90 / p99) and throughput with 1, 8 and 32 concurrent clients on loopback,
at 10, 1,000 and 100,000 live grants; resident memory of the engine and of OPA at each;
revocation (the first check after `revoke` returns denies; the push to OPA, timed); the
lifecycle's own throughput; nginx → upstream against nginx → DataVisa → upstream
(bench/gateway_bench.py); revocation across an OPA fleet (bench/fleet_bench.py); engine
throughput on SQLite, on PostgreSQL and with two engines on one PostgreSQL
(bench/store_bench.py); grants in a real PostgreSQL (bench/postgres_bench.py: approve →
usable, revoke → terminated) and supervised ones (bench/supervision_bench.py: a lapsed
lease → login refused and sessions ended, rejoin → login); then the Rego
micro-benchmark (bench/rego_bench.py) and what judging decisions by the alert rules
costs OPA (bench/monitor_cost.py), and what verifying a person's JWT costs a check
beside a static token (bench/identity_cost.py), and the console's queue page and an
approval at 1,000 pending (bench/console_bench.py).

    .venv/bin/python bench/run.py            # the full run: a few minutes on 2 cores
    .venv/bin/python bench/run.py --quick    # a smoke run, under a minute, written to a tmp dir

Writes <date>.json, <date>.md and two PNG plots to bench/results/ (or --out), and a line
in bench/results/README.md. bench/README.md describes the method.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the modules beside this script

import console_bench
import fixtures
import fleet_bench
import gateway_bench
import identity_cost
import mariadb_bench
import monitor_cost
import postgres_bench
import report
import store_bench
import supervision_bench
import transfer_bench
from fixtures import APPROVER, RESOURCE, SERVICE_SUBJECT, SUBJECT, TRIVIAL_QUERY, Served
from load import Sample, http_cell, percentile, process_cell
from report import AGAIN

from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.grants import live_grants
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess, find_opa
from datavisa.engine.store.sqlite import Store

PROJECT_ROOT = Path(__file__).resolve().parents[1]  # the checkout
RESULTS = PROJECT_ROOT / "bench" / "results"
ALLOW = {"subject": SUBJECT, "resource": RESOURCE, "action": "read", "location": "DE"}
DENY = ALLOW | {"location": "US"}  # outside the grant's countries and EU residency rules
REVOKER_SUBJECT = "oscar"  # holds the grants revoked in the revocation test
DISTURBED_CORES = 0.2  # other processes using more than this during a cell disturbed it
HTTP_TRIES = 3  # an HTTP cell is measured up to this many times while disturbed
UPLOAD_QUIET_S = 2.5  # longer than the 2 s serve's OPA waits at most between uploads
TRIVIAL_CONCURRENCY = (1, 32)  # the trivial policy's cells, at the fewest grants
UPLOADING_PATHS = ("opa", "trivial")  # paths whose decisions OPA uploads to the engine

TARGETS = {  # issue 18's goals, each a ratio or a difference within one run
    "overhead_p50_ms": 0.5,  # engine endpoint p50 minus OPA direct p50, c=1, fewest grants
    "engine_vs_opa_throughput": 1.0,  # engine endpoint /s / OPA direct /s, most clients
    "throughput_vs_naive": 100.0,  # engine endpoint throughput / naive, each at its best
    "throughput_vs_naive_most": 100.0,  # the same at the most grants
    "growth_opa": 1.25,  # p50 at the most grants / p50 at the fewest, OPA direct, c=1
    "growth_engine": 1.5,  # the same, end to end through the engine endpoint
    "revocation_lag": 0,  # checks that still allowed after revoke returned
    "push_p99_ms": 50.0,  # pushing one subject's grants to OPA, as revoke does
    "opa_vs_trivial_p50": 1.5,  # OPA direct p50 / trivial policy p50, c=1, fewest grants
    "opa_vs_trivial_throughput": 1.5,  # trivial policy /s / OPA direct /s, c=32
    "rego_access_us": 50.0,  # `opa bench` of the access decision at the most grants
    "monitor_opa_cpu_ms": 0.1,  # OPA CPU the alert rules cost per decision judged
    # A person's remembered JWT / a static token, CPU to authenticate a check's caller.
    "jwt_remembered_x_static": 5.0,
    # issue 28: a transfer check's p50 / an access check's, one client, alternating
    "transfer_vs_access_p50": 1.2,
}


@dataclass(frozen=True)
class Plan:
    """How much to measure: every cell is bounded by a count and by seconds."""

    levels: tuple[int, ...]
    concurrency: tuple[int, ...]
    http_count: dict[int, int]
    http_seconds: float
    deny_count: int
    process_count: dict[int, int]
    process_seconds: float
    naive_at_most_grants: int
    revocations: int
    pushes: int
    lifecycle_cycles: int
    rego_bench_count: int  # 0: skip bench/rego_bench.py
    retry_budget_s: float  # the most time spent measuring disturbed cells again, in all
    gateway_count: int  # requests through each nginx (bench/gateway_bench.py)
    monitor_decisions: int  # decisions asked, then judged by the monitor (monitor_cost.py)


FULL = Plan(
    levels=(10, 1_000, 100_000),
    concurrency=(1, 8, 32),
    http_count={1: 2_000, 8: 4_000, 32: 5_000},
    http_seconds=6.0,
    deny_count=1_000,
    process_count={1: 8, 8: 16, 32: 32},
    process_seconds=40.0,
    naive_at_most_grants=3,
    revocations=50,
    pushes=200,
    lifecycle_cycles=100,
    rego_bench_count=5,
    retry_budget_s=45.0,
    gateway_count=2_000,
    monitor_decisions=4_000,
)
QUICK = Plan(
    levels=(10, 1_000),
    concurrency=(1, 8, 32),
    http_count={1: 200, 8: 400, 32: 600},
    http_seconds=1.5,
    deny_count=100,
    process_count={1: 2, 8: 8},  # 32 CLI processes alone take half a minute on 2 cores
    process_seconds=15.0,
    naive_at_most_grants=2,
    revocations=10,
    pushes=30,
    lifecycle_cycles=10,
    rego_bench_count=0,
    retry_budget_s=0.0,
    gateway_count=200,
    monitor_decisions=400,
)


def _log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Bench:
    """One run against one `datavisa serve`: cells are recorded as they are measured."""

    def __init__(self, plan: Plan, srv: Served, trivial: OpaProcess, work: Path) -> None:
        self.plan, self.srv, self.trivial, self.work = plan, srv, trivial, work
        self.cells: list[dict[str, Any]] = []
        self.samples: dict[tuple[str, int, int, str], list[float]] = {}
        self.opa_pid = srv.opa_pid
        self.trivial_pid = trivial.pid
        self.tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, work / "bundle.tar.gz")
        self.cli = _cli_mode()
        self.retry_left_s = plan.retry_budget_s
        self.last_path = ""

    # -- the four paths -----------------------------------------------------------------

    def http(self, path: str, grants: int, concurrency: int, case: str, count: int) -> None:
        allow = case in ("allow", AGAIN)
        body = ALLOW if allow else DENY
        if path == "opa":
            url = f"{self.srv.opa_url}/v1/data/datavisa/access/decision"
            sent, headers, verdict = {"input": body}, {}, _opa_verdict
        elif path == "trivial":  # the same input; the answer is `true` whatever it is
            url = f"{self.trivial.url}{TRIVIAL_QUERY}"
            headers = {"Authorization": f"Bearer {self.trivial.token}"}
            sent, verdict = {"input": body}, _trivial_verdict
        else:
            url = f"{self.srv.url}/v1/access/check"
            sent, headers = body, self.srv.auth(SERVICE_SUBJECT)
            verdict = _engine_verdict
        self._cell(
            path,
            grants,
            concurrency,
            case,
            lambda: http_cell(
                url,
                sent,
                headers,
                verdict,
                allow,
                concurrency,
                count,
                self.plan.http_seconds,
            ),
            tries=HTTP_TRIES,
        )

    def cli_check(self, grants: int, concurrency: int, count: int) -> None:
        argv = [str(fixtures.DATAVISA), "check", SUBJECT, RESOURCE, "--action", "read"]
        argv += ["--from", "DE", "--json"]
        env = dict(os.environ)
        if self.cli == "remote":
            env |= {"DATAVISA_SERVER": self.srv.url}
            env |= {"DATAVISA_TOKEN": self.srv.tokens[SERVICE_SUBJECT]}
        else:
            argv += ["--opa-url", self.srv.opa_url, "--db", str(self.srv.db)]
            argv += ["--opa-token-file", str(self.srv.opa_token_file)]
        self._cell(
            "cli",
            grants,
            concurrency,
            "allow",
            lambda: process_cell(
                argv,
                env,
                _cli_verdict,
                True,
                concurrency,
                count,
                self.plan.process_seconds,
            ),
        )

    def naive(self, grants: int, concurrency: int, count: int) -> None:
        """`opa eval` per decision, with the bundle and the very grants OPA holds now."""
        grants_file = self.work / f"grants-{grants}.json"
        live = requests.get(
            f"{self.srv.opa_url}/v1/data/grants",
            headers={"Authorization": f"Bearer {self.srv.opa_token_file.read_text()}"},
            timeout=60,
        ).json()["result"]  # only the engine's credential reads the grants back
        grants_file.write_text(json.dumps({"grants": live}))
        input_file = self.work / "input.json"
        input_file.write_text(json.dumps(ALLOW))
        argv = [str(find_opa()), "eval", "--format=json", "--bundle", str(self.tarball)]
        argv += ["--data", str(grants_file), "--input", str(input_file)]
        argv += ["data.datavisa.access.decision"]
        self._cell(
            "naive",
            grants,
            concurrency,
            "allow",
            lambda: process_cell(
                argv, None, _naive_verdict, True, concurrency, count, self.plan.process_seconds
            ),
        )

    def _cell(
        self,
        path: str,
        grants: int,
        concurrency: int,
        case: str,
        run: Callable[[], Sample],
        tries: int = 1,
    ) -> None:
        """Measure a cell; with `tries` > 1, again while other processes disturbed it
        (kept: the least disturbed try)."""
        best: tuple[dict[str, Any], Sample] | None = None
        for attempt in range(1, tries + 1):
            # Each cell starts on a quiet engine: decisions asked of OPA directly are
            # uploaded to the engine and judged by its monitor, after the answers.
            # After OPA direct, quiet for longer than OPA waits between uploads.
            window = UPLOAD_QUIET_S if self.last_path in UPLOADING_PATHS else 0.5
            pids = [self.srv.pid, self.opa_pid, self.trivial_pid]
            waited = fixtures.quiesce(pids, window_s=window)
            if waited > 2 * window:
                _log(f"  waited {waited:.1f} s for the engine to finish its background work")
            started = time.monotonic()
            cell, sample = self._measure(path, grants, concurrency, case, run)
            if attempt > 1:
                self.retry_left_s -= time.monotonic() - started
            cell["tries"] = attempt
            if best is None or cell["other_processes_cores"] < best[0]["other_processes_cores"]:
                best = cell, sample
            if cell["other_processes_cores"] <= DISTURBED_CORES or self.retry_left_s <= 0:
                break
            _log(f"  disturbed by other processes ({cell['other_processes_cores']} cores)")
        cell, sample = best
        self.last_path = path
        self.cells.append(cell)
        self.samples[path, grants, concurrency, case] = sample.latencies_ms

    def _measure(
        self, path: str, grants: int, concurrency: int, case: str, run: Callable[[], Sample]
    ) -> tuple[dict[str, Any], Sample]:
        opa_pid = self.trivial_pid if path == "trivial" else self.opa_pid  # the OPA asked
        pids = {"serve": self.srv.pid, "opa": opa_pid, "client": os.getpid()}
        before = {name: fixtures.cpu_s(pid) for name, pid in pids.items()}
        own, busy, wall = fixtures.own_cpu_s(), fixtures.busy_cpu_s(), time.perf_counter()
        sample = run()
        wall = time.perf_counter() - wall
        others = fixtures.busy_cpu_s() - busy - (fixtures.own_cpu_s() - own)
        after = {name: fixtures.cpu_s(pid) for name, pid in pids.items()}
        summary = sample.summary()
        calls = summary["count"] + sample.warmup_calls
        cpu_us = {
            f"{name}_cpu_us_per_call": round((after[name] - before[name]) / calls * 1e6, 1)
            for name in pids
            if calls
        }
        others -= sum(after[name] - before[name] for name in ("serve", "opa"))
        cell = {
            "path": path,
            "grants": grants,
            "concurrency": concurrency,
            "case": case,
            **summary,
            **cpu_us,
            # Cores' worth of CPU that processes outside this run used meanwhile: above
            # DISTURBED_CORES something else competed for the machine, the cell reads slow.
            "other_processes_cores": round(max(others, 0.0) / wall, 2),
        }
        shown = (
            f"p50 {summary.get('p50_ms', float('nan')):8.2f} ms  "
            f"p99 {summary.get('p99_ms', float('nan')):8.2f} ms  "
            f"{summary['throughput_per_s']:8.1f}/s"
        )
        _log(
            f"{path:6} {case:5} grants={grants:<7,} c={concurrency:<2} n={summary['count']:<5} "
            f"{shown}  errors={summary['errors']} wrong={summary['wrong_verdicts']} "
            f"others={cell['other_processes_cores']:.2f} cores"
        )
        if summary["errors"] or summary["wrong_verdicts"]:
            _log(f"  first error: {summary.get('first_error')}")
        return cell, sample

    # -- a run ----------------------------------------------------------------------------

    def scale_point(self, grants: int) -> dict[str, Any]:
        plan = self.plan
        setup = fixtures.populate(self.srv, grants)
        time.sleep(0.5)  # let OPA's garbage collector settle after a large write
        memory = {
            "serve_rss_mib": round(fixtures.rss_mib(self.srv.pid), 1),
            "opa_rss_mib": round(fixtures.rss_mib(self.opa_pid), 1),
        }
        _log(
            f"{grants:,} live grants: inserted in {setup['insert_s']:.2f} s, pushed to OPA in "
            f"{setup['push_all_s']:.2f} s; RSS serve {memory['serve_rss_mib']} MiB, "
            f"OPA {memory['opa_rss_mib']} MiB"
        )
        for concurrency in plan.concurrency:
            paths = ["opa", "engine"]
            if grants == plan.levels[0] and concurrency in TRIVIAL_CONCURRENCY:
                paths.insert(0, "trivial")  # the limit, next to the cells it bounds
            for path in paths:
                self.http(path, grants, concurrency, "allow", plan.http_count[concurrency])
        for path in ("opa", "engine"):
            self.http(path, grants, 1, "deny", plan.deny_count)
        if grants == plan.levels[0]:
            for concurrency, count in plan.process_count.items():
                self.cli_check(grants, concurrency, count)
                self.naive(grants, concurrency, count)
        elif grants == plan.levels[-1]:
            # A fresh `opa eval` parses every grant each time: a few say enough.
            self.naive(grants, 1, plan.naive_at_most_grants)
        return {"grants": grants, **{k: round(v, 3) for k, v in setup.items()}, **memory}

    def again(self, grants: int) -> None:
        """The one-client allow cells at `grants`, once more after the largest level. The
        growth ratios set the largest level against the mean of both, so a drift in the
        machine's speed during the run does not read as growth (or as its absence)."""
        fixtures.populate(self.srv, grants)
        time.sleep(0.5)
        _log(f"back to {grants:,} live grants")
        for path in ("opa", "engine"):
            self.http(path, grants, 1, AGAIN, self.plan.http_count[1])

    def revocation(self, grants: int) -> dict[str, Any]:
        """Grant, revoke through the API, then check at once (engine and OPA): must deny."""
        srv, session = self.srv, requests.Session()
        body = {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "bench"}
        check = REVOKER_SUBJECT, RESOURCE
        timings: dict[str, list[float]] = {"request": [], "approve": [], "revoke": []}
        stale = {"engine": 0, "opa": 0}
        allowed_before = 0

        def timed(step: str, url: str, json_body: dict[str, Any], who: str) -> dict[str, Any]:
            started = time.perf_counter()
            response = session.post(url, json=json_body, headers=srv.auth(who), timeout=30)
            timings[step].append((time.perf_counter() - started) * 1000)
            if response.status_code not in (200, 201):
                raise RuntimeError(f"{step}: HTTP {response.status_code} {response.text[:300]}")
            return response.json()

        for _ in range(self.plan.revocations):
            req = timed("request", f"{srv.url}/v1/requests", body, REVOKER_SUBJECT)
            timed("approve", f"{srv.url}/v1/requests/{req['id']}/approve", {}, APPROVER)
            allowed_before += self._engine_allows(session, *check)
            timed("revoke", f"{srv.url}/v1/grants/{req['id']}/revoke", {}, APPROVER)
            stale["engine"] += self._engine_allows(session, *check)
            stale["opa"] += self._opa_allows(session, *check)
        session.close()
        out = {
            "grants": grants,
            "cycles": self.plan.revocations,
            "allowed_before_revoke": allowed_before,
            "allowed_after_revoke": stale,
            "lag_checks": stale["engine"] + stale["opa"],
            **{f"{step}_ms": _dist(values) for step, values in timings.items()},
        }
        http_cycle_s = sum(timings["request"] + timings["approve"]) / 1000
        out["http_request_approve_per_s"] = round(self.plan.revocations / http_cycle_s, 1)
        _log(
            f"revocation: {out['lag_checks']} checks allowed after revoke returned "
            f"({allowed_before}/{self.plan.revocations} allowed before); revoke call "
            f"p50 {out['revoke_ms']['p50']} ms p99 {out['revoke_ms']['p99']} ms"
        )
        return out

    def _engine_allows(self, session: requests.Session, subject: str, resource: str) -> bool:
        response = session.post(
            f"{self.srv.url}/v1/access/check",
            json={"subject": subject, "resource": resource, "action": "read", "location": "DE"},
            headers=self.srv.auth(SERVICE_SUBJECT),
            timeout=30,
        )
        return response.json()["allow"]

    def _opa_allows(self, session: requests.Session, subject: str, resource: str) -> bool:
        response = session.post(
            f"{self.srv.opa_url}/v1/data/datavisa/access/decision",
            json={"input": {"subject": subject, "resource": resource, "action": "read"}
                  | {"location": "DE"}},
            timeout=30,
        )  # fmt: skip
        return response.json()["result"]["allow"]

    def push_and_lifecycle(self, grants: int) -> dict[str, Any]:
        """In-process, on the server's SQLite file and its OPA: the push revoke makes, and
        request + approve (which activates) per second."""
        store = Store(self.srv.db)
        client = self.srv.opa_client()
        engine = Engine(store, client, revision="bench")
        try:
            # What `Grants.apply` does for each changed subject: its live grants, to OPA.
            (sink,) = engine.grants.sinks
            pushes = []
            for _ in range(self.plan.pushes):
                started = time.perf_counter()
                sink.put_subject(SUBJECT, live_grants(store, SUBJECT).get(SUBJECT, {}))
                pushes.append((time.perf_counter() - started) * 1000)
            cycle: dict[str, list[float]] = {"request": [], "approve": [], "revoke": []}
            for _ in range(self.plan.lifecycle_cycles):
                t0 = time.perf_counter()
                req = engine.request(REVOKER_SUBJECT, RESOURCE, ["read"], 3600, "DE", "bench")
                t1 = time.perf_counter()
                engine.approve(req.id, APPROVER, "DE")
                t2 = time.perf_counter()
                engine.revoke(req.id, APPROVER, "bench")
                t3 = time.perf_counter()
                for step, ms in zip(cycle, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                    cycle[step].append(ms * 1000)
        finally:
            client.close()
            store.close()
        per_s = self.plan.lifecycle_cycles / (sum(cycle["request"] + cycle["approve"]) / 1000)
        out = {
            "grants": grants,
            "push_ms": _dist(pushes),
            "lifecycle_cycles": self.plan.lifecycle_cycles,
            "request_approve_per_s": round(per_s, 1),
            **{f"lifecycle_{step}_ms": _dist(values) for step, values in cycle.items()},
        }
        _log(
            f"push of one subject's grants: p50 {out['push_ms']['p50']} ms, "
            f"p99 {out['push_ms']['p99']} ms; lifecycle in-process: "
            f"{out['request_approve_per_s']} request+approve per s"
        )
        return out


def _dist(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "count": len(ordered),
        "p50": round(percentile(ordered, 50), 3),
        "p90": round(percentile(ordered, 90), 3),
        "p99": round(percentile(ordered, 99), 3),
        "mean": round(statistics.fmean(ordered), 3),
        "max": round(ordered[-1], 3),
    }


def _opa_verdict(answer: Any) -> bool:
    return answer["result"]["allow"]


def _trivial_verdict(answer: Any) -> bool:
    return answer["result"] is True


def _engine_verdict(answer: Any) -> bool:
    return answer["allow"]


def _cli_verdict(returncode: int, stdout: bytes) -> bool:
    if returncode not in (0, 1):
        raise ValueError(f"datavisa check exited {returncode}")
    return json.loads(stdout)["allow"]


def _naive_verdict(returncode: int, stdout: bytes) -> bool:
    if returncode != 0:
        raise ValueError(f"opa eval exited {returncode}")
    return json.loads(stdout)["result"][0]["expressions"][0]["value"]["allow"]


def _cli_mode() -> str:
    """`remote` when `datavisa check` can ask a server (--server), else `opa-url`."""
    shown = subprocess.run(
        [str(fixtures.DATAVISA), "check", "--help"], capture_output=True, text=True, check=True
    ).stdout
    return "remote" if "--server" in shown else "opa-url"


def rego_bench(count: int, out: Path) -> dict[str, Any] | None:
    """bench/rego_bench.py (`opa bench` of the access decision), as its own step, writing
    where the run writes."""
    if count <= 0:
        return None
    _log(f"Rego micro-benchmark: opa bench, {count} runs at each size")
    script = Path(__file__).with_name("rego_bench.py")
    argv = [sys.executable, str(script), "--count", str(count), "--out", str(out)]
    subprocess.run(argv, check=True)
    return json.loads((out / f"rego-access-{dt.date.today().isoformat()}.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: small counts")
    parser.add_argument(
        "--out", type=Path, help="folder for the results (default: bench/results; --quick: tmp)"
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    out = args.out or (Path(tempfile.mkdtemp(prefix="datavisa-bench-")) if args.quick else RESULTS)
    started = time.monotonic()
    facts = fixtures.machine()
    load_before = os.getloadavg()
    _log(
        f"machine: {facts['cores']} cores, {facts['memory_gib']} GiB, Python {facts['python']}, "
        f"OPA {facts['opa']}, revision {facts['git_revision']}"
    )
    with tempfile.TemporaryDirectory(prefix="datavisa-bench-") as tmp:
        work = Path(tmp)
        with fixtures.served(work) as srv, fixtures.trivial_opa(srv, work) as trivial:
            _log(f"datavisa serve on {srv.url}, its OPA on {srv.opa_url}")
            _log(f"the trivial policy on an OPA of the same kind: {trivial.url}")
            grant_id = fixtures.real_grant(srv)
            bench = Bench(plan, srv, trivial, work)
            _log(f"{SUBJECT} holds grant {grant_id}; the CLI runs in {bench.cli} mode")
            scale = [bench.scale_point(n) for n in plan.levels]
            revocation = bench.revocation(plan.levels[-1])
            lifecycle = bench.push_and_lifecycle(plan.levels[-1])
            bench.again(plan.levels[0])
            gateway = {"grants": plan.levels[0]}  # where `again` left them
            gateway |= gateway_bench.measure(srv, work, plan.gateway_count)
            _log(f"gateway: {gateway}")
            transfer = transfer_bench.measure(srv, plan.gateway_count)  # beside access checks
            _log(f"transfer check: {transfer}")
            fleet = {  # revoke → every sidecar OPA denies (bench/fleet_bench.py)
                f"{n}_opas": fleet_bench.measure(work, 5 if args.quick else 30, opas=n)
                for n in (1, 3)
            }
            _log(f"fleet: {fleet}")
        # With the serve above stopped: each setup alone on the machine.
        store = store_bench.measure(work, seconds=3.0 if args.quick else 10.0)
    rego = rego_bench(plan.rego_bench_count, out)
    _log(f"the monitor's cost: {plan.monitor_decisions} decisions asked, then judged")
    with tempfile.TemporaryDirectory(prefix="datavisa-monitor-") as tmp:
        monitoring = monitor_cost.measure(Path(tmp), plan.monitor_decisions)
    _log(f"monitor: {monitoring}")
    with tempfile.TemporaryDirectory(prefix="datavisa-identity-") as tmp:
        identity = identity_cost.measure(Path(tmp), 1000 if args.quick else 5000)
    _log(f"identity: {identity}")
    _log("the console: the queue page and an approval at 1,000 pending")
    with tempfile.TemporaryDirectory(prefix="datavisa-console-") as tmp:
        console = console_bench.measure(
            Path(tmp), 10 if args.quick else 100, 5 if args.quick else 50
        )
    _log(f"console: {console}")
    _log("PostgreSQL: approve → credentials usable, revoke → open session terminated")
    postgres = postgres_bench.measure(20 if args.quick else 100)  # None: not installed
    _log(f"postgresql: {postgres}")
    _log("MariaDB: approve → credentials usable, revoke → open session killed")
    mariadb = mariadb_bench.measure(20 if args.quick else 100)  # None: not installed
    _log(f"mariadb: {mariadb}")
    _log("supervised grants: lease ran out → login refused and sessions ended, rejoin → login")
    supervised = supervision_bench.measure(10 if args.quick else 50)  # None: not installed
    _log(f"supervision: {supervised}")
    record = {
        "date": dt.date.today().isoformat(),
        "quick": args.quick,
        "machine": facts,
        "plan": {
            "levels": plan.levels,
            "concurrency": plan.concurrency,
            "http_count": plan.http_count,
            "http_seconds": plan.http_seconds,
            "process_count": plan.process_count,
        },
        "inputs": {"allow": ALLOW, "deny": DENY},
        "cli_mode": bench.cli,
        "cells": bench.cells,
        "scale": scale,
        "revocation": revocation,
        "push_and_lifecycle": lifecycle,
        "rego_bench": rego,
        "monitoring": monitoring,
        "identity": identity,
        "gateway": gateway,
        "transfer_check": transfer,
        "fleet": fleet,
        "store": store,
        "postgresql": postgres,
        "mariadb": mariadb,
        "supervision": supervised,
        "console": console,
        "duration_s": round(time.monotonic() - started, 1),
        # Other work on the machine skews every figure: a load well above 0 before the run
        # means something else was busy.
        "loadavg_1m": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
    }
    record["targets"] = report.judge(record, TARGETS)
    written = report.write(record, bench.samples, out)
    for path in written:
        _log(f"wrote {path}")
    if not args.quick:
        report.index_line(record, RESULTS / "README.md")
    print(report.headline(record))


if __name__ == "__main__":
    main()
