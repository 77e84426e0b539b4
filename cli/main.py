"""`datavisa`: ask for, approve and check just-in-time access to data where it lives."""

from __future__ import annotations

import click

from datavisa.engine import __version__
from datavisa.engine.errors import DataVisaError
from datavisa.engine.opa import find_opa, opa_version


class DataVisaGroup(click.Group):
    """Turns the engine's errors into a message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except DataVisaError as e:
            raise click.ClickException(str(e)) from e


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    try:
        binary = find_opa()
        opa = f"OPA {opa_version(binary)} ({binary})"
    except DataVisaError as e:
        opa = f"OPA not available: {e}"
    click.echo(f"datavisa {__version__}\n{opa}")
    ctx.exit()


@click.group(cls=DataVisaGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show DataVisa's version and the OPA it will use.",
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


# Commands that live in modules of their own register themselves here.
from . import audit, demo, lifecycle, log, policy  # noqa: E402

for command in lifecycle.COMMANDS:
    cli.add_command(command)
cli.add_command(audit.audit)
cli.add_command(log.log)
cli.add_command(demo.demo)
cli.add_command(policy.policy)

from . import alerts, serve, tokens  # noqa: E402

cli.add_command(serve.serve)
cli.add_command(tokens.token)
cli.add_command(alerts.alerts)
