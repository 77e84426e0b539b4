"""`datavisa login` by the device authorization grant (RFC 8628) against a real OpenID
provider that has it (node-oidc-provider: tests/server/device_idp.py): the CLI prints a
code and a URL, the person signs in there on another device, the CLI polls until then,
keeps the tokens, and commands act as the person; a sign-in refused at the IdP fails
with a message. Hydra 2.3 lacks the grant, so `datavisa login` falls back to the
loopback redirect there (tests/server/test_login.py)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from device_idp import CLIENT, DeviceIdp
from live_server import RESOURCE, served_store

from datavisa.cli.main import cli
from datavisa.engine.api.tokens import SUBJECT_PATTERN
from datavisa.engine.identity.oidc import OidcConfig, Verifier
from datavisa.engine.identity.session import CONFIG_ENV

DATAVISA = Path(sys.executable).with_name("datavisa")


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceIdp]:
    running = DeviceIdp(tmp_path_factory.mktemp("idp") / "idp.log")
    yield running
    running.close()


def _login(idp: DeviceIdp, config: Path, person: str, refuse: bool = False):
    env = {"PATH": "/usr/bin:/bin", CONFIG_ENV: str(config), "HOME": str(config)}
    proc = subprocess.Popen(
        [str(DATAVISA), "login", "--issuer", idp.issuer, "--client-id", CLIENT, "--no-browser"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert proc.stderr is not None
    told = "".join(proc.stderr.readline() for _ in range(3))  # the URL and the code
    [url] = re.findall(r"open:\n  (\S+)", told)
    [code] = re.findall(r"enter the code: (\S+)", told)
    assert url == idp.issuer + "/device", told  # to be typed on another device
    last = idp.browse(f"{url}?user_code={code}", person, refuse)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, told + err, last


def test_the_device_grant_signs_the_cli_in_without_a_port(tmp_path, opa, idp, monkeypatch):
    config = tmp_path / "config"
    status, said, last = _login(idp, config, "alice")
    assert status == 0, said
    assert "Sign-in Success" in last  # what the IdP showed on the other device
    assert "signed in; the tokens are kept in" in said
    monkeypatch.setenv(CONFIG_ENV, str(config))
    verifier = Verifier(OidcConfig(issuer=idp.issuer, audience="datavisa"), SUBJECT_PATTERN)
    with served_store(tmp_path / "d.db", opa, "device", "gw", "service", identity=verifier) as (
        url,
        _,
    ):
        made = CliRunner().invoke(
            cli,
            ["request", RESOURCE, "--for", "20m", "--from", "DE", "--reason", "INC-8",
             "--server", url, "--json"],
            env={"DATAVISA_TOKEN": ""},
        )  # fmt: skip
        assert made.exit_code == 0, made.output
        assert json.loads(made.output)["requester"] == "alice"  # the IdP's person


def test_a_device_sign_in_refused_at_the_idp_fails_and_keeps_nothing(tmp_path, idp):
    config = tmp_path / "config"
    status, said, _ = _login(idp, config, "alice", refuse=True)
    assert status == 1
    assert "the sign-in was refused at the identity provider" in said
    assert not (config / "credentials.json").exists()
