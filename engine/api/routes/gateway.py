"""Forward auth: the endpoints a gateway asks before it lets a request through.

One family under /v1/authz, any method, one route per protocol (docs/gateway.md):

- `/v1/authz/nginx`: nginx `auth_request`; the original request is in `X-Original-Method`
  and `X-Original-URI`, its host in `X-Original-Host` (else `Host`).
- `/v1/authz/forward`: Caddy `forward_auth` and Traefik ForwardAuth; `X-Forwarded-Method`,
  `-Uri`, `-Host` and `-For`.
- `/v1/authz/envoy/<original path>`: Envoy `ext_authz` in HTTP mode, which sends the
  original method, host and headers and appends the original path to its `path_prefix`. A
  check Envoy marks `x-envoy-auth-partial-body: true` is denied.

A 200 allows, with the grant in `X-DataVisa-Grant-Id`, `-Expires-At`, `-Decision-Id` and
`-Subject` for the upstream; a 403 denies, with the reason codes in `X-DataVisa-Reasons`
and a JSON body; 401 means the caller sent no credential that verifies. Each answer is
datavisa.gateway.answer's, route and access decided in one OPA query (the same answer a
sidecar's gateway plugin gives, tools/opa/gateway). No answer is a 5xx: an OPA that
cannot be asked is a 403 `policy_unavailable`.

Who asks: the gateway's own service token in the configured credential header, which makes
the configured identity header (the subject) and country header believable; or the user's
own DataVisa token (`Authorization: Bearer`), which asks about itself. What the request
means (resource and action) is datavisa.gateway's to say from the bundle's routes; whether
it may go ahead is the access decision's, with the method, host and path as its
context, recorded as an access check is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as FastApiPath
from fastapi.responses import JSONResponse, Response
from starlette.convertors import PathConvertor, register_url_convertor

from ...location.networks import PEER, BadAddress
from ...location.origin import GATEWAY, Origin
from ...model.decision import Decision
from ...model.errors import StorageUnavailable
from ...policy.decide import ACCESS, GatewayAnswer
from ..config import GatewayConfig
from ..deps import Authorize, Served
from ..deps import bearer as verify_bearer
from ..errors import ApiError, JsonRoute
from ..schemas import ERRORS
from ..service import Service
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)

OPERATION = "gateway.authz"
# A gateway forwards whatever method its client used.
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Headers that ask an upstream to act as another method: passed to datavisa.gateway, which
# judges the request as that method (a `_method` query parameter it reads itself).
METHOD_OVERRIDES = ("x-http-method-override", "x-http-method", "x-method-override")
REASONS_HEADER = "X-DataVisa-Reasons"
# What a gateway is answered, besides the 200 that lets the request through.
ANSWERS: dict[int | str, dict[str, Any]] = {
    status: ERRORS[status] | {"description": text}
    for status, text in [
        (401, "No credential that verifies: the gateway's, or the user's own token"),
        (403, "Denied: the reason codes in X-DataVisa-Reasons and the JSON body"),
        (413, "The original request's headers are larger than the server reads"),
        (422, "The original request cannot be read as a request (say, its path)"),
    ]
}


@dataclass(frozen=True)
class Caller:
    """Who asks: `principal` is the token that verified; `gateway` when it came in the
    credential header (a service token), so the gateway's headers may be believed; `user`
    the user's own bearer token the gateway passed on, if it verifies."""

    principal: Principal
    gateway: bool
    user: Principal | None = None


class GatewayCaller(Authorize):
    """`Allowed("gateway.authz")` for the forward-auth endpoints: the credential is the
    gateway's service token in the configured header, else the caller's bearer token.
    No credential that verifies is not refused here but judged, a fault code instead of
    a Caller, so that its answer (a 401) is policy's, as at a sidecar's gateway plugin.
    Nothing here is a 5xx: a gateway passes a 5xx on as an error page, not a deny."""

    async def __call__(self, service: Served, request: Request) -> Caller | str:  # type: ignore[override]
        cfg = service.gateway
        credential = request.headers.get(cfg.credential_header)
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        bearer = await verify_bearer(service, token.strip()) if scheme.lower() == "bearer" else None
        if credential is not None:
            principal = service.tokens.verify(credential.strip())
            if principal is None or not principal.is_service:
                return CREDENTIAL_INVALID  # judged (a 401) and recorded, as at a sidecar
            user = bearer if bearer is not None and not bearer.is_service else None
            return self._allowed(service, Caller(principal, gateway=True, user=user))
        principal = bearer
        if principal is None:
            if any(name in request.headers for name in cfg.identity_headers):
                return IDENTITY_UNVOUCHED  # an identity header no one vouches for
            return CREDENTIAL_MISSING
        return self._allowed(service, Caller(principal, gateway=False))

    def _allowed(self, service: Service, caller: Caller) -> Caller:
        allowed = service.permissions.allows(caller.principal.role, self.operation)
        if allowed is None:
            raise ApiError(403, "policy_unavailable", "the API permissions are not loaded from OPA")
        if not allowed:
            raise ApiError(
                403,
                "forbidden",
                f"a token with role {caller.principal.role} may not call {self.operation}",
            )
        return caller


# What a caller that no credential vouches for is judged with (datavisa.gateway's faults).
CREDENTIAL_MISSING, CREDENTIAL_INVALID = "credential_missing", "credential_invalid"
IDENTITY_UNVOUCHED = "identity_without_credential"

Asking = Annotated[Caller | str, Depends(GatewayCaller(OPERATION))]


@dataclass(frozen=True)
class Original:
    """The request the gateway asks about, as the protocol carries it."""

    method: str
    host: str
    uri: str  # path and query, as the client sent them
    forwarded_for: str | None


async def nginx(service: Served, request: Request, caller: Asking) -> Response:
    """nginx `auth_request`: 2xx allows, 401 and 403 deny (docs/gateway.md)."""
    h = request.headers
    original = Original(
        h.get("x-original-method", ""),
        h.get("x-original-host") or h.get("host", ""),
        h.get("x-original-uri", ""),
        h.get("x-forwarded-for"),
    )
    return await _judge(service, request, caller, original)


async def forward(service: Served, request: Request, caller: Asking) -> Response:
    """Caddy `forward_auth` and Traefik ForwardAuth: 2xx allows; anything else is what the
    client gets."""
    h = request.headers
    original = Original(
        h.get("x-forwarded-method", ""),
        h.get("x-forwarded-host", ""),
        h.get("x-forwarded-uri", ""),
        h.get("x-forwarded-for"),
    )
    return await _judge(service, request, caller, original)


ENVOY_PREFIX = "/v1/authz/envoy"
MAX_PATH = 8192  # the longest original path read (uvicorn reads no longer a request line)


async def envoy(
    service: Served,
    request: Request,
    caller: Asking,
    original: Annotated[str, FastApiPath(max_length=MAX_PATH, description="The original path")],
) -> Response:
    """Envoy `ext_authz` (HTTP service, `path_prefix: /v1/authz/envoy`): only a 200 allows.
    The original path is read raw, before decoding, so an encoded separator stays visible."""
    raw = request.scope.get("raw_path", b"").decode("latin-1")[len(ENVOY_PREFIX) :]  # as sent
    query = request.scope.get("query_string", b"").decode("latin-1")
    h = request.headers
    asked = Original(
        request.method,
        h.get("host", ""),
        raw + (f"?{query}" if query else ""),
        h.get("x-forwarded-for"),
    )
    partial = h.get("x-envoy-auth-partial-body", "").strip().lower() == "true"
    return await _judge(service, request, caller, asked, ["partial_body"] if partial else [])


def _every_method(path: str, endpoint: Any, answers: dict[int | str, Any] = ANSWERS) -> None:
    """A route per method, as a gateway forwards whatever method its client used; one
    each, so every one has its own OpenAPI operation id."""
    for method in METHODS:
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            tags=["gateway"],
            operation_id=f"gateway_{endpoint.__name__}_{method.lower()}",
            responses=answers,
        )


_every_method("/v1/authz/nginx", nginx)
_every_method("/v1/authz/forward", forward)


class _AnyPath(PathConvertor):
    """Any original path, line breaks and all (Starlette's `path` stops at one, and the
    check would be a 404 instead of the decision on it)."""

    regex = r"[\s\S]*"


register_url_convertor("original", _AnyPath())
_every_method(
    ENVOY_PREFIX + "/{original:original}",
    envoy,
    ANSWERS
    | {
        400: {
            "description": "The HTTP server could not read the request line (too long once "
            "encoded): uvicorn's own answer, before DataVisa sees it",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)


async def _judge(
    service: Service,
    request: Request,
    asking: Caller | str,
    original: Original,
    faults: list[str] | None = None,
) -> Response:
    started = time.perf_counter()
    cfg = service.gateway
    faults = list(faults or [])
    caller = asking if isinstance(asking, Caller) else None
    if caller is None:
        faults.append(str(asking))  # no credential that verifies: judged, a 401
    # Only the gateway's credential vouches for an identity header.
    elif not caller.gateway and any(name in request.headers for name in cfg.identity_headers):
        faults.append(IDENTITY_UNVOUCHED)

    def read(value: str | None) -> str | None:
        # An oversized header is not read at all: the decision is a deny saying so.
        if value is not None and len(value.encode("latin-1", "replace")) > cfg.max_header_bytes:
            if "header_too_large" not in faults:
                faults.append("header_too_large")
            return None
        return value

    method, host, uri = (read(v) or "" for v in (original.method, original.host, original.uri))
    uri = _utf8(uri)
    path, _, query = uri.partition("?")
    origin = _origin(caller, request, service, read(original.forwarded_for), read, faults)
    subject = _subject(caller, request, cfg, read)  # none: policy answers subject_missing
    location = origin.country
    context: dict[str, Any] = {"method": method.upper(), "host": host, "path": path}
    if query:
        context["query"] = query  # masked out of the decision log, like a database query
    if origin.address:
        context["client_ip"] = origin.address  # kept to its /24 in the decision log
        context["client_ip_set_by"] = (
            PEER if origin.via == PEER else "gateway " + (origin.via or "").removeprefix("proxy ")
        )
    overrides = [v for name in METHOD_OVERRIDES for v in request.headers.getlist(name)]
    asked: dict[str, Any] = {
        "location": location,
        "origin": origin.facts(),
        "context": context,
        "method_overrides": [read(v) or "" for v in overrides],
        "faults": faults,
    }
    if subject is not None:
        asked["subject"] = subject
    who = caller.principal.subject if caller else None
    try:
        got = await service.answers((asked, who, time.monotonic()))
    except StorageUnavailable:  # a decision that cannot be recorded is not given
        reason = {"code": "storage_unavailable", "message": "the decision could not be recorded"}
        return _deny(Decision(False, [reason]))
    decision = got.decision
    if got.path == ACCESS:  # the access decision, as POST /v1/access/check counts it
        service.metrics.observe(decision, time.perf_counter() - started)
    if got.status is None:  # OPA could not be asked, or the store amended what it said
        return _deny(decision)
    return _answer(got)


def _answer(got: GatewayAnswer) -> Response:
    """The HTTP answer policy gave, with the id the decision is recorded under."""
    headers = dict(got.headers)
    if got.decision.decision_id:
        headers["X-DataVisa-Decision-Id"] = got.decision.decision_id
    if got.body is None:
        return Response(status_code=got.status or 200, headers=headers)
    error = got.body.get("error")
    body = (
        {**got.body, "error": {**error, "decision_id": got.decision.decision_id}}
        if isinstance(error, dict)
        else got.body
    )
    return JSONResponse(body, status_code=got.status or 403, headers=headers)


def _utf8(text: str) -> str:
    """A URI as its bytes meant it: HTTP carries header values (and the raw path) as bytes,
    which ASGI gives as Latin-1; a byte sequence that is not UTF-8 becomes U+FFFD, which
    datavisa.gateway refuses as not canonical."""
    return text.encode("latin-1", "replace").decode("utf-8", "replace")


def _deny(decision: Decision) -> JSONResponse:
    codes = list(dict.fromkeys(decision.codes)) or ["denied"]  # once each, in order
    body = {
        "error": {
            "code": "access_denied",
            "message": decision.explain(),
            "reasons": decision.reasons,
            "decision_id": decision.decision_id,
        }
    }
    headers = {REASONS_HEADER: ",".join(codes)}
    if decision.decision_id:
        headers["X-DataVisa-Decision-Id"] = decision.decision_id
    return JSONResponse(body, status_code=403, headers=headers)


def _subject(caller: Caller | None, request: Request, cfg: GatewayConfig, read: Any) -> str | None:
    """The gateway's identity header when the gateway vouches for it; else the user's own
    token's subject; None when no one can be named."""
    if caller is None:
        return None
    if caller.gateway:
        for name in cfg.identity_headers:
            value = read(request.headers.get(name))
            if value is not None and value.strip():
                return value.strip()
        return caller.user.subject if caller.user else None
    return caller.principal.subject


def _origin(
    caller: Caller | None,
    request: Request,
    service: Service,
    forwarded_for: str | None,
    read: Any,
    faults: list[str],
) -> Origin:
    """Where the client is: the trusted country header from a vouched-for gateway
    (attested), and the client address mapped to a country (derived). The address is the
    peer's, or, from a vouched-for gateway connecting from one of `location.proxies`, what
    its X-Forwarded-For says (engine/location): a client's own entries before it are not
    read. A country header naming no country, or a forwarded address that is none, is a
    fault (a recorded deny)."""
    cfg, peer = service.gateway, request.client.host if request.client else None
    forwarded = [forwarded_for] if forwarded_for and caller is not None and caller.gateway else []
    try:
        client, via = service.location.client(peer, forwarded)
    except BadAddress:
        faults.append("forwarded_for_invalid")
        client, via = service.location.client(peer)
    attested = None
    if caller is not None and caller.gateway and cfg.country_header:
        value = read(request.headers.get(cfg.country_header))
        if value is not None:
            attested = value.strip().upper()
            if attested not in service.rules.countries:
                faults.append("country_header_invalid")
                attested = None
    return Origin(
        GATEWAY,
        attested=attested,
        attested_by=caller.principal.subject if attested and caller else None,
        derived=service.location.country(client),
        address=client,
        via=via,
    )
