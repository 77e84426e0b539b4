"""Supervised grants through `datavisa serve` (issue 33, items 1, 2 and 6): a grant that
works only while a supervisor is present, over HTTP and with `datavisa watch --supervise`,
on a real PostgreSQL cluster; a kill -9 of the supervisor's watch pauses the grant by
itself; two engines on one PostgreSQL store, the one left notices a lease that ran out.

The bundle's supervision numbers are short (a 2 s lease renewed every second, a 1 s
grace), so each wait is brief; every wait is for a condition, bounded; nothing asserts
how long a step took.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from live_server import IN_GERMANY_CONFIG, Caller, kill_hard, serve_process, wait_for

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.connectors.postgresql import role_name
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR

DATAVISA = Path(sys.executable).with_name("datavisa")
RESOURCE = "eu-customer-analytics"  # supervised for write (bundles/default/supervision.yaml)
SUBJECTS = ("alice", "bob", "erin", "oscar")
WAIT_S = 30.0
SHORT = (
    "supervised:\n  required:\n    resources:\n      eu-customer-analytics: [write]\n"
    "  supervisors: [security_officer, data_owner]\n  lease_s: 2\n  heartbeat_s: 1\n"
    "  grace_s: 1\n"
)


@dataclass
class Served:
    url: str
    proc: subprocess.Popen
    tokens: dict[str, str]

    def as_(self, subject: str) -> Caller:
        return Caller(self.url, self.tokens[subject])

    def check(self, action: str = "write") -> dict:
        body = {"resource": RESOURCE, "action": action, "location": "DE"}
        return self.as_("alice").post("/v1/access/check", body).json()

    def state(self, grant_id: str) -> str | None:
        return self.as_("bob").get(f"/v1/requests/{grant_id}").json()["supervision_state"]

    def trail(self, grant_id: str) -> list[dict]:
        page = self.as_("bob").get("/v1/audit", params={"request_id": grant_id, "limit": 1000})
        return page.json()["events"]


def _data(tmp_path: Path) -> Path:
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path / "data"))
    (data / "supervision.yaml").write_text(SHORT)
    return data


def _tokens(database: str) -> dict[str, str]:
    store = TokenStore(database)
    tokens = {s: store.issue(s)[0] for s in SUBJECTS}
    store.close()
    return tokens


@contextlib.contextmanager
def _serve(config: Path, log: Path, tokens: dict[str, str]) -> Iterator[Served]:
    with serve_process("--config", str(config), log=log) as proc:
        yield Served(proc.url, proc, tokens)


def _supervised_grant(served: Served) -> str:
    body = {"resource": RESOURCE, "actions": ["read", "write"], "duration": "1h",
            "location": "DE", "reason": "INC-33: fix the orders table"}  # fmt: skip
    made = served.as_("alice").post("/v1/requests", body)
    assert made.status_code == 201, made.text
    approved = served.as_("bob").post(f"/v1/requests/{made.json()['id']}/approve")
    assert approved.status_code == 200 and approved.json()["state"] == "active", approved.text
    assert approved.json()["supervision"]["supervised"] is True
    assert approved.json()["supervision_state"] == "absent"
    return made.json()["id"]


def _logs_in(url: str) -> bool:
    try:
        psycopg.connect(url, autocommit=True, connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True


def _reads(session: psycopg.Connection) -> bool:
    try:
        session.execute("SELECT count(*) FROM orders").fetchone()
    except psycopg.Error:
        return False
    return True


def _watch(served: Served, grant_id: str, subject: str, log: Path) -> subprocess.Popen:
    """`datavisa watch GRANT --supervise` as `subject`, its stdin a pipe for commands."""
    return subprocess.Popen(
        [str(DATAVISA), "watch", grant_id, "--supervise", "--from", "DE", "--interval", "0.2",
         "--server", served.url, "--token", served.tokens[subject]],
        stdin=subprocess.PIPE, stdout=log.open("w"), stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


@pytest.fixture
def served(tmp_path: Path, postgres: LocalPostgres, analytics: str) -> Iterator[Served]:
    (tmp_path / "analytics.dsn").write_text(postgres.dsn() + "\n")
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"bundle_dir: {_data(tmp_path)}\nreconcile_every: 1s\n{IN_GERMANY_CONFIG}"
        "connections:\n  analytics:\n    kind: postgresql\n    dsn_file: analytics.dsn\n"
        f"    log_dir: {postgres.log_dir}\n"
    )
    db = tmp_path / "datavisa.db"
    config.write_text(config.read_text() + f"database: {db}\n")
    with _serve(config, tmp_path / "serve.log", _tokens(str(db))) as served:
        yield served


def test_who_may_supervise_is_policy_s_and_said_why(served: Served):
    grant_id = _supervised_grant(served)
    path = f"/v1/grants/{grant_id}/supervision"
    own = served.as_("alice").post(path, {"location": "DE"})
    assert own.status_code == 403, own.text
    assert "self_supervision" in {r["code"] for r in own.json()["error"]["reasons"]}
    engineer = served.as_("oscar").post(path, {"location": "DE"})
    assert engineer.status_code == 403, engineer.text
    assert {r["code"] for r in engineer.json()["error"]["reasons"]} == {"supervisor_not_eligible"}
    bad = served.as_("erin").post(path, {"location": "Germany"})
    assert bad.status_code == 422 and "location" in bad.text
    assert served.as_("erin").session.delete(served.url + path).status_code == 404  # not joined
    unsupervised = served.as_("alice").post(
        "/v1/requests", {"resource": "uk-employee-records", "duration": "1h", "location": "DE",
                         "reason": "x"},
    )  # fmt: skip
    assert unsupervised.json()["supervision"]["supervised"] is False


def test_join_leave_grace_and_rejoin_over_http(served: Served):
    grant_id = _supervised_grant(served)
    assert {r["code"] for r in served.check()["reasons"]} == {"supervisor_absent"}
    refused = served.as_("alice").get(f"/v1/grants/{grant_id}/credentials",
                                      params={"location": "DE"})  # fmt: skip
    assert refused.status_code == 403, refused.text  # no supervisor: no credentials either
    path = f"/v1/grants/{grant_id}/supervision"
    joined = served.as_("erin").post(path, {"location": "DE"})
    assert joined.status_code == 200 and joined.json()["joined"] is True, joined.text
    assert served.check()["allow"] is True
    issued = served.as_("alice").get(f"/v1/grants/{grant_id}/credentials",
                                     params={"location": "DE"})  # fmt: skip
    assert issued.status_code == 200, issued.text
    url = issued.json()["url"]
    assert _logs_in(url)
    session = psycopg.connect(url, autocommit=True)
    assert _reads(session)
    expires = served.as_("bob").get(f"/v1/requests/{grant_id}").json()["expires_at"]

    left = served.as_("erin").session.delete(served.url + path, timeout=10)
    assert left.status_code == 200 and left.json()["supervision_state"] == "absent", left.text
    assert not _logs_in(url), "login works with no supervisor present"
    assert {r["code"] for r in served.check()["reasons"]} == {"supervisor_absent"}
    wait_for(lambda: not _reads(session), "the open session to end after the grace", WAIT_S)
    assert served.state(grant_id) == "ended"

    again = served.as_("bob").post(path, {"location": "DE"})  # bob owns the data: eligible
    assert again.status_code == 200, again.text
    assert _logs_in(url), "login refused after a supervisor rejoined"
    assert served.as_("bob").get(f"/v1/requests/{grant_id}").json()["expires_at"] == expires
    listed = served.as_("bob").get(path).json()
    assert listed["state"] == "present" and [s["supervisor"] for s in listed["supervisors"]] == [
        "bob"
    ]
    events = [e["event"] for e in served.trail(grant_id)]
    for event in ("supervisor_joined", "supervisor_left", "grant_paused",
                  "grant_sessions_ended", "grant_resumed"):  # fmt: skip
        assert event in events, events


def test_a_watch_that_is_killed_pauses_the_grant_by_itself(served: Served, tmp_path: Path):
    """`datavisa watch --supervise` keeps the grant working while it runs; kill -9 it and
    the lease runs out: the login is refused and the open session ends. Another watch:
    login works again, and from it the supervisor ends one session, then leaves."""
    grant_id = _supervised_grant(served)
    watch = _watch(served, grant_id, "erin", tmp_path / "watch1.log")
    try:
        wait_for(lambda: served.state(grant_id) == "present", "the watch to join", WAIT_S)
        issued = served.as_("alice").get(f"/v1/grants/{grant_id}/credentials",
                                         params={"location": "DE"}).json()  # fmt: skip
        session = psycopg.connect(issued["url"], autocommit=True)
        # Heartbeats keep it present past several lease lengths (2 s each).
        renewed: set[str] = set()
        wait_for(lambda: len(_renewals(served, grant_id, renewed)) >= 4, "heartbeats", WAIT_S)
        assert served.state(grant_id) == "present" and _reads(session)
    finally:
        kill_hard(watch)
    wait_for(lambda: not _logs_in(issued["url"]), "the lapsed lease to refuse the login", WAIT_S)
    wait_for(lambda: not _reads(session), "the open session to end after the grace", WAIT_S)
    trail = served.trail(grant_id)
    assert [e["detail"].get("how") for e in trail if e["event"] == "supervisor_left"] == ["lapsed"]

    watch = _watch(served, grant_id, "erin", tmp_path / "watch2.log")
    try:
        wait_for(lambda: _logs_in(issued["url"]), "a new watch to resume the grant", WAIT_S)
        other = psycopg.connect(issued["url"], autocommit=True)
        pid = other.info.backend_pid
        watch.stdin.write(f"end {pid}\n")
        watch.stdin.flush()
        wait_for(lambda: not _reads(other), "the supervisor's `end` to end that session", WAIT_S)
        assert served.state(grant_id) == "present"
    finally:
        watch.send_signal(signal.SIGTERM)  # a clean stop: the watch leaves
        watch.wait(timeout=WAIT_S)
    wait_for(lambda: served.state(grant_id) in ("absent", "ended"), "the watch to leave", WAIT_S)
    said = (tmp_path / "watch2.log").read_text()
    assert f"session {pid} of grant {grant_id} ended" in said, said
    assert f"left grant {grant_id}" in said, said
    shown = subprocess.run(
        [str(DATAVISA), "show", grant_id, "--server", served.url, "--token", served.tokens["bob"]],
        capture_output=True, text=True, timeout=WAIT_S,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "supervised  no supervisor present" in shown.stdout, shown.stdout
    for event in ("grant_paused", "supervisor_left", "session_ended", "grant_resumed"):
        assert event in shown.stdout, shown.stdout
    assert role_name(grant_id) in issued["url"]


def _renewals(served: Served, grant_id: str, seen: set[str]) -> set[str]:
    """The lease expiries seen so far: each heartbeat moves it on."""
    leases = served.as_("bob").get(f"/v1/grants/{grant_id}/supervision").json()["supervisors"]
    seen |= {lease["held_until"] for lease in leases}
    return seen


def test_two_engines_on_one_postgresql_store_the_other_notices_a_lapsed_lease(
    pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A supervisor joins through engine A, and A is killed -9 with its OPA: B's OPA,
    which allowed while the supervisor was present, denies once the lease ran out (B's
    timer wrote it down, and B's OPA took it from the outbox)."""
    monkeypatch.setenv(KEY_ENV, "one-key-for-every-engine")
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"database: {pg_database}\nbundle_dir: {_data(tmp_path)}\nsweep_every: 1s\n"
        f"reconcile_every: 2s\n{IN_GERMANY_CONFIG}"
    )
    tokens = _tokens(pg_database)
    with (
        _serve(config, tmp_path / "a.log", tokens) as a,
        _serve(config, tmp_path / "b.log", tokens) as b,
    ):
        grant_id = _supervised_grant(a)
        wait_for(lambda: "supervisor_absent" in {r["code"] for r in b.check()["reasons"]},
                 "B's OPA to hold the grant, paused", WAIT_S)  # fmt: skip
        assert a.as_("erin").post(f"/v1/grants/{grant_id}/supervision").status_code == 200
        wait_for(lambda: b.check()["allow"], "B's OPA to see the supervisor present", WAIT_S)
        kill_hard(a.proc)
        wait_for(lambda: not b.check()["allow"], "B to notice the lease ran out", WAIT_S)
        assert {r["code"] for r in b.check()["reasons"]} == {"supervisor_absent"}
        assert b.state(grant_id) in ("absent", "ended")


def test_ending_one_session_over_http_goes_through_the_outbox(served: Served):
    """POST .../sessions/{pid}/end answers once PostgreSQL ended that session (the ask went
    round the grant outbox to the connector), says how in session-ends/{end}; the other
    session runs on; a session the grant's role does not have is 404; the holder may not."""
    grant_id = _supervised_grant(served)
    path = f"/v1/grants/{grant_id}/supervision"
    assert served.as_("erin").post(path, {"location": "DE"}).status_code == 200
    issued = served.as_("alice").get(f"/v1/grants/{grant_id}/credentials",
                                     params={"location": "DE"}).json()  # fmt: skip
    first = psycopg.connect(issued["url"], autocommit=True)
    second = psycopg.connect(issued["url"], autocommit=True)
    end = f"/v1/grants/{grant_id}/sessions/{first.info.backend_pid}/end"
    assert served.as_("alice").post(end).status_code == 403  # the holder cannot end it
    ended = served.as_("erin").post(end)
    assert ended.status_code == 200, ended.text
    assert ended.json()["state"] == "ended" and ended.json()["sink"] == "postgresql"
    assert not _reads(first) and _reads(second)
    status = served.as_("bob").get(f"/v1/grants/{grant_id}/session-ends/{ended.json()['end']}")
    assert status.status_code == 200 and status.json()["state"] == "ended", status.text
    assert status.json()["asked_by"] == "erin" and status.json()["done_at"]
    gone = served.as_("erin").post(f"/v1/grants/{grant_id}/sessions/4242/end")
    assert gone.status_code == 404, gone.text
    assert served.as_("bob").get(f"/v1/grants/{grant_id}/session-ends/999").status_code == 404
    events = [e["event"] for e in served.trail(grant_id)]
    assert "session_end_asked" in events and "session_ended" in events, events


def test_a_session_end_postgresql_does_not_take_yet_is_202_and_done_on_retry(
    served: Served, postgres: LocalPostgres
):
    """While another holds the role's turn (the advisory lock engines sharing a server
    take turns by), the connector cannot act: the ask is recorded, 202 names the pending
    data system and where to ask; the outbox retries it, and once the turn is free the
    session ends and session-ends says so."""
    grant_id = _supervised_grant(served)
    assert served.as_("erin").post(f"/v1/grants/{grant_id}/supervision", {"location": "DE"}).ok
    issued = served.as_("alice").get(f"/v1/grants/{grant_id}/credentials",
                                     params={"location": "DE"}).json()  # fmt: skip
    session = psycopg.connect(issued["url"], autocommit=True)
    turn = psycopg.connect(postgres.dsn(), autocommit=True)
    key = "datavisa:" + role_name(grant_id)
    turn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", [key])
    try:
        end = f"/v1/grants/{grant_id}/sessions/{session.info.backend_pid}/end"
        asked = served.as_("erin").session.post(served.url + end, json={}, timeout=60)
        assert asked.status_code == 202, asked.text
        body = asked.json()
        assert body["state"] == "pending" and body["pending_sinks"] == ["postgresql"], body
        assert "retries" in body["message"]
        where = asked.headers["Location"]
        assert where == f"/v1/grants/{grant_id}/session-ends/{body['end']}"
        assert served.as_("bob").get(where).json()["state"] == "pending"
        assert _reads(session)
    finally:
        turn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])
        turn.close()
    wait_for(lambda: served.as_("bob").get(where).json()["state"] == "ended",
             "the outbox's retry to end the session", WAIT_S)  # fmt: skip
    assert not _reads(session)
