"""The browser's side of the API: the cookie the dashboard's sign-in sets, and the CSRF
rules for the calls that cookie authenticates.

A signed-in browser holds one cookie, the session's id: `datavisa_session`, named
`__Host-datavisa_session` when browsers reach the server over TLS (then no other host, not
even a subdomain, can set it); HttpOnly, Secure over TLS, SameSite=Lax, Path=/, Max-Age to
the session's end. A call the cookie authenticates that changes anything (any method but
GET, HEAD, OPTIONS) must also carry the session's CSRF token in `X-CSRF-Token` (a
synchronizer token, which only a page of the server's own origin can read, from GET
/auth/session) and say it comes from the server's own origin (`Origin`, else `Referer`);
anything else is 403 `csrf_required`. A bearer token needs neither: no browser sends one
on its own. The server's origin is the configured public URL's (or the redirect URI's);
without either, the request's own (loopback, tests).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ..identity.oidc import Identity, IdentityUnavailable
from ..identity.web_session import SignInConfig, WebSession
from .errors import ApiError
from .service import Service

SECURE_COOKIE, PLAIN_COOKIE = "__Host-datavisa_session", "datavisa_session"
SESSION_COOKIES = (SECURE_COOKIE, PLAIN_COOKIE)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
SIGN_IN_COOKIE = "datavisa_sign_in"  # the state of a sign-in under way, for its callback
CALLBACK = "/auth/callback"


def over_tls(request: Request, config: SignInConfig) -> bool:
    """Whether browsers reach the server over TLS: its public URL says https (a proxy in
    front ends TLS), or this request came so."""
    base = config.public_url or config.redirect_uri or ""
    return base.startswith("https://") or request.url.scheme == "https"


def cookie_name(request: Request, config: SignInConfig) -> str:
    return SECURE_COOKIE if over_tls(request, config) else PLAIN_COOKIE


def base_url(request: Request, config: SignInConfig) -> str:
    """Where browsers reach the server (no trailing slash)."""
    if config.public_url:
        return config.public_url
    if config.redirect_uri:
        return config.redirect_uri.removesuffix(CALLBACK)
    return f"{request.url.scheme}://{request.headers.get('host') or request.url.netloc}"


def redirect_uri(request: Request, config: SignInConfig) -> str:
    return config.redirect_uri or base_url(request, config) + CALLBACK


def origin(request: Request, config: SignInConfig) -> str:
    url = urlsplit(base_url(request, config))
    return f"{url.scheme}://{url.netloc}".lower()


def check_csrf(request: Request, config: SignInConfig, session: WebSession) -> None:
    """Refuse a state-changing call the cookie authenticates without the session's CSRF
    token, or from another origin (see the module doc)."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise ApiError(
            403,
            "csrf_required",
            f"a call signed in by the session cookie that changes something must carry the "
            f"session's CSRF token in {CSRF_HEADER} (GET /auth/session says it)",
            field=CSRF_HEADER,
        )
    ours = origin(request, config)
    came = request.headers.get("origin") or _origin_of(request.headers.get("referer"))
    if came is None or came.lower() != ours:
        raise ApiError(
            403,
            "csrf_required",
            f"this call comes from {(came or 'no stated origin')[:200]}, not from {ours}",
            field="Origin",
        )


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


async def session_of(service: Service, request: Request) -> WebSession | None:
    """The live session the request's cookie names; None when it brings none (or the
    server has no sign-in). A cookie of an ended session is a 401; an IdP that must
    renew the session and cannot be reached, a 503."""
    sessions = service.sessions
    if sessions is None:
        return None
    session_id = request.cookies.get(cookie_name(request, sessions.config))
    if not session_id:
        return None
    try:
        found = await run_in_threadpool(sessions.find, session_id)
    except IdentityUnavailable as e:
        raise ApiError(503, "identity_unavailable", str(e)) from None
    if found is None:
        raise ApiError(401, "unauthenticated", "the session ended: sign in again")
    return found


async def signed_in_browser(service: Service, request: Request) -> Identity | None:
    """The person a session cookie stands for, CSRF rules held; None without a cookie."""
    session = await session_of(service, request)
    if session is None:
        return None
    assert service.sessions is not None
    check_csrf(request, service.sessions.config, session)
    return session.identity
