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
#   Input: {subject, location, context: {method, host, path, query, client_ip, ...},
#   method_overrides: [method, ...], faults: [code, ...]}: the context is the access
#   check's, so the same decision-log mask applies to both (the query string and client
#   address are masked); the path is as the client sent it, still encoded. Method
#   overrides are the values of the headers that ask an upstream to treat the request as
#   another method (X-HTTP-Method-Override and the like); a `_method` query parameter is
#   read here. Faults are what the engine found wrong with the request's headers before
#   asking: a header larger than it reads, an identity header without the gateway's
#   credential, a country header that names no country.
#   Output: decision = {allow, reasons: [{code, message}], route, resource, action (when a
#   route matched)}
package datavisa.gateway

default _routes := []

_routes := data.datavisa.routes

_request := object.get(input, "context", {})

_host := lower(split(object.get(_request, "host", ""), ":")[0])

# The path as the client sent it, and decoded once: routes match the decoded path, the
# one an upstream that decodes once serves. A "+" in a path is a plus, not a space. A path
# that does not decode (a bad or %u escape) is undefined here, and so never matched.
_raw_path := object.get(_request, "path", "")

_path := urlquery.decode(replace(_raw_path, "+", "%2B"))

_method := upper(object.get(_request, "method", ""))

# Overrides: the headers the engine passes on, and a `_method` query parameter.
_overrides contains upper(trim_space(m)) if some m in object.get(input, "method_overrides", [])

_overrides contains upper(trim_space(m)) if {
	query := object.get(_request, "query", "")
	query != ""
	some m in object.get(urlquery.decode_object(query), "_method", [])
}

# The method the upstream will act on: the override when there is exactly one.
_effective := m if {
	count(_overrides) == 1
	some m in _overrides
}

_effective := _method if count(_overrides) == 0

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

# A path is judged only in its canonical form, since an upstream that decodes it again,
# strips path parameters or folds Unicode could serve another route's resource from it.
# Not canonical: a path that does not decode once; an encoded slash, dot, backslash or
# semicolon; any %-escape left after one decoding (double encoding); a control character;
# a path parameter (;) or backslash; a Unicode lookalike of a dot or slash, or a byte
# that is not UTF-8 (an overlong %c0%ae); a segment of only dots (and spaces), which is
# what "." and ".." are and what "..." or ".. " may become.
_uncanonical if not _path

_uncanonical if regex.match(`(?i)%(2f|2e|5c|3b|u[0-9a-f]{4})`, _raw_path)

_uncanonical if regex.match(`(?i)%(2f|2e|5c|3b|25|[01][0-9a-f]|7f|u[0-9a-f]{4})`, _path)

_uncanonical if regex.match(`[\x00-\x1f\x7f\x{80}-\x{9f};\\]`, _path)

_uncanonical if regex.match(`[\x{2024}\x{2025}\x{2026}\x{2044}\x{2215}\x{3002}\x{FE52}\x{FF0E}\x{FF0F}\x{FF3C}\x{FF61}\x{FFFD}]`, _path)

_uncanonical if {
	some segment in split(_path, "/")
	regex.match(`^[. ]*\.[. ]*$`, segment)
}

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
	msg := sprintf("the path %q is not canonical: dot segments, encoded separators, double encoding, control characters, path parameters or lookalike dots", [_raw_path])
}

deny contains {"code": "no_route", "message": msg} if {
	not _uncanonical
	not route
	msg := sprintf("no gateway route matches host %q and path %q", [_host, _raw_path])
}

deny contains {"code": "method_not_routed", "message": msg} if {
	not _uncanonical
	not route.methods[_method]
	msg := sprintf("route %s maps no action to method %s", [route.name, _method])
}

# A request that asks the upstream to act as another method is judged as that method:
# one the route does not map, or more than one, is a deny.
deny contains {"code": "method_override_not_routed", "message": msg} if {
	not _uncanonical
	some m in _overrides
	not route.methods[m]
	msg := sprintf("the request overrides its method with %s, which route %s does not map", [m, route.name])
}

deny contains {"code": "method_override_ambiguous", "message": msg} if {
	count(_overrides) > 1
	msg := sprintf("the request overrides its method more than once (%v)", [concat(", ", sort(_overrides))])
}

_mapped := {"route": route.name, "resource": route.resource, "action": route.methods[_effective]} if {
	not _uncanonical
}

default _mapped := {}

# METADATA
# title: Decision
# description: The whole answer, the verdict with the resource and action a route names.
decision := object.union({"allow": allow, "reasons": deny}, _mapped)
