package datavisa.supervision_test

import data.datavisa.supervision

_grant := {
	"id": "g1",
	"requester": "alice",
	"resource": "eu-customer-analytics",
	"actions": ["read", "write"],
	"location": "DE",
	"evidence": [],
	"kind": "access",
	"supervised": true,
}

_ask := {"supervisor": "erin", "supervisor_location": "DE", "grant": _grant}

_codes(d) := {r.code | some r in d.reasons}

test_requirement_by_resource_action if {
	supervision.requirement("eu-customer-analytics", ["read", "write"], false).supervised
	not supervision.requirement("eu-customer-analytics", ["read"], false).supervised
}

test_requirement_by_tier_action if {
	supervision.requirement("eu-payments-ledger", ["write"], false).supervised
	not supervision.requirement("eu-payments-ledger", ["read"], false).supervised
}

test_requirement_of_break_glass_by_tier if {
	settings := object.union(data.datavisa.supervised, {"required": {"breakglass": ["confidential"]}})
	supervision.requirement("uk-employee-records", ["read"], true).supervised with data.datavisa.supervised as settings
	not supervision.requirement("uk-employee-records", ["read"], false).supervised with data.datavisa.supervised as settings
	not supervision.requirement("eu-service-metrics", ["read"], true).supervised with data.datavisa.supervised as settings
	not supervision.requirement("uk-employee-records", ["read"], true).supervised
}

test_requirement_carries_policy_numbers if {
	r := supervision.requirement("eu-customer-analytics", ["write"], false)
	r == {"supervised": true, "lease_s": 15, "heartbeat_s": 5, "grace_s": 30}
	s := supervision.requirement("eu-customer-analytics", ["write"], false) with data.datavisa.supervised as {"lease_s": 2, "heartbeat_s": 1, "grace_s": 1}
	s == {"supervised": false, "lease_s": 2, "heartbeat_s": 1, "grace_s": 1}
}

test_security_officer_and_data_owner_may_supervise if {
	every who in ["erin", "bob", "sam"] {
		d := supervision.decision with input as object.union(_ask, {"supervisor": who})
		d.allow
		d.lease_s == 15
		d.heartbeat_s == 5
		d.grace_s == 30
	}
}

test_who_may_not_supervise_and_why if {
	cases := [
		{"patch": {"supervisor": "alice"}, "codes": {"self_supervision", "supervisor_not_eligible"}},
		{"patch": {"supervisor": "oscar"}, "codes": {"supervisor_not_eligible"}},
		{"patch": {"supervisor": "dave"}, "codes": {"supervisor_not_eligible"}}, # data owner of another team
		{"patch": {"supervisor": "nobody"}, "codes": {"unknown_supervisor"}},
		{"patch": {"grant": object.union(_grant, {"supervised": false})}, "codes": {"not_supervised"}},
		{"patch": {"grant": object.union(_grant, {"resource": "nope"})}, "codes": {"unknown_resource"}},
	]
	every c in cases {
		d := supervision.decision with input as object.union(_ask, c.patch)
		not d.allow
		_codes(d) == c.codes
	}
}

test_restricted_data_is_supervised_from_inside_its_jurisdiction_by_its_people if {
	ledger := object.union(_grant, {"resource": "eu-payments-ledger", "actions": ["write"], "requester": "priya"})
	inside := supervision.decision with input as {"supervisor": "erin", "supervisor_location": "DE", "grant": ledger}
	inside.allow
	abroad := supervision.decision with input as {"supervisor": "erin", "supervisor_location": "US", "grant": ledger}
	_codes(abroad) == {"supervisor_outside_jurisdiction"}
	employed_abroad := supervision.decision with input as {"supervisor": "sam", "supervisor_location": "DE", "grant": ledger}
	_codes(employed_abroad) == {"supervisor_outside_jurisdiction"}
	unknown := supervision.decision with input as {"supervisor": "erin", "grant": ledger}
	_codes(unknown) == {"supervisor_outside_jurisdiction"}
}

_tiers_wanting(tier, field, value) := object.union(data.datavisa.tiers, {tier: object.union(data.datavisa.tiers[tier], {field: value})})

test_a_join_asks_the_tier_s_step_up_for_supervise if {
	tiers := _tiers_wanting("confidential", "step_up", {"supervise": {"max_age_s": 300, "amr": ["mfa"]}})
	unsigned := supervision.decision with input as _ask with data.datavisa.tiers as tiers
	_codes(unsigned) == {"step_up_required"}
	stale := object.union(_ask, {"authentication": {"age_s": 900, "amr": ["mfa"], "acr": null}})
	_codes(supervision.decision) == {"step_up_required"} with input as stale with data.datavisa.tiers as tiers
	fresh := object.union(_ask, {"authentication": {"age_s": 60, "amr": ["mfa"], "acr": null}})
	supervision.decision.allow with input as fresh with data.datavisa.tiers as tiers
	weak := object.union(_ask, {"authentication": {"age_s": 60, "amr": ["pwd"], "acr": null}})
	not supervision.decision.allow with input as weak with data.datavisa.tiers as tiers
}

test_a_heartbeat_decided_again_does_not_ask_step_up_again if {
	tiers := _tiers_wanting("confidential", "step_up", {"supervise": {"max_age_s": 300}})
	renewal := object.union(_ask, {"renewal": true, "authentication": {"age_s": 3600, "amr": [], "acr": null}})
	supervision.decision.allow with input as renewal with data.datavisa.tiers as tiers
}

test_an_approve_step_up_is_not_asked_of_supervisors if {
	tiers := _tiers_wanting("confidential", "step_up", {"approve": {"max_age_s": 300}})
	supervision.decision.allow with input as _ask with data.datavisa.tiers as tiers
}

_declared := {"source": "declared", "channel": "api", "declared": "DE", "derived": "unknown"}

test_supervisors_locations_are_judged_as_approvers_where_the_tier_names_no_supervise_sources if {
	tiers := _tiers_wanting("confidential", "location_sources", {"approve": ["attested", "derived"]})
	d := supervision.decision with input as object.union(_ask, {"origin": _declared}) with data.datavisa.tiers as tiers
	_codes(d) == {"location_source_not_accepted"}
	attested := object.union(_declared, {"source": "attested", "attested": "DE"})
	supervision.decision.allow with input as object.union(_ask, {"origin": attested}) with data.datavisa.tiers as tiers
}

test_a_tier_s_supervise_sources_rule_supervisors if {
	sources := {"approve": ["attested", "derived"], "supervise": ["attested", "derived", "declared"]}
	tiers := _tiers_wanting("confidential", "location_sources", sources)
	supervision.decision.allow with input as object.union(_ask, {"origin": _declared}) with data.datavisa.tiers as tiers
	stricter := {"approve": ["attested", "derived", "declared"], "supervise": ["attested"]}
	strict_tiers := _tiers_wanting("confidential", "location_sources", stricter)
	d := supervision.decision with input as object.union(_ask, {"origin": _declared}) with data.datavisa.tiers as strict_tiers
	_codes(d) == {"location_source_not_accepted"}
}

test_a_declared_location_that_the_network_contradicts_is_refused if {
	contradicted := object.union(_declared, {"derived": "US"})
	d := supervision.decision with input as object.union(_ask, {"origin": contradicted})
	"location_mismatch" in _codes(d)
}

test_how_often_a_lease_is_decided_again_is_policy_s if {
	supervision.decision.redecide_every == 12 with input as _ask
	settings := object.union(data.datavisa.supervised, {"redecide_every": 3})
	supervision.decision.redecide_every == 3 with input as _ask with data.datavisa.supervised as settings
}
