"""`datavisa opa-config` and `datavisa fleet`: sidecar OPAs fed by the bundle service."""

from __future__ import annotations

import getpass
import hashlib
import os
import re
from pathlib import Path
from typing import Any

import click

from datavisa.engine.api.remote import SERVER_ENV, TOKEN_ENV
from datavisa.engine.model.durations import parse_duration
from datavisa.engine.model.errors import DataVisaError

from . import output
from .options import db_option, deployment, deployment_options, json_option

server_option = click.option(
    "--server",
    envvar=SERVER_ENV,
    metavar="URL",
    required=True,
    help=f"The DataVisa server (env {SERVER_ENV}), as the OPAs reach it.",
)


def sidecar_config(
    server: str, name: str, token: str, long_poll_s: int, resources: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The OPA configuration of a sidecar fed by the server at `server`: both bundles over
    the bundle protocol with long polling, status reports and decision logs to the server,
    all with the sidecar's service token; with `resources`, only the grants on them."""
    grants = "bundles/grants" + (f"?resources={','.join(resources)}" if resources else "")
    polling = {
        "min_delay_seconds": 1,
        "max_delay_seconds": 5,
        "long_polling_timeout_seconds": long_poll_s,
    }
    return {
        "labels": {"datavisa_opa": name},
        "services": {
            "datavisa": {
                "url": server.rstrip("/") + "/v1",
                "credentials": {"bearer": {"token": token}},
            }
        },
        "bundles": {
            "datavisa": {
                "service": "datavisa",
                "resource": "bundles/policy",
                "polling": dict(polling),
            },
            "grants": {
                "service": "datavisa",
                "resource": grants,
                "polling": dict(polling),
            },
        },
        "status": {"service": "datavisa"},
        "decision_logs": {
            "service": "datavisa",
            # Events wait in the buffer as they are and are encoded when uploaded, so the
            # JSON and gzip of each decision stay off the request that made it.
            "reporting": {"min_delay_seconds": 1, "max_delay_seconds": 2, "buffer_type": "event"},
        },
    }


def gateway_plugin_config(
    addr: str,
    grpc_addr: str | None,
    credentials: dict[str, str],
    gateway: Any,
    location: Any,
) -> dict[str, Any]:
    """The `plugins.datavisa_gateway` section of a sidecar whose gateway plugin answers
    gateways itself (tools/opa/gateway, docs/gateway.md): where it listens, the SHA-256 of
    each gateway token it believes with the gateway it names (`credentials`: token →
    gateway), and the header names, trusted proxies and networks of the server's own
    `gateway:` and `location:` config, so that both enforcement points read a request alike."""
    section: dict[str, Any] = {
        "addr": addr,
        "credential_header": gateway.credential_header,
        "credentials": {
            hashlib.sha256(token.encode()).hexdigest(): name for token, name in credentials.items()
        },
        "identity_headers": list(gateway.identity_headers),
        "max_header_bytes": gateway.max_header_bytes,
        "proxies": [str(n) for n in location.proxies],
        "networks": {str(n): country for n, country in location.networks},
        "grants_bundle": "grants",
    }
    if grpc_addr:
        section["grpc_addr"] = grpc_addr
    if gateway.country_header:
        section["country_header"] = gateway.country_header
    return section


@click.command(name="opa-config")
@click.argument("name")
@server_option
@click.option(
    "--token-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="A token the sidecar already has (its first line; role opa); without it one is "
    "issued to NAME in --db.",
)
@click.option(
    "--long-poll",
    default="10s",
    show_default=True,
    help="How long the sidecar's bundle requests wait for a change (OPA's "
    "long_polling_timeout_seconds).",
)
@click.option(
    "--resources",
    metavar="NAMES",
    help="Comma-separated resources the sidecar guards: its grants bundle holds only the "
    "grants on them, so each grant change costs it only theirs (at 100,000 grants, "
    "parsing them all takes a sidecar seconds). A check on any other resource denies "
    "there. Default: every grant. Each must be a resource of the deployment's policy "
    "data (--config, --bundle-dir; else the shipped data, and then only warned about).",
)
@click.option(
    "--gateway-addr",
    metavar="HOST:PORT",
    help="Enable the sidecar's gateway plugin, answering nginx auth_request, forward auth "
    "and Envoy ext_authz (HTTP) itself on HOST:PORT (docs/gateway.md). Needs "
    "--gateway-token-file; header names, proxies and networks come from --config.",
)
@click.option(
    "--gateway-grpc-addr",
    metavar="HOST:PORT",
    help="With --gateway-addr: also answer Envoy ext_authz v3 over gRPC on HOST:PORT.",
)
@click.option(
    "--gateway-token-file",
    "gateway_token_files",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    metavar="FILE",
    help="With --gateway-addr: a gateway's service token (its first line; `datavisa token "
    "issue edge-nginx --role service`), which the plugin then believes; its subject in "
    "--db names the gateway. Repeat for each gateway.",
)
@deployment_options
@db_option
@json_option
@click.pass_context
def opa_config(
    ctx: click.Context,
    name: str,
    server: str,
    token_file: Path | None,
    long_poll: str,
    resources: str | None,
    gateway_addr: str | None,
    gateway_grpc_addr: str | None,
    gateway_token_files: tuple[Path, ...],
    config_path: Path | None,
    bundle_dir: Path | None,
    db_path: Path,
    as_json: bool,
) -> None:
    """Print the configuration of a sidecar OPA named NAME, fed by the server.

    The sidecar downloads the policy bundle and the live grants from the server's bundle
    service (long polling), reports its status there, and uploads its decisions to the
    server's decision log. It calls with a token of role `opa` for NAME (bundles, status
    reports and decision logs, nothing else), issued now in --db unless --token-file
    gives one. List NAME under `fleet.opas` in the server's config:
    only then do its status reports confirm grant changes (a revoke waits for it).

    \b
    Examples:
      datavisa opa-config payments-opa --server http://10.0.0.5:8470 > opa.yaml
      opa run --server --addr 127.0.0.1:8181 --config-file opa.yaml
      datavisa opa-config analytics-opa --server http://10.0.0.5:8470 \\
        --resources eu-customer-analytics,eu-service-metrics > opa.yaml
    """
    from datavisa.engine.api.tokens import OPA, SUBJECT_PATTERN, TokenStore
    from datavisa.engine.policy.opa import read_token_file

    if not re.fullmatch(SUBJECT_PATTERN, name):
        raise click.BadParameter("letters, digits and . _ : @ - only", param_hint="NAME")
    if not server.startswith(("http://", "https://")):
        raise click.BadParameter("must start with http:// or https://", param_hint="--server")
    try:
        wait_s = max(1, round(parse_duration(long_poll)))
    except DataVisaError as e:
        raise click.BadParameter(str(e), param_hint="--long-poll") from e
    db_path, bundle_dir, built = deployment(ctx, config_path, bundle_dir, db_path)
    scope = _scope(resources, bundle_dir, built)
    plugin = None  # checked before a token is issued: a bad option changes nothing
    if gateway_addr is not None or gateway_grpc_addr is not None or gateway_token_files:
        plugin = _gateway_section(
            gateway_addr, gateway_grpc_addr, gateway_token_files, config_path, db_path
        )
    if token_file is not None:
        token = read_token_file(token_file)
    else:
        tokens = TokenStore(db_path)
        try:
            actor = os.environ.get("USER") or getpass.getuser()
            token, record = tokens.issue(name, OPA, actor=actor)
        finally:
            tokens.close()
        click.echo(f"token {record.id} issued to {name} (role opa)", err=True)
    config = sidecar_config(server, name, token, wait_s, scope)
    if plugin is not None:
        config["plugins"] = {"datavisa_gateway": plugin}
    if as_json:
        output.echo_json(config)
    else:
        import yaml

        click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)


def _gateway_section(
    addr: str | None,
    grpc_addr: str | None,
    token_files: tuple[Path, ...],
    config_path: Path | None,
    db_path: Any,
) -> dict[str, Any]:
    """The gateway plugin's section, each gateway token verified in the token database:
    only a live service token names a gateway (as at the engine's own endpoints)."""
    from datavisa.engine.api.config import GatewayConfig, load, parse_listen
    from datavisa.engine.api.tokens import TokenStore
    from datavisa.engine.location.networks import Networks
    from datavisa.engine.policy.opa import read_token_file

    if addr is None:
        raise click.BadParameter(
            "--gateway-grpc-addr and --gateway-token-file need it", param_hint="--gateway-addr"
        )
    for value, hint in ((addr, "--gateway-addr"), (grpc_addr, "--gateway-grpc-addr")):
        if value is not None:
            try:
                parse_listen(value)
            except (DataVisaError, ValueError) as e:
                raise click.BadParameter(str(e), param_hint=hint) from e
    if not token_files:
        raise click.BadParameter(
            "name at least one gateway's service token: the plugin believes nothing else",
            param_hint="--gateway-token-file",
        )
    credentials: dict[str, str] = {}
    tokens = TokenStore(db_path)
    try:
        for path in token_files:
            token = read_token_file(path)
            principal = tokens.verify(token)
            if principal is None or not principal.is_service:
                raise click.BadParameter(
                    f"{path}: not a live service token of {db_path}",
                    param_hint="--gateway-token-file",
                )
            credentials[token] = principal.subject
    finally:
        tokens.close()
    served = load(config_path) if config_path is not None else None
    return gateway_plugin_config(
        addr,
        grpc_addr,
        credentials,
        served.gateway if served else GatewayConfig(),
        served.location if served else Networks(),
    )


def _scope(resources: str | None, bundle_dir: Path | None, built: Path | None) -> tuple[str, ...]:
    """--resources as sorted names, each a resource of the deployment's policy data; with
    none given, one the shipped data lacks is only warned about (the server's may name it)."""
    from datavisa.engine.api.wire import resource_scope
    from datavisa.engine.policy import bundle

    if resources is None:
        return ()
    try:
        names = resource_scope(resources)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--resources") from e
    try:
        known = bundle.names("resources", bundle_dir, built)
    except DataVisaError as e:
        raise click.BadParameter(str(e), param_hint="--resources") from e
    for name in sorted(set(names) - known):
        if bundle_dir is None and built is None:
            click.echo(
                f"warning: {name} is not a resource of the shipped policy data; the sidecar "
                "gets no grant on it unless the server's policy names it (--config or "
                "--bundle-dir: check against the deployment's)",
                err=True,
            )
        else:
            raise click.BadParameter(
                f"{name} is not a resource of {built or bundle_dir}", param_hint="--resources"
            )
    return names


@click.command()
@server_option
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    metavar="TOKEN",
    required=True,
    help=f"An auditor or admin token (env {TOKEN_ENV}).",
)
@json_option
def fleet(server: str, token: str, as_json: bool) -> None:
    """Show each OPA of the fleet: the grants revision it confirmed, how far behind the
    server it is, and whether it is stale. Exits 1 when a trusted OPA is stale.

    \b
    Example:
      datavisa fleet --server http://127.0.0.1:8470 --token "$ADMIN_TOKEN"
    """
    from datavisa.engine.api.remote import connect

    with connect(server, token) as remote:
        state = remote.fleet()
    stale = [m["name"] for m in state["opas"] if m["trusted"] and m["stale"]]
    if as_json:
        output.echo_json(state)
    else:
        rows = [
            [
                m["name"],
                "yes" if m["trusted"] else "NO",
                m["grants_revision"],
                m["lag"],
                f"{m['behind_s']:.1f}s",
                "STALE" if m["stale"] else "ok",
                m["last_contact"] or "-",
            ]
            for m in state["opas"]
        ]
        click.echo(f"grants revision {state['grants_revision']}")
        if rows:
            headers = ["opa", "trusted", "revision", "lag", "behind", "state", "last contact"]
            click.echo(output.table(rows, headers))
        else:
            click.echo("no OPA has polled or reported yet")
    if stale:
        raise SystemExit(1)
