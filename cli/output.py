"""How records look on a terminal: times both relative and absolute, aligned tables."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click

from datavisa.engine.model.decision import Decision
from datavisa.engine.model.durations import format_duration, rfc3339
from datavisa.engine.model.errors import (
    Conflict,
    DataVisaError,
    Denied,
    NotFound,
    NotYetEnforced,
    StorageUnavailable,
)
from datavisa.engine.model.records import Alert, Approval, Request

_TIMES = (
    "created_at", "pending_until", "start_at", "activate_by", "approved_at", "activated_at",
    "expires_at", "ended_at", "review_due", "reviewed_at", "delete_by", "deleted_at",
)  # fmt: skip


def when(epoch_s: float | None, now: float | None = None) -> str:
    """`2026-11-26T22:31:05Z (in 20s)` or `... (3m ago)`."""
    if epoch_s is None:
        return "-"
    delta = epoch_s - (time.time() if now is None else now)
    rel = f"in {format_duration(delta)}" if delta >= 0 else f"{format_duration(-delta)} ago"
    return f"{rfc3339(epoch_s)} ({rel})"


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def request_dict(req: Request) -> dict[str, Any]:
    out = asdict(req)
    for key in _TIMES:
        out[key] = rfc3339(out[key]) if out[key] is not None else None
    return out


def approval_dict(approval: Approval) -> dict[str, Any]:
    return {**asdict(approval), "at": rfc3339(approval.at)}


def event_dict(event: dict[str, Any]) -> dict[str, Any]:
    return {**event, "at": rfc3339(event["at"])}


def print_request(req: Request, as_json: bool) -> None:
    if as_json:
        echo_json(request_dict(req))
    else:
        click.echo(describe_request(req))


def print_requests(
    reqs: list[Request], as_json: bool, table: Callable[[list[Request]], str], none: str
) -> None:
    """A listing: JSON, a table, or `none` when there is nothing to list."""
    if as_json:
        echo_json([request_dict(r) for r in reqs])
    else:
        click.echo(table(reqs) if reqs else none)


def table(rows: list[list[Any]], headers: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def _until(req: Request) -> float | None:
    """The next time that matters for a record: expiry, lapse, or when it ended."""
    return {
        "pending": req.pending_until,
        "approved": req.activate_by,
        "active": req.expires_at,
    }.get(req.state, req.ended_at)


def requests_table(reqs: list[Request]) -> str:
    now = time.time()
    rows = [
        [
            r.id,
            r.state,
            "" if r.kind == "access" else r.kind,
            r.requester,
            r.resource,
            ",".join(r.actions),
            ",".join(r.countries),
            format_duration(r.duration_s),
            when(_until(r), now),
        ]
        for r in reqs
    ]
    headers = ["id", "state", "kind", "requester", "resource", "actions", "from", "for", "until"]
    return table(rows, headers)


def transfers_table(reqs: list[Request]) -> str:
    now = time.time()
    rows = [
        [
            r.id,
            r.state,
            r.requester,
            r.resource,
            r.target_region,
            r.importer or "-",
            format_duration(r.duration_s),
            when(_until(r), now),
            when(r.delete_by, now) if r.deleted_at is None else "deleted",
        ]
        for r in reqs
    ]
    headers = ["id", "state", "requester", "resource", "to", "importer", "window", "until"]
    return table(rows, [*headers, "delete by"])


def describe_request(
    req: Request, approvals: list[Approval] | None = None, events: list[dict] | None = None
) -> str:
    needs = ", ".join(f"{a['count']} from {a['group']}" for a in req.approvals_required)
    kind = {
        "breakglass": "break-glass grant",
        "extension": "extension request",
        "transfer": "transfer",
    }.get(req.kind, "request")
    lines = [
        f"{kind} {req.id}: {req.state}",
        f"  requester   {req.requester}"
        + ("" if req.kind == "transfer" else f", from {req.location}"),
        f"  resource    {req.resource} ({', '.join(req.actions)})",
        f"  duration    {format_duration(req.duration_s)}",
        f"  reason      {req.reason or '-'}",
    ]
    if req.parent_id:
        lines.append(f"  extends     {req.parent_id}")
    if req.kind == "transfer":
        keep = "for ever" if req.retention_s is None else format_duration(req.retention_s)
        lines.append(f"  copy to     {req.target_region}, by {req.importer or 'your entity'}")
        lines.append(f"  kept        {keep}")
        if req.individuals is not None:
            lines.append(
                f"  carries     {req.individuals} individuals, "
                f"{req.sensitive_individuals} with sensitive data"
            )
        for e in req.exports:
            lines.append(
                f"  counted     {e['exporter']} {e['year']}: "
                f"{e['before_individuals'] + e['individuals']} individuals, "
                f"{e['before_sensitive_individuals'] + e['sensitive_individuals']} sensitive "
                f"({e['route'].replace('_', ' ')})"
            )
    if req.kind != "breakglass":
        lines.append(f"  approvals   {needs or 'none needed'}")
    optional = [
        ("created", req.created_at),
        ("lapses", req.pending_until if req.state == "pending" else None),
        ("starts", req.start_at),
        ("activate by", req.activate_by if req.state == "approved" else None),
        ("active", req.activated_at),
        ("expires", req.expires_at),
        ("review due", req.review_due if req.reviewed_at is None else None),
        ("delete by", req.delete_by if req.deleted_at is None else None),
        ("deleted", req.deleted_at),
        ("ended", req.ended_at),
    ]
    lines += [f"  {label:<11} {when(t)}" for label, t in optional if t is not None]
    if req.supervised:
        lines.append(f"  supervised  {_supervision(req)}")
    if req.extended_s:
        lines.append(f"  extended    by {format_duration(req.extended_s)}")
    if req.ended_by:
        lines.append(
            f"  ended by    {req.ended_by}" + (f": {req.end_reason}" if req.end_reason else "")
        )
    if req.reviewed_at is not None:
        lines.append(
            f"  reviewed    {req.review_outcome} by {req.reviewed_by}, {when(req.reviewed_at)}"
        )
    lines.append(f"  revision    {req.revision}")
    for a in approvals or []:
        lines.append(
            f"  {a.verdict + 'd':<11} by {a.approver} from {a.location or '-'}, {when(a.at)}"
        )
    if events:
        lines += ["", audit_table(events)]
    return "\n".join(lines)


_PRESENCE = {
    "present": "a supervisor is present: the grant works",
    "absent": "no supervisor present: login refused, checks deny",
    "ended": "no supervisor present past the grace: login refused, sessions ended",
}


def _supervision(req: Request) -> str:
    """What `show` says of a supervised grant's presence (datavisa watch --supervise)."""
    numbers = req.supervision
    said = f"grace {format_duration(int(numbers.get('grace_s', 0)))}"
    if req.state != "active" or req.supervision_state is None:
        return f"yes ({said})"
    return f"{_PRESENCE.get(req.supervision_state, req.supervision_state)} since " + (
        f"{when(req.supervision_since)} ({said})"
    )


def describe_decision(decision: Decision) -> str:
    if decision.allow:
        grant = decision.result.get("grant_id")
        extra = f" by grant {grant} until {decision.result['expires_at']}" if grant else ""
        return click.style("allow", fg="green", bold=True) + extra
    reasons = "\n".join(f"  {r['code']}: {r['message']}" for r in decision.reasons)
    return click.style("deny", fg="red", bold=True) + "\n" + reasons


def audit_table(events: list[dict[str, Any]]) -> str:
    rows = [
        [
            e["seq"],
            rfc3339(e["at"]),
            e["actor"],
            e["event"],
            e["request_id"] or "-",
            e["detail"].get("state", "-"),
            (e["decision_id"] or "-")[:8],
            e["hash"][:12],
        ]
        for e in events
    ]
    return table(rows, ["seq", "at", "actor", "event", "request", "state", "decision", "hash"])


def decision_table(events: list[dict[str, Any]], header: bool = True) -> str:
    """Decision-log events as rows: what was asked, about whom, and the answer."""
    rows = []
    for e in events:
        inp, res = (e.get(k) if isinstance(e.get(k), dict) else {} for k in ("input", "result"))
        answer = {True: "allow", False: "deny"}.get(res.get("allow"), "-")
        codes = ",".join(dict.fromkeys(r.get("code", "?") for r in res.get("reasons", [])))
        rows.append([
            e["seq"], str(e.get("timestamp", ""))[:19] + "Z", _decision_name(e.get("path")),
            inp.get("subject") or inp.get("approver") or inp.get("actor") or "-",
            inp.get("resource") or (inp.get("request") or {}).get("resource") or "-",
            inp.get("location") or inp.get("approver_location") or "-",
            answer, codes or "-", res.get("grant_id") or "-", e.get("requested_by") or "-",
            e["decision_id"][:8],
        ])  # fmt: skip
    headers = ["seq", "time", "decision", "subject", "resource", "from", "answer", "reasons",
               "grant", "caller", "id"]  # fmt: skip
    text = table(rows, headers)
    return text if header else "\n".join(text.splitlines()[1:])


def _decision_name(path: Any) -> str:
    """`access` for datavisa/access/decision; an uploaded event's path may be anything."""
    parts = path.split("/") if isinstance(path, str) else []
    return parts[1] if len(parts) > 1 else str(path or "-")


def alerts_table(alerts: list[Alert]) -> str:
    """Alerts as rows: when first and last raised and how often, how loud, which rule, about
    whom, and what it saw (the newest few decision ids)."""
    rows = [
        [
            a.id, rfc3339(a.raised_at), a.severity, a.rule, a.subject, a.count,
            rfc3339(a.last_raised_at) if a.last_raised_at is not None else "-", a.state,
            ",".join(e[:8] for e in a.evidence[-3:]) or "-", a.message,
        ]
        for a in alerts
    ]  # fmt: skip
    headers = [
        "id", "raised", "severity", "rule", "subject", "count", "last raised", "state",
        "evidence", "message",
    ]  # fmt: skip
    return table(rows, headers)


def error_dict(e: DataVisaError) -> dict[str, Any]:
    """An engine error as the API words it: a code by its kind, the message, the reasons
    of a denial, the record a not-yet-enforced change was made to."""
    error: dict[str, Any] = {"code": _ERROR_CODES.get(type(e), "invalid"), "message": str(e)}
    if isinstance(e, Denied):
        error |= {"reasons": e.decision.reasons, "decision_id": e.decision.decision_id}
    if isinstance(e, NotYetEnforced):
        error |= {"pending_sinks": e.pending, "record": request_dict(e.record)}
    return error


_ERROR_CODES = {
    NotFound: "not_found",
    Conflict: "conflict",
    Denied: "denied",
    NotYetEnforced: "not_yet_enforced",
    StorageUnavailable: "storage_unavailable",
}
