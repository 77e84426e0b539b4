# METADATA
# title: Quorum
# description: |
#   Whether a set of approvers satisfies a tier's approval requirements, each a group
#   and a count of distinct approvers from it. One approver fills one place only.
package datavisa.quorum

import data.datavisa.directory
import data.datavisa.residency

# METADATA
# title: Group membership
# description: |
#   Whether a subject belongs to an approver group for a resource: they hold the group's
#   role, and are in its scope (data.datavisa.groups): anyone (any), the data's owning
#   team (team), or employed in the data's jurisdiction (jurisdiction).
member(subject_id, group_id, resource) if holds(directory.subject(subject_id), group_id, resource)

# METADATA
# title: Group membership of a record
# description: member, for a directory record already looked up (directory.entry).
holds(subject, group_id, resource) if {
	group := data.datavisa.groups[group_id]
	group.role in subject.roles
	_in_scope(group.scope, subject, resource)
}

_in_scope("any", _, _)

_in_scope("team", subject, resource) if subject.team == resource.team

_in_scope("jurisdiction", subject, resource) if {
	residency.employed_in(residency.jurisdiction(resource), subject)
}

# METADATA
# title: Requirements met
# description: |
#   True when the approvers can be assigned to the required places, each approver to
#   one place in a group they belong to. By Hall's theorem this holds exactly when every
#   subset of the requirements is covered by at least as many approvers as it needs.
met(requirements, approvers, resource) if {
	met_by(requirements, {a: directory.entry(a) | some a in approvers}, resource)
}

# METADATA
# title: Requirements met by records
# description: |
#   met, for the approvers' directory records already looked up ({id: record}).
met_by(requirements, _, _) if count(requirements) == 0

met_by(requirements, records, resource) if {
	count(requirements) > 0
	every mask in numbers.range(1, bits.lsh(1, count(requirements)) - 1) {
		_covered(requirements, records, resource, mask)
	}
}

_covered(requirements, records, resource, mask) if {
	chosen := [r | some i, r in requirements; bits.and(mask, bits.lsh(1, i)) != 0]
	able := {a | some a, record in records; some r in chosen; holds(record, r.group, resource)}
	count(able) >= sum([r.count | some r in chosen])
}
