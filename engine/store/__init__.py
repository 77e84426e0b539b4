"""The store: where requests, grants and approvals persist, and the transaction that
commits a state change together with its records.

Holds the SQLite store (`sqlite`, through sqlite-utils), the embedded default. It is the
seam where a PostgreSQL store goes: code above it asks for records and transactions and
never writes SQL of one dialect.

May import: `model`.
"""
