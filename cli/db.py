"""`datavisa db`: the store's schema, and moving a deployment onto PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import click

from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.store import is_url, open_store
from datavisa.engine.store.move import copy_store

from .options import STORE_LOCATION, db_option


@click.group()
def db() -> None:
    """The store's schema, and moving a store onto PostgreSQL."""


@db.command()
@db_option
@click.option(
    "--to",
    "target",
    type=STORE_LOCATION,
    help="Copy every record of --db into this empty database (a postgresql:// URL).",
)
def migrate(db_path: Path | str, target: Path | str | None) -> None:
    """Bring the schema of --db up to this release's version; with --to, copy all of
    --db's records, sequence numbers and hash chains as they are, into an empty store.

    Stop every engine on --db first. The decision log's checkpoints are signed with
    --db's log key: give the engines on the new store that key in $DATAVISA_LOG_KEY.

    \b
    Examples:
      datavisa db migrate --db /var/lib/datavisa/datavisa.db
      datavisa db migrate --db /var/lib/datavisa/datavisa.db \\
          --to postgresql://datavisa@db.internal/datavisa
    """
    source = open_store(db_path)
    try:
        if target is None:
            click.echo(f"{source.location}: schema version {source.schema_version()}")
            return
        if str(target) == str(db_path):
            raise DataVisaError("--to names the same store as --db")
        destination = open_store(target)
        try:
            copied = copy_store(source, destination)
        except ValueError as e:
            raise DataVisaError(str(e)) from e
        finally:
            destination.close()
    finally:
        source.close()
    total = sum(copied.values())
    click.echo(f"copied {total} rows of {len(copied)} tables into {destination.location}")
    for table, rows in copied.items():
        if rows:
            click.echo(f"  {table}: {rows}")
    keyfile = Path(str(db_path) + ".logkey")
    if not is_url(db_path) and keyfile.exists() and not os.environ.get(KEY_ENV):
        click.echo(f"give every engine on it the log key: ${KEY_ENV} = the contents of {keyfile}")
