"""Grants in the data systems they take effect in: `credentials` (the holder's connection
details, once) and `watch` (what the grant's role runs, live). `show`, `log --grant` and
`revoke --force` reach the same engine functions through `activity_of` and `abandon`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datavisa.engine.api.remote import RemoteEngine

from . import output
from .options import json_option, location_option
from .target import target_options

if TYPE_CHECKING:
    from datavisa.engine.lifecycle.engine import Engine

_config_option = click.option(
    "--config",
    "config_path",
    envvar="DATAVISA_CONFIG",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Without --server: the serve config whose `connections:` reach the databases "
    "(env DATAVISA_CONFIG).",
)


def _with_connections(engine: Engine | RemoteEngine, config_path: Path | None) -> None:
    """A local engine, given the serve config's connections (the server has its own)."""
    if isinstance(engine, RemoteEngine) or config_path is None:
        return
    from datavisa.engine.api import config
    from datavisa.engine.connectors.kinds import sinks

    cfg = config.load(config_path)
    if cfg.connections:
        engine.grants.sinks += sinks(
            cfg.connections, engine.store, engine.opa, engine.log, engine.revision
        )


def activity_of(engine: Engine | RemoteEngine, grant_id: str, after: int = 0) -> dict[str, Any]:
    """{provisioning, activity} of a grant, from a server or the local store."""
    if isinstance(engine, RemoteEngine):
        return engine.activity(grant_id, after)
    from datavisa.engine.lifecycle.provisioned import standing

    engine.get(grant_id)
    return {
        "provisioning": standing(engine, grant_id),
        "activity": engine.store.activity(grant_id, after),
    }


def abandon(engine: Engine | RemoteEngine, grant_id: str, actor: str, reason: str) -> list[str]:
    if isinstance(engine, RemoteEngine):
        return engine.abandon_removal(grant_id, reason)
    from datavisa.engine.lifecycle.provisioned import abandon_removal

    return abandon_removal(engine, grant_id, actor, reason)


@click.command()
@click.argument("grant_id")
@location_option
@click.option("--rotate", is_flag=True, help="Issue a new password; the old one stops working.")
@click.option(
    "--env",
    "as_env",
    is_flag=True,
    help="Print `export PG...=...` (or MYSQL_...) lines for a shell.",
)
@_config_option
@json_option
@target_options
def credentials(grant_id, location, rotate, as_env, config_path, target, as_json):
    """Get the database connection details of your grant GRANT_ID, once.

    Issued only to the grant's holder, from a country the grant allows (an access decision,
    logged); the password is shown here and stored nowhere. Run again with --rotate for a
    new one.

    \b
    Examples:
      datavisa credentials 3f9c2a71b0de --from DE --server https://datavisa.example.com
      eval "$(datavisa credentials 3f9c2a71b0de --from DE --env)" && psql   # or mariadb
      datavisa credentials 3f9c2a71b0de --from DE --rotate
    """
    with target.engine() as engine:
        actor = target.actor(engine)
        if isinstance(engine, RemoteEngine):
            issued = engine.credentials(grant_id, location, rotate)
        else:
            from datavisa.engine.lifecycle.provisioned import credentials as issue

            _with_connections(engine, config_path)
            issued = issue(engine, grant_id, actor, location, rotate)
    if as_json:
        output.echo_json(issued)
    elif as_env:
        for name, value in sorted(issued["env"].items()):
            click.echo(f"export {name}={_quoted(value)}")
    else:
        click.echo(f"grant {grant_id}: {issued['url']}")
        for name, value in sorted(issued["env"].items()):
            click.echo(f"  {name}={value}")
        click.echo("shown once: DataVisa keeps no copy (rotate with --rotate)")


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


@click.command()
@click.argument("grant_id")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=0.5, show_default=True,
              help="Seconds between looks.")  # fmt: skip
@click.option("--once", is_flag=True, help="Print what is recorded so far and stop.")
@json_option
@target_options
def watch(grant_id, interval, once, target, as_json):
    """Follow what grant GRANT_ID's database role runs, as the database logged it.

    Statements are masked as the decision log is (string literals erased). Stops when
    the grant has ended and its role is gone, or with Ctrl-C.

    \b
    Examples:
      datavisa watch 3f9c2a71b0de --server https://datavisa.example.com
      datavisa watch 3f9c2a71b0de --once --json
    """
    after = 0
    with target.engine(policy=False) as engine:
        while True:
            seen = activity_of(engine, grant_id, after)
            for row in seen["activity"]:
                after = row["seq"]
                click.echo(json.dumps(row, sort_keys=True) if as_json else output_activity(row))
            ended = engine.get(grant_id).state not in ("active", "approved", "pending")
            if once or (ended and not seen["activity"]):
                return
            time.sleep(interval)


def output_activity(row: dict[str, Any]) -> str:
    return f"{output.when(row['at'])}  {row['database']}  {row['statement']}"


def describe(seen: dict[str, Any]) -> str:
    """The provisioning and activity section of `show`."""
    lines = []
    for where in seen["provisioning"]:
        lines.append(f"  {where['sink']}: {where['state']} - {where['detail']}")
    if seen["activity"]:
        lines.append("statements run:")
        lines += ["  " + output_activity(row) for row in seen["activity"]]
    return "\n".join(lines)


COMMANDS = [credentials, watch]
