# METADATA
# title: Quorum
# description: |
#   Whether a set of approvers satisfies a tier's approval requirements, each a group
#   and a count of distinct approvers from it. One approver fills one place only.
package datavisa.quorum

# METADATA
# title: Group membership
# description: |
#   Whether a subject belongs to an approver group for a resource. A data owner owns
#   the data of their own team only; other groups are roles held in the directory.
member(subject_id, "data_owner", resource) if {
	subject := data.datavisa.subjects[subject_id]
	"data_owner" in subject.roles
	subject.team == resource.team
}

member(subject_id, group, _) if {
	group != "data_owner"
	group in data.datavisa.subjects[subject_id].roles
}

# METADATA
# title: Requirements met
# description: |
#   True when the approvers can be assigned to the required places, each approver to
#   one place in a group they belong to. By Hall's theorem this holds exactly when every
#   subset of the requirements is covered by at least as many approvers as it needs.
met(requirements, _, _) if count(requirements) == 0

met(requirements, approvers, resource) if {
	count(requirements) > 0
	every mask in numbers.range(1, bits.lsh(1, count(requirements)) - 1) {
		_covered(requirements, approvers, resource, mask)
	}
}

_covered(requirements, approvers, resource, mask) if {
	chosen := [r | some i, r in requirements; bits.and(mask, bits.lsh(1, i)) != 0]
	able := {a | some a in approvers; some r in chosen; member(a, r.group, resource)}
	count(able) >= sum([r.count | some r in chosen])
}
