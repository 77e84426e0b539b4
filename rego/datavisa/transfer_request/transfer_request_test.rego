package datavisa.transfer_request_test

import data.datavisa.transfer_request

_mid_2026 := 1780272000000000000

_ask := {
	"subject": "alice", "resource": "eu-customer-analytics", "target_region": "aws:us-east-1",
	"importer": "acme-inc", "evidence": [], "duration_s": 7200, "reason": "CHG-12 migration",
	"overdue_deletions": [],
}

_decide(patch) := d if {
	d := transfer_request.decision with input as object.union(_ask, patch)
		with time.now_ns as _mid_2026
}

_codes(d) := {r.code | some r in d.reasons}

test_a_lawful_copy_job_gets_its_numbers_from_policy if {
	d := _decide({})
	d.allow
	d.approvals_required == [{"group": "data_owner", "count": 1}, {"group": "dpo", "count": 1}]
	not d.quorum_met
	d.pending_lifetime_s == 3600
	d.max_duration_s == 86400
	d.max_retention_s == null
	d.countries == ["US"]
	d.transfer == {"cross_border": true, "basis": "adequacy", "scope": "eu_us_dpf"}
}

test_public_data_needs_no_approval if {
	d := _decide({"resource": "public-docs", "target_region": "aws:eu-central-1", "importer": ""})
	d.allow
	d.quorum_met
}

test_localised_data_that_may_never_leave_is_refused_naming_the_law if {
	d := _decide({"resource": "ru-customer-register", "target_region": "onprem:frankfurt-1"})
	"copy_not_permitted" in _codes(d)
	some r in d.reasons
	r.code == "copy_not_permitted"
	contains(r.message, "152-FZ")
}

test_the_window_and_the_reason_are_checked if {
	cases := [
		{"patch": {"duration_s": 0}, "codes": {"duration_invalid"}},
		{"patch": {"duration_s": 90000}, "codes": {"duration_exceeds_transfer_max"}},
		{"patch": {"duration_s": 7200, "retention_s": 3600}, "codes": {"window_exceeds_retention"}},
		{"patch": {"reason": "  "}, "codes": {"justification_required"}},
		{"patch": {"subject": "nobody"}, "codes": {"unknown_subject"}},
		{"patch": {"target_region": "aws:eu-central-1"}, "codes": {"same_region"}},
		{"patch": {"retention_s": 7200}, "codes": set()},
	]
	[c.patch | some c in cases; _codes(_decide(c.patch)) != c.codes] == []
}

test_the_rules_set_the_longest_window_and_whether_a_reason_is_needed if {
	rules := {"max_window_s": 600, "justification_required": false, "approvals_by_jurisdiction": {}, "routes": {}}
	d := transfer_request.decision with input as object.union(_ask, {"reason": ""})
		with data.datavisa.transfer_rules as rules
		with time.now_ns as _mid_2026
	_codes(d) == {"duration_exceeds_transfer_max"}
	d.max_duration_s == 600
}

_upi := {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "importer": "", "retention_s": 86400}

_overdue := {"id": "t1", "resource": "in-upi-transactions", "target_region": "gcp:europe-west3", "delete_by_ns": _mid_2026 - 1000000000}

test_an_overdue_deletion_blocks_transfers_under_the_same_localisation if {
	_decide(_upi).allow
	blocked := _decide(object.union(_upi, {"overdue_deletions": [_overdue]}))
	_codes(blocked) == {"deletion_overdue"}
	some r in blocked.reasons
	contains(r.message, "RBI payment data storage directive")
	contains(r.message, "transfer t1")

	# data under no localisation, or another one, is not blocked
	_decide({"overdue_deletions": [_overdue]}).allow
	cn := {"resource": "cn-customer-profiles", "target_region": "aws:ap-northeast-1", "importer": "", "individuals": 10, "sensitive_individuals": 0}
	_decide(object.union(cn, {"overdue_deletions": [_overdue]})).allow
}

test_a_scheduled_copy_job_is_judged_by_the_schedule_rules if {
	transfer_request.decision.allow with input as object.union(_ask, {"start_in_s": 3600})
	_codes(transfer_request.decision) == {"start_in_past"} with input as object.union(_ask, {"start_in_s": -1})
}
