"""Options several commands share, as small decorators."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from datavisa.engine.model.durations import parse_duration, parse_rfc3339
from datavisa.engine.model.errors import DataVisaError
from datavisa.engine.paths import default_db_path
from datavisa.engine.store import is_url

F = Callable[..., Any]


class StoreLocation(click.ParamType):
    """An SQLite file's path, or a postgresql:// URL (kept as text)."""

    name = "PATH|URL"

    def convert(self, value: Any, param: Any, ctx: Any) -> Path | str:
        if isinstance(value, Path) or is_url(value):
            return value
        return click.Path(dir_okay=False, path_type=Path).convert(value, param, ctx)


STORE_LOCATION = StoreLocation()


def store_option(help: str) -> Callable[[F], F]:
    """--db, the store: an SQLite file or a postgresql:// URL (default $DATAVISA_DB or
    the user's data folder)."""
    return click.option(
        "--db",
        "db_path",
        type=STORE_LOCATION,
        default=default_db_path,
        show_default="$DATAVISA_DB or ~/.local/share/datavisa/datavisa.db",
        help=help,
    )


db_option = store_option(
    "SQLite file or postgresql:// URL holding requests, grants and the audit trail."
)


def opa_option(f: F) -> F:
    return click.option(
        "--opa-url",
        envvar="DATAVISA_OPA_URL",
        metavar="URL",
        help="Ask this running OPA (env DATAVISA_OPA_URL) instead of starting one "
        "with the shipped bundle.",
    )(f)


OPA_TOKEN_ENV = "DATAVISA_OPA_TOKEN"


def opa_token(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> str | None:
    """The bearer credential for --opa-url: the file's first line, else $DATAVISA_OPA_TOKEN."""
    if value is None:
        return os.environ.get(OPA_TOKEN_ENV) or None
    # Imported here: the HTTP client is a slow import that most commands never need.
    from datavisa.engine.policy.opa import read_token_file

    try:
        return read_token_file(value)
    except DataVisaError as e:
        raise click.BadParameter(str(e)) from e


def opa_token_option(f: F) -> F:
    # A file or the environment, never the token itself on the command line (`ps` shows it).
    return click.option(
        "--opa-token-file",
        "opa_token",
        type=click.Path(dir_okay=False, path_type=Path),
        callback=opa_token,
        metavar="FILE",
        help=f"File holding the bearer token the --opa-url OPA wants (else env {OPA_TOKEN_ENV}).",
    )(f)


def json_option(f: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")(f)


def country(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """An ISO 3166-1 alpha-2 country code (upper-cased), or `unknown`: one the shipped
    bundle knows. With --server the server's bundle decides which codes it knows, so only
    the form is checked here (a server answers a code its bundle does not know with a 422
    naming it)."""
    if value is None:
        return None
    code = value.strip().upper()
    if code == "UNKNOWN":
        return "unknown"
    if ctx.params.get("server") and re.fullmatch("[A-Z]{2}", code):
        return code
    from datavisa.engine.policy.bundle import shipped_countries  # YAML: only when asked

    if not value.isascii() or code not in shipped_countries():
        raise click.BadParameter(
            f"{value!r} is not an ISO 3166 alpha-2 country code the policy knows "
            "(such as DE), nor unknown"
        )
    return code


def location_option(f: F) -> F:
    return click.option(
        "--from",
        "location",
        required=True,
        callback=country,
        metavar="COUNTRY",
        help="Country the access happens from: ISO 3166 alpha-2 code (DE, US...) or unknown.",
    )(f)


def approver_location_option(f: F) -> F:
    return click.option(
        "--from",
        "location",
        default="unknown",
        callback=country,
        metavar="COUNTRY",
        show_default=True,
        help="Country you approve from (restricted data needs approvers inside its jurisdiction).",
    )(f)


def duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except DataVisaError as e:
        raise click.BadParameter(str(e)) from e


def _when(sign: int, example: str) -> Callable[..., float | None]:
    def parse(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
        if value is None:
            return None
        try:
            return time.time() + sign * parse_duration(value)
        except DataVisaError:
            pass
        try:
            return parse_rfc3339(value)
        except DataVisaError as e:
            if "time zone" in str(e):
                raise click.BadParameter(str(e)) from e
            raise click.BadParameter(
                f"{value!r} is neither a time such as 2026-11-27T09:00:00Z "
                f"nor a duration such as {example}"
            ) from e

    return parse


instant = _when(+1, "10m")  # a time, or a delay from now: 2h is in two hours
past = _when(-1, "1h")  # a time, or a span back from now: 1h is an hour ago


def deployment_options(f: F) -> F:
    """--config and --bundle-dir: the deployment whose store and policy data a command
    uses (pass them to `deployment`)."""
    f = click.option(
        "--bundle-dir",
        type=click.Path(file_okay=False, exists=True, path_type=Path),
        envvar="DATAVISA_BUNDLE_DIR",
        help="The policy data the deployment serves: the folder `serve --bundle-dir` "
        "serves (env DATAVISA_BUNDLE_DIR).",
        show_default="the config's, else the shipped data",
    )(f)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, exists=True, path_type=Path),
        envvar="DATAVISA_CONFIG",
        help="The deployment's `datavisa serve` config (env DATAVISA_CONFIG): its token "
        "database and the policy data it serves (bundle, bundle_dir) are used; --db and "
        "--bundle-dir override them.",
    )(f)


def deployment(
    ctx: click.Context, config_path: Path | None, bundle_dir: Path | None, db_path: Any
) -> tuple[Any, Path | None, Path | None]:
    """(token database, data folder, built bundle) of the deployment --config names, with
    --db and --bundle-dir over it; a built bundle is read before a data folder, as serve
    takes them."""
    from datavisa.engine.api.config import load

    if config_path is None:
        return db_path, bundle_dir, None
    config = load(config_path)
    if ctx.get_parameter_source("db_path") == click.core.ParameterSource.DEFAULT:
        db_path = config.token_path
    if bundle_dir is not None:
        return db_path, bundle_dir, None
    return db_path, config.bundle_dir, config.bundle
