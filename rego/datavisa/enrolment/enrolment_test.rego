package datavisa.enrolment_test

import data.datavisa.enrolment

_codes(d) := {r.code | some r in d.reasons}

_totp_tiers := object.union(data.datavisa.tiers, {"restricted": object.union(
	data.datavisa.tiers.restricted,
	{"step_up": {"approve": {"max_age_s": 300, "methods": ["webauthn", "totp"]}}},
)})

test_a_person_may_enrol_a_security_key if {
	enrolment.decision.allow with input as {"subject": "bob", "method": "webauthn"}
}

test_totp_only_where_a_tier_accepts_it if {
	d := enrolment.decision with input as {"subject": "bob", "method": "totp"}
		with data.datavisa.tiers as object.remove(data.datavisa.tiers, ["restricted", "confidential"])
	not d.allow
	_codes(d) == {"method_not_allowed"}
	enrolment.decision.allow with input as {"subject": "bob", "method": "totp"} with data.datavisa.tiers as _totp_tiers
	enrolment.methods == {"webauthn", "totp"} with data.datavisa.tiers as _totp_tiers
}

test_no_one_outside_the_directory_and_no_unknown_method if {
	_codes(enrolment.decision) == {"not_a_person"} with input as {"subject": "mallory", "method": "webauthn"}
	_codes(enrolment.decision) == {"unknown_method"} with input as {"subject": "bob", "method": "sms"}
}

test_a_service_enrols_nothing if {
	_codes(enrolment.decision) == {"not_a_person"} with input as {"subject": "etl-eu", "method": "webauthn"}
}
