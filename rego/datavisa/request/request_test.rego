package datavisa.request_test

import data.datavisa.request

_ask := {
	"subject": "alice",
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"duration_s": 1200,
	"location": "DE",
	"reason": "INC-4711",
}

_codes(d) := {r.code | some r in d.reasons}

test_confidential_request_from_inside_the_eu_is_allowed_and_needs_a_data_owner if {
	d := request.decision with input as _ask
	d.allow
	d.approvals_required == [{"group": "data_owner", "count": 1}]
	not d.quorum_met
	d.max_duration_s == 14400
	d.countries == ["DE"]
	d.transfer == {"cross_border": false, "basis": "in_jurisdiction"}
}

test_denials_name_their_reason if {
	cases := [
		{"patch": {"subject": "mallory"}, "code": "unknown_subject"},
		{"patch": {"resource": "nope"}, "code": "unknown_resource"},
		{"patch": {"actions": ["delete"]}, "code": "action_not_permitted"},
		{"patch": {"duration_s": 0}, "code": "duration_invalid"},
		{"patch": {"duration_s": 14401}, "code": "duration_exceeds_tier_max"},
		{"patch": {"reason": "  "}, "code": "justification_required"},
		{"patch": {"location": "US"}, "code": "location_not_permitted"},
		{"patch": {"location": "unknown"}, "code": "location_not_permitted"},
	]
	every c in cases {
		d := request.decision with input as object.union(_ask, c.patch)
		not d.allow
		c.code in _codes(d)
	}
}

test_missing_reason_is_refused_where_the_tier_wants_one if {
	d := request.decision with input as object.remove(_ask, ["reason"])
	_codes(d) == {"justification_required"}
}

test_public_data_needs_no_approval if {
	d := request.decision with input as object.union(_ask, {"resource": "public-docs", "location": "US"})
	d.allow
	d.quorum_met
	d.approvals_required == []
}

test_unknown_resource_sets_no_numbers if {
	d := request.decision with input as object.union(_ask, {"resource": "nope"})
	d.max_duration_s == 0
	d.pending_lifetime_s == 0
	d.transfer.basis == "none"
}
