"""The API keeps its contract at the edges found by fuzzing: cursor ids within signed
64-bit, times only as RFC 3339 text, and a 405 that says which methods there are; and
schemathesis, with all its checks, over the console's reads and the supervision routes
with a real supervised grant to reach (test_schemathesis runs every operation, a few
examples each and mostly answered 404 for want of such a grant)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from live_server import RESOURCE, Caller, served_store
from test_schemathesis import fuzz

from datavisa.engine.api.limits import InputRules
from datavisa.engine.api.schemas import CURSOR_MAX
from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.policy.process import OpaProcess


@pytest.fixture
def served(tmp_path, opa: OpaProcess) -> Iterator[tuple[str, str]]:
    with served_store(tmp_path / "datavisa.db", opa, "contract", "audrey", "auditor") as served:
        yield served


def get(url: str, token: str, path: str) -> requests.Response:
    return requests.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def test_a_cursor_past_64_bits_is_a_422_naming_it(served):
    url, token = served
    r = get(url, token, "/v1/grants/abc/activity?limit=69&after=430107612902272125107854901248")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "after"


def test_a_number_is_not_a_time(served):
    url, token = served
    r = get(url, token, "/v1/logs?until=0.5")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["field"] == "until"
    assert get(url, token, "/v1/logs?until=2026-01-31T09:00:00Z").status_code == 200


def test_a_405_names_every_method_of_the_path(served):
    url, token = served
    r = requests.delete(url + "/v1/logs", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    assert r.json()["error"]["code"] == "method_not_allowed"


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        target = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        schema = target | {k: v for k, v in schema.items() if k != "$ref"}
    return schema


def _unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """Where `schema` lets a string, integer or array through without bounds."""
    schema = _resolve(document, schema)
    out = [u for key in ("anyOf", "oneOf", "allOf") for sub in schema.get(key, [])
           for u in _unbounded(document, sub, where)]  # fmt: skip
    kind = schema.get("type")
    if kind == "string" and not {"maxLength", "pattern", "enum", "format", "const"} & set(schema):
        out.append(f"{where}: a string of any length")
    if kind == "integer" and not {"maximum", "minimum"} <= set(schema):
        out.append(f"{where}: an integer without bounds")
    if kind == "array":
        out += [] if "maxItems" in schema else [f"{where}: an array of any length"]
        out += _unbounded(document, schema.get("items", {}), f"{where}[]")
    for name, sub in schema.get("properties", {}).items():
        out += _unbounded(document, sub, f"{where}.{name}")
    return out


# The decision-log upload is OPA's own event array: its size is bounded in bytes
# (the upload limit, and the server's `limits` for each event's parts), not by count.
BOUNDED_IN_BYTES = "POST /v1/logs body"


def test_every_parameter_and_body_field_has_bounds(served):
    url, _ = served
    document = requests.get(url + "/openapi.json", timeout=30).json()
    loose = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            for p in operation.get("parameters", []):
                loose += _unbounded(document, p["schema"], f"{label} {p['in']} {p['name']}")
            for content in operation.get("requestBody", {}).get("content", {}).values():
                loose += _unbounded(document, content["schema"], f"{label} body")
    assert [u for u in loose if not u.startswith(BOUNDED_IN_BYTES)] == []
    assert loose  # the walk reaches fields (the upload's strings are bounded in bytes)


def test_the_document_s_countries_are_those_of_the_bundle_in_force(tmp_path, opa):
    """A schema-valid location is one the policy knows: the enum is the served bundle's,
    and a server running another bundle serves another document."""
    with served_store(tmp_path / "a.db", opa, "contract", "alice", "user") as (url, token):
        shipped = requests.get(url + "/openapi.json", timeout=30).json()
        refused = requests.post(
            url + "/v1/access/check",
            json={"resource": "r", "action": "read", "location": "AA"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    enum = shipped["components"]["schemas"]["Country"]["enum"]
    assert "DE" in enum and "unknown" in enum and "AA" not in enum
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "location"
    check = shipped["components"]["schemas"]["AccessCheck"]["properties"]["location"]
    assert check["$ref"] == "#/components/schemas/Country"

    fewer = InputRules(frozenset({"DE", "FR"}))
    with served_store(tmp_path / "b.db", opa, "contract", "alice", "user", rules=fewer) as (
        url,
        _,
    ):
        other = requests.get(url + "/openapi.json", timeout=30).json()
    assert other["components"]["schemas"]["Country"]["enum"] == ["DE", "FR", "unknown"]


def test_cursors_at_the_64_bit_edge_in_postgresql(tmp_path, opa, postgres, monkeypatch):
    """The largest cursor is a bigint PostgreSQL takes (an empty page); one past it a 422."""
    dsn = postgres.create_database(f"t_contract_{os.getpid()}")
    monkeypatch.setenv(KEY_ENV, "contract-key")
    with served_store(dsn, opa, "contract", "audrey", "auditor") as (url, token):
        for path in ("/v1/logs", "/v1/audit", "/v1/alerts", "/v1/grants/abc/activity"):
            edge = get(url, token, f"{path}?after={CURSOR_MAX}")
            assert edge.status_code in (200, 404), (path, edge.text)  # 404: no grant abc
            past = get(url, token, f"{path}?after={CURSOR_MAX + 1}")
            assert past.status_code == 422 and past.json()["error"]["field"] == "after", path
        assert get(url, token, f"/v1/alerts/{CURSOR_MAX}").status_code == 404


# The console's reads and a supervised grant's routes, as schemathesis names them.
FOCUSED = r"^/v1/(queue|catalogue|grants/\{request_id\}/(supervision|sessions/\{session\}/end))$"


def test_the_console_and_supervision_routes_keep_their_contract(tmp_path, opa: OpaProcess):
    """bob (a data owner: an approver and a supervisor) with a queue and a supervised
    grant of alice's he may supervise: every check, more examples than the whole run's."""
    db = tmp_path / "datavisa.db"
    with served_store(db, opa, "contract", "bob", "user") as (url, token):
        tokens = TokenStore(db)
        alice = Caller(url, tokens.issue("alice", "user")[0])
        kenji = Caller(url, tokens.issue("kenji", "user")[0])
        tokens.close()
        bob = Caller(url, token)
        asked = {"resource": RESOURCE, "duration": "1h", "location": "DE", "reason": "INC-9"}
        assert kenji.post("/v1/requests", asked).status_code == 201  # in bob's queue
        made = alice.post("/v1/requests", asked | {"actions": ["read", "write"]})
        assert made.status_code == 201, made.text
        grant = made.json()["id"]
        approved = bob.post(f"/v1/requests/{grant}/approve", {"location": "DE"})
        assert approved.json()["supervision"]["supervised"] is True, approved.text
        # The grant's id and a session of the shape `watch` names, in every path.
        (tmp_path / "schemathesis.toml").write_text(
            f'[parameters]\nrequest_id = "{grant}"\nsession = "4711.1a2b"\n'
        )
        done = fuzz(url, token, tmp_path, "--include-path-regex", FOCUSED, "--max-examples", "40")
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "6 selected" in report, report
    assert int(re.findall(r"(\d+) generated", report)[-1]) > 200, report
