"""The HTTP decision service behind `datavisa serve`: a FastAPI app over the engine.

Requesters' and approvers' tools drive the lifecycle under /v1/requests and /v1/grants;
services ask POST /v1/access/check. Every /v1 call needs a bearer token, and the acting
subject is always the token's, never a body field, and the token's role says which
operations it may call at all (the role model is policy: rego/datavisa/api; a refusal is
403 `forbidden`). Errors are JSON:
`{"error": {"code", "message", "field"?, "reasons"?}}`; bad input is a 4xx naming the
field and stores nothing. /health, /metrics and /openapi.json need no token.

Alerts raised by the monitoring rules are at /v1/alerts. GET /v1/events is a stream of
server-sent events (`text/event-stream`, bearer token as usual): an `change` event, with
the heads of the decision log, the audit trail and the alerts, whenever one of them moves;
the live dashboard served at / refreshes on it.
"""

from functools import partial
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from .. import __version__
from ..directory.scim import ScimError
from .config import DEFAULT_MAX_BODY_BYTES
from .deps import operation_of
from .errors import BodyLimit, install_error_handlers
from .fastlane import FastLane
from .idempotency import Idempotency
from .limits import RulesScope
from .routes import (
    alerts,
    auth,
    console,
    dashboard,
    decisions,
    filings,
    fleet,
    gateway,
    grants,
    operations,
    provisioned,
    requests,
    scim,
    slack,
    step_up,
    supervision,
    tokens,
    transfers,
)
from .schemas import COUNTRY_MARK, AccessCheck, country_schema
from .service import Service

ROUTERS = (
    requests, grants, provisioned, decisions, gateway, alerts, dashboard, tokens, operations,
    fleet, transfers, filings, auth, scim, console, supervision, slack, step_up,
)  # fmt: skip


def create_app(service: Service, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app serving `service`; run it with uvicorn (see `serve`)."""
    app = FastAPI(
        title="DataVisa",
        version=__version__,
        summary="Just-in-time, data-residency-aware access approval, decided by OPA.",
        description=__doc__,
        redoc_url=None,
    )
    app.state.service = service
    app.openapi = partial(_openapi, app, service)  # type: ignore[method-assign]
    install_error_handlers(app)
    app.add_exception_handler(ScimError, scim.scim_error)
    for module in ROUTERS:
        for route in module.router.routes:
            # A /v1 route that names no operation would serve every token: refuse to start.
            public = not isinstance(route, APIRoute) or not route.path.startswith(
                ("/v1/", scim.PREFIX)
            )
            if not public and operation_of(route) is None:
                raise RuntimeError(f"{route.path} declares no API operation (deps.Allowed)")
        app.include_router(module.router)
    # Middleware added last runs first: the body limit, the service's input rules (which
    # the validators of both lanes read), retries by Idempotency-Key, then the fast lanes
    # of the access check and of the transfer check.
    app.add_middleware(
        FastLane,
        path="/v1/transfers/check",
        model=transfers.TransferCheck,
        handler=partial(transfers.fast_transfer_check, service),
        verify=service.quick_principal,
    )
    app.add_middleware(
        FastLane,
        path="/v1/access/check",
        model=AccessCheck,
        handler=partial(decisions.fast_check, service),
        verify=service.quick_principal,
    )
    app.add_middleware(Idempotency, store=service.engine.store)
    app.add_middleware(RulesScope, rules=service.rules)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app


def _openapi(app: FastAPI, service: Service) -> dict[str, Any]:
    """The OpenAPI document, with what the policy bundle the service runs defines (the
    country codes) as enums: a schema-valid request is one the policy understands."""
    if app.openapi_schema is None:
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        document["components"]["schemas"]["Country"] = country_schema(service.rules.countries)
        app.openapi_schema = _countries_referred(document)
    return app.openapi_schema


def _countries_referred(node: Any) -> Any:
    """`node` with every schema marked as a country a reference to the Country enum."""
    if isinstance(node, list):
        return [_countries_referred(item) for item in node]
    if not isinstance(node, dict):
        return node
    if node.get(COUNTRY_MARK):
        kept = {k: v for k, v in node.items() if k not in ("type", COUNTRY_MARK)}
        return {"$ref": "#/components/schemas/Country", **kept}
    return {key: _countries_referred(value) for key, value in node.items()}
