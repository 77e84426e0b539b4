"""What every route depends on: the running service and the caller's verified, authorized
token.

The app holds its `Service` in `app.state.service`; `Served` hands it to a route.
`authenticate` verifies the bearer token (401 when missing, unknown or revoked), and
`Allowed(operation)`, which every /v1 route declares for its caller, lets it through only
when the token's role may call that operation (403 `forbidden` otherwise): the role model
is policy (rego/datavisa/api), read from the table the service loaded from OPA. `V1` is
what every /v1 route declares about its error answers.
"""

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from ..identity.oidc import IdentityUnavailable, RefusedToken, Verifier, looks_like_jwt
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
    principal = await bearer(service, credentials.credentials)
    if principal is None:
        raise ApiError(401, "unauthenticated", "the bearer token is unknown or revoked")
    return principal


async def bearer(service: Service, token: str) -> Principal | None:
    """Who a bearer token stands for: the person the identity provider's JWT names (a 401
    saying why when it names no one), else a static token's principal, or None."""
    if service.identity is not None and looks_like_jwt(token):
        return await run_in_threadpool(signed_in, service, service.identity, token)
    return service.tokens.verify(token)


def signed_in(service: Service, identity: Verifier, token: str) -> Principal:
    """The person the identity provider's JWT stands for (a worker thread: the issuer's
    keys may have to be fetched), with the API role policy gives their groups; why not,
    as the API says it."""
    try:
        person = identity.verify(token)
    except RefusedToken as e:
        raise ApiError(401, "unauthenticated", str(e)) from None
    except IdentityUnavailable as e:
        raise ApiError(503, "identity_unavailable", str(e)) from None
    principal, decision = service.person(person)
    if principal is not None:
        return principal
    if "policy_unavailable" in decision.codes:
        raise ApiError(503, "policy_unavailable", decision.explain())
    raise ApiError(
        403, "forbidden", decision.explain(), reasons=decision.reasons,
        decision_id=decision.decision_id,
    )  # fmt: skip


def authorize(service: Service, principal: Principal, operation: str) -> None:
    """Refuse the call unless the principal's role may call `operation`; fail closed
    while the service has no role table from OPA."""
    allowed = service.permissions.allows(principal.role, operation)
    if allowed is None:
        raise ApiError(
            503,
            "policy_unavailable",
            f"the API permissions are not loaded from OPA yet, so {operation} is refused",
        )
    if not allowed:
        raise ApiError(
            403, "forbidden", f"a token with role {principal.role} may not call {operation}"
        )


class Authorize:
    """The dependency behind `Allowed(operation)`: the caller, authenticated and
    authorized for `operation`."""

    def __init__(self, operation: str) -> None:
        self.operation = operation

    async def __call__(
        self, service: Served, principal: Annotated[Principal, Depends(authenticate)]
    ) -> Principal:
        authorize(service, principal, self.operation)
        return principal


def Allowed(operation: str) -> Any:
    """`actor: Annotated[Principal, Allowed("requests.create")]`: the caller of a route
    that is the API operation `operation`."""
    return Depends(Authorize(operation))


def operation_of(route: APIRoute) -> str | None:
    """The API operation a route declares with `Allowed`, or None (a route without a
    token: /health, /metrics, the dashboard's files)."""

    def find(dependant: Dependant) -> str | None:
        if isinstance(dependant.call, Authorize):
            return dependant.call.operation
        return next((op for dep in dependant.dependencies if (op := find(dep)) is not None), None)

    return find(route.dependant)
