"""Two `datavisa serve` processes on one PostgreSQL database, each with the OPA it
supervises: a grant made through one is in force at the other's OPA, racing approvals
through both activate once, both write one hash chain, and when one is killed the other
serves and takes the sweeping over.

Only 127.0.0.1 is reached; every wait is bounded; nothing asserts how long a step took.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from live_server import (
    IN_GERMANY_CONFIG,
    RESOURCE,
    Caller,
    healthy,
    kill_hard,
    serve_process,
    wait_for,
)

from datavisa.cli.main import cli
from datavisa.engine.api.serve import engine_instance
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.lifecycle.grants import ENGINE_LEASE
from datavisa.engine.store import open_store

WAIT_S = 60
RESTRICTED = "eu-payments-ledger"
CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}
SUBJECTS = ("alice", "bob", "dave", "erin", "oscar")
SCIM_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
SCIM_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


@dataclass
class Engine:
    url: str
    proc: subprocess.Popen
    tokens: dict[str, str]

    def as_(self, subject: str) -> Caller:
        return Caller(self.url, self.tokens[subject])

    def allows(self, subject: str = "alice") -> bool:
        return self.as_(subject).post("/v1/access/check", CHECK).json()["allow"]


@contextlib.contextmanager
def _engine(config: Path, log: Path, tokens: dict[str, str]) -> Iterator[Engine]:
    with serve_process("--config", str(config), log=log) as proc:
        yield Engine(proc.url, proc, tokens)


@pytest.fixture
def shared(pg_database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """One PostgreSQL database and a serve config on it; the log key set for every engine."""
    monkeypatch.setenv(KEY_ENV, "one-key-for-every-engine")
    config = tmp_path / "serve.yaml"
    config.write_text(
        f"database: {pg_database}\nsweep_every: 1s\nreconcile_every: 2s\n{IN_GERMANY_CONFIG}"
    )
    return pg_database, config


@pytest.fixture
def engines(shared: tuple[str, Path], tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    url, config = shared
    store = TokenStore(url)
    tokens = {s: store.issue(s)[0] for s in SUBJECTS}
    tokens["okta"] = store.issue("okta", "scim")[0]
    store.close()
    with (
        _engine(config, tmp_path / "a.log", tokens) as a,
        _engine(config, tmp_path / "b.log", tokens) as b,
    ):
        yield a, b


def _request(engine: Engine, resource: str = RESOURCE) -> str:
    body = {"resource": resource, "duration": "1h", "location": "DE", "reason": "INC-9"}
    made = engine.as_("alice").post("/v1/requests", body)
    assert made.status_code == 201, made.text
    return made.json()["id"]


def test_a_grant_made_through_one_engine_is_in_force_at_the_others_opa(engines):
    a, b = engines
    assert not b.allows()
    rid = _request(a)
    assert a.as_("bob").post(f"/v1/requests/{rid}/approve").json()["state"] == "active"
    wait_for(b.allows, "engine B's OPA to hold the grant made through A", WAIT_S)
    revoked = b.as_("bob").post(f"/v1/grants/{rid}/revoke", {"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    # When revoke returns, both engines' OPAs deny: B waited for A's to confirm.
    assert not b.allows()
    assert not a.allows()


def test_a_directory_change_through_one_engine_reaches_the_others_opa(engines):
    """Okta pushes to A; B's OPA hears of it (a NOTIFY at commit) without a restart."""
    a, b = engines
    rid = _request(b)
    refused = b.as_("oscar").post(f"/v1/requests/{rid}/approve")
    assert refused.status_code == 403, refused.text  # oscar owns no data in the bundle
    scim = Caller(a.url, a.tokens["okta"])
    oscar = scim.post("/scim/v2/Users", {"schemas": [SCIM_USER], "userName": "oscar"})
    assert oscar.status_code == 201, oscar.text
    group = {"schemas": [SCIM_GROUP], "displayName": "data-owners",
             "members": [{"value": oscar.json()["id"]}]}  # fmt: skip
    assert scim.post("/scim/v2/Groups", group).status_code == 201
    wait_for(
        lambda: b.as_("oscar").post(f"/v1/requests/{rid}/approve").status_code == 200,
        "engine B's OPA to hold the group synced through A",
        WAIT_S,
    )


def test_approvers_racing_through_two_engines_activate_a_grant_once(engines, shared):
    a, b = engines
    url, _ = shared
    store = open_store(url)
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            for _ in range(4):
                rid = _request(a, RESTRICTED)
                answers = list(
                    pool.map(
                        lambda way, rid=rid: (
                            way[0]
                            .as_(way[1])
                            .post(f"/v1/requests/{rid}/approve", {"location": way[2]})
                        ),
                        [(a, "dave", "DE"), (b, "erin", "DE")],
                    )
                )
                assert all(r.status_code == 200 for r in answers), [r.text for r in answers]
                assert sorted(r.json()["state"] for r in answers) == ["active", "pending"]
                activated = store.db.execute(
                    "SELECT count(*) FROM audit WHERE request_id = ? AND event = 'activated'",
                    [rid],
                ).fetchone()[0]
                assert activated == 1
                added = store.db.execute(
                    "SELECT count(*) FROM outbox WHERE grant_id = ? AND change = 'add'", [rid]
                ).fetchone()[0]
                assert added == 1
                ended = a.as_("alice").post(f"/v1/grants/{rid}/relinquish")
                assert ended.status_code == 200, ended.text
    finally:
        store.close()
    # The audit trail and the decision log both engines wrote: one chain each, intact.
    for command in (["audit", "verify"], ["log", "verify"]):
        done = CliRunner().invoke(cli, [*command, "--db", url])
        assert done.exit_code == 0, done.output


def _sweeper(url: str) -> tuple[str, float] | None:
    store = open_store(url)
    try:
        row = store.db.execute(
            "SELECT holder, held_until FROM leases WHERE name = 'sweeper'"
        ).fetchone()
        return None if row is None else (row[0], row[1])
    finally:
        store.close()


def _running(url: str) -> dict[str, str]:
    store = open_store(url)
    try:
        return store.held_leases(ENGINE_LEASE)
    finally:
        store.close()


def test_one_engine_killed_the_other_serves_and_takes_the_sweeping_over(engines, shared):
    a, b = engines
    url, _ = shared
    rid = _request(a)
    assert a.as_("bob").post(f"/v1/requests/{rid}/approve").json()["state"] == "active"
    wait_for(b.allows, "engine B's OPA to hold the grant", WAIT_S)
    holder = wait_for(lambda: _sweeper(url), "an engine to hold the sweeper lease", WAIT_S)[0]
    first, other = (a, b) if holder.endswith(f":{a.url.rsplit(':', 1)[1]}") else (b, a)

    kill_hard(first.proc)
    taken = wait_for(
        lambda: (lease := _sweeper(url)) and lease[0] != holder and lease,
        "the other engine to take the sweeper lease over",
        WAIT_S,
    )
    # It keeps renewing it: it is sweeping.
    wait_for(lambda: (lease := _sweeper(url)) and lease[1] > taken[1], "a later sweep", WAIT_S)
    assert healthy(other.url)
    assert other.allows()
    # Ending a grant waits for the killed engine's OPA only until its engine lease ran out.
    wait_for(lambda: len(_running(url)) == 1, "the killed engine's lease to run out", WAIT_S)
    ended = other.as_("alice").post(f"/v1/grants/{rid}/relinquish")
    assert ended.status_code == 200, ended.text
    assert not other.allows()


def test_an_engine_is_named_by_its_config_or_else_by_host_and_port(pg_database, tmp_path):
    shared, alone = open_store(pg_database), open_store(tmp_path / "datavisa.db")
    try:
        assert engine_instance(shared, "http://127.0.0.1:8470", "engine-a") == "engine-a"
        assert engine_instance(shared, "http://127.0.0.1:8470").endswith(":8470")
        assert engine_instance(alone, "http://127.0.0.1:8470", "engine-a") is None  # one engine
    finally:
        shared.close()
        alone.close()
