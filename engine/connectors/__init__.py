"""Connectors: the data systems where a grant takes effect, as sinks of the grant outbox.

Holds the connector base (`base`: `ConnectorSink`, what every connector does the same
way — the outbox protocol, plans from `datavisa.provision`, converging, credentials'
bookkeeping), the PostgreSQL connector (`postgresql`: `PostgresSink` makes each live grant a
managed login role with the privileges `datavisa.provision` gives, and takes it away —
privileges revoked, login disabled, open sessions terminated, role dropped — when the
grant ends; `Connection`, how serve reaches a server; issuing a role's credentials) and
the statements those roles run, read from the server's own log (`activity`).

A connector is a `Sink` of `lifecycle.grants` by shape (put_subject / put_all / read_all /
relevant): the lifecycle applies the outbox to it with retries, never a request handler.

May import: `model`, `store`, `ledger`, `policy`. Never `lifecycle` or `api`.
"""
