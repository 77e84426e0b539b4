"""Groups from the identity provider, judged as policy, against a real Ory Hydra on
loopback: the groups claim of a person's token (Hydra's token hook puts it there, as an
organisation's IdP puts its directory groups) makes them an approver (bundles/default/
identity.yaml: data-owners gives the data_owner role) or gives their API role; taken out
of the group at the IdP, their next token has lost the right. The tokens made before keep
what they had until they expire: the bound docs/identity.md states."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests
from hydra import AUDIENCE, Hydra
from live_server import RESOURCE, served_store

from datavisa.engine.api.tokens import SUBJECT_PATTERN
from datavisa.engine.identity.oidc import OidcConfig, Verifier
from datavisa.engine.policy.process import OpaProcess


@pytest.fixture(scope="module")
def hydra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hydra]:
    with Hydra(tmp_path_factory.mktemp("hydra") / "hydra.log") as running:
        for person in ("alice", "bob", "oscar", "erin"):
            running.person(person)
        yield running


@pytest.fixture
def api(tmp_path, opa: OpaProcess, hydra: Hydra) -> Iterator[str]:
    config = OidcConfig(issuer=hydra.issuer, audience=AUDIENCE, groups_claim="groups")
    verifier = Verifier(config, SUBJECT_PATTERN)
    with served_store(tmp_path / "d.db", opa, "groups", "gw", "service", identity=verifier) as (
        url,
        _,
    ):
        yield url


def _call(url: str, token: str, method: str = "GET", path: str = "/v1/whoami", **kw):
    headers = {"Authorization": f"Bearer {token}"}
    return requests.request(method, url + path, headers=headers, timeout=30, **kw)


def _ask(url: str, token: str) -> str:
    body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-7"}
    made = _call(url, token, "POST", "/v1/requests", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["state"] == "pending"
    return made.json()["id"]


def _approve(url: str, token: str, request_id: str) -> requests.Response:
    return _call(url, token, "POST", f"/v1/requests/{request_id}/approve", json={"location": "DE"})


def test_a_group_at_the_idp_makes_an_approver_and_its_removal_takes_it_away(api, hydra):
    url = api
    first, second = _ask(url, hydra.token("alice")), _ask(url, hydra.token("bob"))
    # oscar, of the data's team, holds no data_owner role in the bundle's directory.
    refused = _approve(url, hydra.token("oscar"), first)
    assert refused.status_code == 403, refused.text
    assert {r["code"] for r in refused.json()["error"]["reasons"]} == {"approver_not_eligible"}
    hydra.put_in_groups("oscar", ["data-owners"])
    approved = _approve(url, hydra.token("oscar"), first)
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "active"
    hydra.put_in_groups("oscar", [])  # taken out of the group at the IdP
    refused = _approve(url, hydra.token("oscar"), second)  # his next token
    assert refused.status_code == 403, refused.text
    assert {r["code"] for r in refused.json()["error"]["reasons"]} == {"approver_not_eligible"}


def test_an_approver_by_group_may_deny_and_revoke_as_approvers_do(api, hydra):
    url = api
    hydra.put_in_groups("oscar", ["data-owners"])
    token = hydra.token("oscar")
    denied = _call(url, token, "POST", f"/v1/requests/{_ask(url, hydra.token('bob'))}/deny",
                   json={"reason": "not now"})  # fmt: skip
    assert denied.status_code == 200, denied.text
    assert denied.json()["state"] == "denied"
    grant = _ask(url, hydra.token("alice"))
    assert _approve(url, token, grant).json()["state"] == "active"
    revoked = _call(url, token, "POST", f"/v1/grants/{grant}/revoke", json={"reason": "done"})
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["state"] == "revoked"
    hydra.put_in_groups("oscar", [])


def test_the_api_role_of_a_person_comes_from_their_groups(api, hydra):
    url = api
    assert _call(url, hydra.token("erin")).json() == {"subject": "erin", "role": "user"}
    hydra.put_in_groups("erin", ["datavisa-auditors"])
    auditor = hydra.token("erin")
    assert _call(url, auditor).json()["role"] == "auditor"
    assert _call(url, auditor, path="/v1/logs").status_code == 200  # an auditor's read
    hydra.put_in_groups("erin", ["datavisa-auditors", "datavisa-admins"])
    assert _call(url, hydra.token("erin")).json()["role"] == "admin"  # first of idp_api_roles
    hydra.put_in_groups("erin", [])
    user = hydra.token("erin")
    assert _call(url, user).json()["role"] == "user"
    assert _call(url, user, path="/v1/logs").status_code == 403
    assert _call(url, auditor).json()["role"] == "auditor"  # until that token expires


def test_a_person_deprovisioned_by_scim_is_refused_whatever_token_they_hold(
    tmp_path, opa: OpaProcess, hydra: Hydra
):
    config = OidcConfig(issuer=hydra.issuer, audience=AUDIENCE, groups_claim="groups")
    verifier = Verifier(config, SUBJECT_PATTERN)
    with served_store(tmp_path / "d.db", opa, "groups", "okta", "scim", identity=verifier) as (
        url,
        scim_token,
    ):
        hydra.put_in_groups("oscar", ["datavisa-auditors"])
        token = hydra.token("oscar")
        assert _call(url, token).json()["role"] == "auditor"
        scim = {"Authorization": f"Bearer {scim_token}"}
        user = {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "oscar"}
        made = requests.post(url + "/scim/v2/Users", json=user, headers=scim, timeout=30)
        assert made.status_code == 201, made.text
        off = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
               "Operations": [{"op": "replace", "value": {"active": False}}]}  # fmt: skip
        at = f"{url}/scim/v2/Users/{made.json()['id']}"
        assert requests.patch(at, json=off, headers=scim, timeout=30).status_code == 200
        refused = _call(url, token)  # the same token, still within its lifetime
        assert refused.status_code == 403, refused.text
        assert [r["code"] for r in refused.json()["error"]["reasons"]] == ["deprovisioned"]
    client = opa.client()  # the session's OPA: no one stays deprovisioned there
    client.put_data("directory", {"people": {}})
    client.close()
