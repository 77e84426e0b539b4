"""A crash loses nothing acknowledged: kill -9 of `datavisa serve` during concurrent
approvals, a restart on the same database, and every answered approval is there once.

Bounded: a dozen requests, eight approver threads, one kill; only 127.0.0.1 is reached.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

import pytest
import requests
from live_server import RESOURCE, children_named, ended, wait_for
from test_supervision import _serve

from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger import audit
from datavisa.engine.ledger.decision_log import DecisionLog, load_key
from datavisa.engine.paths import SHIPPED_BUNDLE_DIR
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

REQUESTERS = ["alice", "oscar", "dave", "grace", "petra", "erin", "sam", "carol", "heidi",
              "kenji", "chloe", "liam"]  # fmt: skip


def test_kill_9_during_approvals_loses_nothing_acknowledged(tmp_path: Path):
    db = tmp_path / "datavisa.db"
    acknowledged: dict[str, str] = {}  # request id: the state its approval answered
    with _serve(tmp_path) as served:
        tokens = TokenStore(db)
        issued = {s: tokens.issue(s)[0] for s in REQUESTERS}
        tokens.close()
        pending = []
        for subject in REQUESTERS:
            filed = requests.post(
                served.url + "/v1/requests",
                json={"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "x"},
                headers={"Authorization": f"Bearer {issued[subject]}"},
                timeout=10,
            )
            if filed.status_code == 201:
                pending.append(filed.json()["id"])
        assert len(pending) >= 6, "too few requests to race"
        bob = {"Authorization": f"Bearer {served.tokens['bob']}"}
        started, answering = threading.Barrier(len(pending) + 1), threading.Event()

        def approve(request_id: str) -> None:
            started.wait()
            try:
                answer = requests.post(
                    f"{served.url}/v1/requests/{request_id}/approve", headers=bob, timeout=10
                )
            except requests.RequestException:
                return  # the server died under it: not acknowledged
            if answer.status_code in (200, 202):
                acknowledged[request_id] = answer.json()["state"]
                if len(acknowledged) >= 2:
                    answering.set()

        threads = [threading.Thread(target=approve, args=(r,)) for r in pending]
        for thread in threads:
            thread.start()
        opas = children_named(served.proc.pid, "opa")
        started.wait()
        assert answering.wait(30), "no approval was answered"
        served.proc.kill()  # SIGKILL, as the next approvals are in flight: no shutdown at all
        served.proc.wait()
        ended(opas)
        for thread in threads:
            thread.join(15)

    # Restart on the same file: it starts, and everything answered is there, once.
    with _serve(tmp_path) as again:
        for request_id, state in acknowledged.items():
            shown = again.as_("bob").get(f"/v1/requests/{request_id}")
            assert shown.json()["state"] == state, shown.text
    store = Store(db)
    try:
        events = audit.trail(store.db)
        approved = Counter(e["request_id"] for e in events if e["event"] == "approved")
        activated = Counter(e["request_id"] for e in events if e["event"] == "activated")
        assert all(approved[r] == 1 for r in acknowledged)
        assert all(activated[r] == 1 for r, state in acknowledged.items() if state == "active")
        assert max(approved.values()) == 1 and max(activated.values(), default=1) == 1
        assert audit.verify(store.db).ok
        assert DecisionLog(store, load_key(db)).verify().ok
    finally:
        store.close()


def test_a_killed_serve_leaves_no_opa_answering(tmp_path: Path):
    """kill -9 of serve is no shutdown at all: its OPA must still not outlive it, holding
    the grants it last had and answering on its port."""
    with _serve(tmp_path) as served:
        (opa,) = children_named(served.proc.pid, "opa")
        command = Path(f"/proc/{opa}/cmdline").read_bytes().split(b"\0")
        port = int(command[command.index(b"--addr") + 1].rsplit(b":", 1)[1])
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=5).ok
        served.proc.kill()
        served.proc.wait()
        ended({opa})
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=5)


def test_an_opa_started_from_a_thread_that_ends_lives_on(tmp_path: Path):
    """The parent-death signal follows the thread that forked: OPAs are started from one
    thread that lives as long as the process, so a short-lived caller's end kills none."""
    opa = OpaProcess(SHIPPED_BUNDLE_DIR)
    caller = threading.Thread(target=opa.start)
    caller.start()
    caller.join()
    # Gone from the kernel too (join returns a little before the thread's exit there).
    wait_for(lambda: not Path(f"/proc/self/task/{caller.native_id}").exists(), "the thread")
    try:
        client = opa.client()
        assert client.ready(), "OPA still answers once the thread that asked is gone"
        client.close()
    finally:
        opa.stop()
