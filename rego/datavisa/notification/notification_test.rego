package datavisa.notification_test

import data.datavisa.notification

_s := 1000000000

_t0 := 1800000000 # seconds

_access := {"id": "r1", "requester": "alice", "resource": "eu-customer-analytics", "actions": ["read"], "duration_s": 1200, "location": "DE", "kind": "access"}

_restricted := object.union(_access, {"resource": "eu-payments-ledger"})

_asked(kind, request) := {"kind": kind, "level": 0, "request": request, "approvals": []}

test_a_request_names_the_people_policy_lets_approve_it if {
	got := notification.recipients with input as _asked("requested", _access)
	got.approvers == ["bob"]
	got.notify == ["bob"]
	got.chat_approve == true
	got.console_reasons == set()
}

test_the_requester_and_those_who_approved_are_not_named if {
	got := notification.recipients with input as object.union(_asked("requested", object.union(_access, {"requester": "bob"})), {"approvals": []})
	not "bob" in got.approvers
	done := notification.recipients with input as object.union(_asked("reminder", _access), {"approvals": ["bob"]})
	done.approvers == []
}

test_idp_groups_make_an_approver if {
	got := notification.recipients with input as object.union(_asked("requested", _access), {"idp_groups": {"oscar": ["data-owners"]}})
	got.approvers == ["bob", "oscar"]
}

test_step_up_sends_chat_approvers_to_the_console if {
	tiers := object.union(data.datavisa.tiers, {"confidential": object.union(data.datavisa.tiers.confidential, {"step_up": {"approve": {"max_age_s": 300}}})})
	got := notification.recipients with input as _asked("requested", _access) with data.datavisa.tiers as tiers
	got.approvers == ["bob"]
	got.chat_approve == false
	[reason] := [r | some r in got.console_reasons]
	reason.code == "step_up_required"
}

test_a_tier_may_turn_chat_approval_off if {
	got := notification.recipients with input as _asked("requested", _restricted)
	got.chat_approve == false
	{r.code | some r in got.console_reasons} == {"chat_approval_off"}
}

test_escalation_names_its_step_people if {
	first := notification.recipients with input as _asked("escalation", _restricted)
	first.notify == ["erin", "sam"]
	second := notification.recipients with input as object.union(_asked("escalation", _restricted), {"level": 1})
	second.notify == ["jack", "oscar"]
	rota := notification.recipients with input as _asked("escalation", _access)
	rota.notify == ["jack", "oscar"]
}

test_an_expiring_grant_tells_its_holder if {
	got := notification.recipients with input as _asked("expiring", _access)
	got.notify == ["alice"]
}

test_an_unknown_kind_tells_no_one if {
	got := notification.recipients with input as _asked("gossip", _access)
	got.notify == []
}

test_settings_of_a_resource_without_tier_are_the_defaults if {
	notification.settings("no-such-resource") == data.datavisa.notifications.defaults
	notification.settings("eu-payments-ledger").remind_before_lapse_s == 600
}

_pending(created, until) := {"id": "r1", "resource": "eu-customer-analytics", "state": "pending", "created_at_s": created, "pending_until_s": until}

test_reminders_escalations_and_expiry_warnings_fall_due_by_policy_timings if {
	cases := [
		{"item": _pending(_t0, _t0 + 3600), "now": _t0 + 60, "keys": set()},
		{"item": _pending(_t0, _t0 + 3600), "now": _t0 + 1800, "keys": {"escalation:r1:0"}},
		{"item": _pending(_t0, _t0 + 3600), "now": (_t0 + 3600) - 900, "keys": {"escalation:r1:0", "reminder:r1"}},
		{"item": _pending(_t0, _t0 + 3600), "now": _t0 + 3600, "keys": set()},
		{"item": {"id": "g1", "resource": "eu-customer-analytics", "state": "active", "expires_at_s": _t0}, "now": _t0 - 601, "keys": set()},
		{"item": {"id": "g1", "resource": "eu-customer-analytics", "state": "active", "expires_at_s": _t0}, "now": _t0 - 600, "keys": {"expiring:g1"}},
		{"item": {"id": "g1", "resource": "eu-customer-analytics", "state": "active", "expires_at_s": _t0}, "now": _t0, "keys": set()},
	]
	every c in cases {
		got := {n.key | some n in notification.due} with input as {"requests": [c.item]} with time.now_ns as c.now * _s
		got == c.keys
	}
}
