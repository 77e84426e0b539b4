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
#   erased; a client IP address is kept to its /24 network, enough to investigate.
mask contains "/input/context/query" if input.input.context.query

mask contains {"op": "upsert", "path": "/input/context/client_ip", "value": network} if {
	ip := input.input.context.client_ip
	parts := split(ip, ".")
	count(parts) == 4
	network := sprintf("%s.%s.%s.0/24", [parts[0], parts[1], parts[2]])
}

mask contains "/input/context/client_ip" if {
	ip := input.input.context.client_ip
	count(split(ip, ".")) != 4
}

# METADATA
# title: Statements of provisioned roles
# description: |
#   A statement a provisioned database role ran is kept with its string literals
#   erased: the shape of what was done stays, the values (personal data) do not.
mask contains {"op": "upsert", "path": "/input/statement", "value": masked} if {
	input.path == "datavisa/session/statement"
	masked := regex.replace(input.input.statement, `'(?:[^']|'')*'`, "'***'")
}
