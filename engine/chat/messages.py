"""The Slack messages (Block Kit) of requests and grants: what a request asks, who may
approve it, its Approve and Deny buttons (or, where chat may not approve, a button to the
console and policy's reason), and, once decided, the outcome and who decided.

Every value put in a message is escaped: Slack's mrkdwn reads <...> as links and mentions.
"""

from __future__ import annotations

from typing import Any

from ..model.durations import format_duration, rfc3339
from ..model.records import ACTIVE, APPROVED, PENDING, Approval, Request, effective_state

APPROVE, DENY = "approve", "deny"  # the buttons' action_id; their value is the request id


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def _button(text: str, **more: Any) -> dict[str, Any]:
    return {"type": "button", "text": {"type": "plain_text", "text": text}, **more}


def named(people: list[str], slack_ids: dict[str, str | None]) -> str:
    """People as mentions where Slack knows them, by their directory id otherwise."""
    return ", ".join(f"<@{slack_ids[p]}>" if slack_ids.get(p) else escape(p) for p in people)


def request_message(
    req: Request,
    approvals: list[Approval],
    detail: dict[str, Any],
    slack_ids: dict[str, str | None],
    console_link: str | None,
    now: float,
    note: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """A request as its approvers see it now: what it asks, who may approve, what is
    still needed, and its buttons while it is pending; the outcome once it is not.
    `detail` is what policy said when it was posted (datavisa.notification.recipients,
    with the notice's kind and level)."""
    what = f"an extension of {req.parent_id}" if req.kind == "extension" else "access"
    asks = (
        f"{req.requester} asks for {what} to {req.resource} ({', '.join(req.actions)}) "
        f"from {req.location} for {format_duration(req.duration_s)}"
    )
    needs = ", ".join(f"{a['count']} from {a['group']}" for a in req.approvals_required) or "-"
    state = effective_state(req, now)
    kind = detail.get("kind", "requested")
    title = {
        "reminder": "*Reminder: approval needed*",
        "escalation": "*Escalated: no decision yet*",
    }.get(kind, "*Approval needed*")
    blocks = [_section(f"{title} for request `{req.id}`\n{escape(asks)}")]
    lines = [f"*Reason:* {escape(req.reason or '-')}", f"*Needs:* {escape(needs)}"]
    if state == PENDING:
        left = format_duration(max(0.0, req.pending_until - now))
        lines.append(f"*Lapses:* {rfc3339(req.pending_until)} (in {left})")
    approvers = list(detail.get("approvers", []))
    lines.append(f"*May approve:* {named(approvers, slack_ids) or 'nobody the directory names'}")
    if kind == "escalation" and detail.get("notify"):
        lines.append(f"*Escalated to:* {named(list(detail['notify']), slack_ids)}")
    blocks.append(_section("\n".join(lines)))
    approved_by = [a.approver for a in approvals if a.verdict == "approve"]
    if approved_by and state == PENDING:
        blocks.append(_context(f"approved so far by {escape(', '.join(approved_by))}"))
    outcome = _outcome(req, state, approvals)
    if outcome is None:
        blocks.append(_actions(req, detail, console_link))
    else:
        blocks.append(_section(outcome))
    if note:
        blocks.append(_context(note))
    blocks.append(_context(f"request {req.id} · policy revision {escape(req.revision)}"))
    text = f"{title.strip('*')}: {asks}" + (f" — {_plain(outcome)}" if outcome else "")
    return text, blocks


def _actions(req: Request, detail: dict[str, Any], console_link: str | None) -> dict[str, Any]:
    if detail.get("chat_approve"):
        elements = [
            _button("Approve", action_id=APPROVE, value=req.id, style="primary"),
            _button("Deny", action_id=DENY, value=req.id, style="danger"),
        ]
        if console_link:
            elements.append(_button("Open in the console", action_id="console", url=console_link))
        return {"type": "actions", "block_id": f"decide:{req.id}", "elements": elements}
    # Chat may not approve this one (step-up, or the tier's chat_approval): the console.
    reasons = detail.get("console_reasons", [])
    why = "; ".join(escape(str(r.get("message", r.get("code", "")))) for r in reasons)
    if not console_link:  # no console to link to: say where instead of offering nothing
        return _section(f"Approve in the console or with `datavisa approve {req.id}`: {why}")
    button = _button("Approve in the console", action_id="console", url=console_link)
    block = _section(f"Approve in the console: {why or 'chat cannot approve this request'}")
    return block | {"block_id": f"console:{req.id}", "accessory": button | {"style": "primary"}}


def _outcome(req: Request, state: str, approvals: list[Approval]) -> str | None:
    """The outcome in words, with who decided; None while the request is pending."""
    if state == PENDING:
        return None
    by = ", ".join(a.approver for a in approvals if a.verdict == "approve")
    if state in (ACTIVE, APPROVED) or (req.approved_at and state != "denied"):
        until = f" until {rfc3339(req.expires_at)}" if req.expires_at else ""
        how = "scheduled" if state == APPROVED else f"{state}{until}"
        return f"*Approved* by {escape(by or req.ended_by or '-')}: the grant is {how}"
    if state == "denied":
        reason = f": {escape(req.end_reason)}" if req.end_reason else ""
        return f"*Denied* by {escape(req.ended_by or '-')}{reason}"
    who = f" by {escape(req.ended_by)}" if req.ended_by and req.ended_by != "system" else ""
    return f"*{state.capitalize()}*{who}"


def _plain(text: str | None) -> str:
    return (text or "").replace("*", "")


def expiry_message(
    req: Request, console_link: str | None, now: float
) -> tuple[str, list[dict[str, Any]]]:
    """A grant about to expire, to its holder."""
    left = format_duration(max(0.0, (req.expires_at or now) - now))
    text = (
        f"Your grant {req.id} to {req.resource} ({', '.join(req.actions)}) expires at "
        f"{rfc3339(req.expires_at or now)} (in {left})"
    )
    how = f"Extend it with `datavisa extend {req.id} --for 30m`"
    if console_link:
        how += f" or in the <{console_link}|console>"
    blocks = [
        _section(f"*Your grant is about to expire*\n{escape(text)}"),
        _section(how + ", or let it end."),
        _context(f"grant {req.id} · policy revision {escape(req.revision)}"),
    ]
    return text, blocks


def outcome_message(
    req: Request, approvals: list[Approval], console_link: str | None, now: float
) -> tuple[str, list[dict[str, Any]]]:
    """What became of a request, to its requester."""
    outcome = _outcome(req, effective_state(req, now), approvals) or "*Still pending*"
    what = f"extension of {req.parent_id}" if req.kind == "extension" else "request"
    text = f"Your {what} {req.id} to {req.resource}: {_plain(outcome)}"
    blocks = [_section(f"*Your {what}* `{req.id}` to {escape(req.resource)}\n{outcome}")]
    if console_link:
        blocks.append(_context(f"<{console_link}|Open it in the console>"))
    return text, blocks
