"""The SQLite store, through sqlite-utils: requests (which become grants) and approvals.

Every state change runs inside `transaction()`: one immediate transaction, so concurrent
writers queue on SQLite's lock (WAL mode, busy timeout) instead of interleaving.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import Any

import sqlite_utils

from ..model.errors import StorageUnavailable
from ..model.records import Approval, GrantChange, Request

BUSY_TIMEOUT_S = 10.0


def _columns(record: type) -> dict[str, type]:
    """SQLite column types from a dataclass's annotations (`str | None` -> str)."""
    out = {}
    for f in fields(record):
        hint = str(f.type).split(" | ")[0]
        out[f.name] = {"int": int, "float": float}.get(hint, str)
    return out


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_dev, st.st_ino


# SQLite's words for storage that cannot take a write (SQLITE_FULL, _IOERR, _READONLY,
# _CANTOPEN); other operational errors (a syntax error, a lock timeout) are not this.
_FAULTS = ("full", "disk i/o", "readonly", "read-only", "unable to open", "no such table")


def _is_storage_fault(e: sqlite3.Error) -> bool:
    return any(word in str(e).lower() for word in _FAULTS)


def _why(e: BaseException) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e)


class Store:
    """One SQLite file; each thread gets a connection of its own, so threads may share it."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        """The store in the SQLite file at `path`, made (with its schema) when missing;
        `readonly` opens an existing file for reading only and changes nothing in it."""
        self.path = Path(path)
        self.readonly = readonly
        self._local = threading.local()
        # Every connection opened, with the thread it belongs to: a thread that ends (a
        # server's worker threads come and go) leaves its connection here, and the next
        # connection opened closes it, so they do not pile up, each with its page cache.
        self._open: list[tuple[threading.Thread, sqlite_utils.Database]] = []
        self._lock = threading.Lock()
        self._writer = threading.RLock()
        # Why the last write failed (None once one succeeds): for /health.
        self.write_error: str | None = None
        try:
            if readonly:
                self.db.execute("SELECT 1 FROM requests LIMIT 1")  # there, and a store's
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db.enable_wal()
                self._create_schema()
        except (OSError, sqlite3.Error) as e:
            raise StorageUnavailable(f"cannot open the database {self.path}: {_why(e)}") from e
        self._identity = _identity(self.path)

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), never implicit.
            where = f"file:{self.path}?mode=ro" if self.readonly else str(self.path)
            conn = sqlite3.connect(
                where,
                timeout=BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
                uri=self.readonly,
            )
            conn.execute("PRAGMA synchronous=FULL")
            self._local.synchronous = "FULL"
            db = self._local.db = sqlite_utils.Database(conn)
            with self._lock:
                gone = [(t, d) for t, d in self._open if not t.is_alive()]
                self._open = [(t, d) for t, d in self._open if t.is_alive()]
                self._open.append((threading.current_thread(), db))
            for _, old in gone:
                old.close()
        return db

    def connections(self) -> int:
        """How many connections are open (one per live thread that used the store)."""
        with self._lock:
            return len(self._open)

    def _create_schema(self) -> None:
        db = self.db
        if "requests" not in db.table_names():
            db["requests"].create(
                _columns(Request),
                pk="id",
                not_null={"requester", "resource", "state", "created_at", "kind"},
            )
            db["requests"].create_index(["requester", "resource", "state"])
            db["requests"].create_index(["state"])
            db["requests"].create_index(["parent_id"])
        # Columns added since a database was made (a field added to the record).
        missing = _columns(Request).keys() - db["requests"].columns_dict.keys()
        for name in sorted(missing):
            db["requests"].add_column(name, _columns(Request)[name])
        # A subject's live grants, read on every push to OPA: without this index SQLite
        # would walk every active grant (31 ms at 100,000) instead of one subject's.
        db["requests"].create_index(["requester", "state"], if_not_exists=True)
        if "outbox" not in db.table_names():
            # Every change to the live grants, in the transaction that made it; each sink
            # has a cursor (`sink:<name>`) saying how far it has applied them.
            db["outbox"].create(
                {"seq": int, "at": float, "subject": str, "grant_id": str, "change": str},
                pk="seq",
                not_null={"at", "subject", "grant_id", "change"},
            )
        if "approvals" not in db.table_names():
            db["approvals"].create(
                _columns(Approval),
                pk=("request_id", "approver", "verdict"),
                foreign_keys=[("request_id", "requests", "id")],
            )
        if "idempotency" not in db.table_names():
            # Answers to state-changing calls made with an Idempotency-Key, for retries.
            db["idempotency"].create(
                {"key": str, "request_hash": str, "status": int, "body": bytes, "at": float},
                pk="key",
                not_null={"request_hash", "status", "body", "at"},
            )
            db["idempotency"].create_index(["at"])
        if "cursors" not in db.table_names():
            # How far a reader of an append-only table (the monitor, the notifier) has got.
            db["cursors"].create({"name": str, "seq": int}, pk="name")
        self._create_connector_schema()

    # -- connectors (engine/connectors): what a data system holds of each grant -----------
    def _create_connector_schema(self) -> None:
        db = self.db
        if "provisioning" not in db.table_names():
            # Where a sink stands with one grant: provisioned, failed (why), removed, kept
            # (disabled, it owns objects), abandoned (an admin gave the removal up), and
            # when its credentials were last issued. Never a password.
            db["provisioning"].create(
                {"sink": str, "grant_id": str, "state": str, "detail": str, "at": float,
                 "credentials_at": float},
                pk=("sink", "grant_id"),
                not_null={"state", "at"},
            )  # fmt: skip
        if "session_activity" not in db.table_names():
            # What a provisioned role did, as the data system logged it (masked).
            db["session_activity"].create(
                {"seq": int, "grant_id": str, "at": float, "sink": str, "session": str,
                 "database": str, "statement": str},
                pk="seq",
                not_null={"grant_id", "at", "statement"},
            )  # fmt: skip
            db["session_activity"].create_index(["grant_id", "seq"])

    def set_provisioning(
        self, sink: str, grant_id: str, state: str, detail: str, at: float
    ) -> None:
        """Record where `sink` stands with `grant_id` (its own small transaction)."""
        with self.transaction(durable=False) as db:
            db.execute(
                "INSERT INTO provisioning (sink, grant_id, state, detail, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(sink, grant_id) DO UPDATE SET "
                "state = excluded.state, detail = excluded.detail, at = excluded.at",
                [sink, grant_id, state, detail, at],
            )

    def set_credentials_issued(self, sink: str, grant_id: str, at: float) -> None:
        with self.transaction(durable=False) as db:
            db.execute(
                "UPDATE provisioning SET credentials_at = ? WHERE sink = ? AND grant_id = ?",
                [at, sink, grant_id],
            )

    def provisioning(self, grant_id: str) -> list[dict[str, Any]]:
        """Every sink's standing with `grant_id`, by sink name."""
        return list(self.db["provisioning"].rows_where("grant_id = ?", [grant_id], order_by="sink"))

    def provisioning_in(self, state: str) -> list[dict[str, Any]]:
        return list(self.db["provisioning"].rows_where("state = ?", [state], order_by="at"))

    def add_activity(self, rows: list[dict[str, Any]], cursor: str, seq: int) -> None:
        """Append session activity rows {grant_id, at, sink, session, database, statement}
        and move the reader `cursor` to `seq`, together."""
        columns = ("grant_id", "at", "sink", "session", "database", "statement")
        with self.transaction(durable=False) as db:
            for row in rows:  # SQL both stores speak
                db.execute(
                    f"INSERT INTO session_activity ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' * len(columns))})",
                    [row[c] for c in columns],
                )
            self.set_cursor(cursor, seq)

    def activity(
        self, grant_id: str | None = None, after: int = 0, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Session activity after `after`, oldest first; of one grant or all."""
        where, params = "seq > ?", [after]
        if grant_id is not None:
            where, params = where + " AND grant_id = ?", [after, grant_id]
        return list(
            self.db["session_activity"].rows_where(where, params, order_by="seq", limit=limit)
        )

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[sqlite_utils.Database]:
        """One immediate transaction: taken the write lock at once, all or nothing.

        A durable commit (synchronous=FULL: the WAL is synced before COMMIT returns) survives
        a power cut; every state change is one. `durable=False` (NORMAL) survives the process
        being killed, not a power cut, and saves an fsync: for records written on every
        access check (the decision log) and for readers' cursors. The WAL is one sequential
        file, so the next durable commit makes every commit before it durable too.

        Threads of this process queue on a Python lock first: SQLite's own busy wait sleeps
        in steps of up to 100 ms, which under concurrent decisions became the tail latency.
        Other processes still meet SQLite's lock and its busy timeout.
        """
        self.check_file()
        conn = self.db.conn
        synchronous = "FULL" if durable else "NORMAL"
        if self._local.synchronous != synchronous:  # per connection, outside a transaction
            conn.execute(f"PRAGMA synchronous={synchronous}")
            self._local.synchronous = synchronous
        with self._writer:
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.db
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                if not _is_storage_fault(e):
                    raise
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self.write_error = _why(e)
                raise StorageUnavailable(f"the database cannot take writes: {_why(e)}") from e
        self.write_error = None

    def check_file(self) -> None:
        """Raise StorageUnavailable when the database file is gone or another file stands
        in its place: a write would land in a file nobody reads again."""
        if _identity(self.path) != self._identity:
            self.write_error = "the database file was deleted or replaced under the server"
            raise StorageUnavailable(self.write_error)

    def problems(self) -> list[str]:
        """Why the store cannot keep a write now; empty when it can."""
        try:
            self.check_file()
            self.db.execute("SELECT 1").fetchone()
        except (StorageUnavailable, sqlite3.Error) as e:
            return [f"the database cannot be used: {e}"]
        return [f"the last write failed: {self.write_error}"] if self.write_error else []

    def get(self, request_id: str) -> Request | None:
        rows = list(self.db["requests"].rows_where("id = ?", [request_id]))
        return Request.from_row(rows[0]) if rows else None

    def requests(
        self,
        where: str | None = None,
        params: list[Any] | None = None,
        *,
        order_by: str = "created_at, id",
        limit: int | None = None,
    ) -> list[Request]:
        rows = self.db["requests"].rows_where(where, params or [], order_by=order_by, limit=limit)
        return [Request.from_row(r) for r in rows]

    def update(self, request_id: str, changes: dict[str, Any]) -> None:
        """Change columns of one request; call inside `transaction()`."""
        row = Request.to_row_values(changes)
        self.db["requests"].update(request_id, row)

    def approvals(self, request_id: str) -> list[Approval]:
        rows = self.db["approvals"].rows_where("request_id = ?", [request_id], order_by="at")
        return [Approval(**r) for r in rows]

    def add_grant_change(self, at: float, subject: str, grant_id: str, change: str) -> int:
        """Append a change to the grant outbox; call inside the change's `transaction()`."""
        cursor = self.db.execute(
            "INSERT INTO outbox (at, subject, grant_id, change) VALUES (?, ?, ?, ?)",
            [at, subject, grant_id, change],
        )
        return int(cursor.lastrowid)

    def grant_changes(self, after: int, limit: int = 1000) -> list[GrantChange]:
        """Outbox rows after `after`, oldest first."""
        rows = self.db.execute(
            "SELECT seq, at, subject, grant_id, change FROM outbox WHERE seq > ? "
            "ORDER BY seq LIMIT ?",
            [after, limit],
        ).fetchall()
        return [GrantChange(*row) for row in rows]

    def forget_grant_changes(self, before: int) -> int:
        """Delete the outbox rows before `before` (every sink has applied them); how many.
        The row at `before` stays, so the next row's seq still follows it (a rowid after
        the largest one left)."""
        with self.transaction(durable=False) as db:
            return db.execute("DELETE FROM outbox WHERE seq < ?", [before]).rowcount

    def grant_changes_head(self) -> int:
        """The newest outbox row's seq, 0 when there is none."""
        return self.db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0]

    def answered(self, key: str) -> tuple[str, int, bytes] | None:
        """The (request hash, status, body) once answered under an idempotency key."""
        row = self.db.execute(
            "SELECT request_hash, status, body FROM idempotency WHERE key = ?", [key]
        ).fetchone()
        return None if row is None else (row[0], row[1], bytes(row[2]))

    def remember_answer(
        self, key: str, request_hash: str, status: int, body: bytes, at: float, keep_s: float
    ) -> None:
        """Keep an answer under its idempotency key; forget those older than `keep_s`."""
        with self.transaction(durable=False) as db:
            db.execute("DELETE FROM idempotency WHERE at < ?", [at - keep_s])
            db.execute(
                "INSERT OR IGNORE INTO idempotency (key, request_hash, status, body, at) "
                "VALUES (?, ?, ?, ?, ?)",
                [key, request_hash, status, body, at],
            )

    def cursor(self, name: str) -> int | None:
        """How far the reader `name` has got, or None before it first started."""
        row = self.db.execute("SELECT seq FROM cursors WHERE name = ?", [name]).fetchone()
        return None if row is None else row[0]

    def set_cursor(self, name: str, seq: int) -> None:
        """Move the reader `name` on to `seq`, never back; call inside `transaction()`."""
        self.db.execute(
            "INSERT INTO cursors (name, seq) VALUES (?, ?) "
            "ON CONFLICT(name) DO UPDATE SET seq = max(seq, excluded.seq)",
            [name, seq],
        )

    def close(self) -> None:
        with self._lock:
            for _, db in self._open:
                db.close()
            self._open.clear()
        self._local = threading.local()
