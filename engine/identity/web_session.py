"""The dashboard's sign-in with the organisation's identity provider, and the sessions the
server keeps for signed-in browsers.

`WebSessions.begin` starts OpenID Connect's authorization code flow with PKCE (S256): a
random `state`, a `nonce` and a code verifier, kept in the store (`web_sign_ins`, found by
the state's hash) for `sign_in_s`; the state also goes to the browser as a short-lived
cookie, so a callback is taken only from the browser that started the sign-in (no one
can hand a victim a callback of their own sign-in). `complete`, at the callback, takes
that sign-in once, exchanges the code as the configured client (confidential, with its
secret, where one is configured; PKCE either way), verifies the ID token (the issuer's
keys, `iss`, `aud` = the client, `nonce`, `exp`; `auth_time` within the `max_age` asked)
and the access token (as the API verifies any), and makes a session: a random id that
only the browser holds, as a cookie, stored by its SHA-256 (`web_sessions`), with a CSRF
token, an absolute lifetime (`session_s`) and an idle one (`idle_s`).

`find` is the live session of a cookie. Shortly before the IdP's access token expires the
session is renewed with the refresh token; a session the IdP refuses to renew ends, so a
person the IdP no longer signs in loses the dashboard one access-token lifetime later at
the latest. An IdP that cannot be reached is IdentityUnavailable once the access token
ran out: nothing is taken on trust. Sign-ins, sign-outs, refused sign-ins and sessions
the IdP ended are audit events. The store is shared: a session one engine made is good at
every engine on the same PostgreSQL.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import requests

from ..ledger import audit
from ..model.errors import DataVisaError
from ..model.records import SYSTEM
from ..store import Store
from .code_flow import (
    FETCH_TIMEOUT_S,
    IdpRefused,
    IdpUnreachable,
    authorization_url,
    pkce,
    token_request,
)
from .oidc import Identity, IdentityUnavailable, RefusedToken, Verifier, authentication, discover

log = logging.getLogger("datavisa.identity")

REFRESH_BEFORE_S = 60.0  # an access token this close to its expiry is renewed first
TOUCH_EVERY_S = 30.0  # how often a session's last use is written down (idle_s is this exact)
CLAIM_S = 30.0  # a renewal one engine took on, the others leave to it this long
PROVIDER_FOR_S = 3600.0  # the issuer's OpenID configuration is read again this often
MAX_SIGN_INS = 10_000  # sign-ins started and not finished at most: the table stays small
_COLUMNS = (
    "id_hash, subject, csrf_token, created_at, expires_at, last_seen_at, access_expires_at, "
    "refresh_claimed_at, auth_time, amr, acr, id_token, refresh_token, groups, "
    "step_up_method, step_up_at"
)


@dataclass(frozen=True)
class SignInConfig:
    """The dashboard's sign-in (serve config `identity.sign_in`)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)  # None: a public client
    # How browsers reach the server (the config's public_url): the origin CSRF checks
    # want, the base of the redirect URI. None: the request's own (loopback, tests).
    public_url: str | None = None
    redirect_uri: str | None = None  # else the base + /auth/callback
    scope: str = "openid offline_access"
    session_s: float = 8 * 3600.0  # the longest a session lasts, however busy
    idle_s: float = 3600.0  # ... and unused
    sign_in_s: float = 600.0  # how long a person may take at the IdP


class SignInRefused(DataVisaError):
    """A callback that signs no one in: a code the API says it with, and why."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass(frozen=True)
class Started:
    url: str  # where the browser goes: the IdP's authorization endpoint
    state: str  # the browser's cookie, which the callback must bring


@dataclass(frozen=True)
class WebSession:
    id_hash: str
    identity: Identity  # the person, and how and when the IdP signed them in
    csrf_token: str
    created_at: float
    expires_at: float
    idle_until: float


@dataclass(frozen=True)
class Completed:
    session_id: str  # the cookie's value: returned once, never stored
    session: WebSession
    return_to: str


def _groups(person: Identity) -> str | None:
    """A person's IdP groups as a session keeps them (JSON), None where the token named none."""
    return None if person.groups is None else json.dumps(list(person.groups))


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class WebSessions:
    """Sign-ins and sessions on `store` for `verifier`'s issuer (see the module doc)."""

    def __init__(
        self,
        store: Store,
        verifier: Verifier,
        config: SignInConfig,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store, self.verifier, self.config, self.clock = store, verifier, config, clock
        self._http = requests.Session()
        self._provider: tuple[dict[str, Any], float] | None = None
        self._lock = threading.Lock()

    # -- the issuer -------------------------------------------------------------------

    def provider(self) -> dict[str, Any]:
        """The issuer's OpenID configuration; IdentityUnavailable when it cannot be read
        (no sign-in starts, none finishes)."""
        with self._lock:
            if self._provider is not None and time.monotonic() < self._provider[1]:
                return self._provider[0]
            try:
                # A person waits for it: the CLI's patience, not the hot path's.
                document = discover(self.verifier.config.issuer, self._http, FETCH_TIMEOUT_S)
                for name in ("authorization_endpoint", "token_endpoint"):
                    if not isinstance(document.get(name), str):
                        raise ValueError(f"it names no {name}")
            except (requests.RequestException, ValueError) as e:
                raise IdentityUnavailable(
                    f"the identity provider's configuration cannot be read: {e}"[:300]
                ) from e
            self._provider = document, time.monotonic() + PROVIDER_FOR_S
            return document

    def _client(self) -> tuple[str, str] | None:
        secret = self.config.client_secret
        return (self.config.client_id, secret) if secret else None

    def _tokens(self, form: dict[str, str]) -> dict[str, Any]:
        if self.config.client_secret is None:  # a public client names itself
            form = {**form, "client_id": self.config.client_id}
        return token_request(self.provider()["token_endpoint"], form, self._client())

    # -- signing in -------------------------------------------------------------------

    def begin(
        self,
        redirect_uri: str,
        return_to: str = "/",
        max_age: int | None = None,
        prompt: str | None = None,
        login_hint: str | None = None,
        acr_values: str | None = None,
    ) -> Started:
        """A sign-in started: where to send the browser, and its state (for the cookie)."""
        provider = self.provider()
        state, nonce, code = secrets.token_urlsafe(32), secrets.token_urlsafe(32), pkce()
        now = self.clock()
        with self.store.transaction() as db:
            db.execute("DELETE FROM web_sign_ins WHERE expires_at < ?", [now])
            waiting = db.execute("SELECT count(*) FROM web_sign_ins").fetchone()[0]
            if waiting < MAX_SIGN_INS:
                db["web_sign_ins"].insert({
                    "state_hash": _hash(state), "nonce": nonce, "code_verifier": code.verifier,
                    "redirect_uri": redirect_uri, "return_to": return_to, "max_age": max_age,
                    "created_at": now, "expires_at": now + self.config.sign_in_s,
                })  # fmt: skip
        if waiting >= MAX_SIGN_INS:
            raise IdentityUnavailable(f"{waiting} sign-ins are under way; try again in minutes")
        url = authorization_url(
            provider["authorization_endpoint"], self.config.client_id, redirect_uri,
            self.config.scope, state, code, nonce=nonce,
            audience=self.verifier.config.audience,
            max_age=None if max_age is None else str(max_age), prompt=prompt,
            login_hint=login_hint, acr_values=acr_values,
        )  # fmt: skip
        return Started(url, state)

    def complete(
        self,
        state: str | None,
        browser_state: str | None,
        code: str | None,
        error: str | None = None,
        error_description: str | None = None,
        replaces: str | None = None,
    ) -> Completed:
        """The session a callback signs in (replacing the browser's old one, `replaces`);
        SignInRefused says why not, IdentityUnavailable when the IdP cannot be reached."""
        if not state or not browser_state or not hmac.compare_digest(state, browser_state):
            raise SignInRefused(
                "invalid_state",
                "this sign-in was not started in this browser, or took too long: sign in again",
            )
        pending = self._take(state)
        if pending is None:
            raise SignInRefused(
                "invalid_state",
                "no sign-in waits for this state (it was finished already, or it lapsed): "
                "sign in again",
            )
        try:
            if error:
                why = (error_description or error)[:300]
                raise SignInRefused("idp_error", f"the identity provider did not sign in: {why}")
            if not code:
                raise SignInRefused("idp_error", "the identity provider sent no code back")
            try:
                answer = self._tokens({
                    "grant_type": "authorization_code", "code": code,
                    "redirect_uri": pending["redirect_uri"],
                    "code_verifier": pending["code_verifier"],
                })  # fmt: skip
            except IdpRefused as e:
                raise SignInRefused("idp_error", str(e)) from e
            except IdpUnreachable as e:
                raise IdentityUnavailable(str(e)) from e
            identity, id_token = self._verified(answer, pending["nonce"], pending["max_age"])
        except SignInRefused as e:
            self._refused(e)
            raise
        session_id = secrets.token_urlsafe(32)
        made = self._create(session_id, identity, id_token, answer, replaces)
        return Completed(session_id, made, pending["return_to"] or "/")

    def _take(self, state: str) -> dict[str, Any] | None:
        """The sign-in `state` started, once: taken out of the store as it is read."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT nonce, code_verifier, redirect_uri, return_to, max_age, expires_at "
                "FROM web_sign_ins WHERE state_hash = ?",
                [_hash(state)],
            ).fetchone()
            if row is None:
                return None
            db.execute("DELETE FROM web_sign_ins WHERE state_hash = ?", [_hash(state)])
        names = ("nonce", "code_verifier", "redirect_uri", "return_to", "max_age", "expires_at")
        pending = dict(zip(names, row, strict=True))
        return pending if self.clock() < pending["expires_at"] else None

    def _verified(
        self, answer: dict[str, Any], nonce: str, max_age: int | None
    ) -> tuple[Identity, str]:
        """The person the token endpoint's answer signs in, and its ID token."""
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused(
                "unverifiable_token",
                "the identity provider sent no ID token (is openid in identity.sign_in.scope?)",
                401,
            )
        try:
            claims = self.verifier.verify_id_token(id_token, self.config.client_id, nonce)
            access = self.verifier.verify(answer["access_token"])
        except RefusedToken as e:
            raise SignInRefused("unverifiable_token", str(e), 401) from e
        if claims["sub"] != access.claims.get("sub"):
            raise SignInRefused(
                "unverifiable_token", "the ID token and the access token name two people", 401
            )
        how = {k: v for k, v in authentication(claims).items() if v}  # else the access token's
        person = replace(access, **how)
        if max_age is not None:  # asked to sign in again: the IdP must have done so
            at, leeway = person.auth_time, self.verifier.config.leeway_s
            if at is None or self.clock() - at > max_age + leeway:
                raise SignInRefused(
                    "unverifiable_token",
                    f"the identity provider did not sign you in within the last {max_age}s, "
                    "as asked",
                    401,
                )
        return person, id_token

    def _refused(self, refused: SignInRefused) -> None:
        """A sign-in that came back and failed, in the audit trail (a callback that
        matched no sign-in is not: anyone can send those)."""
        with self.store.transaction() as db:
            audit.append(
                db, at=self.clock(), actor=SYSTEM, event="sign_in_refused", request_id=None,
                detail={"via": "dashboard", "code": refused.code, "why": str(refused)[:300]},
            )  # fmt: skip

    def _create(
        self,
        session_id: str,
        person: Identity,
        id_token: str,
        answer: dict[str, Any],
        replaces: str | None,
    ) -> WebSession:
        now, cfg = self.clock(), self.config
        row = {
            "id_hash": _hash(session_id), "subject": person.subject,
            "csrf_token": secrets.token_urlsafe(32), "created_at": now,
            "expires_at": now + cfg.session_s, "last_seen_at": now,
            "access_expires_at": person.expires_at, "refresh_claimed_at": None,
            "auth_time": person.auth_time, "amr": json.dumps(list(person.amr)),
            "acr": person.acr, "id_token": id_token,
            "refresh_token": answer.get("refresh_token"), "groups": _groups(person),
            "step_up_method": None, "step_up_at": None,
        }  # fmt: skip
        with self.store.transaction() as db:
            if replaces:
                db.execute("DELETE FROM web_sessions WHERE id_hash = ?", [_hash(replaces)])
            db.execute(
                "DELETE FROM web_sessions WHERE expires_at < ? OR last_seen_at < ?",
                [now, now - cfg.idle_s],
            )
            db["web_sessions"].insert(row)
            audit.append(
                db, at=now, actor=person.subject, event="signed_in", request_id=None,
                detail={"via": "dashboard", "session": row["id_hash"][:16],
                        "expires_at": row["expires_at"], "auth_time": person.auth_time,
                        "amr": list(person.amr), "acr": person.acr},
            )  # fmt: skip
        return self._session(row)

    # -- signed in --------------------------------------------------------------------

    def find(self, session_id: str) -> WebSession | None:
        """The live session of a cookie's value, renewed at the IdP when its access token
        is about to expire; None for anything else (an ended session, one the IdP
        refused to renew). IdentityUnavailable while it cannot be renewed."""
        if not session_id or len(session_id) > 128:
            return None
        id_hash = _hash(session_id)
        found = self.store.db.execute(
            f"SELECT {_COLUMNS} FROM web_sessions WHERE id_hash = ?", [id_hash]
        ).fetchone()
        if found is None:
            return None
        row, now = dict(zip(_COLUMNS.split(", "), found, strict=True)), self.clock()
        if now >= row["expires_at"] or now >= row["last_seen_at"] + self.config.idle_s:
            with self.store.transaction() as db:  # over: not audited, signed_in said until when
                db.execute("DELETE FROM web_sessions WHERE id_hash = ?", [id_hash])
            return None
        due = row["access_expires_at"]
        if due is not None and now >= due - REFRESH_BEFORE_S:
            renewed = self._renew(row, now)
            if renewed is None:
                return None
            row = renewed
        elif now - row["last_seen_at"] >= TOUCH_EVERY_S:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE web_sessions SET last_seen_at = ? WHERE id_hash = ?", [now, id_hash]
                )
            row["last_seen_at"] = now
        return self._session(row)

    def _renew(self, row: dict[str, Any], now: float) -> dict[str, Any] | None:
        """`row` with the IdP's tokens renewed; None when the IdP refused (the session
        ended). One engine renews at a time: refresh tokens may be single use."""
        id_hash = row["id_hash"]
        with self.store.transaction() as db:
            claimed = db.execute(
                "UPDATE web_sessions SET refresh_claimed_at = ? WHERE id_hash = ? AND "
                "(refresh_claimed_at IS NULL OR refresh_claimed_at < ?)",
                [now, id_hash, now - CLAIM_S],
            ).rowcount
        if not claimed:
            return self._meanwhile(row, now, "another engine renews it now")
        if not row["refresh_token"]:
            self._end(row, "session_ended", "the sign-in at the identity provider expired")
            return None
        try:
            answer = self._tokens(
                {"grant_type": "refresh_token", "refresh_token": row["refresh_token"]}
            )
            access = self.verifier.verify(answer["access_token"])
            if access.subject != row["subject"]:
                raise RefusedToken("the renewed access token names someone else")
        except (IdpRefused, RefusedToken) as e:
            self._end(row, "session_ended", f"the identity provider refused to renew it: {e}")
            return None
        except (IdpUnreachable, IdentityUnavailable) as e:
            with self.store.transaction() as db:
                db.execute(
                    "UPDATE web_sessions SET refresh_claimed_at = NULL WHERE id_hash = ?",
                    [id_hash],
                )
            log.warning("cannot renew a session of %s: %s", row["subject"], e)
            return self._meanwhile(row, now, str(e))
        renewed = {
            **row, "access_expires_at": access.expires_at, "last_seen_at": now,
            "refresh_token": answer.get("refresh_token") or row["refresh_token"],
            "id_token": answer.get("id_token") or row["id_token"], "refresh_claimed_at": None,
            "groups": _groups(access),  # the IdP's groups as of now: a removal counts here
        }  # fmt: skip
        with self.store.transaction() as db:
            db.execute(
                "UPDATE web_sessions SET access_expires_at = ?, last_seen_at = ?, "
                "refresh_token = ?, id_token = ?, groups = ?, refresh_claimed_at = NULL "
                "WHERE id_hash = ?",
                [renewed["access_expires_at"], now, renewed["refresh_token"],
                 renewed["id_token"], renewed["groups"], id_hash],
            )  # fmt: skip
        return renewed

    @staticmethod
    def _meanwhile(row: dict[str, Any], now: float, why: str) -> dict[str, Any]:
        """A session not renewed now stands while its access token does, and no longer."""
        if now < row["access_expires_at"]:
            return row
        raise IdentityUnavailable(f"the session cannot be renewed now ({why}): try again")

    def end(self, session: WebSession, post_logout_redirect_uri: str | None = None) -> str | None:
        """Sign out: the session deleted (audited); where to send the browser to sign out
        at the IdP too, when it offers that (OpenID Connect RP-Initiated Logout)."""
        found = self.store.db.execute(
            "SELECT id_hash, subject, id_token FROM web_sessions WHERE id_hash = ?",
            [session.id_hash],
        ).fetchone()
        if found is None:
            return None
        self._end({"id_hash": found[0], "subject": found[1]}, "signed_out", "signed out")
        try:
            endpoint = self.provider().get("end_session_endpoint")
        except IdentityUnavailable:
            return None  # signed out here; the IdP's own session is the IdP's
        if not isinstance(endpoint, str):
            return None
        asked = {"id_token_hint": found[2], "client_id": self.config.client_id,
                 "post_logout_redirect_uri": post_logout_redirect_uri}  # fmt: skip
        query = urlencode({k: v for k, v in asked.items() if v})
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"

    def _end(self, row: dict[str, Any], event: str, why: str) -> None:
        with self.store.transaction() as db:
            gone = db.execute(
                "DELETE FROM web_sessions WHERE id_hash = ?", [row["id_hash"]]
            ).rowcount
            if gone:
                audit.append(
                    db, at=self.clock(), actor=row["subject"], event=event, request_id=None,
                    detail={"via": "dashboard", "session": row["id_hash"][:16],
                            "why": why[:300]},
                )  # fmt: skip

    def _session(self, row: dict[str, Any]) -> WebSession:
        amr = json.loads(row["amr"] or "[]")
        groups = None if row["groups"] is None else json.loads(row["groups"])
        person = Identity(
            subject=row["subject"],
            token_id=f"session:{row['id_hash'][:16]}",
            expires_at=row["expires_at"],
            auth_time=row["auth_time"],
            amr=tuple(a for a in amr if isinstance(a, str)),
            acr=row["acr"],
            groups=None if groups is None else tuple(groups),
            step_up_method=row["step_up_method"],
            step_up_at=row["step_up_at"],
        )
        return WebSession(
            id_hash=row["id_hash"],
            identity=person,
            csrf_token=row["csrf_token"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            idle_until=min(row["expires_at"], row["last_seen_at"] + self.config.idle_s),
        )
