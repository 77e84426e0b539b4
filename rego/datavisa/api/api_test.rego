package datavisa.api_test

import data.datavisa.api

# The role model as a table: each operation and the roles that may call it. Every other
# role × operation pair must be refused.
_table := {
	"requests.create": {"user"},
	"requests.list": {"user", "auditor", "admin"},
	"requests.read": {"user", "auditor", "admin"},
	"requests.approvals": {"user", "auditor", "admin"},
	"requests.approve": {"user"},
	"requests.deny": {"user"},
	"requests.cancel": {"user"},
	"grants.break_glass": {"user"},
	"grants.activate": {"user"},
	"grants.revoke": {"user", "admin"},
	"grants.relinquish": {"user"},
	"grants.extend": {"user"},
	"grants.review": {"user"},
	"grants.credentials": {"user"},
	"activity.read": {"user", "auditor", "admin"},
	"grants.abandon_removal": {"admin"},
	"sweep.run": {"admin"},
	"access.check": {"user", "service"},
	"gateway.authz": {"user", "service"},
	"audit.read": {"user", "auditor", "admin"},
	"logs.upload": {"service", "opa"},
	"logs.read": {"auditor"},
	"alerts.list": {"auditor", "admin"},
	"alerts.read": {"auditor", "admin"},
	"alerts.ack": {"admin"},
	"events.read": {"user", "auditor", "admin"},
	"tokens.whoami": {"user", "service", "auditor", "admin", "opa", "scim"},
	"bundles.read": {"opa"},
	"fleet.report": {"opa"},
	"fleet.read": {"auditor", "admin"},
	"transfers.create": {"user"},
	"transfers.check": {"service"},
	"transfers.deleted": {"user", "service"},
	"filings.list": {"user", "auditor", "admin"},
	"filings.record": {"user", "admin"},
	"scim.read": {"scim"},
	"scim.write": {"scim"},
	"export_counts.list": {"user", "auditor", "admin"},
	"catalogue.read": {"user", "auditor", "admin"},
	"queue.read": {"user"},
	"grants.supervise": {"user"},
	"step_up.use": {"user"},
}

_decision(role, operation) := d if {
	d := api.decision with input as {"role": role, "operation": operation}
}

test_the_table_covers_every_operation_and_role if {
	{op | some op, _ in _table} == api.operations
	api.roles == {"user", "service", "auditor", "admin", "opa", "scim"}
}

test_every_role_and_operation if {
	every operation in api.operations {
		every role in api.roles {
			d := _decision(role, operation)
			expected := role in _table[operation]
			d.allow == expected
			refused := count(d.reasons) > 0
			refused != d.allow
		}
	}
}

test_a_refusal_names_the_role_and_the_operation if {
	_decision("auditor", "requests.approve").reasons == {{
		"code": "role_not_permitted",
		"message": "the auditor role may not call requests.approve",
	}}
}

test_the_auditor_changes_nothing if {
	every operation in api.permissions.auditor {
		some verb in {".read", ".list", ".approvals", "tokens.whoami"}
		endswith(operation, verb)
	}
}

test_unknown_roles_and_operations_are_refused if {
	cases := [
		{"role": "root", "operation": "sweep.run", "codes": {"unknown_role"}},
		{"role": "admin", "operation": "tokens.sudo", "codes": {"unknown_operation"}},
		{"role": null, "operation": null, "codes": {"unknown_role", "unknown_operation"}},
	]
	every c in cases {
		d := _decision(c.role, c.operation)
		not d.allow
		{r.code | some r in d.reasons} == c.codes
	}
	not api.allow with input as {}
}

test_permissions_are_the_decision_for_every_pair if {
	every role in api.roles {
		api.permissions[role] == sort({op | some op, roles in _table; role in roles})
	}
	{role | some role, _ in api.permissions} == api.roles
}
