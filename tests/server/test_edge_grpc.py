"""The sidecar plugin's Envoy ext_authz v3 gRPC Check (tools/opa/gateway/grpc.go), called
by a real gRPC client, grpcurl (built from its Go module by `make setup`), through the
plugin's server reflection.

The table of requests is the one the HTTP flavours run (test_edge_plugin.DIRECT), each
carried in a CheckRequest as Envoy would carry it; every answer must be the engine's
answer at the matching HTTP endpoint: the same status, DataVisa headers and JSON body.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from live_server import wait_for
from test_edge_plugin import (  # the same sidecar, engine and table as there
    CRED,
    DIRECT,
    EXPECTED,
    NGINX,
    WAIT_S,
    _ask,
    _comparable,
    datavisa,  # noqa: F401 (a fixture)
    policy_bundle,  # noqa: F401 (a fixture)
    sidecar,  # noqa: F401 (a fixture)
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHECK = "envoy.service.auth.v3.Authorization/Check"
# envoy.type.v3.StatusCode as protojson names them: the statuses a gateway answer has.
HTTP_STATUS = {"OK": 200, "BadRequest": 400, "Unauthorized": 401, "Forbidden": 403}
GRPC_OK, GRPC_PERMISSION_DENIED, GRPC_UNAUTHENTICATED = 0, 7, 16


def _grpcurl() -> str:
    built = PROJECT_ROOT / ".tools" / "bin" / "grpcurl"
    found = str(built) if built.exists() else shutil.which("grpcurl")
    if found is None:
        pytest.skip("grpcurl is not built (make setup builds it with Go)")
    return found


def _check(addr: str, request: dict[str, Any]) -> dict[str, Any]:
    """One Check by grpcurl: the CheckResponse, as protojson."""
    done = subprocess.run(
        [_grpcurl(), "-plaintext", "-format", "json", "-d", "@", addr, CHECK],
        input=json.dumps(request), capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr  # a gRPC error is never the answer
    return json.loads(done.stdout)


def _as_check(endpoint: str, headers: dict[str, str], token: str) -> dict[str, Any]:
    """The CheckRequest Envoy sends for the request a gateway asks about at `endpoint`:
    the original method, host and path (with its query) and its headers, keys lowercase."""
    sent = {k.lower(): (token if v == "@credential" else v) for k, v in headers.items()}
    if endpoint.startswith("/v1/authz/envoy/"):
        # The path as requests sends it to the HTTP flavour (it uppercases %2f, say).
        sent_path = requests.Request("GET", "http://edge" + endpoint).prepare().path_url
        method, host, path = "GET", sent.pop("host"), sent_path.removeprefix("/v1/authz/envoy")
    else:
        prefix = "x-original-" if endpoint == NGINX else "x-forwarded-"
        method = sent.pop(prefix + "method")
        host, path = sent.pop(prefix + "host"), sent.pop(prefix + "uri")
    http = {"method": method, "host": host, "path": path, "headers": sent}
    return {"attributes": {"request": {"http": http}}}


def _comparable_check(response: dict[str, Any]) -> dict[str, Any]:
    """What a CheckResponse tells the client, in test_edge_plugin._comparable's terms."""
    code = response.get("status", {}).get("code", GRPC_OK)
    if "okResponse" in response:
        assert code == GRPC_OK, response
        status, options, body = 200, response["okResponse"].get("headers", []), None
    else:
        denied = response["deniedResponse"]
        status = HTTP_STATUS[denied["status"]["code"]]
        assert code == (GRPC_UNAUTHENTICATED if status == 401 else GRPC_PERMISSION_DENIED)
        options, body = denied.get("headers", []), json.loads(denied["body"])
        if body.get("error", {}).get("decision_id"):
            body["error"]["decision_id"] = "present"
    headers = {
        o["header"]["key"].lower(): o["header"]["value"]
        for o in options
        if o["header"]["key"].lower().startswith(("x-datavisa-", "www-authenticate"))
    }
    for o in options:  # a client's own header of the same name never survives
        assert o.get("appendAction") == "OVERWRITE_IF_EXISTS_OR_ADD", o
    if "x-datavisa-decision-id" in headers:
        headers["x-datavisa-decision-id"] = "present"
    return {"status": status, "headers": headers, "body": body}


def test_grpc_check_answers_each_request_as_the_engine_does(datavisa, sidecar):  # noqa: F811
    grant = datavisa.grant("alice")
    token = sidecar.gateway_tokens["edge-direct"]
    allow = next(h for name, _, h in DIRECT if name == "allow")
    wait_for(
        lambda: _ask(sidecar.url, NGINX, allow, token).status_code == 200,
        "the sidecar to hold alice's grant", WAIT_S,
    )  # fmt: skip
    for name, endpoint, headers in DIRECT:
        engine = _comparable(_ask(datavisa.url, endpoint, headers, token))
        edge = _comparable_check(_check(sidecar.grpc_addr, _as_check(endpoint, headers, token)))
        assert edge == engine, name
        status, reason = EXPECTED[name]
        assert edge["status"] == status, (name, edge)
        if reason is None:
            assert edge["headers"]["x-datavisa-grant-id"] == grant["id"], name
        else:
            assert reason in edge["headers"]["x-datavisa-reasons"].split(","), (name, edge)


def test_bad_check_requests_are_denies_with_a_reason_never_errors(datavisa, sidecar):  # noqa: F811
    datavisa.grant("alice")
    token = sidecar.gateway_tokens["edge-direct"]
    ok = {CRED.lower(): token, "x-auth-request-user": "alice", "x-forwarded-for": "127.0.0.1"}
    http = {"method": "GET", "host": "analytics.localhost", "path": "/reports", "headers": ok}
    for case, request, reason in [
        ("empty", {}, "credential_missing"),
        ("no_credential", {"attributes": {"request": {"http": http | {"headers": {}}}}}, None),
        ("oversized_path", {"attributes": {"request": {"http": http | {"path": "/" + "a" * 60000}}}}, "header_too_large"),  # noqa: E501
        ("encoded_slash", {"attributes": {"request": {"http": http | {"path": "/docs/a%2Fb"}}}}, None),  # noqa: E501
        ("unknown_route", {"attributes": {"request": {"http": http | {"host": "nowhere.localhost"}}}}, "no_route"),  # noqa: E501
        ("no_method", {"attributes": {"request": {"http": http | {"method": ""}}}}, None),
    ]:  # fmt: skip
        answer = _comparable_check(_check(sidecar.grpc_addr, request))
        assert 400 <= answer["status"] < 500, (case, answer)
        reasons = answer["headers"]["x-datavisa-reasons"].split(",")
        assert reasons and all(reasons), (case, answer)
        assert answer["body"]["error"]["reasons"], (case, answer)
        if reason is not None:
            assert reason in reasons, (case, answer)
