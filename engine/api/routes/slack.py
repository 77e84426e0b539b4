"""Slack's interaction endpoint: POST /slack/interactions (the app manifest's request URL).

No bearer token: Slack signs each request with the app's signing secret, and that is what
is checked (engine/chat/interactions.py) before anything else, on the raw body as it
arrived. A bad, stale or replayed signature is 401 with a JSON error and changes nothing.
"""

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ..deps import Served

router = APIRouter()

PATH = "/slack/interactions"


_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: {"description": "not a block_actions payload, or a button not on our message"},
    401: {"description": "not signed by Slack, signed too long ago, or a replay"},
    403: {"description": "no directory person has the user's email, or policy refused"},
    404: {"description": "no `slack:` section in serve's config, or no such request"},
    409: {"description": "the request is no longer pending"},
    503: {"description": "Slack or policy could not be asked; nothing was decided"},
}


@router.post(PATH, tags=["chat"], responses=_ANSWERS)
async def interactions(service: Served, request: Request) -> Any:
    """A Block Kit button clicked in Slack (`payload=` form field, `block_actions`):
    Approve or Deny a request as the directory person the Slack user's email names."""
    if service.chat is None:
        body = {"error": {"code": "not_configured", "message": "serve has no `slack:` section"}}
        return JSONResponse(body, status_code=404)
    raw = await request.body()
    answer = await run_in_threadpool(
        service.chat.take,
        raw,
        request.headers.get("x-slack-request-timestamp"),
        request.headers.get("x-slack-signature"),
    )
    return JSONResponse(answer.body, status_code=answer.status)
