"""The real things a benchmark run measures: `datavisa serve`, its OPA, and live grants.

`served(workdir)` starts `datavisa serve` as a process of its own on a free loopback port,
with a fresh SQLite file, its embedded (supervised) OPA, and bearer tokens for a service
and for the people of the story. `populate` fills the store with live grants and pushes
them to OPA exactly as the engine does at start (`Grants.sync`), so the store and
OPA agree whoever asks. The rest reads facts: resident memory and CPU time of a process,
and the machine.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from datavisa.engine.api.tokens import SERVICE, TokenStore
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.model.records import ACTIVE, Request
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import (
    DecisionUpload,
    OpaProcess,
    find_opa,
    free_port,
    opa_version,
)
from datavisa.engine.store.sqlite import Store

DATAVISA = Path(sys.executable).with_name("datavisa")
SUBJECT = "alice"  # the benchmarked subject: holds one real grant, made through the API
APPROVER = "bob"  # data owner of RESOURCE
RESOURCE = "eu-customer-analytics"  # confidential, EU personal data, one approval
GRANT_FOR = "4h"  # the most the confidential tier allows; a run takes minutes
SERVICE_SUBJECT = "bench-pep"  # the service asking the access checks
FILLER_PREFIX = "bench"  # ids of the grants `populate` inserts
GRANTS_PER_FILLER_SUBJECT = 4
START_TIMEOUT_S = 60
PUSH_TIMEOUT_S = 300  # one PUT of every live grant; 100,000 take seconds, not minutes
_ANNOUNCE = re.compile(r"API on (?P<api>http://\S+)/v1 .*OPA on (?P<opa>http://\S+) ")


@dataclass
class Served:
    """A running `datavisa serve`: where it listens, its OPA, its files and its tokens."""

    url: str
    opa_url: str
    db: Path
    pid: int
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def opa_pid(self) -> int:
        """The OPA process the server supervises (its one child)."""
        children = _children(self.pid)
        if len(children) != 1:
            raise RuntimeError(f"datavisa serve {self.pid} has children {children}, not one OPA")
        return children[0]

    @property
    def opa_token_file(self) -> Path:
        """The file holding the secret the server's OPA answers its engine by (anyone else
        may only ask it for an access decision): in the private folder of OPA's
        --config-file, which this user, the server's own, may read."""
        argv = Path(f"/proc/{self.opa_pid}/cmdline").read_text().split("\0")
        return Path(argv[argv.index("--config-file") + 1]).with_name("token")

    def opa_client(self, timeout: float = 2.0) -> OpaClient:
        """A client of the server's OPA with the engine's credential, to read and push."""
        return OpaClient(self.opa_url, timeout=timeout, token=self.opa_token_file.read_text())

    def auth(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[subject]}"}


@contextlib.contextmanager
def served(workdir: Path, command: list[str] | None = None) -> Iterator[Served]:
    """`datavisa serve` on a free 127.0.0.1 port with a fresh database; stopped on exit.

    `command` runs instead of the `datavisa` executable (given the same arguments), such
    as a wrapper that traces the server's allocations (bench/traced_serve.py)."""
    db = workdir / "datavisa.db"
    tokens = TokenStore(db)
    try:
        issued = {SERVICE_SUBJECT: tokens.issue(SERVICE_SUBJECT, SERVICE)[0]}
        issued |= {who: tokens.issue(who)[0] for who in (SUBJECT, APPROVER, "oscar")}
    finally:
        tokens.close()
    log_path = workdir / "serve.log"
    # The gateway bench's client (bench/gateway_bench.py) is 127.0.0.1: in Germany.
    config = workdir / "serve.yaml"
    config.write_text("gateway:\n  networks: {127.0.0.1/32: DE}\n")
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                *(command or [str(DATAVISA)]),
                *("serve", "--listen", f"127.0.0.1:{free_port()}"),
                *("--db", str(db), "--sweep-every", "1h", "--config", str(config)),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        api, opa = _wait_announced(proc, log_path)
        _wait_ready(api, proc, log_path)
        yield Served(api, opa, db, proc.pid, issued)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_announced(proc: subprocess.Popen, log_path: Path) -> tuple[str, str]:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if match := _ANNOUNCE.search(log_path.read_text()):
            return match["api"], match["opa"]
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"datavisa serve did not start:\n{log_path.read_text()[-3000:]}")


def _wait_ready(api: str, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{api}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"datavisa serve never became ready:\n{log_path.read_text()[-3000:]}")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return found


# -- the limit: a trivial policy on the same kind of OPA --------------------------------

TRIVIAL_PACKAGE = "bench/trivial"  # a root of its own beside the bundle's
TRIVIAL_POLICY = "package bench.trivial\n\nallow := true\n"  # the one-line policy
TRIVIAL_QUERY = "/v1/data/bench/trivial/allow"


@contextlib.contextmanager
def trivial_opa(srv: Served, workdir: Path) -> Iterator[OpaProcess]:
    """An OPA of the same kind as the one `srv` supervises, answering a one-line policy.

    Started by the engine's own `OpaProcess` (the same flags: token authentication, the
    engine's system.authz, drop_decision), serving the shipped bundle (so the decision-log
    mask and drop_decision are evaluated as deployed) plus `allow := true` under a root of
    its own, and uploading its decision log to `srv` as the supervised OPA does. Its
    system.authz answers anything but the access decision only to the process's token:
    `opa.token` bears it. What it costs to answer is OPA's HTTP and decision logging
    alone, the limit of any decision asked over HTTP on this machine."""
    staged = bundle.stage(POLICY_DIR, DEFAULT_BUNDLE_DIR, workdir / "trivial-bundle", "trivial")
    module = staged / TRIVIAL_PACKAGE / "trivial.rego"
    module.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(TRIVIAL_POLICY)
    manifest = json.loads((staged / ".manifest").read_text())
    manifest["roots"] = [*manifest["roots"], TRIVIAL_PACKAGE]
    (staged / ".manifest").write_text(json.dumps(manifest, indent=1))
    upload = DecisionUpload(f"{srv.url}/v1", srv.tokens[SERVICE_SUBJECT])
    with OpaProcess(staged, upload=upload) as opa:
        yield opa


# -- grants -----------------------------------------------------------------------------


def real_grant(srv: Served) -> str:
    """The benchmarked subject's one grant, asked for and approved through the API."""
    asked = requests.post(
        f"{srv.url}/v1/requests",
        json={"resource": RESOURCE, "duration": GRANT_FOR, "location": "DE", "reason": "bench"},
        headers=srv.auth(SUBJECT),
        timeout=30,
    )
    asked.raise_for_status()
    request_id = asked.json()["id"]
    approved = requests.post(
        f"{srv.url}/v1/requests/{request_id}/approve",
        json={"location": "DE"},
        headers=srv.auth(APPROVER),
        timeout=30,
    )
    approved.raise_for_status()
    if approved.json()["state"] != ACTIVE:
        raise RuntimeError(f"the bench grant is {approved.json()['state']}, not active")
    return request_id


def populate(srv: Served, total: int) -> dict[str, float]:
    """Bring the live grants in the store to `total` (the real one included), adding or
    removing filler grants, then push every live grant to OPA as the engine does at start.
    Returns the time each step took.

    The grants added belong to other subjects (four a subject), on the same resource, so
    a check by SUBJECT shares OPA with `total` grants but reads only its own.
    """
    store = Store(srv.db)
    client = srv.opa_client(timeout=PUSH_TIMEOUT_S)
    try:
        have = store.db.execute(
            "SELECT count(*) FROM requests WHERE state = ?", [ACTIVE]
        ).fetchone()[0]
        started = time.perf_counter()
        now = time.time()
        rows = [_filler(i, now).to_row() for i in range(have - 1, total - 1)]
        if rows:
            columns = list(rows[0])
            insert = (
                f"INSERT INTO requests ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})"
            )
            with store.transaction() as db:  # plain executemany: 100,000 rows in a second
                db.conn.executemany(insert, [tuple(r[c] for c in columns) for r in rows])
        elif have > total:
            with store.transaction() as db:
                db.execute(
                    "DELETE FROM requests WHERE id IN (SELECT id FROM requests WHERE id LIKE ? "
                    "AND state = ? ORDER BY id DESC LIMIT ?)",
                    [FILLER_PREFIX + "%", ACTIVE, have - total],
                )
        inserted = time.perf_counter()
        Engine(store, client, revision="bench").grants.sync()
        pushed = time.perf_counter()
        live = store.db.execute(
            "SELECT count(*) FROM requests WHERE state = ?", [ACTIVE]
        ).fetchone()[0]
    finally:
        client.close()
        store.close()
    if live != total:
        raise RuntimeError(f"{live} live grants in the store, wanted {total}")
    return {"insert_s": inserted - started, "push_all_s": pushed - inserted}


def _filler(i: int, now: float) -> Request:
    return Request(
        id=f"{FILLER_PREFIX}{i:07d}",
        requester=f"user-{i // GRANTS_PER_FILLER_SUBJECT:06d}",
        resource=RESOURCE,
        actions=["read", "write"],
        location="DE",
        countries=["DE", "FR"],
        reason="bench filler",
        duration_s=7 * 86400,
        state=ACTIVE,
        created_at=now,
        pending_until=now,
        approvals_required=[],
        revision="bench",
        approved_at=now,
        activated_at=now - 60,
        expires_at=now + 7 * 86400,
    )


# -- processes and the machine ----------------------------------------------------------


def rss_mib(pid: int) -> float:
    """Resident memory of a process now, in MiB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU time a process has used so far, in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    return (int(fields[11]) + int(fields[12])) / _TICKS


def quiesce(
    pids: list[int], cores: float = 0.05, window_s: float = 0.5, limit_s: float = 60.0
) -> float:
    """Wait until the processes `pids` together use under `cores` over `window_s` (their
    background work done: the engine ingesting what an OPA uploaded, the monitor judging
    it), at most `limit_s`; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        before = sum(cpu_s(pid) for pid in pids)
        time.sleep(window_s)
        if sum(cpu_s(pid) for pid in pids) - before < cores * window_s:
            break
    return time.monotonic() - started


def busy_cpu_s() -> float:
    """CPU time the whole machine has spent busy since boot (all cores, from /proc/stat)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / _TICKS


def own_cpu_s() -> float:
    """CPU time of this process and of the children it has waited for (CLI, opa eval)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def machine() -> dict[str, object]:
    """What a reader needs to compare a run with theirs."""
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    versions = {}
    for name in ("fastapi", "uvicorn", "starlette", "pydantic", "requests", "aiohttp"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[name] = importlib.metadata.version(name)
    return {
        "cores": os.cpu_count(),
        "cpu": cpu_model,
        "memory_gib": round(mem_kib / 1024**2, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "opa": opa_version(find_opa()),
        "git_revision": _git_revision(),
        "policy_revision": bundle.revision(),
        "packages": versions,
        # uvicorn picks httptools and uvloop when installed; the shipped dependencies do not
        # bring them, so the server runs h11 on asyncio's own loop unless someone added them.
        "uvicorn_http": "httptools" if _installed("httptools") else "h11",
        "uvicorn_loop": "uvloop" if _installed("uvloop") else "asyncio",
    }


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _git_revision() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")
