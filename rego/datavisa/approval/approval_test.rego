package datavisa.approval_test

import data.datavisa.approval

_request := {
	"id": "r1",
	"requester": "alice",
	"resource": "eu-customer-analytics",
	"actions": ["read"],
	"duration_s": 1200,
	"location": "DE",
}

_codes(d) := {r.code | some r in d.reasons}

test_data_owner_of_the_team_approves_and_completes_the_quorum if {
	d := approval.decision with input as {"approver": "bob", "request": _request, "approvals": []}
	d.allow
	d.quorum_met
	d.groups == {"data_owner"}
}

test_self_approval_is_refused if {
	d := approval.decision with input as {"approver": "alice", "request": _request, "approvals": []}
	not d.allow
	"self_approval" in _codes(d)
}

test_approving_twice_is_refused if {
	d := approval.decision with input as {"approver": "bob", "request": _request, "approvals": ["bob"]}
	not d.allow
	"already_approved" in _codes(d)
}

test_member_of_another_team_is_not_eligible if {
	d := approval.decision with input as {"approver": "carol", "request": _request, "approvals": []}
	_codes(d) == {"approver_not_eligible"}
	not d.quorum_met
}

test_unknown_approver_and_resource_are_refused if {
	d := approval.decision with input as {
		"approver": "mallory",
		"request": object.union(_request, {"resource": "nope"}),
		"approvals": [],
	}
	_codes(d) == {"unknown_approver", "unknown_resource"}
	d.approvals_required == []
}
