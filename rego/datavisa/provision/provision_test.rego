package datavisa.provision_test

import data.datavisa.provision

_target := {
	"kind": "postgresql", "connection": "analytics", "database": "analytics",
	"schema": "public", "tables": ["customers"],
}

_resources := {
	"db-confidential": {"tier": "confidential", "target": _target},
	"db-restricted": {"tier": "restricted", "target": _target},
	"db-public": {"tier": "public", "target": _target},
	"no-target": {"tier": "confidential"},
}

_decide(resource, actions) := answer if {
	answer := provision.decision with input as {"resource": resource, "actions": actions}
		with data.datavisa.resources as _resources
}

test_read_gives_select_only if {
	answer := _decide("db-confidential", ["read"])
	answer.allow
	answer.targeted
	answer.privileges == ["SELECT"]
	answer.target.connection == "analytics"
}

test_write_on_confidential_gives_dml if {
	answer := _decide("db-confidential", ["read", "write"])
	answer.allow
	answer.privileges == ["DELETE", "INSERT", "SELECT", "UPDATE"]
}

test_write_on_restricted_gives_nothing_and_is_refused if {
	answer := _decide("db-restricted", ["read", "write"])
	not answer.allow
	{r.code | some r in answer.reasons} == {"action_not_provisioned"}
}

test_a_tier_without_a_rule_is_refused_naming_the_tier if {
	answer := _decide("db-public", ["read"])
	not answer.allow
	some reason in answer.reasons
	reason.code == "tier_not_provisioned"
	contains(reason.message, "public")
}

test_a_resource_without_target_needs_nothing if {
	answer := _decide("no-target", ["read", "write"])
	answer.allow
	not answer.targeted
	answer.privileges == []
	answer.target == null
}

test_an_unknown_resource_is_refused if {
	answer := _decide("nowhere", ["read"])
	not answer.allow
	answer.reasons == {{"code": "unknown_resource", "message": "nowhere is not a resource of the bundle"}}
}

test_no_action_is_refused if {
	answer := _decide("db-confidential", [])
	not answer.allow
	{r.code | some r in answer.reasons} == {"no_actions"}
}

test_a_password_the_holder_set_is_put_back_on_confidential_data if {
	_decide("db-confidential", ["read"]).own_password == "restore"
}

test_a_password_the_holder_set_ends_a_grant_on_restricted_data if {
	_decide("db-restricted", ["read"]).own_password == "end"
}

test_a_password_the_holder_set_ends_the_grant_where_no_tier_says if {
	_decide("nowhere", ["read"]).own_password == "end"
}

_mariadb := {"kind": "mariadb", "connection": "support", "database": "support", "tables": ["tickets"]}

_decide_mariadb(tier, actions) := answer if {
	answer := provision.decision with input as {"resource": "db", "actions": actions}
		with data.datavisa.resources as {"db": {"tier": tier, "target": _mariadb}}
}

test_a_mariadb_target_reads_its_own_table if {
	read := _decide_mariadb("confidential", ["read"])
	read.allow
	read.privileges == ["SELECT"]
	write := _decide_mariadb("confidential", ["write"])
	write.privileges == ["DELETE", "INSERT", "SELECT", "UPDATE"]
	not _decide_mariadb("restricted", ["write"]).allow
}

test_a_kind_no_table_names_gives_nothing if {
	answer := provision.decision with input as {"resource": "db", "actions": ["read"]}
		with data.datavisa.resources as {"db": {"tier": "internal", "target": {"kind": "oracle"}}}
	not answer.allow
	answer.privileges == []
	{r.code | some r in answer.reasons} == {"tier_not_provisioned"}
}
