package system.log_test

import data.system.log

test_query_text_is_erased if {
	log.mask == {"/input/context/query"} with input as {"input": {"context": {"query": "SELECT *"}}}
}

test_ipv4_client_is_kept_to_its_network if {
	m := log.mask with input as {"input": {"context": {"client_ip": "10.1.2.3"}}}
	m == {{"op": "upsert", "path": "/input/context/client_ip", "value": "10.1.2.0/24"}}
}

test_ipv6_client_is_kept_to_its_48 if {
	cases := {
		"2001:db8:abcd:12::1": "2001:db8:abcd::/48",
		"2001:db8::1": "2001:db8::/48",
		"1:2:3:4:5:6:7:8": "1:2:3::/48",
		"::1": "::/48",
	}
	every ip, network in cases {
		m := log.mask with input as {"input": {"context": {"client_ip": ip}}}
		m == {{"op": "upsert", "path": "/input/context/client_ip", "value": network}}
	}
}

test_a_decisions_origin_address_is_kept_to_its_network_too if {
	m := log.mask with input as {"input": {"origin": {"source": "derived", "address": "198.51.100.7"}}}
	m == {{"op": "upsert", "path": "/input/origin/address", "value": "198.51.100.0/24"}}
	v6 := log.mask with input as {"input": {"origin": {"address": "2a00:1450:4001:81c::200e"}}}
	v6 == {{"op": "upsert", "path": "/input/origin/address", "value": "2a00:1450:4001::/48"}}
}

test_anything_else_as_an_address_is_erased if {
	log.mask == {"/input/context/client_ip"} with input as {"input": {"context": {"client_ip": "not an address"}}}
	log.mask == {"/input/origin/address"} with input as {"input": {"origin": {"address": "1.2.3"}}}
}

test_plain_checks_are_kept_whole if {
	log.mask == set() with input as {"input": {"subject": "alice", "resource": "r"}}
}

test_a_statement_keeps_its_shape_and_loses_its_literals if {
	event := {"path": "datavisa/session/statement", "input": {"statement": "SELECT * FROM customers WHERE email = 'ada@example.com' AND note = 'it''s'"}}
	masks := log.mask with input as event
	masks == {{"op": "upsert", "path": "/input/statement", "value": "SELECT * FROM customers WHERE email = '***' AND note = '***'"}}
}
