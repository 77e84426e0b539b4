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
	d.transfer == {"cross_border": false, "basis": "in_jurisdiction", "scope": null}
}

test_denials_name_their_reason if {
	cases := [
		{"patch": {"subject": "mallory"}, "code": "unknown_subject"},
		{"patch": {"resource": "nope"}, "code": "unknown_resource"},
		{"patch": {"actions": ["delete"]}, "code": "action_not_permitted"},
		{"patch": {"duration_s": 0}, "code": "duration_invalid"},
		{"patch": {"duration_s": 14401}, "code": "duration_exceeds_tier_max"},
		{"patch": {"reason": "  "}, "code": "justification_required"},
		{"patch": {"subject": "pat", "location": "US"}, "code": "location_not_permitted"},
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

_mid_2026 := 1780272000000000000

_decide(patch) := d if {
	d := request.decision with input as object.union(_ask, patch)
		with time.now_ns as _mid_2026
}

test_a_travelling_employee_is_treated_no_worse_than_a_transfer_and_approved_the_same if {
	travelling := _decide({"location": "US"})
	travelling.allow
	travelling.transfer == {"cross_border": false, "basis": "same_entity_travel", "scope": null}
	abroad := _decide({"subject": "carol", "location": "US"})
	travelling.approvals_required == abroad.approvals_required
	travelling.approvals_required == [{"group": "data_owner", "count": 1}, {"group": "dpo", "count": 1}]
}

test_restricted_data_is_not_reached_while_travelling if {
	d := _decide({"resource": "eu-payments-ledger", "location": "US", "duration_s": 600})
	not d.allow
	"location_not_permitted" in _codes(d)
}

test_travelling_employee_may_reach_internal_data if {
	d := _decide({"resource": "eu-service-metrics", "location": "US"})
	d.allow
	d.quorum_met
	d.transfer.basis == "same_entity_travel"
}

test_dpf_certified_importer_needs_the_dpo_too if {
	d := _decide({"subject": "carol", "location": "US"})
	d.allow
	d.transfer == {"cross_border": true, "basis": "adequacy", "scope": "eu_us_dpf"}
	d.approvals_required == [{"group": "data_owner", "count": 1}, {"group": "dpo", "count": 1}]
}

test_evidence_is_checked_against_the_data_jurisdiction if {
	cases := [
		{"patch": {"subject": "pat", "location": "US"}, "allow": false, "basis": "none"},
		{"patch": {"subject": "pat", "location": "US", "evidence": ["scc"]}, "allow": true, "basis": "scc"},
		{"patch": {"subject": "pat", "location": "US", "evidence": ["pia"]}, "allow": false, "basis": "none"},
		{"patch": {"resource": "sa-patient-records", "location": "DE", "evidence": ["scc"]}, "allow": false, "basis": "none"},
		{"patch": {"resource": "sa-patient-records", "location": "DE", "evidence": ["scc", "risk_assessment"]}, "allow": true, "basis": "scc"},
		{"patch": {"resource": "cn-customer-profiles", "location": "DE", "evidence": ["cac"]}, "allow": true, "basis": "cac"},
		{"patch": {"resource": "ru-customer-register", "location": "DE", "evidence": ["cac", "scc"]}, "allow": false, "basis": "none"},
		{"patch": {"resource": "qc-member-directory", "location": "CA", "evidence": ["pia"]}, "allow": true, "basis": "pia"},
	]
	every c in cases {
		d := _decide(c.patch)
		d.allow == c.allow
		d.transfer.basis == c.basis
	}
}

test_restricted_data_is_reached_from_its_jurisdiction_only if {
	inside := _decide({"resource": "eu-payments-ledger", "location": "FR", "duration_s": 600})
	inside.allow
	inside.approvals_required == [{"group": "data_owner", "count": 1}, {"group": "security_officer", "count": 1}]
	inside.activation_deadline_s == 1800
	outside := _decide({"subject": "grace", "resource": "eu-payments-ledger", "location": "GB", "duration_s": 600})
	_codes(outside) == {"location_not_permitted"}
	outside.transfer.basis == "adequacy"
}

test_sectoral_rules_hold_inside_the_jurisdiction if {
	itar := {"resource": "us-itar-designs", "location": "US", "duration_s": 600}
	cjis := {"resource": "us-cjis-records", "location": "US", "duration_s": 600}
	_decide(object.union(itar, {"subject": "ursula"})).allow
	_codes(_decide(object.union(itar, {"subject": "viktor"}))) == {"clearance_required"}
	_codes(_decide(object.union(itar, {"subject": "ursula", "location": "CA"}))) == {"location_not_permitted"}
	_decide(object.union(cjis, {"subject": "jade"})).allow
	_codes(_decide(object.union(cjis, {"subject": "carol"}))) == {"clearance_required"}
}

test_public_data_may_be_reached_from_an_unknown_place if {
	d := _decide({"resource": "public-docs", "location": "unknown"})
	d.allow
}

test_evidence_the_datas_jurisdiction_does_not_know_is_refused_naming_the_known_kinds if {
	asked := object.union(_ask, {"resource": "eu-customer-analytics", "evidence": ["cac_assessment"]})
	got := request.decision with input as asked
	not got.allow
	some reason in got.reasons
	reason.code == "unknown_evidence"
	contains(reason.message, "it knows: bcr, scc")
}

test_evidence_for_localised_data_says_no_safeguard_can_lift_it if {
	asked := object.union(_ask, {"resource": "ru-customer-register", "location": "DE", "evidence": ["scc"]})
	got := request.decision with input as asked
	some reason in got.reasons
	reason.code == "unknown_evidence"
	contains(reason.message, "it knows none")
}

_location_message(patch) := reason.message if {
	some reason in _decide(patch).reasons
	reason.code == "location_not_permitted"
}

test_a_residency_denial_names_the_law_and_what_would_make_it_lawful if {
	abroad := _location_message({"subject": "pat", "location": "US"})
	contains(abroad, "held in EU (European Union and EEA (GDPR)) may not be reached from US")
	contains(abroad, "lawful with evidence of bcr (GDPR Art. 47) or scc (GDPR Art. 46(2)(c)")
	china := _location_message({"resource": "cn-customer-profiles", "location": "DE"})
	contains(china, "PIPL Art. 38-40")
	contains(china, "reached from abroad only with evidence of cac")
	russia := _location_message({"resource": "ru-customer-register", "location": "DE"})
	contains(russia, "152-FZ")
	contains(russia, "no evidence can make that lawful: the data is localised")
	restricted := _location_message({"subject": "pat", "resource": "eu-payments-ledger", "location": "US", "duration_s": 600})
	contains(restricted, "no safeguard this tier accepts")
}

test_a_scheduled_start_is_judged_by_the_schedule_rules if {
	request.decision.allow with input as object.union(_ask, {"start_in_s": 3600})
	_codes(request.decision) == {"start_in_past"} with input as object.union(_ask, {"start_in_s": -1})
	_codes(request.decision) == {"start_too_far_ahead"} with input as object.union(_ask, {"start_in_s": 2592001})
}

test_saudi_data_leaves_on_a_safeguard_and_a_risk_assessment if {
	saudi := object.union(_ask, {"resource": "sa-patient-records"})
	certified := request.decision with input as object.union(saudi, {"evidence": ["accreditation_certificate", "risk_assessment"]})
		with time.now_ns as time.parse_ns("2006-01-02", "2026-06-01")
	certified.allow
	certified.transfer.basis == "accreditation"
	{"group": "dpo", "count": 1} in certified.approvals_required
	alone := request.decision with input as object.union(saudi, {"evidence": ["accreditation_certificate"]})
		with time.now_ns as time.parse_ns("2006-01-02", "2026-06-01")
	_codes(alone) == {"location_not_permitted"}
}
