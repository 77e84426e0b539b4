"""`datavisa audit`: read and verify the hash-chained audit trail."""

from __future__ import annotations

import click

from datavisa.engine.ledger import audit as audit_trail
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.store import open_store

from . import output
from .options import db_option, json_option


@click.group()
def audit() -> None:
    """Read and verify the hash-chained audit trail of every state change."""


@audit.command()
@click.argument("request_id", required=False)
@db_option
@json_option
def trail(request_id, db_path, as_json):
    """Print the audit events, all or those of REQUEST_ID.

    \b
    Example:
      datavisa audit trail 3f9c2a71b0de
    """
    events = audit_trail.trail(open_store(db_path).db, request_id)
    if as_json:
        output.echo_json([output.event_dict(e) for e in events])
    else:
        click.echo(output.audit_table(events))


@audit.command()
@db_option
def verify(db_path):
    """Walk the hash chain; exit 1 at the first event that was changed, removed or moved.

    \b
    Example:
      datavisa audit verify
    """
    verdict = audit_trail.verify(open_store(db_path).db)
    if not verdict.ok:
        raise DataVisaError(
            f"audit chain broken at event {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.checked} events before it are intact)"
        )
    click.echo(f"audit chain intact: {verdict.checked} events")
