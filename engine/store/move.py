"""Moving a deployment's records from one store to another (an SQLite file onto the
PostgreSQL database several engines will share): every table of the schema, row for row,
with the sequence numbers the hash chains and cursors name, in one transaction."""

from __future__ import annotations

from . import schema
from .base import Store

BATCH = 1000  # rows read and written at a time


def tables() -> list[str]:
    """The schema's tables in the order they were made: a table another refers to first."""
    names = [
        step.name
        for _, _, steps in schema.MIGRATIONS
        for step in steps
        if isinstance(step, schema.Table)
    ]
    return list(dict.fromkeys(names))


def copy_store(source: Store, target: Store) -> dict[str, int]:
    """Copy every row of `source` into the empty `target` (both at this release's schema
    version); the rows copied by table. Refuses a target that holds any row."""
    source.check_schema()
    target.check_schema()
    held = {t: _count(target, t) for t in tables()}
    if any(held.values()):
        busy = ", ".join(f"{t} ({n})" for t, n in held.items() if n)
        raise ValueError(f"{target.location} already holds records: {busy}")
    copied = {}
    with target.transaction() as db:
        for table in tables():
            names = sorted(source.columns(table) & target.columns(table))
            quoted = ", ".join(f'"{c}"' for c in names)
            insert = f'INSERT INTO "{table}" ({quoted}) VALUES ({", ".join("?" * len(names))})'
            rows = source.db.execute(f'SELECT {quoted} FROM "{table}"')
            copied[table] = 0
            while batch := rows.fetchmany(BATCH):
                db.conn.executemany(insert, [list(r) for r in batch])
                copied[table] += len(batch)
        target.after_copy()
    return copied


def _count(store: Store, table: str) -> int:
    return int(store.db.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
