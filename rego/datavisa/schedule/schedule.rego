# METADATA
# title: Scheduled start
# description: |
#   Whether a request or transfer may be scheduled to start `start_in_s` seconds from now
#   (null: it starts on approval): not in the past, and not further ahead than the tier's
#   `max_schedule_ahead_s` (30 days where the tier does not say). A start so far off is
#   no longer just in time: the approvers' judgement would be stale by then.
package datavisa.schedule

# METADATA
# title: Longest lead
# description: How far ahead a grant of `tier` may be scheduled, in seconds.
max_ahead_s(tier) := object.get(tier, "max_schedule_ahead_s", 2592000)

# METADATA
# title: Denial reasons
# description: Why a start `start_in_s` seconds from now may not be scheduled for `tier`.
default denials(_, _) := set()

denials(start_in_s, _) := {{"code": "start_in_past", "field": "start_at", "message": msg}} if {
	is_number(start_in_s)
	start_in_s < 0
	msg := "the start is in the past; leave it out to start on approval"
}

denials(start_in_s, tier) := {{"code": "start_too_far_ahead", "field": "start_at", "message": msg}} if {
	is_number(start_in_s)
	start_in_s > max_ahead_s(tier)
	msg := sprintf("the start is %ds away; this data may be scheduled at most %ds ahead", [round(start_in_s), max_ahead_s(tier)])
}
