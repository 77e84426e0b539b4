"""What every store offers, whatever the database: the records, the outbox, cursors,
idempotent answers and leases, written once in the SQL that SQLite and PostgreSQL both
speak (`?` parameters; a store translates them).

A store (`sqlite.Store`, `postgresql.PostgresStore`) adds its connection (`db`, with the
sqlite-utils calls the engine uses: execute, rows_where, insert, upsert, update), its
transaction, its health and its schema bookkeeping; `open_store` in the package picks
one by the location's form.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from typing import Any

from ..model.errors import StorageUnavailable
from ..model.records import ACTIVE, Approval, GrantChange, Request
from . import schema

# What engines sharing a database tell each other changed (Store.announce, Store.watch):
GRANTS = "grants"  # the grant outbox grew
DIRECTORY = "directory"  # the directory the IdP syncs by SCIM changed
TOPICS = (GRANTS, DIRECTORY)


class Store:
    """The interface and the queries shared by every store."""

    dialect: str  # "sqlite" or "postgresql"
    location: str  # what the store was opened on, for messages (no secrets)
    write_error: str | None = None  # why the last write failed (None once one succeeds)

    # -- what each store provides -------------------------------------------------------

    @property
    def db(self) -> Any:
        """This thread's connection, with the sqlite-utils calls the engine uses."""
        raise NotImplementedError

    def transaction(self, durable: bool = True) -> AbstractContextManager[Any]:
        """One write transaction, all or nothing; writers queue one behind the other, in
        this process and in every other process using the same database."""
        raise NotImplementedError

    def problems(self) -> list[str]:
        """Why the store cannot keep a write now; empty when it can."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def columns(self, table: str) -> set[str]:
        """The columns `table` has now (empty when it does not exist)."""
        raise NotImplementedError

    def watch(self, topic: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` whenever another process announces a change of `topic` (TOPICS),
        until the function returned is called. One process alone on its database needs
        none."""
        return lambda: None

    def announce(self, topic: str) -> None:
        """Tell other processes on the database, at commit, that `topic` changed; call
        inside the change's `transaction()`."""

    # -- the schema ---------------------------------------------------------------------

    def schema_version(self) -> int:
        """The newest migration this database has had (0: none recorded)."""
        if "version" not in self.columns("schema_migrations"):
            return 0
        row = self.db.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        return int(row[0])

    def migrate(self, upto: int = schema.VERSION) -> list[int]:
        """Bring the schema up to version `upto`; the versions applied. Refuses a database
        a newer release made: this one would not know what its tables mean."""
        # One write transaction: on PostgreSQL under the store's write lock, so engines
        # starting together upgrade one after the other (the second finds it current).
        with self.transaction() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations "
                "(version INTEGER PRIMARY KEY, applied_at FLOAT NOT NULL, what TEXT NOT NULL)"
            )
            have = self.schema_version()
            if have > schema.VERSION:
                raise StorageUnavailable(
                    f"the database {self.location} has schema version {have}, newer than "
                    f"{schema.VERSION}, the newest this release of datavisa knows: "
                    "upgrade datavisa"
                )
            if have < upto and (running := self._running_engines()):
                raise StorageUnavailable(
                    f"the database {self.location} has schema version {have}, older than "
                    f"{schema.VERSION}, and engines of the older release still run on it "
                    f"({running}): stop every one of them, then start this release (it "
                    f"upgrades the schema) or run `datavisa db migrate --db {self.location}`"
                )
            applied = []
            for version, what, steps in schema.MIGRATIONS:
                if have < version <= upto:
                    for step in steps:
                        self._apply(step)
                    db.execute(
                        "INSERT INTO schema_migrations (version, applied_at, what) "
                        "VALUES (?, ?, ?)",
                        [version, time.time(), what],
                    )
                    applied.append(version)
            # A field added to the record since the database was made.
            wanted = schema.record_columns(Request)
            for name in sorted(wanted.keys() - self.columns("requests")):
                self._apply(schema.Column("requests", name, wanted[name]))
        return applied

    def _running_engines(self) -> str:
        """The engines holding a lease on this store now, and until when ('' if none):
        a stopped engine gives its leases back; a killed one holds them until they run out."""
        if "holder" not in self.columns("leases"):
            return ""
        rows = self.db.execute(
            "SELECT holder, max(held_until) FROM leases WHERE held_until > ? GROUP BY holder "
            "ORDER BY holder",
            [time.time()],
        ).fetchall()
        return ", ".join(
            f"{holder}, until {time.strftime('%H:%M:%S', time.localtime(until))}"
            for holder, until in rows
        )

    def _apply(self, step: schema.Step) -> None:
        if isinstance(step, schema.Table):
            self.db.execute(schema.create_table(step, self.dialect))
        elif isinstance(step, schema.Column):
            if step.name not in self.columns(step.table):
                self.db.execute(schema.add_column(step, self.dialect))
        elif isinstance(step, schema.Index):
            self.db.execute(schema.create_index(step, self.dialect))
        elif (text := step.text(self.dialect)) is not None:
            self.db.execute(text)

    def check_schema(self) -> None:
        """Raise StorageUnavailable unless the database is at this release's version."""
        have = self.schema_version()
        if have != schema.VERSION:
            older = "older" if have < schema.VERSION else "newer"
            hint = "run `datavisa db migrate`" if have < schema.VERSION else "upgrade datavisa"
            raise StorageUnavailable(
                f"the database {self.location} has schema version {have}, {older} than "
                f"{schema.VERSION}, the version this release runs: {hint}"
            )

    # -- requests and approvals ---------------------------------------------------------

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
        # The SELECT itself, not sqlite-utils' rows_where: that asks SQLite twice more on
        # every call whether the table exists and is not a view, and this is on the access
        # check's path (the held-grant check) and the monitor's.
        sql = "SELECT * FROM requests" + (f" WHERE {where}" if where else "")
        sql += f" ORDER BY {order_by}" + (f" LIMIT {int(limit)}" if limit is not None else "")
        return [Request.from_row(r) for r in rows_as_dicts(self.db.execute(sql, params or []))]

    def request_fields(
        self,
        columns: Sequence[str],
        where: str | None = None,
        params: list[Any] | None = None,
        *,
        order_by: str = "created_at, id",
    ) -> list[dict[str, Any]]:
        """Only `columns` of the requests, JSON columns decoded: for a read of many rows
        that needs a few fields of each (an approver's queue reads every pending request),
        at a fraction of the cost of a Request a row."""
        unknown = set(columns) - _REQUEST_FIELDS
        if unknown:
            raise ValueError(f"no such request field: {', '.join(sorted(unknown))}")
        decoded = [c for c in columns if c in Request._JSON]
        sql = f"SELECT {', '.join(columns)} FROM requests" + (f" WHERE {where}" if where else "")
        rows = list(rows_as_dicts(self.db.execute(sql + f" ORDER BY {order_by}", params or [])))
        for row in rows:
            for name in decoded:
                row[name] = json.loads(row[name]) if row[name] is not None else None
        return rows

    def active_holders(self, grant_ids: Iterable[str]) -> set[tuple[str, str]]:
        """(holder, grant id) of each of `grant_ids` that is an active grant: the access
        check's word on whether the grants OPA cited still live. Two columns, no records:
        it runs on every allow."""
        ids = sorted(set(grant_ids))
        if not ids:
            return set()
        sql = f"SELECT requester, id FROM requests WHERE id IN ({', '.join('?' * len(ids))})"
        return {(r[0], r[1]) for r in self.db.execute(sql + " AND state = ?", [*ids, ACTIVE])}

    def update(self, request_id: str, changes: dict[str, Any]) -> None:
        """Change columns of one request; call inside `transaction()`."""
        row = Request.to_row_values(changes)
        self.db["requests"].update(request_id, row)

    def approvals(self, request_id: str) -> list[Approval]:
        rows = self.db["approvals"].rows_where("request_id = ?", [request_id], order_by="at")
        return [Approval(**r) for r in rows]

    def approvals_of(self, request_ids: Iterable[str]) -> dict[str, list[Approval]]:
        """The approvals of each of `request_ids`, oldest first, in a query per 500 ids
        (an approver's queue reads a thousand requests' at once)."""
        ids, found = sorted(set(request_ids)), {}
        for at in range(0, len(ids), 500):  # well under every database's parameter limit
            chunk = ids[at : at + 500]
            sql = f"SELECT * FROM approvals WHERE request_id IN ({', '.join('?' * len(chunk))})"
            for row in rows_as_dicts(self.db.execute(sql + " ORDER BY at", chunk)):
                found.setdefault(row["request_id"], []).append(Approval(**row))
        return found

    # -- the grant outbox ---------------------------------------------------------------

    def add_grant_change(self, at: float, subject: str, grant_id: str, change: str) -> int:
        """Append a change to the grant outbox; call inside the change's `transaction()`."""
        row = self.db.execute(
            "INSERT INTO outbox (at, subject, grant_id, change) VALUES (?, ?, ?, ?) RETURNING seq",
            [at, subject, grant_id, change],
        ).fetchone()
        self.announce(GRANTS)
        return int(row[0])

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
        The row at `before` stays, so the next row's seq still follows it (SQLite numbers
        a new row after the largest one left)."""
        with self.transaction(durable=False) as db:
            return db.execute("DELETE FROM outbox WHERE seq < ?", [before]).rowcount

    def grant_changes_head(self) -> int:
        """The newest outbox row's seq, 0 when there is none."""
        return int(self.db.execute("SELECT coalesce(max(seq), 0) FROM outbox").fetchone()[0])

    def sink_cursors(self, since: float = 0.0) -> dict[str, int]:
        """How far every sink of every engine on this database has applied the outbox:
        those moved or confirmed at `since` or later (a cursor from before cursors kept
        the time counts as current)."""
        rows = self.db.execute(
            "SELECT name, seq FROM cursors WHERE name LIKE 'sink:%' AND (at IS NULL OR at >= ?)",
            [since],
        )
        return {name: int(seq) for name, seq in rows.fetchall()}

    # -- idempotent answers -------------------------------------------------------------

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
                "INSERT INTO idempotency (key, request_hash, status, body, at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [key, request_hash, status, body, at],
            )

    # -- cursors and leases -------------------------------------------------------------

    def cursor(self, name: str) -> int | None:
        """How far the reader `name` has got, or None before it first started."""
        row = self.db.execute("SELECT seq FROM cursors WHERE name = ?", [name]).fetchone()
        return None if row is None else int(row[0])

    def set_cursor(self, name: str, seq: int, at: float | None = None) -> None:
        """Move the reader `name` on to `seq`, never back, noting when (`at`, now by
        default; the same seq again says the reader is still there); call inside
        `transaction()`."""
        self.db.execute(
            "INSERT INTO cursors (name, seq, at) VALUES (?, ?, ?) ON CONFLICT(name) DO UPDATE "
            "SET seq = CASE WHEN excluded.seq > cursors.seq THEN excluded.seq "
            "ELSE cursors.seq END, at = excluded.at",
            [name, seq, time.time() if at is None else at],
        )

    def hold_lease(self, name: str, holder: str, ttl_s: float, now: float | None = None) -> bool:
        """Take or renew the lease `name` for `holder` for `ttl_s` seconds: True when
        `holder` holds it now. Another holder's lease is taken over once it ran out
        (its holder stopped renewing it: it died or hangs)."""
        now = time.time() if now is None else now
        with self.transaction(durable=False) as db:
            db.execute(
                "INSERT INTO leases (name, holder, held_until) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET holder = excluded.holder, "
                "held_until = excluded.held_until "
                "WHERE leases.holder = excluded.holder OR leases.held_until < ?",
                [name, holder, now + ttl_s, now],
            )
            row = db.execute("SELECT holder FROM leases WHERE name = ?", [name]).fetchone()
        return row is not None and row[0] == holder

    def held_leases(self, prefix: str, now: float | None = None) -> dict[str, str]:
        """The leases named `prefix`… that have not run out, with their holders."""
        now = time.time() if now is None else now
        rows = self.db.execute(
            "SELECT name, holder FROM leases WHERE held_until >= ? AND substr(name, 1, ?) = ?",
            [now, len(prefix), prefix],
        )
        return dict(rows.fetchall())

    def grant_change_last(self, grant_id: str) -> int:
        """The seq of the newest outbox row of `grant_id`, 0 when there is none."""
        row = self.db.execute(
            "SELECT coalesce(max(seq), 0) FROM outbox WHERE grant_id = ?", [grant_id]
        ).fetchone()
        return int(row[0])

    def release_lease(self, name: str, holder: str) -> None:
        """Give the lease up at once (a clean stop), so another engine need not wait."""
        with self.transaction(durable=False) as db:
            db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", [name, holder])

    def after_copy(self) -> None:
        """Rows were written with their own numbers (`move.copy_store`): number new rows
        after them; call inside the copy's transaction."""

    # -- supervisors (engine/supervision): presence as a lease, with the grant ------------

    def hold_supervision(
        self,
        grant_id: str,
        supervisor: str,
        held_until: float,
        at: float,
        decision_id: str | None,
        decided: dict[str, Any] | None = None,
    ) -> bool:
        """Take or renew `supervisor`'s lease on `grant_id` until `held_until`: True when
        it was not alive at `at` (a join, not a heartbeat). `decided`: what a new decision
        was taken on ({revision, location, redecide_every, lease_s}), which starts the
        renewals count again; None: a renewal on the lease's standing decision (counted).
        Call inside `transaction()`."""
        row = self.db.execute(
            "SELECT held_until FROM supervisors WHERE grant_id = ? AND supervisor = ?",
            [grant_id, supervisor],
        ).fetchone()
        if decided is None:
            self.db.execute(
                "UPDATE supervisors SET held_until = ?, renewals = renewals + 1 "
                "WHERE grant_id = ? AND supervisor = ?",
                [held_until, grant_id, supervisor],
            )
            return False
        self.db.execute(
            "INSERT INTO supervisors (grant_id, supervisor, joined_at, held_until, decision_id, "
            "revision, location, renewals, redecide_every, lease_s) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT(grant_id, supervisor) DO UPDATE SET "
            "held_until = excluded.held_until, decision_id = excluded.decision_id, "
            "revision = excluded.revision, location = excluded.location, renewals = 0, "
            "redecide_every = excluded.redecide_every, lease_s = excluded.lease_s, "
            "joined_at = CASE WHEN supervisors.held_until < ? THEN excluded.joined_at "
            "ELSE supervisors.joined_at END",
            [grant_id, supervisor, at, held_until, decision_id, decided["revision"],
             decided["location"], decided["redecide_every"], decided["lease_s"], at],
        )  # fmt: skip
        return row is None or row[0] < at

    def drop_supervision(self, grant_id: str, supervisor: str) -> bool:
        """End `supervisor`'s lease on `grant_id`: whether there was one. Call inside
        `transaction()`."""
        return (
            self.db.execute(
                "DELETE FROM supervisors WHERE grant_id = ? AND supervisor = ?",
                [grant_id, supervisor],
            ).rowcount
            > 0
        )

    def supervisors(self, grant_id: str) -> list[dict[str, Any]]:
        """Every supervisor lease of `grant_id` (alive or run out), by supervisor."""
        return list(
            rows_as_dicts(
                self.db.execute(
                    "SELECT grant_id, supervisor, joined_at, held_until, decision_id, "
                    "revision, location, renewals, redecide_every, lease_s "
                    "FROM supervisors WHERE grant_id = ? ORDER BY supervisor",
                    [grant_id],
                )
            )
        )

    # -- sessions a supervisor asked to end (engine/supervision, engine/connectors) ------

    def add_session_end(
        self, grant_id: str, session: str, asked_by: str, at: float, decision_id: str | None
    ) -> int:
        """Record that `asked_by` asked to end `session` of `grant_id` (pending): its seq.
        Call inside the transaction that writes its audit event and grant-outbox row."""
        row = self.db.execute(
            "INSERT INTO session_ends (grant_id, session, asked_by, asked_at, decision_id, "
            "state) VALUES (?, ?, ?, ?, ?, 'pending') RETURNING seq",
            [grant_id, session, asked_by, at, decision_id],
        ).fetchone()
        return int(row[0])

    def session_ends(self) -> list[dict[str, Any]]:
        """The session ends asked and not yet done (a handful at a time), oldest first."""
        return list(rows_as_dicts(self.db.execute(
            "SELECT seq, grant_id, session, asked_by, asked_at, decision_id, state, sink, "
            "done_at FROM session_ends WHERE state = 'pending' ORDER BY seq",
        )))  # fmt: skip

    def session_end(self, seq: int) -> dict[str, Any] | None:
        """One session end asked, by its seq."""
        rows = rows_as_dicts(self.db.execute(
            "SELECT seq, grant_id, session, asked_by, asked_at, decision_id, state, sink, "
            "done_at FROM session_ends WHERE seq = ?", [seq],
        ))  # fmt: skip
        return next(iter(rows), None)

    def finish_session_end(self, seq: int, state: str, sink: str, at: float) -> bool:
        """Say how a pending session end went; False when it was done already (another
        engine's sink got there first). Call inside `transaction()`."""
        return (
            self.db.execute(
                "UPDATE session_ends SET state = ?, sink = ?, done_at = ? "
                "WHERE seq = ? AND state = 'pending'",
                [state, sink, at, seq],
            ).rowcount
            > 0
        )

    def supervised_grants(self, states: Iterable[str]) -> list[Request]:
        """The active grants whose supervision is in one of `states`."""
        wanted = sorted(states)
        return self.requests(
            f"state = ? AND supervision_state IN ({', '.join('?' * len(wanted))})",
            [ACTIVE, *wanted],
        )

    # -- connectors (engine/connectors): what a data system holds of each grant -----------

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

    def set_verifier(self, sink: str, grant_id: str, verifier: str) -> None:
        """Record the credential verifier `sink` was given for `grant_id` (never a
        password): what reconcile compares the data system's with."""
        with self.transaction(durable=False) as db:
            db.execute(
                "UPDATE provisioning SET verifier = ? WHERE sink = ? AND grant_id = ?",
                [verifier, sink, grant_id],
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

    # -- filing deadlines (lifecycle.filings): filings due after a first transfer --------

    def start_filing_deadline(
        self,
        filing: str,
        exporter: str,
        request_id: str,
        at: float,
        due_at: float,
        decision_id: str | None,
    ) -> bool:
        """Start the deadline of `filing` for `exporter` unless one was started before
        (filed or not): True when this call started it. Call inside the transaction that
        activates `request_id`."""
        row = self.db.execute(
            "INSERT INTO filing_deadlines (filing, exporter, first_transfer_id, "
            "first_transfer_at, due_at, decision_id) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING RETURNING filing",
            [filing, exporter, request_id, at, due_at, decision_id],
        ).fetchone()
        return row is not None

    def filing_deadlines(self, open_only: bool = False) -> list[dict[str, Any]]:
        """Every filing deadline (those not filed, with `open_only`), by due time."""
        where = " WHERE filed_at IS NULL" if open_only else ""
        return list(
            rows_as_dicts(
                self.db.execute(
                    f"SELECT * FROM filing_deadlines{where} ORDER BY due_at, filing, exporter"
                )
            )
        )

    def filing_deadline(self, filing: str, exporter: str) -> dict[str, Any] | None:
        rows = self.db.execute(
            "SELECT * FROM filing_deadlines WHERE filing = ? AND exporter = ?", [filing, exporter]
        )
        found = list(rows_as_dicts(rows))
        return found[0] if found else None

    def file_deadline(self, filing: str, exporter: str, at: float, by: str) -> bool:
        """Record the filing made; call inside `transaction()`. False when no open deadline
        of that filing and exporter was there."""
        return (
            self.db.execute(
                "UPDATE filing_deadlines SET filed_at = ?, filed_by = ? "
                "WHERE filing = ? AND exporter = ? AND filed_at IS NULL",
                [at, by, filing, exporter],
            ).rowcount
            == 1
        )

    # -- export counts (lifecycle.exports): individuals sent abroad per calendar year -----

    def export_counts(self) -> list[dict[str, Any]]:
        """Every yearly export count, by counter, exporter and year."""
        return list(
            rows_as_dicts(
                self.db.execute(
                    "SELECT counter, exporter, year, individuals, sensitive_individuals, "
                    "updated_at FROM export_counts ORDER BY counter, exporter, year"
                )
            )
        )

    def add_to_export_count(
        self,
        counter: str,
        exporter: str,
        year: int,
        individuals: int,
        sensitive_individuals: int,
        at: float,
    ) -> tuple[int, int]:
        """Add to the exporter's count of `year`, made at 0 if none; the totals after. Call
        inside `transaction()`: one statement, so the total returned is the one written."""
        row = self.db.execute(
            "INSERT INTO export_counts (counter, exporter, year, individuals, "
            "sensitive_individuals, updated_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (counter, exporter, year) DO UPDATE SET "
            "individuals = export_counts.individuals + excluded.individuals, "
            "sensitive_individuals = export_counts.sensitive_individuals "
            "+ excluded.sensitive_individuals, updated_at = excluded.updated_at "
            "RETURNING individuals, sensitive_individuals",
            [counter, exporter, year, individuals, sensitive_individuals, at],
        ).fetchone()
        return int(row[0]), int(row[1])

    # -- dialect pieces the layers above need -------------------------------------------

    def json_array_has(self, column: str) -> str:
        """A condition: the JSON array of strings in `column` holds the parameter `?`."""
        raise NotImplementedError


_REQUEST_FIELDS = frozenset(f.name for f in dataclasses.fields(Request))


def rows_as_dicts(cursor: Any) -> Iterator[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(names, row, strict=True))
