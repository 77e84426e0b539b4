"""The command line as a whole: version, help on every command."""

from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner

from datavisa.cli.main import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
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
        command = command.commands[name]
    assert command.help and len(command.help.strip()) > 20, f"{' '.join(path)} has no help"
    result = CliRunner().invoke(cli, [*path, "-h"])
    assert result.exit_code == 0
    assert "Usage:" in result.stdout
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help"
