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

_ledger := object.union(_request, {"resource": "eu-payments-ledger", "duration_s": 600})

_approve(approver, location, request, approvals) := d if {
	d := approval.decision with input as {
		"approver": approver,
		"approver_location": location,
		"request": request,
		"approvals": approvals,
	}
}

test_restricted_needs_two_distinct_approvers_from_inside_the_jurisdiction if {
	first := _approve("dave", "DE", _ledger, [])
	first.allow
	first.groups == {"data_owner"}
	not first.quorum_met
	second := _approve("erin", "IE", _ledger, ["dave"])
	second.allow
	second.quorum_met
}

test_restricted_approver_must_be_employed_and_located_in_the_jurisdiction if {
	cases := [
		{"approver": "sam", "at": "DE"},
		{"approver": "erin", "at": "US"},
		{"approver": "erin", "at": "unknown"},
	]
	every c in cases {
		_codes(_approve(c.approver, c.at, _ledger, ["dave"])) == {"approver_outside_jurisdiction"}
	}
	d := approval.decision with input as {"approver": "erin", "request": _ledger, "approvals": ["dave"]}
	_codes(d) == {"approver_outside_jurisdiction"}
}

test_cross_border_personal_data_needs_the_dpo_of_its_jurisdiction if {
	abroad := object.union(_request, {"requester": "carol", "location": "US"})
	owner := _approve("bob", "DE", abroad, [])
	owner.allow
	not owner.quorum_met
	count(owner.approvals_required) == 2
	dpo := _approve("petra", "AT", abroad, ["bob"])
	dpo.groups == {"dpo"}
	dpo.quorum_met
}

test_extension_needs_the_tier_extension_approvals if {
	extension := object.union(_request, {"kind": "extension"})
	d := _approve("bob", "DE", extension, [])
	d.quorum_met
	d.approvals_required == data.datavisa.tiers.confidential.extension.approvals
	_codes(_approve("bob", "DE", object.union(_request, {"kind": "party"}), [])) == {"unknown_kind", "approver_not_eligible"}
}

_transfer := object.union(_request, {"kind": "transfer", "target_region": "aws:us-east-1", "importer": "acme-inc", "location": "US"})

test_a_transfer_needs_what_its_copy_needs if {
	first := approval.decision with input as {"approver": "bob", "request": _transfer, "approvals": []}
	first.allow
	not first.quorum_met
	first.approvals_required == [{"group": "data_owner", "count": 1}, {"group": "dpo", "count": 1}]
	second := approval.decision with input as {"approver": "petra", "request": _transfer, "approvals": ["bob"]}
	second.allow
	second.quorum_met
	inside := object.union(_transfer, {"target_region": "azure:westeurope", "importer": ""})
	approval.decision.quorum_met with input as {"approver": "bob", "request": inside, "approvals": []}
	own := approval.decision with input as {"approver": "alice", "request": _transfer, "approvals": []}
	"self_approval" in _codes(own)
}

test_a_tier_with_step_up_wants_a_recent_strong_sign_in_to_approve if {
	tiers := object.union(data.datavisa.tiers, {"confidential": object.union(data.datavisa.tiers.confidential, {"step_up": {"approve": {"max_age_s": 900, "amr": ["mfa"]}}})})
	asked := {"approver": "bob", "approver_location": "DE", "request": {"id": "r1", "requester": "alice", "resource": "eu-customer-analytics", "actions": ["read"], "duration_s": 1200, "location": "DE"}, "approvals": []}
	not approval.decision.allow with input as asked with data.datavisa.tiers as tiers
	{r.code | some r in approval.decision.reasons} == {"step_up_required"} with input as asked with data.datavisa.tiers as tiers
	approval.decision.allow with input as object.union(asked, {"authentication": {"age_s": 30, "amr": ["mfa"]}}) with data.datavisa.tiers as tiers
}

test_a_transfer_approval_asks_approve_transfers_step_up_else_approves if {
	both := {"approve": {"max_age_s": 900}, "approve_transfer": {"max_age_s": 120, "amr": ["hwk"]}}
	tiers := object.union(data.datavisa.tiers, {"confidential": object.union(data.datavisa.tiers.confidential, {"step_up": both})})
	recent := {"age_s": 300, "amr": ["mfa"]}
	transfer := {"approver": "bob", "request": _transfer, "approvals": [], "authentication": recent}
	[reason] := [r | some r in approval.decision.reasons] with input as transfer with data.datavisa.tiers as tiers
	reason.step_up == {"max_age_s": 120, "amr": ["hwk"]}
	access := {"approver": "bob", "approver_location": "DE", "request": _request, "approvals": [], "authentication": recent}
	approval.decision.allow with input as access with data.datavisa.tiers as tiers
	only := object.union(data.datavisa.tiers, {"confidential": object.union(data.datavisa.tiers.confidential, {"step_up": {"approve": {"max_age_s": 60}}})})
	"step_up_required" in _codes(approval.decision) with input as transfer with data.datavisa.tiers as only
}

test_an_approval_decides_again_whether_the_grant_is_supervised if {
	ask := {"approver": "bob", "approver_location": "DE", "approvals": [], "request": {
		"id": "r1", "requester": "alice", "resource": "eu-customer-analytics",
		"actions": ["read", "write"], "duration_s": 3600, "location": "DE", "kind": "access",
	}}
	approval.decision.supervision.supervised with input as ask
	unsupervised := json.patch(data.datavisa.supervised, [{"op": "replace", "path": "/required", "value": {}}])
	not approval.decision.supervision.supervised with input as ask with data.datavisa.supervised as unsupervised
	extension := object.union(ask, {"request": object.union(ask.request, {"kind": "extension"})})
	approval.decision.supervision == {} with input as extension
}

# case_denials asks the common case first; wherever it answers, the full union of every
# reason answers the same (for every approver, resource, kind, requester and approvals).
test_the_common_case_first_agrees_with_every_reason if {
	every approver in ["bob", "carol", "petra", "dave", "erin", "alice", "nobody"] {
		every id, _ in data.datavisa.resources {
			every kind in ["access", "extension", "transfer", "other"] {
				_fast_equals_full(approver, id, kind)
			}
		}
	}
}

_fast_equals_full(approver_id, resource_id, kind) if {
	facts := approval.approver_facts({"approver": approver_id, "approver_location": "DE"})
	standing := approval.standing(resource_id, kind, facts)
	every requester in ["alice", approver_id] {
		every approvals in [[], [approver_id], ["kenji"]] {
			case := {"approvals": approvals, "request": object.union(_request, {"resource": resource_id, "kind": kind, "requester": requester, "target_region": "aws:us-east-1"})}
			approval.case_denials(case, facts, standing) == approval._case_denials(case, case.request, facts, standing)
		}
	}
}

test_judge_is_the_decision if {
	asked := {"approver": "petra", "approver_location": "DE", "request": object.union(_request, {"location": "US", "requester": "carol"}), "approvals": ["bob"]}
	d := approval.decision with input as asked
	approval.judge(asked, approval.approver_facts(asked)) == object.remove(d, {"supervision"})
	d.quorum_met
}

test_a_decision_without_a_request_refuses if {
	d := approval.decision with input as {"approver": "bob"}
	not d.allow
	"unknown_resource" in {r.code | some r in d.reasons}
}
