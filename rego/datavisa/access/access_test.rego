package datavisa.access_test

import data.datavisa.access

_t0 := 1800000000000000000 # an instant in 2027, in ns

_grant := {
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"countries": ["DE"],
	"starts_ns": _t0,
	"expires_ns": _t0 + (20 * 1000000000),
	"revision": "test",
}

_check := {"subject": "alice", "resource": "eu-customer-analytics", "action": "read", "location": "DE"}

_decide(input_patch, grants, now) := d if {
	d := access.decision with input as object.union(_check, input_patch)
		with data.grants as grants
		with time.now_ns as now
}

_codes(d) := {r.code | some r in d.reasons}

test_active_grant_allows_and_names_itself if {
	d := _decide({}, {"alice": {"g1": _grant}}, _t0 + 1)
	d.allow
	d.grant_id == "g1"
	d.expires_at == "2027-01-15T08:00:20Z"
}

test_longest_lasting_grant_is_named if {
	longer := object.union(_grant, {"expires_ns": _grant.expires_ns + 1000000000})
	d := _decide({}, {"alice": {"g1": _grant, "g2": longer}}, _t0 + 1)
	d.grant_id == "g2"
}

test_denials_name_their_reason if {
	grants := {"alice": {"g1": _grant}}
	cases := [
		{"patch": {}, "grants": {}, "now": _t0, "codes": {"no_active_grant"}},
		{"patch": {"subject": "bob"}, "grants": grants, "now": _t0, "codes": {"no_active_grant"}},
		{"patch": {}, "grants": grants, "now": _grant.expires_ns, "codes": {"grant_expired"}},
		{"patch": {}, "grants": grants, "now": _t0 - 1, "codes": {"grant_expired"}},
		{"patch": {"action": "write"}, "grants": grants, "now": _t0, "codes": {"action_not_permitted"}},
		{"patch": {"resource": "nope"}, "grants": grants, "now": _t0, "codes": {"unknown_resource"}},
		{"patch": {"location": "FR"}, "grants": grants, "now": _t0, "codes": {"location_not_permitted"}},
		{"patch": {"location": "US"}, "grants": grants, "now": _t0, "codes": {"location_not_permitted"}},
	]
	every c in cases {
		d := _decide(c.patch, c.grants, c.now)
		not d.allow
		_codes(d) == c.codes
		not d.grant_id
	}
}

test_public_data_needs_no_grant if {
	d := _decide({"resource": "public-docs", "location": "BR"}, {}, _t0)
	d.allow
	d.reasons == set()
}

_abroad(subject, patch) := {subject: {"g1": object.union(_grant, object.union({"countries": ["US"]}, patch))}}

test_residency_is_judged_by_the_current_policy if {
	check := {"subject": "carol", "location": "US"}
	_decide(check, _abroad("carol", {}), _t0).allow
	d := access.decision with input as object.union(_check, check)
		with data.grants as _abroad("carol", {})
		with time.now_ns as _t0
		with data.datavisa.jurisdictions.EU as object.remove(data.datavisa.jurisdictions.EU, ["adequacy"])
	_codes(d) == {"location_not_permitted"}
}

test_evidence_on_the_grant_keeps_a_safeguarded_transfer_lawful if {
	check := {"subject": "pat", "location": "US"}
	_decide(check, _abroad("pat", {"evidence": ["scc"]}), _t0).allow
	_codes(_decide(check, _abroad("pat", {}), _t0)) == {"location_not_permitted"}
}

test_sectoral_rules_are_checked_at_every_use if {
	itar := {"resource": "us-itar-designs", "countries": ["US"]}
	grants := {"viktor": {"g1": object.union(_grant, itar)}, "ursula": {"g1": object.union(_grant, itar)}}
	check := {"resource": "us-itar-designs", "location": "US"}
	_decide(object.union(check, {"subject": "ursula"}), grants, _t0).allow
	_codes(_decide(object.union(check, {"subject": "viktor"}), grants, _t0)) == {"clearance_required"}
}

test_break_glass_grant_allows_like_any_grant if {
	grants := {"oscar": {"bg1": object.union(_grant, {"breakglass": true})}}
	d := _decide({"subject": "oscar"}, grants, _t0)
	d.allow
	d.grant_id == "bg1"
}

test_a_residency_denial_names_the_law_and_the_safeguards_that_would_make_it_lawful if {
	d := _decide({"subject": "pat", "location": "US"}, _abroad("pat", {}), _t0)
	some reason in d.reasons
	reason.code == "location_not_permitted"
	contains(reason.message, "held in EU (European Union and EEA (GDPR)) may not be reached from US")
	contains(reason.message, "lawful with evidence of bcr (GDPR Art. 47) or scc")
}

# Grants as the engine pushes them: each with its expiry in RFC 3339 (expires_at) too.
_pushed(grants) := {subject: {id: object.union(g, {"expires_at": time.format([g.expires_ns, "UTC", "2006-01-02T15:04:05Z07:00"])}) |
	some id, g in held
} |
	some subject, held in grants
}

test_the_common_allow_names_the_expiry_the_engine_pushed if {
	d := _decide({}, {"alice": {"g1": object.union(_grant, {"expires_at": "2027-01-15T08:00:20Z"})}}, _t0 + 1)
	d == {"allow": true, "reasons": set(), "grant_id": "g1", "expires_at": "2027-01-15T08:00:20Z"}
}

test_pushed_expiries_change_no_decision if {
	longer := object.union(_grant, {"expires_ns": _grant.expires_ns + 1000000000})
	writer := object.union(_grant, {"actions": ["write"]})
	held := [
		{"g1": _grant},
		{"g1": _grant, "g2": longer},
		{"g2": _grant, "g1": longer},
		{"g2": _grant, "g1": _grant},
		{"g1": _grant, "g2": writer},
		{"g1": writer},
		{"g1": _grant, "g2": longer, "g3": longer},
		{"g1": object.union(_grant, {"countries": ["FR"]}), "g2": longer},
	]
	patches := [{}, {"action": "write"}, {"location": "FR"}, {"location": "US"}, {"subject": "bob"}]
	every grants in held {
		every patch in patches {
			every now in [_t0 - 1, _t0 + 1, _grant.expires_ns] {
				_decide(patch, _pushed({"alice": grants}), now) == _decide(patch, {"alice": grants}, now)
			}
		}
	}
}

test_the_least_id_of_the_longest_lasting_pushed_grants_is_named if {
	d := _decide({}, _pushed({"alice": {"g2": _grant, "g1": _grant, "g0": object.union(_grant, {"actions": ["write"]})}}), _t0)
	d.grant_id == "g1"
}

test_an_opa_without_the_live_grants_says_it_cannot_decide if {
	# No `with data.grants`: as an OPA just started, before the engine pushed them.
	d := access.decision with input as _check with time.now_ns as _t0
	not d.allow
	_codes(d) == {"policy_unavailable"}
	public := access.decision with input as object.union(_check, {"resource": "public-docs"})
	_codes(public) == {"policy_unavailable"}

	# Pushed, even none at all, they are known: no grant is then a fact.
	_codes(_decide({}, {}, _t0)) == {"no_active_grant"}
}

test_supervised_grant_works_only_while_a_supervisor_is_present if {
	watched := object.union(_grant, {"supervised": true, "supervisor_present": true})
	present := _decide({}, {"alice": {"g1": watched}}, _t0 + 1)
	present.allow
	present.grant_id == "g1"
	absent := object.union(watched, {"supervisor_present": false})
	d := _decide({}, {"alice": {"g1": absent}}, _t0 + 1)
	not d.allow
	_codes(d) == {"supervisor_absent"}
	not d.grant_id
}

test_an_unsupervised_grant_beside_an_absent_supervisor_still_allows if {
	absent := object.union(_grant, {"supervised": true, "supervisor_present": false})
	d := _decide({}, {"alice": {"g1": absent, "g2": _grant}}, _t0 + 1)
	d.allow
	d.grant_id == "g2"
}
