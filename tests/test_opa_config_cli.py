"""`datavisa opa-config --resources` checks the names against the deployment's own policy
data (--config, --bundle-dir), as `token issue` checks people against its directory; with
--gateway-addr it sets up the sidecar's gateway plugin from the server's own config."""

from __future__ import annotations

import copy
import hashlib
import sqlite3
from pathlib import Path

import pytest
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


def _gateway_token(tmp_path: Path, subject: str, role: str) -> Path:
    from datavisa.engine.api.tokens import TokenStore

    store = TokenStore(tmp_path / "t.db")
    try:
        token, _ = store.issue(subject, role)
    finally:
        store.close()
    path = tmp_path / f"{subject}.token"
    path.write_text(token + "\n")
    return path


def test_a_sidecar_with_the_gateway_plugin_believes_the_gateways_named_as_the_server_reads_them(
    tmp_path: Path,
):
    nginx = _gateway_token(tmp_path, "edge-nginx", "service")
    serve = tmp_path / "datavisa.yaml"
    serve.write_text(
        "gateway:\n  country_header: CF-IPCountry\n"
        "location:\n  networks: {10.20.0.0/16: DE}\n  proxies: [10.0.0.5/32]\n"
    )
    done = _config(
        tmp_path, "--config", str(serve), "--json", "--gateway-addr", "127.0.0.1:9191",
        "--gateway-grpc-addr", "127.0.0.1:9192", "--gateway-token-file", str(nginx),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    config = yaml.safe_load(done.stdout[done.stdout.index("{") :])
    plugin = config["plugins"]["datavisa_gateway"]
    digest = hashlib.sha256(nginx.read_text().strip().encode()).hexdigest()
    assert plugin["credentials"] == {digest: "edge-nginx"}
    assert (plugin["addr"], plugin["grpc_addr"]) == ("127.0.0.1:9191", "127.0.0.1:9192")
    assert plugin["country_header"].lower() == "cf-ipcountry"
    assert plugin["networks"] == {"10.20.0.0/16": "DE"}
    assert plugin["proxies"] == ["10.0.0.5/32"]
    assert plugin["grants_bundle"] == "grants"
    assert config["decision_logs"]["reporting"]["buffer_type"] == "event"


@pytest.mark.parametrize(
    "args, hint",
    [
        (["--gateway-grpc-addr", "127.0.0.1:9192"], "--gateway-addr"),
        (["--gateway-addr", "nowhere"], "--gateway-addr"),
        (["--gateway-addr", "127.0.0.1:9191"], "--gateway-token-file"),
        (
            ["--gateway-addr", "127.0.0.1:9191", "--gateway-token-file", "USER"],
            "--gateway-token-file",
        ),
    ],
)
def test_a_bad_gateway_option_is_named_and_issues_no_token(tmp_path: Path, args, hint):
    user = _gateway_token(tmp_path, "bob", "user")  # not a gateway's: refused
    done = _config(tmp_path, *[str(user) if a == "USER" else a for a in args])
    assert done.exit_code == 2
    assert hint in done.output
    with sqlite3.connect(tmp_path / "t.db") as db:
        assert db.execute("SELECT count(*) FROM tokens WHERE subject = 'opa-1'").fetchone() == (0,)
