"""The store: where requests, grants and approvals persist, and the transaction that
commits a state change together with its records.

One interface (`base.Store`), two databases: SQLite (`sqlite`, through sqlite-utils), the
embedded default, and PostgreSQL (`postgresql`, through psycopg 3), which several engines
share. Both run one schema with numbered migrations (`schema`). `open_store` picks the
database by the location's form: a `postgresql://` URL, else an SQLite file's path. Code
above the store asks for records and transactions and writes only SQL both speak.

May import: `model`.
"""

from __future__ import annotations

from pathlib import Path

from .base import Store

URL_SCHEMES = ("postgresql://", "postgres://")

__all__ = ["Store", "is_url", "open_store"]


def is_url(location: Path | str) -> bool:
    """Whether `location` names a PostgreSQL database rather than an SQLite file."""
    return isinstance(location, str) and location.startswith(URL_SCHEMES)


def open_store(location: Path | str, readonly: bool = False) -> Store:
    """The store at `location`: a PostgreSQL URL or an SQLite file's path, its schema
    brought up to date (not when `readonly`)."""
    if is_url(location):
        from .postgresql import PostgresStore  # psycopg is imported only when used

        return PostgresStore(str(location), readonly=readonly)
    from .sqlite import Store as SqliteStore

    return SqliteStore(location, readonly=readonly)
