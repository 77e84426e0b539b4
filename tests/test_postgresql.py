"""Grants that take effect in a real PostgreSQL (engine/connectors/postgresql.py): a
managed role on activation, credentials as an access decision, removal that terminates
open sessions, and bad input that grants nothing. A throwaway cluster (`postgres`), the
session's OPA with the shipped bundle (eu-customer-analytics targets `analytics`)."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.connectors.postgresql import (
    FAILED,
    MANAGED,
    PROVISIONED,
    REMOVED,
    Connection,
    PostgresSink,
    role_name,
)
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.grants import PROVISION_WITHIN_S
from datavisa.engine.lifecycle.provisioned import (
    ExpiryTimer,
    abandon_removal,
    abandoned_removals,
    credentials,
    standing,
)
from datavisa.engine.model.errors import ActivationFailed, Conflict, Denied, NotYetEnforced
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess, free_port
from datavisa.engine.store.sqlite import Store

RESOURCE = "eu-customer-analytics"


def _connection(postgres: LocalPostgres) -> Connection:
    return Connection("analytics", postgres.dsn(), log_dir=postgres.log_dir)


def _pg_engine(store: Store, opa_client, postgres: LocalPostgres, clock=time.time) -> Engine:
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa_client, revision="test", clock=clock, log=log)
    sink = PostgresSink({"analytics": _connection(postgres)}, store, opa_client, log, "test")
    engine.grants.sinks.append(sink)
    engine.grants.sync()
    return engine


@pytest.fixture
def pg_engine(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
) -> Iterator[Engine]:
    store = Store(db)
    yield _pg_engine(store, opa.client(), postgres)
    store.close()


def _unreachable(engine: Engine, password: str = "pw") -> PostgresSink:
    """The engine's PostgreSQL sink, pointed at a port where no server listens."""
    sink = engine.grants.sinks[-1]
    sink.connections["analytics"] = Connection(
        "analytics", f"postgresql://postgres:{password}@127.0.0.1:{free_port()}/postgres"
    )
    return sink


def _grant(engine: Engine, seconds: int = 1200, actions: tuple[str, ...] = ("read",)):
    req = engine.request("alice", RESOURCE, list(actions), seconds, "DE", "INC-1: export fails")
    return engine.approve(req.id, "bob", "DE")


def _role(postgres: LocalPostgres, grant_id: str) -> dict | None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        row = db.execute(
            "SELECT rolcanlogin, extract(epoch FROM rolvaliduntil)::bigint, "
            "EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "WHERE m.member = r.oid AND g.rolname = %s), "  # no error before MANAGED exists
            "(SELECT setconfig FROM pg_db_role_setting WHERE setrole = r.oid AND setdatabase = 0) "
            "FROM pg_roles r WHERE rolname = %s",
            [MANAGED, role_name(grant_id)],
        ).fetchone()
    if row is None:
        return None
    return {"login": row[0], "valid_until": row[1], "managed": row[2], "settings": row[3]}


def _privileges(analytics: str, grant_id: str) -> set[tuple[str, str]]:
    with psycopg.connect(analytics, autocommit=True) as db:
        rows = db.execute(
            "SELECT c.relname, a.privilege_type FROM pg_class c, aclexplode(c.relacl) a "
            "JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s",
            [role_name(grant_id)],
        ).fetchall()
    return {(t, p) for t, p in rows}


def test_activation_makes_a_managed_role_with_exactly_the_privileges_policy_gives(
    pg_engine: Engine, postgres: LocalPostgres, analytics: str
):
    grant = _grant(pg_engine)
    role = _role(postgres, grant.id)
    assert role is not None, "no role was created for the grant"
    assert role["login"] and role["managed"]
    assert role["valid_until"] == int(grant.expires_at)  # the second clock
    assert "log_statement=all" in role["settings"]
    assert _privileges(analytics, grant.id) == {("customers", "SELECT"), ("orders", "SELECT")}
    assert [s["state"] for s in standing(pg_engine, grant.id)] == [PROVISIONED]


def test_credentials_are_an_access_decision_issued_once_and_rotated(
    pg_engine: Engine, postgres: LocalPostgres, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    grant = _grant(pg_engine)
    with pytest.raises(Denied) as abroad:
        credentials(pg_engine, grant.id, "alice", "US")
    assert "location_not_permitted" in abroad.value.decision.codes
    with pytest.raises(Exception, match="holds no grant"):
        credentials(pg_engine, grant.id, "bob", "DE")

    issued = credentials(pg_engine, grant.id, "alice", "DE")
    assert issued["url"].startswith(f"postgresql://{role_name(grant.id)}:")
    env = issued["env"]
    assert env["PGUSER"] == role_name(grant.id) and env["PGDATABASE"] == "analytics"
    with psycopg.connect(issued["url"], autocommit=True) as db:
        assert db.execute("SELECT count(*) FROM customers").fetchone()[0] == 2
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("INSERT INTO customers VALUES (3, 'x@example.com')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            db.execute("SELECT * FROM secrets")

    with pytest.raises(Conflict, match="already issued"):
        credentials(pg_engine, grant.id, "alice", "DE")
    rotated = credentials(pg_engine, grant.id, "alice", "DE", rotate=True)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(issued["url"]).close()
    psycopg.connect(rotated["url"]).close()

    # The decision was logged; the issue audited; the password nowhere in the store or logs.
    paths = [r["path"] for r in pg_engine.log.query(limit=1000)]
    assert "datavisa/access/decision" in paths and "datavisa/provision/decision" in paths
    events = [e["event"] for e in pg_engine.trail(grant.id)]
    assert "credentials_issued" in events and "credentials_rotated" in events
    stored = Path(pg_engine.store.path).read_bytes()
    server_log = "".join(p.read_text() for p in postgres.log_dir.iterdir())
    for password in (env["PGPASSWORD"], rotated["env"]["PGPASSWORD"]):
        assert password.encode() not in stored
        assert password not in caplog.text
        assert password not in server_log


def test_revoke_terminates_the_open_session_and_drops_the_role(
    pg_engine: Engine, postgres: LocalPostgres
):
    grant = _grant(pg_engine)
    issued = credentials(pg_engine, grant.id, "alice", "DE")
    session = psycopg.connect(issued["url"], autocommit=True)
    assert session.execute("SELECT count(*) FROM customers").fetchone()[0] == 2

    pg_engine.revoke(grant.id, "bob", "INC-1 closed")

    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT count(*) FROM customers")
    session.close()
    assert _role(postgres, grant.id) is None
    assert [s["state"] for s in standing(pg_engine, grant.id)] == [REMOVED]
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(issued["url"]).close()


def test_a_table_the_role_owns_goes_with_it(
    pg_engine: Engine, postgres: LocalPostgres, analytics: str
):
    """An object the role owns is dropped with it (DROP OWNED BY), not kept: nothing of
    the grant outlives it (test_postgresql_residue: what the holder leaves itself)."""
    grant = _grant(pg_engine)
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute(f"CREATE TABLE scratch_{grant.id} (x int)")
        db.execute(f'ALTER TABLE scratch_{grant.id} OWNER TO "{role_name(grant.id)}"')
    pg_engine.relinquish(grant.id, "alice")
    assert _role(postgres, grant.id) is None
    with psycopg.connect(analytics, autocommit=True) as db:
        assert db.execute("SELECT to_regclass(%s)", [f"scratch_{grant.id}"]).fetchone() == (None,)
    assert [s["state"] for s in standing(pg_engine, grant.id)] == [REMOVED]


def test_expiry_is_acted_on_by_the_timer(pg_engine: Engine, postgres: LocalPostgres):
    grant = _grant(pg_engine, seconds=2)
    assert _role(postgres, grant.id) is not None
    timer = ExpiryTimer(pg_engine).start()
    try:
        deadline = time.monotonic() + 30
        while _role(postgres, grant.id) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        timer.stop()
    assert _role(postgres, grant.id) is None
    assert pg_engine.get(grant.id).state == "expired"
    assert pg_engine.store.get(grant.id).state == "expired"  # written down, not only by clock


def test_reconcile_removes_a_hand_made_managed_role_and_strips_extra_privileges(
    pg_engine: Engine, postgres: LocalPostgres, analytics: str
):
    grant = _grant(pg_engine)
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute(f'GRANT SELECT ON secrets TO "{role_name(grant.id)}"')
        db.execute(f'GRANT INSERT ON customers TO "{role_name(grant.id)}"')
        db.execute(f"CREATE ROLE dv_handmade{grant.id} LOGIN IN ROLE {MANAGED}")
    assert pg_engine.grants.reconcile() == ["postgresql"]
    assert _privileges(analytics, grant.id) == {("customers", "SELECT"), ("orders", "SELECT")}
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        assert not db.execute(
            "SELECT 1 FROM pg_roles WHERE rolname = %s", [f"dv_handmade{grant.id}"]
        ).fetchone()
    drift = [e for e in pg_engine.trail() if e["event"] == "sink_drift"]
    assert drift and drift[-1]["detail"]["sink"] == "postgresql"
    assert pg_engine.grants.reconcile() == []  # put right


def test_an_unreachable_database_leaves_the_removal_pending_and_never_leaks_the_password(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str,
    caplog: pytest.LogCaptureFixture,
):  # fmt: skip
    caplog.set_level(logging.DEBUG)
    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres)
    grant = _grant(engine)
    secret = "s3cr3t-Admin-pw"
    sink = _unreachable(engine, secret)
    with pytest.raises(NotYetEnforced) as pending:
        engine.revoke(grant.id, "bob")
    assert pending.value.pending == ["postgresql"]
    assert secret not in str(pending.value)
    lag = {one.sink: one for one in engine.grants.lag()}
    assert lag["postgresql"].removals == 1 and lag["opa"].removals == 0
    assert _role(postgres, grant.id) is not None  # still there: not reported done
    [where] = standing(engine, grant.id)
    assert where["state"] == "revoking" and "not yet confirmed" in where["detail"]
    sink.connections["analytics"] = _connection(postgres)
    assert engine.grants.apply() == []
    assert _role(postgres, grant.id) is None
    assert secret not in caplog.text
    store.close()


def test_a_removal_waiting_in_the_outbox_is_not_drift_and_a_hand_made_role_still_is(
    pg_engine: Engine, postgres: LocalPostgres
):
    grant = _grant(pg_engine)
    sink = _unreachable(pg_engine)
    with pytest.raises(NotYetEnforced):
        pg_engine.revoke(grant.id, "bob")
    sink.connections["analytics"] = _connection(postgres)  # back, the outbox not yet run
    assert _role(postgres, grant.id) is not None
    assert pg_engine.grants.reconcile() == []  # the outbox's work, not drift
    assert not [e for e in pg_engine.trail() if e["event"] == "sink_drift"]
    copy = f"dv_copy{grant.id}"
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        db.execute(f'CREATE ROLE "{copy}" LOGIN IN ROLE {MANAGED}')
    assert pg_engine.grants.reconcile() == ["postgresql"]
    [drift] = [e for e in pg_engine.trail() if e["event"] == "sink_drift"]
    assert drift["detail"]["grants"] == {copy: "not live"}  # only the role no one asked for
    assert pg_engine.grants.apply() == []
    assert _role(postgres, grant.id) is None


@pytest.fixture(scope="module")
def bad_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """An OPA whose bundle has resources with bad targets."""
    data = Path(shutil.copytree(DEFAULT_BUNDLE_DIR, tmp_path_factory.mktemp("bad") / "data"))
    resources = data / "resources.yaml"
    resources.write_text(
        resources.read_text().rstrip("\n")
        + "\n"
        + "".join(
            f"  {name}:\n    region: aws:eu-central-1\n    tier: {tier}\n    tags: []\n"
            f"    team: analytics\n    actions: [read]\n    target: {{kind: postgresql, "
            f"connection: {conn}, database: {database}, schema: public, tables: [{table}]}}\n"
            for name, tier, conn, database, table in (
                ("bad-connection", "internal", "nowhere", "analytics", "customers"),
                ("bad-table", "internal", "analytics", "analytics", "no_such_table"),
                ("bad-database", "internal", "analytics", "no_such_db", "customers"),
                ("bad-tier", "public", "analytics", "analytics", "customers"),
            )
        )
    )
    out = tmp_path_factory.mktemp("badbundle") / "bundle.tar.gz"
    with OpaProcess(bundle.build(POLICY_DIR, data, out, "bad")) as process:
        yield process


@pytest.mark.parametrize(
    ("resource", "why"),
    [
        ("bad-connection", "connection 'nowhere'"),
        ("bad-table", 'relation "public.no_such_table" does not exist'),
        ("bad-database", "database 'no_such_db' does not exist"),
        ("bad-tier", "no provisioning rule gives public data"),
    ],
)
def test_bad_targets_grant_nothing_and_say_why(
    db: Path, bad_opa: OpaProcess, postgres: LocalPostgres, analytics: str, resource: str,
    why: str,
):  # fmt: skip
    store = Store(db)
    engine = _pg_engine(store, bad_opa.client(), postgres)
    with pytest.raises(ActivationFailed) as failed:
        req = engine.request("alice", resource, ["read"], 600, "DE", "INC-2")
        engine.approve(req.id, "bob", "DE")
    assert why in str(failed.value) and "not active" in str(failed.value)
    grant = engine.get(failed.value.record.id)
    assert grant.state == "revoked" and why in grant.end_reason  # not left active
    assert "activation_failed" in [e["event"] for e in engine.trail(grant.id)]
    [row] = standing(engine, grant.id)
    assert row["state"] == FAILED and why in row["detail"]
    assert _role(postgres, grant.id) is None  # nothing granted in the database
    assert "datavisa/provision/decision" in [r["path"] for r in engine.log.query(limit=1000)]
    if resource != "bad-tier":  # public data is readable without any grant
        assert not engine.check("alice", resource, "read", "DE").allow
    with pytest.raises(Conflict, match="credentials are for active grants"):
        credentials(engine, grant.id, "alice", "DE")
    store.close()


def test_only_an_admin_abandons_a_removal_the_database_never_confirmed(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
):
    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres)
    grant = _grant(engine)
    sink = _unreachable(engine)
    with pytest.raises(NotYetEnforced):
        engine.revoke(grant.id, "bob")
    with pytest.raises(Denied) as refused:
        abandon_removal(engine, grant.id, "bob", "the database is gone")
    assert refused.value.decision.codes == ["admin_only"]
    with pytest.raises(Denied):
        abandon_removal(engine, grant.id, "ops", " ", actor_role="admin")
    assert abandon_removal(engine, grant.id, "ops", "decommissioned", "admin") == ["postgresql"]
    assert engine.grants.pending(grant.id) == []
    assert {lag.sink: lag.removals for lag in engine.grants.lag()}["postgresql"] == 0
    [event] = [e for e in engine.trail(grant.id) if e["event"] == "removal_abandoned"]
    assert event["detail"]["reason"] == "decommissioned" and event["actor"] == "ops"
    assert abandoned_removals(engine)[0]["grant_id"] == grant.id
    sink.connections["analytics"] = _connection(postgres)  # it comes back: still removed
    assert engine.grants.apply() == []
    assert _role(postgres, grant.id) is None
    store.close()


def test_concurrent_put_and_reconcile_do_not_interleave(pg_engine: Engine, postgres: LocalPostgres):
    grant = _grant(pg_engine)
    threads = [threading.Thread(target=pg_engine.grants.reconcile) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _role(postgres, grant.id) is not None


def test_extension_moves_valid_until_and_the_timer(pg_engine: Engine, postgres: LocalPostgres):
    grant = _grant(pg_engine, seconds=4)  # 1.9 s left after half, on a loaded machine
    time.sleep(max(0.0, grant.activated_at + 2.1 - time.time()))  # policy: half elapsed
    ext = pg_engine.extend(grant.id, "alice", 60, "migration still running")
    pg_engine.approve(ext.id, "bob", "DE")
    extended = pg_engine.get(grant.id)
    assert extended.expires_at == pytest.approx(grant.expires_at + 60)
    assert _role(postgres, grant.id)["valid_until"] == int(extended.expires_at)
    assert ExpiryTimer(pg_engine).next_expiry() == pytest.approx(extended.expires_at)


def test_health_and_metrics_show_a_removal_the_database_has_not_confirmed(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
):
    from datavisa.engine.api.service import Service
    from datavisa.engine.api.tokens import TokenStore

    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres)
    grant = _grant(engine)
    engine.grants.sinks[-1].connections["analytics"] = Connection(
        "analytics", f"postgresql://postgres:pw@127.0.0.1:{free_port()}/postgres"
    )
    with pytest.raises(NotYetEnforced):
        engine.revoke(grant.id, "bob")
    tokens = TokenStore(db)
    service = Service(engine, tokens)
    try:
        assert any(
            "not yet removed from postgresql" in problem
            for problem in service.enforcement_problems()
        ), service.enforcement_problems()
        assert not service.problems()  # held back, not unready
        metrics = service.metrics.render().decode()
        assert any(
            'sink="postgresql"' in line and line.split()[-1] not in ("0", "0.0")
            for line in metrics.splitlines()
            if "removal" in line
        ), metrics
    finally:
        service.close()
        tokens.close()
        store.close()


def test_an_activation_the_database_never_takes_fails_after_a_bounded_time(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str, clock
):
    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres, clock=clock)
    engine.grants.sinks[-1].connections["analytics"] = Connection(
        "analytics", f"postgresql://postgres:pw@127.0.0.1:{free_port()}/postgres"
    )
    req = engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-3")
    with pytest.raises(NotYetEnforced) as pending:
        engine.approve(req.id, "bob", "DE")
    assert pending.value.record.state == "active" and pending.value.pending == ["postgresql"]
    assert engine.sweep() == {}  # still retried: within the bound
    clock.advance(PROVISION_WITHIN_S + 1)
    assert engine.sweep() == {"activation_failed": 1}
    grant = engine.get(req.id)
    assert grant.state == "revoked" and "did not take it within" in grant.end_reason
    engine.grants.sinks[-1].connections["analytics"] = _connection(postgres)
    assert engine.grants.apply() == []  # the add and the remove: nothing is left behind
    assert _role(postgres, req.id) is None
    store.close()


def test_privileges_postgresql_refuses_leave_no_role_behind(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
):
    """An admin that may create roles but not grant on the tables (nor set log_statement):
    PostgreSQL refuses inside the provisioning transaction, and the role it had just made
    goes with it."""
    with psycopg.connect(postgres.dsn(), autocommit=True) as pg:
        pg.execute("DROP ROLE IF EXISTS weak_admin")
        pg.execute("CREATE ROLE weak_admin LOGIN CREATEROLE PASSWORD 'weak-pw'")
        pg.execute("GRANT CONNECT ON DATABASE analytics TO weak_admin")
    store = Store(db)
    engine = _pg_engine(store, opa.client(), postgres)
    engine.grants.sinks[-1].connections["analytics"] = Connection(
        "analytics", postgres.dsn(user="weak_admin", password="weak-pw")
    )
    req = engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-4")
    with pytest.raises(
        ActivationFailed, match=r"PostgreSQL \(analytics\) refused: permission denied"
    ):
        engine.approve(req.id, "bob", "DE")
    assert _role(postgres, req.id) is None
    assert engine.get(req.id).state == "revoked"
    assert "weak-pw" not in engine.get(req.id).end_reason
    store.close()


def test_two_deployments_on_one_server_leave_each_other_s_roles_alone(
    tmp_path: Path, opa: OpaProcess, postgres: LocalPostgres, analytics: str
):
    other_store = Store(tmp_path / "other.db")
    log = DecisionLog(other_store, b"test-key")
    other = Engine(other_store, opa.client(), revision="test", log=log)
    theirs_conn = replace(_connection(postgres), managed_role="datavisa_other")
    other.grants.sinks.append(
        PostgresSink({"analytics": theirs_conn}, other_store, other.opa, log, "test")
    )
    other.grants.sync()  # OPA's grants document, whichever test this session ran first
    theirs = _grant(other)
    mine_store = Store(tmp_path / "mine.db")
    mine = _pg_engine(mine_store, opa.client(), postgres)  # syncs: no live grant of its own
    assert mine.grants.reconcile() == []
    assert _role(postgres, theirs.id) is not None  # not this deployment's to remove
    other.revoke(theirs.id, "bob")
    assert _role(postgres, theirs.id) is None
    other_store.close()
    mine_store.close()


def test_a_role_another_engine_made_meanwhile_is_held_not_failed(
    pg_engine: Engine, postgres: LocalPostgres
):
    req = pg_engine.request("alice", RESOURCE, ["read"], 600, "DE", "INC-5")
    with psycopg.connect(postgres.dsn(), autocommit=True) as pg:  # as another engine would
        if not pg.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [MANAGED]).fetchone():
            pg.execute(f"CREATE ROLE {MANAGED} NOLOGIN")  # this test may run first
        pg.execute(f'CREATE ROLE "{role_name(req.id)}" LOGIN IN ROLE {MANAGED}')
    grant = pg_engine.approve(req.id, "bob", "DE")
    assert grant.state == "active"
    assert [s["state"] for s in standing(pg_engine, grant.id)] != [FAILED]
    assert pg_engine.grants.reconcile() == ["postgresql"]  # then put right like any drift
    assert _privileges(postgres.dsn("analytics"), grant.id) == {
        ("customers", "SELECT"),
        ("orders", "SELECT"),
    }


def test_two_engines_removing_one_role_at_once_take_turns(
    db: Path, pg_engine: Engine, postgres: LocalPostgres
):
    """Two engines sharing a store apply one revoke to the shared server at the same
    moment: both finish (the second finds the role gone), neither reports it pending."""
    other_store = Store(db)  # the other engine's view of the same store
    log = DecisionLog(other_store, b"test-key")
    sinks = [
        pg_engine.grants.sinks[-1],
        PostgresSink({"analytics": _connection(postgres)}, other_store, pg_engine.opa, log, "t"),
    ]
    for _ in range(8):
        grant = _grant(pg_engine)
        assert _role(postgres, grant.id) is not None
        together, failed = threading.Barrier(len(sinks)), []

        def remove(sink: PostgresSink, together=together, failed=failed) -> None:
            together.wait()
            try:
                sink.put_subject("alice", {})  # alice holds no grant any more
            except Exception as e:  # the test reports what either raised
                failed.append(repr(e))

        threads = [threading.Thread(target=remove, args=[s]) for s in sinks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failed == []
        assert _role(postgres, grant.id) is None
        pg_engine.revoke(grant.id, "bob")  # the store catches up with the server
    sinks[1].close()
    other_store.close()
