# METADATA
# title: Groups from the identity provider
# description: |
#   What the organisation's identity provider says of a person, and what it means here:
#   their IdP groups, whether directory sync has deprovisioned them, and which directory
#   roles (the approver groups of tiers.yaml and break-glass draw their members by role)
#   and which API role those groups give (data.datavisa.idp_groups, identity.yaml).
#
#   A person's IdP groups are the ones the decision's input carries for them
#   (input.idp_groups[subject]: the groups claim of the token they called with, or the
#   groups an earlier approval was given with) when it carries any, else the groups the
#   IdP pushed by SCIM (data.directory.people[subject].groups), else none. The token is
#   the IdP's latest word on its holder, so it wins: a person removed from a group loses
#   what it gave at their next token.
#
#   Input (decision): {subject, idp_groups: {subject: [group, ...]} (optional)}
#   Output: decision = {allow, reasons: [{code, message}], role (the API role: user,
#   or the first of data.datavisa.idp_api_roles a group gives; null when refused),
#   roles (directory roles the groups give), groups}
package datavisa.idp

default _mapping := {}

_mapping := data.datavisa.idp_groups

default _api_roles := []

_api_roles := data.datavisa.idp_api_roles

# The roles a person signed in by the IdP may have at the API at all.
_person_roles := {"user", "auditor", "admin"}

# METADATA
# title: A person's IdP groups
# description: The IdP groups of a subject, as the module description says.
of(subject_id) := given_of(subject_id, given)

# METADATA
# title: The IdP groups the input carries
# description: |
#   input.idp_groups ({subject: [group, ...]}), or {} when it carries none.
default given := {}

given := input.idp_groups if is_object(input.idp_groups)

# METADATA
# title: A person's IdP groups, given the input's
# description: |
#   of, with `given` ({subject: [group, ...]}) in place of input.idp_groups.
given_of(subject_id, given) := names if {
	names := given[subject_id]
	is_array(names)
} else := names if {
	names := data.directory.people[subject_id].groups
} else := []

# METADATA
# title: Directory roles from groups
# description: The directory roles the IdP groups `names` give, as a set.
roles(names) := {role |
	some name in names
	some role in object.get(_mapping, [name, "roles"], [])
}

# METADATA
# title: API role from groups
# description: |
#   The API role the IdP groups `names` give: the first of data.datavisa.idp_api_roles
#   that one of them names, else user.
api_role(names) := role if {
	given := {r | some name in names; r := _mapping[name].api_role}
	role := [r | some r in _api_roles; r in _person_roles; r in given][0]
} else := "user"

# METADATA
# title: Deprovisioned
# description: |
#   True when directory sync took the subject out (SCIM active false, or deleted): they
#   are no one here, even where the bundle's directory names them.
deprovisioned(subject_id) if data.directory.people[subject_id].active == false

default _names := []

_names := of(input.subject)

# METADATA
# title: Allow
# description: True when the person may be let in with the role the decision names.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the person is not let in, as {code, message}.
deny contains {"code": "deprovisioned", "message": msg} if {
	deprovisioned(input.subject)
	msg := sprintf("%s was deprovisioned by directory sync", [input.subject])
}

deny contains {"code": "unknown_subject", "message": "the input names no subject"} if {
	not is_string(object.get(input, "subject", null))
}

# METADATA
# title: API role
# description: The API role of the person (null when refused).
default role := null

role := api_role(_names) if allow

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"role": role,
	"roles": roles(_names),
	"groups": _names,
}
