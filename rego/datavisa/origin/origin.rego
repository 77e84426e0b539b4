# METADATA
# title: Where a location comes from
# description: |
#   Whether the location a decision judges is believable enough for the step on data of
#   the tier, and whether the caller's own word about it agrees with the network's. The
#   engine gathers the facts as input.origin: {source (attested: a gateway's trusted
#   country header, or the service asking, vouched for by its credential; derived: the
#   client address mapped to a country, through the configured networks, then an offline
#   IP-to-country database; declared: the caller's --from or body location), channel
#   (local: the CLI running the engine in-process; api; gateway), declared, derived,
#   attested (the countries each said, where one did; derived is "unknown" for an address
#   no network or database places), address (the client's; kept to its /24 or /48 in the
#   decision log), via (peer, or the trusted proxies that named the address)}.
#
#   Which sources count is data: a tier's `location_sources` per step (access, request,
#   break_glass, approve, supervise; all three where a step is not listed), and `location_trust` for
#   what the local channel's declared location and an input without origin (an enforcement
#   point asking OPA directly, which only holders of an OPA token can) count as.
package datavisa.origin

_everything := ["attested", "derived", "declared"]

default _local := "attested"

_local := data.datavisa.location_trust.local

default _direct := "attested"

_direct := data.datavisa.location_trust.direct

# METADATA
# title: Source
# description: |
#   The source the location counts as: input.origin.source, except that a declared location
#   over the local channel, and an input without origin, count as location_trust says
#   (attested when it says nothing).
source := _direct if not input.origin

else := _local if {
	input.origin.channel == "local"
	input.origin.source == "declared"
} else := input.origin.source

# METADATA
# title: Observed
# description: Each country the network said (attested or derived) that disagrees with the declared one.
observed_elsewhere contains observed if {
	declared := input.origin.declared
	is_string(declared)
	declared != "unknown"
	some kind in ["attested", "derived"]
	observed := input.origin[kind]
	is_string(observed)
	observed != "unknown"
	observed != declared
}

# METADATA
# title: Denial reasons
# description: |
#   Why the location does not do for `step` on data of `tier`: the declared country is not
#   where the network places the caller (location_mismatch), or the tier does not accept the
#   location's source for the step (location_source_not_accepted). Empty when it does.
denials(tier, step) := _mismatch | _unaccepted(tier, step)

_mismatch := {{"code": "location_mismatch", "message": msg, "declared": input.origin.declared, "observed": observed} |
	some observed in observed_elsewhere
	msg := sprintf("the location declared (%s) is not where the network places the caller (%s, %s)", [input.origin.declared, observed, _how(observed)])
}

_how(country) := "attested" if input.origin.attested == country

else := "derived from the client address"

default _unaccepted(_, _) := set()

_unaccepted(tier, step) := {{"code": "location_source_not_accepted", "message": msg, "accepted": accepted}} if {
	accepted := object.get(object.get(tier, "location_sources", {}), step, _everything)
	not source in accepted
	msg := sprintf("%s a location that is %s, and this one is %s%s", [_steps[step], concat(" or ", accepted), source, _hint])
}

_steps := {
	"access": "this data is reached only from",
	"request": "this data is asked for only from",
	"break_glass": "break-glass into this data needs",
	"approve": "approving this needs",
	"supervise": "supervising this needs",
}

_hint := ": ask through a gateway that attests it, or from a network the server maps to a country" if source == "declared"

else := ""
