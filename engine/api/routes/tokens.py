"""Tokens: who the bearer token stands for."""

from typing import Annotated, Any

from fastapi import APIRouter

from ..deps import V1, Allowed, Served
from ..errors import JsonRoute
from ..schemas import Whoami
from ..tokens import Principal

router = APIRouter(route_class=JsonRoute)


@router.get("/v1/whoami", response_model=Whoami, tags=["tokens"], **V1)
def whoami(service: Served, actor: Annotated[Principal, Allowed("tokens.whoami")]) -> Any:
    """The subject and role the bearer token stands for."""
    return {"subject": actor.subject, "role": actor.role}
