"""The PostgreSQL store, through psycopg 3: the same records and schema as the SQLite store,
in a database several engines share.

Every write transaction first takes one transaction-scoped advisory lock, as SQLite's
BEGIN IMMEDIATE takes its file's write lock: writers of every engine queue one behind the
other, so a state change, its audit event and its outbox row land together, concurrent
approvals through different engines activate a grant once, and the audit trail and the
decision log stay one ordered hash chain. Reads run without it, each on its own snapshot.

A grant change (and a directory change) sends a NOTIFY at commit; `watch` LISTENs on a
connection of its own, so each engine applies the others' changes to its OPA at once.

Each thread gets a connection of its own (autocommit: transactions are ours), as with
SQLite; connections of threads that ended are closed as new ones open. A lost
connection is a StorageUnavailable, and the next use connects again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.adapt import Loader
from psycopg.conninfo import conninfo_to_dict

from ..model.errors import StorageUnavailable
from . import base, schema

log = logging.getLogger("datavisa.store")

CONNECT_TIMEOUT_S = 5
WRITE_LOCK = 0x64617461  # the advisory lock every write transaction holds ("data")
CHANNEL = "datavisa_"  # NOTIFY channels: datavisa_grants, datavisa_directory (base.TOPICS)
_PKS = {
    step.name: step.pk
    for _, _, steps in schema.MIGRATIONS
    for step in steps
    if isinstance(step, schema.Table)
}


class _NumberLoader(Loader):
    """numeric (what sum() of integers gives) as int when whole, else float: what SQLite
    gives, so nothing above sees a Decimal."""

    def load(self, data: Any) -> int | float:
        value = Decimal(bytes(data).decode())
        return int(value) if value == value.to_integral_value() else float(value)


def safe_location(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "postgresql://(a URL that does not parse)"
    user = f"{parts['user']}@" if parts.get("user") else ""
    port = f":{parts['port']}" if parts.get("port") else ""
    return f"postgresql://{user}{parts.get('host', '')}{port}/{parts.get('dbname', '')}"


def _translate(sql: str) -> str:
    """SQLite's `?` parameters as psycopg's `%s` (a literal `%` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class Table:
    """The sqlite-utils table calls the engine makes, on PostgreSQL."""

    def __init__(self, db: Database, name: str) -> None:
        self.db, self.name = db, name

    def rows_where(
        self,
        where: str | None = None,
        where_args: list[Any] | None = None,
        order_by: str | None = None,
        select: str = "*",
        limit: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        sql = f'SELECT {select} FROM "{self.name}"'
        if where:
            sql += f" WHERE {where}"
        if order_by:
            sql += f" ORDER BY {order_by}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        yield from base.rows_as_dicts(self.db.execute(sql, list(where_args or [])))

    def insert(self, row: dict[str, Any]) -> None:
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" * len(row))
        self.db.execute(f'INSERT INTO "{self.name}" ({names}) VALUES ({marks})', list(row.values()))

    def upsert(self, row: dict[str, Any], pk: str) -> None:
        names = ", ".join(f'"{c}"' for c in row)
        marks = ", ".join("?" * len(row))
        sets = ", ".join(f'"{c}" = excluded."{c}"' for c in row if c != pk)
        self.db.execute(
            f'INSERT INTO "{self.name}" ({names}) VALUES ({marks}) '
            f'ON CONFLICT ("{pk}") DO UPDATE SET {sets}',
            list(row.values()),
        )

    def update(self, pk_value: Any, values: dict[str, Any]) -> None:
        pk = _PKS[self.name]
        sets = ", ".join(f'"{c}" = ?' for c in values)
        self.db.execute(
            f'UPDATE "{self.name}" SET {sets} WHERE "{pk}" = ?', [*values.values(), pk_value]
        )


class Database:
    """One psycopg connection with the sqlite-utils calls the engine makes."""

    def __init__(
        self, conn: psycopg.Connection[Any], connect: Callable[[], psycopg.Connection[Any]]
    ) -> None:
        self.conn_, self._connect = conn, connect

    @property
    def conn(self) -> Database:
        return self  # `db.conn.executemany(...)`, as with sqlite3

    def execute(self, sql: str, params: list[Any] | tuple[Any, ...] | None = None) -> Any:
        """Run `sql` (`?` parameters). A connection found lost outside a transaction (the
        server restarted, or ended it) is made again and the statement run on the new
        one; inside a transaction, or when that fails too, it is StorageUnavailable."""
        query = _translate(sql) if params else sql
        idle = self.conn_.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        try:
            return self.conn_.execute(query, params or None)
        except psycopg.OperationalError as e:
            if not (idle and self.conn_.broken):
                raise StorageUnavailable(f"the database cannot be used: {e}") from e
        self.conn_ = self._connect()
        try:
            return self.conn_.execute(query, params or None)
        except psycopg.OperationalError as e:
            raise StorageUnavailable(f"the database cannot be used: {e}") from e

    def executemany(self, sql: str, seq: list[Any]) -> None:
        if seq:
            with self.conn_.cursor() as cur:
                cur.executemany(_translate(sql), seq)

    def __getitem__(self, name: str) -> Table:
        return Table(self, name)

    def table_names(self) -> list[str]:
        rows = self.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() ORDER BY table_name"
        ).fetchall()
        return [r[0] for r in rows]

    def close(self) -> None:
        self.conn_.close()


class PostgresStore(base.Store):
    """One PostgreSQL database; each thread gets a connection of its own."""

    dialect = "postgresql"

    def __init__(self, url: str, readonly: bool = False) -> None:
        """The store in the database at `url`, its schema made or brought up to date;
        `readonly` reads an existing one and changes nothing."""
        self.url, self.readonly = url, readonly
        self.location = safe_location(url)
        self._local = threading.local()
        self._open: list[tuple[threading.Thread, Database]] = []
        self._lock = threading.Lock()
        self._writer = threading.RLock()
        self._watchers: list[threading.Event] = []
        self.write_error: str | None = None
        try:
            if readonly:
                self.check_schema()
            else:
                self.migrate()
        except psycopg.Error as e:
            self.close()
            raise StorageUnavailable(f"cannot use the database {self.location}: {e}") from e
        except StorageUnavailable:
            self.close()
            raise

    def _connect(self, **extra: Any) -> psycopg.Connection[Any]:
        options = "-c default_transaction_read_only=on" if self.readonly else None
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                connect_timeout=CONNECT_TIMEOUT_S,
                application_name="datavisa",
                **({"options": options} if options else {}),
                **extra,
            )
        except psycopg.Error as e:
            raise StorageUnavailable(f"cannot reach the database {self.location}: {e}") from e
        conn.adapters.register_loader("numeric", _NumberLoader)
        return conn

    @property
    def db(self) -> Database:
        """This thread's connection (a new one when the last was lost)."""
        db: Database | None = getattr(self._local, "db", None)
        if db is not None and not db.conn_.closed and not db.conn_.broken:
            return db
        db = self._local.db = Database(self._connect(), self._connect)
        with self._lock:
            gone = [d for t, d in self._open if not t.is_alive() or d.conn_.broken]
            self._open = [(t, d) for t, d in self._open if t.is_alive() and not d.conn_.broken]
            self._open.append((threading.current_thread(), db))
        for old in gone:
            old.close()
        return db

    def connections(self) -> int:
        with self._lock:
            return len(self._open)

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Database]:
        """One write transaction, holding the store's advisory lock from its start.

        `durable=False` commits without waiting for the WAL flush (synchronous_commit
        off): a crash of the database server may lose the last such commits, never
        corrupt them; as with SQLite, for the decision log and readers' cursors."""
        with self._writer:
            try:
                db = self.db
                # One round trip: the transaction, its lock, and how durable its commit is.
                commit = "on" if durable else "off"
                db.execute(
                    f"BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK}); "
                    f"SET LOCAL synchronous_commit = {commit}"
                )
                try:
                    yield db
                except BaseException:
                    if not db.conn_.broken:
                        with suppress(psycopg.Error, StorageUnavailable):
                            db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except StorageUnavailable as e:  # the connection was lost: nothing committed
                self.write_error = str(e)
                raise
        self.write_error = None

    def problems(self) -> list[str]:
        try:
            self.db.execute("SELECT 1").fetchone()
        except (StorageUnavailable, psycopg.Error) as e:
            return [f"the database cannot be used: {e}"]
        return [f"the last write failed: {self.write_error}"] if self.write_error else []

    def columns(self, table: str) -> set[str]:
        rows = self.db.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?",
            [table],
        ).fetchall()
        return {r[0] for r in rows}

    def json_array_has(self, column: str) -> str:
        return (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements_text(CAST({column} AS jsonb)) "
            "AS element(value) WHERE element.value = ?)"
        )

    def after_copy(self) -> None:
        for _, _, steps in schema.MIGRATIONS:
            for step in steps:
                if isinstance(step, schema.Table) and step.auto and isinstance(step.pk, str):
                    self.db.execute(
                        f"SELECT setval(pg_get_serial_sequence('\"{step.name}\"', '{step.pk}'), "
                        f'(SELECT coalesce(max("{step.pk}"), 0) + 1 FROM "{step.name}"), false)'
                    )

    def announce(self, topic: str) -> None:
        self.db.execute(f"NOTIFY {_channel(topic)}")  # sent when the transaction commits

    def watch(self, topic: str, callback: Callable[[], None]) -> Callable[[], None]:
        """LISTEN on a connection of its own; call `callback` on every notification, and
        once after each (re)connection, since notifications sent meanwhile are lost."""
        channel, stop = _channel(topic), threading.Event()
        self._watchers.append(stop)

        def run() -> None:
            while not stop.is_set():
                try:
                    with self._connect() as conn:
                        conn.execute(f"LISTEN {channel}")
                        callback()
                        while not stop.is_set():
                            for _ in conn.notifies(timeout=0.5, stop_after=1):
                                callback()
                except (psycopg.Error, StorageUnavailable) as e:
                    log.warning("listening for %s changes failed: %s; again in 1s", topic, e)
                    stop.wait(1.0)

        thread = threading.Thread(target=run, name=f"{topic}-changes", daemon=True)
        thread.start()

        def unwatch() -> None:
            stop.set()
            thread.join(timeout=5)

        return unwatch

    def close(self) -> None:
        for stop in self._watchers:
            stop.set()
        with self._lock:
            for _, db in self._open:
                db.close()
            self._open.clear()
        self._local = threading.local()


def _channel(topic: str) -> str:
    if topic not in base.TOPICS:
        raise ValueError(f"no such topic {topic!r}")
    return CHANNEL + topic
