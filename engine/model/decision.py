"""The shape of a policy decision and of an access check, shared by every layer.

`Decision` is what OPA answered (allow, reasons, the numbers policy set) with the id it is
recorded under; `Check` is one access question. Both are plain frozen dataclasses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Decision:
    allow: bool
    reasons: list[dict[str, str]]
    result: dict[str, Any] = field(default_factory=dict)
    decision_id: str | None = None

    @property
    def codes(self) -> list[str]:
        return [r["code"] for r in self.reasons]

    def explain(self) -> str:
        """The reasons in words; one about a field of the input names it first."""
        words = [f"{r['field']}: {r['message']}" if r.get("field") else r["message"]
                 for r in self.reasons]  # fmt: skip
        return "; ".join(words) or "denied"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result,
            "allow": self.allow,
            "reasons": self.reasons,
            "decision_id": self.decision_id,
        }


@dataclass(frozen=True)
class TransferAsk:
    """One transfer check: may the copy run now? By `transfer_id`, or by `resource` and
    `target_region` (and `importer`); `caller` is who asked, `asked_at` when (as `Check`)."""

    transfer_id: str | None
    resource: str | None
    target_region: str | None
    importer: str | None
    caller: str
    asked_at: float = field(default_factory=time.monotonic, compare=False)


@dataclass(frozen=True)
class Check:
    """One access check: may `subject` do `action` on `resource` from `location` now?

    `context` (a ticket, a query, a client) travels to OPA as `input.context`; `caller` is
    who asked, when not the subject (a service), for the decision log; `origin` is how the
    location is known (engine/location: its `facts()`), as `input.origin`. `asked_at` (a
    time.monotonic() instant) is when: the answer is due within the OPA timeout of it,
    however long the check waited behind others.
    """

    subject: str
    resource: str
    action: str
    location: str
    context: dict[str, Any] | None = None
    caller: str | None = None
    asked_at: float = field(default_factory=time.monotonic, compare=False)
    origin: dict[str, Any] | None = None

    def input(self) -> dict[str, Any]:
        asked = {
            "subject": self.subject,
            "resource": self.resource,
            "action": self.action,
            "location": self.location,
        }
        if self.origin is not None:
            asked["origin"] = self.origin
        return asked | {"context": self.context} if self.context else asked
