"""Asking OPA for a decision, failing closed.

Every verdict the engine acts on comes through `decide`: an unreachable OPA, an undefined
document or a malformed answer is a deny with reason `policy_unavailable`, never an allow.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .opa import OpaClient, OpaUnavailable

if TYPE_CHECKING:
    from .decision_log import DecisionLog

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


def decide(
    opa: OpaClient | None,
    path: str,
    input: dict[str, Any],
    *,
    log: DecisionLog | None = None,
    caller: str | None = None,
    revision: str = "",
) -> Decision:
    """OPA's decision at `path` for `input`; a deny when OPA cannot give one.

    With a decision log, the decision is recorded (masked) before this returns. The engine
    asks the decision's logged twin (rego/datavisa/logged), which answers the very same
    document together with the mask to record it by, in one evaluation.
    """
    decision, mask = _ask(opa, path, input)
    if log is not None:
        decision_id = log.record(
            path=path,
            input=input,
            result={**decision.result, "allow": decision.allow, "reasons": decision.reasons},
            decision_id=decision.decision_id,
            mask=mask,
            revision=revision,
            caller=caller,
        )
        decision = dataclasses.replace(decision, decision_id=decision_id)
    return decision


def _ask(opa: OpaClient | None, path: str, input: dict[str, Any]) -> tuple[Decision, Any]:
    if opa is None:
        return _unavailable("no OPA configured"), None
    name = path.split("/")[1]
    try:
        answer = opa.query(f"datavisa/logged/{name}_decision", input)
    except OpaUnavailable as e:
        return _unavailable(str(e)), None
    body = answer.result if isinstance(answer.result, dict) else {}
    result, mask = body.get("decision"), body.get("mask")
    if (
        not isinstance(result, dict)
        or not isinstance(result.get("allow"), bool)
        or not isinstance(result.get("reasons"), list)
        or not isinstance(mask, list)
    ):
        return _unavailable(f"malformed decision from {path}: {answer.result!r}"[:300]), None
    return Decision(result["allow"], result["reasons"], result, answer.decision_id), mask


def _unavailable(why: str) -> Decision:
    reason = {"code": "policy_unavailable", "message": f"no policy decision, so deny: {why}"}
    return Decision(False, [reason], {"allow": False, "reasons": [reason]})
