"""The errors the engine raises for anything a user can act on.

Each says what went wrong in words a person can act on; the class says which kind, so the
CLI and the HTTP API can answer with the right exit status or HTTP status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decision import Decision
    from .records import Request


class DataVisaError(Exception):
    """Bad input or a missing tool (HTTP 400)."""


class NotFound(DataVisaError):
    """No record with that id (HTTP 404)."""


class Conflict(DataVisaError):
    """The record is in a state that does not allow this (HTTP 409)."""


class Denied(DataVisaError):
    """Policy said no (HTTP 403); the decision carries the reasons."""

    def __init__(self, what: str, decision: Decision) -> None:
        self.decision = decision
        super().__init__(f"{what}: {decision.explain()}")


class NotYetEnforced(DataVisaError):
    """The change is recorded, but some system that enforces grants has not applied it yet
    (HTTP 202): it is retried until it has, and until then the server is not ready."""

    def __init__(self, record: Request, pending: list[str]) -> None:
        self.record, self.pending = record, pending
        super().__init__(
            f"{record.id} is {record.state} in the store, but not yet in force at "
            f"{', '.join(pending)}: the engine retries until it is (see /health)"
        )


class ActivationFailed(Conflict):
    """A grant was approved, but a data system refused to provision it: it was ended at
    once, not left active (HTTP 409); `record` is the ended grant, the message says why."""

    def __init__(self, record: Request, why: str) -> None:
        self.record, self.why = record, why
        super().__init__(f"grant {record.id} could not be provisioned, so it is not active: {why}")


class SinkUnavailable(DataVisaError):
    """A sink (a system that enforces grants) did not take a change; it is applied again
    later."""


class StorageUnavailable(DataVisaError):
    """The database cannot take or keep a write now (disk full, file gone, read-only):
    nothing was changed (HTTP 503); it works again when the storage does."""
