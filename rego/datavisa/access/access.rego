# METADATA
# title: Access decision
# description: |
#   May this subject do this action on this resource from this location now? Reads the
#   live grants the engine pushes to data.grants (keyed by subject, then grant id), so a
#   decision touches only the subject's own grants. Time is OPA's clock, never input.
#   The grant must be active, cover the action and the location, and residency must still
#   be lawful under the current policy (with the evidence the grants carry, if any), as
#   must the sectoral rules (ITAR, CJIS) and the US Data Security Program (28 CFR 202:
#   covered persons and bulk US data): a tightened rule takes effect at once.
#
#   Input: {subject, resource, action, location, origin (where the location comes from:
#   datavisa.origin; optional)}
#   Grants: data.grants[subject][grant_id] = {resource, actions, countries, starts_ns,
#   expires_ns, revision, expires_at (optional: expires_ns in RFC 3339 UTC, as the engine
#   pushes it), breakglass (optional), evidence (optional), supervised (optional: true
#   when the grant works only while a supervisor is present), supervisor_present (with
#   supervised: whether a supervisor's lease is alive now)}
#   Output: decision = {allow, reasons: [{code, message}], grant_id, expires_at (RFC 3339
#   UTC, when allowed)}; until data.grants is there at all, only policy_unavailable.
package datavisa.access

import data.datavisa.origin
import data.datavisa.residency
import data.datavisa.us_bulk_data

_resource := data.datavisa.resources[input.resource]

_tier := data.datavisa.tiers[_resource.tier]

_now := time.now_ns()

_evidence := {e | some grant in _live; some e in object.get(grant, "evidence", [])}

_ctx := residency.context(_resource, input.subject, input.location, _evidence)

_held[id] := grant if {
	some id, grant in data.grants[input.subject]
	grant.resource == input.resource
}

_live[id] := grant if {
	some id, grant in _held
	grant.starts_ns <= _now
	_now < grant.expires_ns
}

_usable[id] := grant if {
	some id, grant in data.grants[input.subject]
	grant.resource == input.resource
	grant.starts_ns <= _now
	_now < grant.expires_ns
	grant.actions[_] == input.action
	grant.countries[_] == input.location
	_supervisor_present(grant)
}

# A supervised grant works only while a supervisor is present (datavisa.supervision): the
# engine says whether one's lease is alive (supervisor_present), policy what that means.
_supervisor_present(grant) if not grant.supervised

_supervisor_present(grant) if grant.supervisor_present == true

# METADATA
# title: Allow
# description: True when no rule denies the access.
default allow := false

allow if {
	_resource
	count(deny) == 0
}

# METADATA
# title: Denial reasons
# description: Each reason the access is refused, as {code, message}.
deny contains {"code": "unknown_resource", "message": msg} if {
	not _resource
	msg := sprintf("no resource named %q", [input.resource])
}

deny contains {"code": "no_active_grant", "message": msg} if {
	_tier.grant_required
	count(_held) == 0
	msg := sprintf("%s holds no grant on %s", [input.subject, input.resource])
}

deny contains {"code": "grant_expired", "message": msg} if {
	_tier.grant_required
	count(_held) > 0
	count(_live) == 0
	msg := sprintf("the grant of %s on %s is not active now", [input.subject, input.resource])
}

deny contains {"code": "supervisor_absent", "message": msg} if {
	count(_usable) == 0
	some id, grant in _live
	input.action in grant.actions
	not _supervisor_present(grant)
	msg := sprintf("grant %s is supervised and no supervisor is present: it works only while one watches it (datavisa watch %s --supervise)", [id, id])
}

deny contains {"code": "action_not_permitted", "message": msg} if {
	count(_live) > 0
	not _action_granted
	msg := sprintf("the grant does not cover action %q", [input.action])
}

deny contains {"code": "location_not_permitted", "message": msg} if {
	count(_live) > 0
	not _location_granted
	countries := concat(", ", {c | some g in _live; some c in g.countries})
	msg := sprintf("access from %s is outside the countries the grant was approved for (%s)", [input.location, countries])
}

deny contains {"code": "location_not_permitted", "message": msg} if {
	_tier.residency_checked
	not _inside_accepted
	found := residency.basis(_ctx)
	not found in _tier.bases
	msg := residency.unlawful_message(_ctx, _resource.tier, found, input.location)
}

deny contains reason if {
	_resource
	some reason in origin.denials(_tier, "access")
}

deny contains reason if {
	count(data.datavisa.lookup.resources[input.resource].sectoral) > 0
	some reason in residency.sectoral_denials(_resource, input.subject, input.location)
}

deny contains reason if {
	data.datavisa.lookup.resources[input.resource].us_sensitive
	some reason in us_bulk_data.access_denials(_resource, input.subject, _evidence)
}

# The location is a country of the data's jurisdiction and its tier accepts that basis
# (data.datavisa.lookup): in_jurisdiction is then the basis residency.basis finds, and
# lawful, so the residency context need not be built.
_inside_accepted if {
	facts := data.datavisa.lookup.resources[input.resource]
	facts.inside[input.location]
	facts.bases.in_jurisdiction
}

_action_granted if {
	some grant in _live
	input.action in grant.actions
}

_location_granted if {
	some grant in _live
	input.location in grant.countries
}

# Of the usable grants, the one lasting longest, then the least id: the least of
# [-expires_ns, id], as arrays compare element by element.
_chosen := min({[0 - g.expires_ns, id] | some id, g in _usable})

# METADATA
# title: Grant id
# description: The grant that allows the access; of several, the one lasting longest.
grant_id := _chosen[1]

_expires_at := time.format([0 - _chosen[0], "UTC", "2006-01-02T15:04:05Z07:00"])

_grant_fields := {"grant_id": grant_id, "expires_at": _expires_at} if allow

default _grant_fields := {}

# The common allow comes first, in one body, from lookups in the facts shaped at bundle
# build time (data.datavisa.lookup, engine/policy/bundle.py) and without the residency
# context: no sectoral rule names the data's tags, it declares no US sensitive data (the US
# Data Security Program judges who reaches that), its tier accepts in_jurisdiction, the
# location is a country of the data's jurisdiction (so in_jurisdiction is the basis, and
# lawful), its source is one the tier accepts and nothing observed disagrees with what the
# caller declared (datavisa.origin), and a live grant covers the action and the location; then no rule
# above denies. Its grant is _chosen's, inlined: each rule a decision touches costs about
# as much as a lookup, so this path touches none. Its RFC 3339 expiry is the one the
# engine pushed with the grant (expires_at) instead of being formatted here: a grant
# pushed without it, like any other case, is left to the rules above.

# METADATA
# title: Decision
# description: The whole answer for the engine and for services asking OPA directly.
decision := {"allow": true, "reasons": set(), "grant_id": best[1], "expires_at": mine[best[1]].expires_at} if {
	facts := data.datavisa.lookup.resources[input.resource]
	facts.inside[input.location]
	facts.bases.in_jurisdiction
	count(facts.sectoral) == 0

	# a comparison, not `not`: a negation costs the common allow five allocations more
	facts.us_sensitive == false

	# the location's source is one the tier accepts for access, and no one said otherwise
	facts.sources[origin.source]
	count(origin.observed_elsewhere) == 0
	now := time.now_ns()
	mine := data.grants[input.subject]
	best := min({[0 - g.expires_ns, id] |
		some id, g in mine
		g.resource == input.resource
		g.starts_ns <= now
		now < g.expires_ns
		g.actions[_] == input.action
		g.countries[_] == input.location
		not g.supervised # a supervised grant is judged by the rules above
	})
} else := {"allow": false, "reasons": {_grants_not_loaded}} if {
	not data.grants
} else := object.union({"allow": allow, "reasons": deny}, _grant_fields)

# An OPA that has its policy but not yet the live grants (one just started, before the
# engine pushed them; a sidecar before its grants bundle) cannot say who holds what: it
# answers as an OPA that cannot be asked does, never a no_active_grant it cannot know.
_grants_not_loaded := {
	"code": "policy_unavailable",
	"message": "this OPA has not been given the live grants yet, so deny",
}
