# METADATA
# title: Residency
# description: |
#   Whether, and on which basis, data held in a region may be reached from a country.
#   An unknown location is never inside a jurisdiction.
package datavisa.residency

# METADATA
# title: Jurisdiction of a resource
# description: The jurisdiction whose rules govern the region the resource lives in.
jurisdiction(resource) := data.datavisa.regions[resource.region].jurisdiction

# METADATA
# title: Transfer basis
# description: |
#   The lawful basis on which the resource may be reached from country, or undefined
#   when there is none. Reaching data from inside its jurisdiction is no transfer.
basis(resource, country) := "in_jurisdiction" if {
	country in data.datavisa.jurisdictions[jurisdiction(resource)].countries
}
