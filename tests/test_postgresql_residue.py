"""Nothing of a PostgreSQL grant outlives it, and only the password DataVisa issued works
(issue 33, items 3 and 5), on the session's real cluster, through the connector contract
checks (connector_contract) acting as the grant's holder would: a large object in the
target, in `postgres` and in another database, default privileges, a table the holder
made, one another role's view holds on to, a password the holder set for itself."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from connector_contract import (
    check_nothing_outlives_the_grant,
    check_only_issued_credentials_work,
    connector_alerts,
)

from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.connectors.postgresql import (
    KEPT,
    MANAGED,
    REMOVED,
    Connection,
    PostgresSink,
    role_name,
)
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import credentials, standing
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle
from datavisa.engine.policy.process import OpaProcess
from datavisa.engine.store.sqlite import Store

RESOURCE = "eu-customer-analytics"
OPEN_SCHEMA = "open_scratch"  # CREATE for PUBLIC, as a cluster upgraded from before 15 has


class PostgresKit:
    """The PostgreSQL connector as connector_contract drives it: the holder acts through
    `holder(grant_id)(database)`, a connection as the grant's role with the credentials
    issued (in the target database unless another is named)."""

    def __init__(self, engine: Engine, postgres: LocalPostgres) -> None:
        self.engine, self.postgres = engine, postgres
        self.passwords: dict[str, list[str]] = {}

    def grant(self) -> str:
        req = self.engine.request("alice", RESOURCE, ["read"], 1200, "DE", "INC-33: residue")
        grant = self.engine.approve(req.id, "bob", "DE")
        issued = credentials(self.engine, grant.id, "alice", "DE")
        self.passwords[grant.id] = [issued["env"]["PGPASSWORD"]]
        return grant.id

    def holder(self, grant_id: str) -> Any:
        def connect(database: str = "analytics", password: str | None = None):
            password = password or self.passwords[grant_id][0]
            dsn = self.postgres.dsn(database, user=role_name(grant_id), password=password)
            return psycopg.connect(dsn, autocommit=True)

        connect.grant_id = grant_id  # type: ignore[attr-defined]
        connect.kit = self  # type: ignore[attr-defined]
        return connect

    def logs_in(self, grant_id: str, credential: Any = None) -> bool:
        tried = [credential] if credential is not None else self.passwords[grant_id]
        for password in tried:
            try:
                self.holder(grant_id)(password=password).close()
            except psycopg.OperationalError:
                continue
            return True
        return False

    def residue(self, grant_id: str) -> list[tuple[str, str]]:
        role = role_name(grant_id)
        with psycopg.connect(self.postgres.dsn(), autocommit=True) as db:
            exists = db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone()
            databases = [d for (d,) in db.execute(
                "SELECT datname FROM pg_database WHERE datallowconn ORDER BY 1"
            ).fetchall()]  # fmt: skip
        if not exists:
            return []
        left = [("postgresql", f"role {role}")]  # the account itself
        for database in databases:
            with psycopg.connect(self.postgres.dsn(database), autocommit=True) as db:
                left += [(database, what) for (what,) in db.execute(
                    "SELECT pg_describe_object(s.classid, s.objid, s.objsubid) "
                    "FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid "
                    "WHERE r.rolname = %s AND s.dbid = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())", [role],
                ).fetchall()]  # fmt: skip
        return left


def _engine(store: Store, opa: OpaProcess, postgres: LocalPostgres) -> Engine:
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa.client(), revision="test", log=log)
    connection = Connection("analytics", postgres.dsn(), log_dir=postgres.log_dir)
    engine.grants.sinks.append(PostgresSink({"analytics": connection}, store, engine.opa, log))
    engine.grants.sync()
    return engine


@pytest.fixture(scope="module")
def elsewhere(postgres: LocalPostgres, analytics: str) -> str:
    """Another database of the server (PUBLIC may connect, as by default), and a schema
    in the target where PUBLIC may create (as on a cluster upgraded from before 15)."""
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute(f"CREATE SCHEMA IF NOT EXISTS {OPEN_SCHEMA}")
        db.execute(f"GRANT USAGE, CREATE ON SCHEMA {OPEN_SCHEMA} TO PUBLIC")
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        if db.execute("SELECT 1 FROM pg_database WHERE datname = 'elsewhere'").fetchone():
            return "elsewhere"
    postgres.create_database("elsewhere")
    return "elsewhere"


@pytest.fixture
def kit(
    db: Path, opa: OpaProcess, postgres: LocalPostgres, elsewhere: str
) -> Iterator[PostgresKit]:
    store = Store(db)
    yield PostgresKit(_engine(store, opa, postgres), postgres)
    store.close()


def _revoke(kit: PostgresKit) -> Any:
    return lambda grant_id: kit.engine.revoke(grant_id, "bob", "INC-33 closed")


def _large_object_in(database: str) -> Any:
    def leave(holder: Any) -> None:
        with holder(database) as db:
            db.execute("SELECT lo_from_bytea(0, 'a copy of a table it could read')")

    return leave


@pytest.mark.parametrize("database", ["analytics", "postgres", "elsewhere"])
def test_a_large_object_the_holder_made_goes_with_the_grant(kit: PostgresKit, database: str):
    alerts = check_nothing_outlives_the_grant(kit, _large_object_in(database), _revoke(kit))
    [grant_id] = kit.passwords
    assert kit.residue(grant_id) == [] and not alerts
    assert [s["state"] for s in standing(kit.engine, grant_id)] == [REMOVED]


def test_default_privileges_the_holder_set_go_with_the_grant(kit: PostgresKit):
    def leave(holder: Any) -> None:
        with holder() as db:
            db.execute("ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO PUBLIC")
        with holder("postgres") as db:
            db.execute("ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO PUBLIC")

    check_nothing_outlives_the_grant(kit, leave, _revoke(kit))
    assert kit.residue(*kit.passwords) == []


def test_a_table_the_holder_made_and_shared_goes_at_expiry(kit: PostgresKit):
    def leave(holder: Any) -> None:
        with holder() as db:
            db.execute(f"CREATE TABLE {OPEN_SCHEMA}.copy_{holder.grant_id} AS "
                       "SELECT * FROM customers")  # fmt: skip
            db.execute(f"GRANT SELECT ON {OPEN_SCHEMA}.copy_{holder.grant_id} TO PUBLIC")

    def expire(grant_id: str) -> None:  # as the sweep does once the clock says so
        kit.engine.clock = lambda: kit.engine.store.get(grant_id).expires_at + 1
        assert kit.engine.sweep().get("expired") == 1

    check_nothing_outlives_the_grant(kit, leave, expire)
    assert kit.residue(*kit.passwords) == []


def test_what_another_role_holds_on_to_keeps_a_role_that_cannot_log_in_and_is_named(
    kit: PostgresKit, postgres: LocalPostgres, analytics: str
):
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        if not db.execute("SELECT 1 FROM pg_roles WHERE rolname = 'bystander'").fetchone():
            db.execute("CREATE ROLE bystander NOLOGIN")
    table: list[str] = []

    def leave(holder: Any) -> None:
        table.append(f"{OPEN_SCHEMA}.made_{holder.grant_id}")
        with holder() as db:
            db.execute(f"CREATE TABLE {table[0]} (x int)")
            db.execute(f"GRANT SELECT ON {table[0]} TO bystander")
        with psycopg.connect(analytics, autocommit=True) as db:  # another role builds on it
            db.execute("SET ROLE bystander")
            db.execute(f"CREATE VIEW {table[0]}_v AS SELECT * FROM {table[0]}")

    alerts = check_nothing_outlives_the_grant(kit, leave, _revoke(kit))
    [grant_id] = kit.passwords
    assert ("analytics", f"table {table[0]}") in kit.residue(grant_id)
    [residue] = [a for a in alerts if a.rule == "grant_residue"]
    assert "in database analytics" in residue.message and table[0] in residue.message
    with psycopg.connect(postgres.dsn(), autocommit=True) as db:
        login, password, managed = db.execute(
            "SELECT rolcanlogin, rolpassword IS NOT NULL, EXISTS (SELECT 1 FROM "
            "pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = a.oid "
            "AND g.rolname = %s) FROM pg_authid a WHERE rolname = %s",
            [MANAGED, role_name(grant_id)],
        ).fetchone()
    assert not login and not password and not managed  # kept, and no way in
    [where] = standing(kit.engine, grant_id)
    assert where["state"] == KEPT and f"table {table[0]}" in where["detail"]

    kit.engine.grants.reconcile()  # still blocked: still kept, still named
    assert [s["state"] for s in standing(kit.engine, grant_id)] == [KEPT]
    with psycopg.connect(analytics, autocommit=True) as db:
        db.execute(f"DROP VIEW {table[0]}_v")
    kit.engine.grants.reconcile()  # keeps trying: now it goes
    assert kit.residue(grant_id) == []
    assert [s["state"] for s in standing(kit.engine, grant_id)] == [REMOVED]


def _own_password(holder: Any) -> str:
    mine = "chosen-by-the-holder-" + holder.grant_id
    with holder() as db:
        db.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{mine}'")
    holder.kit.passwords[holder.grant_id].append(mine)
    return mine


def test_a_password_the_holder_set_is_put_back_as_policy_says(kit: PostgresKit):
    session: list[psycopg.Connection] = []

    def set_own(holder: Any) -> str:
        mine = _own_password(holder)
        session.append(holder(password=mine))  # a session on the holder's own password
        return mine

    outcome = check_only_issued_credentials_work(kit, set_own, kit.engine.grants.reconcile)
    assert outcome == "restore"  # confidential data: datavisa.provision own_password
    with pytest.raises(psycopg.OperationalError):
        session[0].execute("SELECT 1")  # ended with the password it came in on
    session[0].close()
    [grant_id] = kit.passwords
    [drift] = [e for e in kit.engine.trail() if e["event"] == "sink_drift"]
    assert drift["detail"]["grants"] == {grant_id: "differs"}
    assert kit.engine.grants.reconcile() == []  # put right


@pytest.fixture(scope="module")
def ending_opa(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpaProcess]:
    """An OPA whose provisioning policy ends a confidential grant whose holder set its
    own password (the shipped one restores it)."""
    rego = Path(shutil.copytree(POLICY_DIR, tmp_path_factory.mktemp("rego") / "rego"))
    provision = rego / "datavisa" / "provision" / "provision.rego"
    text = provision.read_text()
    assert '"confidential": "restore"' in text
    provision.write_text(text.replace('"confidential": "restore"', '"confidential": "end"'))
    out = tmp_path_factory.mktemp("ending") / "bundle.tar.gz"
    with OpaProcess(bundle.build(rego, DEFAULT_BUNDLE_DIR, out, "ending")) as process:
        yield process


def test_a_password_the_holder_set_ends_the_grant_where_policy_says(
    db: Path, ending_opa: OpaProcess, postgres: LocalPostgres, elsewhere: str
):
    store = Store(db)
    kit = PostgresKit(_engine(store, ending_opa, postgres), postgres)

    def reconcile() -> None:
        kit.engine.grants.reconcile()
        assert kit.engine.sweep() == {"ended_on_drift": 1}

    assert check_only_issued_credentials_work(kit, _own_password, reconcile) == "end"
    [grant_id] = kit.passwords
    grant = kit.engine.get(grant_id)
    assert grant.state == "revoked" and "did not issue" in grant.end_reason
    assert "ended_on_drift" in [e["event"] for e in kit.engine.trail(grant_id)]
    assert [a.rule for a in connector_alerts(kit.engine, grant_id)] == ["sink_drift"]
    store.close()
