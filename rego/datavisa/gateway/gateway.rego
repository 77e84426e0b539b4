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
#   credential, a country header that names no country. A sidecar adds edge:
#   {grants_heard_ns}, when the engine last confirmed its grants bundle current (OPA's
#   bundle status), which counts against data.datavisa.edge.max_grants_age_s.
#   Output: decision = {allow, reasons: [{code, message}], route, resource, action (when a
#   route matched)}; answer = the whole answer in one evaluation, route and access
#   decision together with the mask and the HTTP status, headers and body (below).
package datavisa.gateway

import data.datavisa.access
import data.system.log

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

# The prefixes a route may have to match the path: the path itself; and, at each "/" in
# it, what comes before (a prefix matches the paths under it) and what comes up to and
# with it (a prefix ending in "/" matches every path that starts with it). Each is looked
# up by host and prefix in the index the bundle builder derives from the routes
# (data.datavisa.lookup.routes: host → prefix → the first such route's position), so the
# cost of finding the route does not grow with the number of routes.
_slashes := indexof_n(_path, "/")

_prefixes contains _path

_prefixes contains substring(_path, 0, i) if some i in _slashes

_prefixes contains substring(_path, 0, i + 1) if some i in _slashes

_positions contains n if {
	some host in {_host, "*"}
	some prefix in _prefixes
	n := data.datavisa.lookup.routes[host][prefix]
}

# METADATA
# title: Route
# description: The first route matching the host and path, if any.
route := data.datavisa.routes[min(_positions)] if count(_positions) > 0

# A path is judged only in its canonical form, since an upstream that decodes it again,
# strips path parameters or folds Unicode could serve another route's resource from it.
# Not canonical: a path that does not decode once; an encoded slash, dot, backslash or
# semicolon; any %-escape left after one decoding (double encoding); a control character;
# a path parameter (;) or backslash; a Unicode lookalike of a dot or slash, or a byte
# that is not UTF-8 (an overlong %c0%ae); a segment of only dots (and spaces), which is
# what "." and ".." are and what "..." or ".. " may become.
#
# Most paths are plain: printable ASCII without "%", ";" or a backslash, and no segment of only
# dots. Such a path is its own decoding and none of the rules below can hold for it, so one
# match settles it; only the others are judged rule by rule.
_plain if regex.match(`^(/([A-Za-z0-9_~!$&'()*+,=:@.-]*[A-Za-z0-9_~!$&'()*+,=:@-][A-Za-z0-9_~!$&'()*+,=:@.-]*)?)*$`, _raw_path)

_uncanonical if {
	not _plain
	_uncanonical_judged
}

_uncanonical_judged if not _path

_uncanonical_judged if regex.match(`(?i)%(2f|2e|5c|3b|u[0-9a-f]{4})`, _raw_path)

_uncanonical_judged if regex.match(`(?i)%(2f|2e|5c|3b|25|[01][0-9a-f]|7f|u[0-9a-f]{4})`, _path)

_uncanonical_judged if regex.match(`[\x00-\x1f\x7f\x{80}-\x{9f};\\]`, _path)

_uncanonical_judged if regex.match(`[\x{2024}\x{2025}\x{2026}\x{2044}\x{2215}\x{3002}\x{FE52}\x{FF0E}\x{FF0F}\x{FF3C}\x{FF61}\x{FFFD}]`, _path)

_uncanonical_judged if {
	some segment in split(_path, "/")
	regex.match(`^[. ]*\.[. ]*$`, segment)
}

_fault_messages := {
	"header_too_large": "a header the decision reads is larger than the engine accepts",
	"identity_without_credential": "an identity header came without the gateway's service credential",
	"country_header_invalid": "the trusted country header names no known ISO 3166-1 country",
	"partial_body": "the gateway sent a truncated body (x-envoy-auth-partial-body), so the request is not judged",
	"credential_missing": "send the gateway credential or a bearer token",
	"credential_invalid": "the gateway credential does not verify",
	"forwarded_for_invalid": "an X-Forwarded-For entry from the gateway is not an address",
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

# A country header that names no country of the bundle's (the engine drops one before
# asking; a sidecar passes what the gateway said).
deny contains {"code": "country_header_invalid", "message": _fault_messages.country_header_invalid} if {
	attested := input.origin.attested
	is_string(attested)
	not data.datavisa.countries[attested]
}

# A sidecar answers from the grants it last downloaded: once the engine has not confirmed
# them current for longer than the bound in policy data (data.datavisa.edge), they may
# miss a revoke, so it denies rather than allow from them. No bound in the data: deny too.
deny contains {"code": "policy_stale", "message": msg} if {
	heard := object.get(input, ["edge", "grants_heard_ns"], null)
	heard != null
	not _fresh(heard)
	msg := sprintf("this sidecar has not heard from the engine within %vs, so its grants may be out of date", [_max_grants_age_s])
}

default _max_grants_age_s := 0

_max_grants_age_s := data.datavisa.edge.max_grants_age_s

_fresh(heard) if {
	is_number(heard)
	heard > 0
	time.now_ns() - heard <= _max_grants_age_s * 1000000000
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

# -- the answer ------------------------------------------------------------------------
#
# The whole answer to a request a gateway asks about, in one evaluation: which route it
# means (datavisa.gateway's decision), whether the access goes ahead (datavisa.access on
# that route's resource and action), the decision to record with its decision-log mask,
# and the HTTP answer a gateway gets (status, headers, JSON body). Both enforcement
# points ask it: the engine's /v1/authz endpoints and the sidecar OPA's gateway plugin
# (tools/opa), which only turn a request into this input and this answer into a response.
#
# Input: datavisa.gateway's, and, from a sidecar, edge: {grants_heard_ns} (when its
# grants bundle was last confirmed current by the engine, its own clock's nanoseconds).
# Output: answer = {route (datavisa.gateway.decision), decision ({allow, reasons, ...}:
# the route's deny, or the access decision), path and input (what the decision judged,
# as the decision log records it), mask (system.log's for that), status, headers
# (without X-DataVisa-Decision-Id: the id is the recorder's to give), body (null on an
# allow; on a deny its error.decision_id is left null for the same reason)}.

_access_input := object.union(
	{
		"subject": input.subject,
		"resource": decision.resource,
		"action": decision.action,
		"location": input.location,
	},
	object.union(_origin_field, _context_field),
)

_origin_field := {"origin": input.origin} if input.origin

default _origin_field := {}

_context_field := {"context": input.context} if count(object.get(input, "context", {})) > 0

default _context_field := {}

# The route allows and someone is named: the access decision on its resource and action.
_judged := {"path": "datavisa/access/decision", "input": _access_input, "decision": d} if {
	decision.allow
	input.subject
	d := access.decision with input as _access_input
}

else := {"path": "datavisa/gateway/decision", "input": input, "decision": decision} if {
	not decision.allow
}

else := {"path": "datavisa/gateway/decision", "input": input, "decision": object.union(decision, {"allow": false, "reasons": {_nobody}})}

_nobody := {"code": "subject_missing", "message": "no identity header or user token names the subject"}

_decided := _judged.decision

_reasons := [r | some r in _decided.reasons]

# Each code once, in the order of the reasons.
_codes := [code |
	some i, r in _reasons
	code := r.code
	not _seen_before(i, code)
]

_seen_before(i, code) if {
	some j, earlier in _reasons
	j < i
	earlier.code == code
}

_words(r) := sprintf("%s: %s", [r.field, r.message]) if r.field

else := r.message

_explained := concat("; ", [_words(r) | some r in _reasons])

# Reasons that say nobody vouched for the caller: the answer is a 401, not a 403.
_unauthenticated := {"credential_missing", "credential_invalid", "subject_missing"}

_status := 200 if _decided.allow

else := 401 if {
	some code in _codes
	code in _unauthenticated
}

else := 403

_error_code := {401: "unauthenticated", 403: "access_denied"}

_allowed_headers := {name: value |
	some name, value in {
		"X-DataVisa-Subject": input.subject,
		"X-DataVisa-Grant-Id": object.get(_decided, "grant_id", ""),
		"X-DataVisa-Expires-At": object.get(_decided, "expires_at", ""),
	}
	value != ""
}

_denied_headers := object.union(
	{"X-DataVisa-Reasons": concat(",", _or_denied(_codes))},
	{"WWW-Authenticate": "Bearer" | _status == 401},
)

_or_denied(codes) := codes if count(codes) > 0

else := ["denied"]

_or(text, fallback) := text if text != ""

else := fallback

_body := null if _decided.allow

else := {"error": {
	"code": _error_code[_status],
	"message": _or(_explained, "denied"),
	"reasons": _reasons,
	"decision_id": null,
}}

_headers := _allowed_headers if _decided.allow

else := _denied_headers

_mask := m if {
	judged := _judged
	m := log.mask with input as {"path": judged.path, "input": judged.input}
}

# METADATA
# title: Answer
# description: |
#   The gateway's whole answer: route, decision, what to record and its mask, and the HTTP
#   status, headers and body (see the package description).
answer := object.union(reply, {"mask": _mask})

# METADATA
# title: Reply
# description: |
#   The answer without its decision-log mask, for an enforcement point whose decision log
#   applies system.log itself: the sidecar's gateway plugin hands each decision to OPA's
#   decision-log plugin, which masks every event it logs with that very policy.
reply := {
	"route": decision,
	"decision": _decided,
	"path": _judged.path,
	"input": _judged.input,
	"status": _status,
	"headers": _headers,
	"body": _body,
}

# METADATA
# title: Answers, coalesced
# description: |
#   answer for each input in input.batch, in order. Input: {batch: [input, ...]}
answers := [a | some asked in input.batch; a := answer with input as asked]
