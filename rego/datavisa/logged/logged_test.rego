package datavisa.logged_test

import data.datavisa.access
import data.datavisa.approval
import data.datavisa.breakglass
import data.datavisa.extension
import data.datavisa.gateway
import data.datavisa.lifecycle
import data.datavisa.logged
import data.datavisa.offline
import data.datavisa.request
import data.datavisa.transfer
import data.datavisa.transfer_check
import data.datavisa.transfer_request

_check := {"subject": "alice", "resource": "eu-customer-analytics", "action": "read", "location": "DE"}

test_access_is_the_decision_with_its_mask if {
	asked := object.union(_check, {"context": {"query": "SELECT name FROM customers"}})
	got := logged.access_decision with input as asked
	got.decision == access.decision with input as asked
	got.mask == {"/input/context/query"}
}

test_coalesced_access_checks_answer_each_in_order if {
	from_us := object.union(_check, {"subject": "pat", "location": "US"})
	asked := [_check, from_us, _check]
	got := logged.access_decisions with input as {"batch": asked} with data.grants as {}
	count(got) == 3
	every i, one in asked {
		got[i] == logged.access_decision with input as one with data.grants as {}
	}
	got[0] == got[2]
	got[0] != got[1]
}

test_no_checks_no_answers if {
	logged.access_decisions == [] with input as {"batch": []}
}

test_gateway_is_the_decision_with_its_mask if {
	asked := {"context": {"method": "GET", "host": "analytics.localhost", "path": "/", "client_ip": "10.1.2.3"}}
	got := logged.gateway_decision with input as asked
	got.decision == gateway.decision with input as asked
	got.mask == {{"op": "upsert", "path": "/input/context/client_ip", "value": "10.1.2.0/24"}}
}

test_every_decision_is_passed_through_unchanged if {
	logged.request_decision.decision == request.decision with input as _check
	logged.approval_decision.decision == approval.decision with input as _check
	logged.extension_decision.decision == extension.decision with input as _check
	logged.breakglass_decision.decision == breakglass.decision with input as _check
	logged.lifecycle_decision.decision == lifecycle.decision with input as _check
	logged.transfer_decision.decision == transfer.decision with input as _check
	logged.transfer_request_decision.decision == transfer_request.decision with input as _check
	copy := {"resource": "eu-customer-analytics", "target_region": "aws:us-east-1", "transfers": []}
	logged.transfer_check_decision.decision == transfer_check.decision with input as copy
	ending := {"request": {"requester": "alice"}, "approvals": ["bob"]}
	logged.offline_decision.decision == offline.decision with input as ending
}

test_the_engines_own_queries_are_dropped_from_opas_log if {
	logged.recorded_by_engine with input as {"path": "datavisa/logged/access_decision"}
	logged.recorded_by_engine with input as {"path": "datavisa/monitor/alerts"}
	logged.recorded_by_engine with input as {"path": "datavisa/gateway/answer"}
	logged.recorded_by_engine with input as {"path": "datavisa/gateway/answers"}
	logged.recorded_by_engine with input as {"path": "datavisa/console/queue"}
	logged.recorded_by_engine with input as {"path": "datavisa/console/catalogue"}
	not logged.recorded_by_engine with input as {"path": "datavisa/access/decision"}
}

test_coalesced_transfer_checks_answer_each_in_order if {
	named := {"resource": "in-upi-transactions", "target_region": "aws:ap-southeast-1", "transfers": []}
	other := object.union(named, {"target_region": "gcp:europe-west3"})
	asked := [named, other]
	got := logged.transfer_check_decisions with input as {"batch": asked}
	count(got) == 2
	every i, one in asked {
		got[i] == logged.transfer_check_decision with input as one
	}
}
