"""`datavisa`: ask for, approve and check just-in-time access to data where it lives."""

from __future__ import annotations

import importlib
import json

import click

from datavisa.engine.model.errors import DataVisaError

from . import output

# Commands in modules of their own, imported when named (or listed, for --help): a
# command run many times from scripts, such as `datavisa check`, does not pay for the
# imports of the others (the store, the policy build, the server).
LAZY = {
    "audit": "audit:audit",
    "log": "log:log",
    "demo": "demo:demo",
    "policy": "policy:policy",
    "serve": "serve:serve",
    "token": "tokens:token",
    "alerts": "alerts:alerts",
    "fleet": "fleet:fleet",
    "opa": "opa:opa",
    "opa-config": "fleet:opa_config",
    "db": "db:db",
    "doctor": "doctor:doctor",
    "init": "deployment:init",
    "transfer": "transfers:transfer",
    "filing": "filings:filing",
    "credentials": "provisioned:credentials",
    "watch": "provisioned:watch",
    "login": "login:login",
    "logout": "login:logout",
}


class DataVisaGroup(click.Group):
    """Turns the engine's errors into a message and exit status 1, never a traceback; with
    --json, into `{"error": {code, message, ...}}` on standard output, with the same exit
    status (2 for a usage error, as without --json)."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        as_json = "--json" in ctx.args  # the tokens after the command name
        try:
            return super().invoke(ctx)
        except DataVisaError as e:
            if as_json:
                _json_error(output.error_dict(e), 1)
            raise click.ClickException(str(e)) from e
        except click.UsageError as e:
            if as_json:
                _json_error({"code": "usage", "message": e.format_message()}, e.exit_code)
            raise

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY:
            module, attribute = LAZY[name].split(":")
            return getattr(importlib.import_module(f"{__package__}.{module}"), attribute)
        return super().get_command(ctx, name)


def _json_error(error: dict, status: int) -> None:
    click.echo(json.dumps({"error": error}, indent=2))
    raise SystemExit(status)


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from datavisa.engine import __version__
    from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
    from datavisa.engine.policy import bundle
    from datavisa.engine.policy.process import find_opa, opa_version

    try:
        binary = find_opa()
        opa = f"OPA {opa_version(binary)} ({binary})"
    except DataVisaError as e:
        opa = f"OPA not available: {e}"
    revision = bundle.revision(POLICY_DIR, DEFAULT_BUNDLE_DIR)
    click.echo(f"datavisa {__version__}\n{opa}")
    click.echo(f"policy bundle {revision} ({POLICY_DIR}, {DEFAULT_BUNDLE_DIR})")
    ctx.exit()


@click.group(cls=DataVisaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show DataVisa's version, the OPA it will use and the policy bundle's revision.",
)
def cli() -> None:
    """Just-in-time, data-residency-aware access approval, decided by OPA.

    Ask for time-limited access to a dataset, have an eligible approver approve it,
    and let services check every access against policy written in Rego.

    \b
    Try it:
      datavisa demo
      datavisa request eu-customer-analytics --for 20m --from DE --reason "INC-1234" --as alice
      datavisa approve REQUEST_ID --as bob
      datavisa check alice eu-customer-analytics --from DE
    """


# The lifecycle's commands, the ones run most, are registered here; the rest on demand.
from . import lifecycle  # noqa: E402

for command in lifecycle.COMMANDS:
    cli.add_command(command)
