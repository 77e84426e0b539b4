"""A fast lane for the hottest route: well-formed calls skip FastAPI's per-request machinery.

POST /v1/access/check is in the request path of the services that call it, so what the
engine adds to OPA's own time is measured (bench/). FastAPI's dependency solving and
response handling cost more per call, here, than everything else the server does around
the decision. The route stays declared the FastAPI way (its interface, its OpenAPI
document, its errors); `FastLane`, an ASGI middleware in front of the app, serves every
call to it that it can serve as-is, with a JSON body that parses and validates and a
bearer token that verifies, by calling the route's own work. Anything else (no token, an
unknown one, another media type, malformed JSON, an invalid field, a call the handler
declines) goes on to the app with the body replayed, so every error is exactly the
declared route's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..model import bounded
from .asgi import read_body, replay

JSON_TYPES = (b"", b"application/json")


class FastLane:
    """Serves `POST path` on `app` with `handler(body, principal, scope)`, which answers
    a Response, or None to leave the call to the app; `verify(token)` is the principal a
    bearer token stands for, or None."""

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        model: type[BaseModel],
        handler: Callable[[Any, Any, Scope], Awaitable[Response | None]],
        verify: Callable[[str], Any],
    ) -> None:
        self.slow, self.path, self.model = app, path, model
        self.handler, self.verify = handler, verify

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.slow(scope, receive, send)
            return
        body = await read_body(receive)
        if body is None:
            return  # the client went away
        principal, parsed = self._principal(scope), self._parse(scope, body)
        if principal is None or parsed is None:
            await self.slow(scope, replay(body, receive), send)
            return
        response = await self.handler(parsed, principal, scope)
        if response is None:
            await self.slow(scope, replay(body, receive), send)
            return
        await response(scope, receive, send)

    def _principal(self, scope: Scope) -> Any:
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                return self.verify(token.strip()) if scheme.lower() == "bearer" else None
        return None

    def _parse(self, scope: Scope, body: bytes) -> BaseModel | None:
        media = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                media = value.split(b";")[0].strip().lower()
        if media not in JSON_TYPES or not body:
            return None
        try:
            return self.model.model_validate(bounded.loads(body))
        except (ValueError, ValidationError, bounded.TooDeep):  # the route says what is wrong
            return None
