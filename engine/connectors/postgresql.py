"""Grants that take effect in PostgreSQL: one managed login role per live grant.

A grant on a resource whose bundle entry names a `target` of kind postgresql becomes, in
the database that target names, a role `dv_<grant id>`:

- created in one transaction (all or nothing: a missing table or a privilege PostgreSQL
  refuses leaves nothing behind) with `LOGIN`, a random password sent only as its SCRAM
  verifier (so no server log ever holds it), `VALID UNTIL` the grant's expiry (a second
  clock that holds while DataVisa is down), membership in the privilege-less bookkeeping
  role `datavisa_managed` (what marks it managed), a comment saying which grant it is,
  `log_statement = all` (every statement it runs lands in the server's log), and exactly
  the privileges `datavisa.provision` returned, on exactly the target's tables;
- moved on when the grant is extended (`VALID UNTIL`);
- removed when the grant ends: login and password taken away, privileges revoked, its open
  sessions terminated (waiting until they are gone), what it owns or was granted removed
  in every database of the server that holds any of it (`DROP OWNED BY`, database by
  database, as `pg_shdepend` lists them: tables, large objects, default privileges, the
  grants it made), then dropped; what still blocks that (an object another role's depends
  on, a database it cannot reach) keeps the role, unable to log in, with the provisioning
  naming the database and object (`grant_residue`), and reconcile tries again (`tidy`);
- compared with the live grants on reconcile (`read_all` / `relevant`): a managed role no
  grant holds is removed, one holding privileges beyond its grant is stripped back, one
  whose password is not the verifier DataVisa set (the holder chose its own) has it put
  back or its grant ended, as `datavisa.provision` says (`own_password`).

Where PUBLIC holds CONNECT on another database of the server, a grant's role reaches it
too: `reach` reports that (doctor, `/health?enforcement=true`), and a connection set to
`public_connect: refuse` provisions nothing while it holds.

The admin connection's password (in its DSN) never reaches an error, a log line or an
answer: every error text is scrubbed of it.

What is not PostgreSQL's own (the outbox protocol, plans from policy, converging, a
password the holder set, the bookkeeping of credentials) is the connector base's
(`base.ConnectorSink`); this module gives PostgreSQL's steps.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from ..ledger.decision_log import DecisionLog
from ..model.errors import SinkUnavailable
from ..policy.bundle import DATA_ROOT
from ..policy.opa import OpaClient
from ..store import Store
from .base import (
    END,
    ENDED,
    FAILED,
    KEPT,
    PROVISIONED,
    REMOVED,
    RESTORE,
    ROLE_PREFIX,
    ConnectorSink,
    Held,
    Plan,
    ProvisioningError,
    role_name,
    scrub,
    wait_until_gone,
)
from .base import about as _about

__all__ = [
    "END", "ENDED", "FAILED", "KEPT", "PROVISIONED", "REMOVED", "RESTORE", "ROLE_PREFIX",
    "Connection", "Held", "Plan", "PostgresSink", "ProvisioningError", "role_name",
]  # fmt: skip

log = logging.getLogger("datavisa.postgresql")

KIND = "postgresql"
SINK = "postgresql"
MANAGED = "datavisa_managed"  # the bookkeeping role every managed role is a member of
CONNECT_TIMEOUT_S = 5
TERMINATE_WAIT_MS = 5000
# How long a change to a role waits for another engine sharing the server to finish its
# own change to that role (they take turns: `_exclusive`).
ROLE_TURN_WAIT_S = 10.0
# The table privileges PostgreSQL knows; policy may name only these (they are keywords).
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
)
# What a connection does while PUBLIC holds CONNECT on a database other than a target.
REPORT, REFUSE = "report", "refuse"
PUBLIC_CONNECT = (REPORT, REFUSE)
LOCK_WAIT = "5s"  # how long DROP OWNED waits for a lock another session holds


@dataclass(frozen=True)
class Connection:
    """How serve reaches one PostgreSQL server as its admin (config `connections:`).

    `dsn` holds the admin's password and is never printed; `log_dir` is where the server
    writes its `jsonlog` files, read for what the managed roles do; `public_host` and
    `public_port` are how a holder reaches the server, when not as the admin does;
    `managed_role` marks the roles this deployment manages there.
    """

    name: str
    dsn: str = field(repr=False)
    log_dir: Path | None = None
    public_host: str | None = None
    public_port: int | None = None
    # The bookkeeping role that marks this deployment's roles: two DataVisa deployments
    # sharing a server give different ones, so neither reconciles the other's away.
    managed_role: str = MANAGED
    # While PUBLIC holds CONNECT on another database: REPORT it, or REFUSE to provision.
    public_connect: str = REPORT

    @property
    def secret(self) -> str | None:
        try:
            return psycopg.conninfo.conninfo_to_dict(self.dsn).get("password")  # type: ignore[return-value]
        except psycopg.ProgrammingError:
            return None

    def scrub(self, text: str) -> str:
        """`text` with the admin password (plain or URL-quoted) cut out."""
        return scrub(text, self.secret)

    def address(self) -> tuple[str, int]:
        """Where a holder connects: the public host and port, else the admin DSN's."""
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        host = self.public_host or str(info.get("host") or "127.0.0.1")
        port = self.public_port or int(info.get("port") or 5432)
        return host, port


DUPLICATE_OBJECT = "42710"  # CREATE ROLE of a role that exists
# ... and of one another engine is creating at that moment: the catalog's unique index
UNIQUE_VIOLATION = "23505"
EXISTS = {DUPLICATE_OBJECT, UNIQUE_VIOLATION}  # either way, the role is there
# What engines sharing a store get when they change one role at once ("tuple concurrently
# updated"), or a deadlock or serialization failure: retried, never a refusal.
CONCURRENT = {"XX000", "40001", "40P01"}
UNDEFINED_OBJECT = "42704"  # a role that no longer exists: another engine removed it
_DROPPED_ELSEWHERE = "role {} already dropped (by another engine)"


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier for `password` (what `\\password` sends): the
    server stores it as it is, and only it, never the password, can reach a server log."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


class PostgresSink(ConnectorSink):
    """The grants of the live-grant outbox, as managed roles on the configured servers."""

    name = SINK
    kind = KIND
    label = "PostgreSQL"
    scheme = "postgresql"
    client_env = ("PGHOST", "PGPORT", "PGDATABASE", "PGUSER", "PGPASSWORD")  # what libpq reads
    account = "role"
    privileges_known = TABLE_PRIVILEGES
    exists = frozenset(EXISTS)

    def __init__(
        self,
        connections: dict[str, Connection],
        store: Store,
        opa: OpaClient | None,
        log: DecisionLog | None = None,
        revision: str = "",
        clock: Any = time.time,
    ) -> None:
        super().__init__(connections, store, opa, log, revision, clock)
        self._pool: dict[tuple[str, str, str | None], psycopg.Connection] = {}
        self._managed_on: set[tuple[str, str]] = set()  # (server, bookkeeping role) made
        # Grants a connection set to refuse would not provision, for the alert rules.
        self.refusals: list[dict[str, Any]] = []

    # -- credentials ----------------------------------------------------------------------

    def _new_verifier(self, password: str) -> str:
        return scram_verifier(password)

    def _set_password(self, conn: Connection, role: str, verifier: str) -> None:
        with self._admin(conn, None) as db:
            db.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(role), sql.Literal(verifier)
                )
            )

    def _end_sessions(self, conn: Connection, role: str) -> None:
        with self._admin(conn, None, autocommit=True) as db:
            self._terminate(db, role)

    def _refuse_login(self, conn: Connection, role: str) -> None:
        with self._admin(conn, None) as db:
            db.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(role)))

    def _end_one_session(self, conn: Connection, role: str, session: str) -> bool:
        """`session` as the server's log names it (jsonlog's session_id: the backend's
        start time and pid in hex, `6575a3f1.1a2b`), or the pid itself."""
        try:
            pid = int(session.rpartition(".")[2], 16) if "." in session else int(session)
        except ValueError:
            return False
        with self._admin(conn, None, autocommit=True) as db:
            found = db.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid = %s AND usename = %s",
                [pid, role],
            ).fetchone()
            if found is None:
                return False
            wait_until_gone(
                lambda: db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid]
                ).fetchone()[0],
                role,
                TERMINATE_WAIT_MS / 1000,
            )
        return True

    # -- making it so ---------------------------------------------------------------------

    def _disable(self, conn: Connection, role: str) -> None:
        """No login, no password, no open session: a role no one can use any more."""
        with self._admin(conn, None) as db:
            db.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(sql.Identifier(role)))
        with self._admin(conn, None, autocommit=True) as db:
            self._terminate(db, role)

    def _create(self, plan: Plan) -> None:
        conn = self._connection(plan.connection)
        role = sql.Identifier(plan.role)
        tables = sql.SQL(", ").join(sql.Identifier(plan.schema, t) for t in plan.tables)
        privileges = sql.SQL(", ").join(sql.SQL(p) for p in plan.privileges)
        verifier = scram_verifier(secrets.token_urlsafe(24))
        self._ensure_managed(conn)
        with self._admin(conn, plan.database) as db:
            if conn.public_connect == REFUSE:
                self._confined(conn, db, plan)
            db.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}").format(
                    role,
                    sql.Literal(verifier),
                    sql.Literal(_timestamp(plan.valid_until)),
                    sql.Identifier(conn.managed_role),
                )
            )
            db.execute(
                sql.SQL("COMMENT ON ROLE {} IS {}").format(role, sql.Literal(plan.comment()))
            )
            db.execute(sql.SQL("ALTER ROLE {} SET log_statement = 'all'").format(role))
            db.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(plan.database), role
                )
            )
            db.execute(
                sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(plan.schema), role)
            )
            db.execute(sql.SQL("GRANT {} ON TABLE {} TO {}").format(privileges, tables, role))
        self._provisioned(plan, verifier, plan.database)

    def _confined(self, conn: Connection, db: psycopg.Connection, plan: Plan) -> None:
        """Refuse (before anything is made) while PUBLIC holds CONNECT on a database
        other than the target: the role would reach it too."""
        others = [d for d in public_databases(db) if d != plan.database]
        if not others:
            return
        self.refusals.append(
            {"sink": self.name, "connection": conn.name, "grant_id": plan.grant_id,
             "databases": others, "at_ns": int(self.clock() * 1e9)}
        )  # fmt: skip
        raise ProvisioningError(
            f"connection {conn.name} refuses to provision (public_connect: refuse): PUBLIC "
            f"holds CONNECT on {', '.join(others)}, not only on {plan.database}; run "
            + "; ".join(f"REVOKE CONNECT ON DATABASE {d} FROM PUBLIC" for d in others)
        )

    def reach(self) -> list[str]:
        """What the grants' roles reach beyond the databases they are approved for, on
        each configured server (module `reach`), the targets as the bundle names them."""
        resources = self.opa.document(f"{DATA_ROOT}/resources") if self.opa else None
        by_connection = targets(resources if isinstance(resources, dict) else {})
        found = []
        for name, conn in sorted(self.connections.items()):
            try:
                beyond = [str(one) for one in reach(conn, by_connection.get(name, set()))]
            except psycopg.Error as e:
                beyond = [f"cannot look: {conn.scrub(str(e)).splitlines()[0].strip()}"]
            found += [f"connection {name}: {one}" for one in beyond]
        return found

    def take_refusals(self) -> list[dict[str, Any]]:
        """The grants refused for PUBLIC's CONNECT since last asked, for the alert rules."""
        with self._lock:
            refusals, self.refusals = self.refusals, []
        return refusals

    def _move_expiry(self, plan: Plan) -> None:
        conn = self._connection(plan.connection)
        with self._admin(conn, None) as db:
            db.execute(
                sql.SQL("ALTER ROLE {} LOGIN VALID UNTIL {}").format(
                    sql.Identifier(plan.role), sql.Literal(_timestamp(plan.valid_until))
                )
            )

    def _strip(self, plan: Plan) -> None:
        """Take back any table privilege beyond the plan's (granted by hand, or left by a
        crash), and give back one the plan has that is missing."""
        conn = self._connection(plan.connection)
        role = sql.Identifier(plan.role)
        want = {(plan.schema, t, p) for t in plan.tables for p in plan.privileges}
        with self._admin(conn, plan.database) as db:
            have = set(_table_privileges(db, plan.role))
            for schema, table, privilege in sorted(have - want):
                db.execute(
                    sql.SQL("REVOKE {} ON TABLE {} FROM {}").format(
                        sql.SQL(privilege), sql.Identifier(schema, table), role
                    )
                )
            for schema, table, privilege in sorted(want - have):
                db.execute(
                    sql.SQL("GRANT {} ON TABLE {} TO {}").format(
                        sql.SQL(privilege), sql.Identifier(schema, table), role
                    )
                )
        if have != want:
            log.warning(
                "grant %s: role %s privileges put back to its grant", plan.grant_id, plan.role
            )

    def _remove(self, held: Held) -> None:
        """Disable, revoke, terminate the sessions, drop (or keep disabled when the role
        owns objects). Each step is safe to repeat."""
        conn = self._connection(held.connection)
        with self._exclusive(conn, held.role):
            self._remove_now(conn, held)

    def _remove_now(self, conn: Connection, held: Held) -> None:
        role = sql.Identifier(held.role)
        database = held.about.get("database")
        try:
            with self._admin(conn, None) as db:
                db.execute(sql.SQL("ALTER ROLE {} NOLOGIN PASSWORD NULL").format(role))
        except ProvisioningError as e:
            if e.sqlstate != UNDEFINED_OBJECT:
                raise
            self._removed(held, _DROPPED_ELSEWHERE.format(held.role))
            return
        if database:
            try:
                with self._admin(conn, str(database)) as db:
                    for schema, table, _ in _table_privileges(db, held.role):
                        db.execute(
                            sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(
                                sql.Identifier(schema, table), role
                            )
                        )
                    for (schema,) in db.execute(
                        "SELECT DISTINCT n.nspname FROM pg_namespace n, aclexplode(n.nspacl) a "
                        "JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s",
                        [held.role],
                    ).fetchall():
                        db.execute(
                            sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                                sql.Identifier(schema), role
                            )
                        )
                    db.execute(
                        sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(
                            sql.Identifier(str(database)), role
                        )
                    )
            except ProvisioningError as e:  # the database is gone: nothing left to revoke
                log.warning("role %s: cannot revoke in %s: %s", held.role, database, e)
        with self._admin(conn, None, autocommit=True) as db:
            self._terminate(db, held.role)
        left = self._clear(conn, held.role)
        if left is None:  # another engine dropped it meanwhile
            self._removed(held, _DROPPED_ELSEWHERE.format(held.role))
            return
        if left:
            with self._admin(conn, None) as db:
                about = {**held.about, "retired": True}
                db.execute(
                    sql.SQL("COMMENT ON ROLE {} IS {}").format(role, sql.Literal(json.dumps(about)))
                )
                db.execute(
                    sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(conn.managed_role), role)
                )
            self._removed(held, _kept(held.role, left), KEPT)
            return
        self._removed(held, f"role {held.role} dropped; its sessions terminated")

    def _clear(self, conn: Connection, role: str) -> list[str] | None:
        """Remove what `role` owns or was granted in every database that holds any of it
        (`DROP OWNED BY`, one database at a time, as pg_shdepend lists them), then drop
        it. What is left, each naming its database and objects (empty: the role is gone;
        None: it was gone already)."""
        with self._admin(conn, None) as db:
            if not db.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone():
                return None
            databases = _databases_holding(db, role)
        left = []
        for database in databases:
            try:
                with self._admin(conn, database) as db:
                    wait = sql.Literal(LOCK_WAIT)
                    db.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(wait))
                    db.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            except (ProvisioningError, SinkUnavailable) as e:
                left.append(self._left_in(conn, database, role, e))
        if left:
            return left
        try:
            with self._admin(conn, None) as db:
                db.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))
        except ProvisioningError as e:
            if e.sqlstate == UNDEFINED_OBJECT:
                return None
            return [_reason(e)]
        return []

    def _left_in(self, conn: Connection, database: str | None, role: str, why: Exception) -> str:
        """What of `role` is left in `database` (its own connection's when None), and why."""
        where = database or str(psycopg.conninfo.conninfo_to_dict(conn.dsn).get("dbname") or "")
        try:
            with self._admin(conn, database) as db:
                objects = [d for (d,) in db.execute(
                    "SELECT DISTINCT pg_describe_object(s.classid, s.objid, s.objsubid) "
                    "FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid "
                    "WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = %s "
                    "AND s.dbid = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) ORDER BY 1",
                    [role],
                ).fetchall()]  # fmt: skip
        except (ProvisioningError, SinkUnavailable):
            objects = ["what it owns there"]
        return f"in database {where}: {', '.join(objects) or 'privileges'} ({_reason(why)})"

    def tidy(self) -> None:
        """Try again to remove the roles an ended grant left (KEPT): what blocked them
        may be gone. Each that still cannot be dropped is made sure unable to log in,
        and its provisioning says what is left now (reconcile calls this)."""
        with self._lock:
            for row in self.store.provisioning_in(KEPT):
                if row["sink"] == self.name:
                    self._tidy(row["grant_id"], row["detail"])

    def _tidy(self, grant_id: str, before: str) -> None:
        role = role_name(grant_id)
        servers = {conn.dsn: conn for conn in self.connections.values()}.values()
        for conn in servers:
            with self._exclusive(conn, role):
                with self._admin(conn, None) as db:
                    kept = db.execute(
                        "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles "
                        "WHERE rolname = %s",
                        [role],
                    ).fetchone()
                if kept is None or _about(kept[0]).get("grant_id") != grant_id:
                    continue  # not on this server
                self._disable(conn, role)
                left = self._clear(conn, role)
            if left:
                detail = _kept(role, left)
                if detail != before:
                    self.store.set_provisioning(self.name, grant_id, KEPT, detail, self.clock())
                return
            detail = f"role {role} dropped on a later try; nothing of it left"
            log.info("grant %s: %s", grant_id, detail)
            self.store.set_provisioning(self.name, grant_id, REMOVED, detail, self.clock())
            return
        self.store.set_provisioning(
            self.name, grant_id, REMOVED, f"role {role} is gone from every server", self.clock()
        )

    @staticmethod
    def _terminate(db: psycopg.Connection, role: str) -> None:
        """End every session of `role` and wait until they are gone (pg_terminate_backend's
        own wait polls every 100 ms; this looks every millisecond or so)."""
        pids = [
            pid
            for (pid,) in db.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s", [role]
            ).fetchall()
        ]
        if not pids:
            return
        db.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [pids])
        wait_until_gone(
            lambda: db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
            ).fetchone()[0],
            role,
            TERMINATE_WAIT_MS / 1000,
        )

    # -- what is --------------------------------------------------------------------------

    def _held(self, privileges: bool = False, passwords: bool = False) -> list[Held]:
        """Every role this deployment manages on every configured server (a server two
        connections share is asked once); `passwords`: whether each still has the
        password DataVisa set."""
        found: dict[str, Held] = {}
        for conn in self.connections.values():
            with self._admin(conn, None) as db:
                rows = db.execute(
                    "SELECT r.rolname, extract(epoch FROM r.rolvaliduntil)::bigint, "
                    "r.rolcanlogin, shobj_description(r.oid, 'pg_authid') "
                    "FROM pg_roles r JOIN pg_auth_members m ON m.member = r.oid "
                    "JOIN pg_roles g ON g.oid = m.roleid WHERE g.rolname = %s",
                    [conn.managed_role],
                ).fetchall()
            for name, valid_until, login, comment in rows:
                if name in found:
                    continue
                about = _about(comment)
                if about.get("retired"):
                    continue
                found[name] = Held(name, str(about.get("connection") or conn.name), about,
                                   valid_until, login)  # fmt: skip
        if privileges:
            for held in found.values():
                held.privileges = self._privileges_of(held)
        if passwords:
            self._compare_passwords(list(found.values()))
        return list(found.values())

    def _compare_passwords(self, held: list[Held]) -> None:
        """Mark each role whose stored password verifier (pg_authid.rolpassword) is not
        the one DataVisa set: the holder ran `ALTER ROLE ... PASSWORD` itself. An admin
        that may not read pg_authid (not a superuser) cannot tell: said once, in the log."""
        issued = {h.role: self._verifier(h.grant_id) for h in held}
        by_server: dict[str, list[Held]] = {}
        for one in held:
            if issued[one.role] is not None and one.connection in self.connections:
                by_server.setdefault(self.connections[one.connection].dsn, []).append(one)
        for roles in by_server.values():
            conn = self.connections[roles[0].connection]
            try:
                with self._admin(conn, None) as db:
                    stored = dict(db.execute(
                        "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY(%s)",
                        [[h.role for h in roles]],
                    ).fetchall())  # fmt: skip
            except ProvisioningError as e:
                if conn.name not in self._no_verifiers:
                    self._no_verifiers.add(conn.name)
                    log.warning(
                        "connection %s: cannot compare passwords with those issued: %s",
                        conn.name, e,
                    )  # fmt: skip
                continue
            for one in roles:
                one.own_password = one.role in stored and stored[one.role] != issued[one.role]

    def _privileges_of(self, held: Held) -> list[str]:
        database = held.about.get("database")
        if not database or held.connection not in self.connections:
            return []
        try:
            with self._admin(self.connections[held.connection], str(database)) as db:
                return [f"{s}.{t}:{p}" for s, t, p in _table_privileges(db, held.role)]
        except ProvisioningError:
            return []

    # -- talking to PostgreSQL ------------------------------------------------------------

    def _ensure_managed(self, conn: Connection) -> None:
        if (conn.dsn, conn.managed_role) in self._managed_on:
            return
        managed = sql.Identifier(conn.managed_role)
        try:
            with self._admin(conn, None) as db:
                exists = db.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", [conn.managed_role]
                ).fetchone()
                if not exists:
                    db.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(managed))
                    db.execute(
                        sql.SQL("COMMENT ON ROLE {} IS {}").format(
                            managed,
                            sql.Literal("DataVisa: its members are the roles of live grants"),
                        )
                    )
        except ProvisioningError as e:
            if e.sqlstate not in EXISTS:
                raise  # else another engine made it at that moment
        self._managed_on.add((conn.dsn, conn.managed_role))

    @contextmanager
    def _exclusive(self, conn: Connection, role: str) -> Iterator[None]:
        """Change `role` while no other engine sharing this server changes it: a session
        advisory lock on the admin connection, so two engines applying one outbox take
        turns (the second finds the role made or gone) instead of colliding ("tuple
        concurrently updated") and answering a removal as pending. A turn not had within
        ROLE_TURN_WAIT_S raises SinkUnavailable: retried like an unreachable server."""
        key = "datavisa:" + role
        deadline = time.monotonic() + ROLE_TURN_WAIT_S
        with self._admin(conn, None, autocommit=True) as db:
            while not db.execute(
                "SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", [key]
            ).fetchone()[0]:
                if time.monotonic() > deadline:
                    raise SinkUnavailable(
                        f"PostgreSQL ({conn.name}): another engine is still changing role "
                        f"{role}; retrying"
                    )
                time.sleep(0.002)
        try:
            yield
        finally:
            # A session lost meanwhile took its lock with it: nothing left to release.
            with (
                contextlib.suppress(SinkUnavailable, ProvisioningError),
                self._admin(conn, None, autocommit=True) as db,
            ):
                db.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", [key])

    @contextmanager
    def _admin(
        self, conn: Connection, database: str | None, autocommit: bool = False
    ) -> Iterator[psycopg.Connection]:
        """One transaction on `database` (None: the DSN's own) as the admin; PostgreSQL's
        refusals become ProvisioningError, an unreachable server SinkUnavailable, both
        scrubbed of the admin password."""
        key = (conn.name, conn.dsn, database)
        try:
            with self._lock:  # one admin connection per server and database, reused
                db = self._pool.get(key)
                if db is None or db.closed or db.broken:
                    kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S}
                    if database is not None:
                        kwargs["dbname"] = database
                    db = self._pool[key] = psycopg.connect(conn.dsn, autocommit=True, **kwargs)
                if autocommit:
                    yield db
                else:
                    with db.transaction():
                        yield db
        except psycopg.OperationalError as e:
            self._forget(key)
            if getattr(e, "sqlstate", None) == "3D000" or "does not exist" in str(e):
                raise ProvisioningError(
                    f"connection {conn.name}: database {database!r} does not exist"
                ) from None
            raise SinkUnavailable(
                f"PostgreSQL connection {conn.name} cannot be used: {conn.scrub(str(e)).strip()}"
            ) from None
        except psycopg.InterfaceError as e:
            self._forget(key)
            raise SinkUnavailable(
                f"PostgreSQL connection {conn.name}: {conn.scrub(str(e)).strip()}"
            ) from None
        except psycopg.Error as e:
            if getattr(e, "sqlstate", None) in CONCURRENT:
                raise SinkUnavailable(
                    f"PostgreSQL ({conn.name}): {conn.scrub(str(e)).strip()}; retrying"
                ) from None
            raise ProvisioningError(
                f"PostgreSQL ({conn.name}) refused: {conn.scrub(str(e)).strip()}",
                getattr(e, "sqlstate", None),
            ) from None

    def _forget(self, key: tuple[str, str, str | None]) -> None:
        with self._lock:
            db = self._pool.pop(key, None)
        if db is not None:
            with contextlib.suppress(psycopg.Error):
                db.close()

    def close(self) -> None:
        """Close the admin connections."""
        for key in list(self._pool):
            self._forget(key)


def _table_privileges(db: psycopg.Connection, role: str) -> list[tuple[str, str, str]]:
    """(schema, table, privilege) the role holds in this database, from the ACLs themselves
    (information_schema shows only the current user's roles)."""
    rows = db.execute(
        "SELECT n.nspname, c.relname, a.privilege_type "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a "
        "JOIN pg_roles r ON r.oid = a.grantee WHERE r.rolname = %s ORDER BY 1, 2, 3",
        [role],
    ).fetchall()
    return [(s, t, p) for s, t, p in rows]


def _databases_holding(db: psycopg.Connection, role: str) -> list[str | None]:
    """The databases where `role` owns something or was granted something (pg_shdepend),
    by name; None for its grants on shared objects (databases), removed from any one."""
    rows = db.execute(
        "SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_roles r ON r.oid = s.refobjid "
        "LEFT JOIN pg_database d ON d.oid = s.dbid "
        "WHERE s.refclassid = 'pg_authid'::regclass AND r.rolname = %s AND s.deptype <> 'p'",
        [role],
    ).fetchall()
    named = sorted(name for (name,) in rows if name is not None)
    return named or ([None] if rows else [])


def public_databases(db: psycopg.Connection) -> list[str]:
    """The databases of the server PUBLIC may connect to (every role, a grant's too)."""
    rows = db.execute(
        "SELECT datname FROM pg_database WHERE datallowconn "
        "AND has_database_privilege('public', oid, 'CONNECT') ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def public_tables(db: psycopg.Connection) -> list[str]:
    """The tables, views and sequences of this database granted to PUBLIC (outside the
    system catalogs, which PostgreSQL grants to PUBLIC itself)."""
    rows = db.execute(
        "SELECT DISTINCT n.nspname || '.' || c.relname FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a "
        "WHERE a.grantee = 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%%' ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


def targets(resources: dict[str, Any]) -> dict[str, set[str]]:
    """The databases the bundle's resources target, by connection name."""
    out: dict[str, set[str]] = {}
    for resource in resources.values():
        target = resource.get("target") if isinstance(resource, dict) else None
        if isinstance(target, dict) and target.get("kind") == KIND:
            out.setdefault(str(target.get("connection")), set()).add(str(target.get("database")))
    return out


@dataclass(frozen=True)
class Reach:
    """One thing every role on a server reaches, so a grant's role does too: a database
    PUBLIC may connect to (`table` None), or a target's table granted to PUBLIC."""

    database: str
    table: str | None = None
    target: bool = False  # the database is a target (its CONNECT is the grant's anyway)

    @property
    def what(self) -> str:
        return (
            f"table {self.table} in {self.database}" if self.table else f"database {self.database}"
        )

    def __str__(self) -> str:
        if self.table:
            return f"table {self.table} in {self.database} is granted to PUBLIC: any role reads it"
        if self.target:
            return f"PUBLIC holds CONNECT on database {self.database} (a target)"
        return f"PUBLIC holds CONNECT on database {self.database}: a grant's role reaches it"

    @property
    def fix(self) -> str:
        if self.table:
            return f"REVOKE ALL ON {self.table} FROM PUBLIC (grant it to the roles that need it)"
        return f"REVOKE CONNECT ON DATABASE {self.database} FROM PUBLIC"


def reach(conn: Connection, databases: set[str]) -> list[Reach]:
    """What a grant's role on `conn` reaches beyond the target `databases`: each database
    PUBLIC may connect to (the targets' own too, marked), each table of a target granted
    to PUBLIC. Raises psycopg.Error when the server cannot be asked."""
    with psycopg.connect(conn.dsn, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True) as db:
        found = [Reach(name, target=name in databases) for name in public_databases(db)]
    for database in sorted(databases):
        with psycopg.connect(
            conn.dsn, dbname=database, connect_timeout=CONNECT_TIMEOUT_S, autocommit=True
        ) as db:
            found += [Reach(database, table, True) for table in public_tables(db)]
    return found


def _kept(role: str, left: list[str]) -> str:
    return f"role {role} disabled and kept, unable to log in; left: {'; '.join(left)}"


def _reason(e: Exception) -> str:
    """The gist of what PostgreSQL said (its first line, without who said it)."""
    text = str(e).split(" refused: ", 1)[-1]
    return text.splitlines()[0].strip() if text else type(e).__name__


def _timestamp(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()
