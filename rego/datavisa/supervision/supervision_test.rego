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
