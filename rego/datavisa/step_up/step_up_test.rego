package datavisa.step_up_test

import data.datavisa.step_up

_tier := {"step_up": {"approve": {"max_age_s": 900, "amr": ["mfa", "hwk"]}, "break_glass": {"max_age_s": 300}}}

_codes(reasons) := {r.code | some r in reasons}

test_a_tier_without_step_up_asks_nothing if {
	step_up.denials({}, "approve", null) == set()
	step_up.denials(_tier, "review", null) == set()
}

test_a_recent_strong_sign_in_satisfies if {
	step_up.denials(_tier, "approve", {"age_s": 60, "amr": ["pwd", "mfa"]}) == set()
	step_up.denials(_tier, "approve", {"age_s": 900, "amr": ["hwk"]}) == set()
	step_up.denials(_tier, "break_glass", {"age_s": 10, "amr": []}) == set()
}

test_no_sign_in_an_old_one_or_a_weak_one_is_refused_saying_what_would_do if {
	every authentication in [null, {"age_s": null, "amr": ["mfa"]}, {"age_s": 901, "amr": ["mfa"]}, {"age_s": 60, "amr": ["pwd"]}] {
		_codes(step_up.denials(_tier, "approve", authentication)) == {"step_up_required"}
	}
	[reason] := [r | some r in step_up.denials(_tier, "approve", null)]
	reason.step_up == {"max_age_s": 900, "amr": ["mfa", "hwk"]}
	contains(reason.message, "within the last 900s with mfa or hwk")
	_codes(step_up.denials(_tier, "break_glass", {"age_s": 301, "amr": ["mfa"]})) == {"step_up_required"}
}

test_the_denial_names_the_acr_values_policy_asks_the_idp_for if {
	tier := {"step_up": {"credentials": {"max_age_s": 600, "acr_values": ["phr"]}, "approve_transfer": {"max_age_s": 300}}}
	[reason] := [r | some r in step_up.denials(tier, "credentials", {"age_s": 601, "amr": []})]
	reason.step_up == {"max_age_s": 600, "amr": [], "acr_values": ["phr"]}
	contains(reason.message, "credentials for this grant needs a sign-in")
	contains(reason.message, "datavisa login --max-age 600 --acr-values 'phr'")
	[transfer] := [r | some r in step_up.denials(tier, "approve_transfer", null)]
	contains(transfer.message, "approving this transfer")
	not transfer.step_up.acr_values
	contains(transfer.message, "(datavisa login --max-age 300)")
	step_up.denials(tier, "approve", null) == set()
}

test_the_decision_judges_a_step_on_a_resources_tier if {
	tiers := object.union(data.datavisa.tiers, {"confidential": object.union(data.datavisa.tiers.confidential, {"step_up": {"credentials": {"max_age_s": 600}}})})
	asked := {"resource": "eu-customer-analytics", "step": "credentials"}
	d := step_up.decision with input as asked with data.datavisa.tiers as tiers
	not d.allow
	_codes(d.reasons) == {"step_up_required"}
	step_up.decision.allow with input as object.union(asked, {"authentication": {"age_s": 10, "amr": []}}) with data.datavisa.tiers as tiers
	step_up.decision.allow with input as asked
	_codes(step_up.decision.reasons) == {"unknown_resource"} with input as {"resource": "nowhere", "step": "credentials"}
}

_keyed := {"step_up": {
	"approve": {"max_age_s": 300, "amr": ["hwk"], "methods": ["webauthn"]},
	"break_glass": {"max_age_s": 300, "methods": ["webauthn", "totp"]},
}}

test_a_console_step_up_of_a_method_the_tier_names_satisfies if {
	step_up.denials(_keyed, "approve", {"age_s": 9000, "amr": ["pwd"], "step_up": {"method": "webauthn", "age_s": 10}}) == set()
	step_up.denials(_keyed, "break_glass", {"age_s": null, "amr": [], "step_up": {"method": "totp", "age_s": 300}}) == set()
}

test_a_console_step_up_too_old_or_of_another_method_does_not if {
	every authentication in [
		{"age_s": 9000, "amr": ["pwd"], "step_up": {"method": "webauthn", "age_s": 301}},
		{"age_s": 9000, "amr": ["pwd"], "step_up": {"method": "totp", "age_s": 10}},
		{"age_s": 9000, "amr": ["pwd"], "step_up": {"method": "webauthn", "age_s": null}},
		{"age_s": 9000, "amr": ["pwd"], "step_up": null},
	] {
		_codes(step_up.denials(_keyed, "approve", authentication)) == {"step_up_required"}
	}

	# A tier that names no methods takes no console step-up at all.
	_codes(step_up.denials(_tier, "approve", {"age_s": 9000, "amr": [], "step_up": {"method": "webauthn", "age_s": 1}})) == {"step_up_required"}
}

test_the_idp_still_satisfies_a_tier_that_names_methods if {
	step_up.denials(_keyed, "approve", {"age_s": 60, "amr": ["hwk"]}) == set()
}

test_the_denial_names_the_console_methods if {
	[reason] := [r | some r in step_up.denials(_keyed, "approve", null)]
	reason.step_up == {"max_age_s": 300, "amr": ["hwk"], "methods": ["webauthn"]}
	contains(reason.message, "or step up in the console (a security key or passkey)")
	[glass] := [r | some r in step_up.denials(_keyed, "break_glass", null)]
	contains(glass.message, "(a security key or passkey or an authenticator app's code)")
}
