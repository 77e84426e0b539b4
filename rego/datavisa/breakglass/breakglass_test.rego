package datavisa.breakglass_test

import data.datavisa.breakglass

_ask := {
	"subject": "oscar",
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"duration_s": 900,
	"location": "DE",
	"reason": "INC-9000: pipeline down",
	"overdue_reviews": 0,
}

_codes(d) := {r.code | some r in d.reasons}

test_oncall_engineer_breaks_glass_into_own_team_data_from_home if {
	d := breakglass.decision with input as _ask
	d.allow
	d.max_duration_s == 900
	d.review_deadline_s == 86400
	d.countries == ["DE"]
	d.transfer == {"cross_border": false, "basis": "in_jurisdiction"}
}

test_break_glass_denials_name_their_reason if {
	cases := [
		{"patch": {"subject": "alice"}, "codes": {"breakglass_not_permitted"}},
		{"patch": {"subject": "jack"}, "codes": {"breakglass_not_permitted"}},
		{"patch": {"resource": "eu-payments-ledger"}, "codes": {"breakglass_not_permitted"}},
		{"patch": {"overdue_reviews": 1}, "codes": {"review_overdue"}},
		{"patch": {"duration_s": 901}, "codes": {"duration_exceeds_breakglass_max"}},
		{"patch": {"duration_s": 0}, "codes": {"duration_invalid"}},
		{"patch": {"reason": ""}, "codes": {"justification_required"}},
		{"patch": {"actions": ["delete"]}, "codes": {"action_not_permitted"}},
		{"patch": {"location": "US"}, "codes": {"location_not_permitted"}},
		{"patch": {"location": "unknown"}, "codes": {"location_not_permitted"}},
		{"patch": {"subject": "mallory"}, "codes": {"unknown_subject"}},
	]
	every c in cases {
		d := breakglass.decision with input as object.union(_ask, c.patch)
		not d.allow
		_codes(d) == c.codes
	}
}

test_break_glass_keeps_sectoral_rules if {
	d := breakglass.decision with input as object.union(_ask, {"resource": "us-itar-designs", "location": "US"})
		with data.datavisa.tiers.restricted.breakglass as true
		with data.datavisa.subjects.oscar.team as "defense"
	_codes(d) == {"clearance_required"}
}

test_unknown_resource_sets_no_numbers if {
	d := breakglass.decision with input as object.union(_ask, {"resource": "nope"})
	_codes(d) == {"unknown_resource"}
	d.max_duration_s == 0
	d.transfer.basis == "none"
}

test_a_tier_with_step_up_wants_a_recent_sign_in_for_break_glass if {
	tier := data.datavisa.resources[_ask.resource].tier
	tiers := object.union(data.datavisa.tiers, {tier: object.union(data.datavisa.tiers[tier], {"step_up": {"break_glass": {"max_age_s": 300}}})})
	{r.code | some r in breakglass.decision.reasons} == {"step_up_required"} with input as _ask with data.datavisa.tiers as tiers
	breakglass.decision.allow with input as object.union(_ask, {"authentication": {"age_s": 5, "amr": []}}) with data.datavisa.tiers as tiers
}
