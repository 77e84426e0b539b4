"""`datavisa`: ask for, approve and check just-in-time access to data where it lives."""

from __future__ import annotations

from pathlib import Path

import click
from datavisa.engine import __version__, audit
from datavisa.engine.errors import DataVisaError
from datavisa.engine.opa import find_opa, opa_version
from datavisa.engine.runtime import local_engine
from datavisa.engine.store import Store

from . import output
from .options import (
    actor_option,
    db_option,
    duration,
    json_option,
    location_option,
    opa_option,
)


class DataVisaGroup(click.Group):
    """Turns the engine's errors into a message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DataVisaError as e:
            raise click.ClickException(str(e)) from e


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    try:
        binary = find_opa()
        opa = f"OPA {opa_version(binary)} ({binary})"
    except DataVisaError as e:
        opa = f"OPA not available: {e}"
    click.echo(f"datavisa {__version__}\n{opa}")
    ctx.exit()


@click.group(cls=DataVisaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show DataVisa's version and the OPA it will use.",
)
def cli() -> None:
    """Just-in-time, data-residency-aware access approval, decided by OPA.

    Ask for time-limited access to a dataset, have an eligible approver approve it,
    and let services check every access against policy written in Rego.

    \b
    Try it:
      datavisa demo
      datavisa request eu-customer-analytics --for 20m --from DE --reason "INC-1234" --as alice
      datavisa approve REQUEST_ID --as bob
      datavisa check alice eu-customer-analytics --from DE
    """


@cli.command()
@click.argument("resource")
@click.option(
    "--for",
    "duration_s",
    required=True,
    callback=duration,
    metavar="DURATION",
    help="How long the access should last once active: 90s, 15m, 1h30m.",
)
@click.option(
    "--action",
    "actions",
    multiple=True,
    default=["read"],
    show_default=True,
    help="Action wanted; repeat for several.",
)
@location_option
@click.option("--reason", default="", help="Why you need it (a ticket, an incident).")
@actor_option
@db_option
@opa_option
@json_option
def request(resource, duration_s, actions, location, reason, actor, db_path, opa_url, as_json):
    """Ask for access to RESOURCE for a while.

    Policy decides whether you may ask, how long you may have, and who must approve.

    \b
    Example:
      datavisa request eu-customer-analytics --for 1h --from DE --reason "INC-1234"
    """
    with local_engine(db_path, opa_url) as engine:
        req = engine.request(actor, resource, list(actions), duration_s, location, reason)
    _print_request(req, as_json)


@cli.command()
@click.argument("request_id")
@actor_option
@db_option
@opa_option
@json_option
def approve(request_id, actor, db_path, opa_url, as_json):
    """Approve request REQUEST_ID as an eligible approver.

    The grant becomes active once the approvals policy requires are in.

    \b
    Example:
      datavisa approve 3f9c2a71b0de --as bob
    """
    with local_engine(db_path, opa_url) as engine:
        req = engine.approve(request_id, actor)
    _print_request(req, as_json)


@cli.command()
@click.argument("subject")
@click.argument("resource")
@click.option("--action", default="read", show_default=True, help="The action to check.")
@location_option
@db_option
@opa_option
@json_option
def check(subject, resource, action, location, db_path, opa_url, as_json):
    """May SUBJECT do an action on RESOURCE from a country, now?

    Exits 0 when allowed and 1 when denied, so scripts can branch on it.

    \b
    Example:
      datavisa check alice eu-customer-analytics --action read --from DE
    """
    with local_engine(db_path, opa_url) as engine:
        decision = engine.check(subject, resource, action, location)
    if as_json:
        output.echo_json(decision.to_dict())
    else:
        click.echo(output.describe_decision(decision))
    if not decision.allow:
        raise SystemExit(1)


@cli.command()
@click.argument("request_id")
@db_option
@json_option
def show(request_id, db_path, as_json):
    """Show request REQUEST_ID, its approvals and its grant."""
    store = Store(db_path)
    req = store.get(request_id)
    if req is None:
        raise DataVisaError(f"no request with id {request_id!r}")
    _print_request(req, as_json)


@cli.command(name="list")
@click.option("--state", help="Only requests in this state (pending, active, expired...).")
@db_option
@json_option
def list_(state, db_path, as_json):
    """List requests and grants, oldest first."""
    store = Store(db_path)
    reqs = store.requests("state = ?", [state]) if state else store.requests()
    if as_json:
        output.echo_json([output.request_dict(r) for r in reqs])
    elif reqs:
        click.echo(output.requests_table(reqs))
    else:
        click.echo("no requests")


@cli.group(name="audit")
def audit_() -> None:
    """Read and verify the hash-chained audit trail."""


@audit_.command()
@click.argument("request_id", required=False)
@db_option
@json_option
def trail(request_id, db_path, as_json):
    """Print the audit events, all or those of REQUEST_ID."""
    events = audit.trail(Store(db_path).db, request_id)
    if as_json:
        output.echo_json(events)
    else:
        click.echo(output.audit_table(events))


@audit_.command()
@db_option
def verify(db_path: Path):
    """Walk the hash chain; exit 1 at the first event that was changed or moved."""
    verdict = audit.verify(Store(db_path).db)
    if not verdict.ok:
        raise DataVisaError(
            f"audit chain broken at event {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.checked} events before it are intact)"
        )
    click.echo(f"audit chain intact: {verdict.checked} events")


def _print_request(req, as_json: bool) -> None:
    if as_json:
        output.echo_json(output.request_dict(req))
    else:
        click.echo(output.describe_request(req))


# Commands that live in modules of their own register themselves here.
from . import demo, policy  # noqa: E402

cli.add_command(demo.demo)
cli.add_command(policy.policy)
