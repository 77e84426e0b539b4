package datavisa.extension_test

import data.datavisa.extension

_t0 := 1800000000000000000 # an instant in 2027, in ns

_s := 1000000000

_grant := {
	"id": "g1",
	"requester": "alice",
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"location": "DE",
	"duration_s": 3600,
	"starts_ns": _t0,
	"expires_ns": _t0 + (3600 * _s),
	"extended_s": 0,
}

_ask := {"subject": "alice", "grant": _grant, "extra_s": 1800, "reason": "INC-4711 still open"}

_decide(patch, grant_patch, now) := d if {
	d := extension.decision with input as object.union(object.union(_ask, patch), {"grant": object.union(_grant, grant_patch)})
		with time.now_ns as now
}

_codes(d) := {r.code | some r in d.reasons}

test_extension_after_half_the_grant_is_allowed_and_needs_the_data_owner if {
	d := _decide({}, {}, _t0 + (1800 * _s))
	d.allow
	d.approvals_required == [{"group": "data_owner", "count": 1}]
	not d.quorum_met
	d.max_extra_s == 14400
}

test_extension_denials_name_their_reason if {
	half := _t0 + (1800 * _s)
	cases := [
		{"patch": {"subject": "bob"}, "grant": {}, "now": half, "codes": {"not_requester"}},
		{"patch": {}, "grant": {}, "now": _t0 + (1799 * _s), "codes": {"extension_too_early"}},
		{"patch": {}, "grant": {}, "now": _t0 + (3600 * _s), "codes": {"grant_not_active"}},
		{"patch": {}, "grant": {}, "now": _t0 - 1, "codes": {"grant_not_active"}},
		{"patch": {"extra_s": 0}, "grant": {}, "now": half, "codes": {"duration_invalid"}},
		{"patch": {"extra_s": 3601}, "grant": {"extended_s": 10800}, "now": half, "codes": {"extension_exceeds_cap"}},
		{"patch": {"reason": " "}, "grant": {}, "now": half, "codes": {"justification_required"}},
		{"patch": {}, "grant": {"resource": "nope"}, "now": half, "codes": {"unknown_resource"}},
	]
	every c in cases {
		d := _decide(c.patch, c.grant, c.now)
		not d.allow
		_codes(d) == c.codes
	}
}

test_what_is_left_to_add_shrinks_and_never_goes_negative if {
	_decide({}, {"extended_s": 14000}, _t0 + (1800 * _s)).max_extra_s == 400
	_decide({}, {"extended_s": 20000}, _t0 + (1800 * _s)).max_extra_s == 0
}

test_internal_extension_needs_no_approval if {
	d := _decide({}, {"resource": "eu-service-metrics"}, _t0 + (1800 * _s))
	d.allow
	d.quorum_met
	d.approvals_required == []
}

test_a_transfer_window_is_not_extended if {
	d := _decide({}, {"kind": "transfer"}, _t0 + (3000 * _s))
	{r.code | some r in d.reasons} == {"not_extendable"}
}
