package system.log_test

import data.system.log

test_query_text_is_erased if {
	log.mask == {"/input/context/query"} with input as {"input": {"context": {"query": "SELECT *"}}}
}

test_ipv4_client_is_kept_to_its_network if {
	m := log.mask with input as {"input": {"context": {"client_ip": "10.1.2.3"}}}
	m == {{"op": "upsert", "path": "/input/context/client_ip", "value": "10.1.2.0/24"}}
}

test_other_client_addresses_are_erased if {
	log.mask == {"/input/context/client_ip"} with input as {"input": {"context": {"client_ip": "::1"}}}
}

test_plain_checks_are_kept_whole if {
	log.mask == set() with input as {"input": {"subject": "alice", "resource": "r"}}
}

test_a_statement_keeps_its_shape_and_loses_its_literals if {
	event := {"path": "datavisa/session/statement", "input": {"statement": "SELECT * FROM customers WHERE email = 'ada@example.com' AND note = 'it''s'"}}
	masks := log.mask with input as event
	masks == {{"op": "upsert", "path": "/input/statement", "value": "SELECT * FROM customers WHERE email = '***' AND note = '***'"}}
}
