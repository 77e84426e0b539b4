# METADATA
# title: API authorization
# description: |
#   Which API operations a bearer token's role may call at all, like OPA's own
#   system.authz for its API. Every route of the HTTP API names one operation; the role
#   says only whether the token may call it. What the call may then do to which record is
#   decided elsewhere: datavisa.lifecycle says who may revoke or cancel which request,
#   datavisa.approval who may approve it.
#
#   user: acts as itself on its own lifecycle (requests, verdicts, grants, break-glass,
#   reading requests and their trail, its own access checks, asking for transfers and
#   reporting their copies deleted, its approval queue: queue.read; supervising a
#   supervised grant: grants.supervise, whom policy lets supervise, datavisa.supervision; stepping up in the console, from a browser session: step_up.use). Every reader reads
#   the catalogue of resources (catalogue.read). service: a policy
#   enforcement point; asks access checks (about any subject) and uploads OPA's decision
#   logs, and as a gateway's credential asks gateway.authz (the forward-auth endpoints)
#   about the subject its identity header names; as a pipeline's credential it checks
#   transfers before and during a copy and reports the copy deleted. opa: a sidecar
#   OPA's credential (datavisa opa-config); downloads the policy and the live grants
#   (bundles.read), reports its status (fleet.report) and uploads its decision logs, and
#   nothing else: a service's token cannot read every live grant at once, and a
#   sidecar's cannot ask checks. A user's own token may ask gateway.authz about itself.
#   scim: an identity provider's directory sync (Okta, Entra ID); reads and writes the
#   SCIM Users and Groups (/scim/v2) and nothing else. auditor: reads
#   requests, the audit trail, the decision log, alerts, the event stream and the fleet
#   of OPAs, and changes nothing. admin: operates the server; runs sweeps, revokes
#   anyone's grant (datavisa.lifecycle, input.actor_role), acknowledges alerts and
#   watches the fleet of OPAs (fleet.read).
#
#   Input: {role, operation}
#   Output: decision = {allow, reasons: [{code, message}]}; permissions = the whole table,
#   {role: [operation, ...]}, which the engine reads once at start.
package datavisa.api

# METADATA
# title: Operations
# description: Every operation the API serves, by the name its route declares.
operations := {
	"requests.create", "requests.list", "requests.read", "requests.approvals",
	"requests.approve", "requests.deny", "requests.cancel",
	"grants.break_glass", "grants.activate", "grants.revoke", "grants.relinquish",
	"grants.extend", "grants.review", "grants.credentials", "activity.read", "grants.abandon_removal", "sweep.run",
	"access.check", "audit.read", "logs.upload", "logs.read",
	"alerts.list", "alerts.read", "alerts.ack", "events.read", "tokens.whoami",
	"gateway.authz", "bundles.read", "fleet.report", "fleet.read",
	"transfers.create", "transfers.check", "transfers.deleted",
	"filings.list", "filings.record", "scim.read", "scim.write", "export_counts.list",
	"catalogue.read", "queue.read", "grants.supervise", "step_up.use",
}

_reads_records := {
	"requests.list", "requests.read", "requests.approvals", "audit.read", "events.read",
	"activity.read", "catalogue.read",
}

# Role → the operations its tokens may call: a lookup, one line per role.
_may := {
	"user": (_reads_records | {
		"requests.create", "requests.approve", "requests.deny", "requests.cancel",
		"grants.break_glass", "grants.activate", "grants.revoke", "grants.relinquish",
		"grants.extend", "grants.review", "grants.credentials", "access.check", "gateway.authz",
		"tokens.whoami", "transfers.create", "transfers.deleted", "filings.list", "filings.record",
		"export_counts.list", "queue.read", "grants.supervise", "step_up.use",
	}),
	"service": {
		"access.check", "gateway.authz", "logs.upload", "tokens.whoami",
		"transfers.check", "transfers.deleted",
	},
	"opa": {"bundles.read", "fleet.report", "logs.upload", "tokens.whoami"},
	"scim": {"scim.read", "scim.write", "tokens.whoami"},
	"auditor": (_reads_records | {
		"logs.read", "alerts.list", "alerts.read", "tokens.whoami",
		"fleet.read", "filings.list", "export_counts.list",
	}),
	"admin": (_reads_records | {
		"sweep.run", "grants.revoke", "grants.abandon_removal", "alerts.list", "alerts.read",
		"alerts.ack", "tokens.whoami", "fleet.read", "filings.list", "filings.record",
		"export_counts.list",
	}),
}

_role := object.get(input, "role", null)

_operation := object.get(input, "operation", null)

# METADATA
# title: Roles
# description: The token roles the API knows.
roles := {role | some role, _ in _may}

# METADATA
# title: Allow
# description: True when the role may call the operation.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the role may not call the operation, as {code, message}.
deny contains {"code": "unknown_role", "message": msg} if {
	not _role in roles
	msg := sprintf("%v is not a token role", [_role])
}

deny contains {"code": "unknown_operation", "message": msg} if {
	not _operation in operations
	msg := sprintf("%v is not an API operation", [_operation])
}

deny contains {"code": "role_not_permitted", "message": msg} if {
	_role in roles
	_operation in operations
	not _operation in _may[_role]
	msg := sprintf("the %s role may not call %s", [_role, _operation])
}

# METADATA
# title: Decision
# description: The whole answer for one role and operation.
decision := {"allow": allow, "reasons": deny}

# METADATA
# title: Permissions
# description: |
#   The decision for every role × operation, as {role: [operation, ...]} (sorted): what
#   the engine asks once at start and authorizes every API call from, so the hot path
#   makes no extra round trip. It is allow itself, evaluated for each pair.
permissions[role] := [operation |
	some operation in sort(operations)
	allow with input as {"role": role, "operation": operation}
] if {
	some role in roles
}
