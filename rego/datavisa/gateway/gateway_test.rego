package datavisa.gateway_test

import data.datavisa.gateway

_routes := [
	{"name": "console", "hosts": ["analytics.example.com"], "prefix": "/", "resource": "eu-customer-analytics", "methods": {"GET": "read", "POST": "write"}},
	{"name": "ledger", "hosts": ["payments.example.com"], "prefix": "/ledger", "resource": "eu-payments-ledger", "methods": {"GET": "read"}},
	{"name": "docs", "hosts": ["*"], "prefix": "/docs/", "resource": "public-docs", "methods": {"GET": "read"}},
]

_ask(method, host, path) := d if {
	d := gateway.decision with data.datavisa.routes as _routes
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

test_faults_the_engine_found_deny_with_their_code if {
	d := gateway.decision with data.datavisa.routes as _routes
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}, "faults": ["identity_without_credential", "country_header_invalid"]}
	not d.allow
	_codes(d) == {"identity_without_credential", "country_header_invalid"}
}

test_an_unknown_fault_still_denies if {
	d := gateway.decision with data.datavisa.routes as _routes
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}, "faults": ["something_new"]}
	_codes(d) == {"something_new"}
}

test_no_routes_in_the_bundle_deny_everything if {
	d := gateway.decision with data.datavisa.routes as []
		with input as {"context": {"method": "GET", "host": "analytics.example.com", "path": "/"}}
	_codes(d) == {"no_route"}
}

test_the_shipped_routes_map_the_console if {
	d := gateway.decision with input as {"context": {"method": "GET", "host": "analytics.localhost", "path": "/"}}
	d.allow
	d.resource == "eu-customer-analytics"
}
