# METADATA
# title: Extension decision
# description: |
#   May the requester extend this grant by extra_s seconds now? Extension is a new
#   decision: only the requester asks, only while the grant is active, only once the
#   tier's share of it has elapsed (min_elapsed_pct, by the decision point's clock), up to
#   the tier's cap on seconds added over the grant's life, with a reason where the tier
#   wants one; the approvals it then needs are the tier's extension approvals.
#
#   Input: {subject, grant: {id, requester, resource, actions, location, duration_s,
#   starts_ns, expires_ns, extended_s (seconds added so far)}, extra_s, reason}
#   Output: decision = {allow, reasons: [{code, message}], approvals_required: [{group,
#   count}], quorum_met (true when no approval is needed), max_extra_s (what may still be
#   added)}
package datavisa.extension

import data.datavisa.quorum

_grant := input.grant

_resource := data.datavisa.resources[_grant.resource]

_tier := data.datavisa.tiers[_resource.tier]

_rule := _tier.extension

_now := time.now_ns()

_extended_s := object.get(_grant, "extended_s", 0)

# METADATA
# title: Allow
# description: True when no rule denies the extension.
default allow := false

allow if count(deny) == 0

# METADATA
# title: Denial reasons
# description: Each reason the extension is refused, as {code, message}.
deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [_grant.resource])
}

deny contains {"code": "not_extendable", "message": msg} if {
	object.get(_grant, "kind", "access") == "transfer"
	msg := sprintf("%s is a transfer: its window is not extended; ask for another transfer", [_grant.id])
}

deny contains {"code": "not_requester", "message": msg} if {
	input.subject != _grant.requester
	msg := sprintf("only the requester, %s, may extend this grant", [_grant.requester])
}

deny contains {"code": "grant_not_active", "message": msg} if {
	not _active
	msg := sprintf("grant %s is not active now", [_grant.id])
}

deny contains {"code": "duration_invalid", "message": "the extension must be positive"} if {
	input.extra_s <= 0
}

deny contains {"code": "extension_too_early", "message": msg} if {
	_active
	(_now - _grant.starts_ns) * 100 < _rule.min_elapsed_pct * (_grant.expires_ns - _grant.starts_ns)
	msg := sprintf("%s data may be extended once %d%% of the grant has elapsed", [_resource.tier, _rule.min_elapsed_pct])
}

deny contains {"code": "extension_exceeds_cap", "message": msg} if {
	_extended_s + input.extra_s > _rule.max_total_s
	msg := sprintf("%ds asked after %ds already added; %s data allows at most %ds added", [input.extra_s, _extended_s, _resource.tier, _rule.max_total_s])
}

deny contains {"code": "justification_required", "message": msg} if {
	_rule.justification_required
	trim_space(object.get(input, "reason", "")) == ""
	msg := sprintf("extending access to %s data needs a reason", [_resource.tier])
}

_active if {
	_grant.starts_ns <= _now
	_now < _grant.expires_ns
}

# METADATA
# title: Approvals required
# description: The approver groups and counts an extension of this tier needs.
default approvals_required := []

approvals_required := _rule.approvals

# METADATA
# title: Quorum met without approvers
# description: True when the extension is allowed and needs no approval.
default quorum_met := false

quorum_met := allow if quorum.met(approvals_required, set(), _resource)

# METADATA
# title: Maximum extra seconds
# description: How many seconds may still be added to the grant.
default max_extra_s := 0

max_extra_s := max({0, _rule.max_total_s - _extended_s})

# METADATA
# title: Decision
# description: The whole answer for the engine.
decision := {
	"allow": allow,
	"reasons": deny,
	"approvals_required": approvals_required,
	"quorum_met": quorum_met,
	"max_extra_s": max_extra_s,
}
