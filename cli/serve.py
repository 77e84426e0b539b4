"""`datavisa serve`: the HTTP decision service, with its own supervised OPA by default."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from datavisa.engine.api import config as serve_config
from datavisa.engine.api.config import (
    DEFAULT_LISTEN,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_OPA_TIMEOUT_S,
    DEFAULT_SWEEP_EVERY_S,
)

from .options import STORE_LOCATION, duration, opa_token_option


def _seconds(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    seconds = duration(ctx, param, value)
    if seconds is not None and seconds <= 0:
        raise click.BadParameter("must be more than zero")
    return None if seconds is None else float(seconds)


@click.command()
@click.option(
    "--config",
    "config_path",
    envvar=serve_config.CONFIG_ENV,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML file with the settings below (env DATAVISA_CONFIG); flags override it.",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    help="Address the HTTP API listens on.",
    show_default=DEFAULT_LISTEN,
)
@click.option(
    "--db",
    "database",
    type=STORE_LOCATION,
    help="SQLite file, or postgresql:// URL of a database several engines share, holding "
    "requests, grants, the audit trail and tokens.",
    show_default="$DATAVISA_DB or ~/.local/share/datavisa/datavisa.db",
)
@click.option(
    "--bundle",
    type=click.Path(exists=True, path_type=Path),
    help="Built policy bundle for the supervised OPA (from `datavisa policy build`).",
    show_default="built from the shipped policy at start",
)
@click.option(
    "--bundle-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Policy data to build the bundle from at start, with the shipped rules: a "
    "deployment's own (`datavisa policy init`).",
    show_default="the shipped data",
)
@click.option(
    "--opa-url",
    metavar="URL",
    help="Use this running OPA instead of starting and supervising one.",
    show_default="a private OPA on a free loopback port",
)
@opa_token_option
@click.option(
    "--opa-timeout",
    "opa_timeout_s",
    callback=_seconds,
    metavar="DURATION",
    help="Longest a decision waits for OPA before it denies with policy_unavailable.",
    show_default=f"{DEFAULT_OPA_TIMEOUT_S:g}s",
)
@click.option(
    "--tokens-db",
    "tokens_database",
    type=STORE_LOCATION,
    help="SQLite file (or postgresql:// URL) of the bearer tokens.",
    show_default="the --db file",
)
@click.option(
    "--max-body",
    "max_body_bytes",
    type=click.IntRange(min=1024),
    help="Largest request body accepted, in bytes (larger ones get 413).",
    show_default=str(DEFAULT_MAX_BODY_BYTES),
)
@click.option(
    "--sweep-every",
    "sweep_every_s",
    callback=_seconds,
    metavar="DURATION",
    help="How often expiries and lapses are written down.",
    show_default=f"{DEFAULT_SWEEP_EVERY_S:g}s",
)
def serve(config_path: Path | None, **flags: object) -> None:
    """Run the HTTP API: requests, grants, and the access-check endpoint for services.

    Every /v1 call needs a bearer token from `datavisa token issue`; the caller acts as
    the token's subject. Services ask POST /v1/access/check; the OpenAPI document is at
    /openapi.json, readiness at /health, Prometheus metrics at /metrics. Stops cleanly,
    OPA included, on Ctrl-C or SIGTERM.

    Every decision is judged by the monitoring rules (rego/datavisa/monitor) as it is
    recorded; alerts are at GET /v1/alerts and `datavisa alerts`, and go to the webhooks
    in the config file, as do new requests for their approvers. With a `slack:` section,
    requests go to Slack with Approve and Deny buttons, reminders and escalations follow
    policy's timings, and clicks come back to POST /slack/interactions (docs/approvers.md).
    The live dashboard is at / (open it with an auditor token: http://HOST:PORT/#token=TOKEN).

    \b
    Examples:
      datavisa serve
      datavisa serve --listen 0.0.0.0:8470 --db /var/lib/datavisa/datavisa.db
      datavisa serve --opa-url http://127.0.0.1:8181
      DATAVISA_CONFIG=/etc/datavisa/serve.yaml datavisa serve

    \b
    A config file holds the same settings:
      listen: 127.0.0.1:8470
      database: /var/lib/datavisa/datavisa.db
      bundle: build/bundle.tar.gz
      opa: {url: http://127.0.0.1:8181, timeout: 2s, token_file: /etc/datavisa/opa.token}
      tokens: {database: /var/lib/datavisa/tokens.db}
      max_body_bytes: 65536
      sweep_every: 30s
      public_url: https://datavisa.example.com
      webhooks:
        - {url: https://hooks.slack.com/services/T/B/X, name: security, kinds: [alerts]}
        - {url: https://chat.example.com/hooks/owners, kinds: [approvals], groups: [data_owner]}
      slack: {bot_token_file: /etc/datavisa/slack-bot.token,
              signing_secret_file: /etc/datavisa/slack-signing.secret, channel: C0123456}
    """
    cfg = serve_config.load(config_path).override(**flags)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # Imported here: the web stack takes a second to load, and only serve needs it.
    from datavisa.engine.api.serve import serve as run_service

    run_service(cfg, announce=lambda line: click.echo(line, err=True))
