"""The dashboard's sign-in with the identity provider (engine/identity/web_session.py).

GET /auth/login sends the browser to the IdP (`max_age` and `prompt=login` ask it to sign
the person in again, for a step policy wants a recent sign-in for); GET /auth/callback
comes back with the code and sets the session cookie (api/browser.py); GET /auth/session
says who is signed in, until when, and the session's CSRF token; POST /auth/logout ends
the session (CSRF rules held) and names the IdP's own sign-out, where it has one.

They are kept out of the OpenAPI document: a browser's redirects and its cookie, not the
bearer-token API the document describes. Without `identity.sign_in` they answer 404.
"""

from __future__ import annotations

import html
import time
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from ...identity.oidc import IdentityUnavailable
from ...identity.web_session import SignInRefused, WebSessions
from ...model.durations import rfc3339
from ..browser import (
    CALLBACK,
    SIGN_IN_COOKIE,
    base_url,
    check_csrf,
    cookie_name,
    over_tls,
    redirect_uri,
    session_of,
)
from ..deps import Served
from ..errors import ApiError, JsonRoute, error_response
from ..tokens import SUBJECT_PATTERN, USER
from .dashboard import DASHBOARD_HEADERS

router = APIRouter(route_class=JsonRoute)

# Where a sign-in may send the browser back to: a path of this server, never elsewhere.
RETURN_TO = r"^/([A-Za-z0-9_.~-][A-Za-z0-9/_.~-]{0,200})?$"  # not //host
NO_STORE = {"Cache-Control": "no-store"}


def _sessions(service: Served) -> WebSessions:
    if service.sessions is None:
        raise ApiError(
            404, "not_found", "the dashboard's sign-in is not configured (identity.sign_in)"
        )
    return service.sessions


# OpenID Connect's acr_values: space-separated names the IdP defines (policy's step_up).
ACR_VALUES = r"^[\x21\x23-\x5b\x5d-\x7e]{1,128}( [\x21\x23-\x5b\x5d-\x7e]{1,128}){0,7}$"


@router.get("/auth/login", include_in_schema=False)
def login(
    service: Served,
    request: Request,
    max_age: Annotated[int | None, Query(ge=0, le=86400)] = None,
    prompt: Annotated[Literal["login", "consent", "select_account"] | None, Query()] = None,
    login_hint: Annotated[str | None, Query(pattern=SUBJECT_PATTERN)] = None,
    return_to: Annotated[str, Query(pattern=RETURN_TO)] = "/",
    acr_values: Annotated[str | None, Query(pattern=ACR_VALUES)] = None,
) -> Response:
    """Off to the identity provider, with a sign-in kept here for the callback."""
    sessions = _sessions(service)
    cfg = sessions.config
    try:
        started = sessions.begin(
            redirect_uri(request, cfg), return_to, max_age, prompt, login_hint, acr_values
        )
    except IdentityUnavailable as e:
        return _failed(request, 503, "identity_unavailable", str(e))
    response = RedirectResponse(started.url, status_code=303, headers=NO_STORE)
    response.set_cookie(
        SIGN_IN_COOKIE, started.state, max_age=int(cfg.sign_in_s), path=CALLBACK,
        secure=over_tls(request, cfg), httponly=True, samesite="lax",
    )  # fmt: skip
    return response


@router.get(CALLBACK, include_in_schema=False)
def callback(
    service: Served,
    request: Request,
    state: Annotated[str | None, Query(max_length=256)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
    error_description: Annotated[str | None, Query(max_length=1024)] = None,
) -> Response:
    """Back from the identity provider: signed in (the cookie set), or told why not."""
    sessions = _sessions(service)
    name, tls = cookie_name(request, sessions.config), over_tls(request, sessions.config)
    try:
        done = sessions.complete(
            state, request.cookies.get(SIGN_IN_COOKIE), code, error, error_description,
            replaces=request.cookies.get(name),
        )  # fmt: skip
    except SignInRefused as e:
        response = _failed(request, e.status, e.code, str(e))
    except IdentityUnavailable as e:
        response = _failed(request, 503, "identity_unavailable", str(e))
    else:
        response = RedirectResponse(done.return_to, status_code=303, headers=NO_STORE)
        response.set_cookie(
            name, done.session_id, max_age=max(0, int(done.session.expires_at - time.time())),
            path="/", secure=tls, httponly=True, samesite="lax",
        )  # fmt: skip
    response.delete_cookie(SIGN_IN_COOKIE, path=CALLBACK, secure=tls, httponly=True, samesite="lax")
    return response


@router.get("/auth/session", include_in_schema=False)
async def session(service: Served, request: Request) -> JSONResponse:
    """Who the session cookie signs in, until when, how, and the CSRF token its
    state-changing calls carry; 401 when no one is signed in."""
    _sessions(service)
    found = await session_of(service, request)
    if found is None:
        raise ApiError(401, "unauthenticated", "no one is signed in here", sign_in="/auth/login")
    person = found.identity
    return JSONResponse(
        {
            "subject": person.subject,
            "role": USER,
            "expires_at": rfc3339(found.expires_at),
            "idle_until": rfc3339(found.idle_until),
            "csrf_token": found.csrf_token,
            "auth_time": rfc3339(person.auth_time) if person.auth_time is not None else None,
            "amr": list(person.amr),
            "acr": person.acr,
        },
        headers=NO_STORE,
    )


@router.post("/auth/logout", include_in_schema=False)
async def logout(service: Served, request: Request) -> JSONResponse:
    """Sign out here (the session deleted, the cookie cleared); `end_session_url` is the
    IdP's own sign-out for the browser to go on to, where it has one."""
    sessions = _sessions(service)
    cfg = sessions.config
    found = await session_of(service, request)
    if found is None:
        raise ApiError(401, "unauthenticated", "no one is signed in here")
    check_csrf(request, cfg, found)
    ended = await run_in_threadpool(sessions.end, found, base_url(request, cfg) + "/")
    response = JSONResponse({"signed_out": True, "end_session_url": ended}, headers=NO_STORE)
    response.delete_cookie(
        cookie_name(request, cfg), path="/", secure=over_tls(request, cfg), httponly=True,
        samesite="lax",
    )  # fmt: skip
    return response


def _failed(request: Request, status: int, code: str, message: str) -> Response:
    """A sign-in that did not happen: a page for a person's browser, else the API's JSON."""
    if "text/html" not in request.headers.get("accept", ""):
        response = error_response(status, code, message)
        response.headers.update(NO_STORE)
        return response
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DataVisa — not signed in</title>
<link rel="stylesheet" href="/dashboard/dashboard.css">
</head>
<body>
<section class="panel">
  <h1>Not signed in</h1>
  <p id="sign-in-error" class="error" data-code="{html.escape(code)}">{html.escape(message)}</p>
  <p><a href="/auth/login">Sign in again</a> · <a href="/">The dashboard</a></p>
</section>
</body>
</html>
"""
    return HTMLResponse(page, status_code=status, headers={**DASHBOARD_HEADERS, **NO_STORE})
