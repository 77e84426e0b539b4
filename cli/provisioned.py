"""Grants in the data systems they take effect in: `credentials` (the holder's connection
details, once) and `watch` (what the grant's role runs, live). `show`, `log --grant` and
`revoke --force` reach the same engine functions through `activity_of` and `abandon`."""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from datavisa.engine.api.remote import RemoteEngine
from datavisa.engine.model.errors import Conflict, DataVisaError, Denied, NotFound

from . import output
from .options import country, json_option, location_option
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
@click.option(
    "--supervise",
    is_flag=True,
    help="Join as the grant's supervisor: a supervised grant works only while you watch. "
    "Renews your lease while it streams and leaves on exit; commands on stdin.",
)
@click.option(
    "--from",
    "location",
    default="unknown",
    callback=country,
    metavar="COUNTRY",
    show_default=True,
    help="With --supervise: the country you supervise from (restricted data wants it inside "
    "its jurisdiction).",
)
@_config_option
@json_option
@target_options
def watch(grant_id, interval, once, supervise, location, config_path, target, as_json):
    """Follow what grant GRANT_ID's database role runs, as the database logged it.

    Statements are masked as the decision log is (string literals erased). Stops when
    the grant has ended and its role is gone, or with Ctrl-C.

    With --supervise you are the grant's supervisor (policy says who may: never its
    holder). A supervised grant's login is refused, and its open sessions end after the
    grace, whenever no supervisor is present; your watch keeps you present (a lease it
    renews every heartbeat policy sets) and leaves when it stops. Killed, or cut off, the
    lease runs out by itself and the grant pauses. While you supervise, type a line:

    \b
      end SESSION    end that session (the SESSION column of what it prints)
      revoke REASON  revoke the grant
      leave          stop supervising and stop watching

    \b
    Examples:
      datavisa watch 3f9c2a71b0de --server https://datavisa.example.com
      datavisa watch 3f9c2a71b0de --once --json
      datavisa watch 3f9c2a71b0de --supervise --from DE --server https://datavisa.example.com
    """
    after = 0
    with target.engine(policy=supervise) as engine:
        _with_connections(engine, config_path)
        watching = (
            _Supervising(engine, grant_id, target.actor(engine), location) if supervise else None
        )
        try:
            if watching is not None:
                watching.join(as_json)
            while True:
                seen = activity_of(engine, grant_id, after)
                for row in seen["activity"]:
                    after = row["seq"]
                    click.echo(json.dumps(row, sort_keys=True) if as_json else output_activity(row))
                if watching is not None and not watching.step(as_json):
                    return
                ended = engine.get(grant_id).state not in ("active", "approved", "pending")
                if once or (ended and not seen["activity"]):
                    return
                time.sleep(interval)
        finally:
            if watching is not None:
                watching.leave(as_json)


class _Supervising:
    """A supervisor's side of `watch --supervise`: join, heartbeat when due, the commands
    typed on stdin, and leave."""

    def __init__(self, engine: Engine | RemoteEngine, grant_id: str, actor: str, location: str):
        self.engine, self.grant_id, self.actor, self.location = engine, grant_id, actor, location
        self.heartbeat_s, self.last = 1.0, 0.0
        self.lines: queue.Queue[str] = queue.Queue()
        self.joined = False
        # A signal ends the watch as Ctrl-C does, so it leaves on the way out.
        signal.signal(signal.SIGTERM, _interrupted)
        threading.Thread(target=self._read, name="supervise-stdin", daemon=True).start()

    def _read(self) -> None:
        for line in sys.stdin:
            self.lines.put(line.strip())

    def _supervision(self) -> Any:
        from datavisa.engine.supervision import Supervision

        return Supervision(self.engine)

    def _renew(self) -> dict[str, Any]:
        if isinstance(self.engine, RemoteEngine):
            answer = self.engine.supervise(self.grant_id, self.location)
        else:
            answer = self._supervision().join(self.grant_id, self.actor, self.location)
        self.heartbeat_s, self.last = float(answer["heartbeat_s"]), time.monotonic()
        return answer

    def join(self, as_json: bool) -> None:
        answer = self._renew()
        self.joined = True
        if as_json:
            output.echo_json({"supervising": answer})
        else:
            click.echo(
                f"supervising grant {self.grant_id} as {self.actor}: present until "
                f"{output.when(answer['held_until'])}, renewed every {answer['heartbeat_s']:g}s; "
                f"sessions end {answer['grace_s']:g}s after no supervisor is present. "
                "Type `end SESSION`, `revoke REASON` or `leave`."
            )

    def step(self, as_json: bool) -> bool:
        """Renew the lease when a heartbeat is due, run what was typed; False to stop."""
        if time.monotonic() - self.last >= self.heartbeat_s:
            try:
                self._renew()
            except Conflict as e:  # the grant ended (revoked, expired): nothing to watch over
                click.echo(f"stopped supervising: {e}", err=True)
                self.joined = False
                return False
            except DataVisaError as e:
                if isinstance(e, (Denied, NotFound)):
                    raise  # policy no longer lets this person supervise: say why, exit 1
                click.echo(f"heartbeat failed, retrying: {e}", err=True)
        while not self.lines.empty():
            if not self._command(self.lines.get(), as_json):
                return False
        return True

    def _command(self, line: str, as_json: bool) -> bool:
        verb, _, rest = line.partition(" ")
        if verb == "":
            return True
        if verb == "leave":
            return False
        try:
            if verb == "end" and rest.strip():
                said = self._end(rest.strip())
            elif verb == "revoke":
                reason = rest.strip() or "revoked by its supervisor"
                self.engine.revoke(self.grant_id, self.actor, reason)
                said = f"grant {self.grant_id} revoked"
            else:
                said = f"unknown command {line!r}: `end SESSION`, `revoke REASON` or `leave`"
        except DataVisaError as e:
            said = f"refused: {e}"
        if as_json:
            output.echo_json({"said": said})
        else:
            click.echo(said)
        return True

    def _end(self, session: str) -> str:
        if isinstance(self.engine, RemoteEngine):
            ended = self.engine.end_session(self.grant_id, session)
        else:
            ended = self._supervision().end_session(self.grant_id, self.actor, session)
        if ended["state"] == "pending":  # recorded; the outbox retries it until it is done
            return (
                f"session {ended['session']} of grant {self.grant_id}: asked to end, not yet "
                f"done at {', '.join(ended.get('pending_sinks') or [])} (retried)"
            )
        return f"session {ended['session']} of grant {self.grant_id} ended ({ended['sink']})"

    def leave(self, as_json: bool) -> None:
        if not self.joined:
            return
        try:
            if isinstance(self.engine, RemoteEngine):
                self.engine.unsupervise(self.grant_id)
            else:
                self._supervision().leave(self.grant_id, self.actor)
            said = f"left grant {self.grant_id}: no longer supervising it"
        except DataVisaError as e:
            said = f"left grant {self.grant_id} ({e})"
        if as_json:
            output.echo_json({"said": said})
        else:
            click.echo(said)


def _interrupted(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def output_activity(row: dict[str, Any]) -> str:
    return f"{output.when(row['at'])}  {row['session']}  {row['database']}  {row['statement']}"


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
