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
- removed when the grant ends: login disabled, privileges revoked, its open sessions
  terminated (waiting until they are gone), then dropped, or kept disabled where it owns
  objects (their ownership and audit survive);
- compared with the live grants on reconcile (`read_all` / `relevant`): a managed role no
  grant holds is removed, one holding privileges beyond its grant is stripped back.

The admin connection's password (in its DSN) never reaches an error, a log line or an
answer: every error text is scrubbed of it.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from ..ledger.decision_log import DecisionLog
from ..model.errors import Conflict, DataVisaError, SinkUnavailable
from ..model.records import SYSTEM
from ..policy.decide import PROVISION, decide
from ..policy.opa import OpaClient
from ..store import Store

log = logging.getLogger("datavisa.postgresql")

KIND = "postgresql"
SINK = "postgresql"
MANAGED = "datavisa_managed"  # the bookkeeping role every managed role is a member of
ROLE_PREFIX = "dv_"
CONNECT_TIMEOUT_S = 5
TERMINATE_WAIT_MS = 5000
# How long a change to a role waits for another engine sharing the server to finish its
# own change to that role (they take turns: `_exclusive`).
ROLE_TURN_WAIT_S = 10.0
# The table privileges PostgreSQL knows; policy may name only these (they are keywords).
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"}
)
PROVISIONED, FAILED, REMOVED, KEPT = "provisioned", "failed", "removed", "kept"


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

    @property
    def secret(self) -> str | None:
        try:
            return psycopg.conninfo.conninfo_to_dict(self.dsn).get("password")  # type: ignore[return-value]
        except psycopg.ProgrammingError:
            return None

    def scrub(self, text: str) -> str:
        """`text` with the admin password (plain or URL-quoted) cut out."""
        secret = self.secret
        if secret:
            for form in {secret, quote(secret, safe=""), quote(secret)}:
                text = text.replace(form, "***")
        return text

    def address(self) -> tuple[str, int]:
        """Where a holder connects: the public host and port, else the admin DSN's."""
        info = psycopg.conninfo.conninfo_to_dict(self.dsn)
        host = self.public_host or str(info.get("host") or "127.0.0.1")
        port = self.public_port or int(info.get("port") or 5432)
        return host, port


class ProvisioningError(DataVisaError):
    """What the data system refused for one grant; retrying does not help (the grant's
    target, the policy, or the database has to change first). `sqlstate` is PostgreSQL's
    code for it, when it gave one."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


DUPLICATE_OBJECT = "42710"  # CREATE ROLE of a role that exists
# ... and of one another engine is creating at that moment: the catalog's unique index
UNIQUE_VIOLATION = "23505"
EXISTS = {DUPLICATE_OBJECT, UNIQUE_VIOLATION}  # either way, the role is there
# What engines sharing a store get when they change one role at once ("tuple concurrently
# updated"), or a deadlock or serialization failure: retried, never a refusal.
CONCURRENT = {"XX000", "40001", "40P01"}
UNDEFINED_OBJECT = "42704"  # a role that no longer exists: another engine removed it
_DROPPED_ELSEWHERE = "role {} already dropped (by another engine)"


def role_name(grant_id: str) -> str:
    return f"{ROLE_PREFIX}{grant_id}"


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


@dataclass(frozen=True)
class Plan:
    """What one live grant should be in PostgreSQL."""

    grant_id: str
    subject: str
    resource: str
    actions: tuple[str, ...]
    connection: str
    database: str
    schema: str
    tables: tuple[str, ...]
    privileges: tuple[str, ...]
    valid_until: int  # epoch seconds: the grant's expiry, rounded down

    @property
    def role(self) -> str:
        return role_name(self.grant_id)

    def comment(self) -> str:
        return json.dumps(
            {"datavisa": 1, "grant_id": self.grant_id, "subject": self.subject,
             "resource": self.resource, "actions": list(self.actions),
             "connection": self.connection, "database": self.database, "schema": self.schema,
             "tables": list(self.tables), "privileges": list(self.privileges)},
            sort_keys=True,
        )  # fmt: skip

    def held(self) -> dict[str, Any]:
        """As `read_all` reports a role that matches this plan exactly."""
        return {
            "resource": self.resource,
            "actions": sorted(self.actions),
            "valid_until": self.valid_until,
            "login": True,
            "privileges": sorted(
                f"{self.schema}.{t}:{p}" for t in self.tables for p in self.privileges
            ),
        }


@dataclass
class Held:
    """A managed role as PostgreSQL holds it now."""

    role: str
    connection: str
    about: dict[str, Any]  # its comment
    valid_until: int | None
    login: bool
    privileges: list[str] = field(default_factory=list)

    @property
    def grant_id(self) -> str:
        # A managed role nobody made through DataVisa is named by itself in drift reports.
        return str(self.about.get("grant_id") or self.role)

    @property
    def subject(self) -> str:
        return str(self.about.get("subject") or "")

    def view(self) -> dict[str, Any]:
        return {
            "resource": self.about.get("resource"),
            "actions": sorted(self.about.get("actions") or []),
            "valid_until": self.valid_until,
            "login": self.login,
            "privileges": sorted(self.privileges),
        }


class PostgresSink:
    """The grants of the live-grant outbox, as managed roles on the configured servers."""

    name = SINK
    provisions = True  # an activation it refuses, or never takes, is ended (lifecycle.grants)
    shared = True  # one for every engine on the store: reconciled by one at a time

    def __init__(
        self,
        connections: dict[str, Connection],
        store: Store,
        opa: OpaClient | None,
        log: DecisionLog | None = None,
        revision: str = "",
        clock: Any = time.time,
    ) -> None:
        self.connections = connections
        self.store, self.opa, self.log, self.revision = store, opa, log, revision
        self.clock = clock
        self._plans: dict[tuple[str, str, tuple[str, ...]], Plan | ProvisioningError | None] = {}
        self._lock = threading.RLock()  # one change to the roles at a time (per sink)
        self._pool: dict[tuple[str, str, str | None], psycopg.Connection] = {}
        self._managed_on: set[tuple[str, str]] = set()  # (server, bookkeeping role) made

    # -- the Sink protocol ----------------------------------------------------------------

    def put_subject(self, subject: str, grants: dict[str, Any]) -> None:
        with self._lock:
            wanted = self._wanted({subject: grants})
            held = {h.grant_id: h for h in self._held() if h.subject == subject}
            self._converge(wanted, held, deep=False)

    def put_all(self, grants: dict[str, dict[str, Any]]) -> None:
        with self._lock:
            self._converge(self._wanted(grants), {h.grant_id: h for h in self._held()}, deep=True)

    def read_all(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            out: dict[str, dict[str, Any]] = {}
            for held in self._held(privileges=True):
                out.setdefault(held.subject, {})[held.grant_id] = held.view()
            return out

    def relevant(self, grants: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The live grants this sink holds roles for, as `read_all` reports them."""
        out: dict[str, dict[str, Any]] = {}
        for plan in self._wanted(grants, record=False).values():
            out.setdefault(plan.subject, {})[plan.grant_id] = plan.held()
        return out

    # -- credentials ----------------------------------------------------------------------

    def issue_credentials(self, grant_id: str, rotate: bool = False) -> dict[str, Any]:
        """A new password for the grant's role, returned once: as a postgresql:// URL and
        as PG* variables. Refused when credentials were issued before, unless `rotate`."""
        with self._lock:
            standing = {r["sink"]: r for r in self.store.provisioning(grant_id)}.get(self.name)
            if standing is None or standing["state"] != PROVISIONED:
                why = f": {standing['detail']}" if standing and standing.get("detail") else ""
                state = standing["state"] if standing else "not provisioned"
                raise Conflict(f"grant {grant_id} has no role in PostgreSQL ({state}{why})")
            if standing.get("credentials_at") and not rotate:
                raise Conflict(
                    f"credentials for grant {grant_id} were already issued; "
                    "--rotate (rotate=true) issues a new password and ends the old one"
                )
            held = {h.grant_id: h for h in self._held()}.get(grant_id)
            if held is None:
                raise Conflict(f"grant {grant_id} has no role in PostgreSQL any more")
            conn = self._connection(held.connection)
            password = secrets.token_urlsafe(24)
            with self._admin(conn, None) as db:
                db.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(held.role), sql.Literal(scram_verifier(password))
                    )
                )
            self.store.set_credentials_issued(self.name, grant_id, self.clock())
        host, port = conn.address()
        database = str(held.about.get("database"))
        url = (
            f"postgresql://{quote(held.role)}:{quote(password, safe='')}@{host}:{port}/"
            f"{quote(database)}"
        )
        return {
            "grant_id": grant_id,
            "url": url,
            "env": {
                "PGHOST": host,
                "PGPORT": str(port),
                "PGDATABASE": database,
                "PGUSER": held.role,
                "PGPASSWORD": password,
            },
            "valid_until": held.valid_until,
        }

    # -- what should be -------------------------------------------------------------------

    def _wanted(self, grants: dict[str, dict[str, Any]], record: bool = True) -> dict[str, Plan]:
        """The plans of the live grants that target PostgreSQL; a grant that cannot be
        provisioned is recorded as failed, with why, and left out."""
        plans: dict[str, Plan] = {}
        for subject, held in grants.items():
            for grant_id, doc in held.items():
                plan = self._plan(subject, grant_id, doc, record)
                if plan is not None:
                    plans[grant_id] = plan
        return plans

    def _plan(self, subject: str, grant_id: str, doc: dict[str, Any], record: bool) -> Plan | None:
        key = (grant_id, str(doc.get("resource")), tuple(doc.get("actions") or ()))
        if key not in self._plans:
            self._plans[key] = self._decide_plan(subject, grant_id, doc)
        plan = self._plans[key]
        if isinstance(plan, ProvisioningError):
            if record and self._state(grant_id) != FAILED:
                log.warning("grant %s cannot be provisioned: %s", grant_id, plan)
                self.store.set_provisioning(self.name, grant_id, FAILED, str(plan), self.clock())
            return None
        if plan is None:
            return None
        if self._state(grant_id) == FAILED:
            return None  # refused by the database before: not tried again
        valid_until = int(doc["expires_ns"] // 1_000_000_000)
        return plan if plan.valid_until == valid_until else replace(plan, valid_until=valid_until)

    def _decide_plan(
        self, subject: str, grant_id: str, doc: dict[str, Any]
    ) -> Plan | ProvisioningError | None:
        asked = {
            "grant_id": grant_id,
            "subject": subject,
            "resource": doc.get("resource"),
            "actions": list(doc.get("actions") or []),
        }
        decision = decide(
            self.opa, PROVISION, asked, log=self.log, caller=SYSTEM, revision=self.revision
        )
        if decision.codes == ["policy_unavailable"]:
            self._plans.clear()
            raise SinkUnavailable(decision.explain())
        if not decision.result.get("targeted", False) and decision.allow:
            return None
        if not decision.allow:
            return ProvisioningError(decision.explain())
        target = decision.result["target"]
        if target.get("connection") not in self.connections:
            known = ", ".join(sorted(self.connections)) or "none"
            return ProvisioningError(
                f"resource {doc.get('resource')} names connection {target.get('connection')!r}, "
                f"which serve's config does not have (connections: {known})"
            )
        privileges = tuple(decision.result.get("privileges") or ())
        unknown = sorted(set(privileges) - TABLE_PRIVILEGES)
        if unknown:
            return ProvisioningError(
                f"policy gives {', '.join(unknown)}, not a table privilege PostgreSQL knows"
            )
        return Plan(
            grant_id=grant_id,
            subject=subject,
            resource=str(doc.get("resource")),
            actions=tuple(sorted(asked["actions"])),
            connection=target["connection"],
            database=target["database"],
            schema=target["schema"],
            tables=tuple(target["tables"]),
            privileges=privileges,
            valid_until=int(doc["expires_ns"] // 1_000_000_000),
        )

    def _state(self, grant_id: str) -> str | None:
        rows = {r["sink"]: r for r in self.store.provisioning(grant_id)}
        return rows[self.name]["state"] if self.name in rows else None

    # -- making it so ---------------------------------------------------------------------

    def _converge(self, wanted: dict[str, Plan], held: dict[str, Held], deep: bool) -> None:
        for grant_id, role in held.items():
            if grant_id not in wanted:
                self._remove(role)
        for grant_id, plan in wanted.items():
            role = held.get(grant_id)
            if role is None:
                self._guarded(plan, self._create)
            elif role.valid_until != plan.valid_until or not role.login:
                self._guarded(plan, self._move_expiry)
            if deep and role is not None:
                self._guarded(plan, self._strip)

    def _guarded(self, plan: Plan, step: Any) -> None:
        """Run one step for `plan`; what the database refuses marks the grant failed (and
        rolls the step back); a database that cannot be reached raises SinkUnavailable."""
        try:
            with self._exclusive(self._connection(plan.connection), plan.role):
                step(plan)
        except ProvisioningError as e:
            if e.sqlstate in EXISTS:
                # Made meanwhile by another engine sharing this store: it is held, and
                # the next reconcile compares it with the grant like any other.
                log.info("grant %s: role %s exists already", plan.grant_id, plan.role)
                return
            log.warning("grant %s: %s", plan.grant_id, e)
            self.store.set_provisioning(self.name, plan.grant_id, FAILED, str(e), self.clock())

    def _create(self, plan: Plan) -> None:
        conn = self._connection(plan.connection)
        role = sql.Identifier(plan.role)
        tables = sql.SQL(", ").join(sql.Identifier(plan.schema, t) for t in plan.tables)
        privileges = sql.SQL(", ").join(sql.SQL(p) for p in plan.privileges)
        self._ensure_managed(conn)
        with self._admin(conn, plan.database) as db:
            db.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} VALID UNTIL {} IN ROLE {}").format(
                    role,
                    sql.Literal(scram_verifier(secrets.token_urlsafe(24))),
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
        log.info("grant %s: role %s created in %s", plan.grant_id, plan.role, plan.database)
        self.store.set_provisioning(
            self.name, plan.grant_id, PROVISIONED,
            f"role {plan.role} in {plan.connection}/{plan.database}: "
            f"{', '.join(plan.privileges)} on {', '.join(plan.tables)}",
            self.clock(),
        )  # fmt: skip

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
                db.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(role))
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
            owns = db.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_shdepend d JOIN pg_roles r ON r.oid = d.refobjid "
                "WHERE r.rolname = %s AND d.deptype = 'o')",
                [held.role],
            ).fetchone()[0]
        state, detail = REMOVED, f"role {held.role} dropped; its sessions terminated"
        why = ""
        if not owns:
            try:
                with self._admin(conn, None) as db:
                    db.execute(sql.SQL("DROP ROLE {}").format(role))
            except ProvisioningError as e:  # privileges elsewhere: keep it disabled
                if e.sqlstate == UNDEFINED_OBJECT:  # another engine dropped it meanwhile
                    self._removed(held, _DROPPED_ELSEWHERE.format(held.role))
                    return
                owns, why = True, f": {e}"
        if owns:
            with self._admin(conn, None) as db:
                about = {**held.about, "retired": True}
                db.execute(
                    sql.SQL("COMMENT ON ROLE {} IS {}").format(role, sql.Literal(json.dumps(about)))
                )
                db.execute(
                    sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(conn.managed_role), role)
                )
            state = KEPT
            detail = f"role {held.role} disabled and kept (it owns objects){why}"
        self._removed(held, detail, state)

    def _removed(self, held: Held, detail: str, state: str = REMOVED) -> None:
        log.info("grant %s: %s", held.grant_id, detail)
        self.store.set_provisioning(self.name, held.grant_id, state, detail, self.clock())
        self._plans = {key: plan for key, plan in self._plans.items() if key[0] != held.grant_id}

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
        deadline = time.monotonic() + TERMINATE_WAIT_MS / 1000
        while db.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", [pids]
        ).fetchone()[0]:
            if time.monotonic() > deadline:
                raise SinkUnavailable(f"sessions of {role} still running after termination")
            time.sleep(0.001)

    # -- what is --------------------------------------------------------------------------

    def _held(self, privileges: bool = False) -> list[Held]:
        """Every role this deployment manages on every configured server (a server two
        connections share is asked once)."""
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
        return list(found.values())

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

    def _connection(self, name: str) -> Connection:
        try:
            return self.connections[name]
        except KeyError:
            raise ProvisioningError(f"no connection {name!r} in serve's config") from None

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


def _about(comment: str | None) -> dict[str, Any]:
    try:
        about = json.loads(comment or "{}")
    except ValueError:
        return {}
    return about if isinstance(about, dict) else {}


def _timestamp(epoch_s: int) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()
