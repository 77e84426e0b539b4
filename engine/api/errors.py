"""How the API says no: every error is JSON `{"error": {"code", "message", "field"?, ...}}`.

`ApiError` is raised by routes; the handlers installed by `install_error_handlers` turn
it, the engine's own errors, FastAPI's validation errors and anything unexpected into
that one shape with the right status. A body says what the client can act on: never an
internal address (OPA's), a library's message or a traceback; the server's log keeps
those. `BodyLimit` refuses oversized bodies (413); `JsonRoute` parses JSON bodies so that
one nested too deeply to parse is a 422 naming its field, not a RecursionError.
"""

import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import Match

from ..model import bounded
from ..model.errors import (
    Conflict,
    DataVisaError,
    Denied,
    NotFound,
    NotYetEnforced,
    SinkUnavailable,
    StorageUnavailable,
)
from ..policy.opa import OpaUnavailable
from .wire import to_wire

log = logging.getLogger("datavisa.server")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def error_response(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    detail = {"code": code, "message": message, **{k: v for k, v in extra.items() if v}}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": detail}, status_code=status, headers=headers)


_HTTP_CODES = {
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
}


class TooDeepBody(HTTPException):
    """A JSON body nested too deeply to parse. An HTTPException because it is raised while
    FastAPI reads the body, and FastAPI passes only those on as they are."""

    def __init__(self, path: bounded.JsonPath) -> None:
        self.field = path[0] if path and isinstance(path[0], str) else "body"
        super().__init__(
            422, f"{self.field}: nested more than {bounded.MAX_PARSE_DEPTH} levels deep"
        )


class _JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = bounded.loads(await self.body())
            except bounded.TooDeep as e:
                raise TooDeepBody(e.path) from e
        return self._json


class JsonRoute(APIRoute):
    """A route whose JSON body is parsed by `model.bounded.loads`: every router's class."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded_json(request: Request) -> Response:
            return await handler(_JsonRequest(request.scope, request.receive))

        return bounded_json


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


def _routes(routes: Any) -> Iterator[Any]:
    """Every route, through routers included whole (FastAPI keeps those as one entry)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        yield from _routes(inner.routes) if inner is not None else (route,)


def allowed_methods(request: Request) -> list[str]:
    """The methods of every route at this request's path (Starlette's own 405 names only
    those of the first route that matched the path)."""
    methods: set[str] = set()
    for route in _routes(request.app.router.routes):
        if route.matches(request.scope)[0] != Match.NONE:  # PARTIAL: the path, not the method
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    def api_error(_request: Request, e: ApiError) -> JSONResponse:
        return error_response(e.status, e.code, str(e), **e.extra)

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, e: RequestValidationError) -> JSONResponse:
        errors = e.errors()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if any(err["loc"] == ("body",) for err in errors) and media not in ("", "application/json"):
            return error_response(
                415, "unsupported_media_type", "send the body as Content-Type: application/json"
            )
        bad_json = next((err for err in errors if err["type"] == "json_invalid"), None)
        if bad_json is not None:  # the parser's own words stay out; where it stopped helps
            at = bad_json["loc"][-1]
            where = f" (it stops making sense at character {at})" if isinstance(at, int) else ""
            return error_response(
                400, "malformed_json", f"the body is not valid JSON{where}", field="body"
            )
        fields = [
            {"field": _field_name(err["loc"]), "message": err["msg"].removeprefix("Value error, ")}
            for err in errors
        ]
        first = fields[0]
        return error_response(
            422,
            "invalid_input",
            f"{first['field']}: {first['message']}",
            field=first["field"],
            errors=fields,
        )

    @app.exception_handler(TooDeepBody)
    def too_deep(_request: Request, e: TooDeepBody) -> JSONResponse:
        message = str(e.detail)
        return error_response(
            422,
            "invalid_input",
            message,
            field=e.field,
            errors=[{"field": e.field, "message": message.removeprefix(f"{e.field}: ")}],
        )

    @app.exception_handler(HTTPException)
    def http_error(request: Request, e: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(e.status_code, "error")
        response = error_response(e.status_code, code, str(e.detail))
        if e.status_code == 405:  # RFC 9110: a 405 says which methods the resource has
            response.headers["Allow"] = ", ".join(allowed_methods(request))
        return response

    @app.exception_handler(DataVisaError)
    def engine_error(_request: Request, e: DataVisaError) -> JSONResponse:
        if isinstance(e, NotYetEnforced):  # done in the store, not yet everywhere
            body = {**to_wire(e.record), "pending_sinks": e.pending, "message": str(e)}
            return JSONResponse(body, status_code=202)
        if isinstance(e, NotFound):
            return error_response(404, "not_found", str(e), field="request_id")
        if isinstance(e, Conflict):
            return error_response(409, "conflict", str(e))
        if isinstance(e, Denied):
            return error_response(
                403,
                "denied",
                str(e),
                field=next((r["field"] for r in e.decision.reasons if r.get("field")), None),
                reasons=e.decision.reasons,
                decision_id=e.decision.decision_id,
            )
        if isinstance(e, SinkUnavailable):
            return error_response(503, "sink_unavailable", str(e))
        if isinstance(e, StorageUnavailable):
            log.error("storage unavailable: %s", e)
            return error_response(503, "storage_unavailable", str(e))
        if isinstance(e.__cause__, OpaUnavailable):
            log.warning("%s: %s", e, e.__cause__)
            return error_response(503, "policy_unavailable", str(e))
        return error_response(400, "invalid", str(e))

    @app.exception_handler(OpaUnavailable)
    def opa_down(_request: Request, e: OpaUnavailable) -> JSONResponse:
        log.warning("no policy decision point: %s", e)
        return error_response(
            503, "policy_unavailable", "the policy decision point did not answer; try again"
        )

    @app.exception_handler(Exception)
    def internal(_request: Request, e: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=e)
        return error_response(500, "internal_error", "the server failed; its log says why")


class BodyLimit:
    """Refuses bodies over `max_bytes` (413) whether announced or streamed."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            response = error_response(413, "body_too_large", self._message(), field="body")
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self._message())
            return message

        await self.app(scope, limited, send)

    def _message(self) -> str:
        return f"the body is larger than {self.max_bytes} bytes"
