"""`datavisa serve --bundle-dir`: a deployment's own policy data, built with the shipped rules
when a real serve starts."""

from __future__ import annotations

from pathlib import Path

import requests
from click.testing import CliRunner
from test_supervision import _serve

from datavisa.cli.main import cli
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.paths import DEFAULT_BUNDLE_DIR, POLICY_DIR
from datavisa.engine.policy import bundle


def _init(tmp_path: Path) -> Path:
    repo = tmp_path / "our-policy"
    done = CliRunner().invoke(cli, ["policy", "init", str(repo)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return repo


def test_serve_builds_a_deployments_data_at_start(tmp_path: Path):
    repo = _init(tmp_path / "repo")
    subjects = repo / "data" / "subjects.yaml"
    alice = next(line for line in subjects.read_text().splitlines() if "  alice:" in line)
    subjects.write_text(subjects.read_text() + alice.replace("alice", "zoe") + "\n")
    with _serve(tmp_path, "--bundle-dir", str(repo / "data")) as served:
        health = requests.get(served.url + "/health", timeout=5).json()
        assert health["revision"] == bundle.revision(POLICY_DIR, repo / "data")
        tokens = TokenStore(tmp_path / "datavisa.db")
        token, _ = tokens.issue("zoe")
        tokens.close()
        asked = requests.post(
            served.url + "/v1/requests",
            json={"resource": "eu-customer-analytics", "duration": "20m", "location": "DE",
                  "reason": "INC-3"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )  # fmt: skip
        assert asked.status_code == 201, asked.text  # zoe is in the deployment's directory


def test_serve_refuses_a_data_folder_beside_a_built_bundle_or_an_external_opa(tmp_path: Path):
    repo = _init(tmp_path)
    done = CliRunner().invoke(
        cli,
        ["serve", "--bundle-dir", str(repo / "data"), "--opa-url", "http://127.0.0.1:9",
         "--db", str(tmp_path / "d.db"), "--listen", "127.0.0.1:0"],
    )  # fmt: skip
    assert done.exit_code == 1
    assert "give it without bundle (--bundle) or opa.url (--opa-url)" in done.output


def test_the_cli_takes_a_country_the_server_s_bundle_knows_and_the_server_judges_it(
    tmp_path: Path,
):
    """A deployment adds a code the shipped data lacks (XK, Kosovo's user-assigned code):
    with --server the CLI checks only the form and the server's bundle decides; locally
    the shipped bundle does, and XK is refused before anything is asked."""
    repo = _init(tmp_path / "repo")
    shipped = (DEFAULT_BUNDLE_DIR / "countries.yaml").read_text()
    (repo / "data" / "countries.yaml").write_text(shipped + "  XK: Kosovo\n")  # replaces it
    with _serve(tmp_path, "--bundle-dir", str(repo / "data")) as served:
        tokens = TokenStore(tmp_path / "datavisa.db")
        token, _ = tokens.issue("gw", "service")
        tokens.close()
        remote = ["--server", served.url, "--token", token]
        asked = ["check", "alice", "eu-customer-analytics", "--json"]
        known = CliRunner().invoke(cli, [*asked, "--from", "XK", *remote])
        # The server's decision (a deny: exit 1), not a usage error (exit 2).
        assert known.exit_code == 1, known.output
        assert '"allow": false' in known.output
        unknown = CliRunner().invoke(cli, [*asked, "--from", "ZZ", *remote])
        assert unknown.exit_code == 1, unknown.output
        assert "'ZZ' is not an ISO 3166 alpha-2 country code the policy knows" in unknown.output
    local = CliRunner().invoke(cli, [*asked, "--from", "XK", "--db", str(tmp_path / "l.db")])
    assert local.exit_code == 2
    assert "'XK' is not an ISO 3166 alpha-2 country code" in local.output
