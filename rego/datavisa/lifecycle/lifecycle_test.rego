package datavisa.lifecycle_test

import data.datavisa.lifecycle

_request := {"id": "r1", "requester": "alice", "resource": "eu-customer-analytics", "kind": "access"}

_codes(actor, action) := {r.code | some r in d.reasons} if {
	d := lifecycle.decision with input as {"actor": actor, "action": action, "request": _request}
}

test_who_may_do_what if {
	cases := [
		{"actor": "alice", "action": "cancel", "codes": set()},
		{"actor": "alice", "action": "activate", "codes": set()},
		{"actor": "alice", "action": "relinquish", "codes": set()},
		{"actor": "bob", "action": "cancel", "codes": {"not_requester"}},
		{"actor": "bob", "action": "relinquish", "codes": {"not_requester"}},
		{"actor": "bob", "action": "revoke", "codes": set()},
		{"actor": "bob", "action": "deny", "codes": set()},
		{"actor": "bob", "action": "review", "codes": set()},
		{"actor": "carol", "action": "revoke", "codes": {"actor_not_eligible"}},
		{"actor": "alice", "action": "review", "codes": {"self_review", "actor_not_eligible"}},
		{"actor": "alice", "action": "fly", "codes": {"unknown_action"}},
	]
	every c in cases {
		_codes(c.actor, c.action) == c.codes
	}
}

test_admin_may_revoke_anything if {
	d := lifecycle.decision with input as {"actor": "carol", "action": "revoke", "request": _request}
		with data.datavisa.subjects.carol.roles as ["admin"]
	d.allow
}

test_an_admin_token_forces_a_revoke_and_nothing_else if {
	cases := [
		{"actor_role": "admin", "action": "revoke", "codes": set()},
		{"actor_role": "admin", "action": "deny", "codes": {"actor_not_eligible"}},
		{"actor_role": "admin", "action": "review", "codes": {"actor_not_eligible"}},
		{"actor_role": "admin", "action": "cancel", "codes": {"not_requester"}},
		{"actor_role": "user", "action": "revoke", "codes": {"actor_not_eligible"}},
		{"actor_role": "auditor", "action": "revoke", "codes": {"actor_not_eligible"}},
	]
	every c in cases {
		d := lifecycle.decision with input as {"actor": "ops", "actor_role": c.actor_role, "action": c.action, "request": _request}
		{r.code | some r in d.reasons} == c.codes
	}
}

_transfer := {"id": "t1", "requester": "alice", "resource": "eu-customer-analytics", "kind": "transfer"}

_transfer_codes(actor, action) := {r.code | some r in d.reasons} if {
	d := lifecycle.decision with input as {"actor": actor, "action": action, "request": _transfer}
}

test_a_copy_is_reported_deleted_by_its_requester_or_the_teams_pipeline if {
	_transfer_codes("alice", "report_deletion") == set()
	_transfer_codes("etl-eu", "report_deletion") == set()
	_transfer_codes("bob", "report_deletion") == {"not_requester"}
	_transfer_codes("nobody", "report_deletion") == {"not_requester"}
}

test_a_transfers_own_approvers_may_revoke_and_deny_it if {
	_transfer_codes("petra", "revoke") == set()
	_transfer_codes("petra", "deny") == set()
	_codes("petra", "revoke") == {"actor_not_eligible"} # not an approver of access to it
	_transfer_codes("carol", "revoke") == {"actor_not_eligible"}
}

test_only_an_admin_may_abandon_a_removal_and_only_with_a_reason if {
	asked := {"actor": "alice", "action": "abandon_removal", "reason": "db decommissioned", "request": {"requester": "alice", "resource": "eu-customer-analytics"}}
	denied := lifecycle.decision with input as asked
	{r.code | some r in denied.reasons} == {"admin_only"}
	by_token := lifecycle.decision with input as object.union(asked, {"actor": "ops", "actor_role": "admin"})
	by_token.allow
	no_reason := lifecycle.decision with input as object.union(asked, {"actor": "ops", "actor_role": "admin", "reason": " "})
	{r.code | some r in no_reason.reasons} == {"reason_required"}
}

test_a_present_supervisor_may_end_a_session_or_revoke if {
	grant := {"id": "g1", "requester": "alice", "resource": "eu-customer-analytics", "kind": "access"}
	every action in ["revoke", "end_session"] {
		lifecycle.decision.allow with input as {"actor": "erin", "action": action, "request": grant, "supervising": true}
		d := lifecycle.decision with input as {"actor": "erin", "action": action, "request": grant, "supervising": false}
		{r.code | some r in d.reasons} == {"actor_not_eligible"}
	}
	not lifecycle.decision.allow with input as {"actor": "erin", "action": "deny", "request": grant, "supervising": true}
	not lifecycle.decision.allow with input as {"actor": "alice", "action": "revoke", "request": grant, "supervising": true}
}
