"""Operations: readiness for load balancers, enforcement for monitors, and counters for
Prometheus (no token).

`/health` follows OPA's own: plain, it says whether this engine is ready to serve (its
store and its own OPA usable), the check a load balancer routes by; a query parameter
adds a condition to the same check, as OPA's `?bundles=true` and `?plugins=true` do:
`?enforcement=true` is 503 too while any system (an engine's OPA, a fleet OPA, a
database) still holds a removed grant. A lagging sidecar so never takes every engine out
of rotation, and a monitor still sees the removal held back: the body names it either way.
With `?enforcement=true` the body's `enforcement.reach` also lists what grants' database
roles reach beyond their approved database (PUBLIC's CONNECT on another database, a
target's tables granted to PUBLIC): reported, not a 503 (docs/postgresql.md).
"""

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, Response

from ...model.errors import StorageUnavailable
from ..deps import Served
from ..errors import JsonRoute
from ..metrics import CONTENT_TYPE
from .fleet import fleet_dict

router = APIRouter(route_class=JsonRoute)


@router.get("/health", tags=["operations"])
def health(
    service: Served,
    enforcement: Annotated[
        bool,
        Query(description="503 also while a removed grant is still held by any system"),
    ] = False,
) -> JSONResponse:
    """Ready (200) when OPA answers with its bundle active and holds the grants and the
    store is usable; `enforcement` says whether every removal is in force everywhere, and
    with `?enforcement=true` a removal held back makes the answer 503 too."""
    problems = service.problems()
    held_back = service.enforcement_problems()
    body = {
        "status": "unready" if problems else "ready",
        "problems": problems + (held_back if enforcement else []),
        "revision": service.engine.revision,
        "enforcement": {"status": "held_back" if held_back else "enforced", "problems": held_back},
    }
    if enforcement:  # asks the data systems: for monitors, not every load balancer probe
        body["enforcement"]["reach"] = service.reach()
    if service.identity is not None:  # static tokens work on; new sign-ins do not
        problem = service.identity.unavailable()
        body["identity"] = {
            "issuer": service.identity.config.issuer,
            "status": "unavailable" if problem else "available",
            **({"problem": problem} if problem else {}),
        }
    if service.fleet.members:  # each OPA of the fleet, its revision lag, stale or not
        with contextlib.suppress(StorageUnavailable):  # a database gone: problems say so
            body["fleet"] = fleet_dict(service)
    return JSONResponse(body, status_code=503 if body["problems"] else 200)


@router.get("/metrics", tags=["operations"], response_class=Response)
def prometheus(
    service: Served,
) -> Response:
    """Counters and gauges in the Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
