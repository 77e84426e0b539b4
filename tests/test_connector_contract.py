"""The connector contract (connector_contract), run unchanged against every connector:
PostgreSQL and MariaDB, each on its throwaway server, each as the one data-system sink of
a real engine, on an OPA whose bundle targets both (`connectors_opa`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from connector_contract import (
    MARIADB_RESOURCE,
    check_a_supervised_grant_works_only_while_watched,
    check_a_supervisor_ends_one_session_through_the_outbox,
    check_an_open_session_ends_with_the_grant,
    check_an_unreachable_server_is_pending_and_retried,
    check_credentials_work,
    check_drift_is_put_right,
    check_extension_moves_the_system_s_clock,
    check_nothing_outlives_the_grant,
    check_only_issued_credentials_work,
    check_the_system_s_own_clock_ends_the_account,
)
from test_postgresql_residue import PostgresKit

from datavisa.cli.local_mariadb import LocalMariadb
from datavisa.cli.local_postgres import LocalPostgres
from datavisa.engine.connectors import mariadb as mdb
from datavisa.engine.connectors import postgresql as pg
from datavisa.engine.connectors.base import role_name
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.lifecycle.provisioned import credentials
from datavisa.engine.policy.process import OpaProcess, free_port
from datavisa.engine.store.sqlite import Store


def _engine(store: Store, opa: OpaProcess, sink_of: Any) -> Engine:
    log = DecisionLog(store, b"test-key")
    engine = Engine(store, opa.client(), revision="test", log=log)
    engine.grants.sinks.append(sink_of(store, engine.opa, log))
    engine.grants.sync()
    return engine


class PostgresContractKit(PostgresKit):
    """The PostgreSQL connector, as the residue checks drive it, and the rest of the kit."""

    def __init__(self, engine: Engine, postgres: LocalPostgres) -> None:
        super().__init__(engine, postgres)
        self.sink = engine.grants.sinks[-1]
        self.connection = self.sink.connections["analytics"]

    def grant(self, seconds: int = 1200) -> str:
        req = self.engine.request("alice", "eu-customer-analytics", ["read"], seconds, "DE",
                                  "INC-29: contract")  # fmt: skip
        grant = self.engine.approve(req.id, "bob", "DE")
        self.passwords[grant.id] = [
            credentials(self.engine, grant.id, "alice", "DE")["env"]["PGPASSWORD"]
        ]
        return grant.id

    def supervised_grant(self) -> str:
        req = self.engine.request("alice", "eu-customer-analytics", ["read", "write"], 1200,
                                  "DE", "INC-33: supervised")  # fmt: skip
        return self.engine.approve(req.id, "bob", "DE").id

    def issue(self, grant_id: str) -> None:
        issued = credentials(self.engine, grant_id, "alice", "DE")
        self.passwords[grant_id] = [issued["env"]["PGPASSWORD"]]

    def session(self, grant_id: str) -> Any:
        return self.holder(grant_id)()

    def reads(self, session: Any) -> bool:
        try:
            session.execute("SELECT count(*) FROM customers").fetchone()
        except psycopg.Error:
            return False
        return True

    def session_id(self, session: Any) -> str:
        return str(session.execute("SELECT pg_backend_pid()").fetchone()[0])

    def expires(self, grant_id: str) -> int | None:
        with psycopg.connect(self.postgres.dsn(), autocommit=True) as db:
            row = db.execute(
                "SELECT extract(epoch FROM rolvaliduntil)::bigint FROM pg_roles "
                "WHERE rolname = %s", [role_name(grant_id)],
            ).fetchone()  # fmt: skip
        return None if row is None else row[0]

    def add_privilege(self, grant_id: str) -> None:
        with psycopg.connect(self.postgres.dsn("analytics"), autocommit=True) as db:
            db.execute(f'GRANT SELECT ON secrets TO "{role_name(grant_id)}"')

    def unreachable(self, down: bool) -> None:
        self.sink.connections["analytics"] = (
            pg.Connection("analytics", f"postgresql://postgres:pw@127.0.0.1:{free_port()}/x")
            if down else self.connection
        )  # fmt: skip


class MariadbKit:
    """The MariaDB connector under the contract: the holder acts through
    `holder(grant_id)(password=None)`, a PyMySQL session on the target database."""

    def __init__(self, engine: Engine, mariadb: LocalMariadb) -> None:
        self.engine, self.mariadb = engine, mariadb
        self.sink = engine.grants.sinks[-1]
        self.connection = self.sink.connections["support"]
        self.passwords: dict[str, list[str]] = {}

    def grant(self, seconds: int = 1200) -> str:
        req = self.engine.request("alice", MARIADB_RESOURCE, ["read"], seconds, "DE",
                                  "INC-29: contract")  # fmt: skip
        grant = self.engine.approve(req.id, "bob", "DE")
        issued = credentials(self.engine, grant.id, "alice", "DE")
        self.passwords[grant.id] = [issued["env"]["MYSQL_PWD"]]
        return grant.id

    def supervised_grant(self) -> str:
        req = self.engine.request("alice", MARIADB_RESOURCE, ["read", "write"], 1200, "DE",
                                  "INC-33: supervised")  # fmt: skip
        return self.engine.approve(req.id, "bob", "DE").id

    def issue(self, grant_id: str) -> None:
        issued = credentials(self.engine, grant_id, "alice", "DE")
        self.passwords[grant_id] = [issued["env"]["MYSQL_PWD"]]

    def holder(self, grant_id: str) -> Any:
        def connect(password: str | None = None) -> Any:
            return self.mariadb.connect("support", role_name(grant_id),
                                        password or self.passwords[grant_id][0])  # fmt: skip

        connect.grant_id = grant_id  # type: ignore[attr-defined]
        connect.kit = self  # type: ignore[attr-defined]
        return connect

    def logs_in(self, grant_id: str, credential: Any = None) -> bool:
        for password in [credential] if credential is not None else self.passwords[grant_id]:
            try:
                self.holder(grant_id)(password).close()
            except pymysql.MySQLError:
                continue
            return True
        return False

    def residue(self, grant_id: str) -> list[tuple[str, str]]:
        role = role_name(grant_id)
        left = []
        with self.mariadb.connect() as db, db.cursor() as cur:
            cur.execute("SELECT Host FROM mysql.global_priv WHERE User = %s", [role])
            left += [("mariadb", f"account {role}@{host}") for (host,) in cur.fetchall()]
            cur.execute("SELECT Db, Table_name FROM mysql.tables_priv WHERE User = %s", [role])
            left += [(d, f"privileges on {t}") for d, t in cur.fetchall()]
            cur.execute(f"SELECT account FROM {mdb.MANAGED}.accounts WHERE account = %s", [role])
            left += [(mdb.MANAGED, f"row {a}") for (a,) in cur.fetchall()]
            cur.execute("SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_NAME = %s",
                        ["expire_" + role])  # fmt: skip
            left += [(mdb.MANAGED, f"event {e}") for (e,) in cur.fetchall()]
        return left

    def session(self, grant_id: str) -> Any:
        return self.holder(grant_id)()

    def reads(self, session: Any) -> bool:
        try:
            with session.cursor() as cur:
                cur.execute("SELECT COUNT(*) FROM tickets")
        except pymysql.MySQLError:
            return False
        return True

    def session_id(self, session: Any) -> str:
        with session.cursor() as cur:
            cur.execute("SELECT CONNECTION_ID()")
            return str(cur.fetchone()[0])

    def expires(self, grant_id: str) -> int | None:
        with self.mariadb.connect() as db, db.cursor() as cur:
            cur.execute(
                "SELECT UNIX_TIMESTAMP(EXECUTE_AT) FROM information_schema.EVENTS "
                "WHERE EVENT_NAME = %s", ["expire_" + role_name(grant_id)],
            )  # fmt: skip
            row = cur.fetchone()
        return None if row is None else int(row[0])

    def add_privilege(self, grant_id: str) -> None:
        with self.mariadb.connect() as db, db.cursor() as cur:
            cur.execute(f"GRANT SELECT ON support.secrets TO '{role_name(grant_id)}'@'%'")

    def unreachable(self, down: bool) -> None:
        self.sink.connections["support"] = (
            mdb.Connection("support", f"mysql://root:pw@127.0.0.1:{free_port()}/")
            if down else self.connection
        )  # fmt: skip


@pytest.fixture(params=["postgresql", "mariadb"])
def kit(request: pytest.FixtureRequest, db: Path, connectors_opa: OpaProcess) -> Iterator[Any]:
    store = Store(db)
    if request.param == "postgresql":
        postgres = request.getfixturevalue("postgres")
        request.getfixturevalue("analytics")
        connection = pg.Connection("analytics", postgres.dsn(), log_dir=postgres.log_dir)
        engine = _engine(store, connectors_opa, lambda s, o, lg: pg.PostgresSink(
            {"analytics": connection}, s, o, lg))  # fmt: skip
        yield PostgresContractKit(engine, postgres)
    else:
        server = request.getfixturevalue("mariadb")
        request.getfixturevalue("support")
        connection = mdb.Connection("support", server.dsn(), audit_log=server.audit_log)
        engine = _engine(store, connectors_opa, lambda s, o, lg: mdb.MariadbSink(
            {"support": connection}, s, o, lg))  # fmt: skip
        yield MariadbKit(engine, server)
    engine.grants.sinks[-1].close()
    store.close()


def _revoke(kit: Any) -> Any:
    return lambda grant_id: kit.engine.revoke(grant_id, "bob", "INC-29 closed")


def test_the_credentials_issued_work(kit: Any):
    check_credentials_work(kit)


def test_an_open_session_fails_its_next_statement_after_revoke(kit: Any):
    check_an_open_session_ends_with_the_grant(kit, _revoke(kit))


def test_the_data_system_ends_the_account_by_itself_at_expiry(kit: Any):
    check_the_system_s_own_clock_ends_the_account(kit)


def test_an_extension_moves_the_data_system_s_clock(kit: Any):
    check_extension_moves_the_system_s_clock(kit)


def test_a_server_down_leaves_the_revoke_pending_and_retried(kit: Any):
    check_an_unreachable_server_is_pending_and_retried(kit)


def test_drift_is_put_right_and_alerted(kit: Any):
    check_drift_is_put_right(kit)


def test_nothing_of_the_grant_outlives_it(kit: Any):
    """What a holder with read access leaves: a session of its own, still open."""
    sessions: list[Any] = []
    alerts = check_nothing_outlives_the_grant(kit, lambda holder: sessions.append(holder()),
                                              _revoke(kit))  # fmt: skip
    assert not alerts and not kit.reads(sessions[0])


def test_a_password_the_holder_set_is_put_back(kit: Any):
    def set_own(holder: Any) -> str:
        mine = "chosen-by-the-holder-" + holder.grant_id
        with holder() as session:
            if isinstance(kit, MariadbKit):
                with session.cursor() as cur:
                    cur.execute("SET PASSWORD = PASSWORD(%s)", [mine])
            else:
                session.execute(f"ALTER ROLE CURRENT_USER PASSWORD '{mine}'")
        holder.kit.passwords[holder.grant_id].append(mine)
        return mine

    assert check_only_issued_credentials_work(kit, set_own, kit.engine.grants.reconcile) == (
        "restore"  # confidential data, in either system: datavisa.provision own_password
    )


def test_a_supervised_grant_is_paused_and_resumed(kit: Any):
    """Supervised by erin, a security officer (any team may be supervised by one)."""
    check_a_supervised_grant_works_only_while_watched(kit, "erin")


def test_a_supervisor_ends_one_session_through_the_outbox(kit: Any):
    check_a_supervisor_ends_one_session_through_the_outbox(kit, "erin")
