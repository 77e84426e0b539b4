"""The API role model (rego/datavisa/api): every route by every role, on a real server.

The routes come from the app's own routers: a new route that names no operation, or one
this table does not know, fails here until the table below says who may call it. The
server authorizes from the table it loaded from OPA at start; these tests hold the policy
to the table written here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from live_server import RESOURCE, Api, Caller, uvicorn_thread, wait_for

from datavisa.engine.api.app import ROUTERS, create_app
from datavisa.engine.api.deps import operation_of
from datavisa.engine.api.permissions import Permissions
from datavisa.engine.api.service import Service
from datavisa.engine.api.tokens import ROLES, TokenStore
from datavisa.engine.ledger.decision_log import DecisionLog
from datavisa.engine.lifecycle.engine import Engine
from datavisa.engine.policy.opa import OpaClient
from datavisa.engine.policy.process import OpaProcess, free_port
from datavisa.engine.policy.supervisor import OpaSupervisor
from datavisa.engine.store.sqlite import Store

USER, SERVICE, AUDITOR, ADMIN, OPA, SCIM = "user", "service", "auditor", "admin", "opa", "scim"
READERS = {USER, AUDITOR, ADMIN}

# Operation → the roles whose tokens may call it; every other role is refused.
ALLOWED = {
    "requests.create": {USER},
    "requests.list": READERS,
    "requests.read": READERS,
    "requests.approvals": READERS,
    "requests.approve": {USER},
    "requests.deny": {USER},
    "requests.cancel": {USER},
    "grants.break_glass": {USER},
    "grants.activate": {USER},
    "grants.revoke": {USER, ADMIN},
    "grants.relinquish": {USER},
    "grants.extend": {USER},
    "grants.review": {USER},
    "grants.credentials": {USER},
    "activity.read": READERS,
    "grants.abandon_removal": {ADMIN},
    "sweep.run": {ADMIN},
    "access.check": {USER, SERVICE},
    "gateway.authz": {USER, SERVICE},
    "audit.read": READERS,
    "logs.upload": {SERVICE, OPA},
    "logs.read": {AUDITOR},
    "alerts.list": {AUDITOR, ADMIN},
    "alerts.read": {AUDITOR, ADMIN},
    "alerts.ack": {ADMIN},
    "events.read": READERS,
    "tokens.whoami": {USER, SERVICE, AUDITOR, ADMIN, OPA, SCIM},
    "bundles.read": {OPA},
    "fleet.report": {OPA},
    "fleet.read": {AUDITOR, ADMIN},
    "transfers.create": {USER},
    "transfers.check": {SERVICE},
    "transfers.deleted": {USER, SERVICE},
    "filings.list": {USER, AUDITOR, ADMIN},
    "filings.record": {USER, ADMIN},
    "scim.read": {SCIM},
    "scim.write": {SCIM},
    "export_counts.list": {USER, AUDITOR, ADMIN},
    "catalogue.read": READERS,
    "queue.read": {USER},
    "grants.supervise": {USER},
    "step_up.use": {USER},
}
PUBLIC = {"/health", "/metrics", "/", "/dashboard/{name}"}  # no token, no operation
# The browser's sign-in: no bearer token; the session cookie (and its CSRF token) is the
# credential, checked by the routes themselves (tests/server/test_web_sign_in.py).
# The step-up page is the sign-in's too: there is no step-up without a session.
SIGN_IN = {"/auth/login", "/auth/callback", "/auth/session", "/auth/logout", "/step-up"}
# Slack's interactions: Slack's request signature is the credential (test_slack.py).
SLACK_SIGNED = {"/slack/interactions"}
PATH_VALUES = {"{request_id}": "000000000000", "{alert_id}": "1", "{name}": "dashboard.css"}
PATH_VALUES["{partition}"] = "p"  # POST /v1/status/{partition}: OPA's status partition
PATH_VALUES["{resource_id}"] = "no-such-resource"  # a SCIM User's or Group's id
PATH_VALUES["{schema_id}"] = "urn:no-such-schema"
PATH_VALUES["{session}"] = "1"  # a session of a grant (supervision: end one session)
PATH_VALUES["{credential_id}"] = "no-such-credential-id"  # a step-up's WebAuthn credential
CHECK = {"resource": RESOURCE, "action": "read", "location": "DE"}

ROUTES = [
    (method, route.path, operation_of(route))
    for module in ROUTERS
    for route in module.router.routes
    if isinstance(route, APIRoute)
    for method in sorted(route.methods)
]
ROUTE_IDS = [f"{method} {path}" for method, path, _ in ROUTES]
V1_ROUTES = [(method, path, op) for method, path, op in ROUTES if op is not None]
# A HEAD answer has no body to say why it refused; the same route's GET says it.
ROLE_ROUTES = [(method, path, op) for method, path, op in V1_ROUTES if method != "HEAD"]


def _url(path: str) -> str:
    for name, value in PATH_VALUES.items():
        path = path.replace(name, value)
    return path


def _call(caller: Caller, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """Call a route with a body that is valid JSON but says nothing: a role refusal
    comes before the body is looked at, and an allowed call stops at validation, 404 or
    409 without changing anything (the stream is closed as soon as it answers)."""
    kw: dict[str, Any] = {"json": {}} if method == "POST" else {"stream": True}
    with caller.session.request(method, caller.base + _url(path), timeout=10, **kw) as response:
        media = response.headers.get("content-type", "")
        if media.startswith(("application/json", "application/scim+json")):
            return response.status_code, response.json()
        return response.status_code, {}


@pytest.fixture(scope="module")
def roles_api(tmp_path_factory: pytest.TempPathFactory, opa: OpaProcess) -> Iterator[Api]:
    """One server for the whole table (the service of conftest.py, once per module)."""
    db = tmp_path_factory.mktemp("roles") / "datavisa.db"
    store, tokens, client = Store(db), TokenStore(db), opa.client()
    engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
    engine.grants.sync()
    service = Service(engine, tokens)
    with uvicorn_thread(create_app(service)) as url:
        yield Api(url, service)
    service.close()
    tokens.close()
    store.close()
    client.close()


@pytest.mark.parametrize(("method", "path", "operation"), ROUTES, ids=ROUTE_IDS)
def test_every_route_names_an_operation_of_the_table_or_is_public(method, path, operation):
    if operation is None:
        unnamed = f"{method} {path} names no operation: declare Allowed(...)"
        assert path in PUBLIC | SIGN_IN | SLACK_SIGNED, unnamed
    else:
        assert operation in ALLOWED, f"{method} {path}: add {operation!r} to the role table"


def test_the_table_is_the_routes_and_the_roles_are_the_tokens():
    assert {op for _, _, op in V1_ROUTES} == set(ALLOWED)
    assert set(ROLES) == {role for roles in ALLOWED.values() for role in roles}


def test_the_app_documents_these_routes_and_no_others(roles_api):
    paths = create_app(roles_api.service).openapi()["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    in_schema = {
        (method, re.sub(r":\w+}", "}", route.path))  # OpenAPI names a path parameter plainly
        for module in ROUTERS
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    }
    assert documented == in_schema


def test_the_service_holds_the_policys_table(roles_api):
    permissions = roles_api.service.permissions
    for operation, roles in ALLOWED.items():
        assert {r for r in ROLES if permissions.allows(r, operation)} == roles, operation
    assert permissions.allows("root", "sweep.run") is False


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "path", "operation"), ROLE_ROUTES, ids=[f"{m} {p}" for m, p, _ in ROLE_ROUTES]
)
def test_each_role_on_each_route(roles_api, method, path, operation, role):
    status, body = _call(roles_api.as_(f"{role}-caller", role), method, path)
    if path.startswith("/scim/"):  # a SCIM Error message, as SCIM clients read them
        body = {"error": {"code": "forbidden", "message": body["detail"]}} if status == 403 else {}
    refused = status == 403 and body.get("error", {}).get("code") == "forbidden"
    if role in ALLOWED[operation]:
        assert not refused, body
        assert status != 503, body
    else:
        assert refused, (status, body)
        assert body["error"]["message"] == f"a token with role {role} may not call {operation}"


@pytest.mark.parametrize("path", sorted(PUBLIC))
def test_public_routes_need_no_token(roles_api, path):
    status, _ = _call(roles_api.anonymous(), "GET", path)
    assert status == 200


@pytest.mark.parametrize("path", sorted(SIGN_IN))
def test_the_sign_in_routes_are_not_there_without_a_configured_sign_in(roles_api, path):
    method = "POST" if path == "/auth/logout" else "GET"
    status, body = _call(roles_api.anonymous(), method, path)
    assert status == 404, body


def test_the_fast_lane_authorizes_as_the_route_does(roles_api):
    """A well-formed check is served by the fast lane; a role that may not ask is handed
    to the route, which refuses it."""
    for role in ROLES:
        response = roles_api.as_("alice", role).post("/v1/access/check", CHECK)
        if role in ALLOWED["access.check"]:
            assert response.status_code == 200, response.text
            assert response.json()["allow"] is False  # alice holds no grant
        else:
            assert response.status_code == 403
            assert response.json()["error"] == {
                "code": "forbidden",
                "message": f"a token with role {role} may not call access.check",
            }
    other = roles_api.as_("alice").post("/v1/access/check", {**CHECK, "subject": "bob"})
    assert (other.status_code, other.json()["error"]["field"]) == (403, "subject")
    asked = roles_api.as_("pep", SERVICE).post("/v1/access/check", {**CHECK, "subject": "bob"})
    assert asked.status_code == 200


def test_an_admin_token_revokes_anyones_grant_and_the_log_says_so(api):
    grant = api.grant("alice")
    path = f"/v1/grants/{grant['id']}/revoke"
    as_user = api.as_("carol").post(path, {"reason": "not hers to end"})
    assert as_user.status_code == 403
    assert as_user.json()["error"]["code"] == "denied"  # the lifecycle policy's no
    revoked = api.as_("carol", ADMIN).post(path, {"reason": "offboarding"})
    assert revoked.status_code == 200, revoked.text
    assert (revoked.json()["state"], revoked.json()["ended_by"]) == ("revoked", "carol")
    asked = [
        e["input"]
        for e in api.service.engine.log.query()
        if e["path"] == "datavisa/lifecycle/decision" and e["result"]["allow"]
    ]
    assert asked == [
        {"actor": "carol", "actor_role": ADMIN, "action": "revoke", "request": asked[0]["request"]}
    ]
    refused = api.as_("carol", ADMIN).post(f"/v1/requests/{grant['id']}/approve", {})
    assert (
        refused.json()["error"]["message"]
        == "a token with role admin may not call requests.approve"
    )


@pytest.fixture
def no_table_yet(db: Path, opa: OpaProcess) -> Iterator[tuple[Api, OpaClient, Service]]:
    """A service started while OPA did not answer, with a supervisor that loads the role
    table and pushes the grants whenever OPA answers (as `datavisa serve` does)."""
    store, tokens = Store(db), TokenStore(db)
    client = OpaClient(f"http://127.0.0.1:{free_port()}", timeout=0.5)
    engine = Engine(store, client, revision="test", log=DecisionLog(store, b"test-key"))
    permissions = Permissions()

    def resync() -> None:
        permissions.load(client)
        engine.grants.sync()

    supervisor = OpaSupervisor(client, resync, probe_every_s=0.05).start()
    service = Service(engine, tokens, supervisor, permissions=permissions)
    with uvicorn_thread(create_app(service)) as url:
        yield Api(url, service), client, service
    supervisor.stop()
    service.close()
    tokens.close()
    store.close()
    client.close()


def test_without_the_table_every_call_is_refused_until_opa_answers(no_table_yet, opa):
    api, client, service = no_table_yet
    alice = api.as_("alice")
    for response in (
        alice.get("/v1/whoami"),
        alice.get("/v1/requests"),
        alice.post("/v1/access/check", CHECK),  # the fast lane declines; the route refuses
    ):
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "policy_unavailable"
    health = api.anonymous().get("/health").json()
    assert (
        "the API permissions are not loaded from OPA: every call is refused" in (health["problems"])
    )

    client.point(opa.url, opa.token)  # OPA answers: the supervisor resyncs, loads the table
    wait_for(lambda: service.permissions.loaded, "the role table")
    assert alice.get("/v1/whoami").json() == {"subject": "alice", "role": "user"}
    assert alice.post("/v1/access/check", CHECK).status_code == 200
    wait_for(lambda: api.anonymous().get("/health").status_code == 200, "a ready server")
