"""The live dashboard: its page and files, and the event stream it refreshes on."""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from ...model.durations import rfc3339
from ..browser import session_of
from ..deps import Allowed, Served, bearer
from ..errors import ApiError, JsonRoute
from ..service import Service
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)


DASHBOARD = Path(__file__).parent.parent / "dashboard"  # engine/api/dashboard/
DASHBOARD_FILES = {
    "dashboard.css": "text/css",
    "dashboard.js": "text/javascript",
    "console.js": "text/javascript",
    "stepup.js": "text/javascript",  # the step-up page's (routes/step_up.py)
}
# The console loads nothing from elsewhere, runs no inline script, and sends no form
# anywhere but here (its forms are sent by script, as /v1 calls).
DASHBOARD_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
EVENTS_POLL_S = 0.5  # how often /v1/events looks for changes
EVENTS_KEEPALIVE_S = 15.0
EVENTS_MAX_S = 600.0  # then the stream ends and the client reconnects
SESSION_CHECK_S = 2.0  # how often a stream looks whether its session or token still lives


@router.get("/v1/events", include_in_schema=False)
async def events(
    service: Served, request: Request, actor: Annotated[Principal, Allowed("events.read")]
) -> StreamingResponse:
    """Server-sent events: `change` with the heads whenever the data moves."""

    # A stream ends soon after what let it in does (a session signed out, lapsed or
    # refused by the IdP; a token revoked; a JWT expired): the client comes back and is
    # told why.
    by_session = actor.token_id.startswith("session:")
    token = request.headers.get("authorization", "").partition(" ")[2].strip()

    async def stream() -> AsyncIterator[str]:
        last, quiet, started = None, 0.0, time.monotonic()
        checked = started
        yield "retry: 2000\n\n"
        while time.monotonic() - started < EVENTS_MAX_S and not service.closing.is_set():
            if await request.is_disconnected():
                return
            if time.monotonic() - checked >= SESSION_CHECK_S:
                checked = time.monotonic()
                if not await _still_let_in(service, request, by_session, token):
                    return
            heads = await run_in_threadpool(service.heads)
            if heads != last:
                data = json.dumps({**heads, "now": rfc3339(time.time())})
                yield f"event: change\ndata: {data}\n\n"
                last, quiet = heads, 0.0
            elif quiet >= EVENTS_KEEPALIVE_S:
                yield ": keep-alive\n\n"
                quiet = 0.0
            await asyncio.sleep(EVENTS_POLL_S)
            quiet += EVENTS_POLL_S

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _still_let_in(service: Service, request: Request, by_session: bool, token: str) -> bool:
    """Whether the session or bearer token that opened a stream still lets its caller in."""
    try:
        if by_session:
            return await session_of(service, request) is not None
        return await bearer(service, token) is not None
    except ApiError:
        return False


# -- the dashboard ----------------------------------------------------------------


@router.get("/", include_in_schema=False)
def dashboard(
    service: Served,
) -> FileResponse:
    """The live dashboard; it asks for a token and reads the API with it."""
    return FileResponse(DASHBOARD / "index.html", headers=DASHBOARD_HEADERS)


@router.get("/dashboard/{name}", include_in_schema=False)
def dashboard_file(service: Served, name: str) -> FileResponse:
    if name not in DASHBOARD_FILES:
        raise ApiError(404, "not_found", f"no dashboard file {name!r}")
    return FileResponse(
        DASHBOARD / name, media_type=DASHBOARD_FILES[name], headers=DASHBOARD_HEADERS
    )
