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
# The whole gateway answer (route, access, mask, HTTP answer) in one evaluation.
GATEWAY_ANSWER = "datavisa/gateway/answer"
PROVISION = "datavisa/provision/decision"
IDP = "datavisa/idp/decision"
STEP_UP = "datavisa/step_up/decision"
ENROLMENT = "datavisa/enrolment/decision"
SUPERVISION = "datavisa/supervision/decision"


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


@dataclasses.dataclass(frozen=True)
class GatewayAnswer:
    """datavisa.gateway.answer for one request: the decision (as recorded, with its id),
    and the HTTP answer policy gave for it; `status` is None when the engine answers
    itself (OPA could not be asked, or the store amended the decision)."""

    decision: Decision
    path: str = GATEWAY  # what the decision is recorded as
    status: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    body: dict[str, Any] | None = None


async def answer_many_async(
    opa: AsyncOpaClient | None,
    asked: list[tuple[dict[str, Any], str | None]],
    *,
    offload: Offload,
    log: DecisionLog | None = None,
    revision: str = "",
    amend: Callable[[list[dict[str, Any]], list[Decision]], list[Decision]] | None = None,
    due: float | None = None,
) -> list[GatewayAnswer]:
    """The gateway answer for each (input, caller) pair, in one OPA query: each recorded
    as the decision it carries (the access decision, or the route's deny) under the path
    and input it names, masked as it says. An unreachable OPA or a malformed answer is a
    recorded deny (policy_unavailable), which the caller answers itself."""
    inputs = [input for input, _ in asked]
    try:
        if opa is None:
            raise OpaUnavailable("no OPA configured")
        doc, twin = (
            (inputs[0], GATEWAY_ANSWER)
            if len(inputs) == 1
            else ({"batch": inputs}, GATEWAY_ANSWER + "s")
        )
        answer = await opa.query(twin, doc, timeout=_left(opa.client, due))
        bodies = [answer.result] if len(inputs) == 1 else answer.result
        if not isinstance(bodies, list) or len(bodies) != len(inputs):
            raise OpaUnavailable(f"{len(inputs)} answers asked of {twin}, got {bodies!r}"[:300])
        parsed = [
            _gateway(body, answer.decision_id if len(inputs) == 1 else None) for body in bodies
        ]
    except OpaUnavailable as e:
        parsed = [None] * len(inputs)
        why = str(e)
    else:
        why = "malformed answer from " + GATEWAY_ANSWER
    paths = [p[0] if p else GATEWAY for p in parsed]
    judged = [
        (p[1] if p else input, caller) for p, (input, caller) in zip(parsed, asked, strict=True)
    ]
    answers: list[Answered] = [
        (p[2], p[3], None) if p else (_unavailable(why), None, None) for p in parsed
    ]
    settled = await offload(
        functools.partial(settle, paths, judged, answers, log, revision, amend, None)
    )
    return [
        GatewayAnswer(d, path, p[4]["status"], p[4]["headers"], p[4]["body"])
        if p and d.allow == p[2].allow and d.reasons == p[2].reasons
        else GatewayAnswer(d, path)
        for d, p, path in zip(settled, parsed, paths, strict=True)
    ]


def _gateway(body: Any, decision_id: str | None) -> tuple[str, dict, Decision, list, dict] | None:
    """One gateway answer, checked: (path, input, decision, mask, http); None if malformed."""
    if not isinstance(body, dict):
        return None
    path, judged, result, mask = (body.get(k) for k in ("path", "input", "decision", "mask"))
    http = {k: body.get(k) for k in ("status", "headers", "body")}
    if (
        not isinstance(path, str)
        or not isinstance(judged, dict)
        or not isinstance(result, dict)
        or not isinstance(result.get("allow"), bool)
        or not isinstance(result.get("reasons"), list)
        or not isinstance(mask, list)
        or not isinstance(http["status"], int)
        or not isinstance(http["headers"], dict)
        or not (http["body"] is None or isinstance(http["body"], dict))
    ):
        return None
    return (
        path,
        judged,
        Decision(result["allow"], result["reasons"], result, decision_id),
        mask,
        http,
    )


def settle(
    path: str | list[str],
    asked: list[tuple[dict[str, Any], str | None]],
    answers: list[Answered],
    log: DecisionLog | None,
    revision: str,
    amend: Callable[[list[dict[str, Any]], list[Decision]], list[Decision]] | None,
    unrecorded: Callable[[Decision], bool] | None,
) -> list[Decision]:
    """What OPA answered, amended and recorded: the decisions `decide_many` returns.
    `path` is the document every decision is recorded under, or one for each."""
    paths = path if isinstance(path, list) else [path] * len(asked)
    if amend is not None:
        amended = amend([input for input, _ in asked], [decision for decision, _, _ in answers])
        answers = [(d, mask, custom) for d, (_, mask, custom) in zip(amended, answers, strict=True)]
    if log is None:
        return [decision for decision, _, _ in answers]
    kept = [
        (one_path, (one, answer))
        for one_path, one, answer in zip(paths, asked, answers, strict=True)
        if unrecorded is None or not unrecorded(answer[0])
    ]
    recorded = log.record_many(
        [
            {
                "path": one_path,
                "input": input,
                "result": {**decision.result, "allow": decision.allow, "reasons": decision.reasons},
                "decision_id": decision.decision_id,
                "mask": mask,
                "revision": revision,
                "caller": caller,
                "custom": custom,
            }
            for one_path, ((input, caller), (decision, mask, custom)) in kept
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
