"""The OPA the engine runs answers the engine only: real OPA processes, real HTTP.

Without the secret the engine made at OPA's start, a local process may ask for an access
decision and probe /health, and nothing else: no writing grants, no reading them, no
policies. The secret never shows on OPA's command line.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import requests

from datavisa.engine.lifecycle.grants import live_grants
from datavisa.engine.policy.process import OpaProcess

ACCESS = "/v1/data/datavisa/access/decision"
RESOURCE = "eu-customer-analytics"
CHECK = {"subject": "oscar", "resource": RESOURCE, "action": "read", "location": "DE"}


def _call(opa: OpaProcess, method: str, path: str, token: str | None = None, body=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.request(method, opa.url + path, json=body, headers=headers, timeout=10)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/data/grants/oscar", {}),
        ("PATCH", "/v1/data/grants", [{"op": "add", "path": "/oscar", "value": {}}]),
        ("DELETE", "/v1/data/grants", None),
        ("GET", "/v1/data/grants", None),
        ("GET", "/v1/data", None),
        ("POST", "/v1/data/grants", {"input": {}}),
        ("GET", "/v1/data/system/authz", None),
        ("GET", "/v1/policies", None),
        ("PUT", "/v1/policies/evil", None),
        ("POST", "/v1/query", {"query": "data.grants"}),
        ("GET", "/v1/status", None),
        ("POST", f"{ACCESS}?explain=full", {"input": CHECK}),
        ("POST", "/v1/data/datavisa/logged/access_decision", {"input": CHECK}),
    ],
)
@pytest.mark.parametrize("token", [None, "a-guess"], ids=["no-token", "wrong-token"])
def test_without_the_secret_a_caller_is_refused_and_told_why(opa, method, path, body, token):
    response = _call(opa, method, path, token, body)
    assert response.status_code in (401, 403), response.text
    assert "POST /v1/data/datavisa/access/decision" in response.json()["message"]


def test_without_the_secret_anyone_may_ask_a_decision_and_probe_health(opa):
    answer = _call(opa, "POST", ACCESS, body={"input": CHECK})
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json()["result"]["allow"], bool)  # by whatever grants OPA holds
    assert answer.json()["decision_id"]
    assert _call(opa, "POST", ACCESS + "?pretty=true", body={"input": CHECK}).status_code == 200
    for probe in ("/health", "/health?bundles", "/health?bundles&plugins"):
        assert _call(opa, "GET", probe).status_code == 200, probe


def _alices_grant(engine) -> tuple[str, dict]:
    req = engine.request("alice", RESOURCE, ["read"], 3600, "DE", "INC-7")
    engine.approve(req.id, "bob", "DE")
    return req.id, live_grants(engine.store)["alice"]


def test_a_forged_grant_cannot_turn_a_deny_into_an_allow(opa, engine):
    _, grants = _alices_grant(engine)
    assert engine.check("oscar", RESOURCE, "read", "DE").allow is False
    assert _call(opa, "PUT", "/v1/data/grants/oscar", body=grants).status_code == 401
    decision = engine.check("oscar", RESOURCE, "read", "DE")
    assert decision.allow is False
    assert decision.codes == ["no_active_grant"]
    # With the secret the same forgery reaches OPA, which then allows a service that asks
    # it directly; the engine's own check still denies (the store holds no such grant).
    assert _call(opa, "PUT", "/v1/data/grants/oscar", opa.token, grants).status_code == 204
    direct = _call(opa, "POST", ACCESS, body={"input": {**CHECK, "subject": "oscar"}})
    assert direct.json()["result"]["allow"] is True
    assert engine.check("oscar", RESOURCE, "read", "DE").codes == ["grant_not_active"]
    engine.grants.sync()  # the engine's own grants back


def test_the_engine_still_pushes_grants_and_decides(opa, engine):
    grant_id, _ = _alices_grant(engine)
    assert engine.check("alice", RESOURCE, "read", "DE").allow is True
    pushed = _call(opa, "GET", "/v1/data/grants/alice", token=opa.token)
    assert pushed.status_code == 200, pushed.text
    assert grant_id in pushed.json()["result"]
    # What the engine pushes, anyone may be judged by, but only the engine may read.
    assert _call(opa, "POST", ACCESS, body={"input": CHECK | {"subject": "alice"}}).json()[
        "result"
    ]["allow"]
    assert _call(opa, "GET", "/v1/data/grants/alice").status_code == 401


def test_the_secret_is_in_a_private_file_and_not_on_the_command_line(opa):
    assert len(opa.token) >= 32
    proc = Path(f"/proc/{opa.pid}")
    assert opa.token.encode() not in proc.joinpath("cmdline").read_bytes()  # what `ps` shows
    assert opa.token.encode() not in proc.joinpath("environ").read_bytes()
    assert opa.token_file is not None
    assert opa.token_file.read_text() == opa.token
    assert stat.S_IMODE(os.stat(opa.token_file).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(opa.token_file.parent).st_mode) == 0o700
    config = json.loads((opa.token_file.parent / "opa.json").read_text())
    assert opa.token not in json.dumps(config)  # the config names the folder, not the secret


def test_every_start_makes_a_new_secret_and_a_stop_removes_it(opa):
    with OpaProcess(opa.bundle) as other:
        first, folder = other.token, other.token_file.parent
        assert first != opa.token
        # Each OPA knows its own engine only.
        assert _call(opa, "GET", "/v1/data/grants", token=first).status_code == 401
    assert not folder.exists()
    with OpaProcess(opa.bundle) as again:
        assert again.token not in (first, opa.token)


def test_a_command_against_an_opa_that_wants_a_credential_says_how_to_give_it(run, opa):
    result = run("check", "alice", RESOURCE, "--from", "DE", "--json", opa=opa.url)
    assert result.exit_code == 1
    decision = json.loads(result.stdout)
    assert decision["allow"] is False
    assert [r["code"] for r in decision["reasons"]] == ["policy_unavailable"]
    assert "HTTP 401" in decision["reasons"][0]["message"]
    assert "--opa-token-file" in decision["reasons"][0]["message"]


def test_a_credential_without_an_opa_url_is_refused(run, opa, monkeypatch):
    monkeypatch.setenv("DATAVISA_OPA_TOKEN", opa.token)
    result = run("check", "alice", RESOURCE, "--from", "DE", opa=None)
    assert result.exit_code != 0
    assert "--opa-url" in result.output
