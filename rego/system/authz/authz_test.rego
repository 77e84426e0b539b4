package system.authz_test

import data.system.authz

_secret := "s3cret-made-at-start"

_grants_put := {"method": "PUT", "path": ["v1", "data", "grants", "mallory"], "params": {}}

_decision := {"method": "POST", "path": ["v1", "data", "datavisa", "access", "decision"], "params": {}}

test_the_engine_may_do_anything if {
	authz.allow.allowed with input as object.union(_grants_put, {"identity": _secret})
		with data.system.authz.engine_token as _secret
}

test_without_the_secret_grants_cannot_be_written if {
	not authz.allow.allowed with input as _grants_put with data.system.authz.engine_token as _secret
}

test_another_token_is_not_the_engine if {
	not authz.allow.allowed with input as object.union(_grants_put, {"identity": "guess"})
		with data.system.authz.engine_token as _secret
}

test_no_secret_loaded_makes_no_engine if {
	not authz.allow.allowed with input as object.union(_grants_put, {"identity": ""})
	not authz.allow.allowed with input as object.union(_grants_put, {"identity": ""})
		with data.system.authz.engine_token as ""
}

test_reading_grants_data_or_policies_is_refused_with_a_reason if {
	every call in [
		{"method": "GET", "path": ["v1", "data", "grants"], "params": {}},
		{"method": "GET", "path": ["v1", "data"], "params": {}},
		{"method": "POST", "path": ["v1", "data", "grants"], "params": {}},
		{"method": "GET", "path": ["v1", "policies"], "params": {}},
		{"method": "PUT", "path": ["v1", "policies", "x"], "params": {}},
		{"method": "POST", "path": ["v1", "query"], "params": {}},
		{"method": "POST", "path": ["v1", "data", "datavisa", "logged", "access_decision"], "params": {}},
	] {
		verdict := authz.allow with input as call with data.system.authz.engine_token as _secret
		verdict.allowed == false
		contains(verdict.reason, "POST /v1/data/datavisa/access/decision")
	}
}

test_anyone_may_ask_for_an_access_decision if {
	authz.allow.allowed with input as _decision
	authz.allow.allowed with input as object.union(_decision, {"params": {"pretty": ["true"]}})
}

test_a_decision_with_a_trace_is_refused if {
	not authz.allow.allowed with input as object.union(_decision, {"params": {"explain": ["full"]}})
	not authz.allow.allowed with input as object.union(_decision, {"method": "GET"})
}

test_anyone_may_probe_health if {
	authz.allow.allowed with input as {"method": "GET", "path": ["health"], "params": {"bundles": [""]}}
	not authz.allow.allowed with input as {"method": "GET", "path": ["health", "x"], "params": {}}
}
