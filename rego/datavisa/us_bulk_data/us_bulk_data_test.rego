package datavisa.us_bulk_data_test

import data.datavisa.access
import data.datavisa.breakglass
import data.datavisa.request
import data.datavisa.transfer
import data.datavisa.us_bulk_data

# The day before the rule applies, its first day, the day before and the first day of the
# due-diligence duties, and mid-2026.
_before := time.parse_ns("2006-01-02", "2025-04-07")

_first_day := time.parse_ns("2006-01-02", "2025-04-08")

_before_due_diligence := time.parse_ns("2006-01-02", "2025-10-05")

_due_diligence := time.parse_ns("2006-01-02", "2025-10-06")

_mid_2026 := 1780272000000000000

_both := ["cisa_security_requirements", "dsp_compliance_program"]

_ask(subject, resource, evidence) := {
	"subject": subject, "resource": resource, "actions": ["read"], "duration_s": 3600,
	"location": "US", "reason": "INC-1", "evidence": evidence,
}

_codes(reasons) := {r.code | some r in reasons}

# Who asks, for which data, with which evidence, when → the reason codes of the request.
_requests := [
	# not covered: a German employee, a US person employed in the US
	{"s": "alice", "r": "us-claims-marketplace", "ev": [], "at": _mid_2026, "codes": set()},
	{"s": "carol", "r": "us-genomics-cohort", "ev": [], "at": _mid_2026, "codes": set()},
	# lin: employed in the US but primarily resident in Hong Kong
	{"s": "lin", "r": "us-claims-marketplace", "ev": [], "at": _before, "codes": set()},
	{"s": "lin", "r": "us-claims-marketplace", "ev": [], "at": _first_day, "codes": {"security_requirements_required"}},
	{"s": "lin", "r": "us-claims-marketplace", "ev": ["cisa_security_requirements"], "at": _first_day, "codes": set()},
	{"s": "lin", "r": "us-claims-marketplace", "ev": ["cisa_security_requirements"], "at": _before_due_diligence, "codes": set()},
	{"s": "lin", "r": "us-claims-marketplace", "ev": ["cisa_security_requirements"], "at": _due_diligence, "codes": {"security_requirements_required"}},
	{"s": "lin", "r": "us-claims-marketplace", "ev": _both, "at": _mid_2026, "codes": set()},
	# wei: employed by a Chinese entity; bulk genomic data is never his to reach
	{"s": "wei", "r": "us-genomics-cohort", "ev": _both, "at": _mid_2026, "codes": {"covered_person_prohibited"}},
	{"s": "wei", "r": "us-genomics-cohort", "ev": [], "at": _before, "codes": set()},
	{"s": "wei", "r": "us-claims-marketplace", "ev": _both, "at": _mid_2026, "codes": set()},
	# the evidence is known only for data the program judges
	{"s": "lin", "r": "us-crm-contacts", "ev": ["cisa_security_requirements"], "at": _mid_2026, "codes": {"unknown_evidence"}},
]

test_requests_by_covered_persons_follow_28_cfr_202 if {
	every c in _requests {
		_codes(request.deny) == c.codes with input as _ask(c.s, c.r, c.ev) with time.now_ns as c.at
	}
}

test_a_denial_cites_the_law_and_its_date if {
	reasons := request.deny with input as _ask("lin", "us-claims-marketplace", []) with time.now_ns as _mid_2026
	count(reasons) == 2
	every r in reasons {
		contains(r.message, "lin primarily resides in HK, a country of concern")
		contains(r.message, "in force from 2025-04-08")
		contains(r.message, "bulk health data (45000 US persons or devices, more than 10000)")
	}
	some r in reasons
	contains(r.message, "28 CFR 202.1001")
	contains(r.message, "from 2025-10-06")
	[p] := [r | some r in request.deny; r.code == "covered_person_prohibited"] with input as _ask("wei", "us-genomics-cohort", []) with time.now_ns as _mid_2026
	contains(p.message, "wei works for acme-china, and acme-china is organised in CN")
	contains(p.message, "28 CFR 202.303")
}

_grant(evidence) := {"lin": {"g1": {
	"resource": "us-claims-marketplace", "actions": ["read"], "countries": ["US"], "evidence": evidence,
	"starts_ns": 0, "expires_ns": _mid_2026 + 3600000000000, "expires_at": "2026-06-01T01:00:00Z",
	"revision": "r1",
}}}

_check := {"subject": "lin", "resource": "us-claims-marketplace", "action": "read", "location": "US"}

# The common allow does not pass data the program judges: the grant's evidence decides.
test_access_by_a_covered_person_needs_the_evidence_on_the_grant if {
	without := access.decision with input as _check with data.grants as _grant([]) with time.now_ns as _mid_2026
	not without.allow
	_codes(without.reasons) == {"security_requirements_required"}
	with_both := access.decision with input as _check with data.grants as _grant(_both) with time.now_ns as _mid_2026
	with_both.allow
	before := access.decision with input as _check with data.grants as _grant([]) with time.now_ns as _before
	before.allow
}

_copy(resource, target, importer, evidence) := {"resource": resource, "target_region": target, "importer": importer, "evidence": evidence}

test_a_licensed_dataset_is_never_brokered_to_a_covered_person if {
	to_china := transfer.deny with input as _copy("us-claims-marketplace", "aws:eu-central-1", "acme-china", _both) with time.now_ns as _mid_2026
	_codes(to_china) == {"data_brokerage_prohibited"}
	into_china := transfer.deny with input as _copy("us-claims-marketplace", "aws:cn-north-1", "", _both) with time.now_ns as _mid_2026
	"data_brokerage_prohibited" in _codes(into_china)
	before := transfer.deny with input as _copy("us-claims-marketplace", "aws:eu-central-1", "acme-china", _both) with time.now_ns as _before
	_codes(before) == set()
	to_germany := transfer.deny with input as _copy("us-claims-marketplace", "aws:eu-central-1", "acme-gmbh", []) with time.now_ns as _mid_2026
	_codes(to_germany) == set()
}

test_copies_to_a_covered_person_are_prohibited_or_restricted if {
	genomes := transfer.deny with input as _copy("us-genomics-cohort", "aws:eu-central-1", "acme-china", _both) with time.now_ns as _mid_2026
	{[r.code, r.field] | some r in genomes} == {["covered_person_prohibited", "target_region"]}
	claims := {"us_sensitive_data": {"health": 20000}}
	china := {"country": "CN", "subdivision": ""}
	restricted := us_bulk_data.copy_denials(claims, china, "", ["cisa_security_requirements"]) with time.now_ns as _mid_2026
	{[r.code, r.field] | some r in restricted} == {["security_requirements_required", "evidence"]}
	us_bulk_data.copy_denials(claims, china, "", _both) == set() with time.now_ns as _mid_2026
}

test_government_related_data_counts_at_any_size if {
	us_bulk_data.covered_data({"government_related_data": true})
	not us_bulk_data.covered_data({"us_sensitive_data": {"health": 10000}})
	us_bulk_data.covered_data({"us_sensitive_data": {"health": 10001}})
	denials := us_bulk_data.access_denials({"government_related_data": true}, "wei", set()) with time.now_ns as _mid_2026
	every r in denials {
		contains(r.message, "government-related data")
	}
	count(denials) == 2
}

test_who_is_a_covered_person if {
	bulk := {"us_sensitive_data": {"biometric": 5000}}
	covered := {s |
		some s, _ in data.datavisa.subjects
		count(us_bulk_data.access_denials(bulk, s, set())) > 0 with time.now_ns as _mid_2026
	}
	covered == {"wei", "lin", "mei"} # mei: the data protection officer employed in China
	designated := us_bulk_data.access_denials(bulk, "carol", set()) with data.datavisa.subjects.carol.covered_person as true
		with time.now_ns as _mid_2026
	count(designated) == 2
	owned := us_bulk_data.access_denials(bulk, "alice", set()) with data.datavisa.entities["acme-gmbh"].covered_person as true
		with time.now_ns as _mid_2026
	count(owned) == 2
}

test_us_restricted_destinations_are_the_countries_of_concern if {
	{c | some c in data.datavisa.jurisdictions.US.restricted_destinations} == {c | some c in data.datavisa.data_security_program.countries_of_concern}
}

test_no_break_glass_for_a_covered_person_into_bulk_us_data if {
	ask := {
		"subject": "lin", "resource": "us-claims-marketplace", "actions": ["read"], "duration_s": 900,
		"location": "US", "reason": "INC-9001", "overdue_reviews": 0,
	}
	oncall := {"lin": object.union(data.datavisa.subjects.lin, {"roles": ["engineer", "oncall"], "team": "sales"})}
	covered := breakglass.deny with input as ask with data.datavisa.subjects as object.union(data.datavisa.subjects, oncall)
		with time.now_ns as _mid_2026
	_codes(covered) == {"security_requirements_required"}
	before := breakglass.deny with input as ask with data.datavisa.subjects as object.union(data.datavisa.subjects, oncall)
		with time.now_ns as _before
	_codes(before) == set()
}
