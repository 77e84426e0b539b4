"""How the API says no: every error is JSON `{"error": {"code", "message", "field"?, ...}}`.

`ApiError` is raised by routes; the handlers installed by `install_error_handlers` turn
it, the engine's own errors, FastAPI's validation errors and anything unexpected into
that one shape with the right status. `BodyLimit` refuses oversized bodies (413).
"""

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..model.errors import (
    Conflict,
    DataVisaError,
    Denied,
    NotFound,
    NotYetEnforced,
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


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc[1:]] if len(loc) > 1 else [str(p) for p in loc]
    return ".".join(parts)


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
        if bad_json is not None:
            why = bad_json.get("ctx", {}).get("error", "")
            return error_response(
                400, "malformed_json", f"the body is not valid JSON: {why}", field="body"
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

    @app.exception_handler(HTTPException)
    def http_error(_request: Request, e: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(e.status_code, "error")
        return error_response(e.status_code, code, str(e.detail))

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
                reasons=e.decision.reasons,
                decision_id=e.decision.decision_id,
            )
        if isinstance(e, StorageUnavailable):
            log.error("storage unavailable: %s", e)
            return error_response(503, "storage_unavailable", str(e))
        if isinstance(e.__cause__, OpaUnavailable):
            return error_response(503, "policy_unavailable", str(e))
        return error_response(400, "invalid", str(e))

    @app.exception_handler(OpaUnavailable)
    def opa_down(_request: Request, e: OpaUnavailable) -> JSONResponse:
        return error_response(503, "policy_unavailable", f"no policy decision point: {e}")

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
