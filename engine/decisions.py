"""Asking OPA for a decision, failing closed.

Every verdict the engine acts on comes through `decide`: an unreachable OPA, an undefined
document or a malformed answer is a deny with reason `policy_unavailable`, never an allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .opa import OpaClient, OpaUnavailable

# The decision documents, one package each under rego/datavisa/.
REQUEST = "datavisa/request/decision"
APPROVAL = "datavisa/approval/decision"
ACCESS = "datavisa/access/decision"
EXTENSION = "datavisa/extension/decision"
BREAKGLASS = "datavisa/breakglass/decision"
LIFECYCLE = "datavisa/lifecycle/decision"


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
        return "; ".join(r["message"] for r in self.reasons) or "denied"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result,
            "allow": self.allow,
            "reasons": self.reasons,
            "decision_id": self.decision_id,
        }


def decide(opa: OpaClient | None, path: str, input: dict[str, Any]) -> Decision:
    """OPA's decision at `path` for `input`; a deny when OPA cannot give one."""
    if opa is None:
        return _unavailable("no OPA configured")
    try:
        answer = opa.query(path, input)
    except OpaUnavailable as e:
        return _unavailable(str(e))
    result = answer.result
    if (
        not isinstance(result, dict)
        or not isinstance(result.get("allow"), bool)
        or not isinstance(result.get("reasons"), list)
    ):
        return _unavailable(f"malformed decision from {path}: {result!r}"[:300])
    return Decision(result["allow"], result["reasons"], result, answer.decision_id)


def _unavailable(why: str) -> Decision:
    reason = {"code": "policy_unavailable", "message": f"no policy decision, so deny: {why}"}
    return Decision(False, [reason])
