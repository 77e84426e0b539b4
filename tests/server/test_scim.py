"""SCIM 2.0 at /scim/v2 against a real uvicorn, OPA and SQLite: every operation on Users
and Groups as Okta and Entra ID send them, SCIM's error messages with their statuses,
every change in the audit trail, the synced directory reaching policy, and a
deprovisioned person's requests cancelled and grants revoked before the answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from live_server import RESOURCE, served_store

from datavisa.engine.api.tokens import TokenStore
from datavisa.engine.policy.process import OpaProcess

SCIM = "/scim/v2"
MEDIA = "application/scim+json"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"

pytestmark = pytest.mark.stores  # each test on SQLite and on PostgreSQL


@dataclass
class Served:
    url: str
    tokens: dict[str, str]  # by subject: a token of each caller
    db: Any  # the store's file or URL: to issue more

    def issue(self, subject: str, role: str = "user") -> None:
        """A new token for `subject` (theirs was revoked)."""
        issued = TokenStore(self.db)
        self.tokens[subject] = issued.issue(subject, role)[0]
        issued.close()

    def call(self, method: str, path: str, who: str = "okta", **kw: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kw.pop("headers", {})}
        if "json" in kw:
            headers.setdefault("Content-Type", MEDIA)
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def scim(self, method: str, path: str, body: Any = None, **kw: Any) -> requests.Response:
        if body is not None:
            kw["json"] = body
        return self.call(method, SCIM + path, **kw)


@pytest.fixture
def api(db, opa: OpaProcess) -> Iterator[Served]:
    with served_store(db, opa, "scim", "okta", "scim") as (url, token):
        issued = TokenStore(db)
        tokens = {"okta": token}
        for subject, role in (("alice", "user"), ("bob", "user"), ("nina", "user"),
                              ("audrey", "auditor"), ("gw", "service")):  # fmt: skip
            tokens[subject] = issued.issue(subject, role)[0]
        issued.close()
        yield Served(url, tokens, db)
    client = opa.client()  # the session's OPA: no one stays deprovisioned there
    client.put_data("directory", {"people": {}})
    client.close()


def _user(user_name: str, **extra: Any) -> dict[str, Any]:
    return {"schemas": [USER], "userName": user_name, "active": True, **extra}


def _error(answer: requests.Response, status: int, scim_type: str | None = None) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith(MEDIA)
    body = answer.json()
    assert body["schemas"] == [ERROR] and body["status"] == str(status)
    assert body.get("scimType") == scim_type, body
    return body["detail"]


def _audit(api: Served) -> list[dict[str, Any]]:
    answer = api.call("GET", "/v1/audit?limit=1000", "audrey")
    assert answer.status_code == 200, answer.text
    return answer.json()["events"]


def test_discovery_documents(api):
    config = api.scim("GET", "/ServiceProviderConfig")
    assert config.status_code == 200 and config.headers["content-type"].startswith(MEDIA)
    assert config.json()["patch"] == {"supported": True}
    assert config.json()["filter"]["supported"] is True
    assert config.json()["authenticationSchemes"][0]["type"] == "oauthbearertoken"
    types = api.scim("GET", "/ResourceTypes").json()
    assert {t["name"] for t in types["Resources"]} == {"User", "Group"}
    user_type = api.scim("GET", "/ResourceTypes/User").json()
    assert user_type["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    schemas = api.scim("GET", "/Schemas").json()
    assert {s["id"] for s in schemas["Resources"]} == {USER, ENTERPRISE, GROUP}
    user = api.scim("GET", f"/Schemas/{USER}").json()
    assert next(a for a in user["attributes"] if a["name"] == "userName")["uniqueness"] == "server"
    _error(api.scim("GET", "/Schemas/urn:nope"), 404)
    _error(api.scim("GET", "/ResourceTypes/Robot"), 404)


def test_only_a_scim_token_gets_in(api):
    for who in (None, "not-a-token"):
        headers = {} if who is None else {"Authorization": f"Bearer {who}"}
        answer = requests.get(api.url + SCIM + "/Users", headers=headers, timeout=30)
        _error(answer, 401)
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    for who in ("alice", "audrey", "gw"):
        detail = _error(api.scim("GET", "/Users", who=who), 403)
        assert "may not call scim.read" in detail
    # And a scim token reaches nothing else.
    assert api.call("GET", "/v1/requests").status_code == 403


def test_users_create_get_list_replace_delete(api):
    made = api.scim("POST", "/Users", _user("nina", displayName="Nina Roth",
                    externalId="00u1", emails=[{"value": "nina@acme.example", "type": "work"}],
                    password="never-kept"))  # fmt: skip
    assert made.status_code == 201, made.text
    nina = made.json()
    assert nina["userName"] == "nina" and nina["active"] is True and "password" not in nina
    assert nina["meta"]["resourceType"] == "User"
    assert made.headers["Location"] == nina["meta"]["location"].replace("http://", "http://")
    assert api.scim("GET", f"/Users/{nina['id']}").json() == nina
    # Found by userName, case-insensitively, as Okta and Entra ID look before creating.
    for name in ("nina", "NINA"):
        found = api.scim("GET", "/Users", params={"filter": f'userName eq "{name}"'}).json()
        assert found["totalResults"] == 1 and found["Resources"][0]["id"] == nina["id"]
        assert found["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    by_external = api.scim("GET", "/Users", params={"filter": 'externalId eq "00u1"'}).json()
    assert by_external["totalResults"] == 1
    none = api.scim("GET", "/Users", params={"filter": 'userName eq "zoe"'}).json()
    assert none["totalResults"] == 0 and none["Resources"] == []
    # userName is unique, whatever its case.
    _error(api.scim("POST", "/Users", _user("Nina")), 409, "uniqueness")
    # Replaced whole: what the PUT leaves out is gone.
    put = api.scim("PUT", f"/Users/{nina['id']}", _user("nina", displayName="Nina R."))
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "Nina R." and "emails" not in put.json()
    assert put.json()["meta"]["version"] == 'W/"2"'
    # Paged.
    api.scim("POST", "/Users", _user("oscar"))
    page = api.scim("GET", "/Users", params={"startIndex": 2, "count": 1}).json()
    assert (page["totalResults"], page["startIndex"], page["itemsPerPage"]) == (2, 2, 1)
    assert page["Resources"][0]["userName"] == "oscar"
    assert api.scim("DELETE", f"/Users/{nina['id']}").status_code == 204
    _error(api.scim("GET", f"/Users/{nina['id']}"), 404)
    _error(api.scim("DELETE", f"/Users/{nina['id']}"), 404)
    # Created again after the delete: a new User.
    again = api.scim("POST", "/Users", _user("nina"))
    assert again.status_code == 201 and again.json()["id"] != nina["id"]
    events = [e["event"] for e in _audit(api) if e["event"].startswith("directory_")]
    assert events == ["directory_user_created", "directory_user_changed",
                      "directory_user_created", "directory_user_deleted",
                      "directory_user_created"]  # fmt: skip


def test_bad_input_is_a_scim_error_that_changes_nothing(api):
    nina = api.scim("POST", "/Users", _user("nina")).json()
    at = f"/Users/{nina['id']}"
    _error(api.scim("GET", "/Users", params={"filter": "userName eq"}), 400, "invalidFilter")
    _error(api.scim("GET", "/Users", params={"filter": 'userName sw "n"'}), 400, "invalidFilter")
    _error(api.scim("GET", "/Users", params={"filter": 'title eq "x"'}), 400, "invalidFilter")
    _error(api.scim("POST", "/Users", {"schemas": [USER]}), 400, "invalidValue")
    _error(api.scim("POST", "/Users", _user("bad name!")), 400, "invalidValue")
    _error(api.scim("POST", "/Users", _user("x", shoeSize=44)), 400, "invalidPath")
    _error(api.scim("POST", "/Users", _user("x", active="yes")), 400, "invalidValue")
    _error(api.scim("POST", "/Users", _user("x", schemas=[GROUP])), 400, "invalidSyntax")
    _error(api.scim("POST", "/Users", data=b"{not json", headers={"Content-Type": MEDIA}),
           400, "invalidSyntax")  # fmt: skip
    ops = [{"op": "replace", "path": "displayName", "value": "N"},
           {"op": "replace", "path": "shoeSize", "value": 44}]  # fmt: skip
    detail = _error(api.scim("PATCH", at, {"schemas": [PATCH], "Operations": ops}), 400,
                    "invalidPath")  # fmt: skip
    assert "shoeSize" in detail
    assert "displayName" not in api.scim("GET", at).json()  # the first op did not land either
    _error(api.scim("PATCH", at, {"schemas": [PATCH], "Operations": []}), 400, "invalidSyntax")
    _error(api.scim("PATCH", at, {"Operations": ops[:1]}), 400, "invalidSyntax")
    bad_op = [{"op": "move", "path": "displayName", "value": "N"}]
    _error(api.scim("PATCH", at, {"schemas": [PATCH], "Operations": bad_op}), 400,
           "invalidSyntax")  # fmt: skip
    read_only = [{"op": "replace", "path": "id", "value": "mine"}]
    _error(api.scim("PATCH", at, {"schemas": [PATCH], "Operations": read_only}), 400,
           "mutability")  # fmt: skip
    no_target = [{"op": "remove"}]
    _error(api.scim("PATCH", at, {"schemas": [PATCH], "Operations": no_target}), 400, "noTarget")
    _error(api.scim("PATCH", "/Users/no-such-user", {"schemas": [PATCH], "Operations": ops}), 404)
    assert api.scim("GET", at).json() == nina
    changes = [e for e in _audit(api) if e["event"].startswith("directory_")]
    assert [e["event"] for e in changes] == ["directory_user_created"]


def test_users_patched_as_okta_and_entra_id_send_it(api):
    nina = api.scim("POST", "/Users", _user("nina", name={"givenName": "Nina"})).json()
    at = f"/Users/{nina['id']}"

    def patch(*operations: dict[str, Any]) -> dict[str, Any]:
        answer = api.scim("PATCH", at, {"schemas": [PATCH], "Operations": list(operations)})
        assert answer.status_code == 200, answer.text
        return answer.json()

    # Okta: replace with a value object and no path.
    done = patch({"op": "replace", "value": {"displayName": "Nina Roth", "active": True}})
    assert done["displayName"] == "Nina Roth"
    # Entra ID: capitalised ops, filtered paths, the extension's URN paths, and booleans
    # as strings.
    done = patch(
        {"op": "Add", "path": 'emails[type eq "work"].value', "value": "nina@acme.example"},
        {"op": "Replace", "path": "name.familyName", "value": "Roth"},
        {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "analytics"},
        {"op": "Replace", "path": "title", "value": "Engineer"},
    )
    assert done["emails"] == [{"type": "work", "value": "nina@acme.example"}]
    assert done["name"] == {"givenName": "Nina", "familyName": "Roth"}
    assert done[ENTERPRISE] == {"department": "analytics"}
    assert ENTERPRISE in done["schemas"]
    done = patch(
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "n@acme.example"}
    )
    assert done["emails"] == [{"type": "work", "value": "n@acme.example"}]
    done = patch(
        {"op": "Remove", "path": "title"}, {"op": "remove", "path": 'emails[type eq "work"]'}
    )
    assert "title" not in done and done["emails"] == []
    done = patch({"op": "Replace", "path": "active", "value": "False"})
    assert done["active"] is False
    done = patch({"op": "replace", "value": {"active": True}})
    assert done["active"] is True


def test_groups_and_their_members(api):
    ids = {n: api.scim("POST", "/Users", _user(n)).json()["id"] for n in ("nina", "oscar", "pia")}
    made = api.scim("POST", "/Groups", {"schemas": [GROUP], "displayName": "data-owners",
                    "externalId": "g-1", "members": [{"value": ids["nina"]}]})  # fmt: skip
    assert made.status_code == 201, made.text
    group = made.json()
    at = f"/Groups/{group['id']}"
    assert [m["value"] for m in group["members"]] == [ids["nina"]]
    assert group["members"][0]["display"] == "nina"
    found = api.scim("GET", "/Groups", params={"filter": 'displayName eq "Data-Owners"'}).json()
    assert found["totalResults"] == 1
    slim = api.scim("GET", "/Groups", params={"excludedAttributes": "members"}).json()
    assert "members" not in slim["Resources"][0]
    user = api.scim("GET", f"/Users/{ids['nina']}").json()
    assert user["groups"] == [{"value": group["id"], "display": "data-owners", "type": "direct"}]
    _error(api.scim("POST", "/Groups", {"schemas": [GROUP], "displayName": "DATA-owners"}),
           409, "uniqueness")  # fmt: skip
    _error(api.scim("POST", "/Groups", {"schemas": [GROUP], "displayName": "x",
                    "members": [{"value": "no-such-user"}]}), 400, "invalidValue")  # fmt: skip

    def patch(*operations: dict[str, Any]) -> list[str]:
        answer = api.scim("PATCH", at, {"schemas": [PATCH], "Operations": list(operations)})
        assert answer.status_code == 200, answer.text
        return sorted(m["display"] for m in answer.json().get("members", []))

    # Okta and Entra ID add members with path members and a list of values.
    assert patch({"op": "add", "path": "members",
                  "value": [{"value": ids["oscar"]}, {"value": ids["pia"]}]}) == [
        "nina", "oscar", "pia"]  # fmt: skip
    # Okta removes by a filtered path; Entra ID by a list of values.
    assert patch({"op": "remove", "path": f'members[value eq "{ids["oscar"]}"]'}) == ["nina", "pia"]
    assert patch({"op": "Remove", "path": "members", "value": [{"value": ids["pia"]}]}) == ["nina"]
    assert patch({"op": "replace", "path": "displayName", "value": "owners"}) == ["nina"]
    put = api.scim("PUT", at, {"schemas": [GROUP], "displayName": "owners", "members": []})
    assert put.status_code == 200 and put.json()["members"] == []
    assert api.scim("DELETE", at).status_code == 204
    _error(api.scim("GET", at), 404)
    changes = [e for e in _audit(api) if e["event"].startswith("directory_group")]
    assert [e["event"] for e in changes] == (
        ["directory_group_created"] + ["directory_group_changed"] * 5 + ["directory_group_deleted"]
    )
    assert changes[1]["detail"]["added"] == ["oscar", "pia"]
    assert changes[2]["detail"]["removed"] == ["oscar"]


def _approve(api: Served, who: str, request_id: str) -> requests.Response:
    return api.call("POST", f"/v1/requests/{request_id}/approve", who, json={"location": "DE"})


def _ask(api: Served, who: str, resource: str = RESOURCE) -> dict[str, Any]:
    body = {"resource": resource, "duration": "20m", "location": "DE", "reason": "INC-3"}
    made = api.call("POST", "/v1/requests", who, json=body)
    assert made.status_code == 201, made.text
    return made.json()


def test_a_synced_person_and_group_reach_policy(api):
    """nina is in no bundle: SCIM makes her a person of the analytics team employed by
    acme-gmbh, and the data-owners group (identity.yaml) makes her a data owner."""
    pending = _ask(api, "alice")
    refused = _approve(api, "nina", pending["id"])
    assert refused.status_code == 403, refused.text
    assert {r["code"] for r in refused.json()["error"]["reasons"]} == {"unknown_approver"}
    body = _user("nina", **{ENTERPRISE: {"department": "analytics", "organization": "acme-gmbh"}})
    nina = api.scim("POST", "/Users", body).json()
    refused = _approve(api, "nina", pending["id"])
    assert {r["code"] for r in refused.json()["error"]["reasons"]} == {"approver_not_eligible"}
    group = {"schemas": [GROUP], "displayName": "data-owners", "members": [{"value": nina["id"]}]}
    assert api.scim("POST", "/Groups", group).status_code == 201
    approved = _approve(api, "nina", pending["id"])
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active"


def test_deprovisioning_cancels_requests_and_revokes_grants_before_it_answers(api):
    grant = _ask(api, "alice")
    assert _approve(api, "bob", grant["id"]).json()["state"] == "active"
    pending = _ask(api, "alice", "eu-payments-ledger")
    assert pending["state"] == "pending"
    check = {"resource": RESOURCE, "action": "read", "location": "DE", "subject": "alice"}
    assert api.call("POST", "/v1/access/check", "gw", json=check).json()["allow"] is True
    alice = api.scim("POST", "/Users", _user("alice")).json()
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    answer = api.scim("PATCH", f"/Users/{alice['id']}", off)
    assert answer.status_code == 200 and answer.json()["active"] is False
    # When SCIM has answered, the grant is revoked everywhere and the request cancelled.
    asked = api.call("POST", "/v1/access/check", "gw", json=check).json()
    assert asked["allow"] is False, asked
    for req, state in ((grant, "revoked"), (pending, "cancelled")):
        now = api.call("GET", f"/v1/requests/{req['id']}", "audrey").json()
        assert now["state"] == state, now
        assert now["end_reason"] == "deprovisioned by directory sync (SCIM)"
        assert now["ended_by"] == "okta"
    trail = [e for e in _audit(api) if e["request_id"] in (grant["id"], pending["id"])]
    assert [e["event"] for e in trail][-2:] == ["revoked", "cancelled"]
    # Deprovisioned, alice is no one: the bundle's directory does not bring her back, and
    # a token issued to her now (her old one was revoked with her) gets her nothing.
    body = {"resource": "eu-service-metrics", "duration": "20m", "location": "DE", "reason": "x"}
    assert api.call("POST", "/v1/requests", "alice", json=body).status_code == 401
    api.issue("alice")
    refused = api.call("POST", "/v1/requests", "alice", json=body)
    assert refused.status_code == 403, refused.text
    assert "unknown_subject" in {r["code"] for r in refused.json()["error"]["reasons"]}
    # Active again, she may ask again; deleted, she is out again.
    on = {"schemas": [PATCH], "Operations": [{"op": "replace", "path": "active", "value": True}]}
    assert api.scim("PATCH", f"/Users/{alice['id']}", on).status_code == 200
    assert api.call("POST", "/v1/requests", "alice", json=body).status_code == 201
    assert api.scim("DELETE", f"/Users/{alice['id']}").status_code == 204
    assert api.call("POST", "/v1/requests", "alice", json=body).status_code == 401
    api.issue("alice")
    refused = api.call("POST", "/v1/requests", "alice", json=body)
    assert refused.status_code == 403, refused.text


def test_a_deprovisioned_persons_static_tokens_end_with_them(api):
    assert api.call("GET", "/v1/whoami", "alice").status_code == 200
    alice = api.scim("POST", "/Users", _user("alice")).json()
    off = {"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]}
    assert api.scim("PATCH", f"/Users/{alice['id']}", off).status_code == 200
    refused = api.call("GET", "/v1/whoami", "alice")
    assert refused.status_code == 401, refused.text  # revoked in the SCIM change itself
    [revoked] = [e for e in _audit(api) if e["event"] == "token_revoked"]
    assert revoked["actor"] == "okta" and revoked["detail"]["subject"] == "alice"
    assert api.call("GET", "/v1/whoami", "bob").status_code == 200  # no one else's
