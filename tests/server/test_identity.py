"""The identity provider's JWT access tokens at the API, against a real Ory Hydra on
loopback: a person it signed in acts as themselves; every token that should not count is
a 401 with a JSON body saying why (never a 5xx); a key rotation is picked up; an issuer
whose keys cannot be fetched fails closed and /health says so. Static tokens keep working
beside them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator

import pytest
import requests
from hydra import AUDIENCE, Hydra
from joserfc import jwt
from joserfc.jwk import RSAKey
from live_server import RESOURCE, served_store, wait_for

from datavisa.engine.api.tokens import SUBJECT_PATTERN
from datavisa.engine.identity.oidc import OidcConfig, Verifier
from datavisa.engine.policy.process import OpaProcess, free_port

WAIT_S = 30.0


@pytest.fixture(scope="module")
def hydra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hydra]:
    with Hydra(tmp_path_factory.mktemp("hydra") / "hydra.log") as running:
        for person in ("alice", "bob", "dave"):
            running.person(person)
        running.person("carol", audiences=(AUDIENCE, "another-service"))
        yield running


def _verifier(hydra: Hydra, **config: object) -> Verifier:
    settings = {"issuer": hydra.issuer, "audience": AUDIENCE, "leeway_s": 1.0,
                "refetch_after_s": 0.2} | config  # fmt: skip
    return Verifier(OidcConfig(**settings), SUBJECT_PATTERN)  # type: ignore[arg-type]


@pytest.fixture
def api(tmp_path, opa: OpaProcess, hydra: Hydra) -> Iterator[tuple[str, str]]:
    """A server that takes Hydra's tokens (and static ones: its own is a service's)."""
    with served_store(
        tmp_path / "d.db", opa, "identity", "gw", "service", identity=_verifier(hydra)
    ) as served:
        yield served


def _call(url: str, token: str, method: str = "GET", path: str = "/v1/whoami", **kw):
    headers = {"Authorization": f"Bearer {token}", **kw.pop("headers", {})}
    return requests.request(method, url + path, headers=headers, timeout=30, **kw)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _kid(token: str) -> str:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["kid"]


def test_a_person_the_idp_signed_in_acts_as_themselves(api, hydra):
    url, service_token = api
    token = hydra.token("alice")
    me = _call(url, token)
    assert me.status_code == 200, me.text
    assert me.json() == {"subject": "alice", "role": "user"}
    body = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-9"}
    made = _call(url, token, "POST", "/v1/requests", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["requester"] == "alice"  # the token's subject, never a body field
    assert _call(url, service_token).json()["role"] == "service"  # static tokens stay


def _refused(url: str, token: str, why: str) -> None:
    answer = _call(url, token)
    assert answer.status_code == 401, answer.text
    assert answer.headers["WWW-Authenticate"] == "Bearer"
    error = answer.json()["error"]
    assert error["code"] == "unauthenticated"
    assert why in error["message"], error["message"]


def test_tokens_that_should_not_count_are_401_with_why(api, hydra):
    url, _ = api
    good = hydra.token("bob")
    header, payload, signature = good.split(".")
    claims = _claims(good)
    # Another audience's token, signed by the issuer all the same.
    _refused(url, hydra.token("carol", audience="another-service"), "not for this service")
    # No signature at all.
    none = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    _refused(url, f"{none}.{payload}.", "signed with 'none'")
    # HMAC keyed with the issuer's public key (the classic confusion).
    jwks = requests.get(hydra.issuer + "/.well-known/jwks.json", timeout=10).json()
    public = json.dumps(jwks["keys"][0]).encode()
    hs = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": _kid(good)}).encode())
    mac = hmac.new(public, f"{hs}.{payload}".encode(), hashlib.sha256).digest()
    _refused(url, f"{hs}.{payload}.{_b64(mac)}", "signed with 'HS256'")
    # The issuer's token with its signature changed.
    flipped = signature[:-4] + ("AAAA" if signature[-4:] != "AAAA" else "BBBB")
    _refused(url, f"{header}.{payload}.{flipped}", "signature does not verify")
    # Signed by someone else's key, under the issuer's key id, and under one it lacks.
    mine = RSAKey.generate_key(2048)
    as_issuer = jwt.encode({"alg": "RS256", "kid": _kid(good)}, claims, mine)
    _refused(url, as_issuer, "signature does not verify")
    made_up = jwt.encode({"alg": "RS256", "kid": "made-up-1"}, claims, mine)
    _refused(url, made_up, "which the issuer does not publish")
    # Too large to be read at all, and not a JWT.
    _refused(url, f"{header}.{'A' * 9000}.{signature}", "larger than 8192 bytes")
    _refused(url, "not.a.jwt", "header does not read")


def test_an_expired_token_is_refused_once_past_its_leeway(api, hydra):
    url, _ = api
    hydra.person("erin")
    hydra.lifespan("erin", 1)
    token = hydra.token("erin")
    assert _claims(token)["exp"] - _claims(token)["iat"] == 1
    wait_for(lambda: _call(url, token).status_code == 401, "the token to expire", WAIT_S)
    _refused(url, token, "the token expired")


def test_a_key_rotation_at_the_issuer_is_picked_up(api, hydra):
    url, _ = api
    before = hydra.token("dave")
    assert _call(url, before).status_code == 200  # the keys are cached now
    hydra.rotate("rotated-1")
    after = hydra.token("dave")
    assert _kid(after) == "rotated-1"
    # A key id the cache lacks fetches the keys again (at most every refetch_after_s).
    wait_for(lambda: _call(url, after).status_code == 200, "the rotated key to count", WAIT_S)
    assert _call(url, before).status_code == 200  # the old key is still published


def test_a_token_from_another_issuer_is_refused(tmp_path, opa, hydra):
    """Verified against the same keys, but the server trusts another issuer's name."""
    jwks = hydra.issuer + "/.well-known/jwks.json"
    other = _verifier(hydra, issuer="https://login.example.com", jwks_uri=jwks)
    with served_store(tmp_path / "d.db", opa, "i", "gw", "service", identity=other) as (url, _):
        _refused(url, hydra.token("alice"), "the token is from issuer")


def test_an_issuer_that_cannot_be_reached_fails_closed_and_health_says_so(tmp_path, opa):
    gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    verifier = Verifier(OidcConfig(issuer=gone, audience=AUDIENCE), SUBJECT_PATTERN)
    with served_store(tmp_path / "d.db", opa, "i", "gw", "service", identity=verifier) as (
        url,
        static,
    ):
        mine = RSAKey.generate_key(2048)
        token = jwt.encode(
            {"alg": "RS256", "kid": "k1"},
            {"iss": gone, "aud": AUDIENCE, "sub": "alice", "exp": 4102444800},
            mine,
        )
        answer = _call(url, token)
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "identity_unavailable"
        health = requests.get(url + "/health", timeout=10)
        assert health.status_code == 200  # static tokens still work: it stays ready
        assert health.json()["identity"]["status"] == "unavailable"
        assert _call(url, static).status_code == 200


def test_a_person_s_token_asks_access_checks_and_gateway_checks_about_themselves(api, hydra):
    """The hot path (the access check's fast lane, once the keys are held) and the forward
    auth endpoints take a person's JWT like a static user token: a decision about them."""
    url, _ = api
    token = hydra.token("alice")
    check = {"resource": RESOURCE, "action": "read", "location": "DE"}
    for _ in range(2):  # the first fetches the keys (slow lane), the second holds them
        asked = _call(url, token, "POST", "/v1/access/check", json=check)
        assert asked.status_code == 200, asked.text
        assert asked.json()["allow"] is False  # alice holds no grant
    other = _call(url, token, "POST", "/v1/access/check", json=check | {"subject": "bob"})
    assert other.status_code == 403  # a person asks about themselves only
    forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    refused = _call(url, forged, "POST", "/v1/access/check", json=check)
    assert refused.status_code == 401 and "signature" in refused.json()["error"]["message"]
    headers = {"X-Original-Method": "GET", "X-Original-URI": "/reports/eu"}
    gated = _call(url, token, "GET", "/v1/authz/nginx", headers=headers)
    assert gated.status_code == 403, gated.text  # a decision (no grant), not a 401
    assert gated.json()["error"]["code"] == "access_denied"
    gated = _call(url, forged, "GET", "/v1/authz/nginx", headers=headers)
    assert gated.status_code == 401 and "signature" in gated.json()["error"]["message"]
