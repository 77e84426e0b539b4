package datavisa.directory_test

import data.datavisa.directory

_synced := {"people": {
	"nina": {
		"active": true, "name": "Nina Roth", "department": "privacy",
		"organization": "acme-gmbh", "groups": ["privacy-office"],
	},
	"omar": {"active": true, "organization": "Some Org Inc.", "groups": []},
	"bob": {"active": true, "name": "Robert K.", "department": "sales", "groups": ["oncall"]},
	"alice": {"active": false, "groups": []},
}}

test_a_bundle_subject_is_as_the_bundle_says if {
	s := directory.subject("carol") with data.directory as {}
	s.team == "platform"
	s.entity == "acme-inc"
	s.roles == ["engineer"]
}

test_a_synced_person_is_a_person_with_what_the_idp_gave if {
	s := directory.subject("nina") with data.directory as _synced
	s == {
		"kind": "person", "name": "Nina Roth", "team": "privacy", "entity": "acme-gmbh",
		"roles": ["dpo"], "citizenship": [], "clearances": [],
	}
}

test_an_organization_that_is_no_entity_is_left_out if {
	s := directory.subject("omar") with data.directory as _synced
	not s.entity
	s.roles == []
}

test_the_bundle_wins_field_by_field_and_roles_add_up if {
	s := directory.subject("bob") with data.directory as _synced
	s.team == "analytics" # the bundle's, not the IdP's department
	s.name == "Bob Keller"
	s.roles == ["data_owner", "oncall"]
}

test_the_tokens_groups_give_roles_to_a_bundle_subject if {
	s := directory.subject("carol") with input.idp_groups as {"carol": ["security-officers"]}
	s.roles == ["engineer", "security_officer"]
}

test_a_deprovisioned_person_is_no_one_even_in_the_bundle if {
	not directory.subject("alice") with data.directory as _synced
	directory.entry("alice") == {} with data.directory as _synced
	not directory.subjects.alice with data.directory as _synced
}

test_someone_neither_directory_knows_is_no_one if {
	not directory.subject("zoe") with data.directory as _synced
	directory.entry("zoe") == {}
}

test_subjects_hold_bundle_and_synced_people if {
	all := directory.subjects with data.directory as _synced
	all.nina.team == "privacy"
	all.carol.team == "platform"
	all.bob.roles == ["data_owner", "oncall"]
}

test_entry_is_the_subject_when_known if {
	directory.entry("nina").name == "Nina Roth" with data.directory as _synced
}
