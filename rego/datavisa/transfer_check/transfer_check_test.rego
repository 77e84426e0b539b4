package datavisa.transfer_check_test

import data.datavisa.transfer_check

_t0 := 1780272000000000000 # mid 2026, in ns

_s := 1000000000

_t1 := {
	"id": "t1", "resource": "eu-customer-analytics", "target_region": "aws:us-east-1",
	"importer": "acme-inc", "evidence": [], "retention_s": null,
	"starts_ns": _t0, "expires_ns": _t0 + (3600 * _s),
}

_ask := {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "importer": "acme-inc", "transfers": [_t1]}

_check(patch, now) := d if {
	d := transfer_check.decision with input as object.union(_ask, patch)
		with time.now_ns as now
}

_codes(d) := {r.code | some r in d.reasons}

test_allowed_only_inside_the_window if {
	cases := [
		{"now": _t0 - 1, "codes": {"transfer_window_closed"}},
		{"now": _t0, "codes": set()},
		{"now": _t0 + (3599 * _s), "codes": set()},
		{"now": _t0 + (3600 * _s), "codes": {"transfer_window_closed"}},
	]
	[c.now | some c in cases; d := _check({}, c.now); _codes(d) != c.codes] == []
	d := _check({}, _t0 + 1)
	d.allow
	d.transfer_id == "t1"
	d.expires_at == "2026-06-01T01:00:00Z"
}

test_only_exactly_that_source_target_and_importer if {
	cases := [
		{"resource": "us-crm-contacts"},
		{"target_region": "aws:us-west-2"},
		{"importer": "partner-llc"},
		{"importer": ""},
		{"transfers": []},
		{"transfer_id": "t2"},
	]
	[c | some c in cases; _codes(_check(c, _t0 + 1)) != {"no_approved_transfer"}] == []
	_check({"transfer_id": "t1"}, _t0 + 1).allow
}

test_the_copy_is_judged_again_by_the_current_policy if {
	# the importer's DPF certification is withdrawn: the adequacy no longer covers it
	withdrawn := transfer_check.decision with input as _ask
		with time.now_ns as _t0 + 1
		with data.datavisa.entities["acme-inc"].frameworks as []
	not withdrawn.allow
	_codes(withdrawn) == {"transfer_not_permitted"}

	# an adequacy decision past its `until`
	uk := object.union(_t1, {"target_region": "aws:eu-west-2", "importer": null, "starts_ns": 0, "expires_ns": 9000000000000000000})
	ask := {"resource": "eu-customer-analytics", "target_region": "aws:eu-west-2", "transfers": [uk]}
	transfer_check.decision.allow with input as ask with time.now_ns as _t0
	after := transfer_check.decision with input as ask with time.now_ns as time.parse_rfc3339_ns("2032-01-01T00:00:00Z")
	_codes(after) == {"transfer_not_permitted"}
}

test_a_retention_the_policy_no_longer_allows_denies if {
	upi := {
		"id": "t3", "resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1",
		"importer": "", "evidence": [], "retention_s": 86400, "starts_ns": _t0, "expires_ns": _t0 + (3600 * _s),
	}
	ask := {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "transfers": [upi]}
	transfer_check.decision.allow with input as ask with time.now_ns as _t0 + 1
	tighter := transfer_check.decision with input as ask
		with time.now_ns as _t0 + 1
		with data.datavisa.localisation.IN.payment.copies.max_retention_s as 3600
	_codes(tighter) == {"retention_exceeds_localisation_max"}
}
