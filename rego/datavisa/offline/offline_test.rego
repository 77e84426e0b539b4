package datavisa.offline_test

import data.datavisa.offline

_subjects := {
	"alice": {"roles": ["engineer"]},
	"bob": {"roles": ["data_owner"]},
	"root": {"roles": ["admin", "engineer"]},
}

test_the_grants_own_approvers_and_admins_may_revoke_offline if {
	answer := offline.decision with input as {"request": {"requester": "alice"}, "approvals": ["bob"]}
		with data.datavisa.subjects as _subjects
	answer.allow
	answer.revoke == ["bob", "root"]
}

test_only_the_holder_may_relinquish_offline if {
	answer := offline.decision with input as {"request": {"requester": "alice"}, "approvals": ["bob"]}
		with data.datavisa.subjects as _subjects
	answer.relinquish == ["alice"]
}

test_a_grant_nobody_approved_may_be_revoked_offline_by_admins_only if {
	answer := offline.decision with input as {"request": {"requester": "alice"}}
		with data.datavisa.subjects as _subjects
	answer.revoke == ["root"]
}
