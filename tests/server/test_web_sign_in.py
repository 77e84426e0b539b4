"""The dashboard's sign-in at the HTTP level, against a real Ory Hydra on loopback: the
code flow with PKCE ends in a server-side session (a cookie, kept as its hash), which acts
as the person; state-changing calls it makes need the CSRF token and the server's own
origin; sign-out ends it for good; it lapses; a renewal the IdP refuses ends it; a
callback that is not this browser's own sign-in makes none. The browser is played by a
requests session following the redirects (test_dashboard_sign_in.py drives Chromium)."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from hydra import Hydra
from live_server import RESOURCE, served_store, wait_for
from test_identity import _verifier

from datavisa.engine.identity.web_session import SignInConfig
from datavisa.engine.ledger.decision_log import KEY_ENV
from datavisa.engine.policy.process import OpaProcess, free_port

COOKIE = "datavisa_session"  # plain HTTP on loopback: no __Host- prefix, no Secure
BODY = {"resource": RESOURCE, "duration": "20m", "location": "DE", "reason": "INC-1"}


@pytest.fixture(scope="module")
def hydra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hydra]:
    with Hydra(tmp_path_factory.mktemp("hydra") / "hydra.log") as running:
        yield running


@dataclass
class Site:
    url: str
    db: Path
    hydra: Hydra
    client_id: str

    def sign_in(self, person: str = "alice", **asked: str) -> requests.Session:
        """A browser signed in as `person` (the redirects followed to the dashboard)."""
        browser = requests.Session()
        landed = browser.get(
            self.url + "/auth/login", params={"login_hint": person, **asked}, timeout=30
        )
        assert landed.status_code == 200, landed.text
        assert landed.url == self.url + "/", landed.url  # back on the dashboard
        return browser

    def to_callback(self, browser: requests.Session, person: str = "alice") -> str:
        """A sign-in followed up to the callback, not into it: the callback's URL."""
        at = self.url + f"/auth/login?login_hint={person}"
        for _ in range(10):
            answer = browser.get(at, allow_redirects=False, timeout=30)
            at = requests.compat.urljoin(at, answer.headers["Location"])
            if at.startswith(self.url + "/auth/callback"):
                return at
        raise AssertionError("never sent back to the callback")

    def audit(self, event: str) -> list[tuple[str, str]]:
        with contextlib.closing(sqlite3.connect(self.db)) as db:
            rows = db.execute("SELECT actor, detail FROM audit WHERE event = ?", [event])
            return rows.fetchall()


@contextlib.contextmanager
def site(
    tmp_path: Path, opa: OpaProcess, hydra: Hydra, host: str | None = None, **sign_in: object
) -> Iterator[Site]:
    """The server signing people in at `hydra`; browsers reach it at `host` (else
    127.0.0.1: WebAuthn wants a domain, such as localhost, for its RP ID)."""
    client_id, secret = f"dashboard-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    lifespan = sign_in.pop("token_lifespan_s", None)
    groups = {"groups_claim": "groups"} if sign_in.pop("groups", False) else {}
    cfg = SignInConfig(client_id=client_id, client_secret=secret, **sign_in)  # type: ignore[arg-type]
    db = tmp_path / "d.db"
    verifier = _verifier(hydra, **groups)
    with served_store(db, opa, "web", "gw", "service", identity=verifier, sign_in=cfg) as (
        url,
        _,
    ):
        if host is not None:
            url = url.replace("127.0.0.1", host)
        hydra.web_client(client_id, secret, url, token_lifespan_s=lifespan)  # type: ignore[arg-type]
        yield Site(url, db, hydra, client_id)


@pytest.fixture
def web(tmp_path: Path, opa: OpaProcess, hydra: Hydra) -> Iterator[Site]:
    with site(tmp_path, opa, hydra) as running:
        yield running


def test_signing_in_makes_a_server_side_session_that_acts_as_the_person(web: Site):
    browser = requests.Session()
    landed = browser.get(web.url + "/auth/login", params={"login_hint": "alice"}, timeout=30)
    assert landed.status_code == 200 and landed.url == web.url + "/", landed.text
    [callback] = [r for r in landed.history if urlsplit(r.url).path == "/auth/callback"]
    set_cookie = callback.headers["Set-Cookie"]
    assert f"{COOKIE}=" in set_cookie
    for flag in ("HttpOnly", "SameSite=lax", "Path=/", "Max-Age="):
        assert flag.lower() in set_cookie.lower(), set_cookie
    assert "secure" not in set_cookie.lower()  # plain HTTP here: Secure only over TLS
    max_age = int(set_cookie.lower().split("max-age=")[1].split(";")[0])
    assert 8 * 3600 - 60 <= max_age <= 8 * 3600

    me = browser.get(web.url + "/v1/whoami", timeout=30)
    assert me.json() == {"subject": "alice", "role": "user"}
    session = browser.get(web.url + "/auth/session", timeout=30)
    assert session.headers["Cache-Control"] == "no-store"
    body = session.json()
    assert body["subject"] == "alice" and len(body["csrf_token"]) >= 32
    assert body["auth_time"] and body["expires_at"] > body["auth_time"]

    cookie = browser.cookies[COOKIE]
    with contextlib.closing(sqlite3.connect(web.db)) as db:
        [(kept, subject)] = db.execute("SELECT id_hash, subject FROM web_sessions").fetchall()
    assert kept == hashlib.sha256(cookie.encode()).hexdigest() and subject == "alice"
    assert cookie.encode() not in web.db.read_bytes()  # only its hash is kept
    [(actor, detail)] = web.audit("signed_in")
    assert actor == "alice" and '"via": "dashboard"' in detail


def test_a_state_changing_call_by_cookie_needs_the_csrf_token_and_our_origin(web: Site):
    browser = web.sign_in("alice")
    csrf = browser.get(web.url + "/auth/session", timeout=30).json()["csrf_token"]
    post = web.url + "/v1/requests"

    bare = browser.post(post, json=BODY, headers={"Origin": web.url}, timeout=30)
    assert bare.status_code == 403, bare.text
    assert bare.json()["error"]["code"] == "csrf_required"
    wrong = browser.post(post, json=BODY, headers={"Origin": web.url, "X-CSRF-Token": "x" * 43})
    assert wrong.json()["error"]["code"] == "csrf_required"
    for elsewhere in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
        refused = browser.post(post, json=BODY, headers={"X-CSRF-Token": csrf, **elsewhere})
        assert refused.status_code == 403, (elsewhere, refused.text)
        assert refused.json()["error"]["code"] == "csrf_required"
    with contextlib.closing(sqlite3.connect(web.db)) as db:
        assert db.execute("SELECT count(*) FROM requests").fetchone()[0] == 0  # none made

    made = browser.post(post, json=BODY, headers={"X-CSRF-Token": csrf, "Origin": web.url})
    assert made.status_code == 201, made.text
    assert made.json()["requester"] == "alice"
    cancel = f"{post}/{made.json()['id']}/cancel"
    by_referer = browser.post(
        cancel, json={}, headers={"X-CSRF-Token": csrf, "Referer": web.url + "/"}, timeout=30
    )
    assert by_referer.status_code == 200, by_referer.text  # no Origin: the Referer's counts
    # Reading needs no CSRF token: nothing changes.
    assert browser.get(web.url + "/v1/requests?state=pending", timeout=30).status_code == 200


def test_an_idempotency_key_is_each_sessions_own(web: Site):
    """Two people's browsers sending the same key get their own answers, never the other's;
    the same browser sending it again gets its first answer."""
    made = {}
    for person in ("alice", "kenji"):
        browser = web.sign_in(person)
        csrf = browser.get(web.url + "/auth/session", timeout=30).json()["csrf_token"]
        headers = {"X-CSRF-Token": csrf, "Origin": web.url, "Idempotency-Key": "same-key"}
        first = browser.post(web.url + "/v1/requests", json=BODY, headers=headers, timeout=30)
        again = browser.post(web.url + "/v1/requests", json=BODY, headers=headers, timeout=30)
        assert first.status_code == 201, first.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert again.json()["id"] == first.json()["id"]
        made[person] = first.json()["requester"]
    assert made == {"alice": "alice", "kenji": "kenji"}


def test_signing_out_ends_the_session_on_the_server(web: Site):
    browser = web.sign_in("alice")
    cookie = browser.cookies[COOKIE]
    csrf = browser.get(web.url + "/auth/session", timeout=30).json()["csrf_token"]
    unasked = browser.post(web.url + "/auth/logout", headers={"Origin": web.url}, timeout=30)
    assert unasked.status_code == 403 and unasked.json()["error"]["code"] == "csrf_required"

    out = browser.post(
        web.url + "/auth/logout", headers={"X-CSRF-Token": csrf, "Origin": web.url}, timeout=30
    )
    assert out.status_code == 200, out.text
    assert f"{COOKIE}=" in out.headers["Set-Cookie"] and "Max-Age=0" in out.headers["Set-Cookie"]
    end = out.json()["end_session_url"]
    assert end.startswith(web.hydra.public + "/oauth2/sessions/logout?")
    assert parse_qs(urlsplit(end).query)["post_logout_redirect_uri"] == [web.url + "/"]
    assert [actor for actor, _ in web.audit("signed_out")] == ["alice"]

    replayed = requests.get(web.url + "/v1/whoami", cookies={COOKIE: cookie}, timeout=30)
    assert replayed.status_code == 401, replayed.text  # deleted server-side, not only forgotten
    assert replayed.json()["error"]["code"] == "unauthenticated"
    assert requests.get(web.url + "/auth/session", cookies={COOKIE: cookie}).status_code == 401


def test_a_session_ends_at_its_lifetime(tmp_path, opa, hydra):
    with site(tmp_path, opa, hydra, session_s=3.0, idle_s=3.0) as short:
        browser = short.sign_in("alice")
        assert browser.get(short.url + "/v1/whoami", timeout=30).status_code == 200
        wait_for(
            lambda: browser.get(short.url + "/v1/whoami", timeout=30).status_code == 401,
            "the session to lapse",
        )
        assert browser.get(short.url + "/auth/session", timeout=30).status_code == 401


def test_a_session_the_idp_no_longer_renews_ends(tmp_path, opa, hydra):
    # Access tokens of 61 s are due a renewal (a minute before they expire) at once.
    with site(tmp_path, opa, hydra, token_lifespan_s=61) as renewing:
        browser = renewing.sign_in("alice")

        def due() -> float:
            with contextlib.closing(sqlite3.connect(renewing.db)) as db:
                return db.execute("SELECT access_expires_at FROM web_sessions").fetchone()[0]

        first = due()
        wait_for(
            lambda: browser.get(renewing.url + "/v1/whoami").ok and due() > first,
            "the session to be renewed with the refresh token",
        )
        renewing.hydra.revoke_consent("alice", renewing.client_id)  # cut off at the IdP
        wait_for(
            lambda: browser.get(renewing.url + "/v1/whoami").status_code == 401,
            "the IdP's refusal to end the session",
        )
        [(actor, detail)] = renewing.audit("session_ended")
        assert actor == "alice" and "refused to renew" in detail


def test_a_sessions_groups_give_its_role_and_a_removal_counts_at_its_renewal(tmp_path, opa, hydra):
    hydra.put_in_groups("dora", ["datavisa-auditors"])
    with site(tmp_path, opa, hydra, token_lifespan_s=61, groups=True) as renewing:
        browser = renewing.sign_in("dora")
        me = browser.get(renewing.url + "/v1/whoami", timeout=30)
        assert me.json() == {"subject": "dora", "role": "auditor"}  # policy: idp_groups
        hydra.put_in_groups("dora", [])  # taken out of the group at the IdP
        wait_for(  # access tokens of 61 s are renewed at once, with the groups of now
            lambda: browser.get(renewing.url + "/v1/whoami", timeout=30).json()["role"] == "user",
            "the renewed session to have lost the auditor role",
        )


def test_a_callback_that_is_not_this_browsers_sign_in_makes_no_session(web: Site):
    browser = requests.Session()
    callback = web.to_callback(browser)
    # Another browser handed the callback (login CSRF): it lacks the sign-in's cookie.
    other = requests.get(callback, headers={"Accept": "application/json"}, timeout=30)
    assert other.status_code == 400, other.text
    assert other.json()["error"]["code"] == "invalid_state"
    assert COOKIE not in other.cookies
    # A made-up state, in the right browser.
    forged = callback.replace("state=", "state=x")
    page = browser.get(forged, headers={"Accept": "text/html"}, timeout=30)
    assert page.status_code == 400 and "Not signed in" in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert COOKIE not in browser.cookies
    # The real one once (the sign-in cookie was cleared by the refusal: set it again) ...
    state = parse_qs(urlsplit(callback).query)["state"][0]
    browser.cookies.set("datavisa_sign_in", state, path="/auth/callback")
    assert browser.get(callback, timeout=30).status_code == 200 and COOKIE in browser.cookies
    # ... and never twice.
    browser.cookies.set("datavisa_sign_in", state, path="/auth/callback")
    again = browser.get(callback, headers={"Accept": "application/json"}, timeout=30)
    assert again.status_code == 400 and again.json()["error"]["code"] == "invalid_state"
    assert len(web.audit("signed_in")) == 1


def test_an_idp_error_at_the_callback_is_said_and_audited(web: Site):
    browser = requests.Session()
    callback = web.to_callback(browser)
    state = parse_qs(urlsplit(callback).query)["state"][0]
    refused = browser.get(
        web.url + "/auth/callback",
        params={"state": state, "error": "access_denied", "error_description": "no consent"},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["code"] == "idp_error" and "no consent" in error["message"]
    assert COOKIE not in browser.cookies
    [(_, detail)] = web.audit("sign_in_refused")
    assert "idp_error" in detail


def test_signing_in_again_asks_the_idp_for_a_fresh_sign_in(web: Site):
    first = requests.get(
        web.url + "/auth/login",
        params={"max_age": "300", "prompt": "login", "login_hint": "bob"},
        allow_redirects=False,
        timeout=30,
    )
    assert first.status_code == 303
    asked = parse_qs(urlsplit(first.headers["Location"]).query)
    assert asked["max_age"] == ["300"] and asked["prompt"] == ["login"]
    assert asked["code_challenge_method"] == ["S256"] and asked["nonce"] and asked["state"]
    assert "datavisa_sign_in=" in first.headers["Set-Cookie"]
    browser = web.sign_in("bob", max_age="300", prompt="login")
    assert browser.get(web.url + "/auth/session", timeout=30).json()["subject"] == "bob"


@pytest.mark.parametrize(
    ("query", "field"),
    [("max_age=-1", "max_age"), ("prompt=whenever", "prompt"),
     ("return_to=//evil.example/", "return_to"), ("login_hint=a%20b", "login_hint")],
)  # fmt: skip
def test_bad_sign_in_input_is_a_422_naming_it(web: Site, query: str, field: str):
    answer = requests.get(f"{web.url}/auth/login?{query}", allow_redirects=False, timeout=30)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["field"] == field


def test_without_sign_in_configured_the_auth_routes_are_404(tmp_path, opa):
    with served_store(tmp_path / "d.db", opa, "web", "gw", "service") as (url, _):
        for path in ("/auth/login", "/auth/session"):
            answer = requests.get(url + path, allow_redirects=False, timeout=30)
            assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"


def test_an_unreachable_idp_fails_closed_for_new_sign_ins(tmp_path, opa, hydra):
    gone = _verifier(hydra, issuer=f"http://127.0.0.1:{free_port()}")
    cfg = SignInConfig(client_id="dashboard", client_secret="s")
    with served_store(
        tmp_path / "d.db", opa, "web", "gw", "service", identity=gone, sign_in=cfg
    ) as (url, _):
        answer = requests.get(url + "/auth/login", allow_redirects=False, timeout=30)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "identity_unavailable"


def test_engines_on_one_postgresql_share_the_sessions(
    tmp_path, opa, hydra, pg_database, monkeypatch
):
    """Signed in at one engine, the browser is signed in at every engine on the store, and
    signed out at all of them by one sign-out."""
    monkeypatch.setenv(KEY_ENV, "test-log-key")
    client_id, secret = f"dashboard-{secrets.token_hex(4)}", secrets.token_urlsafe(24)
    cfg = SignInConfig(client_id=client_id, client_secret=secret)
    engine = {"identity": _verifier(hydra), "sign_in": cfg}
    with (
        served_store(pg_database, opa, "web", "gw-a", "service", **engine) as (a, _),
        served_store(pg_database, opa, "web", "gw-b", "service", **engine) as (b, _),
    ):
        hydra.web_client(client_id, secret, a)
        browser = Site(a, tmp_path / "unused.db", hydra, client_id).sign_in("alice")
        cookie = browser.cookies[COOKIE]  # loopback: the same cookie goes to either port
        assert browser.get(b + "/v1/whoami", timeout=30).json()["subject"] == "alice"
        csrf = browser.get(b + "/auth/session", timeout=30).json()["csrf_token"]
        made = browser.post(
            b + "/v1/requests", json=BODY, headers={"X-CSRF-Token": csrf, "Origin": b}
        )
        assert made.status_code == 201, made.text
        out = browser.post(b + "/auth/logout", headers={"X-CSRF-Token": csrf, "Origin": b})
        assert out.status_code == 200, out.text
        at_a = requests.get(a + "/v1/whoami", cookies={COOKIE: cookie}, timeout=30)
        assert at_a.status_code == 401, at_a.text
