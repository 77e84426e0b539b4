package datavisa.origin_test

import data.datavisa.access
import data.datavisa.approval
import data.datavisa.breakglass
import data.datavisa.origin
import data.datavisa.request

_t0 := 1800000000000000000 # an instant in 2027, in ns

_grant(resource) := {
	"resource": resource,
	"actions": ["read"],
	"countries": ["DE"],
	"starts_ns": _t0,
	"expires_ns": _t0 + (20 * 1000000000),
	"revision": "test",
}

_resources := {
	"public": "public-docs",
	"internal": "eu-service-metrics",
	"confidential": "eu-customer-analytics",
	"restricted": "eu-payments-ledger",
}

# Where alice is, as each source would put it; the country is DE each time.
_origins := {
	"attested": {"source": "attested", "channel": "gateway", "attested": "DE", "attested_by": "edge", "derived": "DE", "address": "10.20.1.1", "via": "proxy 10.0.0.5"},
	"derived": {"source": "derived", "channel": "api", "declared": "DE", "derived": "DE", "address": "10.20.1.1", "via": "peer"},
	"declared": {"source": "declared", "channel": "api", "declared": "DE", "derived": "unknown", "address": "127.0.0.1", "via": "peer"},
	"local": {"source": "declared", "channel": "local", "declared": "DE"},
}

_access(tier, how) := d if {
	d := access.decision with input as {
		"subject": "alice", "resource": _resources[tier], "action": "read", "location": "DE",
		"origin": _origins[how],
	}
		with data.grants as {"alice": {"g1": _grant(_resources[tier])}}
		with time.now_ns as _t0 + 1
}

_codes(d) := {r.code | some r in d.reasons}

test_each_tier_accepts_the_sources_its_data_says_for_access if {
	# the shipped tiers: public and internal take the caller's word; confidential and
	# restricted data only a location the network attests or derives
	accepted := {
		"public": {"attested", "derived", "declared"},
		"internal": {"attested", "derived", "declared"},
		"confidential": {"attested", "derived"},
		"restricted": {"attested", "derived"},
	}
	every tier, sources in accepted {
		every how in sources {
			_access(tier, how).allow
		}
		every how in {"attested", "derived", "declared"} - sources {
			_codes(_access(tier, how)) == {"location_source_not_accepted"}
		}
	}
}

test_a_refusal_of_declared_says_which_sources_would_do if {
	d := _access("confidential", "declared")
	[reason] := [r | some r in d.reasons]
	reason.accepted == ["attested", "derived"]
	contains(reason.message, "reached only from a location that is attested or derived, and this one is declared")
	contains(reason.message, "ask through a gateway")
}

test_the_local_cli_counts_as_location_trust_says if {
	every tier in ["public", "internal", "confidential", "restricted"] {
		_access(tier, "local").allow
	}
	held := access.decision with input as {"subject": "alice", "resource": _resources.confidential, "action": "read", "location": "DE", "origin": _origins.local}
		with data.grants as {"alice": {"g1": _grant(_resources.confidential)}}
		with time.now_ns as _t0 + 1
		with data.datavisa.location_trust.local as "declared"
	_codes(held) == {"location_source_not_accepted"}
}

test_an_input_without_origin_is_an_enforcement_point_asking_opa_itself if {
	d := access.decision with input as {"subject": "alice", "resource": _resources.confidential, "action": "read", "location": "DE"}
		with data.grants as {"alice": {"g1": _grant(_resources.confidential)}}
		with time.now_ns as _t0 + 1
	d.allow
	origin.source == "attested" with input as {}
	origin.source == "declared" with input as {} with data.datavisa.location_trust.direct as "declared"
}

test_a_declared_country_the_network_places_elsewhere_is_a_mismatch_on_every_tier if {
	every resource in _resources {
		every kind in ["derived", "attested"] {
			where := object.union(_origins[kind], {"declared": "DE", kind: "US", "source": kind})
			d := access.decision with input as {"subject": "alice", "resource": resource, "action": "read", "location": "US", "origin": where}
				with data.grants as {"alice": {"g1": object.union(_grant(resource), {"countries": ["US"]})}}
				with time.now_ns as _t0 + 1
			not d.allow
			"location_mismatch" in _codes(d)
		}
	}
}

test_a_mismatch_names_both_countries if {
	where := {"source": "derived", "channel": "api", "declared": "DE", "derived": "US", "address": "198.51.100.7", "via": "peer"}
	d := access.decision with input as {"subject": "alice", "resource": "eu-service-metrics", "action": "read", "location": "US", "origin": where}
		with data.grants as {}
		with time.now_ns as _t0
	some reason in d.reasons
	reason.code == "location_mismatch"
	[reason.declared, reason.observed] == ["DE", "US"]
	contains(reason.message, "declared (DE) is not where the network places the caller (US, derived from the client address)")
}

test_an_address_placed_nowhere_or_nothing_declared_is_no_mismatch if {
	count(origin.observed_elsewhere) == 0 with input as {"origin": _origins.declared}
	count(origin.observed_elsewhere) == 0 with input as {"origin": {"source": "derived", "derived": "US"}}
	count(origin.observed_elsewhere) == 0 with input as {"origin": {"source": "derived", "declared": "unknown", "derived": "US"}}
	count(origin.observed_elsewhere) == 0 with input as {"origin": _origins.derived}
}

test_unknown_derived_falls_to_the_residency_rules_where_the_tier_takes_derived if {
	where := {"source": "derived", "channel": "api", "derived": "unknown", "address": "192.0.2.1", "via": "peer"}
	d := access.decision with input as {"subject": "alice", "resource": _resources.confidential, "action": "read", "location": "unknown", "origin": where}
		with data.grants as {"alice": {"g1": _grant(_resources.confidential)}}
		with time.now_ns as _t0 + 1
	not d.allow
	not "location_source_not_accepted" in _codes(d)
	"location_not_permitted" in _codes(d)
}

_request(how, patch) := d if {
	d := request.decision with input as object.union(
		{
			"subject": "alice", "resource": _resources.confidential, "actions": ["read"],
			"duration_s": 600, "location": "DE", "reason": "INC-1", "origin": _origins[how],
		},
		patch,
	)
}

test_asking_and_breaking_glass_take_the_callers_word_where_the_tier_says_so if {
	every how in ["attested", "derived", "declared", "local"] {
		_request(how, {}).allow
	}
	restricted := _request("declared", {"resource": _resources.restricted, "subject": "alice"})
	not "location_source_not_accepted" in _codes(restricted)
	held := request.decision with input as {
		"subject": "alice", "resource": _resources.confidential, "actions": ["read"],
		"duration_s": 600, "location": "DE", "reason": "INC-1", "origin": _origins.declared,
	}
		with data.datavisa.tiers.confidential.location_sources.request as ["attested", "derived"]
	_codes(held) == {"location_source_not_accepted"}
	glass := breakglass.decision with input as {
		"subject": "oscar", "resource": _resources.confidential, "actions": ["read"], "duration_s": 600,
		"location": "DE", "reason": "INC-9", "overdue_reviews": 0, "origin": _origins.declared,
	}
		with data.datavisa.tiers.confidential.location_sources.break_glass as ["attested"]
	"location_source_not_accepted" in _codes(glass)
}

test_a_request_or_break_glass_declaring_elsewhere_is_a_mismatch if {
	lying := object.union(_origins.derived, {"derived": "US"})
	asked := request.decision with input as {
		"subject": "alice", "resource": _resources.confidential, "actions": ["read"],
		"duration_s": 600, "location": "US", "reason": "INC-1", "origin": lying,
	}
	"location_mismatch" in _codes(asked)
	glass := breakglass.decision with input as {
		"subject": "oscar", "resource": _resources.confidential, "actions": ["read"], "duration_s": 600,
		"location": "US", "reason": "INC-9", "overdue_reviews": 0, "origin": lying,
	}
	"location_mismatch" in _codes(glass)
}

test_an_approver_declaring_elsewhere_is_a_mismatch if {
	pending := {"id": "r1", "requester": "alice", "resource": _resources.confidential, "actions": ["read"], "duration_s": 600, "location": "DE"}
	honest := approval.decision with input as {"approver": "bob", "approver_location": "DE", "request": pending, "approvals": [], "origin": _origins.derived}
	honest.allow
	lying := approval.decision with input as {
		"approver": "bob", "approver_location": "US", "request": pending, "approvals": [],
		"origin": object.union(_origins.derived, {"derived": "US"}),
	}
	_codes(lying) == {"location_mismatch"}
}
