"""The decision log: every decision once, masked, hash-chained, checkpointed, queryable.

Two sources feed one append-only table. The engine records each decision it asks OPA
before it answers (`record_many`), masked by the Rego mask policy (rego/system/log) that OPA
evaluated with the decision. OPA servers that services query directly upload their
decision-log events to the engine (`ingest`, OPA's own plugin, gzip JSON arrays); a
decision id seen before is skipped, so retried uploads land once.

Records keep OPA's decision-log event format (decision_id, path, input, result,
timestamp, bundles, labels, requested_by, erased, masked, custom), so OPA tooling reads
an export. Each record's hash covers its content and the previous hash; signed
checkpoints (HMAC-SHA256 with the log key) pin the chain, so an edit, a deletion, a
reordering or a truncated tail up to the last checkpoint is caught by `verify`.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..model import bounded
from ..model.durations import parse_rfc3339
from ..model.errors import DataVisaError
from ..store import Store, is_url

log = logging.getLogger("datavisa.decision_log")

GENESIS = "0" * 64
CHECKPOINT_EVERY = 100  # records between automatic checkpoints
KEY_ENV = "DATAVISA_LOG_KEY"
LOGGED_PREFIX = "datavisa/logged/"  # the engine's query paths: decision plus mask
_COLUMNS = (
    "seq", "decision_id", "at", "path", "subject", "resource", "allow", "reasons",
    "grant_id", "caller", "source", "revision", "event", "prev_hash",
)  # fmt: skip


EVENT_VALUE_BYTES = 64 * 1024  # an uploaded event's input, result, ... each, as JSON
EVENT_VALUE_DEPTH = 64  # ... and its levels of nesting
READ_DEPTH = 100  # a stored event deeper than this is shown cut (see `readable`)
_RFC3339 = re.compile(  # fullmatch: $ would let a trailing newline through
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
# OPA's decision-log event: its fields with a fixed shape, as (what it is, check, the
# JSON schema of it the API's document states: `EVENT_SCHEMA`).
_TEXT = ("a string", lambda v: isinstance(v, str), {"type": "string"})
_TEXTS = (
    "a list of strings",
    lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v),
    {"type": "array", "items": {"type": "string"}},
)
_OBJECT = ("an object", lambda v: isinstance(v, dict), {"type": "object"})
_EVENT_FIELDS: dict[str, tuple[str, Callable[[Any], bool], dict[str, Any]]] = {
    "decision_id": (
        "a non-empty string",
        lambda v: isinstance(v, str) and 0 < len(v) <= 256,
        {"type": "string", "minLength": 1, "maxLength": 256},
    ),
    "path": _TEXT,
    "query": _TEXT,
    "requested_by": _TEXT,
    "revision": _TEXT,
    "trace_id": _TEXT,
    "span_id": _TEXT,
    "timestamp": (
        "an RFC 3339 time",
        lambda v: isinstance(v, str) and bool(_RFC3339.fullmatch(v)) and _is_time(v),
        {"type": "string", "format": "date-time"},
    ),
    "labels": (
        "an object of strings",
        lambda v: isinstance(v, dict) and all(isinstance(x, str) for x in v.values()),
        {"type": "object", "additionalProperties": {"type": "string"}},
    ),
    "bundles": (
        "an object of bundles, each with a string revision",
        lambda v: (
            isinstance(v, dict)
            and all(
                isinstance(b, dict) and isinstance(b.get("revision", ""), str) for b in v.values()
            )
        ),
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {"revision": {"type": "string"}},
            },
        },
    ),
    "erased": _TEXTS,
    "masked": _TEXTS,
    "metrics": (
        "an object of numbers",
        lambda v: (
            isinstance(v, dict)
            and all(isinstance(x, int | float) and not isinstance(x, bool) for x in v.values())
        ),
        {"type": "object", "additionalProperties": {"type": "number"}},
    ),
    "req_id": (
        "a whole number of 64 bits",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    ),
    "custom": _OBJECT,
    "nd_builtin_cache": _OBJECT,
    "intermediate_results": _OBJECT,
}
# What an upload of them is, as the API's document states it; free-form parts (input,
# result, ...) are bounded by the server's `limits` besides.
EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["decision_id"],
    "properties": {name: shape[2] for name, shape in _EVENT_FIELDS.items()},
}


class BadEvent(DataVisaError):
    """An uploaded event that is not an OPA decision-log event within the limits."""

    def __init__(self, index: int, field: str, problem: str) -> None:
        super().__init__(
            f"event {index}: {field}: {problem}" if field else f"event {index}: {problem}"
        )
        self.index, self.field = index, field


def _is_time(text: str) -> bool:
    try:
        parse_rfc3339(text)
    except DataVisaError:
        return False
    return True


def check_events(events: list[Any], value_bytes: int, value_depth: int) -> None:
    """Raise BadEvent for the first event that is not OPA's decision-log event shape, or
    whose free-form parts (input, result, and any field OPA may add) are larger than
    `value_bytes` as JSON or deeper than `value_depth` levels."""
    for index, event in enumerate(events):
        if not isinstance(event, dict):
            raise BadEvent(index, "", "an event is a JSON object")
        if "decision_id" not in event:
            raise BadEvent(index, "decision_id", "every event needs one")
        for field, value in event.items():
            shape = _EVENT_FIELDS.get(field)
            if shape is not None and not shape[1](value):
                raise BadEvent(index, field, f"must be {shape[0]}")
            if why := bounded.problem(value, value_bytes, value_depth):
                raise BadEvent(index, field, why)


_STORED = (*_COLUMNS, "hash")
_INSERT = (
    f"INSERT INTO decision_log ({', '.join(_STORED)}) VALUES ({', '.join('?' * len(_STORED))})"
)


def load_key(db_path: Path | str) -> bytes:
    """The log key: $DATAVISA_LOG_KEY, else a key file beside the SQLite database, made
    once. A PostgreSQL database has no "beside", and the engines sharing it must sign
    with one key: there it must be given."""
    if env := os.environ.get(KEY_ENV):
        return env.encode()
    if is_url(db_path):
        raise DataVisaError(
            f"a PostgreSQL database needs the decision log's signing key in ${KEY_ENV}, "
            "the same for every engine (for a database moved from SQLite: the key in its "
            "<file>.logkey)"
        )
    path = key_file(db_path)
    if not path.exists():
        write_key(path, secrets.token_hex(32))
    return path.read_text().strip().encode()


def key_file(db_path: Path | str) -> Path:
    """Where the log key of the SQLite database at `db_path` is kept: beside it."""
    return Path(str(db_path) + ".logkey")


def write_key(path: Path, key: str) -> None:
    """Write a log key to a new file only its owner may read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key)


def apply_mask(event: dict[str, Any], mask: list[Any]) -> dict[str, Any]:
    """Apply OPA mask rules to an event: a pointer string erases, {op, path, value} upserts
    or removes. Records what was changed in `erased` and `masked`, as OPA does."""
    if not mask:
        return event  # the common case: nothing to hide, nothing to copy
    event = copy.deepcopy(event)
    for rule in sorted(mask, key=lambda r: json.dumps(r, sort_keys=True)):
        op, pointer = ("remove", rule) if isinstance(rule, str) else (rule["op"], rule["path"])
        keys = [k.replace("~1", "/").replace("~0", "~") for k in pointer.lstrip("/").split("/")]
        parent = event
        for key in keys[:-1]:
            if not isinstance(parent.get(key), dict):
                if op == "remove":
                    break
                parent[key] = {}
            parent = parent[key]
        else:
            if op == "remove" and keys[-1] in parent:
                del parent[keys[-1]]
                event.setdefault("erased", []).append(pointer)
            elif op == "upsert":
                parent[keys[-1]] = rule["value"]
                event.setdefault("masked", []).append(pointer)
    return event


def _now() -> tuple[float, str]:
    """Now, as epoch seconds and as the RFC 3339 text an event carries (the same instant)."""
    now = datetime.now(UTC)
    return now.timestamp(), now.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _new_ids(n: int) -> list[str]:
    """`n` random (version 4) UUIDs, from one read of the system's randomness: a batch of
    decisions OPA answered in one query needs an id each, and a read costs more than the
    rest of making an id."""
    raw = os.urandom(16 * n)
    return [str(uuid.UUID(bytes=raw[i : i + 16], version=4)) for i in range(0, 16 * n, 16)]


def event_epoch(event: dict[str, Any]) -> float:
    """An event's RFC 3339 timestamp as epoch seconds (now, when it has none)."""
    try:
        return parse_rfc3339(str(event.get("timestamp", "")))
    except DataVisaError:
        return time.time()


def _engine_event(
    *,
    path: str,
    input: Any,
    result: dict[str, Any],
    decision_id: str,
    mask: list[Any] | None,
    revision: str,
    caller: str | None,
    timestamp: str,
    custom: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The OPA-format event for a decision the engine asked, masked."""
    event: dict[str, Any] = {
        "decision_id": decision_id,
        "path": path,
        "input": input,
        "result": result,
        "timestamp": timestamp,
        "bundles": {"datavisa": {"revision": revision}},
        "labels": {"app": "datavisa", "version": __version__},
        "custom": {"source": "engine", **(custom or {})},
    }
    if caller:
        event["requested_by"] = caller
    event = apply_mask(event, mask or [])
    if mask is None:
        event.pop("input")
        event["erased"] = ["/input"]
    return event


def _digest(row: dict[str, Any]) -> str:
    content = json.dumps({k: row[k] for k in _COLUMNS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(content.encode()).hexdigest()


def _row(
    event: dict[str, Any], source: str, caller: str | None, at: float, last: tuple[int, str]
) -> dict[str, Any]:
    """The decision_log row of `event`, chained after `last` (seq, hash)."""
    inp = event.get("input") if isinstance(event.get("input"), dict) else {}
    res = event.get("result") if isinstance(event.get("result"), dict) else {}
    listed = res.get("reasons") if isinstance(res.get("reasons"), list) else []
    reasons = [r.get("code") for r in listed if isinstance(r, dict)]
    subjects = (_text(inp.get(k)) for k in ("subject", "requester", "approver", "supervisor"))
    row = {
        "seq": last[0] + 1,
        "decision_id": event["decision_id"],
        "at": at,
        "path": _text(event.get("path")),
        "subject": next((s for s in subjects if s), None),
        "resource": _text(inp.get("resource")),
        "allow": int(res["allow"]) if isinstance(res.get("allow"), bool) else None,
        "reasons": json.dumps(reasons),
        "grant_id": _text(res.get("grant_id")),
        "caller": caller or _text(event.get("requested_by")),
        "source": source,
        "revision": _revision(event),
        "event": json.dumps(event, sort_keys=True, separators=(",", ":")),
        "prev_hash": last[1],
    }
    row["hash"] = _digest(row)
    return row


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str | None = None


class DecisionLog:
    def __init__(self, store: Store, key: bytes, checkpoint_every: int = CHECKPOINT_EVERY):
        self.store, self.key, self.checkpoint_every = store, key, checkpoint_every
        # Called with the newest seq after records commit (the monitor wakes on it); they
        # must be quick, and a failing one never fails the decision that was recorded.
        self.listeners: list[Callable[[int], None]] = []

    # -- writing ----------------------------------------------------------------------

    def record_many(self, asked: list[dict[str, Any]]) -> list[str]:
        """Record decisions the engine asked, masked, in one transaction; their decision
        ids, in order. Each is `_engine_event`'s arguments; without a mask (OPA gave no
        answer) its input is not stored at all."""
        at, stamp = _now()
        ids = iter(_new_ids(sum(1 for one in asked if not one["decision_id"])))
        events = [
            _engine_event(**one | {"decision_id": one["decision_id"] or next(ids)}, timestamp=stamp)
            for one in asked
        ]
        with self.store.transaction(durable=False):
            head = self._append_all(
                [
                    (event, "engine", one["caller"], at)
                    for one, event in zip(asked, events, strict=True)
                ]
            )
        self._announce(head[0] if events else None)
        return [event["decision_id"] for event in events]

    def ingest(
        self,
        events: list[Any],
        value_bytes: int = EVENT_VALUE_BYTES,
        value_depth: int = EVENT_VALUE_DEPTH,
    ) -> tuple[int, int]:
        """Store OPA decision-log events, all or (BadEvent, see `check_events`) none;
        returns (stored, already known)."""
        check_events(events, value_bytes, value_depth)
        stored = 0
        with self.store.transaction(durable=False) as db:
            head = self._head()
            for event in events:
                known = "SELECT 1 FROM decision_log WHERE decision_id = ?"
                if not db.execute(known, [event["decision_id"]]).fetchone():
                    head = self._append(_from_logged(event), "opa", None, head)
                    stored += 1
        self._announce(head[0] if stored else None)
        return stored, len(events) - stored

    def _announce(self, seq: int | None) -> None:
        if seq is None:
            return
        for listener in self.listeners:
            try:
                listener(seq)
            except Exception:  # a listener's bug must not fail a decision already recorded
                log.exception("decision-log listener %r failed", listener)

    def _head(self) -> tuple[int, str]:
        """The last record's (seq, hash): where the next one chains on; inside a transaction."""
        db = self.store.db
        last = db.execute("SELECT seq, hash FROM decision_log ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            last = db.execute(
                "SELECT seq, hash FROM log_checkpoints WHERE kind = 'prune' "
                "ORDER BY seq DESC LIMIT 1"
            ).fetchone() or (0, GENESIS)
        return last[0], last[1]

    def _append(
        self, event: dict[str, Any], source: str, caller: str | None, last: tuple[int, str]
    ) -> tuple[int, str]:
        """Append one event after `last`; the new head. A decision id logged before is an
        IntegrityError (the unique index), which rolls the transaction back."""
        row = _row(event, source, caller, event_epoch(event), last)
        # Plain SQL on the hot path: sqlite-utils' insert inspects the table every call.
        self.store.db.execute(_INSERT, [row[c] for c in _STORED])
        return self._checkpointed(row)

    def _append_all(
        self, appended: list[tuple[dict[str, Any], str, str | None, float]]
    ) -> tuple[int, str]:
        """Append (event, source, caller, at) after the chain's head, in one statement; the
        new head. Inside a transaction."""
        head, rows = self._head(), []
        for event, source, caller, at in appended:
            rows.append(_row(event, source, caller, at, head))
            head = rows[-1]["seq"], rows[-1]["hash"]
        self.store.db.conn.executemany(_INSERT, [[row[c] for c in _STORED] for row in rows])
        for row in rows:
            self._checkpointed(row)
        return head

    def _checkpointed(self, row: dict[str, Any]) -> tuple[int, str]:
        """A row just appended, signed when its seq is due a periodic checkpoint; its
        (seq, hash), the chain's new head."""
        if row["seq"] % self.checkpoint_every == 0:
            self._checkpoint(row["seq"], row["hash"], "periodic")
        return row["seq"], row["hash"]

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the head of the chain now (serve does this every minute)."""
        with self.store.transaction():
            last = self.store.db.execute(
                "SELECT seq, hash FROM decision_log ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            if last is None:
                return None
            return self._checkpoint(last[0], last[1], "periodic")

    def _checkpoint(self, seq: int, hash_: str, kind: str) -> dict[str, Any]:
        at = time.time()
        row = {"seq": seq, "hash": hash_, "at": at, "kind": kind, "sig": self._sign(seq, hash_, at)}
        self.store.db["log_checkpoints"].upsert(row, pk="seq")
        return row

    def _sign(self, seq: int, hash_: str, at: float) -> str:
        return hmac.new(self.key, f"{seq}:{hash_}:{at!r}".encode(), hashlib.sha256).hexdigest()

    def prune(self, before: float) -> int:
        """Delete records older than `before`; a signed checkpoint anchors where the
        chain now starts, so what is left still verifies."""
        with self.store.transaction() as db:
            last = db.execute(
                "SELECT seq, hash FROM decision_log WHERE at < ? ORDER BY seq DESC LIMIT 1",
                [before],
            ).fetchone()
            if last is None:
                return 0
            gone = db.execute("DELETE FROM decision_log WHERE seq <= ?", [last[0]]).rowcount
            db.execute("DELETE FROM log_checkpoints WHERE seq <= ?", [last[0]])
            self._checkpoint(last[0], last[1], "prune")
        return gone

    # -- reading ----------------------------------------------------------------------

    def query(
        self,
        *,
        subject: str | None = None,
        resource: str | None = None,
        allow: bool | None = None,
        reason: str | None = None,
        grant_id: str | None = None,
        path: str | None = None,
        since: float | None = None,
        until: float | None = None,
        after: int = 0,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Events oldest first, after seq `after`, each with its `seq`."""
        clauses, params = ["seq > ?"], [after]
        for column, value in (
            ("subject", subject), ("resource", resource), ("grant_id", grant_id), ("path", path),
        ):  # fmt: skip
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if allow is not None:
            clauses.append("allow = ?")
            params.append(int(allow))
        if reason is not None:
            clauses.append(self.store.json_array_has("reasons"))
            params.append(reason)
        if since is not None:
            clauses.append("at >= ?")
            params.append(since)
        if until is not None:
            clauses.append("at < ?")
            params.append(until)
        rows = self.store.db.execute(
            f"SELECT {READ_COLUMNS} FROM decision_log WHERE {' AND '.join(clauses)} "
            "ORDER BY seq LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [readable(*row) for row in rows]

    def events(self, decision_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The recorded events of these decision ids, by id (ids the log lacks are left
        out: pruned, or never recorded)."""
        ids, found = sorted(set(decision_ids)), {}
        for at in range(0, len(ids), 500):  # well under every database's parameter limit
            chunk = ids[at : at + 500]
            rows = self.store.db.execute(
                f"SELECT {READ_COLUMNS} FROM decision_log "
                f"WHERE decision_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            ).fetchall()
            found.update((row[1], readable(*row)) for row in rows)
        return found

    def verify(self) -> Verdict:
        """Check every checkpoint's signature, the chain, and that no checkpoint names a
        record that is gone; report the first thing wrong."""
        db = self.store.db
        checkpoints = list(db["log_checkpoints"].rows_where(order_by="seq"))
        checked = 0

        def bad(seq: int, problem: str) -> Verdict:
            return Verdict(False, checked, len(checkpoints), seq, problem)

        for cp in checkpoints:
            if not hmac.compare_digest(cp["sig"], self._sign(cp["seq"], cp["hash"], cp["at"])):
                return bad(cp["seq"], "checkpoint signature is wrong (or the log key changed)")
        anchors = [cp for cp in checkpoints if cp["kind"] == "prune"]
        seq, prev = (anchors[-1]["seq"], anchors[-1]["hash"]) if anchors else (0, GENESIS)
        pinned = {cp["seq"]: cp["hash"] for cp in checkpoints if cp["seq"] > seq}
        for row in db["decision_log"].rows_where(order_by="seq"):
            seq += 1
            if row["seq"] != seq:
                return bad(row["seq"], f"expected record {seq} here")
            if row["prev_hash"] != prev or row["hash"] != _digest(row):
                return bad(seq, "record does not match its hash chain")
            if pinned.pop(seq, row["hash"]) != row["hash"]:
                return bad(seq, "record differs from its checkpoint")
            prev, checked = row["hash"], checked + 1
        if pinned:
            return bad(
                min(pinned), "the log ends before this checkpointed record: its tail was cut"
            )
        return Verdict(True, checked, len(checkpoints))


READ_COLUMNS = "seq, decision_id, path, at, event"  # what `readable` takes, in order


def readable(seq: int, decision_id: str, path: str | None, at: float, text: str) -> dict[str, Any]:
    """A stored record as an event with its `seq`, whatever it holds. Parts nested deeper
    than READ_DEPTH levels are replaced by a marker; an event that does not parse (stored
    before uploads were bounded, or damaged) is what its columns say. Either way
    `unreadable` lists the JSON pointers of what is not shown ("" for all of it).

    A text with no more than READ_DEPTH brackets opening an array or object cannot nest
    deeper than READ_DEPTH, so the common record is read without the walk measuring its
    depth (two thirds of reading one; the monitor reads each record)."""
    if isinstance(text, str) and text.count("{") + text.count("[") <= READ_DEPTH:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if isinstance(event, dict):
            return {"seq": seq, **event}
    return _readable_walked(seq, decision_id, path, at, text)


def _readable_walked(
    seq: int, decision_id: str, path: str | None, at: float, text: str
) -> dict[str, Any]:
    """`readable`, with the depth of every text measured and cut."""
    try:
        event = bounded.loads(text)
    except (ValueError, bounded.TooDeep):
        event = None
    if not isinstance(event, dict):
        log.warning("decision-log record %d does not read as an event; showing its columns", seq)
        stamp = datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")
        return {"seq": seq, "decision_id": decision_id, "path": path, "timestamp": stamp,
                "unreadable": [""]}  # fmt: skip
    shown, cut = bounded.cut(event, READ_DEPTH)
    return {"seq": seq, **shown, **({"unreadable": cut} if cut else {})}


def _text(value: Any) -> str | None:
    """A column's value from a free-form part of an event: text, or nothing."""
    return value if isinstance(value, str) else None


def _revision(event: dict[str, Any]) -> str | None:
    """The policy revision behind an event: its bundle's (OPA names a bundle loaded from a
    file after the file's path), or the deprecated top-level field."""
    bundles = event.get("bundles") if isinstance(event.get("bundles"), dict) else {}
    revisions = sorted(
        {b.get("revision") for b in bundles.values() if isinstance(b, dict)} - {None}
    )
    return ",".join(revisions) or event.get("revision")


def _from_logged(event: dict[str, Any]) -> dict[str, Any]:
    """An event of the engine's own query paths as the decision it carries."""
    path = event.get("path") or ""
    if path.startswith(LOGGED_PREFIX) and isinstance(event.get("result"), dict):
        name = path[len(LOGGED_PREFIX) :].removesuffix("_decision")
        return {
            **event,
            "path": f"datavisa/{name}/decision",
            "result": event["result"].get("decision"),
        }
    return event
