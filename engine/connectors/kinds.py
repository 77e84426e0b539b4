"""Which connector serves which kind of data system: serve's `connections:` name a kind
each (postgresql, mariadb), and each kind present becomes one sink of the grant outbox,
holding the connections of its kind."""

from __future__ import annotations

import time
from typing import Any

from ..ledger.decision_log import DecisionLog
from ..policy.opa import OpaClient
from ..store import Store
from . import mariadb, postgresql
from .base import ConnectorSink

SINKS: dict[str, type[ConnectorSink]] = {
    postgresql.KIND: postgresql.PostgresSink,
    mariadb.KIND: mariadb.MariadbSink,
}
CONNECTIONS: dict[str, type] = {
    postgresql.KIND: postgresql.Connection,
    mariadb.KIND: mariadb.Connection,
}


def kind_of(connection: Any) -> str:
    """The kind of system a configured connection reaches."""
    for kind, shape in CONNECTIONS.items():
        if isinstance(connection, shape):
            return kind
    raise TypeError(f"not a connection: {connection!r}")


def sinks(
    connections: dict[str, Any],
    store: Store,
    opa: OpaClient | None,
    log: DecisionLog | None = None,
    revision: str = "",
    clock: Any = time.time,
) -> list[ConnectorSink]:
    """One sink for each kind among `connections`, each given the connections of its kind."""
    by_kind: dict[str, dict[str, Any]] = {}
    for name, connection in connections.items():
        by_kind.setdefault(kind_of(connection), {})[name] = connection
    return [
        SINKS[kind](held, store, opa, log, revision, clock)  # type: ignore[arg-type]
        for kind, held in sorted(by_kind.items(), key=lambda kv: list(SINKS).index(kv[0]))
    ]
