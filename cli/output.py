"""How records look on a terminal: times both relative and absolute, aligned tables."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

import click
from datavisa.engine.decisions import Decision
from datavisa.engine.durations import format_duration, rfc3339
from datavisa.engine.store import Request


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
    for key in ("created_at", "pending_until", "activated_at", "expires_at", "ended_at"):
        out[key] = rfc3339(out[key]) if out[key] is not None else None
    return out


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(line.rstrip() for line in lines)


def requests_table(reqs: list[Request]) -> str:
    now = time.time()
    rows = [
        [
            r.id,
            r.state,
            r.requester,
            r.resource,
            ",".join(r.actions),
            ",".join(r.countries),
            format_duration(r.duration_s),
            when(r.expires_at if r.expires_at else r.pending_until, now),
        ]
        for r in reqs
    ]
    return table(rows, ["id", "state", "requester", "resource", "actions", "from", "for", "until"])


def describe_request(req: Request) -> str:
    needs = ", ".join(f"{a['count']} from {a['group']}" for a in req.approvals_required)
    lines = [
        f"request {req.id}: {req.state}",
        f"  requester   {req.requester}, from {req.location}",
        f"  resource    {req.resource} ({', '.join(req.actions)})",
        f"  duration    {format_duration(req.duration_s)}",
        f"  reason      {req.reason or '-'}",
        f"  approvals   {needs or 'none needed'}",
        f"  created     {when(req.created_at)}",
    ]
    if req.state == "pending":
        lines.append(f"  lapses      {when(req.pending_until)}")
    if req.activated_at:
        lines.append(f"  active      {when(req.activated_at)}")
        lines.append(f"  expires     {when(req.expires_at)}")
    lines.append(f"  revision    {req.revision}")
    return "\n".join(lines)


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
