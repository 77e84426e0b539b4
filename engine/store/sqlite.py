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

from ..model.records import Approval, Request

BUSY_TIMEOUT_S = 10.0


def _columns(record: type) -> dict[str, type]:
    """SQLite column types from a dataclass's annotations (`str | None` -> str)."""
    out = {}
    for f in fields(record):
        hint = str(f.type).split(" | ")[0]
        out[f.name] = {"int": int, "float": float}.get(hint, str)
    return out


class Store:
    """One SQLite file; each thread gets a connection of its own, so threads may share it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # Every connection opened, with the thread it belongs to: a thread that ends (a
        # server's worker threads come and go) leaves its connection here, and the next
        # connection opened closes it, so they do not pile up, each with its page cache.
        self._open: list[tuple[threading.Thread, sqlite_utils.Database]] = []
        self._lock = threading.Lock()
        self._writer = threading.RLock()
        self.db.enable_wal()
        self._create_schema()

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            # isolation_level=None: transactions are ours (BEGIN IMMEDIATE), never implicit.
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            # Per connection: in WAL mode a NORMAL commit survives the process being killed
            # (the decision log's promise) without an fsync each; a power cut may lose the
            # last few.
            conn.execute("PRAGMA synchronous=NORMAL")
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
        # A subject's live grants, read on every push to OPA: without this index SQLite
        # would walk every active grant (31 ms at 100,000) instead of one subject's.
        db["requests"].create_index(["requester", "state"], if_not_exists=True)
        if "approvals" not in db.table_names():
            db["approvals"].create(
                _columns(Approval),
                pk=("request_id", "approver", "verdict"),
                foreign_keys=[("request_id", "requests", "id")],
            )
        if "cursors" not in db.table_names():
            # How far a reader of an append-only table (the monitor, the notifier) has got.
            db["cursors"].create({"name": str, "seq": int}, pk="name")

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One immediate transaction: taken the write lock at once, all or nothing.

        Threads of this process queue on a Python lock first: SQLite's own busy wait sleeps
        in steps of up to 100 ms, which under concurrent decisions became the tail latency.
        Other processes still meet SQLite's lock and its busy timeout.
        """
        conn = self.db.conn
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

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
