"""The command line as a whole: version, help on every command."""

from __future__ import annotations

import re
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    """Every command and subcommand, as the group lists them (some load on demand)."""
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_version_names_datavisa_and_the_opa_it_uses():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert re.search(r"^datavisa \d+\.\d+\.\d+", result.stdout, re.M)
    assert re.search(r"^OPA 1\.22\.\d+ \(", result.stdout, re.M)


@pytest.mark.parametrize("path", [p for p, _ in _commands(cli)], ids=" ".join)
def test_every_command_is_documented(path):
    command = cli
    for name in path:
        command = command.get_command(click.Context(command), name)
    assert command.help and len(command.help.strip()) > 20, f"{' '.join(path)} has no help"
    result = CliRunner().invoke(cli, [*path, "-h"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"


def test_the_entry_point_leaves_the_store_and_the_server_unloaded_until_needed():
    """`datavisa check --server ...` runs from scripts: it must not pay for the store, the
    policy build or the HTTP server (the benchmark times the CLI; this keeps it lean)."""
    heavy = ("sqlite_utils", "fastapi", "uvicorn", "jsonschema", "yaml")
    code = f"import sys, datavisa.cli.main; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
