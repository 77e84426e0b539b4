package datavisa.foreign_authority_test

import data.datavisa.transfer

_before := time.parse_ns("2006-01-02", "2025-09-11")

_applies := time.parse_ns("2006-01-02", "2025-09-12")

_ask(extra) := object.union(
	{"resource": "eu-service-metrics", "target_region": "aws:us-east-1", "importer": "acme-inc", "requester_kind": "foreign_public_authority"},
	extra,
)

_reasons(ask, at) := reasons if {
	reasons := transfer.deny with input as ask with time.now_ns as at
}

test_a_foreign_authority_gets_eu_non_personal_data_only_on_an_international_agreement if {
	cases := [
		# from 2025-09-12 (Data Act Art. 32): refused without the agreement, allowed with it
		{"extra": {}, "at": _applies, "codes": {"foreign_authority_request"}},
		{"extra": {"evidence": ["international_agreement"]}, "at": _applies, "codes": set()},
		# the day before, the Data Act does not apply yet: an ordinary copy
		{"extra": {}, "at": _before, "codes": set()},
		# the organisation's own copy is no authority's request
		{"extra": {"requester_kind": ""}, "at": _applies, "codes": set()},
		# an authority of a Member State is no foreign one
		{"extra": {"target_region": "azure:westeurope"}, "at": _applies, "codes": set()},
		# personal data: GDPR Art. 48, whatever the date
		{"extra": {"resource": "eu-customer-analytics"}, "at": _before, "codes": {"foreign_authority_request"}},
		{"extra": {"resource": "eu-customer-analytics", "evidence": ["international_agreement"]}, "at": _before, "codes": set()},
		# a kind nobody knows
		{"extra": {"requester_kind": "police"}, "at": _applies, "codes": {"unknown_requester_kind"}},
	]
	every c in cases {
		got := {r.code | some r in _reasons(_ask(c.extra), c.at)}
		got == c.codes
	}
}

test_the_refusal_cites_the_data_act_and_names_the_field if {
	some reason in _reasons(_ask({}), _applies)
	reason.code == "foreign_authority_request"
	reason.field == "evidence"
	contains(reason.message, "non-personal data held in EU is refused without international_agreement")
	contains(reason.message, "Data Act (EU) 2023/2854 Art. 32, applicable from 2025-09-12")
}

test_data_of_a_jurisdiction_without_such_a_rule_is_an_ordinary_copy if {
	ask := {"resource": "cn-metrics-x", "source_region": "aws:us-east-1", "tier": "internal", "tags": [], "target_region": "aws:ca-central-1", "requester_kind": "foreign_public_authority"}
	not "foreign_authority_request" in {r.code | some r in _reasons(object.remove(ask, ["resource"]), _applies)}
}

test_a_transfer_check_judges_the_authoritys_request_again if {
	held := {
		"id": "t1", "resource": "eu-service-metrics", "target_region": "aws:us-east-1", "importer": "acme-inc",
		"evidence": [], "retention_s": null, "requester_kind": "foreign_public_authority",
		"starts_ns": _applies, "expires_ns": _applies + 3600000000000,
	}
	ask := {"resource": "eu-service-metrics", "target_region": "aws:us-east-1", "importer": "acme-inc", "transfers": [held]}
	d := data.datavisa.transfer_check.decision with input as ask with time.now_ns as _applies + 1
	not d.allow
	"foreign_authority_request" in {r.code | some r in d.reasons}
}
