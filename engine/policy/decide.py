"""Asking OPA for a decision, failing closed.

Every verdict the engine acts on comes through `decide`: an unreachable OPA, an undefined
document or a malformed answer is a deny with reason `policy_unavailable`, never an allow.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable
from typing import Any

from ..ledger.decision_log import DecisionLog
from ..model.decision import Decision
from .coalesce import Offload
from .opa import Answer, OpaClient, OpaUnavailable
from .opa_async import AsyncOpaClient

# The decision documents, one package each under rego/datavisa/.
REQUEST = "datavisa/request/decision"
APPROVAL = "datavisa/approval/decision"
ACCESS = "datavisa/access/decision"
EXTENSION = "datavisa/extension/decision"
BREAKGLASS = "datavisa/breakglass/decision"
LIFECYCLE = "datavisa/lifecycle/decision"
FILING = "datavisa/filing/decision"
OFFLINE = "datavisa/offline/decision"
TRANSFER = "datavisa/transfer/decision"
TRANSFER_REQUEST = "datavisa/transfer_request/decision"
TRANSFER_CHECK = "datavisa/transfer_check/decision"
GATEWAY = "datavisa/gateway/decision"
PROVISION = "datavisa/provision/decision"
IDP = "datavisa/idp/decision"
STEP_UP = "datavisa/step_up/decision"


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
    try:
        twin, doc = _twin(path, inputs)
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        answers = _answers(path, inputs, opa.query(twin, doc, timeout=_left(opa, due)))
    except OpaUnavailable as e:
        answers = [(_unavailable(str(e)), None, None)] * len(inputs)
    return settle(path, asked, answers, log, revision, amend, unrecorded)


async def decide_many_async(
    opa: AsyncOpaClient | None,
    path: str,
    asked: list[tuple[dict[str, Any], str | None]],
    *,
    offload: Offload,
    log: DecisionLog | None = None,
    revision: str = "",
    amend: Callable[[list[dict[str, Any]], list[Decision]], list[Decision]] | None = None,
    due: float | None = None,
    unrecorded: Callable[[Decision], bool] | None = None,
) -> list[Decision]:
    """`decide_many` with OPA asked from the running event loop (policy/opa_async.py);
    what touches the store (`amend`, the log's commit) runs in `offload`, a worker."""
    inputs = [input for input, _ in asked]
    try:
        twin, doc = _twin(path, inputs)
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        answer = await opa.query(twin, doc, timeout=_left(opa.client, due))
        answers = _answers(path, inputs, answer)
    except OpaUnavailable as e:
        answers = [(_unavailable(str(e)), None, None)] * len(inputs)
    return await offload(
        functools.partial(settle, path, asked, answers, log, revision, amend, unrecorded)
    )


Answered = tuple[Decision, Any, dict[str, Any] | None]  # decision, mask, custom log facts


def settle(
    path: str,
    asked: list[tuple[dict[str, Any], str | None]],
    answers: list[Answered],
    log: DecisionLog | None,
    revision: str,
    amend: Callable[[list[dict[str, Any]], list[Decision]], list[Decision]] | None,
    unrecorded: Callable[[Decision], bool] | None,
) -> list[Decision]:
    """What OPA answered, amended and recorded: the decisions `decide_many` returns."""
    if amend is not None:
        amended = amend([input for input, _ in asked], [decision for decision, _, _ in answers])
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


def _twin(path: str, inputs: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The logged twin to ask for `inputs`, and its input: a lone one is asked as itself,
    several as a batch of the coalesced twin."""
    name = path.split("/")[1]
    if len(inputs) == 1:
        return f"datavisa/logged/{name}_decision", inputs[0]
    return f"datavisa/logged/{name}_decisions", {"batch": inputs}


def _left(opa: OpaClient, due: float | None) -> float | None:
    """How long OPA may take, so that it answers by `due` (time.monotonic())."""
    left = None if due is None else due - time.monotonic()
    if left is not None and left <= 0:
        raise OpaUnavailable(f"the OPA timeout ({opa.timeout:g}s) passed while it waited")
    return left


def _answers(path: str, inputs: list[dict[str, Any]], answer: Answer) -> list[Answered]:
    """Each input's decision in OPA's `answer` to its twin; a deny when malformed."""
    if len(inputs) == 1:
        return [_parse(path, answer.result, answer.decision_id, None)]
    if not isinstance(answer.result, list) or len(answer.result) != len(inputs):
        why = f"{len(inputs)} decisions asked of {path}, got {answer.result!r}"[:300]
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
