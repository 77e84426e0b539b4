"""`datavisa token`: bearer tokens for the HTTP API, issued to a subject."""

from __future__ import annotations

import getpass
import os
from pathlib import Path

import click

from datavisa.engine.api.tokens import MACHINES, ROLES, USER, TokenRecord, TokenStore
from datavisa.engine.model.durations import rfc3339

from . import output
from .options import db_option, deployment, deployment_options, json_option


def _operator(as_: str | None) -> str:
    return as_ or os.environ.get("USER") or getpass.getuser()


as_option = click.option(
    "--as",
    "as_",
    envvar="DATAVISA_AS",
    metavar="NAME",
    help="Who does this, for the audit trail (env DATAVISA_AS). Default: your login name.",
)


def _record(record: TokenRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "subject": record.subject,
        "role": record.role,
        "created_at": rfc3339(record.created_at),
        "revoked_at": rfc3339(record.revoked_at) if record.revoked_at else None,
    }


@click.group()
def token() -> None:
    """Issue, list and revoke bearer tokens for `datavisa serve`.

    The server keeps only a hash of each token; the token itself is printed once, when
    it is issued. Calls made with it act as its subject. Issuing and revoking are in the
    audit trail (`datavisa audit`).

    \b
    Example:
      datavisa token issue alice
      datavisa token issue db-proxy --role service
      datavisa token issue erin --role admin
      datavisa token issue okta-scim --role scim     # the IdP's directory sync
    """


@token.command()
@click.argument("subject")
@click.option(
    "--role",
    type=click.Choice(ROLES),
    default=USER,
    show_default=True,
    help="user: acts on its own requests and grants; service: asks access checks about "
    "any subject and uploads decision logs (for PEPs); auditor: reads requests, the audit "
    "trail, the decision log and alerts, and changes nothing; admin: runs sweeps, revokes "
    "anyone's grant, acknowledges alerts; opa: a sidecar OPA's, downloads the bundles and "
    "reports its status (datavisa opa-config issues these).",
)
@deployment_options
@as_option
@db_option
@json_option
@click.pass_context
def issue(
    ctx: click.Context,
    subject: str,
    role: str,
    config_path: Path | None,
    bundle_dir: Path | None,
    as_: str | None,
    db_path: Path,
    as_json: bool,
) -> None:
    """Issue a token for SUBJECT and print it (only this once).

    A user, auditor or admin token is for a subject in the directory of the policy the
    deployment serves (its config's bundle or bundle_dir, or --bundle-dir; else the
    shipped bundles/default/subjects.yaml); a service or opa token may name any program,
    such as a database proxy or a sidecar OPA, that is no person.

    \b
    Example:
      export DATAVISA_TOKEN=$(datavisa token issue alice)
      datavisa token issue db-proxy --role service --db /var/lib/datavisa/datavisa.db
      datavisa token issue dana --config /etc/datavisa/datavisa.yaml
    """
    from datavisa.engine.policy.bundle import directory

    db_path, bundle_dir, built = deployment(ctx, config_path, bundle_dir, db_path)
    if role not in MACHINES and subject not in directory(bundle_dir, built):
        where = built or bundle_dir or "the shipped data"
        raise click.BadParameter(
            f"{subject!r} is not in the directory of {where}; a {role} token acts as a "
            "person or service it knows (a service token may name any service: --role "
            "service; a deployment's own people: --config or --bundle-dir)",
            param_hint="SUBJECT",
        )
    tokens = TokenStore(db_path)
    try:
        secret, record = tokens.issue(subject, role, actor=_operator(as_))
    finally:
        tokens.close()
    if as_json:
        output.echo_json({**_record(record), "token": secret})
    else:
        click.echo(secret)
        click.echo(f"token {record.id} for {subject} ({role}); it is not shown again", err=True)


@token.command(name="list")
@db_option
@json_option
def list_(db_path: Path, as_json: bool) -> None:
    """List tokens (never their secrets), oldest first.

    \b
    Example:
      datavisa token list --json
    """
    tokens = TokenStore(db_path)
    try:
        records = [_record(r) for r in tokens.list()]
    finally:
        tokens.close()
    if as_json:
        output.echo_json(records)
    elif records:
        rows = [
            [r["id"], r["subject"], r["role"], r["created_at"], r["revoked_at"] or "-"]
            for r in records
        ]
        click.echo(output.table(rows, ["id", "subject", "role", "created", "revoked"]))
    else:
        click.echo("no tokens")


@token.command()
@click.argument("token_id")
@as_option
@db_option
@json_option
def revoke(token_id: str, as_: str | None, db_path: Path, as_json: bool) -> None:
    """Revoke token TOKEN_ID; calls made with it fail from now on.

    A running `datavisa serve` on the same database refuses the token at once on every
    route but the access check, which trusts a token it verified in the last second, so
    refuses it there within one second.

    \b
    Example:
      datavisa token revoke 3f9c2a71b0de
    """
    tokens = TokenStore(db_path)
    try:
        record = tokens.revoke(token_id, actor=_operator(as_))
    finally:
        tokens.close()
    if as_json:
        output.echo_json(_record(record))
    else:
        click.echo(f"token {record.id} of {record.subject}: revoked")
