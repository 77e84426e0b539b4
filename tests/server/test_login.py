"""`datavisa login`: the CLI signed in with a real Ory Hydra through its loopback redirect
and PKCE, the person's browser played by a session that follows the redirects (Hydra, its
login and consent app, Hydra, the CLI's own port). The tokens are kept 0600, commands with
--server act as the person, the access token is renewed by the refresh token, and logout
forgets it."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import test_step_up
from click.testing import CliRunner
from hydra import Hydra
from live_server import RESOURCE, served_store
from test_identity import _verifier

from datavisa.cli.main import cli
from datavisa.engine.identity.session import CONFIG_ENV

DATAVISA = Path(sys.executable).with_name("datavisa")
stepped_opa = test_step_up.stepped_opa  # an OPA whose confidential tier wants step-up


@pytest.fixture
def hydra(tmp_path: Path):
    with Hydra(tmp_path / "hydra.log") as running:
        running.public_client("datavisa-cli", token_lifespan_s=30)  # always due a renewal
        yield running


def _login(
    hydra: Hydra, config: Path, person: str, *options: str
) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", CONFIG_ENV: str(config), "HOME": str(config)}
    where = options or ("--issuer", hydra.issuer, "--client-id", "datavisa-cli")
    proc = subprocess.Popen(
        [str(DATAVISA), "login", *where, "--no-browser"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    first = proc.stderr.readline()
    assert first.startswith("Sign in at:"), first
    url = proc.stderr.readline().strip()
    landed = hydra.browse(url, person)
    assert landed.status_code == 200, landed.text
    assert "Signed in to DataVisa" in landed.text
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, first + url + err)


def test_login_keeps_a_renewed_session_that_acts_as_the_person(tmp_path, opa, hydra, monkeypatch):
    config = tmp_path / "config"
    done = _login(hydra, config, "alice")
    assert done.returncode == 0, done.stderr
    kept = config / "credentials.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    first = json.loads(kept.read_text())["access_token"]
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with served_store(tmp_path / "d.db", opa, "login", "gw", "service",
                      identity=_verifier(hydra)) as (url, _):  # fmt: skip
        made = CliRunner().invoke(
            cli,
            ["request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-7",
             "--server", url, "--json"],
            env={"DATAVISA_TOKEN": ""},
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        assert json.loads(made.output)["requester"] == "alice"  # acted as the signed-in person
        renewed = json.loads(kept.read_text())["access_token"]
        assert renewed != first  # 30 s left is within the renewal window: refreshed
        out = CliRunner().invoke(cli, ["logout"])
        assert out.exit_code == 0 and not kept.exists()
        again = CliRunner().invoke(
            cli, ["request", RESOURCE, "--for", "20m", "--from", "DE", "--server", url],
            env={"DATAVISA_TOKEN": ""},
        )  # fmt: skip
        assert again.exit_code == 1
        assert "sign in (datavisa login)" in again.output


def test_a_step_up_denial_names_the_login_that_satisfies_it(
    tmp_path, stepped_opa, hydra, monkeypatch
):
    """The confidential tier wants approvers signed in within 15 minutes with MFA or a
    key (test_step_up's bundle): bob, signed in with a password, is told the command that
    satisfies it, runs it (the issuer and client taken from his last sign-in), and the
    IdP, asked to sign him in again, does so with a second factor."""
    config = tmp_path / "config"
    monkeypatch.setenv(CONFIG_ENV, str(config))
    with served_store(tmp_path / "d.db", stepped_opa, "login", "alice", "user",
                      identity=_verifier(hydra)) as (url, alice):  # fmt: skip
        made = CliRunner().invoke(
            cli, ["request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-8",
                  "--server", url, "--token", alice, "--json"],
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        rid = json.loads(made.output)["id"]
        approve = ["approve", rid, "--from", "DE", "--server", url]
        try:
            hydra.app.amr = ["pwd"]
            assert _login(hydra, config, "bob").returncode == 0
            refused = CliRunner().invoke(cli, approve, env={"DATAVISA_TOKEN": ""})
            assert refused.exit_code == 1, refused.output
            assert "(datavisa login --max-age 900)" in refused.output, refused.output
            hydra.app.amr = ["pwd", "mfa"]
            again = _login(hydra, config, "bob", "--max-age", "900")
            assert again.returncode == 0, again.stderr
            for asked in ("prompt=login", "max_age=900", "client_id=datavisa-cli"):
                assert asked in again.stderr, again.stderr  # the URL it handed the person
            done = CliRunner().invoke(cli, [*approve, "--json"], env={"DATAVISA_TOKEN": ""})
            assert done.exit_code == 0, done.output
            assert json.loads(done.output)["state"] == "active"
        finally:
            hydra.app.amr = []


def test_login_without_an_issuer_or_an_earlier_sign_in_says_what_to_give(tmp_path):
    out = CliRunner().invoke(
        cli, ["login", "--client-id", "x"],
        env={CONFIG_ENV: str(tmp_path), "DATAVISA_ISSUER": ""},
    )  # fmt: skip
    assert out.exit_code == 2
    assert "give --issuer (or $DATAVISA_ISSUER)" in out.output
