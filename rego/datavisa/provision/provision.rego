# METADATA
# title: Provisioning in the data system
# description: |
#   What a grant becomes in the data system its resource names as `target` (a resource's
#   `target: {kind: postgresql, connection, database, schema, tables}` or `{kind: mariadb,
#   connection, database, tables}` in the bundle): which privileges each action gives, by
#   the kind of system and the resource's classification tier. Policy authors change the
#   tables below and test them; the connector only carries them out.
#
#   Input: {grant_id, subject, resource, actions}
#   Output: decision = {allow, reasons: [{code, message}], targeted, target, privileges,
#   own_password}. targeted is false for a resource with no target (nothing to provision,
#   allow); a targeted grant is allowed only when every action it holds gives privileges.
#   own_password says what the connector does when reconcile finds the grant's account
#   holds a password DataVisa did not issue (the holder set its own).
package datavisa.provision

# METADATA
# title: Privileges by tier and action, in PostgreSQL
# description: |
#   The privileges on the target's tables that an action gives, for each tier that may be
#   provisioned at all. A tier missing here is never provisioned (public data needs no
#   database role; policy authors add it if theirs does).
privileges_by_tier := {
	"internal": {"read": {"SELECT"}},
	"confidential": {
		"read": {"SELECT"},
		"write": {"SELECT", "INSERT", "UPDATE", "DELETE"},
	},
	"restricted": {"read": {"SELECT"}},
}

# METADATA
# title: Privileges by tier and action, in MariaDB and MySQL
# description: |
#   As privileges_by_tier, for a target of kind mariadb: the table privileges MariaDB
#   grants (GRANT ... ON db.table). Nothing beyond DML: no FILE, no global privilege.
mariadb_privileges_by_tier := {
	"internal": {"read": {"SELECT"}},
	"confidential": {
		"read": {"SELECT"},
		"write": {"SELECT", "INSERT", "UPDATE", "DELETE"},
	},
	"restricted": {"read": {"SELECT"}},
}

# METADATA
# title: Privileges by kind of data system
# description: Which table above a target's kind reads; a kind missing here gets nothing.
privileges_by_kind := {
	"postgresql": privileges_by_tier,
	"mariadb": mariadb_privileges_by_tier,
}

_by_tier := object.get(privileges_by_kind, object.get(object.get(_resource, "target", {}), "kind", ""), {})

_resource := object.get(data.datavisa.resources, object.get(input, "resource", ""), {})

_target := _resource.target

_tier := _resource.tier

_actions := {action | some action in object.get(input, "actions", [])}

# METADATA
# title: Targeted
# description: True when the grant's resource names a data system to provision.
default targeted := false

targeted if _target

# METADATA
# title: Privileges
# description: The privileges the grant's actions give on the target's tables.
privileges contains privilege if {
	targeted
	some action in _actions
	some privilege in _by_tier[_tier][action]
}

# METADATA
# title: What a password the holder set for itself costs, by tier
# description: |
#   A holder may change its own password in PostgreSQL (`ALTER ROLE ... PASSWORD`): a
#   credential DataVisa never issued, cannot rotate, and the holder can share. restore
#   puts the issued password back and ends the account's sessions (the holder goes on
#   with the credentials it was given); end ends the grant. A tier missing here ends it.
own_password_by_tier := {
	"internal": "restore",
	"confidential": "restore",
	"restricted": "end",
}

# METADATA
# title: Own password
# description: What the connector does about a password the holder set (restore or end).
default own_password := "end"

own_password := own_password_by_tier[_tier]

# METADATA
# title: Allow
# description: True when the grant may be provisioned as asked (or needs nothing).
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the grant cannot be provisioned, as {code, message}.
deny contains {"code": "unknown_resource", "message": msg} if {
	not data.datavisa.resources[object.get(input, "resource", "")]
	msg := sprintf("%v is not a resource of the bundle", [object.get(input, "resource", null)])
}

deny contains {"code": "tier_not_provisioned", "message": msg} if {
	_target
	not _by_tier[_tier]
	msg := sprintf(
		"%s is %s data, and no provisioning rule gives %s data privileges in %s",
		[input.resource, _tier, _tier, _target.kind],
	)
}

deny contains {"code": "action_not_provisioned", "message": msg} if {
	_target
	some action in _actions
	_by_tier[_tier]
	not _by_tier[_tier][action]
	msg := sprintf("the %s action on %s data gives no privileges in %s", [action, _tier, _target.kind])
}

deny contains {"code": "no_actions", "message": "the grant holds no action to provision"} if {
	_target
	count(_actions) == 0
}

# METADATA
# title: Decision
# description: The whole answer for one grant.
decision := {
	"allow": allow,
	"reasons": deny,
	"targeted": targeted,
	"target": object.get(_resource, "target", null),
	"privileges": sort(privileges),
	"own_password": own_password,
}
