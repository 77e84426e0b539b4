"""The SQLite store, through sqlite-utils: requests (which become grants) and approvals.

Every state change runs inside `transaction()`: one immediate transaction, so concurrent
writers queue on SQLite's lock (WAL mode, busy timeout) instead of interleaving.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from ..model.errors import StorageUnavailable
from . import base

BUSY_TIMEOUT_S = 10.0


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


class Store(base.Store):
    """One SQLite file; each thread gets a connection of its own, so threads may share it."""

    dialect = "sqlite"

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        """The store in the SQLite file at `path`, made (with its schema) when missing;
        `readonly` opens an existing file for reading only and changes nothing in it."""
        self.path = Path(path)
        self.location = str(self.path)
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
                self._identity = _identity(self.path)
                self.migrate()
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

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.db.execute(f'PRAGMA table_info("{table}")').fetchall()}

    def json_array_has(self, column: str) -> str:
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE value = ?)"

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

    def close(self) -> None:
        with self._lock:
            for _, db in self._open:
                db.close()
            self._open.clear()
        self._local = threading.local()
