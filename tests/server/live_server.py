"""A live server for tests: uvicorn on a free 127.0.0.1 port in a thread, `datavisa serve`
as a process, and callers."""

from __future__ import annotations

import contextlib
import ipaddress
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import uvicorn

from datavisa.engine.api.serve import http_config
from datavisa.engine.api.service import Service
from datavisa.engine.location.networks import Networks
from datavisa.engine.policy.process import free_port, stop_process

RESOURCE = "eu-customer-analytics"  # confidential, EU personal data, one data owner (bob)
# Where the tests' people are: their calls come from loopback, which these networks place
# in Germany (a derived location, as an office network mapped in `location.networks`);
# IN_GERMANY_CONFIG is the same as `datavisa serve --config` reads it.
IN_GERMANY = Networks(networks=((ipaddress.ip_network("127.0.0.0/8"), "DE"),))
IN_GERMANY_CONFIG = "location: {networks: {127.0.0.0/8: DE}}\n"
WAIT_S = 20.0


def wait_for(find: Any, what: str, timeout_s: float = WAIT_S) -> Any:
    """Poll `find()` until it is truthy and return it; bounded, never a fixed sleep."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := find():
            return value
        time.sleep(0.05)
    raise AssertionError(f"gave up after {timeout_s}s waiting for {what}")


def healthy(url: str, enforcement: bool = False) -> bool:
    """Whether the server at `url` answers /health with 200 (ready); with `enforcement`,
    whether every removal of access is in force everywhere too."""
    params = {"enforcement": "true"} if enforcement else {}
    try:
        return requests.get(url + "/health", params=params, timeout=2).status_code == 200
    except requests.RequestException:
        return False


@contextlib.contextmanager
def serve_process(*args: str, log: Path, timeout_s: float = 60.0) -> Iterator[subprocess.Popen]:
    """`datavisa serve --listen 127.0.0.1:<port> ARGS` until it is ready (its URL in
    `proc.url`); stopped (SIGTERM, then SIGKILL) on exit, unless the test ended it."""
    port = free_port()
    out = log.open("w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("datavisa")), "serve",
         "--listen", f"127.0.0.1:{port}", *args],
        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    try:
        wait_for(
            lambda: healthy(proc.url) or proc.poll() is not None, "serve to be ready", timeout_s
        )
        assert proc.poll() is None, log.read_text()
        yield proc
    finally:
        stop_process(proc)
        out.close()


@contextlib.contextmanager
def uvicorn_thread(app: Any) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port from a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(http_config(app, host="127.0.0.1", port=port))
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def served_store(
    db: Path | str, opa: Any, revision: str, subject: str, role: str, **service: Any
) -> Iterator[tuple[str, str]]:
    """A server in a thread on a fresh store at `db` (an SQLite file, or a PostgreSQL
    URL), asking the session's `opa` (its grants pushed); yield its URL and a token of
    `role` for `subject`; `service` sets the Service's other fields (rules, ...)."""
    from datavisa.engine.api.app import create_app
    from datavisa.engine.api.tokens import TokenStore
    from datavisa.engine.lifecycle.engine import Engine
    from datavisa.engine.store import open_store

    store, tokens, client = open_store(db), TokenStore(db), opa.client()
    engine = Engine(store, client, revision=revision)
    engine.grants.sync()
    served = Service(engine, tokens, **service)
    token, _ = tokens.issue(subject, role)
    try:
        with uvicorn_thread(create_app(served)) as url:
            yield url, token
    finally:
        served.close()
        for closing in (tokens, store, client):
            closing.close()


@dataclass
class Caller:
    """HTTP calls to the service as one token's subject (or with no token)."""

    base: str
    token: str | None = None
    session: requests.Session = field(default_factory=requests.Session)

    def __post_init__(self) -> None:
        if self.token:
            self.session.headers["Authorization"] = f"Bearer {self.token}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.session.get(self.base + path, timeout=10, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> requests.Response:
        return self.session.post(self.base + path, json=json, timeout=10, **kw)


@dataclass
class Api:
    url: str
    service: Service
    callers: dict[tuple[str, str], Caller] = field(default_factory=dict)

    def as_(self, subject: str, role: str = "user") -> Caller:
        """A caller holding a token issued to `subject` with `role`."""
        if (subject, role) not in self.callers:
            token, _ = self.service.tokens.issue(subject, role)
            self.callers[subject, role] = Caller(self.url, token)
        return self.callers[subject, role]

    def anonymous(self) -> Caller:
        return Caller(self.url)

    def request(self, subject: str = "alice", **body: Any) -> dict[str, Any]:
        """File a request as `subject`; defaults ask 20 minutes of read from DE."""
        body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-1"} | body
        response = self.as_(subject).post("/v1/requests", body)
        assert response.status_code == 201, response.text
        return response.json()

    def grant(self, subject: str = "alice", **body: Any) -> dict[str, Any]:
        """A request as `subject`, approved by bob: an active grant."""
        req = self.request(subject, **body)
        response = self.as_("bob").post(f"/v1/requests/{req['id']}/approve", {"location": "DE"})
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "active"
        return response.json()


def children_named(parent: int, name: str) -> set[int]:
    """The processes `parent` started that are named `name` (from /proc)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces, so split after its ')'.
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == parent and comm == name:
            found.add(int(proc.name))
    return found


def kill_hard(proc: subprocess.Popen) -> set[int]:
    """SIGKILL a `datavisa serve`, as a crash would, and wait for the OPAs it ran to end
    with it (they get SIGKILL when it dies: engine/policy/process.py); their pids."""
    opas = children_named(proc.pid, "opa")
    proc.kill()
    proc.wait(timeout=30)
    ended(opas)
    return opas


def ended(pids: set[int], what: str = "the OPA to end with its serve") -> None:
    """Wait until each of `pids` has ended (a zombie no one reaps has ended too)."""

    def running(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat[stat.rindex(")") + 2] != "Z"

    wait_for(lambda: not any(running(pid) for pid in pids), what)
