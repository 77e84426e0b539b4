"""The errors the engine raises for anything a user can act on.

Each says what went wrong in words a person can act on; the class says which kind, so the
CLI and the HTTP API can answer with the right exit status or HTTP status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .decision import Decision


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
