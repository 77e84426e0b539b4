"""Two engines, one PostgreSQL, three sidecar OPAs, on real parts.

Two `datavisa serve` processes share one PostgreSQL database, and `fleet.opas` names three
sidecars, each a real OPA started from what `datavisa opa-config` prints. Each sidecar
reaches the engines through a load balancer of its own (a proxy on loopback): opa-1's and
opa-2's send them to engine A, opa-3's to engine B, so status reports land on either
engine and the confirmed revisions meet in the shared store. Both engines also keep the
grants in force in a PostgreSQL database (`connections:`), one managed role per grant.

Shown: a grant through B is allowed by all three sidecars; a revoke through A answers once
all three deny; a stopped sidecar holds the removal back (every engine stays ready, its
enforcement check says so) and catches up when restarted; and when the engine holding the
sweeper lease is killed, the load balancers send its sidecars to the other, which keeps
serving, expires a grant (every sidecar denies it, its role is dropped) and puts right a
role someone made by hand in the database (only the engine holding the sweep lease
reconciles the shared sinks); the killed engine, restarted, holds the grants changed while
it was down and its revoke reaches every sidecar. Every wait is bounded; nothing asserts
how long a step took.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
import yaml
from click.testing import CliRunner
from faults import FaultyProxy
from live_server import (
    IN_GERMANY_CONFIG,
    RESOURCE,
    Caller,
    healthy,
    kill_hard,
    serve_process,
    wait_for,
)
from test_fleet import NAMES, Sidecar
from test_several_engines import Engine, _sweeper

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.cli.main import cli
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.connectors.postgresql import MANAGED, role_name
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.lifecycle.fleet import Fleet as FleetState
from datavisa.engine.lifecycle.fleet import FleetConfig

DATAVISA = Path(sys.executable).with_name("datavisa")
WAIT_S = 60.0
SUBJECTS = ("alice", "bob", "dave")
POLLS = {"opa-1": "a", "opa-2": "a", "opa-3": "b"}  # which engine each sidecar's LB sends to


@dataclass
class Setup:
    dsn: str
    postgres: LocalPostgres
    engines: dict[str, Engine]
    balancers: dict[str, FaultyProxy]  # by sidecar: its load balancer
    logs: tuple[Path, ...]
    config: Path
    sidecars: dict[str, Sidecar] = field(default_factory=dict)

    def grant(self, through: str, subject: str = "alice", duration: str = "1h") -> str:
        engine = self.engines[through]
        body = {"resource": RESOURCE, "duration": duration, "location": "DE", "reason": "INC-4"}
        made = engine.as_(subject).post("/v1/requests", body)
        assert made.status_code == 201, made.text
        approved = engine.as_("bob").post(f"/v1/requests/{made.json()['id']}/approve", {})
        assert approved.status_code in (200, 202), approved.text
        assert approved.json()["state"] == "active", approved.text
        # 202: a sidecar slower than confirm_within (a busy machine); wait for it.
        self.confirmed(through)
        return made.json()["id"]

    def revoke(self, through: str, grant_id: str) -> requests.Response:
        return (
            self.engines[through]
            .as_("bob")
            .post(f"/v1/grants/{grant_id}/revoke", {"reason": "offboarding"})
        )

    def confirmed(self, through: str) -> None:
        """Wait until every running sidecar holds the newest grants, as `through` sees it."""
        running = {n for n, s in self.sidecars.items() if s.proc and s.proc.poll() is None}
        wait_for(
            lambda: all(m["lag"] == 0 for n, m in self.fleet(through).items() if n in running),
            f"every running sidecar to confirm the newest grants through {through}",
            WAIT_S,
        )

    def allowing(self, subject: str = "alice") -> list[str]:
        """The running sidecars that allow `subject` the check now."""
        running = {n: s for n, s in self.sidecars.items() if s.proc and s.proc.poll() is None}
        return [name for name, s in running.items() if s.allows(subject)]

    def role_exists(self, name: str) -> bool:
        with psycopg.connect(self.postgres.dsn("analytics"), autocommit=True) as db:
            found = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name]).fetchone()
        return found is not None

    def sweeping(self) -> str:
        """Which engine holds the sweeper lease now ("a" or "b")."""
        holder = wait_for(lambda: _sweeper(self.dsn), "an engine to sweep", WAIT_S)[0]
        port = holder.rsplit(":", 1)[1]
        return next(n for n, e in self.engines.items() if e.url.endswith(f":{port}"))

    def copy_a_role_by_hand(self, grant_id: str) -> str:
        """A managed role no grant holds, made in the database as someone might."""
        copy = f"dv_copy{grant_id}"
        with psycopg.connect(self.postgres.dsn("analytics"), autocommit=True) as pg:
            pg.execute(f'CREATE ROLE "{copy}" LOGIN IN ROLE {MANAGED}')
        return copy

    def fleet(self, through: str) -> dict[str, dict[str, Any]]:
        answer = self.engines[through].as_("erin").get("/v1/fleet")
        assert answer.status_code == 200, answer.text
        return {m["name"]: m for m in answer.json()["opas"]}


@pytest.fixture(scope="module")
def setup(
    postgres: LocalPostgres, analytics: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("fleet-engines")
    dsn = postgres.create_database(f"t_fleet_engines_{os.getpid()}")
    (tmp / "analytics.dsn").write_text(postgres.dsn() + "\n")
    config = tmp / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database": dsn,
                "sweep_every": "1s",
                "reconcile_every": "2s",
                # The balancers' proxy gives up on an upstream after 5s: polls shorter.
                "fleet": {"opas": list(NAMES), "confirm_within": "5s", "long_poll": "2s"},
                "connections": {"analytics": {"kind": "postgresql", "dsn_file": "analytics.dsn"}},
                **yaml.safe_load(IN_GERMANY_CONFIG),  # loopback callers are in DE
            }
        )
    )
    store = TokenStore(dsn)
    tokens = {s: store.issue(s)[0] for s in SUBJECTS}
    tokens["erin"] = store.issue("erin", "admin")[0]
    tokens["carol"] = store.issue("carol", "auditor")[0]
    store.close()
    with pytest.MonkeyPatch.context() as env:
        env.setenv(KEY_ENV, "one-key-for-every-engine")
        with (
            serve_process("--config", str(config), log=tmp / "a.log") as a,
            serve_process("--config", str(config), log=tmp / "b.log") as b,
        ):
            engines = {"a": Engine(a.url, a, tokens), "b": Engine(b.url, b, tokens)}
            balancers = {name: FaultyProxy(engines[POLLS[name]].url) for name in NAMES}
            for balancer in balancers.values():
                balancer.__enter__()
            done = Setup(dsn, postgres, engines, balancers, (tmp / "a.log", tmp / "b.log"), config)
            try:
                for name in NAMES:
                    made = subprocess.run(
                        [str(DATAVISA), "opa-config", name,
                         "--server", balancers[name].url, "--db", dsn, "--long-poll", "2s"],
                        capture_output=True, text=True, timeout=60,
                    )  # fmt: skip
                    assert made.returncode == 0, made.stderr
                    (tmp / f"{name}.yaml").write_text(made.stdout)
                    done.sidecars[name] = Sidecar(name, tmp / f"{name}.yaml", tmp / f"{name}.log")
                    done.sidecars[name].start()
                yield done
            finally:
                for sidecar in done.sidecars.values():
                    sidecar.stop()
                for balancer in balancers.values():
                    balancer.__exit__()


def test_a_grant_through_one_engine_and_a_revoke_through_the_other_reach_every_sidecar(setup):
    assert setup.allowing() == []
    grant_id = setup.grant("b")  # approved through B: its role made there, or by A
    answers = [s.ask() for s in setup.sidecars.values()]
    assert [a["result"]["allow"] for a in answers] == [True] * 3  # B waited for all three
    assert setup.role_exists(role_name(grant_id))
    # Both engines apply the outbox to the database: whichever made the role, the grant
    # is provisioned, and outlives the next sweeps (a refused one would be ended).
    swept = wait_for(lambda: _sweeper(setup.dsn), "an engine to hold the sweeper lease", WAIT_S)
    wait_for(
        lambda: (lease := _sweeper(setup.dsn)) and lease[1] > swept[1] + 1 and lease,
        "two more sweeps",
        WAIT_S,
    )
    state = setup.engines["a"].as_("alice").get(f"/v1/requests/{grant_id}").json()["state"]
    assert state == "active"

    revoked = setup.revoke("a", grant_id)
    # 200: nothing still grants it; 202 only when a sidecar is slower than confirm_within
    # (a busy machine), named, and then waited for.
    assert revoked.status_code in (200, 202), revoked.text
    if revoked.status_code == 202:
        assert set(revoked.json()["pending_sinks"]) <= {f"fleet:{n}" for n in NAMES}
        setup.confirmed("a")
    denials = [s.ask() for s in setup.sidecars.values()]  # probed right after the answer
    assert [d["result"]["allow"] for d in denials] == [False] * 3
    assert not setup.role_exists(role_name(grant_id))
    for engine in setup.engines.values():
        assert not engine.allows()
        assert healthy(engine.url, enforcement=True)
    # Both engines show every sidecar holding the newest revision, wherever it reports.
    for through in setup.engines:
        assert {n: m["lag"] for n, m in setup.fleet(through).items()} == dict.fromkeys(NAMES, 0)

    # The sidecars upload their decisions to the engine they poll: one decision log.
    asked = {a["decision_id"] for a in answers + denials}
    auditor = setup.engines["b"].as_("carol")

    def logged() -> bool:
        page = auditor.get("/v1/logs", params={"subject": "alice", "limit": 1000}).json()
        return asked <= {e["decision_id"] for e in page["events"]}

    wait_for(logged, "every sidecar's decisions in the one decision log", WAIT_S)

    # A role made by hand: the engine that sweeps puts it right, the other leaves it be.
    def repairs() -> dict[str, int]:
        return {
            name: log.read_text().count("the grants in postgresql differ from the store")
            for name, log in zip(setup.engines, setup.logs, strict=True)
        }

    sweeping, before = setup.sweeping(), repairs()
    copy = setup.copy_a_role_by_hand(grant_id)
    wait_for(lambda: not setup.role_exists(copy), "the copied role to be removed", WAIT_S)
    after = repairs()
    assert {n: after[n] - before[n] for n in after} == {n: int(n == sweeping) for n in after}
    # Both engines applied the same changes to the database at once: neither failed at it.
    for log in setup.logs:
        assert "applying grant changes failed" not in log.read_text(), log.read_text()


def test_a_stopped_sidecar_holds_a_removal_back_without_taking_the_engines_out(setup):
    grant_id = setup.grant("a")
    third = setup.sidecars["opa-3"]  # reports to engine B
    third.stop()

    revoked = setup.revoke("a", grant_id)
    assert revoked.status_code == 202, revoked.text
    assert revoked.json()["pending_sinks"] == ["fleet:opa-3"]
    assert setup.allowing() == []  # opa-3 is down; the other two deny
    for engine in setup.engines.values():
        health = requests.get(engine.url + "/health", timeout=5)
        assert health.status_code == 200, health.text  # ready: the load balancer keeps it
        assert health.json()["enforcement"]["status"] == "held_back"
        enforced = requests.get(engine.url + "/health?enforcement=true", timeout=5)
        assert enforced.status_code == 503
        assert any("opa-3" in p for p in enforced.json()["problems"]), enforced.json()

    third.start()  # fresh: it downloads the live grants from B and reports
    assert "opa-3" not in setup.allowing()
    for name, engine in setup.engines.items():
        wait_for(
            lambda engine=engine: healthy(engine.url, enforcement=True),
            f"engine {name} to see opa-3 confirm the revoke",
            WAIT_S,
        )
        assert setup.fleet(name)["opa-3"]["lag"] == 0


def test_the_sweeping_engine_killed_the_other_serves_sweeps_and_reconciles(setup):
    kept = setup.grant("a", "dave")
    expiring = setup.grant("b", duration="10s")  # outlasts the approval on a busy machine
    assert setup.role_exists(role_name(expiring))
    holder = wait_for(lambda: _sweeper(setup.dsn), "an engine to hold the sweeper lease", WAIT_S)
    dead = setup.sweeping()
    alive = "b" if dead == "a" else "a"
    survivor = setup.engines[alive]

    kill_hard(setup.engines[dead].proc)
    for balancer in setup.balancers.values():  # its health fails: the balancers send on
        balancer.upstream = survivor.url

    # It keeps serving, and takes the sweeping over: the short grant expires.
    assert survivor.allows("dave")
    wait_for(
        lambda: (lease := _sweeper(setup.dsn)) and lease[0] != holder[0],
        "the survivor to take the sweeper lease over",
        WAIT_S,
    )
    wait_for(
        lambda: survivor.as_("alice").get(f"/v1/requests/{expiring}").json()["state"] == "expired",
        "the survivor's sweep to expire the short grant",
        WAIT_S,
    )
    wait_for(
        lambda: healthy(survivor.url, enforcement=True),
        "every sidecar to confirm the expiry through the survivor",
        WAIT_S,
    )
    assert setup.allowing() == []
    assert setup.allowing("dave") == list(NAMES)
    assert not setup.role_exists(role_name(expiring))

    # Someone makes a managed role by hand: the survivor's reconcile removes it, and
    # the grant that stays keeps its role.
    copy = setup.copy_a_role_by_hand(kept)
    wait_for(lambda: not setup.role_exists(copy), "the survivor to remove the copied role", WAIT_S)
    assert setup.role_exists(role_name(kept))
    trail = survivor.as_("bob").get("/v1/audit").json()["events"]
    assert any(e["event"] == "sink_drift" and copy in str(e["detail"]) for e in trail)

    # A grant changed now reaches every sidecar through the survivor alone.
    revoked = setup.revoke(alive, kept)
    assert revoked.status_code in (200, 202), revoked.text
    if revoked.status_code == 202:  # a sidecar slower than confirm_within: waited for
        setup.confirmed(alive)
    assert setup.allowing("dave") == []
    assert not setup.role_exists(role_name(kept))
    assert healthy(survivor.url, enforcement=True)
    assert Caller(survivor.url).get("/health").status_code == 200
    later = setup.grant(alive)  # made while the killed engine is down

    # The killed engine comes back (a new port): its OPA holds what the store holds, and
    # a revoke through it reaches every sidecar, whichever engine each one polls.
    tokens = setup.engines[alive].tokens
    with serve_process("--config", str(setup.config), log=setup.logs[0].with_name("c.log")) as c:
        again = Engine(c.url, c, tokens)
        assert again.allows("alice") and not again.allows("dave")
        for name in ("opa-1", "opa-2"):
            setup.balancers[name].upstream = again.url
        revoked = again.as_("bob").post(f"/v1/grants/{later}/revoke", {"reason": "done"})
        assert revoked.status_code == 200, revoked.text
        assert setup.allowing() == []
        assert not survivor.allows() and not again.allows()
        assert not setup.role_exists(role_name(later))
    # What both engines and the sidecars' uploads wrote: one chain each, intact.
    for command in (["audit", "verify"], ["log", "verify"]):
        done = CliRunner().invoke(cli, [*command, "--db", setup.dsn])
        assert done.exit_code == 0, done.output


def test_an_opa_heard_from_by_one_engine_is_waited_for_by_every_engine(service):
    """In-process, two engines' fleet states on one store: opa-3 polls and reports to B
    only; a change made through A waits for it, and A shows it current."""
    store = service.engine.store
    config = FleetConfig(opas=("opa-3",), confirm_within_s=10.0)
    a, b = FleetState(store, config), FleetState(store, config)
    with store.transaction():
        store.add_grant_change(time.time(), "alice", "g-1", "add")
    seq = a.head()
    assert a.wait_confirmed(seq, 10.0) < seq  # never heard from by anyone: not waited for
    assert a.view()[0].stale and a.view()[0].last_contact is None

    b.contact("opa-3")  # it polls B
    b.served("opa-3", seq)  # ... which serves it the bundle at seq
    wait_for(lambda: not a.view()[0].stale, "A to learn that B heard from opa-3")
    assert a.view()[0].last_contact is not None
    report = {"bundles": {"grants": {"active_revision": str(seq)}}}
    later = threading.Timer(0.2, b.report, ["opa-3", report])  # ... and reports to B
    later.start()
    try:
        assert a.wait_confirmed(seq, 10.0) == seq  # A waited for it
    finally:
        later.join()
    # An OPA not in fleet.opas is never written down for the other engines.
    b.contact("rogue-opa")
    assert "rogue-opa" not in {m.name for m in a.view()}
