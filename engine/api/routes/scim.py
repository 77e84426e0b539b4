"""SCIM 2.0 (RFC 7644) at /scim/v2: an identity provider (Okta, Entra ID) pushes its
people and groups into the directory (engine/directory).

Every call needs a token of role `scim` (`datavisa token issue okta-scim --role scim`);
answers are `application/scim+json`, errors SCIM's own `Error` message with the HTTP
status and `scimType`, authentication and authorization failures included. This module
only parses and answers: the directory stores, audits, deprovisions and tells policy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ...directory import scim
from ...directory.directory import Directory, Stored
from ...directory.scim import GROUPS, MEDIA_TYPE, SCHEMAS, USERS, ResourceType, ScimError
from ...model import bounded
from ...model.durations import rfc3339
from ..deps import Authorize, Served, _bearer, authenticate, authorize
from ..errors import ApiError, JsonRoute
from ..schemas import ErrorOut
from ..tokens import Principal

PREFIX = "/scim/v2"
DOCS = "https://github.com/datavisa/datavisa/blob/main/docs/identity.md"
router = APIRouter(prefix=PREFIX, route_class=JsonRoute, tags=["scim"])


class ScimErrorOut(BaseModel):
    """A SCIM Error message (RFC 7644 3.12)."""

    schemas: list[str]
    status: str = Field(description="The HTTP status, as a string")
    scimType: str | None = Field(None, description="invalidFilter, uniqueness, invalidPath ...")
    detail: str


_ERROR = {
    "model": ScimErrorOut,
    "description": "A SCIM Error message (RFC 7644 3.12): status, scimType, detail",
    "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/ScimErrorOut"}}},
}
_ANSWERS: dict[int | str, dict[str, Any]] = {
    400: _ERROR | {"description": "Bad input (scimType says which kind), nothing changed"},
    401: _ERROR | {"description": "No bearer token, or an unknown or revoked one"},
    403: _ERROR | {"description": "The token's role is not scim"},
    404: _ERROR | {"description": "No such resource"},
    409: _ERROR | {"description": "userName or displayName taken (scimType uniqueness)"},
    413: {"model": ErrorOut, "description": "The body is larger than the server accepts"},
    422: {"model": ErrorOut, "description": "A query parameter has the wrong type"},
    503: _ERROR | {"description": "OPA cannot answer, or the permissions are not loaded"},
}
_RESOURCE = {
    "description": "A SCIM resource",
    "content": {MEDIA_TYPE: {"schema": {"type": "object"}}},
}
_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            MEDIA_TYPE: {"schema": {"type": "object", "maxProperties": 64}},
            "application/json": {"schema": {"type": "object", "maxProperties": 64}},
        },
    }
}
ResourceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
SchemaId = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[\w:.-]+$")]
FilterText = Annotated[
    str | None, Query(alias="filter", max_length=1024, examples=['userName eq "alice"'])
]
Attributes = Annotated[str | None, Query(alias="attributes", max_length=1024)]
Excluded = Annotated[str | None, Query(alias="excludedAttributes", max_length=1024)]
StartIndex = Annotated[int, Query(alias="startIndex", ge=-(2**31), le=2**31)]
Count = Annotated[int, Query(alias="count", ge=-(2**31), le=2**31)]


class _ScimAuthorize(Authorize):
    """`Allowed` for SCIM: a refusal is a SCIM Error."""

    async def __call__(  # type: ignore[override]
        self,
        service: Served,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        try:
            principal = await authenticate(service, request, credentials)
            authorize(service, principal, self.operation)
        except ApiError as e:
            raise ScimError(e.status, str(e)) from None
        return principal


Reader = Annotated[Principal, Depends(_ScimAuthorize("scim.read"))]
Writer = Annotated[Principal, Depends(_ScimAuthorize("scim.write"))]


def scim_error(_request: Request, e: Exception) -> JSONResponse:
    """The answer to a ScimError (installed by the app)."""
    assert isinstance(e, ScimError)
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return JSONResponse(e.body(), status_code=e.status, media_type=MEDIA_TYPE, headers=headers)


def _answer(body: Any, status: int = 200, location: str | None = None) -> JSONResponse:
    headers = {"Location": location} if location else None
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + PREFIX


def _directory(service: Any) -> Directory:
    return service.directory


async def _body(request: Request) -> Any:
    try:
        return bounded.loads(await request.body())
    except bounded.TooDeep as e:
        raise scim.invalid(f"the body is nested too deeply at {e.path}", "invalidSyntax") from None
    except ValueError:
        raise scim.invalid("the body is not valid JSON", "invalidSyntax") from None


def _rendered(
    request: Request, kind: ResourceType, stored: Stored, pick: Callable[[str], bool] | None = None
) -> dict[str, Any]:
    location = f"{_base(request)}{kind.endpoint}/{stored.id}"
    meta = {
        "resourceType": kind.name, "created": rfc3339(stored.created_at),
        "lastModified": rfc3339(stored.updated_at), "location": location,
        "version": f'W/"{stored.version}"',
    }  # fmt: skip
    return scim.render(kind, stored.id, stored.attributes, meta, pick or (lambda _: True))


def _page(start: int, count: int) -> tuple[int, int]:
    """RFC 7644 3.4.2.4: a startIndex below 1 is 1, a negative count 0."""
    return max(1, start), min(max(0, count), scim.MAX_RESULTS)


# -- discovery ------------------------------------------------------------------------


@router.get("/ServiceProviderConfig", response_class=JSONResponse,
            responses={200: _RESOURCE, **_ANSWERS})  # fmt: skip
def service_provider_config(request: Request, _: Reader) -> Any:
    """What this SCIM service supports (RFC 7643 5)."""
    return _answer(scim.service_provider_config(_base(request), DOCS))


@router.get("/ResourceTypes", response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS})
def resource_types(request: Request, _: Reader) -> Any:
    """The resource types: User (with the enterprise extension) and Group."""
    types = [t.definition(_base(request)) for t in (USERS, GROUPS)]
    return _answer(scim.list_response(types, len(types), 1))


@router.get("/ResourceTypes/{name}", response_class=JSONResponse,
            responses={200: _RESOURCE, **_ANSWERS})  # fmt: skip
def resource_type(request: Request, _: Reader, name: SchemaId) -> Any:
    """One resource type."""
    found = next((t for t in (USERS, GROUPS) if t.name == name), None)
    if found is None:
        raise ScimError(404, f"no resource type {name!r}")
    return _answer(found.definition(_base(request)))


@router.get("/Schemas", response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS})
def schemas(request: Request, _: Reader) -> Any:
    """The schemas of the resources, with every attribute this service keeps."""
    found = [s.definition(_base(request)) for s in SCHEMAS]
    return _answer(scim.list_response(found, len(found), 1))


@router.get("/Schemas/{schema_id}", response_class=JSONResponse,
            responses={200: _RESOURCE, **_ANSWERS})  # fmt: skip
def schema(request: Request, _: Reader, schema_id: SchemaId) -> Any:
    """One schema, by its URN."""
    found = next((s for s in SCHEMAS if s.id == schema_id), None)
    if found is None:
        raise ScimError(404, f"no schema {schema_id!r}")
    return _answer(found.definition(_base(request)))


# -- Users and Groups -------------------------------------------------------------------


def _resources(kind: ResourceType, verbs: dict[str, Any]) -> None:
    """The routes of one resource type: list, create, get, replace, patch, delete."""
    endpoint, name = kind.endpoint, kind.name
    one = f"{endpoint}/{{resource_id}}"

    @router.get(endpoint, response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS},
                name=f"list_{name.lower()}s", summary=f"List {name}s")  # fmt: skip
    async def listed(
        request: Request, service: Served, _: Reader, filter_: FilterText = None,
        start_index: StartIndex = 1, count: Count = scim.MAX_RESULTS,
        attributes: Attributes = None, excluded: Excluded = None,
    ) -> Any:  # fmt: skip
        """`filter=userName eq "…"` (Users) or `displayName eq "…"` (Groups), and
        `externalId`, `id`; paged by startIndex and count."""
        where = scim.parse_filter(kind, filter_)
        start, size = _page(start_index, count)
        pick = scim.picker(attributes, excluded)
        found, total = await run_in_threadpool(verbs["list"], _directory(service), where,
                                               start, size, pick)  # fmt: skip
        page = [_rendered(request, kind, s, pick) for s in found]
        return _answer(scim.list_response(page, total, start))

    @router.post(endpoint, response_class=JSONResponse, status_code=201,
                 responses={201: _RESOURCE, **_ANSWERS}, openapi_extra=_BODY,
                 name=f"create_{name.lower()}", summary=f"Create a {name}")  # fmt: skip
    async def created(request: Request, service: Served, actor: Writer) -> Any:
        body = await _body(request)
        stored = await run_in_threadpool(verbs["create"], _directory(service), body,
                                         actor.subject)  # fmt: skip
        rendered = _rendered(request, kind, stored)
        return _answer(rendered, 201, rendered["meta"]["location"])

    @router.get(one, response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS},
                name=f"get_{name.lower()}", summary=f"A {name}")  # fmt: skip
    async def got(
        request: Request, service: Served, _: Reader, resource_id: ResourceId,
        attributes: Attributes = None, excluded: Excluded = None,
    ) -> Any:  # fmt: skip
        pick = scim.picker(attributes, excluded)
        stored = await run_in_threadpool(verbs["get"], _directory(service), resource_id, pick)
        return _answer(_rendered(request, kind, stored, pick))

    @router.put(one, response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS},
                openapi_extra=_BODY, name=f"replace_{name.lower()}",
                summary=f"Replace a {name}")  # fmt: skip
    async def replaced(
        request: Request, service: Served, actor: Writer, resource_id: ResourceId
    ) -> Any:
        body = await _body(request)
        stored = await run_in_threadpool(verbs["replace"], _directory(service), resource_id,
                                         body, actor.subject)  # fmt: skip
        return _answer(_rendered(request, kind, stored))

    @router.patch(one, response_class=JSONResponse, responses={200: _RESOURCE, **_ANSWERS},
                  openapi_extra=_BODY, name=f"patch_{name.lower()}",
                  summary=f"Change a {name} (PatchOp: add, replace, remove)")  # fmt: skip
    async def patched(
        request: Request, service: Served, actor: Writer, resource_id: ResourceId
    ) -> Any:
        body = await _body(request)
        stored = await run_in_threadpool(verbs["patch"], _directory(service), resource_id,
                                         body, actor.subject)  # fmt: skip
        return _answer(_rendered(request, kind, stored))

    @router.delete(one, status_code=204, responses={204: {"description": "Deleted"}, **_ANSWERS},
                   name=f"delete_{name.lower()}", summary=f"Delete a {name}")  # fmt: skip
    async def deleted(service: Served, actor: Writer, resource_id: ResourceId) -> Response:
        await run_in_threadpool(verbs["delete"], _directory(service), resource_id,
                                actor.subject)  # fmt: skip
        return Response(status_code=204)


_resources(USERS, {
    "list": lambda d, where, start, size, _pick: d.users(where, start, size),
    "create": Directory.create_user, "get": lambda d, id, _pick: d.user(id),
    "replace": Directory.replace_user, "patch": Directory.patch_user,
    "delete": Directory.delete_user,
})  # fmt: skip
_resources(GROUPS, {
    "list": lambda d, where, start, size, pick: d.groups(where, start, size, pick("members")),
    "create": Directory.create_group, "get": lambda d, id, pick: d.group(id, pick("members")),
    "replace": Directory.replace_group, "patch": Directory.patch_group,
    "delete": Directory.delete_group,
})  # fmt: skip
