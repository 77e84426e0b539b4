"""`datavisa doctor`: check a deployment and say what to fix."""

from __future__ import annotations

from pathlib import Path

import click

from .options import json_option


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    envvar="DATAVISA_CONFIG",
    help="The `datavisa serve` config to check (env DATAVISA_CONFIG). Default: serve's defaults.",
)
@json_option
def doctor(config_path: Path | None, as_json: bool) -> None:
    """Check a deployment part by part; exit 1 when anything needs fixing.

    Looks at what `datavisa serve --config` would use and changes nothing: the OPA (found,
    of the pinned series; or the external one answering), the policy data (valid), the
    store (reachable, at this release's schema, its clock near this machine's for
    PostgreSQL), the data systems of `connections:` (reachable), and the files holding
    secrets (the SQLite store and its log key: readable by no other user).

    \b
    Example:
      datavisa doctor --config /srv/datavisa/datavisa.yaml
    """
    from datavisa.engine.api.config import load
    from datavisa.engine.api.doctor import examine

    from . import output

    findings = examine(load(config_path))
    if as_json:
        output.echo_json([{"ok": f.ok, "part": f.part, "detail": f.detail} for f in findings])
    else:
        for f in findings:
            click.echo(f"{'ok ' if f.ok else 'FIX'}  {f.part:<12} {f.detail}")
    broken = [f for f in findings if not f.ok]
    if broken:
        if not as_json:
            click.echo(f"{len(broken)} to fix", err=True)
        raise SystemExit(1)
