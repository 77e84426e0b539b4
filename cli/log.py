"""`datavisa log`: query, follow, verify, export and prune the decision log."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from datavisa.engine.ledger.decision_log import DecisionLog, load_key
from datavisa.engine.model.durations import rfc3339
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.store import Store, open_store

from . import output
from .options import db_option, json_option, past


@contextmanager
def _log(db_path: Path | str) -> Iterator[DecisionLog]:
    store = open_store(db_path)
    try:
        yield DecisionLog(store, load_key(db_path))
    finally:
        store.close()


_filters = [
    click.option("--subject", help="Only decisions about this subject."),
    click.option("--resource", help="Only decisions about this resource."),
    click.option("--result", type=click.Choice(["allow", "deny"]), help="Only allows or denies."),
    click.option("--reason", metavar="CODE", help="Only denials with this reason code."),
    click.option("--grant", "grant_id", metavar="ID", help="Only decisions naming this grant."),
    click.option("--since", callback=past, metavar="WHEN", help="From this time (or 1h ago)."),
    click.option("--until", callback=past, metavar="WHEN", help="Before this time."),
]


def filter_options(f):
    for option in reversed(_filters):
        f = option(f)
    return f


def _query(log: DecisionLog, filters: dict[str, Any], after: int, limit: int) -> list[dict]:
    result = filters.pop("result", None)
    return log.query(
        **filters, allow=None if result is None else result == "allow", after=after, limit=limit
    )


@click.group(invoke_without_command=True)
@filter_options
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="At most this many decisions (the oldest that match).")  # fmt: skip
@click.option("--follow", "-f", is_flag=True, help="Keep printing decisions as they arrive.")
@db_option
@json_option
@click.pass_context
def log(ctx, limit, follow, db_path, as_json, **filters):
    """Every decision asked of the policy: who, what, where, when, and the answer.

    With no subcommand, print the decisions that match the filters, oldest first.

    \b
    Examples:
      datavisa log --subject alice --since 1h
      datavisa log --result deny --reason location_not_permitted
      datavisa log --follow
      datavisa log --grant 3f9c2a71b0de    # and the statements its database role ran
      datavisa log verify
      datavisa log export --format jsonl > decisions.jsonl
    """
    if ctx.invoked_subcommand is not None:
        return
    grant = filters.get("grant_id")
    with _log(db_path) as decisions:
        events = _query(decisions, dict(filters), 0, limit)
        _print(events, as_json, header=True)
        after = events[-1]["seq"] if events else 0
        ran = _activity(decisions.store, grant, 0, as_json, header=True) if grant else 0
        while follow:
            time.sleep(0.5)
            events = _query(decisions, dict(filters), after, 1000)
            _print(events, as_json, header=False)
            after = events[-1]["seq"] if events else after
            if grant:
                ran = _activity(decisions.store, grant, ran, as_json, header=False)


def _activity(store: Store, grant_id: str, after: int, as_json: bool, header: bool) -> int:
    """Print the statements grant `grant_id`'s database role ran after `after`; the last
    seq printed."""
    from .provisioned import output_activity

    rows = store.activity(grant_id, after)
    if header and rows and not as_json:
        click.echo(f"statements run under grant {grant_id}:")
    for row in rows:
        click.echo(
            json.dumps({"activity": row}, sort_keys=True) if as_json else output_activity(row)
        )
    return rows[-1]["seq"] if rows else after


def _print(events: list[dict], as_json: bool, header: bool) -> None:
    if as_json:
        for event in events:
            click.echo(json.dumps(event, sort_keys=True))
    elif events or header:
        click.echo(output.decision_table(events, header=header) or "no decisions")


@log.command()
@db_option
def verify(db_path):
    """Check the chain and its signed checkpoints; exit 1 at the first bad record.

    Catches an edited, deleted, reordered or inserted record, and a tail cut off up to
    the last checkpoint. Needs the same log key the records were signed with.

    \b
    Example:
      datavisa log verify
    """
    with _log(db_path) as decisions:
        verdict = decisions.verify()
    if not verdict.ok:
        raise DataVisaError(
            f"decision log broken at record {verdict.first_bad_seq}: {verdict.problem} "
            f"({verdict.checked} records before it are intact)"
        )
    click.echo(
        f"decision log intact: {verdict.checked} records, {verdict.checkpoints} signed checkpoints"
    )


@log.command()
@filter_options
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True,
              help="One OPA decision-log event per line, for a SIEM.")  # fmt: skip
@click.option("--output", "-o", "out", type=click.File("w"), default="-",
              help="File to write (default: stdout).")  # fmt: skip
@db_option
def export(fmt, out, db_path, **filters):
    """Write the decisions that match the filters as OPA decision-log events.

    \b
    Example:
      datavisa log export --since 24h -o decisions.jsonl
    """
    written, after = 0, 0
    with _log(db_path) as decisions:
        while events := _query(decisions, dict(filters), after, 1000):
            after, written = events[-1]["seq"], written + len(events)
            for event in events:
                event.pop("seq")
                out.write(json.dumps(event, sort_keys=True) + "\n")
    click.echo(f"exported {written} decisions", err=True)


@log.command()
@click.option("--before", required=True, callback=past, metavar="WHEN",
              help="Delete decisions older than this time, or this long ago (90d).")  # fmt: skip
@db_option
def prune(before, db_path):
    """Delete old decisions; a signed checkpoint anchors the rest, which still verifies.

    \b
    Example:
      datavisa log prune --before 400d
    """
    with _log(db_path) as decisions:
        gone = decisions.prune(before)
    click.echo(f"pruned {gone} decisions older than {rfc3339(before)}")


@log.command()
@db_option
def checkpoint(db_path):
    """Sign the head of the log now (`datavisa serve` does this every minute).

    \b
    Example:
      datavisa log checkpoint
    """
    with _log(db_path) as decisions:
        row = decisions.checkpoint()
    click.echo(f"checkpoint at record {row['seq']}" if row else "the log is empty")
