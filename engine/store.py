"""The SQLite store, through sqlite-utils: requests (which become grants), approvals, audit.

Every state change runs inside `transaction()`: one immediate transaction, so concurrent
writers queue on SQLite's lock (WAL mode, busy timeout) instead of interleaving.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import sqlite_utils

BUSY_TIMEOUT_S = 10.0


@dataclass
class Request:
    """An access request; once its quorum is met it is also the grant (same id)."""

    id: str
    requester: str
    resource: str
    actions: list[str]
    location: str
    countries: list[str]
    reason: str
    duration_s: int
    state: str
    created_at: float
    pending_until: float
    approvals_required: list[dict[str, Any]]
    revision: str
    decision_id: str | None = None
    activated_at: float | None = None
    expires_at: float | None = None
    ended_at: float | None = None

    _JSON = ("actions", "countries", "approvals_required")

    def to_row(self) -> dict[str, Any]:
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in self._JSON:
            row[name] = json.dumps(row[name])
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Request:
        values = dict(row)
        for name in cls._JSON:
            values[name] = json.loads(values[name])
        return cls(**values)


@dataclass
class Approval:
    request_id: str
    approver: str
    verdict: str  # approve | deny
    at: float
    decision_id: str | None


class Store:
    """One SQLite file; each thread gets a connection of its own, so threads may share it."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._open: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()
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
            db = self._local.db = sqlite_utils.Database(conn)
            with self._lock:
                self._open.append(db)
        return db

    def _create_schema(self) -> None:
        db = self.db
        if "requests" not in db.table_names():
            db["requests"].create(
                {
                    "id": str,
                    "requester": str,
                    "resource": str,
                    "actions": str,
                    "location": str,
                    "countries": str,
                    "reason": str,
                    "duration_s": int,
                    "state": str,
                    "created_at": float,
                    "pending_until": float,
                    "approvals_required": str,
                    "revision": str,
                    "decision_id": str,
                    "activated_at": float,
                    "expires_at": float,
                    "ended_at": float,
                },
                pk="id",
                not_null={"requester", "resource", "state", "created_at"},
            )
            db["requests"].create_index(["requester", "resource", "state"])
            db["requests"].create_index(["state"])
        if "approvals" not in db.table_names():
            db["approvals"].create(
                {
                    "request_id": str,
                    "approver": str,
                    "verdict": str,
                    "at": float,
                    "decision_id": str,
                },
                pk=("request_id", "approver"),
                foreign_keys=[("request_id", "requests", "id")],
            )
        if "audit" not in db.table_names():
            db["audit"].create(
                {
                    "seq": int,
                    "at": float,
                    "actor": str,
                    "event": str,
                    "request_id": str,
                    "detail": str,
                    "decision_id": str,
                    "revision": str,
                    "prev_hash": str,
                    "hash": str,
                },
                pk="seq",
            )
            db["audit"].create_index(["request_id"])

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """One immediate transaction: taken the write lock at once, all or nothing."""
        conn = self.db.conn
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

    def requests(self, where: str | None = None, params: list[Any] | None = None) -> list[Request]:
        rows = self.db["requests"].rows_where(where, params or [], order_by="created_at")
        return [Request.from_row(r) for r in rows]

    def approvals(self, request_id: str) -> list[Approval]:
        rows = self.db["approvals"].rows_where("request_id = ?", [request_id], order_by="at")
        return [Approval(**r) for r in rows]

    def close(self) -> None:
        with self._lock:
            for db in self._open:
                db.close()
            self._open.clear()
        self._local = threading.local()
