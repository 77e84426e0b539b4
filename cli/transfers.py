"""`datavisa transfer`: ask for a copy job, check it from a pipeline, report its copy
deleted, list transfers. Approve, deny, cancel, revoke, show and list them with the
lifecycle's own commands: a transfer is a kind of request."""

from __future__ import annotations

import click

from datavisa.engine.model.durations import rfc3339
from datavisa.engine.model.records import STATES

from . import output
from .lifecycle import EvidenceOption, engine_options
from .options import duration, instant, json_option
from .target import target_options

FOREVER = "forever"


def _keep(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """--keep: a duration, or forever (None)."""
    if value is None or value == FOREVER:
        return None
    return duration(ctx, param, value)


@click.group()
def transfer() -> None:
    """Copy data between regions, approved and time-bounded.

    A transfer is a request to copy a resource's data to another region: policy says
    whether it may be asked at all, who must approve it (the tier's transfer approvers,
    the data protection officer for personal data leaving its jurisdiction), and how long
    the copy may be kept. Once approved, a pipeline checks it before and during the copy;
    a copy kept for a limited time must be reported deleted by its deadline.

    \b
    Examples:
      datavisa transfer request in-upi-transactions --to aws:ap-southeast-1 --keep 24h \\
        --window 2h --reason "CHG-42 fraud model backfill"
      datavisa approve 3f9c2a71b0de --as dave --from IE
      datavisa transfer check --id 3f9c2a71b0de
      datavisa transfer deleted 3f9c2a71b0de
      datavisa transfer list --overdue
    """


@transfer.command(name="request")
@click.argument("resource")
@click.option("--to", "target_region", required=True, metavar="REGION", help="Target region.")
@click.option(
    "--importer", metavar="ENTITY", help="The legal entity operating the target, if not yours."
)
@click.option(
    "--keep",
    "retention_s",
    callback=_keep,
    metavar="DURATION|forever",
    help="How long the copy is kept: 24h, 7d, or forever (the default). Policy caps it "
    "where the data's law does (RBI payment data: 24 h abroad).",
)
@click.option(
    "--evidence",
    cls=EvidenceOption,
    multiple=True,
    metavar="KIND",
    help="Evidence on file for the transfer ({kinds}); repeat for several.",
)
@click.option("--reason", default="", help="Why: a ticket or change number.")
@click.option(
    "--requester-kind",
    metavar="KIND",
    help="Who asks, when not your own organisation: foreign_public_authority for a third "
    "country's court or authority (EU Data Act Art. 32: refused without "
    "international_agreement evidence; the customer is told).",
)
@click.option(
    "--individuals",
    type=click.IntRange(min=0),
    metavar="N",
    help="How many individuals' personal information the copy carries, all of them. "
    "Chinese personal information leaving China needs it (and --sensitive-individuals): "
    "its export route is picked by the exporter's yearly count (PIPL; 2024 Provisions).",
)
@click.option(
    "--sensitive-individuals",
    type=click.IntRange(min=0),
    metavar="N",
    help="Of those, how many with sensitive personal information.",
)
@click.option(
    "--start",
    "start_at",
    callback=instant,
    metavar="WHEN",
    help="Scheduled start: a time (2026-11-27T09:00:00Z) or a delay (2h); once approved, "
    "activate it with `datavisa activate` from then.",
)
@click.option(
    "--window",
    "duration_s",
    default="2h",
    show_default=True,
    callback=duration,
    metavar="DURATION",
    help="How long the copy job may run once approved.",
)
@engine_options
def request(
    resource,
    target_region,
    importer,
    retention_s,
    evidence,
    reason,
    requester_kind,
    individuals,
    sensitive_individuals,
    start_at,
    duration_s,
    target,
    as_json,
):
    """Ask to copy RESOURCE's data to another region.

    \b
    Examples:
      datavisa transfer request eu-customer-analytics --to aws:us-east-1 \\
        --importer acme-inc --reason "CHG-12 warehouse migration" --window 4h
      datavisa transfer request in-upi-transactions --to aws:ap-southeast-1 --keep 24h \\
        --reason "CHG-42 backfill"
      datavisa transfer request eu-service-metrics --to aws:us-east-1 --importer acme-inc \\
        --requester-kind foreign_public_authority --evidence international_agreement \\
        --reason "LEGAL-7 US court order under the EU-US MLAT"
      datavisa transfer request cn-customer-profiles --to aws:ap-northeast-1 \\
        --individuals 40000 --sensitive-individuals 0 --reason "CHG-51 CRM sync"
    """
    with target.engine() as engine:
        req = engine.transfers.request(
            target.actor(engine),
            resource,
            target_region,
            duration_s,
            reason,
            importer=importer,
            retention_s=retention_s,
            evidence=list(evidence),
            start_at=start_at,
            requester_kind=requester_kind,
            individuals=individuals,
            sensitive_individuals=sensitive_individuals,
        )
    output.print_request(req, as_json)


@transfer.command()
@click.option("--id", "transfer_id", metavar="ID", help="The transfer to check.")
@click.argument("resource", required=False)
@click.option("--to", "target_region", metavar="REGION", help="Target region (with RESOURCE).")
@click.option("--importer", metavar="ENTITY", help="The entity operating the target.")
@json_option
@target_options
def check(transfer_id, resource, target_region, importer, target, as_json):
    """May the copy run now? Exits 0 when allowed, 1 when denied.

    Name the transfer (--id), or RESOURCE and --to (and --importer): allowed only while
    an approved transfer covers exactly that, inside its window, and the copy is still
    lawful under the current policy. Every check is in the decision log.

    \b
    Examples:
      datavisa transfer check --id 3f9c2a71b0de
      datavisa transfer check eu-customer-analytics --to aws:us-east-1 --importer acme-inc
    """
    if transfer_id is None and (resource is None or target_region is None):
        raise click.UsageError("name the transfer (--id), or RESOURCE and --to")
    with target.engine() as engine:
        decision = engine.transfers.check(
            transfer_id, resource, target_region, importer, caller=target.actor(engine)
        )
    if as_json:
        output.echo_json(decision.to_dict())
    elif decision.allow:
        until = decision.result["expires_at"]
        allow = click.style("allow", fg="green", bold=True)
        click.echo(f"{allow} by transfer {decision.result['transfer_id']} until {until}")
    else:
        click.echo(output.describe_decision(decision))
    if not decision.allow:
        raise SystemExit(1)


@transfer.command()
@click.argument("transfer_id")
@engine_options
def deleted(transfer_id, target, as_json):
    """Report that the copy transfer TRANSFER_ID made is deleted.

    The requester, or a pipeline service of the data's team, reports it; a copy kept for a
    limited time must be reported by its deadline, or that requester's next transfers of
    data under the same localisation are refused.

    \b
    Example:
      datavisa transfer deleted 3f9c2a71b0de
    """
    with target.engine() as engine:
        req = engine.transfers.deleted(transfer_id, target.actor(engine))
    output.print_request(req, as_json)


@transfer.command()
@json_option
@target_options
def counts(target, as_json):
    """List the export counts: per exporter and calendar year, the individuals the
    transfers approved carried.

    China's PIPL route (exempt, standard contract or certification, CAC security
    assessment) is picked from the exporter's count of the year plus the transfer; a
    transfer adds to it when it is approved. The year is policy's (Asia/Shanghai).

    \b
    Examples:
      datavisa transfer counts
      datavisa transfer counts --json
    """
    with target.engine(policy=False) as engine:
        found = engine.transfers.counts()
    if as_json:
        output.echo_json([c | {"updated_at": rfc3339(c["updated_at"])} for c in found])
        return
    if not found:
        click.echo("no export counts")
        return
    rows = [
        [c["counter"], c["exporter"], str(c["year"]), str(c["individuals"]),
         str(c["sensitive_individuals"]), output.when(c["updated_at"])]
        for c in found
    ]  # fmt: skip
    headers = ["counter", "exporter", "year", "individuals", "sensitive", "updated"]
    click.echo(output.table(rows, headers))


@transfer.command(name="list")
@click.option("--state", type=click.Choice(sorted(STATES)), help="Only transfers in this state.")
@click.option("--requester", help="Only transfers of this subject.")
@click.option(
    "--overdue", is_flag=True, help="Only copies past their deletion deadline, not reported."
)
@json_option
@target_options
def list_(state, requester, overdue, target, as_json):
    """List transfers, oldest first, in the state the clock says they are in.

    \b
    Examples:
      datavisa transfer list --state active
      datavisa transfer list --overdue
    """
    with target.engine(policy=False) as engine:
        reqs = engine.transfers.list(state, requester, overdue)
    output.print_requests(reqs, as_json, output.transfers_table, "no transfers")
