"""SCIM 2.0 as the directory speaks it: the resources' schemas (RFC 7643), their
validation, filters, PATCH operations and the documents a client discovers (RFC 7644).

Nothing here touches the store or decides anything of policy: `clean` turns a client's
User or Group into the attributes the directory keeps (or a `ScimError` naming what is
wrong), `patch` applies a PatchOp to them, `parse_filter` reads the filters Okta and
Entra ID send, and `render` gives a resource back as a client reads it.

Attribute names are case-insensitive (RFC 7643 2.1), so every name is turned into the
schema's spelling first. Attributes the schema does not define are refused, naming
them, rather than dropped: a client that maps an attribute somewhere learns it went
nowhere. Read-only attributes a client echoes back (id, meta, a User's groups) are
ignored on create and replace, refused in a PATCH. A password is accepted and never
kept (Okta may send one).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
RESOURCE_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
MEDIA_TYPE = "application/scim+json"

MAX_STRING = 1024  # characters in one string value
MAX_VALUES = 100  # values of a multi-valued attribute (a Group's members: MAX_MEMBERS)
MAX_MEMBERS = 10_000
MAX_OPERATIONS = 100  # operations in one PATCH
MAX_RESULTS = 200  # resources in one page of a list


class ScimError(Exception):
    """A SCIM error answer: its HTTP status, `scimType` (RFC 7644 3.12) and detail."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.scim_type = status, detail, scim_type

    def body(self) -> dict[str, Any]:
        body = {"schemas": [ERROR], "status": str(self.status), "detail": self.detail}
        return body | ({"scimType": self.scim_type} if self.scim_type else {})


def invalid(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


@dataclass(frozen=True)
class Attr:
    """One attribute of a schema, as RFC 7643 section 2 and 7 describe it."""

    name: str
    type: str = "string"  # string | boolean | complex | reference
    multi: bool = False
    required: bool = False
    sub: tuple[Attr, ...] = ()
    mutability: str = "readWrite"  # readOnly | readWrite | immutable | writeOnly
    returned: str = "default"  # always | never | default
    uniqueness: str = "none"
    case_exact: bool = False
    description: str = ""

    def child(self, name: str) -> Attr | None:
        return next((a for a in self.sub if a.name.lower() == name.lower()), None)

    def definition(self) -> dict[str, Any]:
        """As /Schemas lists it."""
        out: dict[str, Any] = {
            "name": self.name, "type": self.type, "multiValued": self.multi,
            "description": self.description, "required": self.required,
            "caseExact": self.case_exact, "mutability": self.mutability,
            "returned": self.returned, "uniqueness": self.uniqueness,
        }  # fmt: skip
        if self.sub:
            out["subAttributes"] = [a.definition() for a in self.sub]
        if self.type == "reference":
            out["referenceTypes"] = ["User", "Group"]
        return out


def _s(name: str, description: str = "", **kw: Any) -> Attr:
    return Attr(name, description=description, **kw)


_MULTI_SUB = (_s("value"), _s("display"), _s("type"), Attr("primary", "boolean"))
_NAME = (
    _s("formatted"), _s("familyName"), _s("givenName"), _s("middleName"),
    _s("honorificPrefix"), _s("honorificSuffix"),
)  # fmt: skip
_ADDRESS = (
    _s("formatted"), _s("streetAddress"), _s("locality"), _s("region"), _s("postalCode"),
    _s("country"), _s("type"), Attr("primary", "boolean"),
)  # fmt: skip
_MEMBER = (
    _s("value", mutability="immutable"), Attr("$ref", "reference", mutability="immutable"),
    _s("display", mutability="readOnly"), _s("type", mutability="immutable"),
)  # fmt: skip


@dataclass(frozen=True)
class Schema:
    """A resource's schema, or a schema extension of it."""

    id: str
    name: str
    attributes: tuple[Attr, ...]
    description: str = ""

    def attr(self, name: str) -> Attr | None:
        return next((a for a in self.attributes if a.name.lower() == name.lower()), None)

    def definition(self, location: str) -> dict[str, Any]:
        return {
            "schemas": [SCHEMA_SCHEMA], "id": self.id, "name": self.name,
            "description": self.description,
            "attributes": [a.definition() for a in self.attributes],
            "meta": {"resourceType": "Schema", "location": f"{location}/Schemas/{self.id}"},
        }  # fmt: skip


USER = Schema(
    USER_SCHEMA,
    "User",
    (
        Attr("userName", required=True, uniqueness="server",
             description="The person's subject in DataVisa: what their token's subject "
                         "claim says and what policy names them by"),
        Attr("name", "complex", sub=_NAME),
        _s("displayName"), _s("nickName"), _s("profileUrl"), _s("title"), _s("userType"),
        _s("preferredLanguage"), _s("locale"), _s("timezone"),
        Attr("active", "boolean", description="false deprovisions the person: their "
                                              "pending requests are cancelled and grants revoked"),
        Attr("password", mutability="writeOnly", returned="never",
             description="Accepted and never kept"),
        Attr("emails", "complex", multi=True, sub=_MULTI_SUB),
        Attr("phoneNumbers", "complex", multi=True, sub=_MULTI_SUB),
        Attr("ims", "complex", multi=True, sub=_MULTI_SUB),
        Attr("photos", "complex", multi=True, sub=_MULTI_SUB),
        Attr("addresses", "complex", multi=True, sub=_ADDRESS),
        Attr("groups", "complex", multi=True, mutability="readOnly", sub=(
            _s("value", mutability="readOnly"), Attr("$ref", "reference", mutability="readOnly"),
            _s("display", mutability="readOnly"), _s("type", mutability="readOnly"),
        )),
    ),
    "User Account",
)  # fmt: skip
ENTERPRISE_USER = Schema(
    ENTERPRISE,
    "EnterpriseUser",
    (
        _s("employeeNumber"), _s("costCenter"),
        _s("organization", "The employing legal entity: an entity id of the policy bundle"),
        _s("division"), _s("department", "The person's team in policy"),
        Attr("manager", "complex", sub=(
            _s("value"), Attr("$ref", "reference"), _s("displayName", mutability="readOnly"),
        )),
    ),
    "Enterprise User",
)  # fmt: skip
GROUP = Schema(
    GROUP_SCHEMA,
    "Group",
    (
        Attr("displayName", required=True, uniqueness="server",
             description="The group's name: what policy data (idp_groups) keys it by"),
        Attr("members", "complex", multi=True, sub=_MEMBER),
    ),
    "Group",
)  # fmt: skip
COMMON = (
    Attr("id", mutability="readOnly", returned="always", uniqueness="server", case_exact=True),
    Attr("externalId", case_exact=True),
    Attr("meta", "complex", mutability="readOnly"),
)


@dataclass(frozen=True)
class ResourceType:
    name: str  # User | Group
    endpoint: str  # /Users | /Groups
    schema: Schema
    extensions: tuple[Schema, ...] = ()
    # Attributes a filter may compare (eq), as the filter names them.
    filterable: tuple[str, ...] = ()

    def extension(self, urn: str) -> Schema | None:
        return next((s for s in self.extensions if s.id.lower() == urn.lower()), None)

    def definition(self, location: str) -> dict[str, Any]:
        return {
            "schemas": [RESOURCE_TYPE_SCHEMA], "id": self.name, "name": self.name,
            "endpoint": self.endpoint, "description": self.schema.description,
            "schema": self.schema.id,
            "schemaExtensions": [{"schema": s.id, "required": False} for s in self.extensions],
            "meta": {"resourceType": "ResourceType",
                     "location": f"{location}/ResourceTypes/{self.name}"},
        }  # fmt: skip


USERS = ResourceType("User", "/Users", USER, (ENTERPRISE_USER,), ("userName", "externalId", "id"))
GROUPS = ResourceType("Group", "/Groups", GROUP, (), ("displayName", "externalId", "id"))
SCHEMAS = (USER, ENTERPRISE_USER, GROUP)


# -- validation -------------------------------------------------------------------------


def _attr_of(kind: ResourceType, name: str) -> tuple[str | None, Attr] | None:
    """(extension URN or None, attribute) that `name` names on `kind`."""
    if (found := kind.schema.attr(name)) is not None:
        return None, found
    common = next((a for a in COMMON if a.name.lower() == name.lower()), None)
    return (None, common) if common is not None else None


def _value(attr: Attr, value: Any, where: str, lenient_bool: bool = False) -> Any:
    """`value` checked against `attr` (one value of it, when multi-valued)."""
    if attr.type in ("string", "reference"):
        if not isinstance(value, str):
            raise invalid(f"{where} must be a string")
        if len(value) > MAX_STRING:
            raise invalid(f"{where} is longer than {MAX_STRING} characters")
        return value
    if attr.type == "boolean":
        # Entra ID sends booleans in a PATCH as "True" / "False".
        if lenient_bool and isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise invalid(f"{where} must be true or false")
        return value
    if not isinstance(value, dict):
        raise invalid(f"{where} must be an object")
    out = {}
    for key, sub_value in value.items():
        sub = attr.child(key)
        if sub is None:
            raise invalid(f"{where}.{key} is not an attribute of {attr.name}", "invalidPath")
        if sub_value is not None:
            out[sub.name] = _value(sub, sub_value, f"{where}.{sub.name}", lenient_bool)
    return out


def _values(attr: Attr, value: Any, where: str, lenient_bool: bool = False) -> Any:
    if not attr.multi:
        return _value(attr, value, where, lenient_bool)
    if not isinstance(value, list):
        raise invalid(f"{where} must be a list")
    limit = MAX_MEMBERS if attr.name == "members" else MAX_VALUES
    if len(value) > limit:
        raise invalid(f"{where} holds more than {limit} values")
    return [_value(attr, v, f"{where}[{i}]", lenient_bool) for i, v in enumerate(value)]


def clean(kind: ResourceType, body: Any, lenient_bool: bool = False) -> dict[str, Any]:
    """The attributes of `body`, a client's whole User or Group, as the directory keeps
    them (schema spellings, extension attributes under the extension's URN); ScimError
    for anything the schema does not allow, naming it."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas", body.get("Schemas"))
    if schemas is not None and (
        not isinstance(schemas, list) or kind.schema.id not in map(str, schemas)
    ):
        raise invalid(f"schemas must list {kind.schema.id}", "invalidSyntax")
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key.lower() == "schemas" or value is None:
            continue
        if (ext := kind.extension(key)) is not None:
            out[ext.id] = _extension(ext, value, lenient_bool)
            continue
        found = _attr_of(kind, key)
        if found is None:
            raise invalid(f"{key} is not an attribute of a {kind.name}", "invalidPath")
        attr = found[1]
        if attr.mutability == "readOnly":
            continue  # id, meta, a User's groups: what the server says, echoed back
        if attr.mutability == "writeOnly":
            _value(attr, value, attr.name)
            continue  # a password: checked, never kept
        out[attr.name] = _values(attr, value, attr.name, lenient_bool)
    for attr in kind.schema.attributes:
        if attr.required and not (isinstance(out.get(attr.name), str) and out[attr.name].strip()):
            raise invalid(f"{attr.name} is required", "invalidValue")
    return out


def _extension(ext: Schema, value: Any, lenient_bool: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid(f"{ext.id} must be an object")
    out = {}
    for key, sub_value in value.items():
        attr = ext.attr(key)
        if attr is None:
            raise invalid(f"{ext.id}:{key} is not an attribute of {ext.name}", "invalidPath")
        if sub_value is not None:
            out[attr.name] = _values(attr, sub_value, f"{ext.id}:{attr.name}", lenient_bool)
    return out


# -- filters ----------------------------------------------------------------------------

_TERM = re.compile(
    r'\s*(?P<attr>[A-Za-z][\w$.:-]*)\s+(?P<op>[A-Za-z]{2})\s+'
    r'(?P<value>"(?:[^"\\]|\\.)*"|true|false|null|-?\d+(?:\.\d+)?)\s*',
    re.IGNORECASE,
)  # fmt: skip
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)


@dataclass(frozen=True)
class Filter:
    """`attr eq value` terms joined by `and`: what Okta and Entra ID send to find a
    resource before they create it."""

    terms: tuple[tuple[str, Any], ...] = field(default_factory=tuple)

    def matches(self, resource: dict[str, Any]) -> bool:
        """Whether `resource` (its attributes, with its `id`) passes every term."""
        return all(_equal(name, resource.get(name), value) for name, value in self.terms)


_CASE_EXACT = {"id", "externalId"}  # RFC 7643: the others compare case-insensitively


def _equal(name: str, held: Any, wanted: Any) -> bool:
    if isinstance(held, str) and isinstance(wanted, str) and name not in _CASE_EXACT:
        return held.lower() == wanted.lower()
    return held == wanted


def parse_filter(kind: ResourceType, text: str | None) -> Filter:
    """The filter `text` on `kind`; ScimError invalidFilter naming what it cannot read.
    Only `eq` on the attributes `kind.filterable` names, joined by `and`."""
    if text is None or not text.strip():
        return Filter()
    terms = []
    for part in _AND.split(text.strip()):
        match = _TERM.fullmatch(part)
        if match is None:
            at = part.strip()[:80]
            raise ScimError(400, f"cannot read the filter at {at!r}", "invalidFilter")
        name, op, raw = match["attr"], match["op"].lower(), match["value"]
        canonical = next((a for a in kind.filterable if a.lower() == name.lower()), None)
        if canonical is None:
            raise ScimError(
                400,
                f"a filter on {kind.name}s may compare {', '.join(kind.filterable)}, not {name}",
                "invalidFilter",
            )
        if op != "eq":
            raise ScimError(400, f"the filter operator {op} is not supported (only eq)",
                            "invalidFilter")  # fmt: skip
        terms.append((canonical, json.loads(raw)))
    return Filter(tuple(terms))


# -- PATCH ------------------------------------------------------------------------------

_PATH = re.compile(
    r"(?:(?P<urn>urn:[\w.:-]+):)?(?P<attr>[A-Za-z$][\w$-]*)"
    r'(?:\[(?P<filter>[^\]]*)\])?(?:\.(?P<sub>[A-Za-z$][\w$-]*))?'
)  # fmt: skip


@dataclass(frozen=True)
class _Path:
    urn: str | None  # an extension's attribute
    attr: Attr
    where: tuple[str, Any] | None  # a multi-valued attribute's [sub eq value]
    sub: Attr | None


def _path(kind: ResourceType, text: str) -> _Path:
    """A PATCH path (RFC 7644 3.5.2): attr, attr.sub, attr[sub eq "v"], attr[...].sub, or
    an extension's urn:...:attr."""
    match = _PATH.fullmatch(text.strip())
    if match is None:
        raise invalid(f"cannot read the path {text[:120]!r}", "invalidPath")
    urn, name = match["urn"], match["attr"]
    schema: Schema | None = kind.schema
    if urn is not None and urn.lower() != kind.schema.id.lower():
        schema = kind.extension(urn)
        if schema is None:
            raise invalid(f"{urn} is not a schema of a {kind.name}", "invalidPath")
        urn = schema.id
    else:
        urn = None
    found = schema.attr(name) if schema is not None else None
    if found is None and urn is None and (common := _attr_of(kind, name)) is not None:
        found = common[1]
    if found is None:
        raise invalid(f"{text[:120]} is not an attribute of a {kind.name}", "invalidPath")
    if found.mutability == "readOnly":
        raise invalid(f"{found.name} is read-only", "mutability")
    where = None
    if match["filter"] is not None:
        if not found.multi:
            raise invalid(f"{found.name} is not multi-valued: it takes no filter", "invalidPath")
        sub_filter = parse_filter(
            ResourceType(kind.name, kind.endpoint, kind.schema,
                         filterable=tuple(a.name for a in found.sub)),
            match["filter"],
        )  # fmt: skip
        if len(sub_filter.terms) != 1:
            raise invalid(f"{text[:120]}: one [sub eq value] term, please", "invalidPath")
        where = sub_filter.terms[0]
    sub = None
    if match["sub"] is not None:
        sub = found.child(match["sub"])
        if sub is None:
            raise invalid(f"{match['sub']} is not an attribute of {found.name}", "invalidPath")
    return _Path(urn, found, where, sub)


def patch(kind: ResourceType, resource: dict[str, Any], body: Any) -> dict[str, Any]:
    """`resource` (as `clean` gives it) with the PatchOp `body` applied, all or nothing,
    and checked again as a whole."""
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object", "invalidSyntax")
    schemas = body.get("schemas")
    if not isinstance(schemas, list) or PATCH_OP not in schemas:
        raise invalid(f"schemas must list {PATCH_OP}", "invalidSyntax")
    operations = body.get("Operations", body.get("operations"))
    if not isinstance(operations, list) or not operations:
        raise invalid("Operations must be a list of at least one operation", "invalidSyntax")
    if len(operations) > MAX_OPERATIONS:
        raise invalid(f"at most {MAX_OPERATIONS} operations in one PATCH", "tooMany")
    out = json.loads(json.dumps(resource))
    for i, operation in enumerate(operations):
        if not isinstance(operation, dict):
            raise invalid(f"Operations[{i}] must be an object", "invalidSyntax")
        op = operation.get("op")
        if not isinstance(op, str) or op.lower() not in ("add", "remove", "replace"):
            raise invalid(f"Operations[{i}].op must be add, remove or replace", "invalidSyntax")
        path, value = operation.get("path"), operation.get("value")
        if path is not None and not isinstance(path, str):
            raise invalid(f"Operations[{i}].path must be a string", "invalidPath")
        _apply(kind, out, op.lower(), path, value, f"Operations[{i}]")
    return clean(kind, out)


def _apply(
    kind: ResourceType, out: dict[str, Any], op: str, path: str | None, value: Any, where: str
) -> None:
    if path is None or not path.strip():
        if op == "remove":
            raise invalid(f"{where}: a remove needs a path", "noTarget")
        if not isinstance(value, dict):
            raise invalid(f"{where}.value must be an object of attributes", "invalidValue")
        for key, sub_value in value.items():
            if (ext := kind.extension(key)) is not None and isinstance(sub_value, dict):
                for name, v in sub_value.items():
                    _apply(kind, out, op, f"{ext.id}:{name}", v, where)
            else:
                _apply(kind, out, op, key, sub_value, where)
        return
    target = _path(kind, path)
    holder = out.setdefault(target.urn, {}) if target.urn else out
    attr, name = target.attr, target.attr.name
    if op == "remove":
        _remove(holder, target, value)
    elif target.where is not None:
        _set_matching(holder, target, _checked(target, value, where))
    elif target.sub is not None:
        parent = holder.get(name)
        if attr.multi:
            raise invalid(f"{where}: {name}.{target.sub.name} needs a [filter]", "invalidPath")
        holder[name] = (parent if isinstance(parent, dict) else {}) | {
            target.sub.name: _checked(target, value, where)
        }
    elif attr.multi:
        values = _values(attr, value if isinstance(value, list) else [value], f"{where}.value",
                         lenient_bool=True)  # fmt: skip
        held = (holder.get(name) or []) if op == "add" else []
        holder[name] = _merged(held, values)
    elif attr.type == "complex" and op == "add" and isinstance(holder.get(name), dict):
        holder[name] = holder[name] | _value(attr, value, f"{where}.value", lenient_bool=True)
    else:
        holder[name] = _value(attr, value, f"{where}.value", lenient_bool=True)


def _checked(target: _Path, value: Any, where: str) -> Any:
    attr = target.sub or target.attr
    if target.sub is None and target.attr.multi:
        return _value(target.attr, value, f"{where}.value", lenient_bool=True)
    return _value(attr, value, f"{where}.value", lenient_bool=True)


def _merged(held: list[Any], values: list[Any]) -> list[Any]:
    """`held` with `values` added; one with the same `value` as a held one replaces it."""
    out = list(held)
    for v in values:
        key = v.get("value") if isinstance(v, dict) else v
        same = [i for i, h in enumerate(out) if isinstance(h, dict) and h.get("value") == key]
        if key is not None and same:
            out[same[0]] = out[same[0]] | v
        else:
            out.append(v)
    return out


def _matches(element: Any, where: tuple[str, Any]) -> bool:
    name, wanted = where
    held = element.get(name) if isinstance(element, dict) else None
    if isinstance(held, str) and isinstance(wanted, str):
        return held.lower() == wanted.lower()
    return held == wanted


def _set_matching(holder: dict[str, Any], target: _Path, value: Any) -> None:
    """attr[sub eq v] or attr[sub eq v].sub set to `value`; with no element matching, one
    is made (Entra ID adds a work e-mail this way)."""
    name, where = target.attr.name, target.where
    assert where is not None
    elements = holder.get(name) or []
    found = [e for e in elements if _matches(e, where)]
    if not found:
        found = [{where[0]: where[1]}]
        elements = [*elements, found[0]]
    for element in found:
        if target.sub is not None:
            element[target.sub.name] = value
        elif isinstance(value, dict):
            element.update(value)
    holder[name] = elements


def _remove(holder: dict[str, Any], target: _Path, value: Any) -> None:
    name = target.attr.name
    if target.where is not None:
        elements = holder.get(name) or []
        if target.sub is not None:
            for element in elements:
                if _matches(element, target.where):
                    element.pop(target.sub.name, None)
        else:
            holder[name] = [e for e in elements if not _matches(e, target.where)]
    elif target.sub is not None:
        if isinstance(holder.get(name), dict):
            holder[name].pop(target.sub.name, None)
    elif target.attr.multi and isinstance(value, list):
        # Entra ID removes members as {"path": "members", "value": [{"value": id}]}.
        gone = {v.get("value") for v in value if isinstance(v, dict)}
        holder[name] = [e for e in holder.get(name) or [] if e.get("value") not in gone]
    else:
        holder.pop(name, None)


# -- what a client reads ----------------------------------------------------------------


def render(
    kind: ResourceType,
    id: str,
    attributes: dict[str, Any],
    meta: dict[str, Any],
    pick: Callable[[str], bool] = lambda _: True,
) -> dict[str, Any]:
    """The resource as a client reads it; `pick(name)` keeps an attribute (the
    attributes / excludedAttributes parameters). id, schemas and meta always stay."""
    schemas = [kind.schema.id, *(e.id for e in kind.extensions if e.id in attributes)]
    body: dict[str, Any] = {"schemas": schemas, "id": id}
    body |= {k: v for k, v in attributes.items() if pick(k)}
    return body | {"meta": meta}


def picker(attributes: str | None, excluded: str | None) -> Callable[[str], bool]:
    """What `render` keeps for the attributes / excludedAttributes query parameters."""

    def names(text: str | None) -> set[str]:
        return {n.strip().lower() for n in (text or "").split(",") if n.strip()}

    wanted, unwanted = names(attributes), names(excluded)
    if wanted:
        return lambda name: name.lower() in wanted
    return lambda name: name.lower() not in unwanted


def service_provider_config(location: str, documentation: str) -> dict[str, Any]:
    return {
        "schemas": [CONFIG_SCHEMA],
        "documentationUri": documentation,
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [{
            "type": "oauthbearertoken", "name": "OAuth Bearer Token", "primary": True,
            "description": "A DataVisa token of role scim: datavisa token issue NAME --role scim",
            "specUri": "https://www.rfc-editor.org/rfc/rfc6750",
        }],
        "meta": {"resourceType": "ServiceProviderConfig",
                 "location": f"{location}/ServiceProviderConfig"},
    }  # fmt: skip


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST], "totalResults": total, "startIndex": start,
        "itemsPerPage": len(resources), "Resources": resources,
    }  # fmt: skip
