# METADATA
# title: Ending a grant offline
# description: |
#   Who may end a grant while the decision point cannot be asked, decided when the grant
#   becomes live and kept with it: reducing access must never wait for OPA. The grant's
#   own approvers and the directory's admins may revoke it; its holder may relinquish it.
#   Everyone else waits for OPA, which asks datavisa.lifecycle as usual.
#
#   Input: {request: {id, requester, resource, kind}, approvals: [approver, ...]}
#   Output: decision = {allow, reasons, revoke: [subject, ...], relinquish: [subject, ...]}
package datavisa.offline

import data.datavisa.directory

# METADATA
# title: Revokers
# description: Who may revoke the grant offline, sorted.
revoke := sort({name | some name in object.get(input, "approvals", [])} | _admins)

# METADATA
# title: Relinquishers
# description: Who may relinquish the grant offline, sorted.
relinquish := [input.request.requester]

_admins contains name if {
	some name, subject in directory.subjects
	"admin" in subject.roles
}

# METADATA
# title: Decision
# description: Always allowed; the lists are the answer.
decision := {"allow": true, "reasons": [], "revoke": revoke, "relinquish": relinquish}
