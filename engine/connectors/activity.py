"""What provisioned roles did: the statements PostgreSQL itself logged for them, and
those MariaDB's audit plugin logged for its managed accounts.

Every managed role runs with `log_statement = all` (set on the role at creation), so the
server writes each statement it runs to its log. `StatementTail` reads the server's
`jsonlog` files (the connection's `log_dir`) from where it left off, keeps the lines of
managed roles (`dv_<grant id>`), masks each statement with the decision-log mask
(system.log: string literals erased) and records it against the grant as session
activity. Where it got to in each file is a store cursor, so a restart neither loses nor
repeats a line.

A MariaDB connection's `audit_log` is the file of the `server_audit` plugin, which the
connector keeps logging the QUERY events of the managed accounts only
(`server_audit_incl_users`); its lines are read the same way (`parse_audit_line`).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..ledger.decision_log import apply_mask
from ..model.worker import Worker
from ..policy.opa import OpaClient, OpaUnavailable
from ..store import Store
from . import mariadb
from .postgresql import ROLE_PREFIX, SINK, Connection

log = logging.getLogger("datavisa.activity")

MASKS = "datavisa/logged/statement_masks"
# How the server logs a statement: simple protocol, or the extended one's execute step.
_STATEMENT = re.compile(r"^(?:statement|execute [^:]*): (.*)$", re.DOTALL)
MAX_STATEMENT = 4000  # characters kept of one statement
CHUNK = 1 << 20  # bytes read from a log file at a time


def parse_line(line: str) -> dict[str, Any] | None:
    """A jsonlog line as {role, grant_id, at, session, database, statement}, when it is a
    statement a managed role ran; else None."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    role = record.get("user")
    if not isinstance(role, str) or not role.startswith(ROLE_PREFIX):
        return None
    found = _STATEMENT.match(str(record.get("message", "")))
    if found is None:
        return None
    return {
        "role": role,
        "grant_id": role.removeprefix(ROLE_PREFIX),
        "timestamp": str(record.get("timestamp", "")),
        "session": str(record.get("session_id", "")),
        "database": str(record.get("dbname", "")),
        "statement": found.group(1)[:MAX_STATEMENT],
    }


def parse_audit_line(line: str) -> dict[str, Any] | None:
    """A server_audit line (`20261207 17:35:33,host,user,from,connection,query,QUERY,db,
    'statement',retcode`) as parse_line gives it, when it is a statement a managed
    account ran; else None."""
    head = line.split(",", 8)
    if len(head) < 9 or head[6] != "QUERY" or not head[2].startswith(ROLE_PREFIX):
        return None
    quoted, _, _code = head[8].rstrip("\n").rpartition(",")
    if len(quoted) < 2 or not (quoted.startswith("'") and quoted.endswith("'")):
        return None
    statement = quoted[1:-1].replace("\\'", "'").replace("\\\\", "\\")
    try:
        at = datetime.strptime(head[0], "%Y%m%d %H:%M:%S")
    except ValueError:
        return None
    return {
        "role": head[2],
        "grant_id": head[2].removeprefix(ROLE_PREFIX),
        # The plugin writes the server's local time; the throwaway and the usual servers
        # run in UTC (a server elsewhere: set its TZ, docs/mariadb.md).
        "timestamp": at.strftime("%Y-%m-%d %H:%M:%S.000 UTC"),
        "session": head[4],
        "database": head[7],
        "statement": statement[:MAX_STATEMENT],
    }


def _epoch(timestamp: str) -> float | None:
    """jsonlog's `2026-12-01 22:31:25.123 UTC` as epoch seconds."""
    try:
        when = datetime.strptime(timestamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S.%f")
    except ValueError:
        return None
    return when.replace(tzinfo=UTC).timestamp()


class StatementTail(Worker):
    """Records what managed roles ran, read from each connection's server log."""

    def __init__(
        self,
        connections: dict[str, Connection],
        store: Store,
        opa: OpaClient | None,
        clock: Callable[[], float],
        every_s: float = 0.2,
    ) -> None:
        self.connections = {
            n: c for n, c in connections.items() if getattr(c, "log_dir", None) is not None
        }
        self.audit_logs = {
            n: c.audit_log for n, c in connections.items()
            if isinstance(c, mariadb.Connection) and c.audit_log is not None
        }  # fmt: skip
        self.store, self.opa, self.clock, self.every_s = store, opa, clock, every_s
        # Called with the rows just recorded (the monitor's rules, `watch`).
        self.listeners: list[Callable[[list[dict[str, Any]]], None]] = []
        super().__init__("statement-tail")

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll()
            except Exception:  # a log file, OPA or the store: try again, never die
                log.exception("reading the database logs failed")

    def poll(self) -> list[dict[str, Any]]:
        """Read what was logged since the last poll; the activity rows recorded."""
        recorded: list[dict[str, Any]] = []
        for conn in self.connections.values():
            for path in sorted(Path(conn.log_dir).glob("*.json")):  # type: ignore[arg-type]
                recorded += self._read(path)
        for audit_log in self.audit_logs.values():
            recorded += self._read(Path(audit_log), parse_audit_line, mariadb.SINK)
        if recorded:
            for listener in self.listeners:
                listener(recorded)
        return recorded

    def _read(
        self, path: Path, parse: Callable[[str], dict[str, Any] | None] = parse_line,
        sink: str = SINK,
    ) -> list[dict[str, Any]]:  # fmt: skip
        cursor = f"activity:{path}"
        offset = self.store.cursor(cursor) or 0
        if parse is not parse_line and not path.exists():
            return []  # the audit plugin has logged nothing yet
        try:
            if path.stat().st_size < offset:
                offset = 0  # rotated (server_audit renames it): a new file from its start
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read(CHUNK)
        except OSError as e:
            log.warning("cannot read %s: %s", path, e.strerror or e)
            return []
        end = chunk.rfind(b"\n")
        if end < 0:
            return []  # no whole line yet
        lines = chunk[: end + 1].decode("utf-8", "replace").splitlines()
        found = [p for p in map(parse, lines) if p is not None]
        rows = self._masked(found, sink) if found else []
        self.store.add_activity(rows, cursor, offset + end + 1)
        return rows

    def _masked(self, found: list[dict[str, Any]], sink: str = SINK) -> list[dict[str, Any]]:
        """The activity rows, each statement masked as policy says; unmasked nothing is
        kept: when OPA cannot say, the statement is withheld."""
        asked = [{"statement": f["statement"], "grant_id": f["grant_id"]} for f in found]
        try:
            masks = self.opa.query(MASKS, {"batch": asked}).result if self.opa else None
        except OpaUnavailable as e:
            log.warning("cannot mask statements: %s", e)
            masks = None
        if not isinstance(masks, list) or len(masks) != len(asked):
            withheld = {"op": "upsert", "path": "/input/statement", "value": "(withheld: no mask)"}
            masks = [[withheld]] * len(asked)
        now = self.clock()
        return [
            {
                "grant_id": f["grant_id"],
                "at": _epoch(f["timestamp"]) or now,
                "sink": sink,
                "session": f["session"],
                "database": f["database"],
                "statement": apply_mask({"input": a}, m)["input"]["statement"],
            }
            for f, a, m in zip(found, asked, masks, strict=True)
        ]
