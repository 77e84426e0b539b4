"""The decision log over HTTP: OPA's own plugin uploads to it, auditors read it, and a
killed server loses no decision it answered."""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from live_server import RESOURCE, Caller, children_named, ended
from test_supervision import DATAVISA, _healthy, _serve, _wait_for

from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger.decision_log import DecisionLog, load_key
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import find_opa, free_port, stop_process
from datavisa.engine.store.sqlite import Store

CHECK = {"subject": "alice", "resource": RESOURCE, "action": "read", "location": "DE"}


@contextlib.contextmanager
def _sidecar_opa(tmp_path: Path, engine_url: str, token: str) -> Iterator[str]:
    """An OPA with the shipped bundle whose decision-log plugin uploads to the engine."""
    tarball = bundle.build(POLICY_DIR, DEFAULT_BUNDLE_DIR, tmp_path / "bundle.tar.gz", "sidecar")
    config = tmp_path / "opa.json"
    config.write_text(json.dumps({
        "services": {"datavisa": {"url": f"{engine_url}/v1",
                                  "credentials": {"bearer": {"token": token}}}},
        "decision_logs": {"service": "datavisa",
                          "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 1}},
    }))  # fmt: skip
    port = free_port()
    proc = subprocess.Popen(
        [str(find_opa()), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level",
         "error", "--config-file", str(config), "--bundle", str(tarball)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: OpaClient(url).ready(), "the sidecar OPA")
        yield url
    finally:
        stop_process(proc)  # SIGTERM: OPA flushes its buffered events on a graceful stop


def test_opa_direct_decisions_arrive_through_opas_own_plugin_exactly_once(api, tmp_path):
    service_token = api.service.tokens.issue("opa-sidecar", "service")[0]
    auditor = api.as_("audrey", "auditor")
    with _sidecar_opa(tmp_path, api.url, service_token) as opa:
        asked = []
        for location in ["DE", "US", "FR", "unknown"] * 5:
            answer = requests.post(
                f"{opa}/v1/data/datavisa/access/decision",
                json={"input": {**CHECK, "location": location}}, timeout=10,
            ).json()  # fmt: skip
            asked.append(answer["decision_id"])

        def arrived() -> list[dict]:
            return auditor.get("/v1/logs", params={"limit": 1000}).json()["events"]

        _wait_for(lambda: len(arrived()) >= len(asked), "OPA's uploads")
    events = arrived()
    assert sorted(e["decision_id"] for e in events) == sorted(asked)
    assert {e["path"] for e in events} == {"datavisa/access/decision"}
    assert {b["revision"] for e in events for b in e["bundles"].values()} == {"sidecar"}

    # A retried upload (OPA resends a chunk it saw fail) lands once.
    chunk = gzip.compress(
        json.dumps([{k: v for k, v in e.items() if k != "seq"} for e in events]).encode()
    )
    retry = requests.post(
        f"{api.url}/v1/logs", data=chunk, timeout=10,
        headers={"Authorization": f"Bearer {service_token}", "Content-Encoding": "gzip",
                 "Content-Type": "application/json"},
    )  # fmt: skip
    assert retry.status_code == 204, retry.text
    assert len(arrived()) == len(asked)
    assert api.service.engine.log.verify().ok


def test_decisions_asked_of_serves_own_opa_land_in_its_log_once(tmp_path):
    """Services may ask the OPA `datavisa serve` runs directly: it uploads those decisions
    to serve with a token of its own; the engine's own queries are not uploaded again."""
    with _serve(tmp_path) as served:
        tokens = TokenStore(tmp_path / "datavisa.db")
        auditor = Caller(served.url, tokens.issue("audrey", "auditor")[0])
        opa = re.search(r"OPA on (http://\S+)", (tmp_path / "serve.log").read_text())[1]
        engine_id = served.as_("alice").post("/v1/access/check", CHECK).json()["decision_id"]
        asked = [
            requests.post(
                f"{opa}/v1/data/datavisa/access/decision",
                json={"input": {**CHECK, "location": location}}, timeout=10,
            ).json()["decision_id"]
            for location in ("DE", "US", "FR")
        ]  # fmt: skip

        def logged() -> dict[str, str]:
            events = auditor.get("/v1/logs", params={"limit": 100}).json()["events"]
            return {e["decision_id"]: e["path"] for e in events}

        _wait_for(lambda: set(asked) <= set(logged()), "the OPA's upload")
        time.sleep(2.5)  # two more upload periods: nothing else may arrive
        got = logged()
        # Besides: the API permissions serve loaded at start, as its OPA logged them.
        loaded = [i for i, path in got.items() if path == "datavisa/api/permissions"]
        assert len(loaded) == 1
        assert sorted(set(got) - set(loaded)) == sorted([engine_id, *asked])
        (uploader,) = [t for t in tokens.list() if t.subject == "datavisa-opa"]
        assert (uploader.role, uploader.revoked_at) == ("opa", None)
    (uploader,) = [t for t in tokens.list() if t.subject == "datavisa-opa"]
    assert uploader.revoked_at is not None  # serve revoked it when it stopped
    tokens.close()


def test_an_approvers_queue_keeps_no_other_decision_out_of_the_log(tmp_path):
    """The queue asks OPA about every pending request at once: an event far larger than
    the engine takes of an upload. OPA does not log it, so the decisions services ask it
    directly beside it still arrive (they were refused with it, batch and all)."""
    with _serve(tmp_path) as served:
        tokens = TokenStore(tmp_path / "datavisa.db")
        auditor = Caller(served.url, tokens.issue("audrey", "auditor")[0])
        tokens.close()
        opa = re.search(r"OPA on (http://\S+)", (tmp_path / "serve.log").read_text())[1]
        filed = (
            served.as_("alice")
            .post(
                "/v1/requests",
                {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "INC-1"},
            )
            .json()
        )
        store = Store(tmp_path / "datavisa.db")
        try:
            template = store.get(filed["id"])
            assert template is not None
            with store.transaction() as db:
                db["requests"].insert_all(
                    [dataclasses.replace(template, id=f"{n:012x}").to_row() for n in range(1, 500)]
                )
        finally:
            store.close()
        queue = served.as_("bob").get("/v1/queue", params={"location": "DE"})
        assert queue.status_code == 200 and queue.json()["total"] == 500, queue.text
        asked = [
            requests.post(
                f"{opa}/v1/data/datavisa/access/decision", json={"input": CHECK}, timeout=10
            ).json()["decision_id"]
            for _ in range(2)
        ]

        def logged() -> set[str]:
            events = auditor.get("/v1/logs", params={"limit": 100}).json()["events"]
            return {e["decision_id"] for e in events}

        _wait_for(lambda: set(asked) <= logged(), "the OPA's upload beside the queue")


def test_decisions_serves_opa_answered_just_before_serve_stops_are_kept(tmp_path):
    """OPA uploads every second or two; on SIGTERM serve stops its OPA first, while the API
    still takes the last upload, so what OPA answered last is not lost."""
    with _serve(tmp_path) as served:
        opa = re.search(r"OPA on (http://\S+)", (tmp_path / "serve.log").read_text())[1]
        asked = [
            requests.post(
                f"{opa}/v1/data/datavisa/access/decision", json={"input": CHECK}, timeout=10
            ).json()["decision_id"]
            for _ in range(5)
        ]
        served.proc.send_signal(signal.SIGTERM)
        assert served.proc.wait(timeout=30) == 0
    store = Store(tmp_path / "datavisa.db")
    log = DecisionLog(store, load_key(tmp_path / "datavisa.db"))
    logged = {e["decision_id"] for e in log.query(limit=100)}
    store.close()
    assert set(asked) <= logged


def test_only_services_upload_and_only_auditors_read(api):
    alice, auditor = api.as_("alice"), api.as_("audrey", "auditor")
    assert alice.post("/v1/logs", []).status_code == 403
    assert alice.get("/v1/logs").status_code == 403
    assert auditor.post("/v1/logs", []).status_code == 403
    service = api.as_("db-proxy", "service")
    assert service.post("/v1/logs", []).status_code == 204
    assert service.get("/v1/logs").status_code == 403
    assert auditor.get("/v1/logs").status_code == 200
    assert api.anonymous().get("/v1/logs").status_code == 401


def test_bad_uploads_are_refused_and_store_nothing(api):
    service = api.as_("db-proxy", "service")
    gz = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    cases = [
        (service.session.post(f"{api.url}/v1/logs", data=b"not gzip", headers=gz), 400),
        (service.session.post(f"{api.url}/v1/logs", data=b"{nope", headers={}), 400),
        (service.post("/v1/logs", {"decision_id": "x"}), 422),
        (service.post("/v1/logs", [{"path": "no id"}]), 422),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert "error" in response.json()
    assert api.service.engine.log.query() == []


def test_the_log_pages_and_filters_over_http(api):
    api.grant("alice")
    service = api.as_("db-proxy", "service")
    for location in ["DE", "US", "DE"]:
        service.post("/v1/access/check", {**CHECK, "location": location})
    auditor = api.as_("audrey", "auditor")
    page = auditor.get("/v1/logs", params={"result": "allow", "limit": 2}).json()
    assert len(page["events"]) == 2 and page["next_after"] == page["events"][-1]["seq"]
    rest = auditor.get("/v1/logs", params={"result": "allow", "after": page["next_after"]}).json()
    assert rest["next_after"] is None
    denied = auditor.get("/v1/logs", params={"reason": "location_not_permitted"}).json()["events"]
    assert [(e["input"]["location"], e["requested_by"]) for e in denied] == [("US", "db-proxy")]
    bad = auditor.get("/v1/logs", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "since"


def test_a_killed_server_loses_no_decision_it_answered(tmp_path):
    db = tmp_path / "datavisa.db"
    tokens = TokenStore(db)
    token = tokens.issue("db-proxy", "service")[0]
    tokens.close()
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [str(DATAVISA), "serve", "--listen", f"127.0.0.1:{port}", "--db", str(db)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    url, answered = f"http://127.0.0.1:{port}", []
    try:
        _wait_for(lambda: _healthy(url) or proc.poll() is not None, "serve to be ready")
        opa = children_named(proc.pid, "opa")
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        killer = threading.Timer(1.5, lambda: os.kill(proc.pid, signal.SIGKILL))
        killer.start()
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                answer = session.post(f"{url}/v1/access/check", json=CHECK, timeout=5).json()
            except requests.RequestException:
                break
            answered.append(answer["decision_id"])
        killer.join()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        ended(opa)  # it dies with its serve
        log.close()
    assert len(answered) > 10
    store = Store(db)
    decisions = DecisionLog(store, load_key(db))
    recorded = {e["decision_id"] for e in decisions.query(limit=100_000)}
    assert set(answered) <= recorded
    assert decisions.verify().ok
    store.close()
