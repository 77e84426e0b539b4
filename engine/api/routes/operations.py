"""Operations: readiness for load balancers and counters for Prometheus (no token)."""

import contextlib

from fastapi import APIRouter
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
) -> JSONResponse:
    """Ready (200) only when OPA answers with its bundle active and holds the grants."""
    problems = service.problems()
    body = {
        "status": "unready" if problems else "ready",
        "problems": problems,
        "revision": service.engine.revision,
    }
    if service.fleet.members:  # each OPA of the fleet, its revision lag, stale or not
        with contextlib.suppress(StorageUnavailable):  # a database gone: problems say so
            body["fleet"] = fleet_dict(service)
    return JSONResponse(body, status_code=503 if problems else 200)


@router.get("/metrics", tags=["operations"], response_class=Response)
def prometheus(
    service: Served,
) -> Response:
    """Counters and gauges in the Prometheus text format."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
