package datavisa.schedule_test

import data.datavisa.schedule

test_no_start_is_no_denial if {
	schedule.denials(null, {}) == set()
}

test_a_start_ahead_within_the_lead_is_no_denial if {
	schedule.denials(0, {}) == set()
	schedule.denials(2592000, {}) == set()
	schedule.denials(3600, {"max_schedule_ahead_s": 3600}) == set()
}

test_a_start_in_the_past_is_denied if {
	{r.code | some r in schedule.denials(-1, {})} == {"start_in_past"}
}

test_a_start_past_the_lead_is_denied if {
	{r.code | some r in schedule.denials(2592001, {})} == {"start_too_far_ahead"}
	{r.code | some r in schedule.denials(3601, {"max_schedule_ahead_s": 3600})} == {"start_too_far_ahead"}
}
