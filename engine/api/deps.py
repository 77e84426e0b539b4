"""What every route depends on: the running service and the caller's verified token.

The app holds its `Service` in `app.state.service`; `Served` hands it to a route and
`Actor` authenticates the bearer token (401 when missing, unknown or revoked). `V1` is
what every /v1 route declares about its error answers.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .errors import ApiError
from .schemas import ERRORS
from .service import Service
from .tokens import Principal

V1: dict[str, Any] = {"responses": ERRORS}
_bearer = HTTPBearer(auto_error=False, description="A token from `datavisa token issue`")


def service_of(request: Request) -> Service:
    return request.app.state.service


Served = Annotated[Service, Depends(service_of)]


async def authenticate(
    service: Served,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # On the event loop: one indexed read, cheaper than a hop to a worker thread.
    if credentials is None:
        raise ApiError(401, "unauthenticated", "send a token: Authorization: Bearer TOKEN")
    principal = service.tokens.verify(credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthenticated", "the bearer token is unknown or revoked")
    return principal


Actor = Annotated[Principal, Depends(authenticate)]
