"""`datavisa db`: the store's schema, backups, and moving a deployment onto PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import click

from datavisa.engine.ledger import audit
from datavisa.engine.ledger.decision_log import KEY_ENV, DecisionLog, key_file, load_key, write_key
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.store import is_url, open_store
from datavisa.engine.store.backup import PAGES_A_STEP, copy_sqlite
from datavisa.engine.store.move import copy_store

from .options import STORE_LOCATION, db_option


@click.group()
def db() -> None:
    """The store's schema, backups and restores, and moving a store onto PostgreSQL."""


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
    keyfile = key_file(db_path)
    if not is_url(db_path) and keyfile.exists() and not os.environ.get(KEY_ENV):
        click.echo(f"give every engine on it the log key: ${KEY_ENV} = the contents of {keyfile}")


def _verified(db_path: Path) -> str:
    """Both hash chains of the SQLite store at `db_path` checked, read-only, with the log
    key beside it (or $DATAVISA_LOG_KEY); what was checked, or a DataVisaError."""
    store = open_store(db_path, readonly=True)
    try:
        trail = audit.verify(store.db)
        if not trail.ok:
            raise DataVisaError(
                f"{db_path}: audit trail broken at event {trail.first_bad_seq}: {trail.problem}"
            )
        if not os.environ.get(KEY_ENV) and not key_file(db_path).exists():
            raise DataVisaError(
                f"no log key for {db_path}: put it in {key_file(db_path)} or ${KEY_ENV}"
            )
        log = DecisionLog(store, load_key(db_path)).verify()
        if not log.ok:
            raise DataVisaError(
                f"{db_path}: decision log broken at record {log.first_bad_seq}: {log.problem}"
            )
    finally:
        store.close()
    return (
        f"audit trail intact ({trail.checked} events), decision log intact "
        f"({log.checked} records, {log.checkpoints} signed checkpoints)"
    )


def _copy(source: Path, dest: Path) -> None:
    def progress(done: int, total: int) -> None:
        if total > 4 * PAGES_A_STEP:  # say nothing for a small file
            click.echo(f"\r  {done * 100 // total}% of {total} pages", nl=False, err=True)

    pages = copy_sqlite(source, dest, progress)
    if pages > 4 * PAGES_A_STEP:
        click.echo("", err=True)
    key = key_file(source)
    if key.exists() and not key_file(dest).exists():
        write_key(key_file(dest), key.read_text())


def _sqlite_only(db_path: Path | str, verb: str) -> Path:
    if is_url(db_path):
        raise DataVisaError(
            f"db {verb} copies an SQLite file; back a PostgreSQL store up with pg_dump and "
            "restore it with pg_restore, then run `datavisa audit verify` and `datavisa log "
            "verify` against the restored database"
        )
    return Path(db_path)


@db.command()
@db_option
@click.option(
    "--to",
    "dest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The backup file to write (must not exist); its log key is written beside it "
    "as FILE.logkey (mode 0600: it signs the decision log, keep it as secret as the file).",
)
def backup(db_path: Path | str, dest: Path) -> None:
    """Copy an SQLite store while engines keep running, then verify the copy's hash chains.

    SQLite's online backup API copies one committed state of the whole database; the
    copy is renamed into place only when complete. For PostgreSQL, use pg_dump.

    \b
    Example:
      datavisa db backup --db /var/lib/datavisa/datavisa.db --to /backup/datavisa-$(date +%F).db
    """
    source = _sqlite_only(db_path, "backup")
    _copy(source, dest)
    click.echo(f"backed up {source} to {dest}: {_verified(dest)}")


@db.command()
@click.argument("backup_file", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@db_option
def restore(backup_file: Path, db_path: Path | str) -> None:
    """Put BACKUP_FILE (from `datavisa db backup`) in place as --db, after verifying its
    hash chains; then verify them again in place.

    --db must not exist: stop the engines and move the old file aside first (nothing is
    overwritten). The log key beside the backup goes beside --db. An engine started on
    it brings an older backup's schema up to this release's (`datavisa db migrate`).

    \b
    Example:
      datavisa db restore /backup/datavisa-2026-12-01.db --db /var/lib/datavisa/datavisa.db
    """
    target = _sqlite_only(db_path, "restore")
    if target.exists():
        raise DataVisaError(f"{target} exists: stop the engines on it and move it aside first")
    checked = _verified(backup_file)
    click.echo(f"{backup_file}: {checked}", err=True)
    _copy(backup_file, target)
    click.echo(f"restored {backup_file} to {target}: {_verified(target)}")
