"""The audit trail: one event per state change, hash-chained so edits show.

Each event's hash covers its own content and the previous event's hash, so editing,
deleting or reordering any event breaks every hash after it. Events are appended inside
the same transaction as the change they record. `db` is a store's connection (the
table is in the store's schema); appends queue on the store's write lock, so the trail
stays one chain however many engines write it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

GENESIS = "0" * 64
_HASHED = ("seq", "at", "actor", "event", "request_id", "detail", "decision_id", "revision")


def _digest(prev_hash: str, row: dict[str, Any]) -> str:
    content = json.dumps({k: row[k] for k in _HASHED}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256((prev_hash + content).encode()).hexdigest()


def append(
    db: Any,
    *,
    at: float,
    actor: str,
    event: str,
    request_id: str | None,
    detail: dict[str, Any],
    decision_id: str | None = None,
    revision: str | None = None,
) -> dict[str, Any]:
    """Append one event; call inside the transaction of the change it records."""
    last = db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS)
    row = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "event": event,
        "request_id": request_id,
        "detail": json.dumps(detail, sort_keys=True),
        "decision_id": decision_id,
        "revision": revision,
        "prev_hash": prev_hash,
    }
    row["hash"] = _digest(prev_hash, row)
    db["audit"].insert(row)
    return row


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    problem: str | None = None


def verify(db: Any) -> Verdict:
    """Walk the chain from the first event; report the first one that does not fit."""
    prev_hash, expected_seq, checked = GENESIS, 1, 0
    for row in db["audit"].rows_where(order_by="seq"):
        if row["seq"] != expected_seq:
            return Verdict(False, checked, row["seq"], f"expected event {expected_seq} here")
        if row["prev_hash"] != prev_hash:
            return Verdict(False, checked, row["seq"], "does not follow the event before it")
        if row["hash"] != _digest(prev_hash, row):
            return Verdict(False, checked, row["seq"], "content does not match its hash")
        prev_hash, expected_seq, checked = row["hash"], expected_seq + 1, checked + 1
    return Verdict(True, checked)


def trail(db: Any, request_id: str | None = None) -> list[dict[str, Any]]:
    where, params = ("request_id = ?", [request_id]) if request_id else (None, [])
    rows = db["audit"].rows_where(where, params, order_by="seq")
    return [{**r, "detail": json.loads(r["detail"])} for r in rows]
