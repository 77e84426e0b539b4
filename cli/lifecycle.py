"""The lifecycle verbs: ask, decide, use and end access. Each parses, calls one engine
method, prints."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import click

from datavisa.engine.model.records import REVIEW_OUTCOMES, STATES

from . import output
from .options import (
    approver_location_option,
    duration,
    instant,
    json_option,
    location_option,
)
from .target import Target, target_options

F = Callable[..., Any]


class EvidenceOption(click.Option):
    """--evidence, whose help lists the kinds the shipped bundle knows: read from its data
    when help is shown, so a command that runs pays nothing for it."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from datavisa.engine.policy.bundle import shipped_evidence

        record = super().get_help_record(ctx)
        if record is None:
            return None
        names, text = record
        return names, text.replace("{kinds}", ", ".join(sorted(shipped_evidence())))


def engine_options(f: F) -> F:
    """Who acts, where (local store or server), printing how."""
    return json_option(target_options(f))


def _run(target: Target, verb: str, *args: Any, as_json: bool) -> None:
    """Call one engine verb as the acting subject and print the record it returns."""
    with target.engine() as engine:
        req = getattr(engine, verb)(*_with_actor(verb, target.actor(engine), args))
    output.print_request(req, as_json)


# Where the actor goes in each verb's arguments: first for those that create a request,
# after the request id for the rest.
_ACTOR_FIRST = {"request", "break_glass"}


def _with_actor(verb: str, actor: str, args: tuple) -> tuple:
    return (actor, *args) if verb in _ACTOR_FIRST else (args[0], actor, *args[1:])


def _duration_option(help: str) -> Callable[[F], F]:
    return click.option(
        "--for",
        "duration_s",
        required=True,
        callback=duration,
        metavar="DURATION",
        help=help,
    )


_actions_option = click.option(
    "--action",
    "actions",
    multiple=True,
    default=["read"],
    show_default=True,
    help="Action wanted; repeat for several.",
)


@click.command()
@click.argument("resource")
@_duration_option("How long the access should last once active: 90s, 15m, 1h30m.")
@_actions_option
@location_option
@click.option("--reason", default="", help="Why you need it (a ticket, an incident).")
@click.option(
    "--start",
    "start_at",
    callback=instant,
    metavar="WHEN",
    help="Scheduled start: a time (2026-11-27T09:00:00Z) or a delay (2h). Once approved, "
    "activate it with `datavisa activate` from then until policy's activation deadline.",
)
@click.option(
    "--evidence",
    cls=EvidenceOption,
    multiple=True,
    metavar="KIND",
    help="Evidence on file for a transfer basis ({kinds}); repeat for several. Policy "
    "refuses a kind the data's jurisdiction does not know, naming those it does.",
)
@engine_options
def request(resource, duration_s, actions, location, reason, start_at, evidence, target, as_json):
    """Ask for access to RESOURCE for a while.

    Policy decides whether you may ask, how long you may have, and who must approve. The
    duration starts when the grant activates, not now.

    \b
    Examples:
      datavisa request eu-customer-analytics --for 1h --from DE --reason "INC-1234"
      datavisa request eu-customer-analytics --for 30m --from DE --reason x --start 2h
    """
    args = (resource, list(actions), duration_s, location, reason, start_at, list(evidence))
    _run(target, "request", *args, as_json=as_json)


@click.command(name="break-glass")
@click.argument("resource")
@_duration_option("How long the emergency access lasts; policy caps it (15m by default).")
@_actions_option
@location_option
@click.option("--reason", required=True, help="The emergency: an incident number and what broke.")
@engine_options
def break_glass(resource, duration_s, actions, location, reason, target, as_json):
    """Take emergency access to RESOURCE now, without waiting for approval.

    The grant is flagged, short, and must be reviewed afterwards by an approver; while a
    review of yours is overdue, you cannot break glass again.

    \b
    Example:
      datavisa break-glass eu-customer-analytics --for 10m --from DE --reason "INC-99 outage"
    """
    args = (resource, list(actions), duration_s, location, reason)
    _run(target, "break_glass", *args, as_json=as_json)


@click.command()
@click.argument("request_id")
@approver_location_option
@engine_options
def approve(request_id, location, target, as_json):
    """Approve request REQUEST_ID as an eligible approver.

    The grant becomes active once the approvals policy requires are in (or, for a
    scheduled request, can be activated from its start).

    \b
    Example:
      datavisa approve 3f9c2a71b0de --as bob --from DE
    """
    _run(target, "approve", request_id, location, as_json=as_json)


@click.command()
@click.argument("request_id")
@click.option("--reason", default="", help="Why, for the requester and the audit trail.")
@engine_options
def deny(request_id, reason, target, as_json):
    """Deny request REQUEST_ID: one deny ends it.

    \b
    Example:
      datavisa deny 3f9c2a71b0de --as bob --reason "use the anonymised extract"
    """
    _run(target, "deny", request_id, reason, as_json=as_json)


@click.command()
@click.argument("request_id")
@engine_options
def cancel(request_id, target, as_json):
    """Withdraw your request REQUEST_ID before it is active.

    \b
    Example:
      datavisa cancel 3f9c2a71b0de
    """
    _run(target, "cancel", request_id, as_json=as_json)


@click.command()
@click.argument("request_id")
@engine_options
def activate(request_id, target, as_json):
    """Start your approved, scheduled grant REQUEST_ID; its duration runs from now.

    \b
    Example:
      datavisa activate 3f9c2a71b0de
    """
    _run(target, "activate", request_id, as_json=as_json)


@click.command()
@click.argument("grant_id")
@click.option("--reason", default="", help="Why, for the audit trail.")
@click.option(
    "--force",
    is_flag=True,
    help="Admin only, with --reason: give up removing the grant from the data systems "
    "that have not confirmed it (audited, raised as a critical alert).",
)
@engine_options
def revoke(grant_id, reason, force, target, as_json):
    """End grant GRANT_ID now, as an approver of the data or an admin.

    When this returns, every access check on the grant is already denied. Where a data
    system (a database) has not confirmed the removal yet, the grant shows as revoking
    and the engine retries; only an admin may give that up, with --force.

    \b
    Examples:
      datavisa revoke 3f9c2a71b0de --as bob --reason "incident closed"
      datavisa revoke 3f9c2a71b0de --force --reason "database decommissioned" --as root
    """
    if not force:
        _run(target, "revoke", grant_id, reason, as_json=as_json)
        return
    from datavisa.engine.model.errors import NotYetEnforced

    from .provisioned import abandon

    if not reason.strip():
        raise click.UsageError("--force needs --reason: it goes to the audit trail and the alert")
    with target.engine() as engine:
        actor = target.actor(engine)
        if engine.get(grant_id).state in ("active", "approved"):
            with contextlib.suppress(NotYetEnforced):  # what --force is for
                engine.revoke(grant_id, actor, reason)
        sinks = abandon(engine, grant_id, actor, reason)
        req = engine.get(grant_id)
    if as_json:
        output.echo_json({**output.request_dict(req), "abandoned": sinks})
    else:
        click.echo(f"grant {grant_id} is {req.state}; removal from {', '.join(sinks)} abandoned")


@click.command()
@click.argument("grant_id")
@click.option("--reason", default="", help="Why, for the audit trail.")
@engine_options
def relinquish(grant_id, reason, target, as_json):
    """Give your grant GRANT_ID back before it expires.

    \b
    Example:
      datavisa relinquish 3f9c2a71b0de --reason "fixed, no longer needed"
    """
    _run(target, "relinquish", grant_id, reason, as_json=as_json)


@click.command()
@click.argument("grant_id")
@_duration_option("How much longer: 15m, 1h.")
@click.option("--reason", default="", help="Why the work needs more time.")
@engine_options
def extend(grant_id, duration_s, reason, target, as_json):
    """Ask for more time on your active grant GRANT_ID.

    An extension is a new decision: policy says how far into the grant you must be,
    how much you may add, and who approves it. Prints the extension request.

    \b
    Example:
      datavisa extend 3f9c2a71b0de --for 30m --reason "migration still running"
    """
    _run(target, "extend", grant_id, duration_s, reason, as_json=as_json)


@click.command()
@click.argument("grant_id")
@click.option(
    "--outcome",
    type=click.Choice(REVIEW_OUTCOMES),
    required=True,
    help="accepted: the emergency access was justified; rejected: it was not.",
)
@click.option("--notes", default="", help="What the review found.")
@engine_options
def review(grant_id, outcome, notes, target, as_json):
    """Review break-glass grant GRANT_ID after the fact, as an approver of the data.

    \b
    Example:
      datavisa review 3f9c2a71b0de --as bob --outcome accepted --notes "INC-99 confirmed"
    """
    _run(target, "review", grant_id, outcome, notes, as_json=as_json)


@click.command()
@click.argument("subject")
@click.argument("resource")
@click.option("--action", default="read", show_default=True, help="The action to check.")
@location_option
@json_option
@target_options
def check(subject, resource, action, location, target, as_json):
    """May SUBJECT do an action on RESOURCE from a country, now?

    Exits 0 when allowed and 1 when denied, so scripts can branch on it.

    \b
    Example:
      datavisa check alice eu-customer-analytics --action read --from DE
    """
    with target.engine() as engine:
        decision = engine.check(subject, resource, action, location)
    if as_json:
        output.echo_json(decision.to_dict())
    else:
        click.echo(output.describe_decision(decision))
    if not decision.allow:
        raise SystemExit(1)


@click.command()
@click.argument("request_id")
@json_option
@target_options
def show(request_id, target, as_json):
    """Show request REQUEST_ID with its approvals and audit events.

    \b
    Example:
      datavisa show 3f9c2a71b0de
    """
    from .provisioned import activity_of, describe

    with target.engine(policy=False) as engine:
        req = engine.get(request_id)
        approvals = engine.approvals(request_id)
        events = engine.trail(request_id)
        seen = activity_of(engine, request_id)  # where the grant took effect, what it ran
    if as_json:
        output.echo_json(
            {
                **output.request_dict(req),
                "approvals": [output.approval_dict(a) for a in approvals],
                "events": [output.event_dict(e) for e in events],
                **seen,
            }
        )
    else:
        click.echo(output.describe_request(req, approvals, events))
        if seen["provisioning"] or seen["activity"]:
            click.echo("in data systems:\n" + describe(seen))


@click.command(name="list")
@click.option("--state", type=click.Choice(sorted(STATES)), help="Only requests in this state.")
@click.option("--requester", help="Only requests of this subject.")
@click.option(
    "--overdue", is_flag=True, help="Only break-glass grants whose review is past its deadline."
)
@json_option
@target_options
def list_(state, requester, overdue, target, as_json):
    """List requests and grants, oldest first, in the state the clock says they are in.

    \b
    Examples:
      datavisa list --state pending
      datavisa list --overdue
    """
    with target.engine(policy=False) as engine:
        reqs = engine.list_requests(state, requester, overdue)
    output.print_requests(reqs, as_json, output.requests_table, "no requests")


@click.command()
@json_option
@target_options
def sweep(target, as_json):
    """Record the expiries and lapses that time has already decided.

    Access checks never wait for this: an expired grant is denied by OPA's clock. Sweeping
    writes the final states down, audits them, and drops dead grants from OPA. `datavisa
    serve` sweeps by itself; run this from a scheduler when you use the CLI alone.

    \b
    Example:
      datavisa sweep
    """
    with target.engine() as engine:
        counts = engine.sweep()
    if as_json:
        output.echo_json(counts)
    else:
        done = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))
        click.echo(f"swept: {done or 'nothing due'}")


COMMANDS = [
    request, break_glass, approve, deny, cancel, activate, revoke, relinquish, extend,
    review, check, show, list_, sweep,
]  # fmt: skip
