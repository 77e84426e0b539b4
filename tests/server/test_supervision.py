"""`datavisa serve` as a process: it supervises its OPA and leaves nothing behind.

Only 127.0.0.1 is reached; every wait is bounded. Nothing asserts how long a step took,
but for what the configured OPA timeout promises: a hung OPA is a deny within it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from live_server import IN_GERMANY_CONFIG, RESOURCE, Caller, children_named

from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import free_port, stop_process

DATAVISA = Path(sys.executable).with_name("datavisa")
WAIT_S = 60


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def _healthy(url: str) -> bool:
    try:
        return requests.get(url + "/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    tokens: dict[str, str]

    def as_(self, subject: str) -> Caller:
        return Caller(self.url, self.tokens[subject])

    def opa_pids(self) -> set[int]:
        return children_named(self.proc.pid, "opa")


@contextlib.contextmanager
def _serve(tmp_path: Path, *extra: str) -> Iterator[Served]:
    db = tmp_path / "datavisa.db"
    store = TokenStore(db)
    tokens = {s: store.issue(s)[0] for s in ("alice", "bob")}
    store.close()
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    if "--config" not in extra:  # the people call from Germany (live_server.IN_GERMANY)
        (tmp_path / "located.yaml").write_text(IN_GERMANY_CONFIG)
        extra = ("--config", str(tmp_path / "located.yaml"), *extra)
    proc = subprocess.Popen(
        [str(DATAVISA), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(db), *extra],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    served = Served(f"http://127.0.0.1:{port}", proc, tokens)
    try:
        _wait_for(lambda: _healthy(served.url) or proc.poll() is not None, "serve to be ready")
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        yield served
    finally:
        stop_process(proc)
        for pid in children_named(proc.pid, "opa"):  # only if serve failed its job
            os.kill(pid, signal.SIGKILL)
        log.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with _serve(tmp_path) as served:
        yield served


CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}


def _grant(served: Served) -> str:
    req = served.as_("alice").post(
        "/v1/requests", {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"}
    )
    assert req.status_code == 201, req.text
    approved = served.as_("bob").post(f"/v1/requests/{req.json()['id']}/approve")
    assert approved.json()["state"] == "active", approved.text
    return req.json()["id"]


def test_a_killed_opa_is_restarted_and_gets_the_grants_back(served):
    grant_id = _grant(served)
    alice = served.as_("alice")
    assert alice.post("/v1/access/check", CHECK).json()["grant_id"] == grant_id
    (first,) = served.opa_pids()

    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: not _alive(first), "the killed OPA to be gone")
    _wait_for(lambda: served.opa_pids() - {first}, "a new OPA")
    _wait_for(lambda: _healthy(served.url), "/health to be ready again")

    decision = alice.post("/v1/access/check", CHECK).json()
    assert decision["allow"] is True, decision
    assert decision["grant_id"] == grant_id
    metrics = requests.get(served.url + "/metrics", timeout=5).text
    assert "datavisa_opa_restarts_total 1.0" in metrics
    assert "datavisa_opa_up 1.0" in metrics


OPA_TIMEOUT_S = 1.0


def _timed_check(caller: Caller) -> tuple[dict, float]:
    started = time.monotonic()
    decision = caller.post("/v1/access/check", CHECK).json()
    return decision, time.monotonic() - started


def test_a_hung_opa_is_a_deny_within_the_timeout_and_is_replaced(tmp_path):
    with _serve(tmp_path, "--opa-timeout", f"{OPA_TIMEOUT_S:g}s") as served:
        grant_id = _grant(served)
        alice = served.as_("alice")
        assert alice.post("/v1/access/check", CHECK).json()["allow"] is True
        (hung,) = served.opa_pids()
        os.kill(hung, signal.SIGSTOP)  # it accepts connections and never answers
        stopped = time.monotonic()
        try:
            # The second check queues behind the first, yet has its own timeout only. It
            # may reach the new OPA, if that came up in time, and be allowed by it.
            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(_timed_check, alice)
                time.sleep(0.4)
                second = pool.submit(_timed_check, alice)
                answers = [first.result(), second.result()]
            decision = answers[0][0]
            assert decision["allow"] is False, decision
            assert [r["code"] for r in decision["reasons"]] == ["policy_unavailable"]
            for decision, took in answers:
                assert decision["allow"] is False or decision["grant_id"] == grant_id
                assert took < 1.5 * OPA_TIMEOUT_S, f"an answer took {took:.2f}s: {decision}"

            def allowed_again() -> bool:
                return alice.post("/v1/access/check", CHECK).json()["allow"] is True

            _wait_for(allowed_again, "a new OPA to allow the check again")
            replaced_in = time.monotonic() - stopped
            assert replaced_in < 6.0, f"the hung OPA was replaced after {replaced_in:.1f}s"
            assert alice.post("/v1/access/check", CHECK).json()["grant_id"] == grant_id
            assert not _alive(hung)
            (new,) = served.opa_pids()
            assert new != hung
        finally:
            if _alive(hung):  # only if serve failed its job
                os.kill(hung, signal.SIGKILL)


def test_while_opa_is_gone_checks_deny_and_health_is_unready(tmp_path):
    # A bundle that vanishes makes the supervisor's restarts fail for as long as we like.
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "b" / "bundle.tar.gz", "t")
    with _serve(tmp_path, "--bundle", str(tarball)) as served:
        _grant(served)
        tarball.unlink()
        (opa,) = served.opa_pids()
        os.kill(opa, signal.SIGKILL)
        _wait_for(lambda: not _healthy(served.url), "/health to turn unready")
        decision = served.as_("alice").post("/v1/access/check", CHECK).json()
        assert decision["allow"] is False
        assert [r["code"] for r in decision["reasons"]] == ["policy_unavailable"]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_serve_and_its_opa(served, sig):
    (opa,) = served.opa_pids()
    served.proc.send_signal(sig)
    assert served.proc.wait(timeout=30) == 0
    assert not _alive(opa)


def test_an_existing_opa_is_used_and_left_running(tmp_path, opa, opa_args):
    with _serve(tmp_path, *opa_args) as served:
        assert served.opa_pids() == set()
        _grant(served)
        assert served.as_("alice").post("/v1/access/check", CHECK).json()["allow"] is True
        served.proc.terminate()
        assert served.proc.wait(timeout=30) == 0
    assert requests.get(opa.url + "/health", timeout=5).status_code == 200


def test_a_taken_port_is_a_plain_error_and_starts_nothing(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [str(DATAVISA), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(tmp_path / "d")],
            capture_output=True,
            text=True,
            timeout=WAIT_S,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_reads_the_gateway_section_of_its_config(tmp_path):
    """`datavisa serve` judges a gateway's headers by its config's `gateway:` section."""
    cfg = tmp_path / "serve.yaml"
    cfg.write_text(
        "gateway:\n  credential_header: X-Edge-Token\n  country_header: X-Edge-Country\n"
    )
    with _serve(tmp_path, "--config", str(cfg)) as served:
        store = TokenStore(tmp_path / "datavisa.db")
        edge = store.issue("edge", "service")[0]
        store.close()
        asked = {
            "X-Edge-Token": edge,
            "X-Auth-Request-User": "alice",
            "X-Original-Method": "GET",
            "X-Original-URI": "/",
            "X-Original-Host": "analytics.localhost",
        }
        url = f"{served.url}/v1/authz/nginx"
        bad = requests.get(url, headers=asked | {"X-Edge-Country": "Germany"}, timeout=10)
        assert (bad.status_code, bad.headers["X-DataVisa-Reasons"]) == (
            403,
            "country_header_invalid",
        )
        # The default credential header means nothing to this server: no credential, 403.
        other = {k: v for k, v in asked.items() if k != "X-Edge-Token"}
        moved = requests.get(url, headers=other | {"X-DataVisa-Gateway-Token": edge}, timeout=10)
        assert moved.headers["X-DataVisa-Reasons"] == "identity_without_credential"
