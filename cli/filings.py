"""`datavisa filing`: the filings a law wants within a time of an exporter's first
transfer (Vietnam's transfer impact dossier, 60 days), listed and recorded."""

from __future__ import annotations

from typing import Any

import click

from datavisa.engine.model.durations import rfc3339

from . import output
from .lifecycle import engine_options
from .options import json_option
from .target import target_options

_TIMES = ("first_transfer_at", "due_at", "filed_at")


def _dict(deadline: dict[str, Any]) -> dict[str, Any]:
    return {k: rfc3339(v) if k in _TIMES and v is not None else v for k, v in deadline.items()}


@click.group()
def filing() -> None:
    """Filings due after an exporter's first transfer.

    Some laws let data cross a border first and want a filing with the regulator within a
    time of the exporter's first transfer: Vietnam's PDP Law 91/2025/QH15 and Decree
    356/2025 want the cross-border transfer impact assessment dossier filed within 60 days
    (policy data: filing_deadlines). The first such grant or transfer to become active
    starts the exporter's deadline; once it is overdue, the monitor alerts and policy
    refuses the exporter's next such transfers until the filing is recorded here.

    \b
    Examples:
      datavisa filing list --overdue
      datavisa filing record vn_tia_dossier acme-vietnam --as petra
    """


@filing.command(name="list")
@click.option("--overdue", is_flag=True, help="Only those past due and not recorded.")
@json_option
@target_options
def list_(overdue, target, as_json):
    """List filing deadlines by due time.

    \b
    Examples:
      datavisa filing list
      datavisa filing list --overdue --json
    """
    with target.engine(policy=False) as engine:
        found = engine.filings.list(overdue)
    if as_json:
        output.echo_json([_dict(d) for d in found])
        return
    if not found:
        click.echo("no filings")
        return
    rows = [
        [
            d["filing"],
            d["exporter"],
            d["first_transfer_id"],
            output.when(d["due_at"]),
            f"by {d['filed_by']} at {rfc3339(d['filed_at'])}" if d["filed_at"] else "not filed",
        ]
        for d in found
    ]
    click.echo(output.table(rows, ["filing", "exporter", "first transfer", "due", "filed"]))


@filing.command()
@click.argument("filing_id", metavar="FILING")
@click.argument("exporter")
@engine_options
def record(filing_id, exporter, target, as_json):
    """Record that EXPORTER filed FILING (a data protection officer or an admin).

    The deadline ends, the exporter's transfers it blocked may be asked again, and the
    record is in the audit trail of the transfer that started it.

    \b
    Example:
      datavisa filing record vn_tia_dossier acme-vietnam --as petra
    """
    with target.engine() as engine:
        found = engine.filings.record(filing_id, exporter, target.actor(engine))
    if as_json:
        output.echo_json(_dict(found))
    else:
        click.echo(
            f"{found['filing']} of {found['exporter']}: filed by {found['filed_by']} at "
            f"{rfc3339(found['filed_at'])} (due {rfc3339(found['due_at'])})"
        )
