"""Asking OPA for a decision, failing closed.

Every verdict the engine acts on comes through `decide`: an unreachable OPA, an undefined
document or a malformed answer is a deny with reason `policy_unavailable`, never an allow.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ..ledger.decision_log import DecisionLog
from ..model.decision import Decision
from .opa import OpaClient, OpaUnavailable

# The decision documents, one package each under rego/datavisa/.
REQUEST = "datavisa/request/decision"
APPROVAL = "datavisa/approval/decision"
ACCESS = "datavisa/access/decision"
EXTENSION = "datavisa/extension/decision"
BREAKGLASS = "datavisa/breakglass/decision"
LIFECYCLE = "datavisa/lifecycle/decision"
OFFLINE = "datavisa/offline/decision"
TRANSFER = "datavisa/transfer/decision"
GATEWAY = "datavisa/gateway/decision"
PROVISION = "datavisa/provision/decision"


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
    return decide_many(opa, path, [(input, caller)], log=log, revision=revision)[0]


def decide_many(
    opa: OpaClient | None,
    path: str,
    asked: list[tuple[dict[str, Any], str | None]],
    *,
    log: DecisionLog | None = None,
    revision: str = "",
    amend: Callable[[list[dict[str, Any]], list[Decision]], list[Decision]] | None = None,
    due: float | None = None,
    unrecorded: Callable[[Decision], bool] | None = None,
) -> list[Decision]:
    """`decide` for several (input, caller) pairs at once: one OPA query, one log commit.

    Several inputs go to the coalesced twin (`<name>_decisions`, input {batch: [...]}),
    which answers each exactly as the single twin would; a lone input is asked as itself.
    `amend(inputs, decisions)` may turn allows into denies before they are recorded. With
    `due` (a time.monotonic() instant), OPA is waited for until then at most. A decision
    `unrecorded` says yes to is not recorded here: another decision it leads to will be.
    """
    inputs = [input for input, _ in asked]
    answers = _ask_many(opa, path, inputs, due)
    if amend is not None:
        amended = amend(inputs, [decision for decision, _, _ in answers])
        answers = [(d, mask, custom) for d, (_, mask, custom) in zip(amended, answers, strict=True)]
    if log is None:
        return [decision for decision, _, _ in answers]
    kept = [
        (one, answer)
        for one, answer in zip(asked, answers, strict=True)
        if unrecorded is None or not unrecorded(answer[0])
    ]
    recorded = log.record_many(
        [
            {
                "path": path,
                "input": input,
                "result": {**decision.result, "allow": decision.allow, "reasons": decision.reasons},
                "decision_id": decision.decision_id,
                "mask": mask,
                "revision": revision,
                "caller": caller,
                "custom": custom,
            }
            for (input, caller), (decision, mask, custom) in kept
        ]
    )
    ids = iter(recorded)
    return [
        decision
        if unrecorded is not None and unrecorded(decision)
        else dataclasses.replace(decision, decision_id=next(ids))
        for decision, _, _ in answers
    ]


Answered = tuple[Decision, Any, dict[str, Any] | None]  # decision, mask, custom log facts


def _ask_many(
    opa: OpaClient | None, path: str, inputs: list[dict[str, Any]], due: float | None
) -> list[Answered]:
    name = path.split("/")[1]
    if len(inputs) == 1:
        twin, doc = f"datavisa/logged/{name}_decision", inputs[0]
    else:
        twin, doc = f"datavisa/logged/{name}_decisions", {"batch": inputs}
    try:
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        left = None if due is None else due - time.monotonic()
        if left is not None and left <= 0:
            raise OpaUnavailable(f"the OPA timeout ({opa.timeout:g}s) passed while it waited")
        answer = opa.query(twin, doc, timeout=left)
    except OpaUnavailable as e:
        return [(_unavailable(str(e)), None, None)] * len(inputs)
    if len(inputs) == 1:
        return [_parse(path, answer.result, answer.decision_id, None)]
    if not isinstance(answer.result, list) or len(answer.result) != len(inputs):
        why = f"{len(inputs)} decisions asked of {twin}, got {answer.result!r}"[:300]
        return [(_unavailable(why), None, None)] * len(inputs)
    return [
        _parse(path, body, None, {"batch": {"decision_id": answer.decision_id, "index": i}})
        for i, body in enumerate(answer.result)
    ]


def _parse(path: str, body: Any, decision_id: str | None, custom: Any) -> Answered:
    """One logged twin's answer {decision, mask}, checked; a deny when malformed."""
    result, mask = (body.get("decision"), body.get("mask")) if isinstance(body, dict) else (0, 0)
    if (
        not isinstance(result, dict)
        or not isinstance(result.get("allow"), bool)
        or not isinstance(result.get("reasons"), list)
        or not isinstance(mask, list)
    ):
        return _unavailable(f"malformed decision from {path}: {body!r}"[:300]), None, None
    return Decision(result["allow"], result["reasons"], result, decision_id), mask, custom


def _unavailable(why: str) -> Decision:
    reason = {"code": "policy_unavailable", "message": f"no policy decision, so deny: {why}"}
    return Decision(False, [reason], {"allow": False, "reasons": [reason]})
