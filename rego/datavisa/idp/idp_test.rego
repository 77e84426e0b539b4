package datavisa.idp_test

import data.datavisa.idp

_codes(d) := {r.code | some r in d.reasons}

_synced := {"people": {
	"nina": {"active": true, "name": "Nina Roth", "groups": ["privacy-office", "datavisa-auditors"]},
	"gone": {"active": false, "groups": ["datavisa-admins"]},
}}

test_groups_of_the_token_win_over_the_synced_ones if {
	names := idp.of("nina") with input.idp_groups as {"nina": ["oncall"]} with data.directory as _synced
	names == ["oncall"]
}

test_groups_of_someone_not_calling_are_the_synced_ones if {
	idp.of("nina") == ["privacy-office", "datavisa-auditors"] with input.idp_groups as {"bob": ["oncall"]}
		with data.directory as _synced
}

test_groups_that_are_not_a_list_count_as_absent if {
	idp.of("nina") == ["privacy-office", "datavisa-auditors"] with input.idp_groups as {"nina": "oncall"}
		with data.directory as _synced
}

test_someone_the_idp_says_nothing_of_has_no_groups if {
	idp.of("zoe") == [] with data.directory as _synced
}

test_groups_give_the_roles_their_mapping_names if {
	idp.roles(["privacy-office", "oncall", "no-such-group"]) == {"dpo", "oncall"}
}

_role_of(case) := r if {
	named := {
		"none": [],
		"unmapped": ["no-such-group"],
		"roles only": ["data-owners"],
		"auditor": ["datavisa-auditors"],
		"admin": ["datavisa-admins"],
		"both, admin first": ["datavisa-auditors", "datavisa-admins"],
	}
	r := idp.api_role(named[case])
}

test_api_role_cases_expected if {
	expected := {
		"none": "user", "unmapped": "user", "roles only": "user", "auditor": "auditor",
		"admin": "admin", "both, admin first": "admin",
	}
	every case, role in expected {
		_role_of(case) == role
	}
}

test_the_precedence_list_decides_between_roles if {
	idp.api_role(["datavisa-auditors", "datavisa-admins"]) == "auditor" with data.datavisa.idp_api_roles as ["auditor", "admin"]
}

test_a_group_never_gives_a_machine_role if {
	idp.api_role(["robots"]) == "user" with data.datavisa.idp_groups as {"robots": {"api_role": "service"}}
		with data.datavisa.idp_api_roles as ["service", "admin"]
}

test_without_mapping_data_everyone_is_a_user if {
	idp.api_role(["datavisa-admins"]) == "user" with data.datavisa.idp_groups as null
		with data.datavisa.idp_api_roles as null
}

test_deprovisioned_only_when_sync_says_inactive if {
	idp.deprovisioned("gone") with data.directory as _synced
	not idp.deprovisioned("nina") with data.directory as _synced
	not idp.deprovisioned("alice") with data.directory as _synced
}

test_decision_gives_the_role_of_the_tokens_groups if {
	d := idp.decision with input as {"subject": "nina", "idp_groups": {"nina": ["datavisa-admins", "oncall"]}}
		with data.directory as _synced
	d.allow
	d.role == "admin"
	d.roles == {"oncall"}
	d.groups == ["datavisa-admins", "oncall"]
}

test_decision_without_token_groups_uses_the_synced_ones if {
	d := idp.decision with input as {"subject": "nina"} with data.directory as _synced
	d.role == "auditor"
	d.roles == {"dpo"}
}

test_a_deprovisioned_person_is_refused if {
	d := idp.decision with input as {"subject": "gone", "idp_groups": {"gone": ["datavisa-admins"]}}
		with data.directory as _synced
	not d.allow
	d.role == null
	_codes(d) == {"deprovisioned"}
}

test_a_decision_without_subject_is_refused if {
	d := idp.decision with input as {}
	not d.allow
	_codes(d) == {"unknown_subject"}
}
