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
