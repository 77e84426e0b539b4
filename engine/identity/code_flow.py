"""OAuth 2.0's authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636), the pieces both
of DataVisa's sign-ins share: the CLI's, through a loopback redirect (`session`), and the
dashboard's, through the server (`web_session`).

`pkce()` makes a code verifier and its S256 challenge; `authorization_url` is where the
person's browser is sent; `token_request` asks the issuer's token endpoint (for a code or
a refresh token) and tells a refusal by the issuer (`IdpRefused`: the grant is no good)
from an issuer that cannot be reached (`IdpUnreachable`: try again later).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import requests

from ..model.errors import DataVisaError

FETCH_TIMEOUT_S = 10.0


class IdpRefused(DataVisaError):
    """The issuer's token endpoint said no (an expired or revoked grant, a wrong secret);
    `error` is its OAuth error code (RFC 6749 5.2, RFC 8628 3.5), when it gave one."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class IdpUnreachable(DataVisaError):
    """The issuer's token endpoint did not answer, or failed (5xx)."""


@dataclass(frozen=True)
class Pkce:
    """A code verifier, kept by the client, and the challenge sent with the request."""

    verifier: str
    challenge: str
    method: str = "S256"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def pkce() -> Pkce:
    verifier = secrets.token_urlsafe(48)  # 64 characters: RFC 7636 wants 43 to 128
    return Pkce(verifier, b64url(hashlib.sha256(verifier.encode()).digest()))


def authorization_url(
    endpoint: str,
    client_id: str,
    redirect_uri: str,
    scope: str,
    state: str,
    code: Pkce,
    **extra: str | None,
) -> str:
    """The issuer's authorization endpoint asked for a code for `client_id`; `extra`
    parameters (nonce, audience, max_age, prompt, login_hint, acr_values) where given."""
    asked = {
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": scope, "state": state, "code_challenge": code.challenge,
        "code_challenge_method": code.method,
        **{name: value for name, value in extra.items() if value is not None},
    }  # fmt: skip
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{urlencode(asked)}"


def token_request(
    endpoint: str, form: dict[str, str], client: tuple[str, str] | None = None
) -> dict[str, Any]:
    """The token endpoint's answer to `form`, which holds an access token. A confidential
    `client` (id, secret) authenticates with HTTP Basic (RFC 6749 §2.3.1); a public one
    names itself in the form."""
    auth = None
    if client is not None:  # each part form-encoded first, as §2.3.1 says
        auth = requests.auth.HTTPBasicAuth(quote(client[0], safe=""), quote(client[1], safe=""))
    try:
        answer = requests.post(endpoint, data=form, auth=auth, timeout=FETCH_TIMEOUT_S)
    except requests.RequestException as e:
        raise IdpUnreachable(f"cannot reach the identity provider's token endpoint: {e}") from e
    body: dict[str, Any] = {}
    with contextlib.suppress(ValueError):
        body = answer.json()
    if not isinstance(body, dict):
        body = {}
    if answer.status_code == 200 and isinstance(body.get("access_token"), str):
        return body
    why = body.get("error_description") or body.get("error") or f"HTTP {answer.status_code}"
    message = f"the identity provider gave no token: {str(why)[:300]}"
    if answer.status_code >= 500:
        raise IdpUnreachable(message)
    error = body.get("error")
    raise IdpRefused(message, error if isinstance(error, str) else None)
