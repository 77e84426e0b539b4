"""Grants that take effect in a real MariaDB (engine/connectors/mariadb.py): a managed
account on activation with exactly the privileges policy gives and the server's own
expiry event, credentials as an access decision, removal that kills open sessions, drift
put right, bad targets that grant nothing. The session's throwaway server (`mariadb`), an
OPA whose bundle has a resource targeting it (`connectors_opa`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pymysql
import pytest
from connector_contract import MARIADB_RESOURCE

from datavisa.cli.local_mariadb import LocalMariadb
from datavisa.engine.connectors.base import FAILED, PROVISIONED, REMOVED, role_name
from datavisa.engine.connectors.mariadb import MANAGED, Connection, MariadbSink
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import credentials, standing
from datavisa.engine.model.errors import Conflict, NotYetEnforced
from datavisa.engine.policy.process import OpaProcess, free_port
from datavisa.engine.store.sqlite import Store


def _connection(mariadb: LocalMariadb) -> Connection:
    return Connection("support", mariadb.dsn(), audit_log=mariadb.audit_log)


def _engine(store: Store, opa: OpaProcess, mariadb: LocalMariadb, clock=time.time) -> Engine:
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa.client(), revision="test", clock=clock, log=log)
    sink = MariadbSink({"support": _connection(mariadb)}, store, engine.opa, log, "test")
    engine.grants.sinks.append(sink)
    engine.grants.sync()
    return engine


@pytest.fixture
def mdb_engine(
    db: Path, connectors_opa: OpaProcess, mariadb: LocalMariadb, support: str
) -> Iterator[Engine]:
    store = Store(db)
    engine = _engine(store, connectors_opa, mariadb)
    yield engine
    engine.grants.sinks[-1].close()
    store.close()


def _grant(engine: Engine, seconds: int = 1200, actions: tuple[str, ...] = ("read",)):
    req = engine.request("alice", MARIADB_RESOURCE, list(actions), seconds, "DE", "INC-29")
    return engine.approve(req.id, "bob", "DE")


def _account(mariadb: LocalMariadb, grant_id: str) -> dict | None:
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute(
            "SELECT JSON_VALUE(g.Priv, '$.account_locked'), "
            "(SELECT COUNT(*) FROM mysql.roles_mapping m WHERE m.User = g.User "
            "AND m.Role = %s), (SELECT UNIX_TIMESTAMP(EXECUTE_AT) FROM "
            "information_schema.EVENTS WHERE EVENT_NAME = CONCAT('expire_', g.User)) "
            "FROM mysql.global_priv g WHERE g.User = %s AND g.Host = '%%'",
            [MANAGED, role_name(grant_id)],
        )
        row = cur.fetchone()
    if row is None:
        return None
    return {"locked": row[0] in ("1", "true"), "managed": bool(row[1]), "expires": row[2]}


def _privileges(mariadb: LocalMariadb, grant_id: str) -> set[tuple[str, str]]:
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute(
            "SELECT Table_name, Table_priv FROM mysql.tables_priv WHERE User = %s",
            [role_name(grant_id)],
        )
        return {(t, p.upper()) for t, privs in cur.fetchall() for p in privs.split(",") if p}


def _holder(issued: dict) -> pymysql.connections.Connection:
    env = issued["env"]
    return pymysql.connect(
        host=env["MYSQL_HOST"], port=int(env["MYSQL_TCP_PORT"]), user=env["MYSQL_USER"],
        password=env["MYSQL_PWD"], database=env["MYSQL_DATABASE"], autocommit=True,
    )  # fmt: skip


def test_activation_makes_a_managed_account_with_exactly_the_privileges_policy_gives(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    grant = _grant(mdb_engine)
    account = _account(mariadb, grant.id)
    assert account == {"locked": False, "managed": True, "expires": int(grant.expires_at)}
    assert _privileges(mariadb, grant.id) == {("tickets", "SELECT"), ("agents", "SELECT")}
    assert [s["state"] for s in standing(mdb_engine, grant.id)] == [PROVISIONED]
    assert mdb_engine.grants.reconcile() == []  # what it holds is what the store says


def test_credentials_work_once_as_issued_and_never_reach_a_log(
    mdb_engine: Engine, mariadb: LocalMariadb, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    grant = _grant(mdb_engine)
    issued = credentials(mdb_engine, grant.id, "alice", "DE")
    assert issued["url"].startswith(f"mysql://{role_name(grant.id)}:")
    with _holder(issued) as db, db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tickets")
        assert cur.fetchone() == (2,)
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("INSERT INTO tickets VALUES (3, 'x')")
        with pytest.raises(pymysql.err.OperationalError, match="denied"):
            cur.execute("SELECT * FROM secrets")
    with pytest.raises(Conflict, match="already issued"):
        credentials(mdb_engine, grant.id, "alice", "DE")
    rotated = credentials(mdb_engine, grant.id, "alice", "DE", rotate=True)
    with pytest.raises(pymysql.err.OperationalError):
        _holder(issued).close()
    _holder(rotated).close()
    stored = Path(mdb_engine.store.path).read_bytes()
    for password in (issued["env"]["MYSQL_PWD"], rotated["env"]["MYSQL_PWD"]):
        assert password.encode() not in stored and password not in caplog.text


def test_revoke_kills_the_open_session_and_drops_the_account(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    grant = _grant(mdb_engine)
    session = _holder(credentials(mdb_engine, grant.id, "alice", "DE"))
    with session.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM tickets")
    mdb_engine.revoke(grant.id, "bob", "INC-29 closed")
    with mariadb.connect() as db, db.cursor() as cur:  # killed, not only refused
        cur.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = %s",
            [role_name(grant.id)],
        )
        assert cur.fetchone() == (0,)
    with (
        pytest.raises(pymysql.err.OperationalError, match=r"Lost connection|gone away"),
        session.cursor() as cur,
    ):
        cur.execute("SELECT COUNT(*) FROM tickets")
    assert _account(mariadb, grant.id) is None
    assert [s["state"] for s in standing(mdb_engine, grant.id)] == [REMOVED]


def test_the_server_s_own_clock_locks_the_account_at_expiry(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    """DataVisa does nothing here (no timer, no sweep): the expiry event alone ends it."""
    grant = _grant(mdb_engine, seconds=2)
    session = _holder(credentials(mdb_engine, grant.id, "alice", "DE"))
    deadline = time.monotonic() + 15
    while not _account(mariadb, grant.id)["locked"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _account(mariadb, grant.id)["locked"]
    with pytest.raises(pymysql.err.OperationalError), session.cursor() as cur:
        cur.execute("SELECT 1")


def test_reconcile_removes_a_hand_made_account_and_strips_extra_privileges(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    grant = _grant(mdb_engine)
    copy = f"dv_copy{grant.id}"
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute(f"GRANT SELECT ON support.secrets TO '{role_name(grant.id)}'@'%'")
        cur.execute(f"GRANT ALL ON support.* TO '{role_name(grant.id)}'@'%'")
        cur.execute(f"CREATE USER '{copy}'@'%' IDENTIFIED BY 'x'")
        cur.execute(f"GRANT {MANAGED} TO '{copy}'@'%'")
    assert mdb_engine.grants.reconcile() == ["mariadb"]
    assert _privileges(mariadb, grant.id) == {("tickets", "SELECT"), ("agents", "SELECT")}
    with mariadb.connect() as db, db.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM mysql.db WHERE User = %s", [role_name(grant.id)])
        assert cur.fetchone() == (0,)
        cur.execute("SELECT COUNT(*) FROM mysql.global_priv WHERE User = %s", [copy])
        assert cur.fetchone() == (0,)
    [drift] = [e for e in mdb_engine.trail() if e["event"] == "sink_drift"]
    assert drift["detail"]["grants"] == {grant.id: "differs", copy: "not live"}
    assert mdb_engine.grants.reconcile() == []  # put right


def test_an_unreachable_server_leaves_the_removal_pending_and_never_leaks_the_password(
    mdb_engine: Engine, mariadb: LocalMariadb, caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.DEBUG)
    grant = _grant(mdb_engine)
    sink = mdb_engine.grants.sinks[-1]
    secret = "s3cr3t-Admin-pw"
    sink.connections["support"] = Connection(
        "support", f"mysql://root:{secret}@127.0.0.1:{free_port()}/"
    )
    with pytest.raises(NotYetEnforced) as pending:
        mdb_engine.revoke(grant.id, "bob")
    assert pending.value.pending == ["mariadb"] and secret not in str(pending.value)
    assert _account(mariadb, grant.id) is not None
    [where] = standing(mdb_engine, grant.id)
    assert where["state"] == "revoking"
    sink.connections["support"] = _connection(mariadb)
    assert mdb_engine.grants.apply() == []
    assert _account(mariadb, grant.id) is None
    assert secret not in caplog.text


def test_a_table_that_does_not_exist_grants_nothing_and_leaves_no_account(
    db: Path, connectors_opa: OpaProcess, mariadb: LocalMariadb, support: str
):
    with mariadb.connect() as admin, admin.cursor() as cur:
        cur.execute("RENAME TABLE support.agents TO support.agents_away")
    store = Store(db)
    engine = _engine(store, connectors_opa, mariadb)
    try:
        req = engine.request("alice", MARIADB_RESOURCE, ["read"], 600, "DE", "INC-2")
        with pytest.raises(Exception, match="agents"):
            engine.approve(req.id, "bob", "DE")
        assert engine.get(req.id).state == "revoked"
        [row] = standing(engine, req.id)
        assert row["state"] == FAILED and "refused" in row["detail"]
        assert _account(mariadb, req.id) is None
    finally:
        with mariadb.connect() as admin, admin.cursor() as cur:
            cur.execute("RENAME TABLE support.agents_away TO support.agents")
        store.close()


def test_serve_config_takes_a_mariadb_connection_and_serve_makes_its_sink(
    tmp_path: Path, connectors_opa: OpaProcess, mariadb: LocalMariadb
):
    from datavisa.engine.api import config
    from datavisa.engine.connectors.kinds import sinks
    from datavisa.engine.model.errors import DataVisaError

    (tmp_path / "support.dsn").write_text(mariadb.dsn() + "\n")
    (tmp_path / "serve.yaml").write_text(
        "connections:\n  support:\n    kind: mariadb\n    dsn_file: support.dsn\n"
        "    audit_log: audit.log\n    public_host: db.example.com\n"
    )
    cfg = config.load(tmp_path / "serve.yaml")
    conn = cfg.connections["support"]
    assert isinstance(conn, Connection) and conn.audit_log == tmp_path / "audit.log"
    assert conn.address() == ("db.example.com", mariadb.port)
    assert mariadb.password not in repr(cfg) and mariadb.password not in repr(conn)
    [sink] = sinks(cfg.connections, Store(tmp_path / "d.db"), connectors_opa.client())
    assert isinstance(sink, MariadbSink) and sink.connections == {"support": conn}
    for bad, why in [
        ("    dsn: postgresql://x@h/db\n", "must be a mysql:// URL"),
        ("    dsn: mysql://x@h/\n    log_dir: x\n", "unknown setting connections.s.log_dir"),
    ]:
        (tmp_path / "bad.yaml").write_text("connections:\n  s:\n    kind: mariadb\n" + bad)
        with pytest.raises(DataVisaError, match=why):
            config.load(tmp_path / "bad.yaml")


def test_statements_the_account_ran_are_recorded_masked_and_bulk_export_alerted(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    from datavisa.engine.connectors.activity import StatementTail
    from datavisa.engine.monitoring.monitor import Monitor

    grant = _grant(mdb_engine)
    tail = StatementTail(
        {"support": _connection(mariadb)}, mdb_engine.store, mdb_engine.opa, time.time
    )
    with _holder(credentials(mdb_engine, grant.id, "alice", "DE")) as db, db.cursor() as cur:
        cur.execute("SELECT body FROM tickets WHERE body = 'cannot log in'")
        with pytest.raises(pymysql.MySQLError):  # refused, and still recorded
            cur.execute("SELECT * FROM tickets INTO OUTFILE '/tmp/tickets.csv'")
    with mariadb.connect() as admin, admin.cursor() as cur:
        cur.execute("SELECT 'the admin is not audited'")  # not a managed account
    deadline, rows = time.monotonic() + 10, []
    while len([r for r in rows if r["grant_id"] == grant.id]) < 3 and time.monotonic() < deadline:
        rows += tail.poll()
        time.sleep(0.05)
    statements = [r["statement"] for r in mdb_engine.store.activity(grant.id)]
    assert "SELECT body FROM tickets WHERE body = '***'" in statements  # literals masked
    assert any("INTO OUTFILE" in s for s in statements)
    assert all(r["sink"] == "mariadb" for r in mdb_engine.store.activity(grant.id))
    assert all(r["grant_id"] != "" and r["statement"] != "SELECT '***'" for r in rows)  # not root's
    history = {"statements": [{**r, "subject": "alice"} for r in rows]}
    Monitor(mdb_engine.log, mdb_engine.opa).check_history(history)
    alerts = Monitor(mdb_engine.log, mdb_engine.opa).alerts.query(limit=100)
    assert any(a.rule == "bulk_export" and grant.id in a.evidence for a in alerts)


def test_an_account_a_crash_left_half_made_is_removed_by_reconcile(
    mdb_engine: Engine, mariadb: LocalMariadb
):
    """Killed between the bookkeeping row and the managed role (MariaDB's DDL is not one
    transaction): the account is still known as this deployment's, and goes."""
    req = mdb_engine.request("alice", MARIADB_RESOURCE, ["read"], 600, "DE", "INC-29")
    role = role_name(req.id)
    with mariadb.connect() as db, db.cursor() as cur:  # as the crashed engine left it
        cur.execute(
            f"INSERT INTO {MANAGED}.accounts (account, about) VALUES (%s, %s)",
            [role, f'{{"grant_id": "{req.id}", "subject": "alice"}}'],
        )
        cur.execute(f"CREATE USER '{role}'@'%' IDENTIFIED BY 'half-made'")
    mdb_engine.cancel(req.id, "alice")  # the grant never comes
    assert mdb_engine.grants.reconcile() == ["mariadb"]
    assert _account(mariadb, req.id) is None
