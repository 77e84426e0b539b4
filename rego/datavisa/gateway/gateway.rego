# METADATA
# title: Gateway routes
# description: |
#   Which resource and action a request a gateway asks about means (nginx auth_request,
#   Caddy forward_auth, Envoy ext_authz, Traefik ForwardAuth), and whether the request is
#   fit to be judged at all. The routes are bundle data (data.datavisa.routes, routes.yaml):
#   the first route whose host and path prefix match names the resource, and its methods map
#   the HTTP method to an action. When this allows, the engine asks datavisa.access about
#   that resource and action, with the method, host and path as the check's context; when it
#   denies, this decision is the one recorded.
#
#   Input: {subject, location, context: {method, host, path, query, client_ip},
#   faults: [code, ...]}: the context is the access check's, so the same decision-log
#   mask applies to both (the query string and client address are masked). Faults are
#   what the engine found wrong with the request's headers before asking: a header larger
#   than it reads, an identity header without the gateway's credential, a country header
#   that names no country.
#   Output: decision = {allow, reasons: [{code, message}], route, resource, action (when a
#   route matched)}
package datavisa.gateway

default _routes := []

_routes := data.datavisa.routes

_request := object.get(input, "context", {})

_host := lower(split(object.get(_request, "host", ""), ":")[0])

_path := object.get(_request, "path", "")

_method := upper(object.get(_request, "method", ""))

_host_matches(route) if "*" in route.hosts

_host_matches(route) if _host in route.hosts

_path_matches(route) if _path == route.prefix

_path_matches(route) if {
	endswith(route.prefix, "/")
	startswith(_path, route.prefix)
}

_path_matches(route) if startswith(_path, concat("", [route.prefix, "/"]))

_matching := [route | some route in _routes; _host_matches(route); _path_matches(route)]

# METADATA
# title: Route
# description: The first route matching the host and path, if any.
route := _matching[0] if count(_matching) > 0

# A dot segment or an encoded slash, dot or backslash lets a path name another route's
# resource once the upstream decodes it: such a path is never matched.
_uncanonical if {
	some segment in split(_path, "/")
	segment in {".", ".."}
}

_uncanonical if regex.match(`(?i)%(2f|2e|5c)|\\`, _path)

_fault_messages := {
	"header_too_large": "a header the decision reads is larger than the engine accepts",
	"identity_without_credential": "an identity header came without the gateway's service credential",
	"country_header_invalid": "the trusted country header names no known ISO 3166-1 country",
	"partial_body": "the gateway sent a truncated body (x-envoy-auth-partial-body), so the request is not judged",
}

# METADATA
# title: Allow
# description: True when a route maps the request and nothing is wrong with it.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the request cannot be judged as an access, as {code, message}.
deny contains {"code": code, "message": msg} if {
	some code in object.get(input, "faults", [])
	msg := object.get(_fault_messages, code, sprintf("the request is malformed (%v)", [code]))
}

deny contains {"code": "path_not_canonical", "message": msg} if {
	_uncanonical
	msg := sprintf("the path %q has dot segments or encoded separators", [_path])
}

deny contains {"code": "no_route", "message": msg} if {
	not _uncanonical
	not route
	msg := sprintf("no gateway route matches host %q and path %q", [_host, _path])
}

deny contains {"code": "method_not_routed", "message": msg} if {
	not _uncanonical
	not route.methods[_method]
	msg := sprintf("route %s maps no action to method %s", [route.name, _method])
}

_mapped := {"route": route.name, "resource": route.resource, "action": route.methods[_method]} if {
	not _uncanonical
}

default _mapped := {}

# METADATA
# title: Decision
# description: The whole answer, the verdict with the resource and action a route names.
decision := object.union({"allow": allow, "reasons": deny}, _mapped)
