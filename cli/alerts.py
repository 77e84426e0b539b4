"""`datavisa alerts`: the alerts the monitoring rules raised, read from the local database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from datavisa.engine.api.wire import to_wire
from datavisa.engine.monitoring.monitor import SEVERITIES, STATES, Alerts
from datavisa.engine.store import open_store

from . import output
from .options import db_option, json_option


@contextmanager
def _alerts(db_path: Path | str) -> Iterator[Alerts]:
    store = open_store(db_path)
    try:
        yield Alerts(store)
    finally:
        store.close()


@click.group(invoke_without_command=True)
@click.option("--rule", help="Only alerts of this rule, such as new_country.")
@click.option("--severity", type=click.Choice(SEVERITIES), help="Only alerts of this severity.")
@click.option("--subject", help="Only alerts about this subject.")
@click.option("--state", type=click.Choice(STATES), help="Only open or only acknowledged alerts.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="At most this many alerts (the oldest that match).")  # fmt: skip
@db_option
@json_option
@click.pass_context
def alerts(ctx, rule, severity, subject, state, limit, db_path, as_json):
    """Alerts raised by the monitoring rules (rego/datavisa/monitor), oldest first.

    `datavisa serve` judges every decision against the rules as it is recorded and keeps
    the alerts in its database; this reads them there. Each cites the decisions it was
    raised on: look them up with `datavisa log`. A rule raised again about the same
    subject within its window (policy: dedup_s in monitoring.yaml) is counted on the open
    alert (COUNT, LAST RAISED, the newest evidence) rather than listed again.

    \b
    Examples:
      datavisa alerts
      datavisa alerts --state open --severity high
      datavisa alerts --rule new_country --subject alice --json
      datavisa alerts ack 7 --as erin
    """
    if ctx.invoked_subcommand is not None:
        return
    with _alerts(db_path) as table:
        found = table.query(rule=rule, severity=severity, subject=subject, state=state, limit=limit)
    if as_json:
        output.echo_json([to_wire(a) for a in found])
    else:
        click.echo(output.alerts_table(found) if found else "no alerts")


@alerts.command()
@click.argument("alert_id", type=click.IntRange(1), metavar="ID")
@click.option("--as", "as_", envvar="DATAVISA_AS", metavar="SUBJECT",
              help="Who acknowledges (env DATAVISA_AS); default: your login name.")  # fmt: skip
@db_option
@json_option
def ack(alert_id, as_, db_path, as_json):
    """Acknowledge alert ID: it leaves the open alerts, and says who saw it and when.

    \b
    Example:
      datavisa alerts ack 7 --as erin
    """
    who = as_ or os.environ.get("USER") or "unknown"
    with _alerts(db_path) as table:
        alert = table.ack(alert_id, who)
    if as_json:
        output.echo_json(to_wire(alert))
    else:
        click.echo(f"alert {alert.id} ({alert.rule}, {alert.subject}): acked by {alert.acked_by}")
