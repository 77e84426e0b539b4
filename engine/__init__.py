"""DataVisa's engine: the grant lifecycle, its store, and the conversation with OPA.

Packages by concern, each importing only those below it (docs/architecture.md):

    api          the HTTP API, `datavisa serve`, tokens, the remote client   (top)
    monitoring   alert rules judged on recorded decisions, webhooks
    lifecycle    the state machine and the grant-distribution seam          (centre)
    policy       OPA: client, process, supervisor, bundle, asking decisions
    ledger       the decision log and the audit trail, hash-chained
    store        SQLite today; the seam for PostgreSQL
    model        record shapes, decisions, errors, durations                 (bottom)

`paths` (where the project's files are) imports nothing and may be imported by any.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # __version__ on first use: reading the installed metadata costs more than the rest of
    # a remote CLI call's imports.
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    global __version__
    try:
        __version__ = version("datavisa")
    except PackageNotFoundError:  # running from a source tree that was never installed
        __version__ = "0+unknown"
    return __version__
