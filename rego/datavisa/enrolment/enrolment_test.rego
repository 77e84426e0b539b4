package datavisa.enrolment_test

import data.datavisa.enrolment

_codes(d) := {r.code | some r in d.reasons}

_fresh := {"age_s": 30, "amr": ["pwd"]}

_enrol(subject, method) := {"subject": subject, "method": method, "action": "enrol", "authentication": _fresh}

_totp_tiers := object.union(data.datavisa.tiers, {"restricted": object.union(
	data.datavisa.tiers.restricted,
	{"step_up": {"approve": {"max_age_s": 300, "methods": ["webauthn", "totp"]}}},
)})

test_a_person_may_enrol_a_security_key if {
	enrolment.decision.allow with input as _enrol("bob", "webauthn")
}

test_totp_only_where_a_tier_accepts_it if {
	d := enrolment.decision with input as _enrol("bob", "totp")
		with data.datavisa.tiers as object.remove(data.datavisa.tiers, ["restricted", "confidential"])
	not d.allow
	_codes(d) == {"method_not_allowed"}
	enrolment.decision.allow with input as _enrol("bob", "totp") with data.datavisa.tiers as _totp_tiers
	enrolment.methods == {"webauthn", "totp"} with data.datavisa.tiers as _totp_tiers
}

test_no_one_outside_the_directory_and_no_unknown_method if {
	_codes(enrolment.decision) == {"not_a_person"} with input as _enrol("mallory", "webauthn")
	_codes(enrolment.decision) == {"unknown_method"} with input as _enrol("bob", "sms")
}

test_a_service_enrols_nothing if {
	_codes(enrolment.decision) == {"not_a_person"} with input as _enrol("etl-eu", "webauthn")
}

test_enrolling_wants_a_recent_sign_in_or_step_up_and_using_does_not if {
	every authentication in [null, {"age_s": 901, "amr": ["mfa"]}, {"age_s": null, "amr": []}, {"age_s": 5000, "step_up": {"method": "webauthn", "age_s": 901}}] {
		d := enrolment.decision with input as object.union(_enrol("bob", "webauthn"), {"authentication": authentication})
		_codes(d) == {"step_up_required"}
	}
	[reason] := [r | some r in enrolment.decision.reasons] with input as object.union(_enrol("bob", "webauthn"), {"authentication": null})
	reason.step_up.max_age_s == 900
	enrolment.decision.allow with input as object.union(_enrol("bob", "webauthn"), {"authentication": {"age_s": 5000, "step_up": {"method": "webauthn", "age_s": 60}}})
	enrolment.decision.allow with input as {"subject": "bob", "method": "webauthn", "action": "use"}
	_codes(enrolment.decision) == {"step_up_required"} with input as _enrol("bob", "webauthn") with data.datavisa.step_up_enrolment as {}
}
