package datavisa.quorum_test

import data.datavisa.quorum

_resource := {"team": "analytics"}

_subjects := {
	"owner1": {"team": "analytics", "roles": ["data_owner"]},
	"owner2": {"team": "analytics", "roles": ["data_owner"]},
	"both": {"team": "analytics", "roles": ["data_owner", "security_officer"]},
	"sec": {"team": "security", "roles": ["security_officer"]},
	"outsider": {"team": "platform", "roles": ["data_owner"]},
}

_two_groups := [{"group": "data_owner", "count": 1}, {"group": "security_officer", "count": 1}]

test_no_requirements_are_met_by_nobody if {
	quorum.met([], set(), _resource)
}

test_one_place_per_approver if {
	cases := [
		{"approvers": {"owner1", "sec"}, "met": true},
		{"approvers": {"both", "owner1"}, "met": true},
		{"approvers": {"both"}, "met": false},
		{"approvers": {"owner1", "owner2"}, "met": false},
		{"approvers": {"outsider", "sec"}, "met": false},
		{"approvers": set(), "met": false},
	]
	every c in cases {
		_met(_two_groups, c.approvers) == c.met
	}
}

test_count_needs_distinct_approvers if {
	needs_two := [{"group": "data_owner", "count": 2}]
	not _met(needs_two, {"owner1"})
	_met(needs_two, {"owner1", "both"})
}

_met(requirements, approvers) if {
	quorum.met(requirements, approvers, _resource) with data.datavisa.subjects as _subjects
}

default _met(_, _) := false

test_dpo_approves_for_the_jurisdiction_of_their_employer if {
	eu_data := data.datavisa.resources["eu-customer-analytics"]
	us_data := data.datavisa.resources["us-crm-contacts"]
	quorum.member("petra", "dpo", eu_data)
	not quorum.member("petra", "dpo", us_data)
	not quorum.member("bob", "dpo", eu_data)
	not quorum.member("bob", "no-such-group", eu_data)
}
