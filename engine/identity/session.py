"""The CLI's sign-in with the organisation's identity provider, and the tokens it keeps.

`sign_in` runs OAuth 2.0's authorization code flow with PKCE (RFC 7636) through a
loopback redirect (RFC 8252): it listens on 127.0.0.1 on a port of its own, hands the
person the IdP's authorization URL (their browser signs them in there, with whatever the
IdP asks: passwords, passkeys, MFA), receives the code on that port, checks the `state`,
and exchanges the code with its verifier. No client secret: the CLI is a public client.
`sign_in_on_device` runs the device authorization grant (RFC 8628) instead, for IdPs that
have it (their discovery document names a `device_authorization_endpoint`; Ory Hydra 2.3
has none): the person gets a code and a URL to enter it at, on any device, and the CLI
polls the token endpoint until they have signed in there. No port is opened.

The tokens are kept in `credentials_path()` (the user's config directory, 0600) with the
issuer's token endpoint, and `access_token()` refreshes them with the refresh token
shortly before the access token expires. `forget()` removes them.
"""

from __future__ import annotations

import http.server
import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from ..model.errors import DataVisaError
from .code_flow import (
    FETCH_TIMEOUT_S,
    IdpRefused,
    IdpUnreachable,
    authorization_url,
    pkce,
    token_request,
)
from .oidc import discover

REFRESH_BEFORE_S = 60.0  # an access token this close to its expiry is refreshed first
SIGN_IN_WAIT_S = 300.0  # how long `sign_in` waits for the browser to come back
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEVICE_INTERVAL_S = 5.0  # RFC 8628 3.2: how often to poll when the IdP does not say
CONFIG_ENV = "DATAVISA_CONFIG_HOME"


def credentials_path() -> Path:
    """Where the signed-in tokens are kept: $DATAVISA_CONFIG_HOME, else
    $XDG_CONFIG_HOME/datavisa, else ~/.config/datavisa; the file credentials.json."""
    base = os.environ.get(CONFIG_ENV) or str(
        Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "datavisa"
    )
    return Path(base) / "credentials.json"


@dataclass
class Session:
    issuer: str
    client_id: str
    token_endpoint: str
    access_token: str
    expires_at: float
    refresh_token: str | None = None
    audience: str | None = None


def _discover(issuer: str) -> dict[str, Any]:
    try:
        # A person signing in waits as for the IdP's token endpoint, not the server's 3 s
        # (a first JWT's check is waiting there).
        return discover(issuer, timeout_s=FETCH_TIMEOUT_S)
    except (requests.RequestException, ValueError) as e:
        raise DataVisaError(f"cannot read the identity provider's configuration: {e}") from e


def sign_in(
    issuer: str,
    client_id: str,
    audience: str | None,
    show: Callable[[str], None],
    scope: str = "openid offline_access",
    wait_s: float = SIGN_IN_WAIT_S,
    max_age: int | None = None,
    acr_values: str | None = None,
) -> Session:
    """Sign in at `issuer` as its client `client_id` (see the module doc): `show(url)`
    hands the person the URL to open; returns the session, not yet saved. `max_age` asks
    the IdP to sign the person in again (prompt=login) unless it did within that many
    seconds, as a step-up denial says; `acr_values`, how (the IdP's names)."""
    document = _discover(issuer)
    code = pkce()
    state = secrets.token_urlsafe(24)
    came_back: dict[str, str] = {}
    arrived = threading.Event()

    class Redirect(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
            if urlsplit(self.path).path != "/callback" or "state" not in query:
                self.send_error(404)
                return
            came_back.update(query)
            arrived.set()
            ok = query.get("state") == state and "code" in query
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.end_headers()
            self.wfile.write(
                b"Signed in to DataVisa: you may close this window."
                if ok
                else b"The sign-in did not complete: see the terminal."
            )

        def log_message(self, *_: Any) -> None:
            pass

    with http.server.HTTPServer(("127.0.0.1", 0), Redirect) as server:
        redirect_uri = f"http://127.0.0.1:{server.server_port}/callback"
        show(
            authorization_url(
                document["authorization_endpoint"],
                client_id,
                redirect_uri,
                scope,
                state,
                code,
                audience=audience or None,
                max_age=None if max_age is None else str(max_age),
                prompt=None if max_age is None else "login",
                acr_values=acr_values,
            )
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        came = arrived.wait(wait_s)
        server.shutdown()
        if not came:
            raise DataVisaError(f"no sign-in came back within {wait_s:.0f}s; try again")
    if came_back.get("state") != state:
        raise DataVisaError("the sign-in came back with another state: not this sign-in")
    if "code" not in came_back:
        why = came_back.get("error_description") or came_back.get("error") or "no code"
        raise DataVisaError(f"the identity provider refused the sign-in: {why}")
    return _tokens(
        document["token_endpoint"], issuer, client_id, audience,
        {"grant_type": "authorization_code", "code": came_back["code"],
         "redirect_uri": redirect_uri, "client_id": client_id, "code_verifier": code.verifier},
    )  # fmt: skip


def has_device_grant(issuer: str) -> bool:
    """Whether the issuer offers the device authorization grant (RFC 8628 section 4)."""
    return isinstance(_discover(issuer).get("device_authorization_endpoint"), str)


def sign_in_on_device(
    issuer: str,
    client_id: str,
    audience: str | None,
    show: Callable[[str, str, str | None], None],
    scope: str = "openid offline_access",
    max_age: int | None = None,
    acr_values: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Session:
    """Sign in at `issuer` by the device authorization grant (see the module doc):
    `show(user_code, verification_uri, verification_uri_complete)` tells the person where
    to go; returns the session, not yet saved, once they have signed in there."""
    document = _discover(issuer)
    endpoint = document.get("device_authorization_endpoint")
    if not isinstance(endpoint, str):
        raise DataVisaError(
            f"{issuer} offers no device authorization grant: datavisa login --loopback"
        )
    asked = {
        "client_id": client_id, "scope": scope, "audience": audience,
        "max_age": None if max_age is None else str(max_age), "acr_values": acr_values,
    }  # fmt: skip
    try:
        answer = requests.post(
            endpoint, data={k: v for k, v in asked.items() if v is not None}, timeout=10
        )
        grant = answer.json()
    except (requests.RequestException, ValueError) as e:
        raise DataVisaError(f"cannot start a device sign-in at {endpoint}: {e}") from e
    if answer.status_code != 200 or not isinstance(grant, dict) or "device_code" not in grant:
        why = (
            grant.get("error_description") or grant.get("error")
            if isinstance(grant, dict)
            else None
        )
        raise DataVisaError(
            f"the identity provider refused a device sign-in: {why or answer.status_code}"
        )
    show(grant["user_code"], grant["verification_uri"], grant.get("verification_uri_complete"))
    interval = float(grant.get("interval") or DEVICE_INTERVAL_S)  # RFC 8628 3.2: 5 s default
    until = time.monotonic() + float(grant.get("expires_in") or SIGN_IN_WAIT_S)
    form = {"grant_type": DEVICE_GRANT, "device_code": grant["device_code"], "client_id": client_id}
    while time.monotonic() < until:
        sleep(interval)
        try:
            return _tokens(document["token_endpoint"], issuer, client_id, audience, form)
        except IdpRefused as e:
            if e.error == "authorization_pending":
                continue
            if e.error == "slow_down":  # RFC 8628 3.5: five seconds more from now on
                interval += 5.0
                continue
            if e.error == "access_denied":
                raise DataVisaError("the sign-in was refused at the identity provider") from e
            if e.error == "expired_token":
                break
            raise DataVisaError(str(e)) from e
        except IdpUnreachable as e:
            raise DataVisaError(str(e)) from e
    raise DataVisaError("the code expired before anyone signed in with it; try again")


def _tokens(
    endpoint: str, issuer: str, client_id: str, audience: str | None, form: dict[str, str]
) -> Session:
    body = token_request(endpoint, form)  # a public client: no secret
    return Session(
        issuer=issuer,
        client_id=client_id,
        token_endpoint=endpoint,
        access_token=body["access_token"],
        expires_at=time.time() + float(body.get("expires_in", 300)),
        refresh_token=body.get("refresh_token") or form.get("refresh_token"),
        audience=audience,
    )


def save(session: Session) -> Path:
    """Keep `session` in credentials_path(), readable by this user only."""
    path = credentials_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = path.with_suffix(".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(session), out)
    os.chmod(temporary, 0o600)
    temporary.replace(path)
    return path


def load() -> Session | None:
    """The kept session, if any."""
    path = credentials_path()
    try:
        return Session(**json.loads(path.read_text()))
    except FileNotFoundError:
        return None
    except (ValueError, TypeError) as e:
        raise DataVisaError(f"{path} does not read ({e}): datavisa logout, then login") from e


def access_token() -> str | None:
    """A current access token of the kept session (refreshed first when it is about to
    expire, and kept again); None when no one signed in."""
    session = load()
    if session is None:
        return None
    if time.time() < session.expires_at - REFRESH_BEFORE_S:
        return session.access_token
    if not session.refresh_token:
        raise DataVisaError("the sign-in expired: datavisa login")
    try:
        renewed = _tokens(
            session.token_endpoint, session.issuer, session.client_id, session.audience,
            {"grant_type": "refresh_token", "refresh_token": session.refresh_token,
             "client_id": session.client_id},
        )  # fmt: skip
    except DataVisaError as e:
        raise DataVisaError(f"the sign-in could not be renewed ({e}): datavisa login") from e
    save(renewed)
    return renewed.access_token


def forget() -> bool:
    """Remove the kept session; whether there was one."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True
