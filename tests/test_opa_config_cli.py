"""`datavisa opa-config --resources` checks the names against the deployment's own policy
data (--config, --bundle-dir), as `token issue` checks people against its directory."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml
from click.testing import CliRunner

from datavisa.cli.main import cli


def _repo(tmp_path: Path) -> Path:
    """A deployment's policy repository with a resource the shipped data lacks."""
    repo = tmp_path / "our-policy"
    done = CliRunner().invoke(cli, ["policy", "init", str(repo)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    resources = repo / "data" / "resources.yaml"
    doc = yaml.safe_load(resources.read_text())
    first = next(iter(doc["resources"].values()))
    doc["resources"]["our-ledger"] = copy.deepcopy(first)  # no YAML alias
    resources.write_text(yaml.safe_dump(doc))
    return repo / "data"


def _config(tmp_path: Path, *args: str):
    return CliRunner().invoke(
        cli,
        ["opa-config", "opa-1", "--server", "http://127.0.0.1:9", "--db",
         str(tmp_path / "t.db"), *args],
    )  # fmt: skip


def test_resources_are_checked_against_the_deployment_s_data(tmp_path: Path):
    data = _repo(tmp_path)
    ours = _config(tmp_path, "--bundle-dir", str(data), "--resources", "our-ledger")
    assert ours.exit_code == 0, ours.output
    assert "warning" not in ours.output
    assert "resources=our-ledger" in ours.output
    typo = _config(tmp_path, "--bundle-dir", str(data), "--resources", "our-ledgr")
    assert typo.exit_code == 2
    assert f"our-ledgr is not a resource of {data}" in typo.output
    serve = tmp_path / "datavisa.yaml"
    serve.write_text(f"bundle_dir: {data}\ndatabase: {tmp_path / 'd.db'}\n")
    by_config = _config(tmp_path, "--config", str(serve), "--resources", "our-ledger")
    assert by_config.exit_code == 0, by_config.output


def test_without_the_deployment_s_data_an_unknown_name_is_only_warned_about(tmp_path: Path):
    done = _config(tmp_path, "--resources", "our-ledger")
    assert done.exit_code == 0, done.output
    assert "our-ledger is not a resource of the shipped policy data" in done.output
