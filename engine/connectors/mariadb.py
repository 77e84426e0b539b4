"""Grants that take effect in MariaDB (or MySQL): one managed account per live grant.

A grant on a resource whose bundle entry names a `target` of kind mariadb becomes, on the
server that target's connection names, an account `'dv_<grant id>'@'%'`:

- created with a random password sent only as its `mysql_native_password` hash (so no
  server or audit log ever holds it), granted the privilege-less role `datavisa_managed`
  (what marks it managed; the connection's `managed_role`), described by a row in that
  role's bookkeeping database (`<managed_role>.accounts`: which grant it is; MariaDB has
  no comments on accounts), and exactly the privileges `datavisa.provision` returned on
  exactly the target's tables. MariaDB's DDL is not transactional: a step the server
  refuses undoes those before it, so nothing is left behind;
- given a second clock that holds while DataVisa is down: an event of the server's event
  scheduler (`<managed_role>.expire_dv_<grant id>`, `ON SCHEDULE AT` the grant's expiry)
  that locks the account and kills its sessions at that instant. (MariaDB's own `PASSWORD
  EXPIRE INTERVAL` counts whole days, and a client with an expired password may set a new
  one itself: no clock for a grant.) Extension moves the event;
- removed when the grant ends: `ACCOUNT LOCK`, every privilege revoked, its sessions
  killed (`KILL CONNECTION`, waiting until they are gone), then `DROP USER`, its row and its
  event;
- compared with the live grants on reconcile (`read_all` / `relevant`): a managed account
  no grant holds is removed, one holding privileges beyond its grant is stripped back, one
  whose password hash is not the one DataVisa set has it put back or its grant ended, as
  `datavisa.provision` says (`own_password`).

The admin connection's password (in its `mysql://` DSN) never reaches an error, a log line
or an answer: every error text is scrubbed of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from ..ledger.decision_log import DecisionLog
from ..model.errors import DataVisaError, SinkUnavailable
from ..policy.opa import OpaClient
from ..store import Store
from .base import (
    ROLE_PREFIX,
    ConnectorSink,
    Held,
    Plan,
    ProvisioningError,
    about,
    scrub,
    wait_until_gone,
)

log = logging.getLogger("datavisa.mariadb")

KIND = "mariadb"
SINK = "mariadb"
MANAGED = "datavisa_managed"  # the role every managed account holds, and its bookkeeping db
NOBODY = "datavisa_nobody"  # server_audit_incl_users while no account is live (empty: all)
HOST = "%"  # the accounts' host part: from anywhere the server listens
CONNECT_TIMEOUT_S = 5
KILL_WAIT_S = 5.0
ACCOUNT_TURN_WAIT_S = 10  # how long a change waits for another engine's to the same account
# The table privileges MariaDB grants; policy may name only these (they are keywords).
TABLE_PRIVILEGES = frozenset(
    {"SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "INDEX", "ALTER", "REFERENCES",
     "TRIGGER", "SHOW VIEW", "CREATE VIEW", "DELETE HISTORY"}
)  # fmt: skip
EXISTS = "1396"  # CREATE USER of an account that exists (ER_CANNOT_USER)
NO_SUCH_ACCOUNT = "1396"  # ... and ALTER/DROP USER of one that does not
UNKNOWN_THREAD = 1094  # KILL of a session that ended meanwhile
# The server's codes that mean "try again", not "refused": a lost or refused connection
# (client codes 2000+), too many connections, shutting down, a deadlock, a lock wait.
UNAVAILABLE = {1040, 1053, 1205, 1213, 1927}


@dataclass(frozen=True)
class Connection:
    """How serve reaches one MariaDB server as its admin (config `connections:`).

    `dsn` (mysql://user:password@host:port/) holds the admin's password and is never
    printed; `audit_log` is the file the server's audit plugin writes, read for what the
    managed accounts run; `public_host` and `public_port` are how a holder reaches the
    server, when not as the admin does; `managed_role` marks the accounts this deployment
    manages there, and names the database of its bookkeeping.
    """

    name: str
    dsn: str = field(repr=False)
    audit_log: Path | None = None
    public_host: str | None = None
    public_port: int | None = None
    managed_role: str = MANAGED

    @property
    def secret(self) -> str | None:
        password = urlsplit(self.dsn).password
        return unquote(password) if password else None

    def scrub(self, text: str) -> str:
        """`text` with the admin password (plain or URL-quoted) cut out."""
        return scrub(text, self.secret)

    def params(self) -> dict[str, Any]:
        """PyMySQL's connect() arguments for the admin."""
        url = urlsplit(self.dsn)
        return {
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 3306,
            "user": unquote(url.username or "root"),
            "password": self.secret or "",
        }

    def address(self) -> tuple[str, int]:
        """Where a holder connects: the public host and port, else the admin DSN's."""
        params = self.params()
        return self.public_host or params["host"], self.public_port or params["port"]


def native_hash(password: str) -> str:
    """MariaDB's mysql_native_password hash of `password` (what `PASSWORD()` gives): the
    server stores it as it is; only it, never the password, reaches a server log."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def _literal(value: str) -> str:
    """A string literal for the statements that take no parameters (an event's body)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _account(role: str, host: str = HOST) -> str:
    """'role'@'host', for statements run without parameters (PyMySQL formats a statement,
    `%` and all, only when it is given some)."""
    return f"{_literal(role)}@{_literal(host)}"


class MariadbSink(ConnectorSink):
    """The grants of the live-grant outbox, as managed accounts on the configured servers."""

    name = SINK
    kind = KIND
    label = "MariaDB"
    scheme = "mysql"
    # What the mysql/mariadb client reads (MYSQL_PWD among them).
    client_env = ("MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_DATABASE", "MYSQL_USER", "MYSQL_PWD")
    account = "account"
    privileges_known = TABLE_PRIVILEGES
    exists = frozenset({EXISTS})

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
        self._pool: dict[tuple[str, str], pymysql.connections.Connection] = {}
        self._pool_lock = threading.RLock()
        self._managed_on: set[tuple[str, str]] = set()  # (server, managed role) made

    # -- credentials ----------------------------------------------------------------------

    def _new_verifier(self, password: str) -> str:
        return native_hash(password)

    def _set_password(self, conn: Connection, role: str, verifier: str) -> None:
        with self._admin(conn) as cur:
            cur.execute(
                f"ALTER USER {_account(role)} IDENTIFIED VIA mysql_native_password "
                f"USING {_literal(verifier)}"
            )

    def _end_sessions(self, conn: Connection, role: str) -> None:
        with self._admin(conn) as cur:
            cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE USER = %s", [role])
            ids = [i for (i,) in cur.fetchall()]
            for session in ids:
                try:
                    cur.execute("KILL CONNECTION %s", [session])
                except pymysql.MySQLError as e:
                    if e.args and e.args[0] != UNKNOWN_THREAD:
                        raise
            if ids:
                marks = ", ".join(["%s"] * len(ids))

                def still() -> int:
                    cur.execute(
                        "SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                        f"WHERE ID IN ({marks})",
                        ids,
                    )
                    return int(cur.fetchone()[0])

                wait_until_gone(still, role, KILL_WAIT_S)

    def _refuse_login(self, conn: Connection, role: str) -> None:
        with self._admin(conn) as cur:
            cur.execute(f"ALTER USER {_account(role)} ACCOUNT LOCK")

    def _end_one_session(self, conn: Connection, role: str, session: str) -> bool:
        """`session`: the connection id (the audit log's, PROCESSLIST's ID)."""
        if not session.isdigit():
            return False
        with self._admin(conn) as cur:
            cur.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE ID = %s AND USER = %s",
                [int(session), role],
            )
            if cur.fetchone() is None:
                return False
            try:
                cur.execute("KILL CONNECTION %s", [int(session)])
            except pymysql.MySQLError as e:
                if e.args and e.args[0] != UNKNOWN_THREAD:
                    raise

            def still() -> int:
                cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = %s",
                    [int(session)],
                )
                return int(cur.fetchone()[0])

            wait_until_gone(still, role, KILL_WAIT_S)
        return True

    def _disable(self, conn: Connection, role: str) -> None:
        """Locked, a password no one knows, no open session: unusable."""
        with self._admin(conn) as cur:
            cur.execute(
                f"ALTER USER {_account(role)} IDENTIFIED VIA mysql_native_password "
                f"USING {_literal(native_hash(secrets.token_urlsafe(24)))} ACCOUNT LOCK"
            )
        self._end_sessions(conn, role)

    # -- making it so ---------------------------------------------------------------------

    def _create(self, plan: Plan) -> None:
        conn = self._connection(plan.connection)
        self._ensure_managed(conn)
        verifier = native_hash(secrets.token_urlsafe(24))
        account, bookkeeping = _account(plan.role), _ident(conn.managed_role)
        with self._admin(conn) as cur:
            # Written first: an account a crash leaves half made (no role yet) is still
            # known as this deployment's, and reconcile removes or completes it.
            cur.execute(
                f"REPLACE INTO {bookkeeping}.accounts (account, about) VALUES (%s, %s)",
                [plan.role, plan.comment()],
            )
        try:
            with self._admin(conn) as cur:
                cur.execute(
                    f"CREATE USER {account} IDENTIFIED VIA mysql_native_password "
                    f"USING {_literal(verifier)}"
                )
        except ProvisioningError as e:
            if e.sqlstate not in self.exists:  # else another engine's, being made
                with contextlib.suppress(ProvisioningError, SinkUnavailable):
                    self._forget_account(conn, plan.role)
            raise
        try:
            with self._admin(conn) as cur:
                cur.execute(f"GRANT {_ident(conn.managed_role)} TO {account}")
                privileges = ", ".join(plan.privileges)
                for table in plan.tables:
                    cur.execute(
                        f"GRANT {privileges} ON {_ident(plan.database)}.{_ident(table)} "
                        f"TO {account}"
                    )
                self._schedule_expiry(cur, conn, plan)
        except (ProvisioningError, SinkUnavailable):
            with contextlib.suppress(ProvisioningError, SinkUnavailable):
                self._drop(conn, plan.role)  # all or nothing: what was made goes again
            raise
        self._audit(conn)
        self._provisioned(plan, verifier, plan.database)

    def _schedule_expiry(self, cur: Any, conn: Connection, plan: Plan) -> None:
        """The second clock: at the grant's expiry the server itself locks the account and
        kills its sessions, whether or not DataVisa is running then."""
        role = _literal(plan.role)
        cur.execute(
            f"CREATE OR REPLACE EVENT {_ident(conn.managed_role)}.{_ident('expire_' + plan.role)} "
            f"ON SCHEDULE AT FROM_UNIXTIME({int(plan.valid_until)}) ON COMPLETION NOT PRESERVE "
            f"COMMENT 'DataVisa: the grant expires' DO BEGIN "
            f"ALTER USER {_account(plan.role)} ACCOUNT LOCK; "
            f"FOR s IN (SELECT ID FROM information_schema.PROCESSLIST WHERE USER = {role}) "
            f"DO KILL CONNECTION s.ID; END FOR; END"
        )

    def _move_expiry(self, plan: Plan) -> None:
        conn = self._connection(plan.connection)
        with self._admin(conn) as cur:
            cur.execute(f"ALTER USER {_account(plan.role)} ACCOUNT UNLOCK")
            self._schedule_expiry(cur, conn, plan)

    def _strip(self, plan: Plan) -> None:
        """Take back any privilege beyond the plan's (granted by hand: on a table, a
        database or the server), and give back one the plan has that is missing."""
        conn = self._connection(plan.connection)
        want = {f"{plan.database}.{t}:{p}" for t in plan.tables for p in plan.privileges}
        with self._admin(conn) as cur:
            have = set(_privileges(cur, plan.role, HOST))
            if have == want:
                return
            account = _account(plan.role)
            cur.execute(f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}")
            cur.execute(f"GRANT {_ident(conn.managed_role)} TO {account}")
            for table in plan.tables:
                cur.execute(
                    f"GRANT {', '.join(plan.privileges)} ON "
                    f"{_ident(plan.database)}.{_ident(table)} TO {account}"
                )
        log.warning(
            "grant %s: account %s privileges put back to its grant", plan.grant_id, plan.role
        )

    def _remove(self, held: Held) -> None:
        """Lock, revoke, kill the sessions and wait for them to end, drop. Each step is
        safe to repeat."""
        conn = self._connection(held.connection)
        host = str(held.about.get("host") or HOST)
        with self._exclusive(conn, held.role):
            try:
                with self._admin(conn) as cur:
                    cur.execute(f"ALTER USER {_account(held.role, host)} ACCOUNT LOCK")
                    cur.execute(
                        f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {_account(held.role, host)}"
                    )
            except ProvisioningError as e:
                if e.sqlstate != NO_SUCH_ACCOUNT:
                    raise
                self._forget_account(conn, held.role)
                self._removed(held, f"account {held.role} already dropped (by another engine)")
                return
            self._end_sessions(conn, held.role)
            self._drop(conn, held.role, host)
        self._audit(conn)
        self._removed(held, f"account {held.role} dropped; its sessions killed")

    def _drop(self, conn: Connection, role: str, host: str = HOST) -> None:
        with self._admin(conn) as cur:
            cur.execute(f"DROP USER IF EXISTS {_account(role, host)}")
        self._forget_account(conn, role)

    def _forget_account(self, conn: Connection, role: str) -> None:
        with self._admin(conn) as cur:
            bookkeeping = _ident(conn.managed_role)
            cur.execute(f"DELETE FROM {bookkeeping}.accounts WHERE account = %s", [role])
            cur.execute(f"DROP EVENT IF EXISTS {bookkeeping}.{_ident('expire_' + role)}")

    def _audit(self, conn: Connection) -> None:
        """Have the audit plugin log the statements of the managed accounts, and only
        theirs (server_audit_incl_users; empty would mean everyone's), when the
        connection reads its file (`audit_log`). A server without the plugin is said once
        in the log; provisioning goes on."""
        if conn.audit_log is None:
            return
        try:
            with self._admin(conn) as cur:
                cur.execute(
                    "SELECT DISTINCT User FROM mysql.roles_mapping WHERE Role = %s "
                    "AND Admin_option = 'N' ORDER BY User",
                    [conn.managed_role],
                )
                accounts = ",".join(u for (u,) in cur.fetchall()) or NOBODY
                cur.execute("SET GLOBAL server_audit_incl_users = %s", [accounts])
                cur.execute("SET GLOBAL server_audit_events = 'QUERY'")
                cur.execute("SET GLOBAL server_audit_logging = ON")
        except ProvisioningError as e:
            if conn.name not in self._no_verifiers:
                self._no_verifiers.add(conn.name)
                log.warning(
                    "connection %s: the audit plugin cannot log the accounts' statements "
                    "(INSTALL SONAME 'server_audit'): %s", conn.name, e,
                )  # fmt: skip

    # -- what is --------------------------------------------------------------------------

    def _held(self, privileges: bool = False, passwords: bool = False) -> list[Held]:
        """Every account this deployment manages on every configured server (one a
        server two connections share is asked once)."""
        found: dict[str, Held] = {}
        for conn in self.connections.values():
            self._ensure_managed(conn)
            bookkeeping = _ident(conn.managed_role)
            with self._admin(conn) as cur:
                cur.execute(
                    # Managed: holding the managed role, or named in the bookkeeping
                    # (an account a crash left before it got the role).
                    "SELECT g.User, g.Host, JSON_VALUE(g.Priv, '$.account_locked'), "
                    "JSON_VALUE(g.Priv, '$.authentication_string'), a.about, "
                    "UNIX_TIMESTAMP(e.EXECUTE_AT) "
                    "FROM mysql.global_priv g "
                    f"LEFT JOIN {bookkeeping}.accounts a ON a.account = g.User AND g.Host = %s "
                    "LEFT JOIN information_schema.EVENTS e ON e.EVENT_SCHEMA = %s "
                    "AND e.EVENT_NAME = CONCAT('expire_', g.User) "
                    "WHERE a.account IS NOT NULL OR EXISTS (SELECT 1 FROM mysql.roles_mapping m "
                    "WHERE m.User = g.User AND m.Host = g.Host AND m.Role = %s "
                    "AND m.Admin_option = 'N')",
                    [HOST, conn.managed_role, conn.managed_role],
                )
                rows = cur.fetchall()
                for user, host, locked, stored, said, expires in rows:
                    if user in found:
                        continue
                    facts = {**about(said), "host": host}
                    held = Held(
                        user,
                        str(facts.get("connection") or conn.name),
                        facts,
                        None if expires is None else int(expires),
                        locked not in ("1", "true"),
                    )
                    if privileges:
                        held.privileges = _privileges(cur, user, host)
                    if passwords:
                        issued = self._verifier(held.grant_id)
                        held.own_password = issued is not None and stored != issued
                    found[user] = held
        return list(found.values())

    # -- talking to MariaDB ---------------------------------------------------------------

    def _ensure_managed(self, conn: Connection) -> None:
        """The managed role and its bookkeeping database, made once per server."""
        params = conn.params()
        key = (f"{params['host']}:{params['port']}", conn.managed_role)
        if key in self._managed_on:
            return
        role, bookkeeping = _ident(conn.managed_role), _ident(conn.managed_role)
        with self._admin(conn) as cur:
            cur.execute(f"CREATE ROLE IF NOT EXISTS {role}")
            cur.execute(
                f"CREATE DATABASE IF NOT EXISTS {bookkeeping} "
                "COMMENT 'DataVisa: the accounts of live grants and their expiry events'"
            )
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {bookkeeping}.accounts "
                "(account VARCHAR(80) PRIMARY KEY, about TEXT NOT NULL)"
            )
            cur.execute("SELECT @@event_scheduler")
            if str(cur.fetchone()[0]).upper() != "ON":
                log.warning(
                    "connection %s: the event scheduler is off (event_scheduler=ON): grants' "
                    "accounts end only when DataVisa removes them, not by themselves",
                    conn.name,
                )
        self._managed_on.add(key)

    @contextmanager
    def _exclusive(self, conn: Connection, role: str) -> Iterator[None]:
        """Change `role` while no other engine sharing this server changes it: a named
        lock (GET_LOCK) on the admin connection. A turn not had within
        ACCOUNT_TURN_WAIT_S raises SinkUnavailable: retried like an unreachable server."""
        key = "datavisa:" + role
        with self._admin(conn) as cur:
            cur.execute("SELECT GET_LOCK(%s, %s)", [key, ACCOUNT_TURN_WAIT_S])
            if cur.fetchone()[0] != 1:
                raise SinkUnavailable(
                    f"MariaDB ({conn.name}): another engine is still changing account {role}; "
                    "retrying"
                )
        try:
            yield
        finally:
            with contextlib.suppress(SinkUnavailable, ProvisioningError), self._admin(conn) as cur:
                cur.execute("SELECT RELEASE_LOCK(%s)", [key])

    @contextmanager
    def _admin(self, conn: Connection) -> Iterator[Any]:
        """A cursor on the admin connection to `conn` (autocommit, UTC); MariaDB's
        refusals become ProvisioningError, an unreachable server SinkUnavailable, both
        scrubbed of the admin password."""
        key = (conn.name, conn.dsn)
        try:
            with self._pool_lock:  # one admin connection per server, reused
                db = self._pool.get(key)
                if db is None or not db.open:
                    db = self._pool[key] = pymysql.connect(
                        **conn.params(), connect_timeout=CONNECT_TIMEOUT_S, autocommit=True,
                        init_command="SET time_zone = '+00:00'",
                    )  # fmt: skip
                with db.cursor() as cur:
                    yield cur
        except pymysql.MySQLError as e:
            code = e.args[0] if e.args and isinstance(e.args[0], int) else 0
            text = conn.scrub(str(e.args[1] if len(e.args) > 1 else e)).strip()
            if code >= 2000 or code in UNAVAILABLE or isinstance(e, pymysql.InterfaceError):
                self._forget(key)
                raise SinkUnavailable(
                    f"MariaDB connection {conn.name} cannot be used: {text}"
                ) from None
            if code == 1049:
                raise ProvisioningError(f"connection {conn.name}: {text}", str(code)) from None
            raise ProvisioningError(f"MariaDB ({conn.name}) refused: {text}", str(code)) from None

    def _forget(self, key: tuple[str, str]) -> None:
        with self._pool_lock:
            db = self._pool.pop(key, None)
        if db is not None:
            with contextlib.suppress(pymysql.MySQLError):
                db.close()

    def close(self) -> None:
        """Close the admin connections."""
        for key in list(self._pool):
            self._forget(key)


def _privileges(cur: Any, user: str, host: str) -> list[str]:
    """What the account holds, as `db.table:PRIVILEGE`; on a whole database `db.*:...`,
    on the server `*.*:...` (from the grant tables themselves)."""
    cur.execute(
        "SELECT Db, Table_name, Table_priv FROM mysql.tables_priv WHERE User = %s AND Host = %s",
        [user, host],
    )
    held = [
        f"{db}.{table}:{p.upper()}"
        for db, table, privs in cur.fetchall()
        for p in str(privs).split(",")
        if p
    ]
    cur.execute("SELECT Db FROM mysql.db WHERE User = %s AND Host = %s", [user, host])
    held += [f"{db}.*:ANY" for (db,) in cur.fetchall()]
    cur.execute(
        "SELECT JSON_VALUE(Priv, '$.access') FROM mysql.global_priv WHERE User = %s AND Host = %s",
        [user, host],
    )
    row = cur.fetchone()
    if row and row[0] not in (None, "0"):
        held.append("*.*:ANY")
    return sorted(held)


def parse_dsn(dsn: str) -> None:
    """Raise DataVisaError unless `dsn` is a mysql:// URL with a host (config checks)."""
    url = urlsplit(dsn)
    if url.scheme not in ("mysql", "mariadb") or not url.hostname:
        raise DataVisaError("the dsn must be a mysql:// URL naming the server")


__all__ = ["KIND", "MANAGED", "ROLE_PREFIX", "SINK", "Connection", "MariadbSink", "native_hash"]
