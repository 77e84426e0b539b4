"""`datavisa init`: a new deployment in one folder, ready for `datavisa serve --config`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from datavisa.engine.api.config import DEFAULT_LISTEN


@click.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--admin",
    required=True,
    metavar="NAME",
    help="The person (of the directory, policy/data/subjects.yaml) who gets the first admin token.",
)
@click.option(
    "--listen",
    default=DEFAULT_LISTEN,
    show_default=True,
    metavar="HOST:PORT",
    help="Where the server will listen.",
)
def init(directory: Path, admin: str, listen: str) -> None:
    """Set up a deployment in DIRECTORY (new or empty), and print its first admin token.

    \b
    It writes:
      datavisa.yaml      the server's config, with comments (paths beside it)
      data/              the store and its log key (mode 0700)
      policy/            the deployment's own policy data (as `datavisa policy init`)
      datavisa.service   a systemd unit running `datavisa serve --config ...`

    The admin token is printed once, on standard output, and never shown again.

    \b
    Example:
      datavisa init /srv/datavisa --admin erin > erin.token
      datavisa serve --config /srv/datavisa/datavisa.yaml
    """
    from datavisa.engine.api.deployment import CONFIG
    from datavisa.engine.api.deployment import init as write

    datavisa = Path(sys.argv[0]).resolve() if Path(sys.argv[0]).name == "datavisa" else None
    datavisa = datavisa or Path(sys.executable).with_name("datavisa")
    written, token = write(directory, admin, datavisa, listen, time.time())
    for path in written:
        click.echo(f"wrote {path}", err=True)
    config = directory.expanduser().resolve() / CONFIG
    click.echo(token)
    click.echo(
        f"admin token for {admin} (shown only now); start the server with:\n"
        f"  datavisa serve --config {config}",
        err=True,
    )
