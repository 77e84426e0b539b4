# METADATA
# title: US bulk sensitive data (DOJ Data Security Program)
# description: |
#   28 CFR Part 202 (under EO 14117), in force from 2025-04-08 (due diligence and audit from
#   2025-10-06): a covered person (an entity of, or a person employed by or primarily
#   resident in, a country of concern; or one designated) reaching bulk US sensitive
#   personal data or government-related data makes a covered data transaction, wherever
#   the data is held and wherever the person sits. Bulk human 'omic data is never reached
#   by one (202.303); any other such access or copy is a restricted transaction, allowed
#   only with the evidence restricted_conditions names (202.401: the CISA security
#   requirements; from 2025-10-06 a data compliance program, 202.1001-202.1002); a copy of
#   a sold or licensed dataset to a covered person or into a country of concern is data
#   brokerage, refused outright (202.301). Data: data.datavisa.data_security_program
#   (jurisdictions.yaml) and, per resource, us_sensitive_data, government_related_data,
#   brokered.
package datavisa.us_bulk_data

import data.datavisa.directory

_program := data.datavisa.data_security_program

_law := sprintf("%s, in force from %s", [_program.name, _program.from])

_in_force(from) if time.parse_ns("2006-01-02", from) <= time.now_ns()

_concern := {c | some c in _program.countries_of_concern}

# METADATA
# title: Bulk categories
# description: |
#   The categories of US sensitive personal data the resource holds in bulk (more than
#   the threshold, 28 CFR 202.205), each with its count.
bulk(resource) := {category: count |
	some category, count in object.get(resource, "us_sensitive_data", {})
	count > _program.bulk_thresholds[category]
}

# METADATA
# title: Covered data
# description: True when the resource holds bulk US sensitive personal data or government-related data.
covered_data(resource) if count(bulk(resource)) > 0

covered_data(resource) if resource.government_related_data == true

_holds(resource) := concat("; ", sort(array.concat(
	[sprintf("bulk %s data (%d US persons or devices, more than %d)", [category, count, _program.bulk_thresholds[category]]) |
		some category, count in bulk(resource)
	],
	[s | resource.government_related_data == true; s := "government-related data"],
)))

# Why an entity is a covered person (28 CFR 202.211(a)(1)-(2), (5)).
_entity_why(entity_id) := {why |
	entity := data.datavisa.entities[entity_id]
	entity.country in _concern
	why := sprintf("%s is organised in %s, a country of concern", [entity_id, entity.country])
} | {why |
	data.datavisa.entities[entity_id].covered_person == true
	why := sprintf("%s is a covered person (owned 50 %% or more from a country of concern, or designated)", [entity_id])
}

_us_person(subject) if "us_person" in object.get(subject, "clearances", [])

# Why a subject is a covered person (28 CFR 202.211(a)(3)-(5)); a US person only by designation.
_subject_why(subject_id) := ({why |
	directory.subject(subject_id).covered_person == true
	why := sprintf("%s is designated a covered person", [subject_id])
} | {why |
	subject := directory.subject(subject_id)
	not _us_person(subject)
	some reason in _entity_why(subject.entity)
	why := sprintf("%s works for %s, and %s", [subject_id, subject.entity, reason])
}) | {why |
	subject := directory.subject(subject_id)
	not _us_person(subject)
	subject.residence in _concern
	why := sprintf("%s primarily resides in %s, a country of concern", [subject_id, subject.residence])
}

# METADATA
# title: Evidence kinds
# description: The evidence a restricted transaction on the resource's data can need (none when it holds no covered data).
evidence_kinds(resource) := {kind | covered_data(resource); some kind, _ in _program.restricted_conditions}

# METADATA
# title: Access denials
# description: |
#   Why this subject may not reach the resource's data, with this evidence on file, as
#   {code, message}: covered_person_prohibited (bulk human 'omic data), or
#   security_requirements_required (a restricted transaction without the evidence it needs).
access_denials(resource, subject_id, evidence) := _denials(resource, _subject_why(subject_id), evidence, "access")

# METADATA
# title: Copy denials
# description: |
#   Why the resource's data may not be copied to a place for an importer ("" for none),
#   with this evidence on file, as {code, field, message}: data_brokerage_prohibited (a
#   sold or licensed dataset), covered_person_prohibited, security_requirements_required.
#   A target in a country of concern counts as a covered person's.
copy_denials(resource, place, importer, evidence) := ({object.union(reason, {"field": "target_region"}) |
	some reason in _denials(resource, _importer_why(place, importer), evidence, "a copy")
	reason.code != "security_requirements_required"
} | {object.union(reason, {"field": "evidence"}) |
	some reason in _denials(resource, _importer_why(place, importer), evidence, "a copy")
	reason.code == "security_requirements_required"
}) | {reason |
	resource.brokered == true
	some reason in _brokerage(resource, _importer_why(place, importer))
}

_importer_why(place, importer) := _entity_why(importer) | {why |
	place.country in _concern
	why := sprintf("the target is in %s, a country of concern", [place.country])
}

_brokerage(resource, why) := {reason |
	_in_force(_program.from)
	count(why) > 0
	covered_data(resource)
	msg := sprintf("a copy of a sold or licensed dataset holding %s to a covered person (%s) is data brokerage, prohibited outright by 28 CFR 202.301 (%s)", [_holds(resource), concat("; ", sort(why)), _law])
	reason := {"code": "data_brokerage_prohibited", "field": "target_region", "message": msg}
}

_prohibited(resource) := {category | some category, _ in bulk(resource); category in _program.prohibited_categories}

_denials(resource, why, evidence, what) := {reason |
	_in_force(_program.from)
	count(why) > 0
	count(_prohibited(resource)) > 0
	msg := sprintf("%s by a covered person (%s) to bulk %s data is prohibited by 28 CFR 202.303 (%s), whatever the safeguards", [what, concat("; ", sort(why)), concat(", ", sort(_prohibited(resource)))])
	reason := {"code": "covered_person_prohibited", "message": msg}
} | {reason |
	_in_force(_program.from)
	count(why) > 0
	count(_prohibited(resource)) == 0
	covered_data(resource)
	some kind, condition in _program.restricted_conditions
	_in_force(condition.from)
	not kind in evidence
	msg := sprintf("%s by a covered person (%s) to %s is a restricted transaction: it needs %s evidence on file (%s; %s)", [what, concat("; ", sort(why)), _holds(resource), kind, condition.law, _law])
	reason := {"code": "security_requirements_required", "message": msg}
}
