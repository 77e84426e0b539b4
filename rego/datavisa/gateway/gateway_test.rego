package datavisa.gateway_test

import data.datavisa.access
import data.datavisa.gateway

_routes := [
	{"name": "console", "hosts": ["analytics.example.com"], "prefix": "/", "resource": "eu-customer-analytics", "methods": {"GET": "read", "POST": "write"}},
	{"name": "ledger", "hosts": ["payments.example.com"], "prefix": "/ledger", "resource": "eu-payments-ledger", "methods": {"GET": "read"}},
	{"name": "docs", "hosts": ["*"], "prefix": "/docs/", "resource": "public-docs", "methods": {"GET": "read"}},
]

# _routes as the bundle builder indexes them (data.datavisa.lookup.routes)
_index := {
	"analytics.example.com": {"/": 0},
	"payments.example.com": {"/ledger": 1},
	"*": {"/docs/": 2},
}

_ask(method, host, path) := d if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": method, "host": host, "path": path}, "subject": "alice", "location": "DE"}
}

_codes(d) := {r.code | some r in d.reasons}

test_a_route_names_the_resource_and_the_method_the_action if {
	d := _ask("POST", "analytics.example.com", "/reports/q1")
	d.allow
	d.resource == "eu-customer-analytics"
	d.action == "write"
	d.route == "console"
}

test_hosts_match_without_port_or_case if {
	_ask("GET", "Payments.Example.com:8443", "/ledger").allow
}

test_a_prefix_matches_itself_and_below_but_not_a_longer_name if {
	_ask("GET", "payments.example.com", "/ledger/2026").allow
	_codes(_ask("GET", "payments.example.com", "/ledgerx")) == {"no_route"}
}

test_the_first_matching_route_wins_and_star_matches_any_host if {
	d := _ask("GET", "analytics.example.com", "/docs/intro")
	d.route == "console"
	_ask("GET", "elsewhere.example.org", "/docs/intro").route == "docs"
}

test_no_route_is_a_deny if {
	d := _ask("GET", "unknown.example.com", "/")
	not d.allow
	_codes(d) == {"no_route"}
	not d.resource
}

test_an_unmapped_method_is_a_deny if {
	d := _ask("DELETE", "payments.example.com", "/ledger")
	not d.allow
	_codes(d) == {"method_not_routed"}
}

test_dot_segments_and_encoded_separators_never_match if {
	every path in ["/docs/../admin", "/docs/%2e%2e/admin", "/docs/a%2Fb", "/docs/./x", "/docs\\x"] {
		d := _ask("GET", "analytics.example.com", path)
		_codes(d) == {"path_not_canonical"}
		not d.resource
	}
}

# Each is a path an upstream could resolve to /ledger (or another route) while its prefix
# reads /docs: decoding twice, stripping path parameters, folding Unicode, trimming.
_not_canonical := [
	"/docs/..;/ledger/2026", "/docs/..;x=1/ledger", "/docs;x=1/a", "/docs/%3b/a",
	"/docs/%252e%252e/ledger", "/docs/%25%32%65%25%32%65/ledger", "/docs/%252f",
	"/docs/%c0%ae%c0%ae/ledger", "/docs/%ef%bc%8e%ef%bc%8e/ledger", "/docs/\uff0e\uff0e/ledger",
	"/docs/%e2%80%a4%e2%80%a4/ledger", "/docs/%ef%bc%8fledger",
	"/docs/%u002e%u002e/ledger", "/docs/.../ledger", "/docs/..%00/ledger", "/docs/..%09/ledger",
	"/docs/.. /ledger", "/docs/%zz", "/docs/a%0ab", "/docs/a%7f", "/docs/a%c2%85b",
]

test_a_path_is_judged_only_in_its_canonical_form if {
	every path in _not_canonical {
		d := _ask("GET", "elsewhere.example.org", path)
		_codes(d) == {"path_not_canonical"}
		not d.resource
	}
}

test_routes_match_the_path_decoded_once if {
	d := _ask("GET", "payments.example.com", "/led%67er/2026")
	d.route == "ledger"
	_ask("GET", "elsewhere.example.org", "/docs/%c3%bcber+alles").route == "docs"
	_ask("GET", "elsewhere.example.org", "/docs/a.b/..c/100%25").route == "docs"
}

_override(method, path, query, headers) := d if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": method, "host": "payments.example.com", "path": path, "query": query}, "method_overrides": headers, "subject": "alice", "location": "DE"}
}

test_a_method_override_the_route_does_not_map_is_a_deny if {
	_codes(_override("GET", "/ledger", "", ["DELETE"])) == {"method_override_not_routed"}
	_codes(_override("GET", "/ledger", "_method=delete", [])) == {"method_override_not_routed"}
	_codes(_override("GET", "/ledger", "a=1&_method=PUT", [])) == {"method_override_not_routed"}
	_override("GET", "/ledger", "", ["get"]).allow
}

test_an_override_the_route_maps_is_judged_as_that_method if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/x"}, "method_overrides": ["POST"]}
	d.allow
	d.action == "write"
}

test_two_different_overrides_are_a_deny if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/x", "query": "_method=GET"}, "method_overrides": ["POST"]}
	_codes(d) == {"method_override_ambiguous"}
	not d.resource
}

test_faults_the_engine_found_deny_with_their_code if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}, "faults": ["identity_without_credential", "country_header_invalid"]}
	not d.allow
	_codes(d) == {"identity_without_credential", "country_header_invalid"}
}

test_an_unknown_fault_still_denies if {
	d := gateway.decision with data.datavisa.routes as _routes
		with data.datavisa.lookup.routes as _index
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}, "faults": ["something_new"]}
	_codes(d) == {"something_new"}
}

test_no_routes_in_the_bundle_deny_everything if {
	d := gateway.decision with data.datavisa.routes as []
		with data.datavisa.lookup.routes as {}
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}}
	_codes(d) == {"no_route"}
}

test_the_shipped_routes_map_the_console if {
	d := gateway.decision with input as {"context": {"method": "GET", "host": "analytics.localhost", "path": "/"}}
	d.allow
	d.resource == "eu-customer-analytics"
}

# -- the answer --

_t0 := 1800000000000000000 # an instant in 2027, in ns

_grants := {"alice": {"g1": {
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"countries": ["DE"],
	"starts_ns": _t0,
	"expires_ns": _t0 + (3600 * 1000000000),
	"expires_at": "2027-01-15T09:00:00Z",
	"revision": "test",
}}}

_asked := {
	"subject": "alice",
	"location": "DE",
	"origin": {"source": "derived", "channel": "gateway", "derived": "DE", "address": "10.20.1.2"},
	"context": {"method": "GET", "host": "analytics.localhost", "path": "/reports", "query": "q=1", "client_ip": "10.20.1.2"},
	"method_overrides": [],
	"faults": [],
}

_answer(patch) := a if {
	a := gateway.answer with input as object.union(_asked, patch)
		with data.grants as _grants
		with time.now_ns as _t0 + 1
}

test_an_allow_is_the_access_decision_with_the_grant_in_headers if {
	a := _answer({})
	a.status == 200
	a.decision.allow
	a.route.resource == "eu-customer-analytics"
	a.path == "datavisa/access/decision"
	a.input.resource == "eu-customer-analytics"
	a.input.action == "read"
	a.input.context.method == "GET"
	a.headers == {
		"X-DataVisa-Subject": "alice",
		"X-DataVisa-Grant-Id": "g1",
		"X-DataVisa-Expires-At": "2027-01-15T09:00:00Z",
	}
	a.body == null
}

test_the_decision_is_exactly_the_access_decision if {
	a := _answer({})
	d := access.decision with input as a.input with data.grants as _grants with time.now_ns as _t0 + 1
	a.decision == d
}

test_the_mask_hides_the_query_and_keeps_the_client_to_its_24 if {
	a := _answer({})
	"/input/context/query" in a.mask
	{"op": "upsert", "path": "/input/context/client_ip", "value": "10.20.1.0/24"} in a.mask
	{"op": "upsert", "path": "/input/origin/address", "value": "10.20.1.0/24"} in a.mask
}

test_an_access_deny_is_a_403_with_its_reasons if {
	a := _answer({"subject": "bob"})
	a.status == 403
	a.path == "datavisa/access/decision"
	a.headers == {"X-DataVisa-Reasons": "no_active_grant"}
	a.body.error.code == "access_denied"
	a.body.error.message == "bob holds no grant on eu-customer-analytics"
	[r.code | some r in a.body.error.reasons] == ["no_active_grant"]
	a.body.error.decision_id == null
}

test_a_route_deny_is_recorded_as_the_gateway_decision if {
	a := _answer({"context": {"method": "GET", "host": "nowhere.localhost", "path": "/"}})
	a.status == 403
	a.path == "datavisa/gateway/decision"
	a.input.context.host == "nowhere.localhost"
	a.headers["X-DataVisa-Reasons"] == "no_route"
}

test_each_code_is_named_once_and_the_message_joins_the_reasons if {
	a := _answer({"faults": ["header_too_large", "identity_without_credential"]})
	a.headers["X-DataVisa-Reasons"] == "header_too_large,identity_without_credential"
	contains(a.body.error.message, "; ")
}

test_nobody_vouched_for_is_a_401 if {
	every fault in ["credential_missing", "credential_invalid"] {
		a := _answer({"faults": [fault]})
		a.status == 401
		a.body.error.code == "unauthenticated"
		a.headers == {"X-DataVisa-Reasons": fault, "WWW-Authenticate": "Bearer"}
	}
}

test_no_subject_is_a_401_subject_missing if {
	a := gateway.answer with input as object.remove(_asked, ["subject"])
		with data.grants as _grants
		with time.now_ns as _t0 + 1
	a.status == 401
	a.headers["X-DataVisa-Reasons"] == "subject_missing"
}

test_a_sidecar_that_heard_from_the_engine_lately_answers if {
	a := _answer({"edge": {"grants_heard_ns": _t0 - (59 * 1000000000)}})
	a.status == 200
}

test_a_sidecar_with_stale_grants_denies_policy_stale if {
	every heard in [_t0 - (61 * 1000000000), 0, "yesterday"] {
		a := _answer({"edge": {"grants_heard_ns": heard}})
		a.status == 403
		a.headers["X-DataVisa-Reasons"] == "policy_stale"
		a.path == "datavisa/gateway/decision"
	}
}

test_no_bound_in_the_data_is_stale_too if {
	a := gateway.answer with input as object.union(_asked, {"edge": {"grants_heard_ns": _t0}})
		with data.grants as _grants
		with data.datavisa.edge as {}
		with time.now_ns as _t0 + 1
	a.headers["X-DataVisa-Reasons"] == "policy_stale"
}

test_a_country_header_naming_no_country_is_a_deny if {
	a := _answer({"origin": {"source": "attested", "channel": "gateway", "attested": "ZZ"}})
	a.headers["X-DataVisa-Reasons"] == "country_header_invalid"
}

test_answers_answer_each_of_a_batch_in_order if {
	got := gateway.answers with input as {"batch": [_asked, object.union(_asked, {"subject": "bob"})]}
		with data.grants as _grants
		with time.now_ns as _t0 + 1
	[a.status | some a in got] == [200, 403]
}

test_the_first_route_in_order_wins_whichever_prefix_matches if {
	routes := [
		{"name": "wide", "hosts": ["*"], "prefix": "/", "resource": "public-docs", "methods": {"GET": "read"}},
		{"name": "narrow", "hosts": ["a.example.com"], "prefix": "/x", "resource": "eu-payments-ledger", "methods": {"GET": "read"}},
	]
	d := gateway.decision with data.datavisa.routes as routes
		with data.datavisa.lookup.routes as {"*": {"/": 0}, "a.example.com": {"/x": 1}}
		with input as {"context": {"method": "GET", "host": "a.example.com", "path": "/x/y"}}
	d.route == "wide"
}

test_a_prefix_matches_itself_and_below_it_not_a_longer_name if {
	routes := [{"name": "r", "hosts": ["a.example.com"], "prefix": "/reports", "resource": "public-docs", "methods": {"GET": "read"}}]
	every path in ["/reports", "/reports/", "/reports/q1/x"] {
		d := gateway.decision with data.datavisa.routes as routes
			with data.datavisa.lookup.routes as {"a.example.com": {"/reports": 0}}
			with input as {"context": {"method": "GET", "host": "a.example.com", "path": path}}
		d.route == "r"
	}
	d := gateway.decision with data.datavisa.routes as routes
		with data.datavisa.lookup.routes as {"a.example.com": {"/reports": 0}}
		with input as {"context": {"method": "GET", "host": "a.example.com", "path": "/reportsx"}}
	not d.route
}

_at(path) := {"context": {"method": "GET", "host": "elsewhere.example.org", "path": path}}

test_a_plain_path_is_one_the_rules_would_find_canonical_too if {
	every path in ["/", "/docs/intro", "/docs/a.b/..c", "/docs/...x", "/docs/+a", "/docs/a~b!$&'()*,=:@-_", "//docs", ""] {
		gateway._plain with input as _at(path)
		not gateway._uncanonical_judged with input as _at(path)
	}
}

test_dot_segments_separators_and_escapes_are_never_plain if {
	every path in ["/.", "/..", "/docs/../ledger", "/docs/...", "/docs/%2e", "/docs;x", "/docs\\x", "/docs/ .", "docs", "*"] {
		not gateway._plain with input as _at(path)
	}
	every path in ["/.", "/..", "/docs/../ledger", "/docs/...", "/docs/%2e", "/docs;x", "/docs\\x", "/docs/ ."] {
		d := gateway.decision with input as _at(path)
		_codes(d) == {"path_not_canonical"}
	}
}
