"""`datavisa opa`: the OPA DataVisa runs, found or built from its pinned Go module."""

from __future__ import annotations

from pathlib import Path

import click

from datavisa.engine.paths import installed_opa
from datavisa.engine.policy.process import install_opa, pinned_opa


@click.group()
def opa() -> None:
    """The OPA DataVisa evaluates every decision with (v1.22.x, pinned).

    \b
    DataVisa uses, in this order:
      $DATAVISA_OPA                     an opa binary you name
      .tools/bin/opa                    a checkout's own build (make setup)
      ~/.local/share/datavisa/bin/opa   what `datavisa opa install` built
      opa on PATH                       if it is of the pinned minor release
    """


@opa.command()
@click.option(
    "--to",
    "dest",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to put the binary. Default: bin/opa in DataVisa's data folder "
    "($XDG_DATA_HOME/datavisa, else ~/.local/share/datavisa), where it is found by itself.",
)
def install(dest: Path | None) -> None:
    """Build the pinned OPA from its Go module with this machine's Go.

    The Go module proxy (or GOPROXY) supplies the modules; go.sum, shipped with DataVisa,
    checks every one. Nothing else is downloaded. The first build takes a few minutes.

    \b
    Example:
      datavisa opa install && datavisa --version
    """
    target = dest or installed_opa()
    built = install_opa(target, say=lambda line: click.echo(line, err=True))
    if dest is not None and dest.resolve() != installed_opa().resolve():
        click.echo(f"DataVisa finds it there with: export DATAVISA_OPA={built}", err=True)
    click.echo(str(built))


@opa.command()
def which() -> None:
    """Print the OPA binary DataVisa would use and its version; exit 1 when there is none."""
    binary, version = pinned_opa()
    click.echo(f"{binary} (OPA {version})")
