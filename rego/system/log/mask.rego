# METADATA
# title: Decision-log mask
# description: |
#   What to hide from the decision log before a decision is stored: OPA applies this
#   policy to every event it logs, and the engine applies the same rules to the decisions
#   it records itself. A string is a JSON pointer to erase; an object upserts a value.
#   Input: the decision event ({path, input, ...}).
package system.log

# METADATA
# title: Mask
# description: |
#   The query text a database proxy may send as context can hold personal data, so it is
#   erased; a client address (the gateway's context.client_ip, a decision's
#   origin.address) is kept to its /24 network (IPv4) or /48 (IPv6), enough to
#   investigate; anything else there is erased.
mask contains "/input/context/query" if input.input.context.query

mask contains {"op": "upsert", "path": pointer, "value": network} if {
	some pointer, ip in _addresses
	network := _network(ip)
}

mask contains pointer if {
	some pointer, ip in _addresses
	not _network(ip)
}

_addresses["/input/context/client_ip"] := input.input.context.client_ip

_addresses["/input/origin/address"] := input.input.origin.address

_network(ip) := sprintf("%s.%s.%s.0/24", [parts[0], parts[1], parts[2]]) if {
	parts := split(ip, ".")
	count(parts) == 4
	not contains(ip, ":")
}

# IPv6, as the engine writes it (compressed, RFC 5952): the first three groups, the ones
# before "::" where it stands among them.
_network(ip) := network if {
	contains(ip, ":")
	not contains(ip, ".")
	groups := _leading_groups(ip)
	padded := array.concat(groups, ["0", "0", "0"])
	first := array.slice(padded, 0, 3)
	some network in net.cidr_merge([sprintf("%s:%s:%s::/48", first)])
}

_leading_groups(ip) := split(ip, ":") if not contains(ip, "::")

_leading_groups(ip) := split(split(ip, "::")[0], ":") if {
	contains(ip, "::")
	not startswith(ip, "::")
}

_leading_groups(ip) := [] if startswith(ip, "::")

# METADATA
# title: Statements of provisioned roles
# description: |
#   A statement a provisioned database role ran is kept with its string literals
#   erased: the shape of what was done stays, the values (personal data) do not.
mask contains {"op": "upsert", "path": "/input/statement", "value": masked} if {
	input.path == "datavisa/session/statement"
	masked := regex.replace(input.input.statement, `'(?:[^']|'')*'`, "'***'")
}
