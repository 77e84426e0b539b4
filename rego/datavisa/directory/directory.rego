# METADATA
# title: Directory
# description: |
#   The people and services policy reads: the bundle's directory
#   (data.datavisa.subjects, subjects.yaml) and the one the identity provider pushes by
#   SCIM (data.directory.people, written by the engine), with the roles a person's IdP
#   groups give (datavisa.idp). Precedence:
#
#   1. Someone directory sync deprovisioned (active false, or deleted) is no one, even
#      where the bundle names them: the IdP decides who still works here.
#   2. Otherwise the bundle's record wins field by field (entity, citizenship,
#      clearances, residence are facts policy authors vouch for, which an IdP does not
#      hold); a field the bundle leaves out comes from the synced record (name, team from
#      the SCIM enterprise department, entity from its organization when that names an
#      entity of the bundle).
#   3. Roles add up: the bundle's roles and those the person's IdP groups give.
package datavisa.directory

import data.datavisa.idp

# METADATA
# title: Subject
# description: |
#   The directory record of a subject (kind, name, team, roles, entity, citizenship,
#   clearances ...), merged as the package says; undefined for someone it does not know.
subject(subject_id) := given_subject(subject_id, idp.given)

# METADATA
# title: Subject, given IdP groups
# description: |
#   subject, with the IdP groups of `given` ({subject: [group, ...]}, as input.idp_groups)
#   in place of the input's: for the earlier approvers of a request a queue judges.
given_subject(subject_id, given) := object.union(record, {"roles": _roles(subject_id, record, given)}) if {
	not idp.deprovisioned(subject_id)
	record := _record(subject_id)
}

# METADATA
# title: Subjects
# description: Every subject of the directory, by id (for rules that scan it all).
subjects[subject_id] := record if {
	some subject_id in _ids
	record := subject(subject_id)
}

_ids := {id | some id, _ in data.datavisa.subjects} | {id | some id, _ in _synced_people}

default _synced_people := {}

_synced_people := data.directory.people

_record(subject_id) := object.union(_synced_or_empty(subject_id), bundled) if {
	bundled := data.datavisa.subjects[subject_id]
} else := _synced(subject_id)

_synced_or_empty(subject_id) := _synced(subject_id) if {
	data.directory.people[subject_id]
} else := {}

# A synced person as the bundle spells a subject; only the fields the IdP gave.
_synced(subject_id) := object.union(
	{"kind": "person", "roles": [], "citizenship": [], "clearances": []},
	{key: value |
		some key, value in {
			"name": object.get(person, "name", null),
			"team": object.get(person, "department", null),
			"entity": _entity(object.get(person, "organization", null)),
		}
		value != null
	},
) if {
	person := data.directory.people[subject_id]
	person.active == true
}

_entity(name) := name if data.datavisa.entities[name]

_entity(name) := null if not data.datavisa.entities[name]

_roles(subject_id, record, given) := sort({role | some role in object.get(record, "roles", [])} | idp.roles(idp.given_of(subject_id, given)))

# METADATA
# title: Entry
# description: subject(subject_id), or {} for someone the directory does not know.
entry(subject_id) := given_entry(subject_id, idp.given)

# METADATA
# title: Entry, given IdP groups
# description: |
#   entry, with the IdP groups of `given` in place of the input's (given_subject).
given_entry(subject_id, given) := record if {
	record := given_subject(subject_id, given)
} else := {}
