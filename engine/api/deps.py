"""What every route depends on: the running service and the caller's verified, authorized
token.

The app holds its `Service` in `app.state.service`; `Served` hands it to a route.
`authenticate` verifies the bearer token (401 when missing, unknown or revoked), else
the dashboard's session cookie (api/browser.py, CSRF rules included), and
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

from ..identity.oidc import (
    Identity,
    IdentityUnavailable,
    RefusedToken,
    Verifier,
    looks_like_jwt,
)
from ..location.networks import BadAddress
from ..location.origin import API, Origin, declared_country
from .browser import signed_in_browser
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
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    # On the event loop: one indexed read, cheaper than a hop to a worker thread.
    if credentials is None:
        # Else the dashboard's session cookie, with its CSRF rules (api/browser.py).
        if (person := await signed_in_browser(service, request)) is not None:
            # The API role policy gives their groups, none once deprovisioned, as for a
            # JWT (a worker thread: OPA may be asked).
            return await run_in_threadpool(principal_of, service, person)
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
    return principal_of(service, person)


def principal_of(service: Service, person: Identity) -> Principal:
    """A person the identity provider signed in (by a JWT or a dashboard session), with
    the API role policy gives their groups; a 403 saying why policy refuses them."""
    principal, decision = service.person(person)
    if principal is not None:
        return principal
    if "policy_unavailable" in decision.codes:
        raise ApiError(503, "policy_unavailable", decision.explain())
    raise ApiError(
        403, "forbidden", decision.explain(), reasons=decision.reasons,
        decision_id=decision.decision_id,
    )  # fmt: skip


def origin(service: Service, scope: Any, actor: Principal, location: str | None) -> Origin:
    """How the server knows where the caller of this HTTP call is: the client's address
    (the peer, or what trusted proxies say it is: engine/location) and the country it maps
    to; `location` is what the body declares. A service token asking is the enforcement
    point in front of its subject, whose address is not the subject's: what it says is
    attested by its credential. A 400 names X-Forwarded-For when a trusted proxy's is not
    an address."""
    peer = scope.get("client")
    forwarded = [v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for"]
    try:
        address, via = service.location.client(peer[0] if peer else None, forwarded)
    except BadAddress as e:
        raise ApiError(400, "bad_request", str(e), field=e.field) from None
    if actor.is_service:  # `unknown` too: the service says it does not know
        return Origin(API, attested=location, attested_by=actor.subject, address=address, via=via)
    derived = service.location.country(address)
    return Origin(
        API, declared=declared_country(location), derived=derived, address=address, via=via
    )


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
