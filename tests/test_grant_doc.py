"""The grant document the engine pushes (data.grants) names its expiry as OPA would."""

from __future__ import annotations

import json
import subprocess

from datavisa.engine.lifecycle.grants import grant_doc
from datavisa.engine.model.records import Request
from datavisa.engine.policy.process import find_opa

# Whole seconds, just before and after a second, a microsecond short of the next, epoch 0.
EXPIRIES = [1800000020.0, 1800000020.000001, 1800000020.999999, 1799999999.5, 0.25]


def _grant(expires_at: float) -> Request:
    return Request(
        **dict(id="g1", requester="alice", resource="eu-customer-analytics", actions=["read"]),
        **dict(location="DE", countries=["DE"], reason="", duration_s=20, state="active"),
        **dict(created_at=0.0, pending_until=0.0, approvals_required=[], revision="test"),
        activated_at=expires_at - 20,
        expires_at=expires_at,
    )


def test_expires_at_is_expires_ns_as_the_access_decision_formats_it():
    docs = [grant_doc(_grant(at)) for at in EXPIRIES]
    layout = "2006-01-02T15:04:05Z07:00"  # rego/datavisa/access: time.format of expires_ns
    query = f'[time.format([ns, "UTC", "{layout}"]) | some ns in input]'
    done = subprocess.run(
        [str(find_opa()), "eval", "--format=json", "--stdin-input", query],
        input=json.dumps([doc["expires_ns"] for doc in docs]),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    formatted = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    assert [doc["expires_at"] for doc in docs] == formatted
    assert formatted[0] == formatted[1] == formatted[2] == "2027-01-15T08:00:20Z"
