"""What provisioned roles did: the statements PostgreSQL itself logged for them.

Every managed role runs with `log_statement = all` (set on the role at creation), so the
server writes each statement it runs to its log. `StatementTail` reads the server's
`jsonlog` files (the connection's `log_dir`) from where it left off, keeps the lines of
managed roles (`dv_<grant id>`), masks each statement with the decision-log mask
(system.log: string literals erased) and records it against the grant as session
activity. Where it got to in each file is a store cursor, so a restart neither loses nor
repeats a line.
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
        if recorded:
            for listener in self.listeners:
                listener(recorded)
        return recorded

    def _read(self, path: Path) -> list[dict[str, Any]]:
        cursor = f"activity:{path}"
        offset = self.store.cursor(cursor) or 0
        try:
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
        found = [p for p in map(parse_line, lines) if p is not None]
        rows = self._masked(found) if found else []
        self.store.add_activity(rows, cursor, offset + end + 1)
        return rows

    def _masked(self, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
                "sink": SINK,
                "session": f["session"],
                "database": f["database"],
                "statement": apply_mask({"input": a}, m)["input"]["statement"],
            }
            for f, a, m in zip(found, asked, masks, strict=True)
        ]
